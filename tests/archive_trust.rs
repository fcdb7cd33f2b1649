//! Archives that come from outside the server: with `[backup] signing_key`, RESTORE and
//! `verify-backup` accept only archives signed with that key; a correctly sealed archive whose
//! catalog names files outside the data directory is never staged; and staging keeps
//! `[backup] min_free_bytes` free.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    ServerOptions, TestServer, populate_app, run_job, verify_backup_with_key, wait_for_job,
};
use tokio_postgres::Client;

const KEY: &str = "a-test-signing-key-0123456789abcdef-0123456789";
const OTHER_KEY: &str = "another-signing-key-fedcba9876543210-fedcba98";

fn with_backup_keys(keys: &str) -> ServerOptions {
    ServerOptions {
        backup: keys.into(),
        ..Default::default()
    }
}

fn signing(key: &str) -> ServerOptions {
    with_backup_keys(&format!("signing_key = \"{key}\""))
}

async fn backup(client: &Client, path: &Path) {
    let (_, status, message) =
        run_job(client, &format!("BACKUP DATABASE TO '{}'", path.display())).await;
    assert_eq!(status, "Completed", "{message}");
}

/// (status, message) of a RESTORE once its job has finished.
async fn restore(client: &Client, path: &Path) -> (String, String) {
    let row = client
        .query_one(&format!("RESTORE DATABASE FROM '{}'", path.display()), &[])
        .await
        .unwrap();
    wait_for_job(client, row.get("job_id")).await
}

/// A backup of the sample application from a fresh server started with `options`.
async fn archive_from(options: ServerOptions, path: &Path) {
    let server = TestServer::start_with(options);
    let client = server.root().await;
    populate_app(&client).await;
    backup(&client, path).await;
}

fn pending_dir(server: &TestServer) -> PathBuf {
    PathBuf::from(format!("{}_restore_pending", server.data_path().display()))
}

/// The bytes of `name` inside a .tar.gz archive.
fn archived_file(archive: &Path, name: &str) -> Option<Vec<u8>> {
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(name) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            return Some(bytes);
        }
    }
    None
}

#[tokio::test]
async fn with_a_signing_key_only_archives_signed_with_it_are_restored_or_verified() {
    let out = tempfile::tempdir().unwrap();
    let unsigned = out.path().join("unsigned.tar.gz");
    let foreign = out.path().join("signed-with-another-key.tar.gz");
    let ours = out.path().join("signed.tar.gz");
    archive_from(ServerOptions::default(), &unsigned).await;
    archive_from(signing(OTHER_KEY), &foreign).await;

    let server = TestServer::start_with(signing(KEY));
    let client = server.root().await;
    populate_app(&client).await;
    backup(&client, &ours).await;

    let (status, message) = restore(&client, &unsigned).await;
    assert_eq!(status, "Failed", "{message}");
    assert!(message.contains("MANIFEST.json is not signed"), "{message}");
    let (status, message) = restore(&client, &foreign).await;
    assert_eq!(status, "Failed", "{message}");
    assert!(message.contains("signed with another key"), "{message}");
    assert!(!pending_dir(&server).exists());
    let (status, message) = restore(&client, &ours).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(pending_dir(&server).exists());

    // The key signs archives but never travels inside one.
    let archived_config = archived_file(&ours, "server.toml").expect("server.toml is archived");
    let archived_config = String::from_utf8(archived_config).unwrap();
    assert!(!archived_config.contains(KEY), "{archived_config}");
    assert!(
        archived_config.contains("signing_key = \"<removed from the backup>\""),
        "{archived_config}"
    );

    let (ok, report) = verify_backup_with_key(&ours, Some(KEY));
    assert!(ok, "{report}");
    assert!(
        report.contains("verified with [backup] signing_key"),
        "{report}"
    );
    let (ok, report) = verify_backup_with_key(&ours, None);
    assert!(ok, "{report}");
    assert!(report.contains("not checked"), "{report}");
    let (ok, report) = verify_backup_with_key(&unsigned, Some(KEY));
    assert!(!ok && report.contains("not signed"), "{report}");
    let (ok, report) = verify_backup_with_key(&foreign, Some(KEY));
    assert!(!ok && report.contains("another key"), "{report}");
    let (ok, report) = verify_backup_with_key(&unsigned, None);
    assert!(ok && report.contains("not signed"), "{report}");
}

