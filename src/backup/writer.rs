//! BACKUP DATABASE: captures a backup point and streams it as one `.tar.gz` archive.
//!
//! The target is a file or an object in a store; either way nothing exists there until the
//! archive is complete (see [`super::publish`]). Files are read once: each is hashed for
//! the manifest while it streams through tar into the parallel gzip compressor (gzp, libdeflate),
//! so memory stays bounded by the compressor's queue whatever the database size.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gzp::par::compress::ParCompressBuilder;

use super::format::{self, Manifest, ManifestFile, SigningKey};
use super::human_bytes;
use super::incremental::{Base, Contents};
use super::location::ArchiveLocation;
use super::members::{ArchiveMembers, Members, Output};
use super::publish::RemoveOnDrop;
use super::schedule::Schedule;
use crate::jobs::{JobContext, JobError, JobResult, JobWork};

/// How often a running backup records its progress in `system.jobs`.
pub(super) const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// Compressor input block; each becomes one gzip member, compressed in parallel with the others.
pub(super) const COMPRESS_BLOCK: usize = 1024 * 1024;
const READ_BUFFER: usize = 256 * 1024;

#[derive(Clone)]
pub struct BackupJob {
    pub target: ArchiveLocation,
    /// The config file the server loaded, archived as `server.toml`.
    pub config_path: Option<PathBuf>,
    pub compression_level: u32,
    pub compression_threads: usize,
    /// `[backup] max_bytes_per_second`: how fast the database is read (0: no limit).
    pub max_bytes_per_second: u64,
    /// `[backup] signing_key`: the manifest is signed with it when set.
    pub signing_key: Option<SigningKey>,
    /// Set for a scheduled run: the published archive is verified, then the schedule's older
    /// archives its retention no longer keeps are deleted.
    pub schedule: Option<Schedule>,
    /// `INCREMENTAL FROM '<base>'`: files the base's chain holds unchanged are not stored.
    pub base: Option<PathBuf>,
}

/// What a backup job records in `system.jobs.parameters`, and what resuming it reads back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupParameters {
    pub path: PathBuf,
    pub compression_level: u32,
    pub compression_threads: usize,
    /// The `[[backup.schedule]]` this run belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The base archive of an incremental backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<PathBuf>,
}

impl BackupJob {
    pub const JOB_TYPE: &'static str = "backup";
}

#[async_trait::async_trait]
impl JobWork for BackupJob {
    fn job_type(&self) -> &'static str {
        Self::JOB_TYPE
    }

    fn id_prefix(&self) -> &'static str {
        "BK"
    }

    fn exclusive(&self) -> bool {
        true
    }

    fn parameters(&self) -> serde_json::Value {
        let parameters = BackupParameters {
            path: self.target.recorded(),
            compression_level: self.compression_level,
            compression_threads: self.compression_threads,
            schedule: self.schedule.as_ref().map(|s| s.name().to_owned()),
            base: self.base.clone(),
        };
        serde_json::to_value(parameters).expect("backup parameters serialize")
    }

    async fn run(&self, ctx: JobContext) -> JobResult<String> {
        let job = self.clone();
        crate::jobs::background::run_below_clients(
            "backup",
            crate::jobs::background::JobPriority::Lowest,
            move || {
                let written = job.write(&ctx)?;
                match (&job.schedule, job.target.local()) {
                    (Some(schedule), Some(archive)) => {
                        let kept =
                            schedule.verify_and_prune(&ctx, archive, job.signing_key.as_ref())?;
                        Ok(format!("{written}; {kept}"))
                    }
                    _ => Ok(written),
                }
            },
        )
        .await?
    }
}

/// What an archived `server.toml` holds in place of a secret's value.
pub const REDACTED: &str = "<removed from the backup>";
/// Keys whose values never leave the server inside an archive.
const SECRET_KEYS: [&str; 4] = [
    "root_password",
    "signing_key",
    "access_key_id",
    "secret_access_key",
];

