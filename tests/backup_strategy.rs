//! The backup strategy built into the server: SHOW BACKUP and VERIFY BACKUP in SQL, RESTORE
//! ... WITH BACKUP TO, and `[[backup.schedule]]` runs with their retention, all through real
//! clients against the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    ServerOptions, TestServer, plant_bulk_file, populate_app, run_job, run_to_exit, sqlstate,
    verify_backup, wait_for_job,
};
use tokio_postgres::Client;

async fn backup(client: &Client, path: &Path) -> String {
    let sql = format!("BACKUP DATABASE TO '{}'", path.display());
    let (job_id, status, message) = run_job(client, &sql).await;
    assert_eq!(status, "Completed", "{message}");
    job_id
}

/// A copy of `archive` with one bit flipped at `at(length)`.
fn flipped_copy(archive: &Path, name: &str, at: fn(usize) -> usize) -> PathBuf {
    let mut bytes = std::fs::read(archive).unwrap();
    let at = at(bytes.len());
    bytes[at] ^= 0x01;
    let copy = archive.with_file_name(name);
    std::fs::write(&copy, bytes).unwrap();
    copy
}

#[tokio::test]
async fn show_backup_summarizes_the_manifest_one_row_per_area() {
    let server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("full.tar.gz");
    let job_id = backup(&client, &archive).await;

    let rows = client
        .query(&format!("SHOW BACKUP '{}'", archive.display()), &[])
        .await
        .unwrap();
    let areas: Vec<String> = rows.iter().map(|r| r.get("area")).collect();
    assert_eq!(
        areas,
        [
            "data/rocksdb",
            "data/storage",
            "data/snapshots",
            "data/streams",
            "server.toml"
        ]
    );
    for row in &rows {
        assert_eq!(row.get::<_, String>("backup_job_id"), job_id);
        assert_eq!(
            row.get::<_, String>("kalamdb_version"),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(row.get::<_, String>("signature"), "none");
        assert!(row.get::<_, i64>("applied_seq") > 0);
        let created: chrono::DateTime<chrono::Utc> = row.get("created_at");
        assert!(
            (chrono::Utc::now() - created).num_seconds().abs() < 300,
            "{created}"
        );
    }
    let by_area = |area: &str| {
        let row = rows
            .iter()
            .find(|r| r.get::<_, String>("area") == area)
            .unwrap();
        (row.get::<_, i64>("files"), row.get::<_, i64>("bytes"))
    };
    let (sst_files, sst_bytes) = by_area("data/rocksdb");
    assert!(sst_files > 0 && sst_bytes > 0);
    let (segments, _) = by_area("data/storage");
    assert!(
        segments >= 1,
        "the flushed segment of app.items is archived"
    );
    assert_eq!(by_area("server.toml").0, 1);
    // The same totals verify-backup prints.
    let (ok, report) = verify_backup(&archive);
    assert!(ok, "{report}");
    assert!(report.contains(&format!("{sst_files} files")), "{report}");

    // SHOW BACKUP reads only the manifest's member at the end: damage before it is VERIFY
    // BACKUP's to find, damage in it fails SHOW BACKUP too.
    let flipped = flipped_copy(&archive, "flipped.tar.gz", |len| len / 2);
    assert_eq!(
        client
            .query(&format!("SHOW BACKUP '{}'", flipped.display()), &[])
            .await
            .unwrap()
            .len(),
        rows.len()
    );
    let flipped_manifest = flipped_copy(&archive, "flipped-manifest.tar.gz", |len| len - 64);
    let err = client
        .query(
            &format!("SHOW BACKUP '{}'", flipped_manifest.display()),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "XX001", "{err:?}");
    let missing = out.path().join("missing.tar.gz");
    let err = client
        .query(&format!("SHOW BACKUP '{}'", missing.display()), &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023", "{err:?}");
    let err = client
        .query("SHOW BACKUP '/etc/x.tar.gz'", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
}

#[tokio::test]
async fn show_and_verify_backup_need_the_dba_role() {
    let server = TestServer::start();
    let root = server.root().await;
    root.batch_execute("CREATE USER svc WITH PASSWORD 'svc-password' ROLE service")
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("a.tar.gz");
    backup(&root, &archive).await;
    let svc = server.connect("svc", "svc-password").await.unwrap();
    for sql in [
        format!("SHOW BACKUP '{}'", archive.display()),
        format!("VERIFY BACKUP '{}'", archive.display()),
    ] {
        let err = svc.query(&sql, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
    }
}

#[tokio::test]
async fn verify_backup_is_a_job_that_passes_a_good_archive_and_fails_a_flipped_byte() {
    let server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("good.tar.gz");
    let backup_job = backup(&client, &archive).await;

    let (job_id, status, message) =
        run_job(&client, &format!("VERIFY BACKUP '{}'", archive.display())).await;
    assert!(job_id.starts_with("VB-"), "{job_id}");
    assert_eq!(status, "Completed", "{message}");
    assert!(
        message.contains("verified") && message.contains(&backup_job),
        "{message}"
    );
    let row = client
        .query_one(
            "SELECT job_type, bytes_total, bytes_done, progress FROM system.jobs WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "verify");
    let total: Option<i64> = row.get(1);
    assert!(total.is_some_and(|t| t > 0), "{total:?}");
    assert_eq!(Some(row.get::<_, i64>(2)), total);
    assert_eq!(row.get::<_, Option<f64>>(3), Some(1.0));

    let flipped = flipped_copy(&archive, "flipped.tar.gz", |len| len / 2);
    let (_, status, message) =
        run_job(&client, &format!("VERIFY BACKUP '{}'", flipped.display())).await;
    assert_eq!(status, "Failed", "{message}");
    assert!(
        message.contains("verification of") && message.contains("flipped.tar.gz"),
        "{message}"
    );
}

#[tokio::test]
async fn restore_with_backup_to_saves_the_current_state_first_and_both_restore() {
    let mut server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    let out = tempfile::tempdir().unwrap();
    let before = out.path().join("before.tar.gz");
    backup(&client, &before).await;
    client
        .batch_execute(
            "CREATE TABLE app.later (id INT PRIMARY KEY); INSERT INTO app.later VALUES (7)",
        )
        .await
        .unwrap();

    let saved = out.path().join("before-restore.tar.gz");
    let row = client
        .query_one(
            &format!(
                "RESTORE DATABASE FROM '{}' WITH BACKUP TO '{}'",
                before.display(),
                saved.display()
            ),
            &[],
        )
        .await
        .unwrap();
    let job_id: String = row.get("job_id");
    assert!(
        row.get::<_, String>("message")
            .contains("after a backup to"),
        "{}",
        row.get::<_, String>("message")
    );
    let (status, message) = wait_for_job(&client, &job_id).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(
        message.contains("pending server restart") && message.contains("before-restore.tar.gz"),
        "{message}"
    );
    let parameters: String = client
        .query_one(
            "SELECT parameters FROM system.jobs WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(parameters.contains("backup_to"), "{parameters}");
    let (ok, report) = verify_backup(&saved);
    assert!(ok, "{report}");

    // The restore brings back the state without app.later...
    drop(client);
    server.restart();
    let client = server.root().await;
    let err = client
        .query("SELECT * FROM app.later", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42P01");
    // ...and the backup taken first brings it back again.
    let (_, status, message) = run_job(
        &client,
        &format!("RESTORE DATABASE FROM '{}'", saved.display()),
    )
    .await;
    assert_eq!(status, "Completed", "{message}");
    drop(client);
    server.restart();
    let client = server.root().await;
    let id: i32 = client
        .query_one("SELECT id FROM app.later", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id, 7);
}

#[tokio::test]
async fn restore_stages_nothing_when_its_backup_first_fails() {
    let server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    let out = tempfile::tempdir().unwrap();
    let source = out.path().join("source.tar.gz");
    backup(&client, &source).await;

    // A long backup holds the exclusive slot, so the restore waits queued while the directory
    // its first backup writes to disappears.
    plant_bulk_file(&server, 256);
    let long = out.path().join("long.tar.gz");
    let long_job: String = client
        .query_one(&format!("BACKUP DATABASE TO '{}'", long.display()), &[])
        .await
        .unwrap()
        .get("job_id");
    let doomed = out.path().join("doomed");
    std::fs::create_dir(&doomed).unwrap();
    let restore_job: String = client
        .query_one(
            &format!(
                "RESTORE DATABASE FROM '{}' WITH BACKUP TO '{}'",
                source.display(),
                doomed.join("first.tar.gz").display()
            ),
            &[],
        )
        .await
        .unwrap()
        .get("job_id");
    std::fs::remove_dir(&doomed).unwrap();
    let (status, message) = wait_for_job(&client, &long_job).await;
    assert_eq!(status, "Completed", "{message}");
    let (status, message) = wait_for_job(&client, &restore_job).await;
    assert_eq!(status, "Failed", "{message}");
    assert!(
        message.contains("the backup before the restore failed, so nothing was staged"),
        "{message}"
    );
    let pending = PathBuf::from(format!("{}_restore_pending", server.data_path().display()));
    assert!(!pending.exists());
    let staging: Vec<_> = std::fs::read_dir(server.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore_pending"))
        .collect();
    assert!(staging.is_empty(), "{staging:?}");

    // The path rules apply to the second path before anything is queued.
    let err = client
        .query(
            &format!(
                "RESTORE DATABASE FROM '{}' WITH BACKUP TO '{}'",
                source.display(),
                source.display()
            ),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023", "{err:?}");
    let err = client
        .query(
            &format!(
                "RESTORE DATABASE FROM '{}' WITH BACKUP TO '/etc/x.tar.gz'",
                source.display()
            ),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
}

fn schedule_options(directory: &Path, cron: &str, retention: &str) -> ServerOptions {
    ServerOptions {
        backup: format!(
            "[[backup.schedule]]\nname = \"often\"\ncron = \"{cron}\"\ndirectory = \"{}\"\n{retention}\n",
            directory.display()
        ),
        ..ServerOptions::default()
    }
}

/// The schedule's archives in `dir`, sorted by name (so by time).
fn scheduled_archives(dir: &Path, name: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{name}-")) && n.ends_with(".tar.gz"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_schedule_every_two_seconds_runs_one_job_at_a_time_and_prunes_to_keep_last() {
    let out = tempfile::tempdir().unwrap();
    // Files that are not the schedule's own are never touched.
    std::fs::write(out.path().join("other-20200101T000000Z.tar.gz"), b"x").unwrap();
    std::fs::write(out.path().join("often-notes.txt"), b"x").unwrap();
    let server = TestServer::start_with(schedule_options(
        out.path(),
        "*/2 * * * * *",
        "keep_last = 2",
    ));
    let client = server.root().await;
    client
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(90);
    let completed = loop {
        let rows = client
            .query(
                "SELECT job_id, status, message, job_type, parameters FROM system.jobs WHERE created_by = 'scheduler' ORDER BY created_at",
                &[],
            )
            .await
            .unwrap();
        let unfinished = rows
            .iter()
            .filter(|r| matches!(r.get::<_, &str>(1), "Queued" | "Running"))
            .count();
        assert!(unfinished <= 1, "two runs of one schedule overlap");
        for row in &rows {
            assert_eq!(row.get::<_, &str>(3), "backup");
            assert!(row.get::<_, &str>(4).contains("\"schedule\":\"often\""));
            let status: &str = row.get(1);
            assert!(
                status != "Failed",
                "{}",
                row.get::<_, Option<&str>>(2).unwrap_or_default()
            );
        }
        let completed: Vec<String> = rows
            .iter()
            .filter(|r| r.get::<_, &str>(1) == "Completed")
            .map(|r| r.get::<_, String>(2))
            .collect();
        if completed.len() >= 4 {
            break completed;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than 4 scheduled runs completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        completed.iter().all(|m| m.contains("verified")),
        "{completed:?}"
    );
    assert!(
        completed
            .iter()
            .any(|m| m.contains("removed 1 older archive")),
        "{completed:?}"
    );

    let archives = scheduled_archives(out.path(), "often");
    assert!(
        (2..=3).contains(&archives.len()),
        "keep_last = 2 (a third may be in flight): {archives:?}"
    );
    for name in &archives[..2] {
        let (ok, report) = verify_backup(&out.path().join(name));
        assert!(ok, "{report}");
    }
    assert!(out.path().join("other-20200101T000000Z.tar.gz").exists());
    assert!(out.path().join("often-notes.txt").exists());

    let row = client
        .query_one(
            "SELECT name, cron, directory, keep_last, keep_days, last_job_id, last_status, last_run_at, next_run FROM system.backup_schedules",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "often");
    assert_eq!(row.get::<_, &str>(1), "*/2 * * * * *");
    assert_eq!(row.get::<_, String>(2), out.path().display().to_string());
    assert_eq!(row.get::<_, Option<i64>>(3), Some(2));
    assert_eq!(row.get::<_, Option<i64>>(4), None);
    assert!(
        row.get::<_, Option<&str>>(5)
            .is_some_and(|id| id.starts_with("BK-"))
    );
    assert!(row.get::<_, Option<&str>>(6).is_some());
    let next: chrono::DateTime<chrono::Utc> = row.get(8);
    let last: chrono::DateTime<chrono::Utc> = row.get(7);
    assert!(next > last, "{next} after {last}");
    assert!(
        next - chrono::Utc::now() <= chrono::Duration::seconds(2),
        "{next}"
    );
}

#[tokio::test]
async fn a_run_missed_while_down_runs_once_at_start_and_prunes_after_verifying() {
    let out = tempfile::tempdir().unwrap();
    // The schedule's last archive is from 2020: its yearly run of 2026 was missed.
    let old = out.path().join("often-20200101T000000Z.tar.gz");
    std::fs::write(&old, b"an old archive").unwrap();
    let options = schedule_options(out.path(), "0 0 1 1 *", "keep_last = 1");
    let mut server = TestServer::start_with(options);
    let client = server.root().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let job_id = loop {
        let rows = client
            .query(
                "SELECT job_id FROM system.jobs WHERE created_by = 'scheduler'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            break row.get::<_, String>(0);
        }
        assert!(Instant::now() < deadline, "the missed run did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, message) = wait_for_job(&client, &job_id).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(message.contains("removed 1 older archive"), "{message}");
    assert!(
        !old.exists(),
        "keep_last = 1 removes the old archive once the new one is verified"
    );
    assert_eq!(scheduled_archives(out.path(), "often").len(), 1);

    // Once is enough: after a restart nothing is due until next January.
    drop(client);
    server.restart();
    let client = server.root().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs: i64 = client
        .query_one(
            "SELECT count(*) FROM system.jobs WHERE created_by = 'scheduler'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 1);
}

#[test]
fn a_bad_cron_expression_or_forbidden_directory_stops_the_start_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    let cases = [
        (
            "cron = \"61 * * * *\"\ndirectory = \"/tmp\"",
            "[[backup.schedule]] #1 (\"nightly\") cron",
        ),
        (
            "cron = \"0 3 * * *\"\ndirectory = \"/etc\"",
            "[[backup.schedule]] #1 (\"nightly\") directory",
        ),
        (
            "cron = \"0 3 * * *\"\ndirectory = \"/tmp\"\nkeep_last = 0",
            "keep_last",
        ),
    ];
    for (entry, expected) in cases {
        std::fs::write(
            &config,
            format!(
                "[storage]\ndata_path = \"{}\"\n[server]\nport = 0\n[[backup.schedule]]\nname = \"nightly\"\n{entry}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let (status, log) = run_to_exit(dir.path(), &config, Duration::from_secs(30));
        assert!(!status.success(), "{entry}: {log}");
        assert!(log.contains(expected), "{entry}: {log}");
    }
}

/// Rows that tell the states of the incremental tests apart.
async fn items_state(client: &Client) -> Vec<(i64, String)> {
    client
        .query("SELECT id, name FROM app.items ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A server with the sample data, its full backup `full.tar.gz` in the returned directory,
/// and a row inserted after it.
async fn changed_after_a_full_backup() -> (TestServer, Client, tempfile::TempDir, PathBuf) {
    let server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    let out = tempfile::tempdir().unwrap();
    let full = out.path().join("full.tar.gz");
    backup(&client, &full).await;
    client
        .batch_execute("INSERT INTO app.items VALUES (10001, 'after full', 1.00)")
        .await
        .unwrap();
    (server, client, out, full)
}

async fn incremental(client: &Client, target: &Path, base: &Path) -> (String, String) {
    let sql = format!(
        "BACKUP DATABASE TO '{}' INCREMENTAL FROM '{}'",
        target.display(),
        base.display()
    );
    let (_, status, message) = run_job(client, &sql).await;
    (status, message)
}

#[tokio::test]
async fn a_full_backup_and_two_incrementals_restore_the_newest_state_from_anywhere() {
    let (mut server, client, out, full) = changed_after_a_full_backup().await;
    client
        .batch_execute("UPDATE app.items SET name = 'changed' WHERE id = 7")
        .await
        .unwrap();
    assert_eq!(
        run_job(&client, "FLUSH TABLE app.items").await.1,
        "Completed"
    );
    let first = out.path().join("inc1.tar.gz");
    let (status, message) = incremental(&client, &first, &full).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(
        message.starts_with("Incremental backup written"),
        "{message}"
    );

    client
        .batch_execute("DELETE FROM app.items WHERE id BETWEEN 200 AND 300; INSERT INTO app.items VALUES (10002, 'after inc1', 2.00)")
        .await
        .unwrap();
    let second = out.path().join("inc2.tar.gz");
    let (status, message) = incremental(&client, &second, &first).await;
    assert_eq!(status, "Completed", "{message}");
    let expected = items_state(&client).await;

    // SHOW BACKUP names the base and counts what the incremental stores against what it lists.
    let rows = client
        .query(&format!("SHOW BACKUP '{}'", second.display()), &[])
        .await
        .unwrap();
    let listed: i64 = rows.iter().map(|r| r.get::<_, i64>("files")).sum();
    let stored: i64 = rows.iter().map(|r| r.get::<_, i64>("stored_files")).sum();
    assert!(stored < listed, "stored {stored} of {listed}");
    for row in &rows {
        assert_eq!(
            row.get::<_, Option<String>>("base"),
            Some(first.display().to_string())
        );
    }
    let full_rows = client
        .query(&format!("SHOW BACKUP '{}'", full.display()), &[])
        .await
        .unwrap();
    assert!(
        full_rows
            .iter()
            .all(|r| r.get::<_, Option<String>>("base").is_none()
                && r.get::<_, i64>("files") == r.get::<_, i64>("stored_files"))
    );

    let (_, status, message) =
        run_job(&client, &format!("VERIFY BACKUP '{}'", second.display())).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(message.contains("2 base archive(s) checked"), "{message}");
    let (ok, report) = verify_backup(&second);
    assert!(ok && report.contains("incremental on"), "{report}");

    // The chain is found beside the newest archive once moved away from its recorded paths.
    let moved = out.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    for archive in [&full, &first, &second] {
        std::fs::rename(archive, moved.join(archive.file_name().unwrap())).unwrap();
    }
    client.batch_execute("DROP TABLE app.items").await.unwrap();
    let (_, status, message) = run_job(
        &client,
        &format!(
            "RESTORE DATABASE FROM '{}'",
            moved.join("inc2.tar.gz").display()
        ),
    )
    .await;
    assert_eq!(status, "Completed", "{message}");
    assert!(message.contains("Restore staged"), "{message}");
    drop(client);
    server.restart();
    let client = server.root().await;
    assert_eq!(items_state(&client).await, expected);
}

#[tokio::test]
async fn an_incremental_refuses_a_tampered_replaced_missing_or_foreign_base() {
    let (server, client, out, full) = changed_after_a_full_backup().await;
    let inc = out.path().join("inc.tar.gz");
    let (status, message) = incremental(&client, &inc, &full).await;
    assert_eq!(status, "Completed", "{message}");
    let original = std::fs::read(&full).unwrap();

    let restore_fails = |reason: &'static str| {
        let client = &client;
        let inc = inc.clone();
        let full = full.clone();
        async move {
            for sql in [
                format!("RESTORE DATABASE FROM '{}'", inc.display()),
                format!("VERIFY BACKUP '{}'", inc.display()),
            ] {
                let (_, status, message) = run_job(client, &sql).await;
                assert_eq!(status, "Failed", "{reason}: {sql}: {message}");
                assert!(
                    message.contains(&full.display().to_string()) && message.contains(reason),
                    "{sql}: {message}"
                );
            }
        }
    };

    // A flipped byte in the base's data.
    let mut tampered = original.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    std::fs::write(&full, &tampered).unwrap();
    restore_fails("the base archive").await;

    // Another archive at the base's path.
    std::fs::remove_file(&full).unwrap();
    backup(&client, &full).await;
    restore_fails("is not the base archive").await;

    // No base at all.
    std::fs::remove_file(&full).unwrap();
    restore_fails("is missing").await;
    let pending = PathBuf::from(format!("{}_restore_pending", server.data_path().display()));
    assert!(!pending.exists(), "a failed chain stages nothing");

    // The base of another database.
    std::fs::write(&full, &original).unwrap();
    let other = TestServer::start();
    let other_client = other.root().await;
    let foreign = out.path().join("foreign.tar.gz");
    backup(&other_client, &foreign).await;
    let (status, message) = incremental(&client, &out.path().join("x.tar.gz"), &foreign).await;
    assert_eq!(status, "Failed", "{message}");
    assert!(
        message.contains("is a backup of another database"),
        "{message}"
    );
    let err = client
        .query(
            &format!(
                "BACKUP DATABASE TO '{}' INCREMENTAL FROM '{}'",
                out.path().join("y.tar.gz").display(),
                out.path().join("none.tar.gz").display()
            ),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "22023", "{err:?}");
}
