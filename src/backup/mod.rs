//! Backup and restore: the archive format, the BACKUP and RESTORE jobs, the start-up swap of a
//! staged restore, CLUSTER SNAPSHOT, and the path rules both statements share.
//!
//! A backup captures one applied sequence number (see [`crate::storage::BackupPoint`]) and
//! streams it as a single checksummed `.tar.gz`. A restore never touches the live data: it
//! verifies an archive into a staging directory beside it, publishes that as
//! `<data>_restore_pending/`, and the next start swaps it in ([`swap`]).

mod format;
mod paths;
mod reader;
mod restore;
mod snapshot;
mod swap;
mod writer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use format::{Signature, SigningKey};
pub use paths::{PathError, PathPolicy, PathUse, check_path};
pub use reader::{ArchiveError, CheckedArchive};
pub use restore::{RestoreJob, RestoreParameters};
pub use snapshot::take_cluster_snapshot;
pub use swap::{SwapError, finish_restore, prepare_data_dir};
pub use writer::{BackupJob, BackupParameters, remove_leftovers};

/// Inside a staged restore: the archived `server.toml`, restored next to the config at swap.
const ARCHIVED_CONFIG: &str = "server.toml.archived";
/// Inside a staged restore: written last, so its presence means the directory is complete.
const MARKER_NAME: &str = "RESTORE_COMPLETE.json";

/// The completeness marker of a staged restore, and what the swap records about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreMarker {
    pub restore_job_id: String,
    pub archive_path: String,
    pub backup_job_id: String,
    pub backup_created_at: String,
    pub applied_seq: u64,
    pub files: usize,
    pub total_bytes: u64,
    pub staged_at: String,
    pub created_by: String,
}

impl RestoreMarker {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MARKER_NAME)
    }

    /// Reads and checks the marker in `dir` (NotFound when there is none).
    pub fn read(dir: &Path) -> std::io::Result<RestoreMarker> {
        let bytes = std::fs::read(Self::path(dir))?;
        format::unseal(&bytes, "the restore marker").map_err(std::io::Error::other)
    }

    /// Writes the marker durably: a temporary file, fsync, rename, fsync of the directory.
    fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!("{MARKER_NAME}.tmp"));
        std::fs::write(&tmp, format::seal(self))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, Self::path(dir))?;
        fsync_dir(dir)
    }
}

/// `<data>_restore_pending`: the staged restore the next start swaps in.
pub fn pending_dir(data: &Path) -> PathBuf {
    PathBuf::from(format!("{}_restore_pending", data.display()))
}

/// Staging directories are `<data>_restore_pending.tmp-<job id>`.
fn staging_prefix(data: &Path) -> String {
    format!("{}_restore_pending.tmp-", data.display())
}

pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Makes everything written on `path`'s file system durable (syncfs).
fn sync_filesystem(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(path)?;
    // SAFETY: the descriptor is open for the duration of the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Atomically exchanges two directory entries (renameat2 with RENAME_EXCHANGE).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both paths are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Bytes available to this user on the file system holding `path`.
fn available_space(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `stat` is a valid out-parameter.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// `1.5 GiB`-style sizes for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Reads and checks an archive without restoring it: `kalamdb verify-backup`. With `key`, an
/// archive not signed with it fails.
pub fn verify_archive(
    path: &Path,
    key: Option<&SigningKey>,
) -> Result<CheckedArchive, ArchiveError> {
    reader::read_archive(path, key, &mut reader::DiscardSink, &mut |_| Ok(()))
}
