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

    /// Writes the marker durably (see [`crate::durable`]).
    fn write(&self, dir: &Path) -> std::io::Result<()> {
        crate::durable::write_file(&Self::path(dir), &format::seal(self), None)
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

pub use crate::durable::fsync_dir;
use crate::durable::{available_space, exchange, sync_filesystem};

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
