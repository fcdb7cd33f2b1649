//! CLUSTER SNAPSHOT: the metadata state (catalog, users, table manifests) at one applied
//! sequence number, written to `snapshots/<snapshot-id>/snapshot.json` in the data directory.
//!
//! The directory is built under a temporary name and renamed into place, so a snapshot is
//! either complete or absent; the file is sealed with a SHA-256 like the backup manifest. Only
//! the newest `[backup] snapshots_keep` snapshots are kept. Backups archive `snapshots/`.

use std::path::PathBuf;

use super::format;
use crate::storage::{MetadataSnapshot, StorageError, StorageResult, Store};

pub const SNAPSHOT_FILE: &str = "snapshot.json";

#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub snapshot_id: String,
    pub applied_seq: u64,
    pub path: PathBuf,
    pub tables: usize,
    pub users: usize,
    pub bytes: u64,
}

/// Writes a snapshot and prunes old ones; returns what was written.
pub fn take_cluster_snapshot(store: &Store, keep: usize) -> StorageResult<SnapshotInfo> {
    let root = store.dir().snapshots();
    store.with_metadata_snapshot(|metadata: &MetadataSnapshot| {
        let io = |what: String| move |e| StorageError::io(what, e);
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let snapshot_id = format!("snapshot-{:020}-{stamp}", metadata.applied_seq);
        let tmp = root.join(format!(".tmp-{snapshot_id}"));
        let dir = root.join(&snapshot_id);
        std::fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        let sealed = format::seal(metadata);
        let file = tmp.join(SNAPSHOT_FILE);
        crate::durable::write_file(&file, &sealed, None)
            .map_err(io(format!("writing {}", file.display())))?;
        crate::durable::publish_dir(&tmp, &dir)
            .map_err(io(format!("publishing {}", dir.display())))?;
        prune(&root, keep)?;
        Ok(SnapshotInfo {
            snapshot_id,
            applied_seq: metadata.applied_seq,
            path: dir,
            tables: metadata.tables.len(),
            users: metadata.users.len(),
            bytes: sealed.len() as u64,
        })
    })
}

/// Removes all but the newest `keep` snapshots (ids sort by applied sequence, then time), and
/// temporary directories an interrupted snapshot left.
fn prune(root: &std::path::Path, keep: usize) -> StorageResult<()> {
    let mut snapshots = Vec::new();
    let entries = std::fs::read_dir(root)
        .map_err(|e| StorageError::io(format!("listing {}", root.display()), e))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| StorageError::io(format!("listing {}", root.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("snapshot-") {
            snapshots.push(entry.path());
        } else if name.starts_with(".tmp-") {
            // An interrupted snapshot; the lock keeps a running one from being here.
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| StorageError::io(format!("removing {name}"), e))?;
        }
    }
    snapshots.sort();
    let excess = snapshots.len().saturating_sub(keep.max(1));
    for old in &snapshots[..excess] {
        std::fs::remove_dir_all(old)
            .map_err(|e| StorageError::io(format!("removing {}", old.display()), e))?;
    }
    Ok(())
}