#[tokio::test]
async fn without_a_signing_key_a_restore_is_staged_with_a_warning() {
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("unsigned.tar.gz");
    let server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    backup(&client, &archive).await;
    let (status, message) = restore(&client, &archive).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(
        server.log().contains("whose origin is not checked"),
        "{}",
        server.log()
    );
}

#[test]
fn a_signing_key_shorter_than_32_bytes_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kalamdb"))
        .current_dir(dir.path())
        .arg("verify-backup")
        .arg(dir.path().join("none.tar.gz"))
        .env("KALAMDB_BACKUP_SIGNING_KEY", "short")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("signing_key must be at least 32 bytes"),
        "{stderr}"
    );
}

/// Extracts `archive`'s `data/` into `into`; with `segment_file`, points the first segment
/// record of its catalog at that file. Then writes a correctly sealed (unsigned) archive of the
/// result to `crafted`: what someone who can rewrite an archive, but holds no key, can make.
fn repack(archive: &Path, into: &Path, segment_file: Option<&str>, crafted: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(archive).unwrap());
    for entry in tar::Archive::new(gz).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().starts_with("data") {
            entry.unpack_in(into).unwrap();
        }
    }
    if let Some(file) = segment_file {
        let rocksdb_dir = into.join("data/rocksdb");
        let options = rocksdb::Options::default();
        let families = rocksdb::DB::list_cf(&options, &rocksdb_dir).unwrap();
        let db = rocksdb::DB::open_cf(&options, &rocksdb_dir, &families).unwrap();
        let catalog = db.cf_handle("catalog").unwrap();
        let (key, value) = db
            .prefix_iterator_cf(catalog, b"seg\0")
            .next()
            .expect("the archive has a segment")
            .unwrap();
        assert!(key.starts_with(b"seg\0"));
        let mut record: serde_json::Value = serde_json::from_slice(&value).unwrap();
        record["file"] = file.into();
        db.put_cf(catalog, &key, serde_json::to_vec(&record).unwrap())
            .unwrap();
        db.flush_cf(catalog).unwrap();
    }
    let status = Command::new("python3")
        .arg(common::repo_root().join("tests/tools/hostile_archives.py"))
        .arg("--repack")
        .arg(archive)
        .arg(into.join("data"))
        .arg(crafted)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_catalog_naming_files_outside_the_data_directory_is_never_staged() {
    let out = tempfile::tempdir().unwrap();
    let good = out.path().join("good.tar.gz");
    let server = TestServer::start();
    let client = server.root().await;
    populate_app(&client).await;
    backup(&client, &good).await;
    let cases = [
        ("dotdot", "../../../kalamdb-catalog-escape.parquet", "'..'"),
        (
            "absolute",
            "/tmp/kalamdb-catalog-absolute.parquet",
            "absolute",
        ),
    ];
    for (name, file, why) in cases {
        let crafted = out.path().join(format!("{name}.tar.gz"));
        repack(&good, &out.path().join(name), Some(file), &crafted);
        let (status, message) = restore(&client, &crafted).await;
        assert_eq!(status, "Failed", "{name}: {message}");
        assert!(
            message.contains("the archive's catalog is unsafe")
                && message.contains(file)
                && message.contains(why),
            "{name}: {message}"
        );
        assert!(!pending_dir(&server).exists(), "{name}: nothing is staged");
    }
    // Repacked the same way with its catalog untouched, it restores: what was refused is the
    // file name, not the repacking.
    let repacked = out.path().join("repacked.tar.gz");
    repack(&good, &out.path().join("untouched"), None, &repacked);
    let (status, message) = restore(&client, &repacked).await;
    assert_eq!(status, "Completed", "{message}");
}

#[tokio::test]
async fn staging_keeps_min_free_bytes_free() {
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("good.tar.gz");
    // More than any disk: the reserve alone makes staging impossible.
    let server = TestServer::start_with(with_backup_keys("min_free_bytes = 1000000000000000000"));
    let client = server.root().await;
    populate_app(&client).await;
    backup(&client, &archive).await;
    let (status, message) = restore(&client, &archive).await;
    assert_eq!(status, "Failed", "{message}");
    assert!(
        message.contains("not enough free disk space") && message.contains("min_free_bytes"),
        "{message}"
    );
    assert!(!pending_dir(&server).exists());
}
