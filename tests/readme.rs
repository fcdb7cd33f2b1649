//! The README is executable: its opening commands are the ones CI runs, and its quick tour runs
//! step by step, as written, against a real server with psql.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer, repo_root};

/// The backup path the tour uses; the test writes to a temporary directory instead.
const TOUR_ARCHIVE: &str = "/tmp/kalamdb-tour.tar.gz";
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

/// Fenced blocks of `text` in order: (language, body).
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(language)) => open = Some((language.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.push(open.take().unwrap()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// The README's section under the heading `## {title}`, up to the next `## ` heading.
fn section(readme: &str, title: &str) -> String {
    let heading = format!("\n## {title}\n");
    let start = readme
        .find(&heading)
        .unwrap_or_else(|| panic!("README has {heading:?}"));
    let rest = &readme[start + heading.len()..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
}

/// The commands of a shell block, comments dropped.
fn commands(block: &str) -> Vec<String> {
    block
        .lines()
        .map(|line| line.split(" #").next().unwrap().trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect()
}

#[test]
fn the_readme_opens_with_the_run_and_test_commands_and_ci_runs_the_test_one() {
    let readme = readme();
    let (language, first) = fenced_blocks(&readme).remove(0);
    assert_eq!(language, "sh");
    let opening = commands(&first);
    assert_eq!(
        opening,
        ["./dev.sh run", "./dev.sh test"],
        "the README opens with exactly two commands"
    );
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    let last = ci
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap();
    assert!(
        last.trim().ends_with(&opening[1]),
        ".ci/run ends by running the README's test command: {last}"
    );
    // The run command's bootstrap is the one the test command uses; on a machine that built
    // this test it has nothing left to install and succeeds.
    let dev = repo_root().join("dev.sh");
    let deps = Command::new("bash")
        .arg(&dev)
        .args(["deps", "build"])
        .output()
        .unwrap();
    assert!(
        deps.status.success(),
        "{}",
        String::from_utf8_lossy(&deps.stderr)
    );
    let help = Command::new("bash").arg(&dev).arg("help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for command in &opening {
        assert!(help.contains(command.as_str()), "{help}");
    }
}

/// psql's aligned output without the trailing spaces and blank lines the README drops.
fn psql_table(output: &str) -> String {
    output
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

struct Tour {
    server: TestServer,
    psql_args: Vec<String>,
    password: String,
    archive: String,
    _archive_dir: tempfile::TempDir,
}

impl Tour {
    /// Runs one step's SQL with psql as the README's connect command does; returns its output.
    fn run(&self, sql: &str) -> String {
        let sql = sql.replace(TOUR_ARCHIVE, &self.archive);
        let script = self.server.dir.path().join("step.sql");
        std::fs::write(&script, &sql).unwrap();
        let out = Command::new("psql")
            .args(&self.psql_args)
            .arg("-p")
            .arg(self.server.port.to_string())
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&script)
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql is installed");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "step failed:\n{sql}\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Repeats the tour's job query until no job is queued or running; returns its last output.
    fn watch_until_settled(&self, watch: &str) -> String {
        let deadline = Instant::now() + JOB_TIMEOUT;
        loop {
            let out = self.run(watch);
            if !out.contains("Queued") && !out.contains("Running") {
                return out;
            }
            assert!(Instant::now() < deadline, "jobs still running:\n{out}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn the_quick_tour_runs_as_written() {
    let tour_text = section(&readme(), "Quick tour");
    let blocks = fenced_blocks(&tour_text);
    let languages: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        languages,
        [
            "sh", "sql", "sql", "sql", "text", "sql", "sql", "sql", "sql", "text"
        ],
        "the tour's steps"
    );
    let step = |i: usize| blocks[i].1.as_str();

    // Connect: the README's command, on the test server's port.
    let connect = commands(step(0));
    assert_eq!(connect.len(), 1);
    let mut words = connect[0].split_whitespace();
    let password = words
        .next()
        .and_then(|w| w.strip_prefix("PGPASSWORD="))
        .expect("the connect command sets PGPASSWORD")
        .to_owned();
    assert_eq!(words.next(), Some("psql"));
    let psql_args: Vec<String> = words.map(str::to_owned).collect();
    let server = TestServer::start_with(ServerOptions {
        // The tour uses the shipped password, which a loopback server accepts.
        root_password: password.clone(),
        ..Default::default()
    });
    let archive_dir = tempfile::tempdir().unwrap();
    let mut tour = Tour {
        server,
        psql_args,
        password,
        archive: archive_dir
            .path()
            .join("kalamdb-tour.tar.gz")
            .display()
            .to_string(),
        _archive_dir: archive_dir,
    };

    tour.run(step(1)); // namespace and table
    let copied = tour.run(step(2));
    assert!(copied.contains("COPY 3"), "{copied}");
    assert_eq!(
        psql_table(&tour.run(step(3))),
        psql_table(step(4)),
        "the query's output as the README shows it"
    );

    let backup = tour.run(step(5));
    assert!(
        backup.contains("BK-"),
        "BACKUP answers with a job id: {backup}"
    );
    assert!(step(6).contains("FROM system.jobs"), "step 6 watches jobs");
    let jobs = tour.watch_until_settled(step(6));
    assert!(
        jobs.contains("Backup") && jobs.contains("Completed") && !jobs.contains("Failed"),
        "{jobs}"
    );
    assert!(std::path::Path::new(&tour.archive).is_file());

    let restore = tour.run(step(7));
    assert!(restore.contains("DELETE 1"), "{restore}");
    let jobs = tour.watch_until_settled(step(6));
    assert!(
        jobs.contains("Restore") && !jobs.contains("Failed"),
        "the restore is staged:\n{jobs}"
    );

    tour.server.restart();
    assert_eq!(
        psql_table(&tour.run(step(8))),
        psql_table(step(9)),
        "after the restart the restored data is back"
    );
}

/// `./dev.sh test` builds, then removes what earlier builds of this crate left in the shared
/// target directory: old hashes of its own targets go; the current build's files, the hashed
/// copy of an uplifted binary, dependencies (even one named like a test target) and the newest
/// incremental cache per target stay.
#[test]
fn the_test_command_prunes_only_this_crates_stale_build_artifacts() {
    let target = tempfile::tempdir().unwrap();
    let debug = target.path().join("debug");
    let deps = debug.join("deps");
    let incremental = debug.join("incremental");
    std::fs::create_dir_all(&deps).unwrap();
    let manifest = repo_root().join("Cargo.toml");
    let (current, stale, dependency) = ("1111111111111111", "2222222222222222", "3333333333333333");
    let uplifted = "4444444444444444";
    let files = [
        format!("libkalamdb-{current}.rlib"),
        format!("libkalamdb-{stale}.rlib"),
        format!("kalamdb-{stale}.d"),
        format!("backup-{current}"),
        format!("backup-{stale}"),
        format!("kalamdb-{uplifted}"),
        format!("libbackup-{dependency}.rlib"),
        format!("libserde-{stale}.rlib"),
    ];
    for file in &files {
        std::fs::write(deps.join(file), b"artifact").unwrap();
    }
    std::fs::hard_link(
        deps.join(format!("kalamdb-{uplifted}")),
        debug.join("kalamdb"),
    )
    .unwrap();
    for cache in ["backup-older", "backup-newer"] {
        std::fs::create_dir_all(incremental.join(cache)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let ours = |target: &str, paths: Vec<String>| {
        serde_json::json!({"reason": "compiler-artifact", "manifest_path": manifest,
            "target": {"name": target}, "filenames": paths, "executable": null})
    };
    let messages = [
        ours(
            "kalamdb",
            vec![format!("{}/libkalamdb-{current}.rlib", deps.display())],
        ),
        ours("kalamdb", vec![format!("{}/kalamdb", debug.display())]),
        ours(
            "backup",
            vec![format!("{}/backup-{current}", deps.display())],
        ),
        serde_json::json!({"reason": "compiler-artifact", "manifest_path": "/elsewhere/Cargo.toml",
            "target": {"name": "backup"},
            "filenames": [format!("{}/libbackup-{dependency}.rlib", deps.display())]}),
    ];
    let messages_path = target.path().join("messages.json");
    let lines: Vec<String> = messages.iter().map(|m| m.to_string()).collect();
    std::fs::write(&messages_path, lines.join("\n") + "\n").unwrap();

    let status = Command::new("python3")
        .arg(repo_root().join(".ci/prune-stale-builds.py"))
        .arg(&messages_path)
        .arg(&manifest)
        .status()
        .unwrap();
    assert!(status.success());

    let mut left: Vec<String> = std::fs::read_dir(&deps)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut expected = vec![
        format!("backup-{current}"),
        format!("kalamdb-{uplifted}"),
        format!("libbackup-{dependency}.rlib"),
        format!("libkalamdb-{current}.rlib"),
        format!("libserde-{stale}.rlib"),
    ];
    expected.sort();
    assert_eq!(left, expected);
    let caches: Vec<_> = std::fs::read_dir(&incremental)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(caches, ["backup-newer"]);
}
