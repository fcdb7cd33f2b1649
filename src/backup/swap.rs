//! The start-up half of RESTORE: swapping a staged restore in before anything is opened.
//!
//! Every step is a rename, and each state between steps is recognisable, so a crash at any
//! point is finished by the next start and a server never opens a half-swapped directory:
//!
//! 1. `<data>_restore_pending/` holds a complete restore (its marker says so). The archived
//!    `server.toml` is copied next to the config as `server.toml.restored`.
//! 2. The pending and live directories are exchanged in one `renameat2(RENAME_EXCHANGE)`: the
//!    data path now holds the restored data (with its marker) and the pending path the old data.
//! 3. The old data (the pending path without a marker, while the data path has one) is renamed
//!    to `<data>_pre_restore_<timestamp>/`.
//! 4. Once the store is open, [`finish_restore`] records the restore in `system.jobs` and
//!    removes the marker.

use std::path::{Path, PathBuf};

use super::{ARCHIVED_CONFIG, RestoreMarker, exchange, fsync_dir, pending_dir, staging_prefix};
use crate::fault::crash_point;
use crate::storage::{Command, JobRecord, JobStatus, StorageResult, Store, now_micros};

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SwapError {
    let context = context.into();
    move |source| SwapError::Io { context, source }
}

/// A restore that was swapped in and still needs [`finish_restore`].
#[derive(Debug)]
pub struct SwappedRestore {
    pub marker: RestoreMarker,
    /// Where the previous data went, when this start moved it.
    pub previous: Option<PathBuf>,
}

/// Prepares the data directory at `data_path` before it is opened: removes interrupted
/// stagings, swaps in a pending restore, and prunes old pre-restore directories.
pub fn prepare_data_dir(
    data_path: &Path,
    config_path: Option<&Path>,
    keep_pre_restore: usize,
) -> Result<Option<SwappedRestore>, SwapError> {
    let data =
        std::path::absolute(data_path).map_err(io(format!("resolving {}", data_path.display())))?;
    let data = match std::fs::canonicalize(&data) {
        Ok(real) => real,
        Err(_) => data,
    };
    let Some(parent) = data.parent().filter(|p| p.is_dir()) else {
        return Ok(None);
    };
    remove_interrupted_stagings(&data)?;
    // Keep a second server away while directories move: its lock file is inside `data`.
    let _lock = lock_existing(&data)?;
    let pending = pending_dir(&data);
    let mut previous = None;
    if pending.exists() {
        match RestoreMarker::read(&pending) {
            Ok(marker) => {
                tracing::info!(
                    pending = %pending.display(),
                    archive = marker.archive_path,
                    job_id = marker.restore_job_id,
                    "a staged restore is pending: swapping it in"
                );
                restore_archived_config(&pending, &data, config_path)?;
                crash_point("restore_swap_after_config");
                if data.exists() {
                    exchange(&pending, &data).map_err(io(format!(
                        "exchanging {} and {}",
                        pending.display(),
                        data.display()
                    )))?;
                } else {
                    std::fs::rename(&pending, &data)
                        .map_err(io(format!("renaming {}", pending.display())))?;
                }
                fsync_dir(parent).map_err(io(format!("syncing {}", parent.display())))?;
                crash_point("restore_swap_after_exchange");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !RestoreMarker::path(&data).exists() {
                    return Err(SwapError::Refused(format!(
                        "{} exists but has no restore marker, so it is not a complete staged restore; \
                         remove it (or move it away) and start again",
                        pending.display()
                    )));
                }
            }
            Err(e) => {
                return Err(SwapError::Refused(format!(
                    "the restore marker in {} cannot be read ({e}); remove the directory and run RESTORE again",
                    pending.display()
                )));
            }
        }
    }
    let marker = match RestoreMarker::read(&data) {
        Ok(marker) => marker,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            prune_pre_restore(&data, keep_pre_restore)?;
            return Ok(None);
        }
        Err(e) => {
            return Err(SwapError::Refused(format!(
                "the restore marker in {} cannot be read: {e}",
                data.display()
            )));
        }
    };
    if pending.exists() {
        // The old data, exchanged out by step 2.
        let aside = pre_restore_dir(&data);
        std::fs::rename(&pending, &aside).map_err(io(format!(
            "moving the previous data {} to {}",
            pending.display(),
            aside.display()
        )))?;
        fsync_dir(parent).map_err(io(format!("syncing {}", parent.display())))?;
        tracing::info!(previous = %aside.display(), "the previous data directory was kept");
        crash_point("restore_swap_after_aside");
        previous = Some(aside);
    }
    prune_pre_restore(&data, keep_pre_restore)?;
    tracing::info!(
        data = %data.display(),
        archive = marker.archive_path,
        backup_job_id = marker.backup_job_id,
        "restored data is in place"
    );
    Ok(Some(SwappedRestore { marker, previous }))
}

