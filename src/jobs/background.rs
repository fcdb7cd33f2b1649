//! Where a job's blocking work runs: on a thread of its own at a lower CPU priority than the
//! threads serving clients. A flush's Parquet encoding, a backup's compression and an index
//! build can each keep a core busy for minutes; on a busy machine the scheduler then gives
//! client statements the cores first and the job what they leave, and on an idle machine the
//! job runs at full speed. Threads the work starts (the backup's compressors) inherit the
//! priority.

use std::panic::AssertUnwindSafe;

use super::{JobError, JobResult};

/// How far below the clients a job's threads run, as niceness added to the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPriority {
    /// Flushes and index builds: at niceness +10 the scheduler weighs a job thread about a
    /// tenth of a client thread when both want a core, so a flush keeps draining memtables
    /// (writes stall when it falls behind) on a busy server.
    Low,
    /// Backups, restore staging and verification, which no client waits on: Linux's SCHED_IDLE
    /// policy (and niceness 19 where that is refused). A SCHED_IDLE thread runs only on a core
    /// no other thread wants, and a waking client thread preempts it at once, where a niceness
    /// 19 thread may finish its time slice first. With ISA-L compressing, 16 clients of the
    /// mixed workload during a backup (`bench/backup_under_load.sh 1.0 3`, two runs each,
    /// 2026-12-07) kept 0.72x and 0.75x of their throughput with a p99 of 2.01x and 2.05x,
    /// against 0.57x and 0.59x with a p99 of 2.86x and 2.84x at niceness 19; the backup took
    /// 2.87x and 3.34x its idle time instead of 1.97x and 1.82x (7.9 and 9.7 s instead of 5.9
    /// and 5.3).
    Lowest,
}

impl JobPriority {
    fn niceness_added(self) -> i32 {
        match self {
            JobPriority::Low => 10,
            // setpriority caps at 19 whatever the caller's niceness.
            JobPriority::Lowest => 19,
        }
    }
}

/// Virtual size of a job thread's stack, as the runtime's threads have: untouched pages cost no
/// memory.
const JOB_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Runs `work` on a new lower-priority thread named `kalamdb-<what>` and waits for it without
/// holding an async worker. A panic in `work` fails the job instead of the server.
pub async fn run_below_clients<T: Send + 'static>(
    what: &str,
    priority: JobPriority,
    work: impl FnOnce() -> T + Send + 'static,
) -> JobResult<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    // Inside the runtime's context, as tokio's blocking threads are.
    let runtime = tokio::runtime::Handle::try_current().ok();
    std::thread::Builder::new()
        .name(format!("kalamdb-{what}"))
        .stack_size(JOB_STACK_BYTES)
        .spawn(move || {
            let _context = runtime.as_ref().map(|r| r.enter());
            lower_this_threads_priority(priority);
            let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(work)));
        })
        .map_err(|e| JobError::Failed(format!("starting the {what} thread: {e}")))?;
    match result.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => Err(JobError::Failed(format!(
            "{what} failed: {}",
            panic_message(panic.as_ref())
        ))),
        Err(_) => Err(JobError::Failed(format!("{what} thread ended early"))),
    }
}

/// What a caught panic said, when it said it with a string.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// On Linux a thread id names one thread to setpriority. Failure only costs the foreground
/// its head start, so it is logged, not fatal.
fn lower_this_threads_priority(priority: JobPriority) {
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(thread)).unwrap_or(0);
        if let Err(e) =
            rustix::process::setpriority_process(Some(thread), current + priority.niceness_added())
        {
            tracing::debug!("lowering a job thread's priority: {e}");
        }
        if priority == JobPriority::Lowest {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: `param` outlives the call, which only reads it; pid 0 is this thread.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
                tracing::debug!(
                    "giving a job thread the idle policy: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_at_a_lower_priority_than_its_caller_and_returns_its_value() {
        let caller = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        for (priority, added) in [(JobPriority::Low, 10), (JobPriority::Lowest, 19)] {
            let (value, niceness) = run_below_clients("test", priority, || {
                let me = rustix::thread::gettid();
                (42, rustix::process::getpriority_process(Some(me)).unwrap())
            })
            .await
            .unwrap();
            assert_eq!(value, 42);
            // Capped at 19, the lowest priority there is.
            assert_eq!(niceness, (caller + added).min(19), "{priority:?}");
        }
    }

    #[tokio::test]
    async fn threads_the_work_starts_inherit_its_priority() {
        let caller = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let (job, started) = run_below_clients("test", JobPriority::Lowest, || {
            let job = rustix::process::getpriority_process(Some(rustix::thread::gettid()));
            let started = std::thread::spawn(|| {
                rustix::process::getpriority_process(Some(rustix::thread::gettid()))
            })
            .join()
            .unwrap();
            (job.unwrap(), started.unwrap())
        })
        .await
        .unwrap();
        assert_eq!(job, (caller + 19).min(19));
        assert_eq!(started, job);
    }

    /// This thread's scheduling policy.
    fn policy() -> i32 {
        // SAFETY: reads the calling thread's policy; no memory is passed.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[tokio::test]
    async fn the_lowest_priority_runs_under_the_idle_policy_and_so_do_the_threads_it_starts() {
        let (job, started) = run_below_clients("test", JobPriority::Lowest, || {
            (policy(), std::thread::spawn(policy).join().unwrap())
        })
        .await
        .unwrap();
        assert_eq!((job, started), (libc::SCHED_IDLE, libc::SCHED_IDLE));
        let low = run_below_clients("test", JobPriority::Low, policy)
            .await
            .unwrap();
        assert_eq!(low, libc::SCHED_OTHER);
    }

    #[tokio::test]
    async fn a_panic_in_the_work_fails_the_job_and_not_the_caller() {
        let outcome =
            run_below_clients("test", JobPriority::Low, || -> u32 { panic!("boom") }).await;
        match outcome {
            Err(JobError::Failed(message)) => assert!(message.contains("boom"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
