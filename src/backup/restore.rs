//! RESTORE DATABASE: stages a checked archive beside the data directory for the next start.
//!
//! The job extracts into `<data>_restore_pending.tmp-<job>/` (never the live directory),
//! checking every entry and checksum as it goes (see [`super::reader`]); an incremental brings
//! in the files its bases hold (see [`super::chain`]). Only when the whole
//! archive has been verified and every file fsynced does it write the completeness marker and
//! publish the directory as `<data>_restore_pending/`, atomically exchanging it with an older
//! pending restore if there is one. Any failure removes the staging directory.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::chain::read_chain;
use super::format::{Place, Signature, SigningKey};
use super::location::ArchiveLocation;
use super::reader::{ArchiveError, ArchiveResult, FileSink, Sink};
use super::{
    BackupJob, PathPolicy, RestoreMarker, fsync_dir, human_bytes, pending_dir, staging_prefix,
};
use crate::jobs::{JobContext, JobError, JobResult, JobWork};

/// How often, in staged bytes, free disk is measured again while staging.
const FREE_SPACE_CHECK_BYTES: u64 = 16 * 1024 * 1024;
/// Finished files waiting for their fdatasync; extraction waits when the disk falls this far
/// behind.
const QUEUED_SYNCS: usize = 64;

pub struct RestoreJob {
    pub source: ArchiveLocation,
    /// `[backup] signing_key`: only archives signed with it are staged.
    pub signing_key: Option<SigningKey>,
    /// `[backup] min_free_bytes`: free disk kept for the live database while staging.
    pub min_free_bytes: u64,
    /// `[backup] allowed_dirs`: where the bases of an incremental may be read from.
    pub allowed_dirs: Vec<PathBuf>,
    /// `WITH BACKUP TO '<path>'`: the current state is backed up first, in this job, and
    /// nothing is staged unless that backup is complete.
    pub backup_first: Option<BackupJob>,
}

/// What a restore job records in `system.jobs.parameters`, and what resuming it reads back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RestoreParameters {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_to: Option<PathBuf>,
}

impl RestoreJob {
    pub const JOB_TYPE: &'static str = "restore";
}

#[async_trait::async_trait]
impl JobWork for RestoreJob {
    fn job_type(&self) -> &'static str {
        Self::JOB_TYPE
    }

    fn id_prefix(&self) -> &'static str {
        "RS"
    }

    fn exclusive(&self) -> bool {
        true
    }

    fn parameters(&self) -> serde_json::Value {
        let parameters = RestoreParameters {
            path: self.source.recorded(),
            backup_to: self.backup_first.as_ref().map(|job| job.target.recorded()),
        };
        serde_json::to_value(parameters).expect("restore parameters serialize")
    }

    async fn run(&self, ctx: JobContext) -> JobResult<String> {
        let source = self.source.clone();
        let limits = StagingLimits {
            signing_key: self.signing_key.clone(),
            min_free_bytes: self.min_free_bytes,
            allowed_dirs: self.allowed_dirs.clone(),
        };
        let backup_first = self.backup_first.clone();
        crate::jobs::background::run_below_clients(
            "restore",
            crate::jobs::background::JobPriority::Lowest,
            move || {
                if let Some(backup) = &backup_first {
                    backup.write(&ctx).map_err(|e| match e {
                        JobError::Cancelled => JobError::Cancelled,
                        e => JobError::Failed(format!(
                            "the backup before the restore failed, so nothing was staged: {e}"
                        )),
                    })?;
                }
                let staged = stage(&ctx, &source, &limits)?;
                Ok(match &backup_first {
                    Some(backup) => format!(
                        "{staged} The state before it was backed up to '{}'.",
                        backup.target
                    ),
                    None => staged,
                })
            },
        )
        .await?
    }
}

/// The spec's completion message.
pub fn staged_message(source: &ArchiveLocation) -> String {
    format!("Restore staged from '{source}'. RocksDB restore is pending server restart.")
}

struct StagingLimits {
    signing_key: Option<SigningKey>,
    min_free_bytes: u64,
    allowed_dirs: Vec<PathBuf>,
}

