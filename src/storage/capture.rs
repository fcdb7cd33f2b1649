//! Consistent captures of the data directory: the file set of a backup point, and the metadata
//! state a cluster snapshot records.
//!
//! Both are taken while holding the apply lock, so no command lands in the middle: the RocksDB
//! checkpoint, the segment manifest and the stream logs' committed lengths all describe the same
//! applied sequence number. Segment and stream files are hard-linked into the capture directory
//! under the same lock, so a later DROP TABLE or eviction cannot delete them before the backup
//! has read them. Stream logs only grow (or are cut back to a committed length that is never
//! below the captured one), so reading a link up to the captured length is exact.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::streams::StreamState;
use super::{
    CF_CATALOG, NamespaceRecord, SegmentRecord, StorageError, StorageResult, Store, TableRecord,
    UserRecord,
};

/// RocksDB copies write-ahead logs smaller than this into the checkpoint instead of flushing
/// memtables, which keeps the write stall of a capture short.
const CHECKPOINT_LOG_SIZE_FOR_FLUSH: u64 = 64 * 1024 * 1024;

/// How many times a checkpoint is tried before its error fails the backup. RocksDB lists the
/// write-ahead logs and then reads each one's size; a log that a purge of obsolete files removes
/// in between fails the checkpoint with an I/O error ("while stat a file for size", seen once
/// in CI right after the flush above). Listing again no longer finds the removed log.
const CHECKPOINT_ATTEMPTS: u32 = 3;

/// One file of a backup point.
#[derive(Debug, Clone)]
pub struct CapturedFile {
    /// Path relative to the data directory, with `/` separators (`rocksdb/000012.sst`).
    pub relative: String,
    /// Where to read it (a hard link or checkpoint file inside the capture directory).
    pub source: PathBuf,
    /// Bytes that belong to the backup point (a stream log may have grown since).
    pub len: u64,
}

/// The files that make up the database at one applied sequence number.
#[derive(Debug)]
pub struct BackupPoint {
    pub applied_seq: u64,
    /// What the replicated state machine recorded with that sequence number (cluster mode).
    pub machine_state: Option<Vec<u8>>,
    pub files: Vec<CapturedFile>,
    /// How long writes were held back while the point was captured.
    pub stall: std::time::Duration,
}

impl BackupPoint {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }
}

/// The catalog, users and table manifests at one applied sequence number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataSnapshot {
    pub applied_seq: u64,
    pub namespaces: Vec<NamespaceRecord>,
    pub tables: Vec<TableRecord>,
    pub segments: Vec<SegmentRecord>,
    pub streams: Vec<StreamState>,
    pub users: Vec<UserRecord>,
}

