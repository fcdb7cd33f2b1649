//! The data directory layout and the lock that keeps a second server out of it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{StorageError, StorageResult};

/// Name of the lock file at the root of the data directory. It is not part of backups.
pub const LOCK_FILE: &str = "kalamdb.pid";

/// The directories the spec's archive layout names, relative to the data directory.
pub const LAYOUT: [&str; 4] = ["rocksdb", "storage", "snapshots", "streams"];

/// Where backups capture their point in time (hard links beside the live files). Not part of
/// backups; emptied at every start.
pub const BACKUP_SCRATCH: &str = "backup_tmp";

/// Where bulk loads sort their rows and build the file they ingest. Not part of backups;
/// emptied at every start.
pub const LOAD_SCRATCH: &str = "load_tmp";

/// A data directory whose lock this process holds for as long as the value lives.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    _lock: File,
}

impl DataDir {
    pub fn create_and_lock(root: &Path) -> StorageResult<DataDir> {
        std::fs::create_dir_all(root)
            .map_err(|e| StorageError::io(format!("creating {}", root.display()), e))?;
        // The data directory holds every row and verifier: the server's user alone may read it.
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| StorageError::io(format!("restricting {}", root.display()), e))?;
        let root = std::fs::canonicalize(root)
            .map_err(|e| StorageError::io(format!("resolving {}", root.display()), e))?;
        let lock_path = root.join(LOCK_FILE);
        let mut lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StorageError::io(format!("opening {}", lock_path.display()), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StorageError::Locked(root, lock_path));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StorageError::io(
                    format!("locking {}", lock_path.display()),
                    e,
                ));
            }
        }
        lock.set_len(0)
            .and_then(|()| writeln!(lock, "{}", std::process::id()))
            .map_err(|e| StorageError::io(format!("writing {}", lock_path.display()), e))?;
        // Capture directories of backups, and the sorted runs of loads, that a crash or kill
        // interrupted: nothing in them was published.
        for scratch in [BACKUP_SCRATCH, LOAD_SCRATCH].map(|name| root.join(name)) {
            if scratch.exists() {
                tracing::info!(dir = %scratch.display(), "removing leftover scratch files");
                std::fs::remove_dir_all(&scratch)
                    .map_err(|e| StorageError::io(format!("removing {}", scratch.display()), e))?;
            }
        }
        for sub in LAYOUT {
            let path = root.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| StorageError::io(format!("creating {}", path.display()), e))?;
        }
        Ok(DataDir { root, _lock: lock })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn rocksdb(&self) -> PathBuf {
        self.root.join("rocksdb")
    }

    pub fn storage(&self) -> PathBuf {
        self.root.join("storage")
    }

    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// The capture directory of one backup job.
    pub fn backup_scratch(&self, job_id: &str) -> PathBuf {
        self.root.join(BACKUP_SCRATCH).join(job_id)
    }

    /// The scratch directory of one bulk load.
    pub fn load_scratch(&self, load: u64) -> PathBuf {
        self.root.join(LOAD_SCRATCH).join(load.to_string())
    }

    pub fn streams(&self) -> PathBuf {
        self.root.join("streams")
    }
}