fn stage(ctx: &JobContext, source: &ArchiveLocation, limits: &StagingLimits) -> JobResult<String> {
    let started = Instant::now();
    let data_dir = ctx.store.dir().root().to_path_buf();
    let staging = PathBuf::from(format!("{}{}", staging_prefix(&data_dir), ctx.job_id));
    // Only the server's user may look into staged data (mode 0700, like the data directory).
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| JobError::Failed(format!("creating {}: {e}", staging.display())))?;
    let result = fill_staging(ctx, source, &staging, &data_dir, limits);
    match result {
        Ok(summary) => {
            tracing::info!(
                job_id = ctx.job_id,
                pending = %pending_dir(&data_dir).display(),
                "{summary} in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(staged_message(source))
        }
        Err(e) => {
            if let Err(rm) = std::fs::remove_dir_all(&staging) {
                tracing::warn!(dir = %staging.display(), "removing a failed restore's staging directory: {rm}");
            }
            Err(match e {
                ArchiveError::Cancelled => JobError::Cancelled,
                ArchiveError::Invalid(m) => {
                    JobError::Failed(format!("restore from '{source}' failed: {m}"))
                }
                other => JobError::Failed(other.to_string()),
            })
        }
    }
}

fn fill_staging(
    ctx: &JobContext,
    source: &ArchiveLocation,
    staging: &Path,
    data_dir: &Path,
    limits: &StagingLimits,
) -> ArchiveResult<String> {
    let mut sink = StagingSink {
        root: staging.to_path_buf(),
        ctx,
        min_free_bytes: limits.min_free_bytes,
        background_sync: BackgroundSync::start()
            .map_err(ArchiveError::io("starting the restore's sync thread"))?,
    };
    let mut last_report = Instant::now();
    let mut next_space_check = FREE_SPACE_CHECK_BYTES;
    let mut on_progress = |done: u64| -> ArchiveResult<()> {
        crate::fault::crash_point("restore_during_staging");
        if ctx.is_cancelled() {
            return Err(ArchiveError::Cancelled);
        }
        // The check before staging assumed nothing else fills the disk meanwhile; the live
        // database and other processes still write, so measure again as the staging grows.
        if done >= next_space_check {
            next_space_check = done + FREE_SPACE_CHECK_BYTES;
            keep_free_space(staging, 0, limits.min_free_bytes)?;
        }
        if last_report.elapsed().as_millis() >= 250 {
            last_report = Instant::now();
            ctx.progress(done, None)
                .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        }
        Ok(())
    };
    let policy = PathPolicy {
        data_dir,
        allowed_dirs: &limits.allowed_dirs,
    };
    let read = read_chain(
        source,
        limits.signing_key.as_ref(),
        &policy,
        &mut sink,
        &mut on_progress,
    );
    // A failed fdatasync is the cause when the read stopped because the sync thread had quit.
    sink.background_sync
        .finish()
        .map_err(ArchiveError::io(format!(
            "syncing files staged in {}",
            staging.display()
        )))?;
    let chain = read?;
    let checked = &chain.top;
    if checked.signature != Signature::Verified {
        tracing::warn!(
            job_id = ctx.job_id,
            archive = %source,
            "restoring an archive whose origin is not checked: set [backup] signing_key so that only archives signed with it are restored"
        );
    }
    // The staged catalog names the files the server will later read, overwrite and delete:
    // a crafted one must not reach outside the data directory.
    crate::storage::verify_catalog_at(&staging.join("rocksdb"))
        .map_err(|e| ArchiveError::Invalid(format!("the archive's catalog is unsafe: {e}")))?;
    let total = chain.database_bytes();
    ctx.progress(total, None)
        .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
    // One syncfs makes the directories and the last files durable (the background syncs
    // covered the rest) without an fsync per directory.
    super::sync_filesystem(staging)
        .map_err(ArchiveError::io(format!("syncing {}", staging.display())))?;
    let marker = RestoreMarker {
        restore_job_id: ctx.job_id.clone(),
        archive_path: source.to_string(),
        backup_job_id: checked.manifest.job_id.clone(),
        backup_created_at: checked.manifest.created_at.clone(),
        applied_seq: checked.manifest.applied_seq,
        files: checked.manifest.files.len(),
        total_bytes: total,
        staged_at: chrono::Utc::now().to_rfc3339(),
        created_by: ctx
            .store
            .job(&ctx.job_id)
            .ok()
            .flatten()
            .map(|j| j.created_by)
            .unwrap_or_default(),
    };
    marker
        .write(staging)
        .map_err(ArchiveError::io("writing the restore marker"))?;
    if ctx.is_cancelled() {
        return Err(ArchiveError::Cancelled);
    }
    publish(staging, &pending_dir(data_dir))
        .map_err(ArchiveError::io("publishing the staged restore"))?;
    Ok(format!(
        "staged {} files ({}) from {} ({} archive{})",
        checked.manifest.files.len(),
        human_bytes(total),
        source,
        human_bytes(checked.archive_bytes),
        if chain.bases.is_empty() {
            String::new()
        } else {
            format!(" and its {} base archive(s)", chain.bases.len())
        }
    ))
}