/// Records the restore in the restored database's `system.jobs` and removes the marker.
/// Idempotent: a crash before the marker is gone repeats it at the next start.
pub fn finish_restore(store: &Store, swapped: &SwappedRestore) -> StorageResult<()> {
    let marker = &swapped.marker;
    let now = now_micros();
    let previous = match &swapped.previous {
        Some(path) => format!("the previous data directory was kept as {}", path.display()),
        None => "the previous data directory was kept beside it (*_pre_restore_*)".into(),
    };
    let staged_at = chrono::DateTime::parse_from_rfc3339(&marker.staged_at)
        .map(|t| t.timestamp_micros())
        .unwrap_or(now);
    let mut commands = vec![Command::PutJob(JobRecord {
        job_id: marker.restore_job_id.clone(),
        job_type: "restore".into(),
        status: JobStatus::Completed,
        parameters: serde_json::json!({ "path": marker.archive_path }).to_string(),
        message: Some(format!(
            "Restored from '{}' (backup {} taken {}, {} files): swapped in at server start; {previous}",
            marker.archive_path, marker.backup_job_id, marker.backup_created_at, marker.files
        )),
        created_by: marker.created_by.clone(),
        created_at: staged_at,
        started_at: Some(staged_at),
        finished_at: Some(now),
        updated_at: now,
        bytes_total: Some(marker.total_bytes),
        bytes_done: marker.total_bytes,
    })];
    // The archive captured its own backup job while it was running.
    if let Some(mut backup) = store.job(&marker.backup_job_id)?
        && !backup.status.is_finished()
    {
        backup.status = JobStatus::Completed;
        backup.message = Some(format!(
            "Backup archive '{}' written; this database was restored from it",
            marker.archive_path
        ));
        backup.finished_at = Some(now);
        backup.updated_at = now;
        commands.push(Command::PutJob(backup));
    }
    // Jobs the archive caught mid-run did not finish in this database's history. Queued
    // backups and restores are not resumed either: a restore would loop.
    for mut job in store.jobs()? {
        if job.job_id == marker.backup_job_id || job.job_id == marker.restore_job_id {
            continue;
        }
        let stale = match job.status {
            JobStatus::Running => true,
            JobStatus::Queued => matches!(job.job_type.as_str(), "backup" | "restore"),
            _ => false,
        };
        if stale {
            job.message = Some(format!(
                "interrupted: the backup this database was restored from was taken while the job was {}",
                job.status.as_str().to_lowercase()
            ));
            job.status = JobStatus::Failed;
            job.finished_at = Some(now);
            job.updated_at = now;
            commands.push(Command::PutJob(job));
        }
    }
    store.apply(&Command::Batch(commands))?;
    let root = store.dir().root();
    for leftover in [RestoreMarker::path(root), root.join(ARCHIVED_CONFIG)] {
        match std::fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(crate::storage::StorageError::io(
                    format!("removing {}", leftover.display()),
                    e,
                ));
            }
        }
    }
    fsync_dir(root)
        .map_err(|e| crate::storage::StorageError::io(format!("syncing {}", root.display()), e))?;
    tracing::info!(
        job_id = marker.restore_job_id,
        archive = marker.archive_path,
        "restore complete: recorded in system.jobs"
    );
    Ok(())
}

/// `server.toml.restored` next to the config the server loaded (or beside the data directory).
pub fn restored_config_path(data: &Path, config_path: Option<&Path>) -> PathBuf {
    let dir = match config_path.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => data.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    dir.join("server.toml.restored")
}

fn restore_archived_config(
    pending: &Path,
    data: &Path,
    config_path: Option<&Path>,
) -> Result<(), SwapError> {
    let archived = pending.join(ARCHIVED_CONFIG);
    if !archived.exists() {
        return Ok(());
    }
    let target = restored_config_path(data, config_path);
    let bytes = std::fs::read(&archived).map_err(io(format!("reading {}", archived.display())))?;
    crate::durable::write_file(&target, &bytes, Some(0o600))
        .map_err(io(format!("writing {}", target.display())))?;
    tracing::warn!(
        file = %target.display(),
        "the backup's server.toml was restored as this file; it is NOT applied: compare it with the running config and apply changes by hand"
    );
    Ok(())
}

fn lock_existing(data: &Path) -> Result<Option<std::fs::File>, SwapError> {
    if !data.is_dir() {
        return Ok(None);
    }
    let lock_path = data.join(crate::storage::LOCK_FILE);
    let file = match std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
    {
        Ok(file) => file,
        Err(e) => return Err(io(format!("opening {}", lock_path.display()))(e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(SwapError::Refused(format!(
            "the data directory {} is in use by another KalamDB server (lock file {})",
            data.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(io(format!("locking {}", lock_path.display()))(e))
        }
    }
}

fn siblings_with_prefix(data: &Path, prefix: &str) -> Result<Vec<PathBuf>, SwapError> {
    let parent = data.parent().unwrap_or(Path::new("/"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(parent).map_err(io(format!("listing {}", parent.display())))? {
        let entry = entry.map_err(io(format!("listing {}", parent.display())))?;
        let path = entry.path();
        if path.to_string_lossy().starts_with(prefix) && path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn remove_interrupted_stagings(data: &Path) -> Result<(), SwapError> {
    for dir in siblings_with_prefix(data, &staging_prefix(data))? {
        tracing::info!(dir = %dir.display(), "removing the staging directory of an interrupted restore");
        std::fs::remove_dir_all(&dir).map_err(io(format!("removing {}", dir.display())))?;
    }
    Ok(())
}

fn pre_restore_prefix(data: &Path) -> String {
    format!("{}_pre_restore_", data.display())
}

fn pre_restore_dir(data: &Path) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
    PathBuf::from(format!("{}{stamp}", pre_restore_prefix(data)))
}

/// Keeps the newest `keep` pre-restore directories.
fn prune_pre_restore(data: &Path, keep: usize) -> Result<(), SwapError> {
    let all = siblings_with_prefix(data, &pre_restore_prefix(data))?;
    let excess = all.len().saturating_sub(keep);
    for dir in &all[..excess] {
        tracing::info!(dir = %dir.display(), "removing an old pre-restore data directory ([backup] keep_pre_restore)");
        std::fs::remove_dir_all(dir).map_err(io(format!("removing {}", dir.display())))?;
    }
    Ok(())
}