/// `server.toml` as archived: every secret's value replaced by [`REDACTED`], the rest as is.
pub fn redact_secrets(config: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(config);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let key = line.split('=').next().unwrap_or("").trim();
        if line.contains('=') && SECRET_KEYS.contains(&key) {
            let ending = if line.ends_with('\n') { "\n" } else { "" };
            out.push_str(&format!("{key} = \"{REDACTED}\"{ending}"));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

pub(super) fn io_failed(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> JobError {
    move |e| JobError::Failed(format!("{what}: {e}"))
}

impl BackupJob {
    /// Writes and publishes the archive; returns the job's completion message.
    pub(super) fn write(&self, ctx: &JobContext) -> JobResult<String> {
        let started = Instant::now();
        let store = &ctx.store;
        let scratch = store.dir().backup_scratch(&ctx.job_id);
        let _ = std::fs::remove_dir_all(&scratch);
        let _scratch_guard = RemoveOnDrop {
            path: scratch.clone(),
            dir: true,
            armed: true,
        };
        let base = match &self.base {
            Some(path) => {
                ctx.progress_saying(0, None, format!("reading the base {}", path.display()))?;
                let database_id = store.database_id()?;
                Some(Base::read(
                    path,
                    self.signing_key.as_ref(),
                    database_id.as_deref(),
                )?)
            }
            None => None,
        };
        ctx.progress_saying(0, None, "capturing a consistent point".to_owned())?;
        let point = {
            let (store, scratch) = (store.clone(), scratch.clone());
            ctx.at_clients_priority(move || store.capture_backup_point(&scratch))??
        };
        tracing::info!(
            job_id = ctx.job_id,
            applied_seq = point.applied_seq,
            files = point.files.len(),
            bytes = point.total_bytes(),
            stall_ms = point.stall.as_millis() as u64,
            "captured the backup point"
        );
        let config = match &self.config_path {
            Some(path) => Some(redact_secrets(
                &std::fs::read(path).map_err(io_failed(format!("reading {}", path.display())))?,
            )),
            None => None,
        };
        let database_bytes = point.total_bytes() + config.as_ref().map_or(0, |c| c.len() as u64);
        let database_files = point.files.len() + usize::from(config.is_some());
        let contents = Contents::choose(ctx, &point, config, base.as_ref())?;
        let total = contents.stored_bytes();
        ctx.progress_saying(
            0,
            Some(total),
            format!(
                "archiving {} files ({})",
                contents.stored_count(),
                human_bytes(total)
            ),
        )?;

        let (output, mut partial_guard) = self.open_output(total)?;
        let compressor = ParCompressBuilder::<ArchiveMembers>::new()
            .compression_level(flate2::Compression::new(self.compression_level))
            .num_threads(self.compression_threads.max(1))
            .map_err(|e| JobError::Failed(format!("starting the compressor: {e}")))?
            .buffer_size(COMPRESS_BLOCK)
            .map_err(|e| JobError::Failed(format!("starting the compressor: {e}")))?
            .from_writer(output);
        let mut archive = ArchiveWriter {
            tar: tar::Builder::new(Members::Data(compressor)),
            compression_level: self.compression_level,
            progress: Progress::new(ctx, total, self.max_bytes_per_second),
            manifest_files: Vec::with_capacity(database_files),
            mtime: chrono::Utc::now().timestamp().max(0) as u64,
            signing_key: self.signing_key.as_ref(),
        };
        let identity = Identity {
            job_id: &ctx.job_id,
            applied_seq: point.applied_seq,
            database_id: store.database_id()?,
        };
        let stored_files = contents.stored_count();
        let written = archive.write_all(contents, identity, total);
        let output = match written.and_then(|()| archive.finish()) {
            Ok(output) => output,
            Err(e) => {
                archive.abort();
                return Err(e);
            }
        };
        let archive_bytes = self.publish(ctx, output)?;
        if let Some(guard) = partial_guard.as_mut() {
            guard.armed = false;
        }
        ctx.progress(total, None)?;
        let elapsed = started.elapsed();
        let rate = total as f64 / elapsed.as_secs_f64().max(1e-3);
        Ok(match &self.base {
            None => format!(
                "Backup written to '{}': {} archive of {} in {} files, {:.1} s ({}/s)",
                self.target,
                human_bytes(archive_bytes),
                human_bytes(total),
                database_files,
                elapsed.as_secs_f64(),
                human_bytes(rate as u64),
            ),
            Some(base) => format!(
                "Incremental backup written to '{}' on '{}': {} archive storing {} of {} in {} of {} files, {:.1} s",
                self.target,
                base.display(),
                human_bytes(archive_bytes),
                human_bytes(total),
                human_bytes(database_bytes),
                stored_files,
                database_files,
                elapsed.as_secs_f64(),
            ),
        })
    }
}

/// What the manifest says of the backup itself.
struct Identity<'a> {
    job_id: &'a str,
    applied_seq: u64,
    database_id: Option<String>,
}

struct ArchiveWriter<'a> {
    tar: tar::Builder<Members>,
    compression_level: u32,
    progress: Progress<'a>,
    manifest_files: Vec<ManifestFile>,
    mtime: u64,
    signing_key: Option<&'a SigningKey>,
}

impl ArchiveWriter<'_> {
    fn write_all(&mut self, contents: Contents, identity: Identity, total: u64) -> JobResult<()> {
        self.global_header(total, contents.stored_count())?;
        let mut dirs = std::collections::BTreeSet::new();
        dirs.insert(format::DATA_ROOT.to_owned());
        for area in format::LAYOUT {
            dirs.insert(format!("{}/{area}", format::DATA_ROOT));
        }
        for file in &contents.stored {
            let mut path = Path::new(&file.relative).parent();
            while let Some(dir) = path.filter(|p| !p.as_os_str().is_empty()) {
                dirs.insert(format!("{}/{}", format::DATA_ROOT, dir.display()));
                path = dir.parent();
            }
        }
        for dir in dirs {
            self.directory(&dir)?;
        }
        for captured in &contents.stored {
            let source = File::open(&captured.source)
                .map_err(io_failed(format!("opening {}", captured.source.display())))?;
            let path = format!("{}/{}", format::DATA_ROOT, captured.relative);
            self.file(&path, captured.len, source)?;
        }
        if let Some(config) = &contents.config {
            self.file(format::CONFIG_NAME, config.len() as u64, config.as_slice())?;
        }
        let mut files = std::mem::take(&mut self.manifest_files);
        files.extend(contents.left_to_base);
        let manifest = Manifest {
            format_version: format::FORMAT_VERSION,
            kalamdb_version: env!("CARGO_PKG_VERSION").into(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            job_id: identity.job_id.into(),
            applied_seq: identity.applied_seq,
            checksum_algorithm: "sha256".into(),
            total_bytes: total,
            files,
            database_id: identity.database_id,
            base: contents.base,
        };
        let sealed = format::seal_signed(&manifest, self.signing_key);
        let mut header = self.header(tar::EntryType::Regular, sealed.len() as u64, 0o644);
        self.tar
            .get_mut()
            .start_manifest_member(self.compression_level)
            .map_err(io_failed("compressing the archive"))?;
        self.tar
            .append_data(&mut header, format::MANIFEST_NAME, sealed.as_slice())
            .map_err(io_failed("writing the manifest"))
    }

    fn header(&self, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(mode);
        header.set_mtime(self.mtime);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn global_header(&mut self, total: u64, file_count: usize) -> JobResult<()> {
        let body = format::pax_records(&[
            (
                format::PAX_FORMAT_VERSION,
                format::FORMAT_VERSION.to_string(),
            ),
            (format::PAX_TOTAL_BYTES, total.to_string()),
            (format::PAX_FILE_COUNT, file_count.to_string()),
        ]);
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XGlobalHeader);
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        self.tar
            .append_data(&mut header, "pax_global_header", body.as_slice())
            .map_err(io_failed("writing the archive header"))
    }

    fn directory(&mut self, path: &str) -> JobResult<()> {
        let mut header = self.header(tar::EntryType::Directory, 0, 0o755);
        self.tar
            .append_data(&mut header, format!("{path}/"), std::io::empty())
            .map_err(io_failed(format!("writing {path}/")))
    }

    fn file(&mut self, path: &str, len: u64, source: impl Read) -> JobResult<()> {
        self.progress.enter(path);
        let mut header = self.header(tar::EntryType::Regular, len, 0o644);
        let mut reader = HashingReader {
            inner: source.take(len),
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            read: 0,
            progress: &mut self.progress,
        };
        let appended = self.tar.append_data(&mut header, path, &mut reader);
        let (read, digest) = (reader.read, reader.digest.finish());
        if let Err(e) = appended {
            if self.progress.ctx.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            return Err(JobError::Failed(format!("archiving {path}: {e}")));
        }
        if read != len {
            return Err(JobError::Failed(format!(
                "{path} has {read} bytes but the backup point holds {len}: it changed during the backup"
            )));
        }
        self.manifest_files.push(ManifestFile {
            path: path.to_owned(),
            size: len,
            sha256: hex::encode(digest),
            archive: None,
        });
        Ok(())
    }

    /// Ends the tar stream and the last gzip member; returns where the archive went.
    fn finish(&mut self) -> JobResult<Output> {
        self.tar
            .finish()
            .map_err(io_failed("finishing the archive"))?;
        self.tar
            .get_mut()
            .finish()
            .map_err(io_failed("writing the archive"))
    }

    /// Stops the compressor after a failure, discarding its output.
    fn abort(&mut self) {
        self.tar.get_mut().abort();
    }
}

struct Progress<'a> {
    ctx: &'a JobContext,
    total: u64,
    done: u64,
    /// What is being archived: a data area (`data/storage`) or the config file.
    area: String,
    last_report: Instant,
    pace: Pace,
}

