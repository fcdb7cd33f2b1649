//! VERIFY BACKUP: the checks of `kalamdb verify-backup` run as a job, so a long read of a large
//! archive shows its progress in `system.jobs` and can be stopped with KILL JOB.
//!
//! The archive is read exactly as a restore reads it (gzip and tar structure, the entry rules,
//! every size and SHA-256 against the sealed manifest, the signature under `[backup]
//! signing_key`), and the bytes are discarded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::chain::{CheckedChain, read_chain};
use super::format::Place;
use super::human_bytes;
use super::location::ArchiveLocation;
use super::reader::{self, ArchiveError, ArchiveResult, FileSink, Sink};
use super::{PathPolicy, SigningKey};
use crate::jobs::{JobContext, JobError, JobResult, JobWork};

const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

pub struct VerifyJob {
    pub source: ArchiveLocation,
    /// `[backup] signing_key`: with it, an archive not signed with it fails.
    pub signing_key: Option<SigningKey>,
    /// `[backup] allowed_dirs`: where the bases of an incremental may be read from.
    pub allowed_dirs: Vec<PathBuf>,
}

/// What a verify job records in `system.jobs.parameters`, and what resuming it reads back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VerifyParameters {
    pub path: PathBuf,
}

impl VerifyJob {
    pub const JOB_TYPE: &'static str = "verify";
}

#[async_trait::async_trait]
impl JobWork for VerifyJob {
    fn job_type(&self) -> &'static str {
        Self::JOB_TYPE
    }

    fn id_prefix(&self) -> &'static str {
        "VB"
    }

    fn parameters(&self) -> serde_json::Value {
        let parameters = VerifyParameters {
            path: self.source.recorded(),
        };
        serde_json::to_value(parameters).expect("verify parameters serialize")
    }

    async fn run(&self, ctx: JobContext) -> JobResult<String> {
        let source = self.source.clone();
        let key = self.signing_key.clone();
        let allowed_dirs = self.allowed_dirs.clone();
        crate::jobs::background::run_below_clients(
            "verify",
            crate::jobs::background::JobPriority::Lowest,
            move || {
                let policy = PathPolicy {
                    data_dir: ctx.store.dir().root(),
                    allowed_dirs: &allowed_dirs,
                };
                verify(&ctx, &source, key.as_ref(), &policy)
            },
        )
        .await?
    }
}

fn verify(
    ctx: &JobContext,
    source: &ArchiveLocation,
    key: Option<&SigningKey>,
    policy: &PathPolicy,
) -> JobResult<String> {
    let started = Instant::now();
    ctx.progress_saying(0, None, format!("verifying '{source}'"))?;
    let mut sink = CountingSink { ctx };
    let mut last_report = Instant::now();
    let mut on_progress = |done: u64| -> ArchiveResult<()> {
        if ctx.is_cancelled() {
            return Err(ArchiveError::Cancelled);
        }
        if last_report.elapsed() >= PROGRESS_INTERVAL {
            last_report = Instant::now();
            ctx.progress(done, None)
                .map_err(|e| ArchiveError::Invalid(e.to_string()))?;
        }
        Ok(())
    };
    match read_chain(source, key, policy, &mut sink, &mut on_progress) {
        Ok(chain) => {
            let total = chain.top.manifest.total_bytes;
            ctx.progress(total, Some(total))?;
            Ok(verified_message(source, &chain, started.elapsed()))
        }
        Err(ArchiveError::Cancelled) => Err(JobError::Cancelled),
        Err(e) => Err(JobError::Failed(format!(
            "verification of '{source}' failed: {e}"
        ))),
    }
}

fn verified_message(source: &ArchiveLocation, chain: &CheckedChain, took: Duration) -> String {
    let checked = &chain.top;
    let manifest = &checked.manifest;
    let bases = match chain.bases.len() {
        0 => String::new(),
        n => format!(", {n} base archive(s) checked ({})", chain.base_list()),
    };
    format!(
        "Backup '{source}' verified: {} files ({}) match the manifest of job {} (created {}, applied seq {}){bases}; signature {}; {:.1} s",
        manifest.files.len(),
        human_bytes(chain.database_bytes()),
        manifest.job_id,
        manifest.created_at,
        manifest.applied_seq,
        checked.signature.as_str(),
        took.as_secs_f64(),
    )
}

/// Discards the entries, recording the archive's declared size as the job's total.
struct CountingSink<'a> {
    ctx: &'a JobContext,
}

impl Sink for CountingSink<'_> {
    fn reserve(&mut self, total_bytes: u64) -> ArchiveResult<()> {
        self.ctx
            .progress(0, Some(total_bytes))
            .map_err(|e| ArchiveError::Invalid(e.to_string()))
    }
    fn directory(&mut self, _: &Place) -> ArchiveResult<()> {
        Ok(())
    }
    fn create(&mut self, _: &Place) -> ArchiveResult<Box<dyn FileSink>> {
        Ok(Box::new(reader::Discard))
    }
}
