//! Background jobs (the spec's UnifiedJobManager): flush now, backup and restore later.
//!
//! A job is a row of `system.jobs`, persisted through `Command::PutJob` at every state change,
//! so its history survives restarts. Jobs run on a bounded pool (`[jobs] max_concurrent`);
//! jobs of an exclusive kind (backup, restore) also run one at a time, and so do jobs on the
//! same object (two flushes of one table: the second finds what the first left). At start, jobs
//! a crash left `Running` become `Failed`, and `Queued` ones are run. A job's blocking work runs
//! below the clients' priority (`background`).

pub mod background;
mod evict;
mod flush;
mod foreground;
mod index_build;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};

pub use evict::{StreamEvictJob, expired_files};
pub use flush::FlushJob;
pub use index_build::IndexBuildJob;

use crate::storage::{Command, JobRecord, JobStatus, StorageError, Store};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Failed(String),
    #[error("cancelled")]
    Cancelled,
    #[error("job \"{0}\" does not exist")]
    NoSuchJob(String),
    #[error("job \"{0}\" has already finished")]
    AlreadyFinished(String),
}

pub type JobResult<T> = Result<T, JobError>;

/// What a kind of job does. `run` returns the message shown when the job completes.
#[async_trait::async_trait]
pub trait JobWork: Send + Sync + 'static {
    fn job_type(&self) -> &'static str;
    /// Job id prefix: `FL`, `BK`, `RS`.
    fn id_prefix(&self) -> &'static str;
    /// Whether the job excludes every other exclusive job (backup and restore).
    fn exclusive(&self) -> bool {
        false
    }
    /// Jobs naming the same object here run one after another (a flush names its table).
    fn serialized_on(&self) -> Option<String> {
        None
    }
    fn parameters(&self) -> serde_json::Value;
    async fn run(&self, ctx: JobContext) -> JobResult<String>;
}

/// Handed to a running job: progress reporting and cancellation.
#[derive(Clone)]
pub struct JobContext {
    pub store: Arc<Store>,
    pub job_id: String,
    cancelled: Arc<AtomicBool>,
    manager: Arc<Inner>,
}

impl JobContext {
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Fails with `Cancelled` once KILL JOB has been issued.
    pub fn check_cancelled(&self) -> JobResult<()> {
        if self.is_cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Records progress in `system.jobs`.
    pub fn progress(&self, bytes_done: u64, bytes_total: Option<u64>) -> JobResult<()> {
        self.record(move |job| {
            job.bytes_done = bytes_done;
            if bytes_total.is_some() {
                job.bytes_total = bytes_total;
            }
        })
    }

    /// Records progress and what the job is doing now; the message is replaced by the job's
    /// outcome when it ends.
    pub fn progress_saying(
        &self,
        bytes_done: u64,
        bytes_total: Option<u64>,
        doing: String,
    ) -> JobResult<()> {
        self.record(move |job| {
            job.bytes_done = bytes_done;
            if bytes_total.is_some() {
                job.bytes_total = bytes_total;
            }
            job.message = Some(doing);
        })
    }

    /// Runs `work` at the clients' priority (see `foreground`): for the parts of a job's work
    /// that take locks client statements also take, such as capturing a backup point.
    pub fn at_clients_priority<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> JobResult<T> {
        self.manager.foreground.run(work)
    }

    /// Changes this job's row of `system.jobs`, from the foreground thread: the write takes the
    /// apply lock and may lead a group's fsync.
    fn record(&self, change: impl FnOnce(&mut JobRecord) + Send + 'static) -> JobResult<()> {
        let manager = self.manager.clone();
        let job_id = self.job_id.clone();
        self.at_clients_priority(move || manager.update(&job_id, change))?
    }
}

struct Inner {
    store: Arc<Store>,
    slots: Arc<Semaphore>,
    exclusive: Arc<Semaphore>,
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// One lock per object that `serialized_on` names.
    objects: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    counter: AtomicU64,
    finished: Notify,
    /// The runtime jobs run on: the one the manager was made on, not the connection's lane
    /// that queued a job (see `server::lanes`).
    runtime: Option<tokio::runtime::Handle>,
    foreground: foreground::ForegroundThread,
}

impl Inner {
    fn update(&self, job_id: &str, change: impl FnOnce(&mut JobRecord)) -> JobResult<()> {
        let mut job = self
            .store
            .job(job_id)?
            .ok_or_else(|| JobError::NoSuchJob(job_id.to_owned()))?;
        change(&mut job);
        job.updated_at = crate::storage::now_micros();
        self.store.apply(&Command::PutJob(job))?;
        Ok(())
    }
}

/// `job`, ended as failed with `message`.
fn failed(job: JobRecord, message: String) -> JobRecord {
    let now = crate::storage::now_micros();
    JobRecord {
        status: JobStatus::Failed,
        message: Some(message),
        finished_at: Some(now),
        updated_at: now,
        ..job
    }
}

/// What a restart found: jobs it failed because they were running, and jobs still queued.
#[derive(Debug, Default)]
pub struct Recovered {
    pub interrupted: Vec<JobRecord>,
    pub queued: Vec<JobRecord>,
}

#[derive(Clone)]
pub struct JobManager {
    inner: Arc<Inner>,
}

impl JobManager {
    pub fn new(store: Arc<Store>, max_concurrent: usize) -> JobResult<JobManager> {
        let foreground = foreground::ForegroundThread::start().map_err(|e| {
            JobError::Failed(format!("starting the job manager's writer thread: {e}"))
        })?;
        Ok(JobManager {
            inner: Arc::new(Inner {
                store,
                slots: Arc::new(Semaphore::new(max_concurrent)),
                exclusive: Arc::new(Semaphore::new(1)),
                running: Mutex::default(),
                objects: Mutex::default(),
                counter: AtomicU64::new(0),
                finished: Notify::new(),
                runtime: tokio::runtime::Handle::try_current().ok(),
                foreground,
            }),
        })
    }

