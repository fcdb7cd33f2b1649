//! The job manager's foreground thread: where a job thread running below the clients (see
//! `background`) has the short pieces of its work done that take locks the clients also take.
//!
//! A job thread at the idle policy that holds such a lock is a priority inversion: a waking
//! client preempts it at once, and it gets the core back only when no client thread wants one,
//! so on a busy server every commit queued behind the lock waits for a moment of idle CPU. A
//! backup records its progress four times a second through `Store::apply`, which takes the apply
//! lock and, as its group's leader, the fsync lock, and it captures its point under the apply
//! lock. Measured (2026-12-07, release builds, 16 clients of the mixed workload, one 7 s backup
//! per run): the UPDATEs' p99 during a backup was 5.55 and 4.90 ms with this thread against 5.74
//! and 5.74 ms without, and `bench/backup_under_load.sh 1.0 3` gave a p99 of 1.49x and 1.61x
//! against 1.72x: within the runs' spread, so the inversion was not what made the clients wait
//! (most of that was the benchmark's own polling of `system.jobs`), but nothing a job does at the
//! idle policy can now hold a client's lock. The thread is started with the manager, at the
//! priority of the thread that starts the server, and so runs at the clients' priority whatever
//! the job's.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use super::{JobError, JobResult};

type Errand = Box<dyn FnOnce() + Send>;

/// One thread at the clients' priority that runs errands for job threads, one at a time.
pub(super) struct ForegroundThread {
    errands: mpsc::Sender<Errand>,
}

impl ForegroundThread {
    /// Starts the thread; it ends when the last handle is dropped.
    pub(super) fn start() -> std::io::Result<ForegroundThread> {
        let (errands, inbox) = mpsc::channel::<Errand>();
        std::thread::Builder::new()
            .name("kalamdb-job-writes".to_owned())
            .spawn(move || {
                for errand in inbox {
                    errand();
                }
            })?;
        Ok(ForegroundThread { errands })
    }

    /// Runs `errand` on the foreground thread and waits for its value. A panic in it fails
    /// the job that asked, not the thread.
    pub(super) fn run<T: Send + 'static>(
        &self,
        errand: impl FnOnce() -> T + Send + 'static,
    ) -> JobResult<T> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.errands
            .send(Box::new(move || {
                let _ = reply.send(std::panic::catch_unwind(AssertUnwindSafe(errand)));
            }))
            .map_err(|_| JobError::Failed("the job manager's writer thread has stopped".into()))?;
        match answer.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => Err(JobError::Failed(format!(
                "the job's work at the clients' priority failed: {}",
                super::background::panic_message(panic.as_ref())
            ))),
            Err(_) => Err(JobError::Failed(
                "the job manager's writer thread has stopped".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::background::{JobPriority, run_below_clients};

    fn policy_and_niceness() -> (i32, i32) {
        // SAFETY: reads the calling thread's policy; no memory is passed.
        let policy = unsafe { libc::sched_getscheduler(0) };
        let niceness =
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        (policy, niceness)
    }

    #[tokio::test]
    async fn errands_of_an_idle_policy_job_run_at_the_priority_of_the_thread_that_started_it() {
        let foreground = std::sync::Arc::new(ForegroundThread::start().unwrap());
        let starter = policy_and_niceness();
        let shared = foreground.clone();
        let (job, errand) = run_below_clients("test", JobPriority::Lowest, move || {
            (
                policy_and_niceness(),
                shared.run(policy_and_niceness).unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!(job.0, libc::SCHED_IDLE);
        assert_eq!(errand, starter);
    }

    #[test]
    fn a_panicking_errand_fails_its_caller_and_the_next_errand_still_runs() {
        let foreground = ForegroundThread::start().unwrap();
        match foreground.run(|| -> u32 { panic!("boom") }) {
            Err(JobError::Failed(message)) => assert!(message.contains("boom"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(foreground.run(|| 7).unwrap(), 7);
    }
}
