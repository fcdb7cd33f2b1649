//! Starting and stopping: data directory layout, the data directory lock, a taken port, the
//! shipped password off loopback, and a clean exit on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ServerOptions, TestServer, run_to_exit};

#[test]
fn first_start_creates_the_data_directory_layout() {
    let server = TestServer::start();
    for sub in ["rocksdb", "storage", "snapshots", "streams"] {
        assert!(server.data_path().join(sub).is_dir(), "{sub}");
    }
}

#[test]
fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let server = TestServer::start();
    let other = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(server.config_path())
        .unwrap()
        .replace("port = 0", &format!("port = {}", common::free_port()));
    let path = other.path().join("server.toml");
    std::fs::write(&path, config).unwrap();
    let (status, log) = run_to_exit(other.path(), &path, Duration::from_secs(30));
    assert!(!status.success());
    assert!(log.contains("in use by another KalamDB server"), "{log}");
}

#[test]
fn a_taken_port_is_reported_with_the_setting_to_change() {
    let server = TestServer::start();
    let other = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(server.config_path())
        .unwrap()
        .replace(
            &server.data_path().display().to_string(),
            &other.path().join("data").display().to_string(),
        )
        .replace("port = 0", &format!("port = {}", server.port));
    let path = other.path().join("server.toml");
    std::fs::write(&path, config).unwrap();
    let (status, log) = run_to_exit(other.path(), &path, Duration::from_secs(30));
    assert!(!status.success());
    assert!(log.contains(&format!("127.0.0.1:{}", server.port)), "{log}");
    assert!(log.contains("[server] port"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn the_shipped_root_password_is_refused_off_loopback() {
    let log = refused_start(ServerOptions {
        host: "0.0.0.0".into(),
        root_password: "kalamdb".into(),
        ..Default::default()
    });
    assert!(log.contains("shipped default password"), "{log}");
}

#[test]
fn the_published_development_tls_key_is_refused_off_loopback() {
    let log = refused_start(ServerOptions {
        host: "0.0.0.0".into(),
        tls: true,
        root_password: "a-strong-root-password-for-this-test".into(),
        ..Default::default()
    });
    assert!(
        log.contains("development TLS key published in certs/"),
        "{log}"
    );
}

/// Runs a server with `options` that must refuse to start; returns its log.
fn refused_start(options: ServerOptions) -> String {
    let server = TestServer {
        dir: tempfile::tempdir().unwrap(),
        port: common::free_port(),
        options,
        child: None,
    };
    server.write_config();
    let (status, log) = run_to_exit(
        server.dir.path(),
        &server.config_path(),
        Duration::from_secs(30),
    );
    assert!(!status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    log
}

#[test]
fn unknown_config_keys_are_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, "[server]\nhost = \"127.0.0.1\"\nprot = 5432\n").unwrap();
    let (status, log) = run_to_exit(dir.path(), &path, Duration::from_secs(30));
    assert_eq!(status.code(), Some(2));
    assert!(log.contains("prot"), "{log}");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_with_exit_code_0() {
    let mut server = TestServer::start();
    let client = server.root().await;
    client.query_one("SELECT 1", &[]).await.unwrap();
    let status = server.stop();
    assert!(status.success(), "{status}\n{}", server.log());
    assert!(server.log().contains("stopped"));
}

#[tokio::test]
async fn the_root_password_environment_variable_overrides_the_config() {
    let server = TestServer::start_with(ServerOptions {
        env: vec![(
            "KALAMDB_ROOT_PASSWORD".into(),
            "from-the-environment".into(),
        )],
        ..Default::default()
    });
    server
        .connect("root", "from-the-environment")
        .await
        .expect("the environment's password is root's");
    assert!(
        server
            .connect("root", &server.options.root_password)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sigterm_lets_a_running_statement_finish() {
    let mut server = TestServer::start();
    let client = server.root().await;
    let query = tokio::spawn(async move {
        // One simple-protocol message: the statement is running from the moment it arrives.
        let messages = client
            .simple_query("SELECT count(*) FROM generate_series(1, 30000000) AS g(value)")
            .await?;
        Ok::<i64, tokio_postgres::Error>(
            messages
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        r.get(0).and_then(|v| v.parse().ok())
                    }
                    _ => None,
                })
                .unwrap_or(-1),
        )
    });
    // Let the query start, then ask the server to stop while it runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = std::thread::spawn(move || {
        let status = server.stop();
        (status, server.log())
    });
    let result = tokio::time::timeout(Duration::from_secs(60), query)
        .await
        .unwrap()
        .unwrap();
    let (status, log) = stopping.join().unwrap();
    assert_eq!(
        result.unwrap_or_else(|e| panic!("the running statement completes: {e}\n{log}")),
        30_000_000
    );
    assert!(status.success(), "{log}");
    assert!(log.contains("waiting up to"), "{log}");
}

/// The shipped root password, accepted because these servers listen on loopback.
const SHIPPED_PASSWORD: &str = "kalamdb";