    /// Marks jobs a crash interrupted as failed, so they can be cleaned up, and returns them
    /// with the jobs still queued (to be run again).
    pub fn recover(&self) -> JobResult<Recovered> {
        let mut recovered = Recovered::default();
        for job in self.inner.store.jobs()? {
            match job.status {
                JobStatus::Running => {
                    let failed = failed(job, "server stopped while the job was running".into());
                    self.inner.store.apply(&Command::PutJob(failed.clone()))?;
                    recovered.interrupted.push(failed);
                }
                JobStatus::Queued => recovered.queued.push(job),
                _ => {}
            }
        }
        Ok(recovered)
    }

    /// Ends a queued job that can no longer run as it was submitted (say, its path is no longer
    /// allowed), with `message` saying why.
    pub fn fail_queued(&self, job: JobRecord, message: String) -> JobResult<()> {
        tracing::warn!(job_id = job.job_id, "not resuming a queued job: {message}");
        self.inner
            .store
            .apply(&Command::PutJob(failed(job, message)))?;
        Ok(())
    }

    /// Removes finished jobs older than `retention`.
    pub fn purge_finished(&self, retention: std::time::Duration) -> JobResult<usize> {
        let cutoff = crate::storage::now_micros() - retention.as_micros() as i64;
        let old: Vec<String> = self
            .inner
            .store
            .jobs()?
            .into_iter()
            .filter(|j| j.status.is_finished() && j.finished_at.unwrap_or(j.updated_at) < cutoff)
            .map(|j| j.job_id)
            .collect();
        if !old.is_empty() {
            self.inner.store.apply(&Command::DeleteJobs(old.clone()))?;
        }
        Ok(old.len())
    }

    fn new_job_id(&self, prefix: &str) -> String {
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let now = chrono::Utc::now();
        format!("{prefix}-{}-{n:04}", now.format("%Y%m%d%H%M%S%6f"))
    }

    /// Queues `work` and returns its job id at once; the job runs in the background.
    pub fn submit(&self, work: Arc<dyn JobWork>, created_by: &str) -> JobResult<String> {
        let now = crate::storage::now_micros();
        let record = JobRecord {
            job_id: self.new_job_id(work.id_prefix()),
            job_type: work.job_type().to_owned(),
            status: JobStatus::Queued,
            parameters: work.parameters().to_string(),
            message: None,
            created_by: created_by.to_owned(),
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            bytes_total: None,
            bytes_done: 0,
        };
        let job_id = record.job_id.clone();
        self.inner.store.apply(&Command::PutJob(record))?;
        self.spawn(job_id.clone(), work);
        Ok(job_id)
    }

    /// Runs an already persisted queued job (after a restart).
    pub fn resume(&self, job_id: String, work: Arc<dyn JobWork>) {
        self.spawn(job_id, work);
    }