impl Store {
    /// Captures a backup point into `dest` (which must not exist and must be on the data
    /// directory's file system): a RocksDB checkpoint plus hard links to every segment, stream
    /// log and snapshot file that point references.
    pub fn capture_backup_point(&self, dest: &Path) -> StorageResult<BackupPoint> {
        let io = |what: String| move |e| StorageError::io(what, e);
        std::fs::create_dir_all(dest).map_err(io(format!("creating {}", dest.display())))?;
        // A small column family written by every batch (`meta`) pins write-ahead logs until
        // `MAX_TOTAL_WAL_BYTES`, so without a flush the checkpoint would carry up to that much
        // log whose rows are already in SST files, and a restore would replay it twice (when
        // staging checks the catalog, and when the server starts). Flushed outside the apply
        // lock: writes continue, and only what they add meanwhile lands in the checkpoint's log.
        self.flush()?;
        let _snapshots = self.snapshots_lock.lock().expect("snapshots lock");
        let started = std::time::Instant::now();
        let applied = self.apply_lock.lock().expect("apply lock poisoned");
        let checkpoint_dir = dest.join("rocksdb");
        self.create_checkpoint(&checkpoint_dir)?;
        let mut files = Vec::new();
        for segment in self.all_segments()? {
            let relative = format!("storage/{}", segment.file);
            let source = self.segment_path(&segment);
            let len = link_into(&source, dest, &relative)?;
            files.push(CapturedFile {
                source: dest.join(&relative),
                relative,
                len,
            });
        }
        for state in self.scan_records::<StreamState>(CF_CATALOG, b"str\0")? {
            for log in state.files {
                let relative = format!("streams/{}", log.file);
                link_into(&self.streams_root.join(&log.file), dest, &relative)?;
                files.push(CapturedFile {
                    source: dest.join(&relative),
                    relative,
                    len: log.len,
                });
            }
        }
        let snapshots = self.dir.snapshots();
        for (relative, source) in list_files(&snapshots, "snapshots")? {
            // A Raft snapshot is a copy of the state the capture already holds.
            if relative.starts_with("snapshots/raft/") {
                continue;
            }
            let len = link_into(&source, dest, &relative)?;
            files.push(CapturedFile {
                source: dest.join(&relative),
                relative,
                len,
            });
        }
        let applied_seq = *applied;
        let machine_state = self.replicated_machine_state()?;
        drop(applied);
        let stall = started.elapsed();
        for (relative, source) in list_files(&checkpoint_dir, "rocksdb")? {
            let len = std::fs::metadata(&source)
                .map_err(io(format!("reading {}", source.display())))?
                .len();
            files.push(CapturedFile {
                relative,
                source,
                len,
            });
        }
        files.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(BackupPoint {
            applied_seq,
            machine_state,
            files,
            stall,
        })
    }

    /// Writes a RocksDB checkpoint to `dir`, trying again when a file it listed vanished before
    /// it was read (see [`CHECKPOINT_ATTEMPTS`]).
    fn create_checkpoint(&self, dir: &Path) -> StorageResult<()> {
        retrying_checkpoint(dir, |dir| {
            rocksdb::checkpoint::Checkpoint::new(&self.db).and_then(|checkpoint| {
                checkpoint.create_checkpoint_with_log_size(dir, CHECKPOINT_LOG_SIZE_FOR_FLUSH)
            })
        })
    }

    /// Reads the metadata state at the current applied sequence number. `write` runs with the
    /// snapshot directory locked against a concurrent backup capture.
    pub fn with_metadata_snapshot<T>(
        &self,
        write: impl FnOnce(&MetadataSnapshot) -> StorageResult<T>,
    ) -> StorageResult<T> {
        let _snapshots = self.snapshots_lock.lock().expect("snapshots lock");
        let snapshot = {
            let applied = self.apply_lock.lock().expect("apply lock poisoned");
            MetadataSnapshot {
                applied_seq: *applied,
                namespaces: self.namespaces()?,
                tables: self.tables()?,
                segments: self.all_segments()?,
                streams: self.scan_records(CF_CATALOG, b"str\0")?,
                users: self.users()?,
            }
        };
        write(&snapshot)
    }
}

/// Hard-links `source` to `dest/relative` and returns its length.
fn link_into(source: &Path, dest: &Path, relative: &str) -> StorageResult<u64> {
    let target = dest.join(relative);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| StorageError::io(format!("creating {}", parent.display()), e))?;
    }
    std::fs::hard_link(source, &target).map_err(|e| {
        StorageError::io(
            format!("linking {} into the backup point", source.display()),
            e,
        )
    })?;
    std::fs::metadata(&target)
        .map(|m| m.len())
        .map_err(|e| StorageError::io(format!("reading {}", target.display()), e))
}

/// Every regular file under `root`, as (`prefix/relative path`, absolute path), skipping
/// temporary files that are still being written.
pub fn list_files(root: &Path, prefix: &str) -> StorageResult<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut pending = vec![(root.to_path_buf(), prefix.to_owned())];
    while let Some((dir, relative)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io(format!("listing {}", dir.display()), e)),
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| StorageError::io(format!("listing {}", dir.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp") || name.ends_with(".tmp") {
                continue;
            }
            let kind = entry
                .file_type()
                .map_err(|e| StorageError::io(format!("reading {}", entry.path().display()), e))?;
            let child = format!("{relative}/{name}");
            if kind.is_dir() {
                pending.push((entry.path(), child));
            } else if kind.is_file() {
                out.push((child, entry.path()));
            }
        }
    }
    Ok(out)
}