/// A server on a config file holding exactly `text`, logged into with the shipped password.
fn start_on_file(text: &str) -> TestServer {
    TestServer::start_with_config_text(
        text,
        ServerOptions {
            root_password: SHIPPED_PASSWORD.into(),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn a_one_line_config_file_starts_a_server_on_the_embedded_defaults() {
    // Port 0: the system picks one. Everything else (host, ./data, the root password,
    // scram_iterations, ...) comes from the embedded defaults.
    let server = start_on_file("server.port = 0\n");
    let client = server.root().await;
    let answer: String = client.query_one("SELECT 'up'", &[]).await.unwrap().get(0);
    assert_eq!(answer, "up");
    assert!(
        server.data_path().join("rocksdb").is_dir(),
        "the default data_path ./data is relative to the start directory"
    );
}

#[tokio::test]
async fn a_config_file_setting_only_the_root_password_is_complete() {
    let server = TestServer::start_with_config_text(
        "[auth]\nroot_password = \"only-this-key\"\n",
        ServerOptions {
            root_password: "only-this-key".into(),
            // The default port 5432 may be taken on a test machine.
            env: vec![("KALAMDB_SERVER__PORT".into(), "0".into())],
            ..Default::default()
        },
    );
    server.root().await;
    assert!(server.connect("root", SHIPPED_PASSWORD).await.is_err());
}

#[tokio::test]
async fn environment_variables_override_any_key_of_the_file() {
    let server = TestServer::start_with_config_text(
        "[server]\nport = 0\nmax_connections = 100\n",
        ServerOptions {
            root_password: SHIPPED_PASSWORD.into(),
            env: vec![
                ("KALAMDB_SERVER__MAX_CONNECTIONS".into(), "5".into()),
                ("KALAMDB_SERVER__RESERVED_CONNECTIONS".into(), "1".into()),
            ],
            ..Default::default()
        },
    );
    // Five connections fit (root may use the reserved one), the sixth is refused: the limit is
    // the environment's 5, not the file's 100.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(server.root().await);
    }
    let refused = server.connect("root", SHIPPED_PASSWORD).await.unwrap_err();
    assert_eq!(common::sqlstate(&refused), "53300", "{refused}");
}

#[test]
fn unknown_keys_and_bad_values_in_the_environment_are_refused_by_name() {
    for (name, value, expected) in [
        ("KALAMDB_SERVER__PROT", "5432", "prot"),
        ("KALAMDB_SEVER__PORT", "5432", "unknown section [sever]"),
        ("KALAMDB_SERVER__PORT", "high", "`high` is not an integer"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "server.port = 0\n").unwrap();
        let log = dir.path().join("out.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kalamdb"))
            .arg("--config")
            .arg(&path)
            .current_dir(dir.path())
            .env(name, value)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let status = common::wait_with_timeout(&mut child, Duration::from_secs(30));
        let log = std::fs::read_to_string(log).unwrap();
        assert_eq!(status.code(), Some(2), "{name}: {log}");
        assert!(log.contains(name) && log.contains(expected), "{log}");
    }
}

#[test]
fn config_show_prints_the_effective_configuration_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(
        &path,
        "[auth]\nroot_password = \"file-secret\"\n[backup]\nsigning_key = \"0123456789abcdef0123456789abcdef-key\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kalamdb"))
        .args(["config", "show", "--config"])
        .arg(&path)
        .env("KALAMDB_SERVER__PORT", "7777")
        .env_remove("KALAMDB_ROOT_PASSWORD")
        .output()
        .unwrap();
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("port = 7777"), "{shown}");
    assert!(shown.contains("scram_iterations = 4096"), "{shown}");
    assert!(shown.contains(&path.canonicalize().unwrap().display().to_string()));
    assert!(
        !shown.contains("file-secret") && !shown.contains("-key"),
        "{shown}"
    );
    assert_eq!(shown.matches("\"********\"").count(), 2, "{shown}");
}

#[tokio::test]
async fn the_log_is_plain_text_and_its_start_up_line_holds_a_working_psql_command() {
    let server = start_on_file("server.port = 0\n");
    let client = server.root().await;
    client
        .batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();
    let (job_id, status, _) = common::run_job(&client, "FLUSH TABLE t").await;
    assert_eq!(status, "Completed");
    let log = server.log();
    assert!(!log.contains('\x1b'), "no colour escapes in a file:\n{log}");
    let started = log
        .lines()
        .find(|l| l.contains(&format!("job_id=\"{job_id}\"")) && l.contains("job started"));
    let finished = log
        .lines()
        .find(|l| l.contains(&format!("job_id=\"{job_id}\"")) && l.contains("job finished"));
    let finished = finished.unwrap_or_else(|| panic!("job end logged:\n{log}"));
    assert!(started.is_some(), "job start logged:\n{log}");
    assert!(
        finished.contains("status=\"Completed\"") && finished.contains("elapsed_ms="),
        "{finished}"
    );

    let command = log
        .lines()
        .find_map(|l| l.split_once("(connect with: ")?.1.split_once(')'))
        .map(|(command, _)| command.split_whitespace().collect::<Vec<_>>())
        .unwrap_or_else(|| panic!("the start-up line names a psql command:\n{log}"));
    assert_eq!(command[0], "psql", "{command:?}");
    let out = Command::new(command[0])
        .args(&command[1..])
        .args(["-X", "-A", "-t", "-c", "SELECT count(*) FROM t"])
        .env("PGPASSWORD", SHIPPED_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let server = start_on_file("server.port = 0\nlogging.format = \"json\"\n");
    server.root().await;
    let log = server.log();
    let mut lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            value.get("level").is_some() && value.get("fields").is_some(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines >= 2, "{log}");
}
