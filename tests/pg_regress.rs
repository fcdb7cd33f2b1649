//! PostgreSQL's own regression suite as a differential corpus: the files listed in
//! `pg-compat/regress/files.txt` (from PostgreSQL 15's `src/test/regress/sql`, fetched by
//! `pg-compat/regress/fetch.sh`) run statement by statement on a throwaway PostgreSQL 15 and on
//! KalamDB, in order, in one database each, the way `pg_regress` runs them. A statement counts
//! as identical when both servers return the same columns and rows (in any order), the same
//! row count, the same COPY output, or an error with the same SQLSTATE. The share of identical
//! statements must not fall below `pg-compat/regress/floor`, a figure that only ever rises;
//! no statement may take KalamDB down. Per-file shares and every difference are written under
//! the target directory (`pg-regress-report.txt`, `pg-regress-differences.txt`).

mod common;
#[path = "common/differential.rs"]
mod differential;
#[path = "common/psql_script.rs"]
mod psql_script;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::TestServer;
use common::postgres::Postgres;
use differential::{Outcome, Side};
use psql_script::{End, Item, Variables, is_copy_from_stdin, split};

struct FileResult {
    name: String,
    statements: usize,
    identical: usize,
}

/// `COPY ... FROM 'file'` and `COPY ... TO 'file'` read and write the client's files, as psql's
/// `\copy` does: neither server is asked to touch its file system.
fn client_side_copy(text: &str) -> (String, Option<Vec<u8>>) {
    let lower = text.to_ascii_lowercase();
    if !lower.starts_with("copy") {
        return (text.to_owned(), None);
    }
    for (keyword, replacement) in [(" from '", "STDIN"), (" to '", "STDOUT")] {
        if let Some(at) = lower.find(keyword) {
            let path_start = at + keyword.len();
            let Some(len) = text[path_start..].find('\'') else {
                continue;
            };
            let path = &text[path_start..path_start + len];
            let rewritten = format!(
                "{}{replacement}{}",
                &text[..at + keyword.len() - 1],
                &text[path_start + len + 1..]
            );
            let data = (replacement == "STDIN").then(|| std::fs::read(path).unwrap_or_default());
            return (rewritten, data);
        }
    }
    (text.to_owned(), None)
}

async fn run_file(
    path: &Path,
    regress_dir: &Path,
    postgres: &str,
    kalamdb: &TestServer,
    differences: &mut String,
) -> FileResult {
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let script = std::fs::read_to_string(path).unwrap();
    let mut pg = Side::open(postgres.to_owned()).await;
    let mut kalam = Side::open(kalamdb.conn_string("root", &kalamdb.options.root_password)).await;
    let mut vars = Variables::default();
    let mut result = FileResult {
        name: name.clone(),
        statements: 0,
        identical: 0,
    };
    for item in split(&script) {
        match item {
            Item::Meta { name, args, .. } => match name.as_str() {
                "set" => vars.set(&args),
                "unset" => {
                    vars.0.remove(args.trim());
                }
                "getenv" => {
                    let mut words = args.split_whitespace();
                    if let (Some(var), Some(env)) = (words.next(), words.next()) {
                        let value = match env {
                            "PG_ABS_SRCDIR" | "PG_ABS_BUILDDIR" => {
                                regress_dir.to_string_lossy().into_owned()
                            }
                            _ => String::new(),
                        };
                        vars.0.insert(var.to_owned(), value);
                    }
                }
                _ => {}
            },
            Item::Sql {
                text,
                line,
                end,
                copy_data,
            } => {
                let text = vars.interpolate(&text);
                let (text, file_data) = client_side_copy(&text);
                let data = copy_data
                    .map(String::into_bytes)
                    .or(file_data)
                    .or_else(|| is_copy_from_stdin(&text).then(Vec::new));
                let expected = pg.run(&text, data.as_deref()).await;
                if matches!(expected, Outcome::Lost(_)) {
                    pg.reconnect().await;
                }
                let actual = kalam.run(&text, data.as_deref()).await;
                let lost = matches!(actual, Outcome::Lost(_));
                if lost {
                    // A server that crashed takes a moment to be reaped as exited.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                if lost && kalamdb.has_exited() {
                    let log = kalamdb.log();
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    panic!(
                        "{name}.sql:{line} took KalamDB down ({actual:?}):\n{text}\n\nserver log (last lines first):\n{}",
                        tail.join("\n")
                    );
                }
                if lost {
                    kalam.reconnect().await;
                }
                if let (End::Gset(prefix), Outcome::Rows { columns, rows }) = (&end, &expected)
                    && let [row] = rows.as_slice()
                {
                    for (column, value) in columns.iter().zip(row) {
                        vars.0.insert(
                            format!("{prefix}{column}"),
                            value.clone().unwrap_or_default(),
                        );
                    }
                }
                result.statements += 1;
                if expected.same_as(&actual) {
                    result.identical += 1;
                } else {
                    let shown: String = text.chars().take(300).collect();
                    writeln!(
                        differences,
                        "--- {name}.sql:{line}\n{shown}\n  PostgreSQL: {}\n  KalamDB:    {}",
                        expected.summary(),
                        actual.summary()
                    )
                    .unwrap();
                }
            }
        }
    }
    result
}

fn listed_files(list: &Path) -> Vec<String> {
    std::fs::read_to_string(list)
        .unwrap()
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The regression suite's directory, fetched (and cached) on first use.
fn regress_dir() -> PathBuf {
    let script = common::repo_root().join("pg-compat/regress/fetch.sh");
    let out = std::process::Command::new("timeout")
        .arg("900")
        .arg("bash")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "fetching PostgreSQL's regression suite failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_regression_files_give_identical_results_at_or_above_the_floor() {
    let started = Instant::now();
    let regress = regress_dir();
    let compat = common::repo_root().join("pg-compat/regress");
    let files = listed_files(&compat.join("files.txt"));
    let floor: f64 = std::fs::read_to_string(compat.join("floor"))
        .unwrap()
        .trim()
        .parse()
        .expect("the floor is a percentage");

    let postgres = Postgres::start();
    let reference = postgres.fresh_database("regression").await;
    let mut server = TestServer::start();

    let mut differences = String::new();
    let mut results = Vec::new();
    for file in &files {
        let path = regress.join("sql").join(format!("{file}.sql"));
        results.push(run_file(&path, &regress, &reference, &server, &mut differences).await);
        if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            panic!(
                "KalamDB exited ({status}) during {file}.sql:\n{}",
                server.log()
            );
        }
    }

    let statements: usize = results.iter().map(|r| r.statements).sum();
    let identical: usize = results.iter().map(|r| r.identical).sum();
    let share = 100.0 * identical as f64 / statements.max(1) as f64;
    let mut report = format!(
        "PostgreSQL 15 regression files on KalamDB: {identical} of {statements} statements identical ({share:.1}%), floor {floor}%\n\n"
    );
    for r in &results {
        writeln!(
            report,
            "{:<24} {:>5} / {:<5} {:>6.1}%",
            r.name,
            r.identical,
            r.statements,
            100.0 * r.identical as f64 / r.statements.max(1) as f64
        )
        .unwrap();
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(out.join("pg-regress-report.txt"), &report).unwrap();
    std::fs::write(out.join("pg-regress-differences.txt"), &differences).unwrap();
    println!("{report}");
    assert!(
        share >= floor,
        "{share:.1}% of statements identical, below the floor of {floor}%:\n{report}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1200),
        "the regression corpus took {:?}",
        started.elapsed()
    );
}
