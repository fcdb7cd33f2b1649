//! The same SQL against KalamDB and a throwaway real PostgreSQL 15: every `pg-compat/slt/*.slt`
//! file must pass on both, over both protocols. PostgreSQL runs from the machine's binaries
//! (`pg_config --bindir`), initialised in a temporary directory on its own port.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use common::slt::{Protocol, run_file, slt_files};

struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

/// Runs a PostgreSQL binary as a non-root user (PostgreSQL refuses to run as root).
fn pg_command(bin: &Path, program: &str) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

impl Postgres {
    fn start() -> Postgres {
        let bindir = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .expect("pg_config is installed");
        let bin = PathBuf::from(String::from_utf8(bindir.stdout).unwrap().trim());
        let dir = tempfile::tempdir().unwrap();
        if unsafe { libc::geteuid() } == 0 {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = dir.path().join("pgdata");
        let out = pg_command(&bin, "initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = common::free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c TimeZone=UTC",
            dir.path().display()
        );
        let status = pg_command(&bin, "pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .args(["-l"])
            .arg(dir.path().join("pg.log"))
            .args(["-o", &options, "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start failed");
        Postgres { dir, bin, port }
    }

    fn conn(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={database} connect_timeout=10",
            self.port
        )
    }

    async fn fresh_database(&self, name: &str) -> String {
        let (client, connection) =
            tokio_postgres::connect(&self.conn("postgres"), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        // Separate statements: several in one Query message form an implicit transaction.
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        self.conn(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin, "pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.path().join("pgdata"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_sql_gives_the_same_answers_on_kalamdb_and_postgresql() {
    let started = Instant::now();
    let postgres = Postgres::start();
    let mut failures = Vec::new();
    for (i, file) in slt_files(&common::repo_root().join("pg-compat/slt"))
        .iter()
        .enumerate()
    {
        for protocol in [Protocol::Simple, Protocol::Extended] {
            let reference = postgres
                .fresh_database(&format!("compat_{i}_{protocol:?}").to_lowercase())
                .await;
            if let Err(e) = run_file(file, &reference, protocol).await {
                failures.push(format!("PostgreSQL disagrees with the expected file: {e}"));
            }
            let server = TestServer::start();
            let kalamdb = server.conn_string("root", &server.options.root_password);
            if let Err(e) = run_file(file, &kalamdb, protocol).await {
                failures.push(format!("KalamDB differs from PostgreSQL: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(started.elapsed() < Duration::from_secs(600));
}
