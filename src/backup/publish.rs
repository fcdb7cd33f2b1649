//! Where a backup's archive goes and how it becomes visible: a file is written to
//! `<path>.partial`, fsynced and linked to its name (never replacing a file); an object is a
//! multipart upload completed only once the whole archive is in it. Until then nothing exists at
//! the target, and a failed or killed backup leaves nothing behind.

use std::fs::File;
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::location::ArchiveLocation;
use super::members::Output;
use super::remote::is_url;
use super::writer::{BackupJob, COMPRESS_BLOCK, io_failed};
use crate::durable::Publish;
use crate::jobs::{JobContext, JobError, JobResult};

/// `<path>.partial`: where an archive is written before it is published.
fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

/// Removes what an interrupted backup to `target` left: its partial archive (the capture
/// directory is removed when the data directory is opened). An upload a crash interrupted left
/// no object, only parts the store drops by its lifecycle rules for incomplete uploads.
pub fn remove_leftovers(target: &Path) {
    if is_url(&target.to_string_lossy()) {
        return;
    }
    let partial = partial_path(target);
    match std::fs::remove_file(&partial) {
        Ok(()) => {
            tracing::info!(file = %partial.display(), "removed an interrupted backup's partial archive")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(file = %partial.display(), "removing a partial archive: {e}"),
    }
}

/// Deletes a path when dropped unless disarmed: the partial archive and the capture directory.
pub(super) struct RemoveOnDrop {
    pub(super) path: PathBuf,
    pub(super) dir: bool,
    pub(super) armed: bool,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let result = if self.dir {
                std::fs::remove_dir_all(&self.path)
            } else {
                std::fs::remove_file(&self.path)
            };
            if let Err(e) = result
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %self.path.display(), "cleaning up after a backup: {e}");
            }
        }
    }
}

impl BackupJob {
    /// Where the compressed archive goes: `<path>.partial` (removed by the guard unless
    /// published), or a multipart upload (aborted if dropped unfinished). An existing archive
    /// is never replaced.
    pub(super) fn open_output(
        &self,
        expected_bytes: u64,
    ) -> JobResult<(Output, Option<RemoveOnDrop>)> {
        match &self.target {
            ArchiveLocation::Local(target) => {
                let partial = partial_path(target);
                // Readable by the server's user only: an archive holds every table and verifier.
                let file = File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&partial)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => JobError::Failed(format!(
                            "{} exists: another backup to this path is running or was interrupted",
                            partial.display()
                        )),
                        _ => JobError::Failed(format!("creating {}: {e}", partial.display())),
                    })?;
                let guard = RemoveOnDrop {
                    path: partial,
                    dir: false,
                    armed: true,
                };
                let output = Output::File(BufWriter::with_capacity(COMPRESS_BLOCK, file));
                Ok((output, Some(guard)))
            }
            ArchiveLocation::Remote(object) => {
                let failed = io_failed(format!("the object store, for {object}"));
                if object.exists().map_err(failed)? {
                    return Err(JobError::Failed(format!(
                        "{object} already exists and is not overwritten; use a new name"
                    )));
                }
                let upload = object
                    .upload(expected_bytes)
                    .map_err(io_failed(format!("starting the upload to {object}")))?;
                Ok((Output::Upload(upload), None))
            }
        }
    }

    /// Makes the finished archive visible at the target; returns its compressed size. A file is
    /// fsynced and linked to its name; an upload is completed (unless the job was killed, when
    /// dropping it aborts it).
    pub(super) fn publish(&self, ctx: &JobContext, output: Output) -> JobResult<u64> {
        match (output, &self.target) {
            (Output::File(buffered), ArchiveLocation::Local(target)) => {
                let partial = partial_path(target);
                let file = buffered
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .map_err(io_failed(format!("writing {}", partial.display())))?;
                file.sync_all()
                    .map_err(io_failed(format!("syncing {}", partial.display())))?;
                let archive_bytes = file
                    .metadata()
                    .map_err(io_failed(format!("reading {}", partial.display())))?
                    .len();
                drop(file);
                ctx.check_cancelled()?;
                // Never replaces an existing file, unlike a rename.
                crate::durable::publish_file(&partial, target, Publish::NoClobber).map_err(
                    |e| {
                        JobError::Failed(format!(
                            "publishing {}: {e}{}",
                            target.display(),
                            if e.kind() == std::io::ErrorKind::AlreadyExists {
                                " (a file appeared at the path while the backup ran; it was left alone)"
                            } else {
                                ""
                            }
                        ))
                    },
                )?;
                Ok(archive_bytes)
            }
            (Output::Upload(upload), ArchiveLocation::Remote(object)) => {
                ctx.check_cancelled()?;
                upload
                    .complete()
                    .map_err(io_failed(format!("completing the upload to {object}")))
            }
            _ => Err(JobError::Failed(
                "the archive was written to another kind of target than the job's".into(),
            )),
        }
    }
}