    fn spawn(&self, job_id: String, work: Arc<dyn JobWork>) {
        let cancelled = Arc::new(AtomicBool::new(false));
        self.inner
            .running
            .lock()
            .expect("running jobs")
            .insert(job_id.clone(), cancelled.clone());
        let inner = self.inner.clone();
        let runtime = (inner.runtime.clone()).unwrap_or_else(tokio::runtime::Handle::current);
        runtime.spawn(async move {
            // Taken before a slot, so jobs waiting on an object do not hold slots others need.
            let object_lock = work.serialized_on().map(|object| {
                inner
                    .objects
                    .lock()
                    .expect("object locks")
                    .entry(object)
                    .or_default()
                    .clone()
            });
            let _object = match &object_lock {
                Some(lock) => Some(lock.clone().lock_owned().await),
                None => None,
            };
            let _slot = inner
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("job slots stay open");
            let _exclusive = if work.exclusive() {
                Some(
                    inner
                        .exclusive
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("exclusive slot"),
                )
            } else {
                None
            };
            let ctx = JobContext {
                store: inner.store.clone(),
                job_id: job_id.clone(),
                cancelled: cancelled.clone(),
                manager: inner.clone(),
            };
            let outcome = if cancelled.load(Ordering::SeqCst) {
                Err(JobError::Cancelled)
            } else {
                let started = inner.update(&job_id, |job| {
                    job.status = JobStatus::Running;
                    job.started_at = Some(crate::storage::now_micros());
                });
                match started {
                    Ok(()) => {
                        tracing::info!(
                            job_id,
                            job_type = work.job_type(),
                            parameters = %work.parameters(),
                            "job started"
                        );
                        work.run(ctx).await
                    }
                    Err(e) => Err(e),
                }
            };
            let (status, message) = match outcome {
                Ok(message) => (JobStatus::Completed, message),
                Err(JobError::Cancelled) => {
                    (JobStatus::Cancelled, "cancelled by KILL JOB".to_owned())
                }
                Err(e) => (JobStatus::Failed, e.to_string()),
            };
            let mut figures = (0, None, 0);
            if let Err(e) = inner.update(&job_id, |job| {
                let finished_at = crate::storage::now_micros();
                let ran_micros = job.started_at.map_or(0, |started| finished_at - started);
                figures = (job.bytes_done, job.bytes_total, ran_micros / 1000);
                job.status = status;
                job.message = Some(message.clone());
                job.finished_at = Some(finished_at);
            }) {
                tracing::error!(job_id, "recording the end of the job: {e}");
            }
            let (bytes_done, bytes_total, elapsed_ms) = figures;
            tracing::info!(
                job_id,
                job_type = work.job_type(),
                status = status.as_str(),
                elapsed_ms,
                bytes_done,
                bytes_total,
                message,
                "job finished"
            );
            inner.running.lock().expect("running jobs").remove(&job_id);
            inner.finished.notify_waiters();
        });
    }

    /// KILL JOB: a queued job never starts; a running one stops at its next check.
    pub fn cancel(&self, job_id: &str) -> JobResult<()> {
        let flag = self
            .inner
            .running
            .lock()
            .expect("running jobs")
            .get(job_id)
            .cloned();
        // A job leaves the running set just after its final status is recorded.
        let finished = || {
            self.inner
                .store
                .job(job_id)
                .ok()
                .flatten()
                .is_some_and(|job| job.status.is_finished())
        };
        match flag {
            Some(_) if finished() => Err(JobError::AlreadyFinished(job_id.to_owned())),
            Some(flag) => {
                flag.store(true, Ordering::SeqCst);
                Ok(())
            }
            None => match self.inner.store.job(job_id)? {
                Some(_) => Err(JobError::AlreadyFinished(job_id.to_owned())),
                None => Err(JobError::NoSuchJob(job_id.to_owned())),
            },
        }
    }

    /// Waits for a job to finish and returns its final row.
    pub async fn wait(&self, job_id: &str) -> JobResult<JobRecord> {
        loop {
            let notified = self.inner.finished.notified();
            tokio::pin!(notified);
            // Registered before the check, so a finish between the two still wakes us.
            notified.as_mut().enable();
            let job = self
                .inner
                .store
                .job(job_id)?
                .ok_or_else(|| JobError::NoSuchJob(job_id.to_owned()))?;
            let running = self
                .inner
                .running
                .lock()
                .expect("running jobs")
                .contains_key(job_id);
            if job.status.is_finished() && !running {
                return Ok(job);
            }
            notified.await;
        }
    }

    /// Waits (bounded) for running jobs to end, for a clean shutdown.
    pub async fn wait_idle(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.finished.notified();
            if self.inner.running.lock().expect("running jobs").is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}
