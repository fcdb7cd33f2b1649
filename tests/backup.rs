//! BACKUP DATABASE, CLUSTER SNAPSHOT and `kalamdb verify-backup`, through real clients against
//! the real binary: roles, every path rule, the archive's exact layout and manifest, a
//! consistent point under concurrent writers, cancellation and crashes.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    ServerOptions, TestServer, message, populate_app, sqlstate, start_backup, verify_backup,
    wait_for_job, wait_until_running_with_progress,
};
use tokio_postgres::Client;

async fn backup(client: &Client, path: &Path) -> String {
    let job_id = start_backup(client, path).await;
    let (status, message) = wait_for_job(client, &job_id).await;
    assert_eq!(status, "Completed", "{message}");
    job_id
}

fn archive_entries(archive: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn backup_as_root_writes_exactly_the_spec_layout_and_a_verified_manifest() {
    let server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    client.batch_execute("CLUSTER SNAPSHOT").await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("kalamdb-full.tar.gz");
    let job_id = backup(&client, &archive).await;

    let job = client
        .query_one(
            "SELECT job_type, created_by, started_at IS NOT NULL, finished_at >= started_at, \
                    bytes_total, bytes_done, progress, message, parameters \
             FROM system.jobs WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .unwrap();
    assert_eq!(job.get::<_, String>(0), "backup");
    assert_eq!(job.get::<_, String>(1), "root");
    assert!(job.get::<_, bool>(2) && job.get::<_, bool>(3));
    let (total, done): (i64, i64) = (job.get(4), job.get(5));
    assert!(total > 0 && total == done, "{total} {done}");
    assert_eq!(job.get::<_, f64>(6), 1.0);
    let message: String = job.get(7);
    assert!(
        message.starts_with(&format!("Backup written to '{}'", archive.display()))
            && message.contains("files")
            && message.contains("/s)"),
        "{message}"
    );
    assert!(job.get::<_, String>(8).contains("kalamdb-full.tar.gz"));

    let entries = archive_entries(&archive);
    let layout = [
        "data/rocksdb/",
        "data/storage/",
        "data/snapshots/",
        "data/streams/",
    ];
    for entry in &entries {
        assert!(
            entry == "data/"
                || entry == "server.toml"
                || entry == "MANIFEST.json"
                || layout.iter().any(|d| entry.starts_with(d)),
            "unexpected entry {entry}"
        );
    }
    for dir in layout {
        assert!(entries.iter().any(|e| e == dir), "{dir} missing");
    }
    assert_eq!(entries.last().unwrap(), "MANIFEST.json");
    assert!(entries.contains(&"server.toml".to_owned()));
    assert!(
        entries
            .iter()
            .any(|e| e.starts_with("data/rocksdb/") && e.ends_with("CURRENT"))
    );
    assert!(
        entries
            .iter()
            .any(|e| e.starts_with("data/storage/app/items/") && e.ends_with(".parquet"))
    );
    assert!(
        entries
            .iter()
            .any(|e| e.starts_with("data/streams/app/events/"))
    );
    assert!(
        entries
            .iter()
            .any(|e| e.starts_with("data/snapshots/snapshot-") && e.ends_with("snapshot.json"))
    );
    assert!(
        !entries
            .iter()
            .any(|e| e.contains("kalamdb.pid") || e.contains("backup_tmp"))
    );
    // The archived config is the file the server loaded, with its secrets' values removed.
    let config = Command::new("tar")
        .args(["-xzOf"])
        .arg(&archive)
        .arg("server.toml")
        .output()
        .unwrap();
    let loaded = String::from_utf8(std::fs::read(server.config_path()).unwrap()).unwrap();
    let password_line = format!("root_password = \"{}\"", server.options.root_password);
    assert!(loaded.contains(&password_line));
    assert_eq!(
        String::from_utf8(config.stdout).unwrap(),
        loaded.replace(
            &password_line,
            "root_password = \"<removed from the backup>\""
        )
    );
    // Readable by the server's user alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "archive mode {mode:o}");
    let mode = std::fs::metadata(server.data_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "data directory mode {mode:o}");

    let (ok, report) = verify_backup(&archive);
    assert!(ok, "{report}");
    assert!(
        report.contains("OK") && report.contains(&job_id),
        "{report}"
    );
    assert!(!common::partial_exists(&archive));
    assert!(!server.data_path().join("backup_tmp").join(&job_id).exists());
}

#[tokio::test]
async fn backup_through_psql_returns_the_job_row_and_refuses_bad_paths() {
    let server = TestServer::start();
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("from-psql.tar.gz");
    let sql = format!("BACKUP DATABASE TO '{}'", archive.display());
    let output = common::psql(&server, &["-At", "-c", &sql]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<&str> = row.trim().split('|').collect();
    assert!(fields[0].starts_with("BK-"), "{row}");
    assert_eq!(fields[1], "Queued");
    assert!(fields[2].starts_with("Database backup started to"), "{row}");
    let client = server.root().await;
    let (status, message) = wait_for_job(&client, fields[0]).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(verify_backup(&archive).0);
    let output = common::psql(&server, &["-c", "BACKUP DATABASE TO '/etc/kalamdb.tar.gz'"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("/etc"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn verify_backup_fails_on_a_flipped_byte_and_on_a_truncated_copy() {
    let server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("good.tar.gz");
    backup(&client, &archive).await;
    let bytes = std::fs::read(&archive).unwrap();

    let flipped = out.path().join("flipped.tar.gz");
    let mut copy = bytes.clone();
    let middle = copy.len() / 2;
    copy[middle] ^= 0x01;
    std::fs::write(&flipped, &copy).unwrap();
    let (ok, report) = verify_backup(&flipped);
    assert!(!ok, "a flipped byte must fail: {report}");
    assert!(report.contains("FAILED"), "{report}");

    let truncated = out.path().join("truncated.tar.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (ok, report) = verify_backup(&truncated);
    assert!(!ok, "a truncated archive must fail: {report}");
    assert!(
        report.contains("truncated") || report.contains("damaged"),
        "{report}"
    );

    let foreign = out.path().join("foreign.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&foreign)
        .arg("-C")
        .arg(server.dir.path())
        .arg("server.toml")
        .status()
        .unwrap();
    assert!(status.success());
    let (ok, report) = verify_backup(&foreign);
    assert!(!ok && report.contains("not a KalamDB backup"), "{report}");
}

#[tokio::test]
async fn backup_needs_the_dba_role() {
    let server = TestServer::start();
    let root = server.root().await;
    root.batch_execute(
        "CREATE USER alice WITH PASSWORD 'alice-pw' ROLE user;
         CREATE USER svc WITH PASSWORD 'svc-pw' ROLE service;
         CREATE USER ops WITH PASSWORD 'ops-pw' ROLE dba;",
    )
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    for (user, password) in [("alice", "alice-pw"), ("svc", "svc-pw")] {
        let client = server.connect(user, password).await.unwrap();
        let path = out.path().join(format!("{user}.tar.gz"));
        let err = client
            .batch_execute(&format!("BACKUP DATABASE TO '{}'", path.display()))
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{user}: {err}");
        assert!(message(&err).contains("dba"), "{}", message(&err));
        let err = client
            .batch_execute(&format!("RESTORE DATABASE FROM '{}'", path.display()))
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501");
        let err = client.batch_execute("CLUSTER SNAPSHOT").await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501");
        assert!(!path.exists());
    }
    let ops = server.connect("ops", "ops-pw").await.unwrap();
    let archive = out.path().join("by-dba.tar.gz");
    let job_id = backup(&ops, &archive).await;
    assert!(archive.is_file());
    let created_by: String = ops
        .query_one(
            "SELECT created_by FROM system.jobs WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(created_by, "ops");
}

#[tokio::test]
async fn every_path_rule_is_checked_before_a_job_is_queued() {
    let server = TestServer::start();
    let client = server.root().await;
    let out = tempfile::tempdir().unwrap();
    let existing = out.path().join("taken.tar.gz");
    std::fs::write(&existing, b"keep me").unwrap();
    let data = server.data_path();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("BACKUP DATABASE TO {}/bare.tar.gz", out.path().display()),
            "22023",
            "quoted",
        ),
        (
            format!("BACKUP DATABASE TO '{}/../x.tar.gz'", out.path().display()),
            "22023",
            "..",
        ),
        (
            "BACKUP DATABASE TO 'relative/x.tar.gz'".into(),
            "22023",
            "absolute",
        ),
        (
            format!("BACKUP DATABASE TO '{}/x.zip'", out.path().display()),
            "22023",
            ".tar.gz",
        ),
        ("BACKUP DATABASE TO '/etc'".into(), "42501", "/etc"),
        ("BACKUP DATABASE TO '/etc/x.tar.gz'".into(), "42501", "/etc"),
        (
            "BACKUP DATABASE TO '//etc/x.tar.gz'".into(),
            "42501",
            "/etc",
        ),
        (
            "BACKUP DATABASE TO '/./etc/x.tar.gz'".into(),
            "42501",
            "/etc",
        ),
        (
            "BACKUP DATABASE TO '/root/x.tar.gz'".into(),
            "42501",
            "/root",
        ),
        (
            "BACKUP DATABASE TO '/var/log/x.tar.gz'".into(),
            "42501",
            "/var/log",
        ),
        (
            "BACKUP DATABASE TO 'c:\\WINDOWS\\x.tar.gz'".into(),
            "42501",
            "Windows",
        ),
        (
            "BACKUP DATABASE TO \"/etc/x.tar.gz\"".into(),
            "42501",
            "/etc",
        ),
        (
            format!("BACKUP DATABASE TO '{}/x.tar.gz'", data.display()),
            "42501",
            "data directory",
        ),
        (
            format!(
                "BACKUP DATABASE TO '{}/no/such/dir/x.tar.gz'",
                out.path().display()
            ),
            "22023",
            "does not exist",
        ),
        (
            format!("BACKUP DATABASE TO '{}'", existing.display()),
            "22023",
            "already exists",
        ),
        (
            format!(
                "RESTORE DATABASE FROM '{}/missing.tar.gz'",
                out.path().display()
            ),
            "22023",
            "cannot read",
        ),
        (
            "RESTORE DATABASE FROM '/etc/passwd.tgz'".into(),
            "42501",
            "/etc",
        ),
        (
            format!("RESTORE DATABASE FROM {}", existing.display()),
            "22023",
            "quoted",
        ),
    ];
    // A NUL byte cannot reach the server in SQL text (the protocol's strings end at NUL and
    // E'\0' is rejected by the tokenizer); the rule itself is unit-tested in backup::paths.
    for (sql, code, needle) in &cases {
        let err = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(&sqlstate(&err), code, "{sql}: {}", message(&err));
        assert!(message(&err).contains(needle), "{sql}: {}", message(&err));
    }
    assert!(
        message(
            &client
                .batch_execute(&format!("BACKUP DATABASE TO '{}'", existing.display()))
                .await
                .unwrap_err()
        )
        .contains("-20"),
        "suggests a timestamped name"
    );
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    // A symlinked parent that leads into the data directory is caught after resolving it.
    let link = out.path().join("sneaky");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let err = client
        .batch_execute(&format!("BACKUP DATABASE TO '{}/x.tar.gz'", link.display()))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{}", message(&err));
    let jobs: i64 = client
        .query_one(
            "SELECT count(*) FROM system.jobs WHERE job_type IN ('backup', 'restore')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 0, "no refused statement queued a job");
}

#[tokio::test]
async fn allowed_dirs_confine_backups() {
    let allowed = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(ServerOptions {
        backup: format!("allowed_dirs = [\"{}\"]", allowed.path().display()),
        ..Default::default()
    });
    let client = server.root().await;
    let elsewhere = tempfile::tempdir().unwrap();
    let err = client
        .batch_execute(&format!(
            "BACKUP DATABASE TO '{}/x.tar.gz'",
            elsewhere.path().display()
        ))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    assert!(message(&err).contains("allowed_dirs"), "{}", message(&err));
    backup(&client, &allowed.path().join("ok.tar.gz")).await;
}

#[tokio::test]
async fn a_backup_is_one_point_in_time_while_eight_writers_keep_inserting() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute("CREATE TABLE seq (writer INT, n INT, PRIMARY KEY (writer, n))")
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked: std::sync::Arc<Vec<std::sync::atomic::AtomicI32>> =
        std::sync::Arc::new((0..8).map(|_| Default::default()).collect());
    let mut writers = Vec::new();
    for writer in 0..8i32 {
        let c = server.root().await;
        let stop = stop.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let insert = c.prepare("INSERT INTO seq VALUES ($1, $2)").await.unwrap();
            let mut n = 0i32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                c.execute(&insert, &[&writer, &n]).await.unwrap();
                acked[writer as usize].store(n, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("consistent.tar.gz");
    let job_id = start_backup(&client, &archive).await;
    // Every write acknowledged before BACKUP returned must be in the archive.
    let floor: Vec<i32> = acked
        .iter()
        .map(|a| a.load(std::sync::atomic::Ordering::SeqCst))
        .collect();
    let (status, message) = wait_for_job(&client, &job_id).await;
    assert_eq!(status, "Completed", "{message}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        floor.iter().all(|n| *n > 0),
        "writers were running: {floor:?}"
    );

    let extracted = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(extracted.path())
        .status()
        .unwrap();
    assert!(status.success());
    let restored = TestServer::start_on(ServerOptions::default(), |data| {
        std::fs::rename(extracted.path().join("data"), data).unwrap();
    });
    let rc = restored.root().await;
    for writer in 0..8i32 {
        let ns: Vec<i32> = rc
            .query("SELECT n FROM seq WHERE writer = $1 ORDER BY n", &[&writer])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let count = ns.len() as i32;
        assert_eq!(
            ns,
            (1..=count).collect::<Vec<_>>(),
            "writer {writer}: rows are a prefix with no gaps"
        );
        assert!(
            count >= floor[writer as usize],
            "writer {writer}: {count} rows in the archive but {} were acknowledged before BACKUP returned",
            floor[writer as usize]
        );
    }
}

#[tokio::test]
async fn kill_job_stops_a_running_backup_within_a_second_and_leaves_no_file() {
    let server = TestServer::start();
    let client = server.root().await;
    common::plant_bulk_file(&server, 600);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("cancelled.tar.gz");
    let job_id = start_backup(&client, &archive).await;
    wait_until_running_with_progress(&client, &job_id).await;
    assert!(
        common::partial_exists(&archive),
        "the archive is written beside the target"
    );
    let took = common::kill_job_and_wait(&client, &job_id).await;
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    assert!(!archive.exists());
    assert!(!common::partial_exists(&archive));
    assert!(!server.data_path().join("backup_tmp").join(&job_id).exists());
    // A finished job cannot be killed again.
    let err = client
        .batch_execute(&format!("KILL JOB '{job_id}'"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55000");
}

#[tokio::test]
async fn kill_9_during_a_backup_leaves_no_archive_and_no_leftovers_after_restart() {
    let mut server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    common::plant_bulk_file(&server, 600);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("crashed.tar.gz");
    let job_id = start_backup(&client, &archive).await;
    wait_until_running_with_progress(&client, &job_id).await;
    drop(client);
    server.kill();
    assert!(
        !archive.exists(),
        "nothing at the target path after a crash"
    );
    server.restart_after_crash();
    assert!(
        !common::partial_exists(&archive),
        "the partial archive is removed at start"
    );
    assert!(!server.data_path().join("backup_tmp").exists());
    let client = server.root().await;
    let (status, message) = wait_for_job(&client, &job_id).await;
    assert_eq!(status, "Failed");
    assert_eq!(message, "server stopped while the job was running");
    // The database is intact and a new backup to the same path works.
    let count: i64 = client
        .query_one("SELECT count(*) FROM app.items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2980);
    std::fs::remove_file(server.data_path().join("snapshots/bulk/filler.bin")).unwrap();
    backup(&client, &archive).await;
    assert!(verify_backup(&archive).0);
}

#[tokio::test]
async fn backups_go_queued_running_completed_one_at_a_time() {
    let server = TestServer::start();
    let client = server.root().await;
    // Large enough that the first backup is seen running with progress (reported every 250 ms).
    common::plant_bulk_file(&server, 400);
    let out = tempfile::tempdir().unwrap();
    let first = start_backup(&client, &out.path().join("first.tar.gz")).await;
    let second = start_backup(&client, &out.path().join("second.tar.gz")).await;
    wait_until_running_with_progress(&client, &first).await;
    let waiting: String = client
        .query_one(
            "SELECT status FROM system.jobs WHERE job_id = $1",
            &[&second],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        waiting, "Queued",
        "the second backup waits while the first runs"
    );
    for job in [&first, &second] {
        assert_eq!(wait_for_job(&client, job).await.0, "Completed");
    }
    let ordered: bool = client
        .query_one(
            "SELECT b.started_at >= a.finished_at FROM system.jobs a, system.jobs b \
             WHERE a.job_id = $1 AND b.job_id = $2",
            &[&first, &second],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        ordered,
        "the second backup started only after the first finished"
    );
}

#[tokio::test]
async fn cluster_snapshot_writes_a_sealed_metadata_snapshot_and_keeps_the_newest() {
    let server = TestServer::start_with(ServerOptions {
        backup: "snapshots_keep = 2".into(),
        ..Default::default()
    });
    let client = server.root().await;
    populate_app(&client).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let row = client.query_one("CLUSTER SNAPSHOT", &[]).await.unwrap();
        let id: String = row.get("snapshot_id");
        let path: String = row.get("path");
        assert!(Path::new(&path).join("snapshot.json").is_file());
        assert_eq!(row.get::<_, i64>("tables"), 2);
        assert!(row.get::<_, i64>("applied_seq") > 0);
        ids.push(id);
        client
            .batch_execute(&format!(
                "INSERT INTO app.items VALUES ({}, 'x', 1)",
                9100 + i
            ))
            .await
            .unwrap();
    }
    let kept: BTreeSet<String> = std::fs::read_dir(server.data_path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept, ids[1..].iter().cloned().collect());
    let text = std::fs::read_to_string(
        server
            .data_path()
            .join("snapshots")
            .join(&ids[2])
            .join("snapshot.json"),
    )
    .unwrap();
    assert!(
        text.contains("manifest_sha256") && text.contains("\"items\""),
        "{text}"
    );
    assert!(
        !text.contains("root-test-password"),
        "no plaintext password"
    );
}

/// A backup flushes memtables before its checkpoint: the rows written before it are in the
/// archive's SST files, not in write-ahead log a restore would have to replay.
#[tokio::test]
async fn a_backup_carries_rows_in_sst_files_not_in_write_ahead_log() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE logged (id BIGINT PRIMARY KEY, note TEXT);
             INSERT INTO logged SELECT value, repeat('x', 200) FROM generate_series(1, 2000) AS g(value);",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("wal.tar.gz");
    backup(&client, &archive).await;
    let out = Command::new("tar")
        .arg("-tvzf")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    // `tar -tv` lines: mode, owner, size, date, time, name.
    let log_bytes: u64 = listing
        .lines()
        .filter(|line| line.ends_with(".log") && line.contains("data/rocksdb/"))
        .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum();
    // The 2,000 rows take over 400 KB; a log holding them would be at least that.
    assert!(
        log_bytes < 64 * 1024,
        "{log_bytes} bytes of log:\n{listing}"
    );
}

#[tokio::test]
async fn a_large_backup_reports_advancing_progress_and_what_it_is_compressing() {
    let server = TestServer::start();
    let client = server.root().await;
    // 256 MiB that does not compress: the archive takes seconds, reported every 250 ms.
    common::plant_bulk_file(&server, 256);
    let out = tempfile::tempdir().unwrap();
    let job_id = start_backup(&client, &out.path().join("watched.tar.gz")).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut progress_seen = BTreeSet::new();
    let mut messages = Vec::new();
    let status = loop {
        let row = client
            .query_one(
                "SELECT status, bytes_total, bytes_done, progress, message FROM system.jobs WHERE job_id = $1",
                &[&job_id],
            )
            .await
            .unwrap();
        let status: String = row.get(0);
        if status == "Running" {
            let message: Option<String> = row.get(4);
            let message = message.unwrap_or_default();
            let total: Option<i64> = row.get(1);
            // A job is Running a moment before the backup says what it does; until it has
            // captured its point (an empty message, then "capturing ..."), the total is unknown.
            let point_captured = !message.is_empty() && message != "capturing a consistent point";
            if point_captured {
                let total = total.expect("bytes_total is known once the point is captured");
                assert!(total >= 256 << 20, "{total}");
                let done: i64 = row.get(2);
                assert!(done <= total, "{done} of {total}");
                let progress: Option<f64> = row.get(3);
                let progress = progress.expect("a running backup has a progress");
                assert!((0.0..=1.0).contains(&progress), "{progress}");
                if progress > 0.0 && progress < 1.0 {
                    progress_seen.insert(progress.to_bits());
                }
            }
            messages.push(message);
        } else if status != "Queued" {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the backup did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, "Completed");
    assert!(
        progress_seen.len() >= 3,
        "distinct progress values between 0 and 1: {}; messages: {messages:?}",
        progress_seen.len()
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("compressing data/snapshots: ") && m.contains(" MiB of ")),
        "the message names the area and the bytes: {messages:?}"
    );
}

#[tokio::test]
async fn a_paced_backup_reads_no_faster_than_max_bytes_per_second_and_still_stops_at_kill_job() {
    const RATE: u64 = 4 << 20;
    let server = TestServer::start_with(ServerOptions {
        backup: format!("max_bytes_per_second = {RATE}"),
        ..Default::default()
    });
    let client = server.root().await;
    common::plant_bulk_file(&server, 16);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("paced.tar.gz");
    let started = Instant::now();
    backup(&client, &archive).await;
    let took = started.elapsed();
    // 16 MiB at 4 MiB a second (igzip alone would take some tens of milliseconds).
    assert!(took >= Duration::from_millis(3900), "took {took:?}");
    let (ok, report) = verify_backup(&archive);
    assert!(ok, "{report}");

    let job_id = start_backup(&client, &out.path().join("stopped.tar.gz")).await;
    wait_until_running_with_progress(&client, &job_id).await;
    let took = common::kill_job_and_wait(&client, &job_id).await;
    assert!(
        took < Duration::from_secs(1),
        "a paced backup took {took:?} to stop"
    );
}
