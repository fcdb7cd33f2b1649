//! The file names a catalog records: segment files (relative to `storage/`) and commit-log
//! files (relative to `streams/`). Each must be a plain relative path inside its area. The
//! catalog of a restored archive comes from outside; a crafted one naming `/etc/passwd` or
//! `../../x` as a segment would otherwise have a later flush, DROP TABLE or start-up sweep read,
//! overwrite or delete a host file. Checked when a store opens and before a staged restore is
//! published.

use std::path::{Component, Path};

use rocksdb::{DB, Options};

use super::segments::SegmentRecord;
use super::streams::StreamState;
use super::{CF_CATALOG, COLUMN_FAMILIES, StorageError, StorageResult, cf, records};

/// The deepest file a catalog may name: `<namespace>/<table>/<file>` with room to spare.
const MAX_COMPONENTS: usize = 8;
/// Longer than any name KalamDB writes (identifiers are at most 63 bytes each).
const MAX_NAME_BYTES: usize = 1024;

const SEGMENT_PREFIX: &[u8] = b"seg\0";
const STREAM_PREFIX: &[u8] = b"str\0";

/// Why `name`, recorded as a file under `area`, is not a plain relative path inside it.
pub(super) fn refusal(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return Some("it is too long");
    }
    if name.contains('\0') || name.contains('\\') {
        return Some("it holds a NUL byte or backslash");
    }
    let path = Path::new(name);
    let mut components = 0;
    for component in path.components() {
        match component {
            Component::Normal(_) => components += 1,
            Component::RootDir | Component::Prefix(_) => return Some("it is absolute"),
            Component::ParentDir => return Some("it leaves its directory with '..'"),
            Component::CurDir => return Some("it has a '.' component"),
        }
    }
    if name.ends_with('/') || name.contains("//") || components > MAX_COMPONENTS {
        return Some("it is not a plain file path");
    }
    None
}

fn check(area: &'static str, name: &str) -> StorageResult<()> {
    match refusal(name) {
        None => Ok(()),
        Some(why) => Err(StorageError::Corrupt {
            cf: CF_CATALOG,
            message: format!(
                "the catalog names {area} file {name:?}, which is not a plain path inside {area}/: {why}"
            ),
        }),
    }
}

/// Checks every file name the catalog in `db` records.
pub(super) fn check_catalog(db: &DB) -> StorageResult<()> {
    for item in db.prefix_iterator_cf(cf(db, CF_CATALOG), SEGMENT_PREFIX) {
        let (key, value) = item?;
        if !key.starts_with(SEGMENT_PREFIX) {
            break;
        }
        let segment: SegmentRecord = records::decode(CF_CATALOG, &value)?;
        check("storage", &segment.file)?;
    }
    for item in db.prefix_iterator_cf(cf(db, CF_CATALOG), STREAM_PREFIX) {
        let (key, value) = item?;
        if !key.starts_with(STREAM_PREFIX) {
            break;
        }
        let state: StreamState = records::decode(CF_CATALOG, &value)?;
        for log in &state.files {
            check("streams", &log.file)?;
        }
    }
    Ok(())
}

/// Checks the catalog of a RocksDB directory that no server has open (a staged restore), opening
/// it read-only.
pub fn verify_catalog_at(rocksdb_dir: &Path) -> StorageResult<()> {
    // A backup taken before a column family was added lacks it (the server creates it when it
    // opens the restored store).
    let present = DB::list_cf(&Options::default(), rocksdb_dir)?;
    let families = COLUMN_FAMILIES
        .iter()
        .filter(|name| present.iter().any(|p| p == *name));
    let db = DB::open_cf_for_read_only(&Options::default(), rocksdb_dir, families, false)?;
    check_catalog(&db)
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn only_plain_relative_paths_are_accepted() {
        for good in [
            "app/t/seg-000000000001.parquet",
            "app/events/log-000000000003.kal",
        ] {
            assert_eq!(refusal(good), None, "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "app/../../x",
            "./x",
            "app//x",
            "app/",
            "a\\b",
            "a\0b",
            "a/b/c/d/e/f/g/h/i",
        ] {
            assert!(refusal(bad).is_some(), "{bad:?}");
        }
    }
}