/// Makes `staging` the pending restore. An older pending restore is swapped out atomically
/// (the staging name then holds it, and it is removed; a crash leaves it to the start-up sweep).
fn publish(staging: &Path, pending: &Path) -> std::io::Result<()> {
    if pending.exists() {
        super::exchange(staging, pending)?;
        std::fs::remove_dir_all(staging)?;
    } else {
        std::fs::rename(staging, pending)?;
    }
    if let Some(parent) = pending.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

struct StagingSink<'a> {
    root: PathBuf,
    ctx: &'a JobContext,
    min_free_bytes: u64,
    background_sync: BackgroundSync,
}

/// Makes staged files durable while later ones are still being extracted. Left to one syncfs
/// at the end, a gigabyte of dirty pages would be written only then (the kernel starts
/// writeback on its own only past `dirty_background_ratio` of memory); synced one by one on a
/// thread of their own, the disk writes overlap decompression.
struct BackgroundSync {
    files: Option<std::sync::mpsc::SyncSender<File>>,
    worker: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl BackgroundSync {
    fn start() -> std::io::Result<BackgroundSync> {
        let (files, finished) = std::sync::mpsc::sync_channel::<File>(QUEUED_SYNCS);
        let worker = std::thread::Builder::new()
            .name("restore-sync".into())
            .spawn(move || {
                for file in finished {
                    file.sync_data()?;
                }
                Ok(())
            })?;
        Ok(BackgroundSync {
            files: Some(files),
            worker: Some(worker),
        })
    }

    fn queue(&self) -> std::sync::mpsc::SyncSender<File> {
        self.files
            .clone()
            .expect("files are queued only before finish")
    }

    /// Waits for every queued file's sync; the first failure, if any.
    fn finish(&mut self) -> std::io::Result<()> {
        self.files = None;
        match self.worker.take().map(|worker| worker.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(std::io::Error::other("the sync thread panicked")),
        }
    }
}

impl Drop for BackgroundSync {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Fails unless writing `more` bytes under `dir` leaves `min_free` bytes free.
fn keep_free_space(dir: &Path, more: u64, min_free: u64) -> ArchiveResult<()> {
    let available = super::available_space(dir).map_err(ArchiveError::io(format!(
        "checking free space on {}",
        dir.display()
    )))?;
    if available < more.saturating_add(min_free) {
        return Err(ArchiveError::NoSpace(format!(
            "not enough free disk space to restore: {} still to write and {} kept free ([backup] min_free_bytes), but only {} available on {}",
            human_bytes(more),
            human_bytes(min_free),
            human_bytes(available),
            dir.display()
        )));
    }
    Ok(())
}

impl StagingSink<'_> {
    /// The staging path for an archive place: `data/...` goes to the root (it becomes the data
    /// directory), `server.toml` is kept aside to be restored next to the config.
    fn target(&self, place: &Place) -> Option<PathBuf> {
        match place {
            Place::DataRoot => Some(self.root.clone()),
            Place::Data(relative) => Some(self.root.join(relative)),
            Place::Config => Some(self.root.join(super::ARCHIVED_CONFIG)),
            Place::Manifest => None,
        }
    }
}

impl Sink for StagingSink<'_> {
    fn reserve(&mut self, total_bytes: u64) -> ArchiveResult<()> {
        self.ctx
            .progress(0, Some(total_bytes))
            .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        keep_free_space(&self.root, total_bytes, self.min_free_bytes)
    }

    fn directory(&mut self, place: &Place) -> ArchiveResult<()> {
        if let Some(dir) = self.target(place)
            && dir != self.root
        {
            std::fs::create_dir_all(&dir)
                .map_err(ArchiveError::io(format!("creating {}", dir.display())))?;
        }
        Ok(())
    }

    fn create(&mut self, place: &Place) -> ArchiveResult<Box<dyn FileSink>> {
        let path = self
            .target(place)
            .expect("the manifest is read by the reader, not written");
        if let Some(parent) = path.parent()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent)
                .map_err(ArchiveError::io(format!("creating {}", parent.display())))?;
        }
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(ArchiveError::io(format!("creating {}", path.display())))?;
        Ok(Box::new(StagedFile {
            out: std::io::BufWriter::with_capacity(256 * 1024, file),
            sync_queue: self.background_sync.queue(),
        }))
    }
}

struct StagedFile {
    out: std::io::BufWriter<File>,
    sync_queue: std::sync::mpsc::SyncSender<File>,
}

impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl FileSink for StagedFile {
    fn commit(self: Box<Self>) -> std::io::Result<()> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        self.sync_queue
            .send(file)
            .map_err(|_| std::io::Error::other("the restore's sync thread stopped"))
    }
}