/// Runs `attempt` (which writes a checkpoint to `dir`) up to [`CHECKPOINT_ATTEMPTS`] times
/// while it fails with an I/O error, clearing what a failed attempt left.
fn retrying_checkpoint(
    dir: &Path,
    mut attempt: impl FnMut(&Path) -> Result<(), rocksdb::Error>,
) -> StorageResult<()> {
    let mut tried = 1;
    loop {
        match attempt(dir) {
            Ok(()) => return Ok(()),
            Err(error)
                if error.kind() == rocksdb::ErrorKind::IOError && tried < CHECKPOINT_ATTEMPTS =>
            {
                tracing::warn!(attempt = tried, %error, "checkpoint failed on a file that changed while it was taken; trying again");
                // RocksDB builds the checkpoint in `<dir>.tmp` and removes that on failure;
                // whatever a failed attempt left must not make the next one fail on
                // "directory exists".
                let mut scratch = dir.as_os_str().to_owned();
                scratch.push(".tmp");
                for leftover in [dir, Path::new(&scratch)] {
                    remove_dir_if_present(leftover)?;
                }
                tried += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

fn remove_dir_if_present(dir: &Path) -> StorageResult<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StorageError::io(format!("removing {}", dir.display()), e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Durability;

    #[test]
    fn a_log_that_cannot_be_read_fails_the_capture_after_retries_and_a_later_capture_succeeds() {
        let tmp = tempfile::tempdir().unwrap();
        let durability = Durability {
            sync_writes: false,
            wal_enabled: true,
        };
        let store = Store::open(&tmp.path().join("data"), durability).unwrap();
        // RocksDB lists this as a write-ahead log and then cannot read its size: what it meets
        // when a purge removes a log between the two. Numbered above any real log, so no purge
        // of obsolete logs takes it away.
        let vanished = store.dir.rocksdb().join("999999.log");
        std::os::unix::fs::symlink(tmp.path().join("gone"), &vanished).unwrap();
        let dest = tmp.path().join("capture");
        let error = store.capture_backup_point(&dest).unwrap_err().to_string();
        // Each retry got as far as the first attempt: no leftover made it fail earlier.
        assert!(error.contains("while stat a file for size"), "{error}");
        assert!(!dest.join("rocksdb").exists());
        std::fs::remove_file(&vanished).unwrap();
        let point = store.capture_backup_point(&dest).unwrap();
        assert!(point.files.iter().any(|f| f.relative == "rocksdb/CURRENT"));
    }

    #[test]
    fn a_checkpoint_that_fails_on_a_log_removed_meanwhile_succeeds_on_the_next_attempt() {
        let tmp = tempfile::tempdir().unwrap();
        let durability = Durability {
            sync_writes: false,
            wal_enabled: true,
        };
        let store = Store::open(&tmp.path().join("data"), durability).unwrap();
        let vanishing = store.dir.rocksdb().join("999999.log");
        std::os::unix::fs::symlink(tmp.path().join("gone"), &vanishing).unwrap();
        let dir = tmp.path().join("checkpoint");
        let mut attempts = 0;
        retrying_checkpoint(&dir, |dir| {
            attempts += 1;
            let result = rocksdb::checkpoint::Checkpoint::new(&store.db)
                .and_then(|c| c.create_checkpoint(dir));
            // Gone by the next attempt, as a purged log is.
            let _ = std::fs::remove_file(&vanishing);
            result
        })
        .unwrap();
        assert_eq!(attempts, 2);
        assert!(dir.join("CURRENT").exists());
    }
}
