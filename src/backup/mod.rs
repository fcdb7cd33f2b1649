//! Backup and restore: the archive format, the BACKUP, RESTORE and VERIFY BACKUP jobs, the
//! start-up swap of a staged restore, CLUSTER SNAPSHOT, and the path rules the statements share.
//!
//! A backup captures one applied sequence number (see [`crate::storage::BackupPoint`]) and
//! streams it as a single checksummed `.tar.gz`. A restore never touches the live data: it
//! verifies an archive into a staging directory beside it, publishes that as
//! `<data>_restore_pending/`, and the next start swaps it in ([`swap`]).

mod chain;
mod format;
mod incremental;
mod location;
mod members;
mod paths;
mod publish;
mod reader;
mod remote;
mod restore;
mod schedule;
mod snapshot;
mod swap;
mod verify;
mod writer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use chain::CheckedChain;
pub use format::{AreaTotal, BaseArchive, Manifest, Signature, SigningKey};
pub use location::ArchiveLocation;
pub use paths::{PathError, PathPolicy, PathUse, check_path};
pub use publish::remove_leftovers;
pub use reader::{ArchiveError, CheckedArchive};
pub use remote::{is_url as is_remote_url, resolve as resolve_remote};
pub use restore::{RestoreJob, RestoreParameters};
pub use schedule::{Schedule, ScheduledArchive, last_job as last_scheduled_job};
pub use snapshot::take_cluster_snapshot;
pub use swap::{SwapError, finish_restore, prepare_data_dir};
pub use verify::{VerifyJob, VerifyParameters};
pub use writer::{BackupJob, BackupParameters};

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

/// The sealed manifest of the archive at `path` and its signature under `key`. It is read from
/// the manifest's own gzip member at the end of the file when the archive has one, without
/// reading the data before it (which is not checked then); otherwise the whole archive is read
/// and checked.
pub fn read_manifest(
    location: &ArchiveLocation,
    key: Option<&SigningKey>,
) -> Result<(Manifest, Signature), ArchiveError> {
    let member = members::read_manifest_member(location)
        .map_err(ArchiveError::io(format!("reading {location}")))?;
    match member {
        Some(sealed) => format::unseal_signed(&sealed, format::MANIFEST_NAME, key)
            .map_err(ArchiveError::Invalid),
        None => verify_archive(location, key).map(|checked| (checked.manifest, checked.signature)),
    }
}

/// Reads and checks an archive and every base archive it builds on, without restoring anything:
/// `kalamdb verify-backup`. Bases are held to `policy`'s path rules; with `key`, an archive not
/// signed with it fails.
pub fn verify_chain(
    location: &ArchiveLocation,
    key: Option<&SigningKey>,
    policy: &PathPolicy,
) -> Result<CheckedChain, ArchiveError> {
    chain::read_chain(location, key, policy, &mut reader::DiscardSink, &mut |_| {
        Ok(())
    })
}

/// Reads and checks one archive without restoring it. With `key`, an archive not signed with
/// it fails.
pub fn verify_archive(
    location: &ArchiveLocation,
    key: Option<&SigningKey>,
) -> Result<CheckedArchive, ArchiveError> {
    reader::read_archive(location, key, &mut reader::DiscardSink, &mut |_| Ok(()))
}
