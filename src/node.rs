//! A node's life: start-up and shutdown of everything below the protocol. It finishes a staged
//! restore before the data directory is opened, opens the store, joins the cluster when
//! `[cluster]` is set (and waits until it can serve reads that see every acknowledged write),
//! starts the engine (whose job manager resumes queued jobs), runs the housekeeping timers and
//! the backup schedules, hands the engine to the PostgreSQL server until shutdown, then waits
//! for jobs, leaves the cluster's traffic and flushes the store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::replica::{ClusterError, Replica, ReplicaSettings};
use crate::cluster::transport::{Transport, TransportError};
use crate::config::{ClusterSection, Config, TlsSection};
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
    #[error("cluster: {0}")]
    Cluster(#[from] ClusterError),
    #[error("[cluster]: {0}")]
    ClusterHistory(&'static str),
    #[error("[cluster] TLS between nodes: {0}")]
    ClusterTransport(#[from] TransportError),
    #[error("[cluster] raft_address {address}: {source}")]
    RaftAddress {
        address: String,
        source: std::io::Error,
    },
}

/// How often a node waiting for its cluster says so.
const CLUSTER_WAIT_LOG_INTERVAL: Duration = Duration::from_secs(5);

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
    tokio::pin!(shutdown);
    let cluster = match &config.cluster {
        Some(settings) => {
            let replica = join_cluster(&store, settings, &config.tls).await?;
            tokio::select! {
                sealed = async {
                    until_serving(&replica).await;
                    replica.seal_history().await
                } => sealed?,
                () = &mut shutdown => {
                    replica.shutdown().await;
                    store.flush()?;
                    return Ok(());
                }
            }
            Some(replica)
        }
        None => None,
    };
    let engine = Engine::start(store.clone(), config.clone(), cluster.clone())?;
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
    if let Some(replica) = cluster {
        replica.shutdown().await;
    }
    served?;
    store.flush()?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts this node's Raft instance on `store`, answering the other nodes at `raft_address`,
/// and routes the store's writes through it. Unless the node joins an existing cluster, it
/// forms one with its peers (a node already in a cluster ignores that).
async fn join_cluster(
    store: &Arc<Store>,
    settings: &ClusterSection,
    tls: &TlsSection,
) -> Result<Arc<Replica>, NodeError> {
    // The configuration requires `ca` with TLS on, and TLS off loopback.
    let transport = match &settings.ca {
        Some(ca) if tls.enabled => {
            Transport::mutual_tls(&tls.cert, &tls.key, ca, settings.raft_address_is_loopback())?
        }
        _ => Transport::Plain,
    };
    let listener = tokio::net::TcpListener::bind(&settings.raft_address)
        .await
        .map_err(|source| NodeError::RaftAddress {
            address: settings.raft_address.clone(),
            source,
        })?;
    let millis = Duration::from_millis;
    let replica_settings = ReplicaSettings {
        request_timeout: millis(settings.request_timeout_ms),
        heartbeat: millis(settings.heartbeat_ms),
        election_timeout: (
            millis(settings.election_timeout_ms),
            millis(settings.election_timeout_ms * 2),
        ),
        snapshot_every: settings.snapshot_every,
        keep_behind_snapshot: settings.log_kept_behind_snapshot,
        transport,
    };
    // History that no log entry holds reaches other nodes only through a snapshot, which a
    // node that is alone in its cluster builds before anyone joins (`Replica::seal_history`).
    if (settings.join || !settings.peers.is_empty()) && store.holds_unreplicated_history()? {
        return Err(NodeError::ClusterHistory(if settings.join {
            "a node that joins a cluster starts with an empty data directory"
        } else {
            "a data directory that holds data becomes a cluster's first node alone: list no [[cluster.peer]], start it, then add the other nodes (join = true) with ALTER CLUSTER ADD NODE"
        }));
    }
    store.stripe_segment_ids(settings.node_id);
    let replica = Arc::new(
        Replica::start(settings.node_id, listener, store.clone(), &replica_settings).await?,
    );
    replica.take_over_writes();
    if !settings.join {
        let members = std::iter::once((settings.node_id, &settings.raft_address))
            .chain(settings.peers.iter().map(|p| (p.node_id, &p.raft_address)))
            .map(|(id, addr)| (id, openraft::BasicNode { addr: addr.clone() }))
            .collect();
        replica.initialize(members).await?;
    }
    tracing::info!(
        node_id = settings.node_id,
        raft_address = %settings.raft_address,
        "started cluster node"
    );
    Ok(replica)
}

/// Returns once a read on this node would see every write the cluster acknowledged: the
/// cluster has a leader and this node has caught up with it (a joining node, once added).
async fn until_serving(replica: &Replica) {
    let mut last_said = tokio::time::Instant::now();
    loop {
        match replica.read_barrier().await {
            Ok(()) => return,
            Err(e) if last_said.elapsed() >= CLUSTER_WAIT_LOG_INTERVAL => {
                tracing::info!("waiting for the cluster before serving clients: {e}");
                last_said = tokio::time::Instant::now();
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
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
