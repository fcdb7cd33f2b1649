//! RESTORE DATABASE through real clients: staging beside the live data, the swap at the next
//! start (and a crash at each of its steps), hostile and damaged archives, and kill -9 while
//! staging. The live database is never touched until the restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    ServerOptions, TestServer, message, populate_app, run_job, sqlstate, wait_for_job,
    wait_with_timeout,
};
use tokio_postgres::Client;

/// Everything a restore must bring back, read through SQL.
#[derive(Debug, PartialEq)]
struct State {
    items: Vec<(i64, String, String)>,
    /// None when the stream table does not exist.
    events: Option<Vec<(i64, String)>>,
    tables: Vec<(String, String, i64, i64, i64)>,
    users: Vec<(String, String)>,
}

async fn read_state(client: &Client) -> State {
    let items = client
        .query(
            "SELECT id, name, CAST(price AS TEXT) FROM app.items ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let events = match client
        .query("SELECT id, kind FROM app.events ORDER BY id", &[])
        .await
    {
        Ok(rows) => Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()),
        Err(e) if sqlstate(&e) == "42P01" => None,
        Err(e) => panic!("{e}"),
    };
    let tables = client
        .query(
            "SELECT namespace, table_name, hot_rows, cold_rows, segments FROM system.tables ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let users = client
        .query("SELECT user_id, role FROM system.users ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    State {
        items,
        events,
        tables,
        users,
    }
}

async fn backup(client: &Client, path: &Path) {
    let sql = format!("BACKUP DATABASE TO '{}'", path.display());
    let (_, status, message) = run_job(client, &sql).await;
    assert_eq!(status, "Completed", "{message}");
}

/// Changes made after the backup, which the restore must undo.
async fn change_everything(client: &Client) {
    client
        .batch_execute(
            "UPDATE app.items SET name = 'after backup' WHERE id BETWEEN 1000 AND 1100;
             DELETE FROM app.items WHERE id > 2000;
             DROP TABLE app.events;
             CREATE TABLE app.later (id INT PRIMARY KEY);
             INSERT INTO app.later VALUES (1);
             ALTER USER alice WITH PASSWORD 'new-password';
             CREATE USER bob WITH PASSWORD 'bob-password' ROLE user;",
        )
        .await
        .unwrap();
    assert_eq!(
        run_job(client, "FLUSH TABLE app.items").await.1,
        "Completed"
    );
}

/// Runs RESTORE and returns (job id, status, message) once the job has finished.
async fn restore(client: &Client, path: &Path) -> (String, String, String) {
    let row = client
        .query_one(&format!("RESTORE DATABASE FROM '{}'", path.display()), &[])
        .await
        .unwrap();
    let job_id: String = row.get("job_id");
    assert!(job_id.starts_with("RS-"), "{job_id}");
    assert_eq!(row.get::<_, String>("status"), "Queued");
    assert_eq!(
        row.get::<_, String>("message"),
        format!(
            "Database restore started from '{}'. Job ID: {job_id}",
            path.display()
        )
    );
    let (status, message) = wait_for_job(client, &job_id).await;
    (job_id, status, message)
}

fn pending_dir(server: &TestServer) -> PathBuf {
    PathBuf::from(format!("{}_restore_pending", server.data_path().display()))
}

/// Siblings of the data directory whose names start with `data` + `suffix`.
fn siblings(server: &TestServer, suffix: &str) -> Vec<String> {
    let prefix = format!("data{suffix}");
    let mut names: Vec<String> = std::fs::read_dir(server.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

fn staged_message(path: &Path) -> String {
    format!(
        "Restore staged from '{}'. RocksDB restore is pending server restart.",
        path.display()
    )
}

/// Populates, backs up, changes everything and stages a restore; returns the backed-up state
/// and the archive.
async fn staged_restore(server: &TestServer, out: &Path) -> (State, PathBuf) {
    let client = server.root().await;
    populate_app(&client).await;
    let archive = out.join("before-changes.tar.gz");
    backup(&client, &archive).await;
    let expected = read_state(&client).await;
    change_everything(&client).await;
    let changed = read_state(&client).await;
    assert_ne!(changed, expected);
    let (_, status, msg) = restore(&client, &archive).await;
    assert_eq!(status, "Completed", "{msg}");
    assert_eq!(msg, staged_message(&archive));
    assert!(pending_dir(server).join("RESTORE_COMPLETE.json").is_file());
    // Staging never touches the live database.
    assert_eq!(read_state(&client).await, changed);
    (expected, archive)
}

async fn assert_restored(server: &TestServer, expected: &State, archive: &Path) {
    let client = server.root().await;
    assert_eq!(&read_state(&client).await, expected);
    let err = client
        .batch_execute("SELECT * FROM app.later")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42P01", "{}", message(&err));
    // Users come back with their old passwords; later users and passwords are gone.
    assert!(server.connect("alice", "old-password").await.is_ok());
    assert!(server.connect("alice", "new-password").await.is_err());
    assert!(server.connect("bob", "bob-password").await.is_err());
    let row = client
        .query_one(
            "SELECT status, message, parameters FROM system.jobs WHERE job_type = 'restore'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Completed");
    let msg: String = row.get(1);
    assert!(msg.contains(&archive.display().to_string()), "{msg}");
    assert!(
        row.get::<_, String>(2)
            .contains(&archive.display().to_string())
    );
    assert!(!pending_dir(server).exists());
    assert!(!server.data_path().join("RESTORE_COMPLETE.json").exists());
    assert_eq!(siblings(server, "_pre_restore_").len(), 1);
    assert!(siblings(server, "_restore_pending").is_empty());
}

#[tokio::test]
async fn restore_stages_then_swaps_in_at_restart_with_every_table_row_user_and_segment() {
    let mut server = TestServer::start();
    let out = tempfile::tempdir().unwrap();
    let (expected, archive) = staged_restore(&server, out.path()).await;
    server.restart();
    assert_restored(&server, &expected, &archive).await;
    // The archived config is put beside the running one, not applied.
    let restored = server.dir.path().join("server.toml.restored");
    // The archived config had its secrets' values removed, and only the server's user may
    // read the copy.
    let loaded = String::from_utf8(std::fs::read(server.config_path()).unwrap()).unwrap();
    let password_line = format!("root_password = \"{}\"", server.options.root_password);
    assert_eq!(
        String::from_utf8(std::fs::read(&restored).unwrap()).unwrap(),
        loaded.replace(
            &password_line,
            "root_password = \"<removed from the backup>\""
        )
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&restored).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "server.toml.restored mode {mode:o}");
    }
    assert!(server.log().contains("server.toml.restored"));
    // The backup job captured in the archive does not come back as interrupted.
    let client = server.root().await;
    let backup_status: String = client
        .query_one(
            "SELECT status FROM system.jobs WHERE job_type = 'backup'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(backup_status, "Completed");
    // The previous data is kept for a manual rollback and still holds the later changes.
    let previous = server
        .dir
        .path()
        .join(&siblings(&server, "_pre_restore_")[0]);
    assert!(previous.join("rocksdb/CURRENT").is_file());
    // Restored tables keep working: writes, flushes and another restart.
    client
        .batch_execute("INSERT INTO app.items VALUES (424242, 'after restore', 1)")
        .await
        .unwrap();
    drop(client);
    server.restart();
    let client = server.root().await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM app.items WHERE id = 424242", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn hostile_and_damaged_archives_fail_the_job_and_leave_the_database_untouched() {
    let server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    let out = tempfile::tempdir().unwrap();
    let good = out.path().join("good.tar.gz");
    backup(&client, &good).await;
    let hostile = out.path().join("hostile");
    let status = Command::new("python3")
        .arg(common::repo_root().join("tests/tools/hostile_archives.py"))
        .arg(&good)
        .arg(&hostile)
        .status()
        .unwrap();
    assert!(status.success());
    let before = read_state(&client).await;
    let cases = [
        ("truncated", "truncated"),
        ("flipped_byte", "damaged"),
        ("manifest_tampered", "checksum mismatch"),
        ("content_mismatch", "does not match its SHA-256"),
        ("missing_file", "missing from the archive"),
        ("extra_file", "not listed in MANIFEST.json"),
        ("dotdot_entry", "'..'"),
        ("absolute_entry", "absolute path"),
        ("symlink_entry", "symbolic link"),
        ("hardlink_entry", "hard link"),
        ("device_entry", "character device"),
        ("outside_layout", "outside the backup layout"),
        ("not_gzip", "not a gzip file"),
        ("empty", "is empty"),
        ("foreign", "not a KalamDB backup"),
        // Declares a petabyte: refused before anything is extracted.
        ("huge_declared", "not enough free disk space"),
        // 16 MiB extended headers in a few KiB of gzip: refused by their declared size.
        ("huge_pax_header", "pax header of"),
        ("long_name_bomb", "GNU long-name header of"),
        ("pax_size_record", "pax 'size' record"),
        // Headers that understate the archive: caught while streaming, not at the end.
        ("size_lie", "more than the 1 bytes its header declares"),
        ("count_lie", "1 files"),
    ];
    for (name, needle) in cases {
        let archive = hostile.join(format!("{name}.tar.gz"));
        let (_, status, msg) = restore(&client, &archive).await;
        assert_eq!(status, "Failed", "{name}: {msg}");
        assert!(
            msg.contains(needle)
                || (name == "flipped_byte" && msg.contains("SHA-256"))
                // Its bytes also exceed what the header declares, which is caught first.
                || (name == "extra_file" && msg.contains("more than the")),
            "{name}: {msg}"
        );
        assert!(!pending_dir(&server).exists(), "{name}: nothing is staged");
        assert!(siblings(&server, "_restore_pending").is_empty(), "{name}");
    }
    assert!(!Path::new("/tmp/kalamdb-absolute-entry.txt").exists());
    assert!(!server.dir.path().join("escaped.txt").exists());
    assert_eq!(read_state(&client).await, before);
    // A good archive still restores after all that.
    let (_, status, msg) = restore(&client, &good).await;
    assert_eq!(status, "Completed", "{msg}");
}

#[tokio::test]
async fn kill_9_during_staging_publishes_nothing_and_start_cleans_up() {
    let mut server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("a.tar.gz");
    backup(&client, &archive).await;
    let before = read_state(&client).await;
    drop(client);
    server.stop();
    // The fault point aborts the process once the job has written its first bytes.
    server.options.env = vec![("KALAMDB_FAULT".into(), "restore_during_staging".into())];
    server.restart_after_crash();
    let client = server.root().await;
    let _ = client
        .batch_execute(&format!("RESTORE DATABASE FROM '{}'", archive.display()))
        .await;
    let mut child = server.child.take().unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert!(!status.success(), "the fault point crashed the server");
    assert!(
        !siblings(&server, "_restore_pending.tmp-").is_empty(),
        "a staging directory was left"
    );
    assert!(!pending_dir(&server).exists());
    server.options.env.clear();
    server.restart_after_crash();
    assert!(
        siblings(&server, "_restore_pending").is_empty(),
        "start removes the staging leftovers"
    );
    let client = server.root().await;
    assert_eq!(read_state(&client).await, before);
    let row = client
        .query_one(
            "SELECT status, message FROM system.jobs WHERE job_type = 'restore'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Failed");
    assert_eq!(
        row.get::<_, String>(1),
        "server stopped while the job was running"
    );
}

#[tokio::test]
async fn a_crash_at_each_step_of_the_startup_swap_is_completed_by_the_next_start() {
    for point in [
        "restore_swap_after_config",
        "restore_swap_after_exchange",
        "restore_swap_after_aside",
    ] {
        let mut server = TestServer::start();
        let out = tempfile::tempdir().unwrap();
        let (expected, archive) = staged_restore(&server, out.path()).await;
        server.stop();
        server.options.env = vec![("KALAMDB_FAULT".into(), point.into())];
        let mut child = server.spawn();
        let status = wait_with_timeout(&mut child, Duration::from_secs(30));
        assert!(
            !status.success(),
            "{point}: the fault point crashed the start"
        );
        assert!(server.log().contains(point), "{point}: {}", server.log());
        server.options.env.clear();
        server.restart_after_crash();
        assert_restored(&server, &expected, &archive).await;
    }
}

#[tokio::test]
async fn a_pending_directory_without_its_marker_stops_the_start() {
    let mut server = TestServer::start();
    server.stop();
    let pending = pending_dir(&server);
    std::fs::create_dir_all(pending.join("rocksdb")).unwrap();
    let (status, log) = common::run_to_exit(
        server.dir.path(),
        &server.config_path(),
        Duration::from_secs(30),
    );
    assert!(!status.success());
    assert!(log.contains("no restore marker"), "{log}");
    assert!(pending.exists(), "an operator's directory is not deleted");
}

#[tokio::test]
async fn a_restore_waits_for_a_running_backup() {
    let server = TestServer::start_with(ServerOptions::default());
    let client = server.root().await;
    populate_app(&client).await;
    let out = tempfile::tempdir().unwrap();
    let first = out.path().join("first.tar.gz");
    backup(&client, &first).await;
    // A large file under snapshots/ makes the second backup take a while.
    common::plant_bulk_file(&server, 200);
    let backup_job: String = client
        .query_one(
            &format!(
                "BACKUP DATABASE TO '{}'",
                out.path().join("second.tar.gz").display()
            ),
            &[],
        )
        .await
        .unwrap()
        .get("job_id");
    let (restore_job, status, msg) = restore(&client, &first).await;
    assert_eq!(status, "Completed", "{msg}");
    assert_eq!(wait_for_job(&client, &backup_job).await.0, "Completed");
    let ordered: bool = client
        .query_one(
            "SELECT r.started_at >= b.finished_at FROM system.jobs b, system.jobs r \
             WHERE b.job_id = $1 AND r.job_id = $2",
            &[&backup_job, &restore_job],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        ordered,
        "the restore started only after the backup finished"
    );
}
