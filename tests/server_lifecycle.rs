//! Starting and stopping: data directory layout, the data directory lock, a taken port, the
//! shipped password off loopback, and a clean exit on SIGTERM.

mod common;

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