impl<'a> Progress<'a> {
    fn new(ctx: &'a JobContext, total: u64, max_bytes_per_second: u64) -> Self {
        Progress {
            ctx,
            total,
            done: 0,
            area: String::new(),
            last_report: Instant::now(),
            pace: Pace::new(max_bytes_per_second),
        }
    }

    /// Names the area an archive path belongs to: `data/<area>`, or the path itself.
    fn enter(&mut self, archive_path: &str) {
        self.area = match archive_path
            .strip_prefix(format::DATA_ROOT)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(rest) => format!(
                "{}/{}",
                format::DATA_ROOT,
                rest.split('/').next().unwrap_or_default()
            ),
            None => archive_path.to_owned(),
        };
    }

    fn advance(&mut self, bytes: u64) -> std::io::Result<()> {
        self.done += bytes;
        loop {
            if self.ctx.is_cancelled() {
                return Err(std::io::Error::other("cancelled by KILL JOB"));
            }
            match self.pace.ahead_by(self.done) {
                // In slices, so that KILL JOB is seen while the backup waits.
                Some(ahead) => std::thread::sleep(ahead.min(PACE_SLICE)),
                None => break,
            }
        }
        if self.last_report.elapsed() >= PROGRESS_INTERVAL {
            self.last_report = Instant::now();
            let done = self.done.min(self.total);
            self.ctx
                .progress_saying(
                    done,
                    None,
                    format!(
                        "compressing {}: {} of {}",
                        self.area,
                        human_bytes(done),
                        human_bytes(self.total)
                    ),
                )
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

/// The longest a paced backup sleeps before it looks at its job again.
const PACE_SLICE: Duration = Duration::from_millis(50);

/// `[backup] max_bytes_per_second`: how far the bytes read are ahead of the allowed rate, as
/// pg_basebackup's `--max-rate` paces its transfer.
struct Pace {
    bytes_per_second: u64,
    started: Instant,
}

impl Pace {
    fn new(bytes_per_second: u64) -> Pace {
        Pace {
            bytes_per_second,
            started: Instant::now(),
        }
    }

    /// How long to wait before reading past `done` bytes; `None` when they are allowed now.
    fn ahead_by(&self, done: u64) -> Option<Duration> {
        if self.bytes_per_second == 0 {
            return None;
        }
        // Saturates instead of panicking when the quotient passes Duration::MAX.
        let allowed_at = Duration::try_from_secs_f64(done as f64 / self.bytes_per_second as f64)
            .unwrap_or(Duration::MAX);
        allowed_at
            .checked_sub(self.started.elapsed())
            .filter(|ahead| !ahead.is_zero())
    }
}

/// Hashes and counts what tar reads, and stops the read when the job is cancelled.
struct HashingReader<'p, 'a, R> {
    inner: R,
    digest: ring::digest::Context,
    read: u64,
    progress: &'p mut Progress<'a>,
}

impl<R: Read> Read for HashingReader<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let limit = buf.len().min(READ_BUFFER);
        let n = self.inner.read(&mut buf[..limit])?;
        self.digest.update(&buf[..n]);
        self.read += n as u64;
        self.progress.advance(n as u64)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_backup_waits_until_its_bytes_are_due_and_an_unpaced_one_never_does() {
        let unpaced = Pace::new(0);
        assert_eq!(unpaced.ahead_by(u64::MAX), None);
        let paced = Pace::new(1_000_000);
        let ahead = paced
            .ahead_by(2_000_000)
            .expect("two seconds of bytes at once");
        assert!(
            ahead > Duration::from_millis(1900) && ahead <= Duration::from_secs(2),
            "{ahead:?}"
        );
        assert_eq!(paced.ahead_by(0), None);
        let slowest = Pace::new(1);
        assert!(
            slowest
                .ahead_by(u64::MAX)
                .is_some_and(|ahead| ahead > Duration::from_secs(1 << 60))
        );
    }

    #[test]
    fn archived_configs_carry_no_secrets() {
        let config = b"[auth]\nroot_password = \"hunter2\"\nscram_iterations = 4096\n[backup]\n  signing_key=\"k\"\n";
        let text = String::from_utf8(redact_secrets(config)).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("\"k\""),
            "{text}"
        );
        assert!(text.contains("scram_iterations = 4096"));
        assert_eq!(text.matches(REDACTED).count(), 2);
    }
}
