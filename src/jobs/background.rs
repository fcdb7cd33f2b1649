//! Where a job's blocking work runs: on a thread of its own at a lower CPU priority than the
//! threads serving clients. A flush's Parquet encoding, a backup's compression and an index
//! build can each keep a core busy for minutes; on a busy machine the scheduler then gives
//! client statements the cores first and the job what they leave, and on an idle machine the
//! job runs at full speed. Threads the work starts (the backup's compressors) inherit the
//! priority.

use std::panic::AssertUnwindSafe;

use super::{JobError, JobResult};

/// Added to the niceness of job threads. At 10 the scheduler weighs a job thread about a tenth
/// of a client thread when both want a core.
const JOB_NICENESS: i32 = 10;
/// Virtual size of a job thread's stack, as the runtime's threads have: untouched pages cost no
/// memory.
const JOB_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Runs `work` on a new lower-priority thread named `kalamdb-<what>` and waits for it without
/// holding an async worker. A panic in `work` fails the job instead of the server.
pub async fn run_below_clients<T: Send + 'static>(
    what: &str,
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
            lower_this_threads_priority();
            let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(work)));
        })
        .map_err(|e| JobError::Failed(format!("starting the {what} thread: {e}")))?;
    match result.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(JobError::Failed(format!("{what} failed: {message}")))
        }
        Err(_) => Err(JobError::Failed(format!("{what} thread ended early"))),
    }
}

/// On Linux a thread id names one thread to setpriority. Failure only costs the foreground
/// its head start, so it is logged, not fatal.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(thread)).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(Some(thread), current + JOB_NICENESS) {
            tracing::debug!("lowering a job thread's priority: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_at_a_lower_priority_than_its_caller_and_returns_its_value() {
        let caller = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let (value, niceness) = run_below_clients("test", || {
            let me = rustix::thread::gettid();
            (42, rustix::process::getpriority_process(Some(me)).unwrap())
        })
        .await
        .unwrap();
        assert_eq!(value, 42);
        // Capped at 19, the lowest priority there is.
        assert_eq!(niceness, (caller + JOB_NICENESS).min(19));
    }

    #[tokio::test]
    async fn a_panic_in_the_work_fails_the_job_and_not_the_caller() {
        let outcome = run_below_clients("test", || -> u32 { panic!("boom") }).await;
        match outcome {
            Err(JobError::Failed(message)) => assert!(message.contains("boom"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
