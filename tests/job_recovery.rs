//! Jobs across a crash: a running job is failed at the next start, and queued jobs are rebuilt
//! from their recorded parameters by the same constructor that built them at submission, so a
//! queued backup whose path the restarted server no longer allows fails instead of running.

mod common;

use common::{
    ServerOptions, TestServer, start_backup, wait_for_job, wait_until_running_with_progress,
};

#[tokio::test]
async fn queued_backups_resume_after_a_crash_only_where_their_path_is_still_allowed() {
    let allowed = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut server = TestServer::start();
    let client = server.root().await;
    // Large enough that the first backup is still running when the server is killed.
    common::plant_bulk_file(&server, 400);
    let running = start_backup(&client, &allowed.path().join("running.tar.gz")).await;
    let stays_allowed = start_backup(&client, &allowed.path().join("kept.tar.gz")).await;
    let now_refused = start_backup(&client, &elsewhere.path().join("refused.tar.gz")).await;
    wait_until_running_with_progress(&client, &running).await;
    drop(client);
    server.kill();

    // The restarted server allows backups under `allowed` only.
    server.options = ServerOptions {
        backup: format!("allowed_dirs = [\"{}\"]", allowed.path().display()),
        ..server.options.clone()
    };
    server.write_config();
    server.restart_after_crash();
    let client = server.root().await;
    let (status, message) = wait_for_job(&client, &running).await;
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("Failed", "server stopped while the job was running")
    );
    let (status, message) = wait_for_job(&client, &now_refused).await;
    assert_eq!(status, "Failed", "{message}");
    assert!(
        message.starts_with("not resumed after the restart:") && message.contains("allowed_dirs"),
        "{message}"
    );
    assert!(!elsewhere.path().join("refused.tar.gz").exists());
    let (status, message) = wait_for_job(&client, &stays_allowed).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(allowed.path().join("kept.tar.gz").is_file());
}
