//! Real drivers against the real server: psycopg 3, asyncpg, SQLAlchemy, Alembic and Django
//! (Python), node-postgres with Knex, and pgJDBC. Each script in `pg-compat/drivers/` checks
//! its own results and exits non-zero on a failure; `.ci/run` installs the drivers.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestServer, repo_root};

fn run_driver(server: &TestServer, program: &str, args: &[&str]) {
    let dir = repo_root().join("pg-compat/drivers");
    let out_path = server.dir.path().join(format!("{program}.out"));
    let mut child = Command::new(program)
        .args(args)
        .current_dir(&dir)
        .env("KALAMDB_PORT", server.port.to_string())
        .env("KALAMDB_PASSWORD", &server.options.root_password)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is installed (.ci/run installs it): {e}"));
    let status = common::wait_with_timeout(&mut child, Duration::from_secs(180));
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        status.success(),
        "{program} {args:?} failed:\n{output}\nserver log:\n{}",
        server.log()
    );
    assert!(output.contains(" passed, 0 failed"), "{output}");
}

#[test]
fn psycopg_asyncpg_and_sqlalchemy_work() {
    let server = TestServer::start();
    run_driver(&server, "python3", &["python_drivers.py"]);
}

#[test]
fn alembic_and_django_migrate_and_back() {
    let server = TestServer::start();
    run_driver(&server, "python3", &["migrations.py"]);
}

#[test]
fn node_postgres_works() {
    let server = TestServer::start();
    run_driver(&server, "node", &["node_pg.js"]);
}

#[test]
fn knex_migrates_and_rolls_back() {
    let server = TestServer::start();
    run_driver(&server, "node", &["knex_migrations.js"]);
}

#[test]
fn pgjdbc_works() {
    let server = TestServer::start();
    run_driver(
        &server,
        "java",
        &["-cp", "/usr/share/java/postgresql.jar", "Jdbc.java"],
    );
}

#[test]
fn pgbench_scripts_with_untyped_parameters_run_in_every_protocol_mode() {
    let server = TestServer::start();
    let setup = common::psql(
        &server,
        &[
            "-c",
            "CREATE NAMESPACE drivers",
            "-c",
            "CREATE TABLE drivers.pgbench (id BIGINT PRIMARY KEY, client INTEGER, note TEXT, at TIMESTAMP, hits INTEGER DEFAULT 0)",
        ],
    );
    assert!(setup.status.success(), "{setup:?}");
    let script = repo_root().join("pg-compat/drivers/pgbench_untyped.sql");
    for mode in ["simple", "extended", "prepared"] {
        let mut child = Command::new("pgbench")
            .args(["-h", "127.0.0.1", "-U", "root", "-n", "-c", "2", "-t", "50"])
            .args(["-M", mode, "-p", &server.port.to_string(), "-f"])
            .arg(&script)
            .arg("kalamdb")
            .env("PGPASSWORD", &server.options.root_password)
            .stdout(std::fs::File::create(server.dir.path().join("pgbench.out")).unwrap())
            .stderr(std::fs::File::create(server.dir.path().join("pgbench.err")).unwrap())
            .spawn()
            .expect("pgbench is installed with postgresql-client");
        let status = common::wait_with_timeout(&mut child, Duration::from_secs(120));
        let out = std::fs::read_to_string(server.dir.path().join("pgbench.out")).unwrap();
        let err = std::fs::read_to_string(server.dir.path().join("pgbench.err")).unwrap();
        assert!(
            status.success() && out.contains("processed: 100/100"),
            "pgbench -M {mode}:\n{out}\n{err}"
        );
    }
    // Every row carries the values its parameters computed.
    let check = common::psql(
        &server,
        &[
            "-At",
            "-c",
            "SELECT count(*) > 0, count(*) FILTER (WHERE id / 100000000 <> client OR note <> 'n' || (id % 100000000)::text OR hits < 1) FROM drivers.pgbench",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "t|0",
        "{check:?}"
    );
}
