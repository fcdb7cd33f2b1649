//! A node's life: start-up and shutdown of everything below the protocol. It finishes a staged
//! restore before the data directory is opened, opens the store, starts the engine (whose job
//! manager resumes queued jobs), runs the housekeeping timers and the backup schedules, hands the engine to the
//! PostgreSQL server until shutdown, then waits for jobs and flushes the store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::exec::{Engine, ExecError};
use crate::server::{self, ServerError};
use crate::storage::{Durability, StorageError, Store};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("pending restore: {0}")]
    Restore(#[from] crate::backup::SwapError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// How often expired job rows are purged.
const JOB_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs a node on `config` until `shutdown` resolves, then stops it cleanly.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let config = Arc::new(config);
    // A staged restore is swapped in before the data directory is opened.
    let swapped = crate::backup::prepare_data_dir(
        &config.storage.data_path,
        config.source_path.as_deref(),
        config.backup.keep_pre_restore,
    )?;
    let store = Arc::new(Store::open(
        &config.storage.data_path,
        Durability {
            sync_writes: config.storage.sync_writes,
            wal_enabled: config.storage.wal_enabled,
        },
    )?);
    if let Some(swapped) = &swapped {
        crate::backup::finish_restore(&store, swapped)?;
    }
    tracing::info!(
        data = %store.dir().root().display(),
        config = %config.source_path.as_ref().map_or("embedded defaults".into(), |p| p.display().to_string()),
        "opened data directory"
    );
    let engine = Engine::start(store.clone(), config.clone())?;
    let housekeeping = housekeeping(engine.clone(), &config);
    let schedules = tokio::spawn(engine.clone().run_backup_schedules());
    let served = server::serve(engine.clone(), config.clone(), shutdown).await;
    housekeeping.abort();
    schedules.abort();
    let grace = Duration::from_secs(config.server.shutdown_timeout_seconds);
    if !engine.jobs().wait_idle(grace).await {
        tracing::warn!(
            "background jobs still running after {grace:?}; they will be marked failed at the next start"
        );
    }
    drop(engine);
    served?;
    store.flush()?;
    tracing::info!("stopped");
    Ok(())
}

/// Stream evictions every `[streams] eviction_interval_seconds`, expired job rows every hour.
fn housekeeping(engine: Arc<Engine>, config: &Config) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(config.streams.eviction_interval_seconds.max(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        let mut last_purge = tokio::time::Instant::now();
        loop {
            ticks.tick().await;
            engine.queue_stream_evictions();
            if last_purge.elapsed() >= JOB_PURGE_INTERVAL {
                last_purge = tokio::time::Instant::now();
                if let Err(e) = engine.purge_expired_jobs() {
                    tracing::warn!("purging expired jobs: {e}");
                }
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
