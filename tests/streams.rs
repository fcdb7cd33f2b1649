//! Stream tables keep a commit log: appends survive kill -9, and rows past the TTL disappear
//! at once and are evicted from disk by a background job.

mod common;

use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer};

fn log_files(server: &TestServer) -> Vec<std::path::PathBuf> {
    let dir = server.data_path().join("streams/public/ev");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test]
async fn appended_rows_survive_kill_9() {
    let mut server = TestServer::start();
    {
        let client = server.root().await;
        client
            .batch_execute("CREATE STREAM TABLE ev (n INT) WITH (TTL_SECONDS = 3600)")
            .await
            .unwrap();
        for n in 0..50 {
            client
                .execute("INSERT INTO ev VALUES ($1)", &[&n])
                .await
                .unwrap();
        }
    }
    server.kill();
    server.restart_after_crash();
    let client = server.root().await;
    let row = client
        .query_one("SELECT count(*), sum(n) FROM ev", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (50, 49 * 50 / 2)
    );
}

#[tokio::test]
async fn rows_past_the_ttl_vanish_and_their_log_files_are_evicted() {
    let server = TestServer::start_with(ServerOptions {
        extra: "[streams]\neviction_interval_seconds = 1\n".into(),
        ..Default::default()
    });
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE STREAM TABLE ev (n INT) WITH (TTL_SECONDS = 2); INSERT INTO ev VALUES (1), (2)",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    // A later append starts a new log file, leaving the expired one evictable.
    client
        .batch_execute("INSERT INTO ev VALUES (3)")
        .await
        .unwrap();
    let values: Vec<i32> = client
        .query("SELECT n FROM ev", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(values, [3], "expired rows are not returned");
    let deadline = Instant::now() + Duration::from_secs(30);
    while log_files(&server).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "expired log file was not evicted: {:?}",
            log_files(&server)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job = client
        .query_one("SELECT status, message FROM system.jobs WHERE job_type = 'ttl_evict' AND status = 'Completed' LIMIT 1", &[])
        .await
        .unwrap();
    assert!(
        job.get::<_, String>(1)
            .starts_with("Evicted 1 expired log file"),
        "{}",
        job.get::<_, String>(1)
    );
}
