//! One node of a cluster: its Raft instance on the store, the service that answers the other
//! nodes, and what the rest of the server asks of it: apply a command cluster-wide (on the
//! leader, or forwarded to it), and wait until a read here would see every write acknowledged
//! anywhere before it. Both are bounded in time: a node that cannot reach a quorum answers
//! with [`ClusterError::Unavailable`] instead of waiting for one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::{BasicNode, Raft, RaftMetrics, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::lease::{self, Lease};
use super::log_store::LogStore;
use super::members::{self, Member, Reports};
use super::network::Network;
use super::proposer::Proposer;
use super::rpc::{self, Forwarded, MembershipChange, MembershipError, RaftServiceClient};
use super::state_machine::{self, SnapshotReport, StateMachine};
use super::transport::Transport;
use super::{NodeId, Outcome, TypeConfig};
use crate::storage::{Command, CommitFuture, Replicator, StorageError, Store};

/// How often this node asks the others for their status (`system.cluster`).
const MEMBER_POLL: Duration = Duration::from_secs(1);

/// How long a membership change may take: adding a node waits until it has caught up.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long building a snapshot may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long to wait before asking again while a leader is being elected.
const ELECTION_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No leader took the request in time: the cluster has lost its quorum or is still
    /// electing. Nothing was proposed.
    #[error(
        "no leader took the request within {0:?}: the cluster has no quorum or is electing a leader"
    )]
    Unavailable(Duration),
    /// This node leads and proposed the write, but no quorum confirmed it in time: it is
    /// applied if a quorum later accepts it, and lost if a new leader overwrites it.
    #[error(
        "no quorum confirmed the write within {0:?}; it takes effect only if the cluster later commits it"
    )]
    NoQuorum(Duration),
    /// The write may or may not have been applied: the leader's answer did not come back, or
    /// leadership moved or the Raft core stopped while it was pending.
    #[error("the write may or may not have taken effect: {0}")]
    OutcomeUnknown(String),
    /// The leader committed and applied the write, but this node had not applied it in time.
    #[error("the write was committed, but this node had not applied it after {0:?}")]
    NotAppliedHere(Duration),
    /// Membership changes and the like must be made on the leader.
    #[error("this node is not the leader{}", .0.map(|id| format!("; node {id} is")).unwrap_or_default())]
    NotLeader(Option<NodeId>),
    /// A membership change the cluster cannot make (an unreachable node, one that is not a
    /// member); nothing changed.
    #[error("{0}")]
    Refused(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// Raft's timing and snapshot settings for a node.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// How long a write or a read barrier may wait for a leader and a quorum.
    pub request_timeout: Duration,
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_timeout: (Duration, Duration),
    /// A snapshot is built once this many entries were applied since the last one.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, for followers only a little behind.
    pub keep_behind_snapshot: u64,
    /// How this node connects to the others and takes their connections.
    pub transport: Transport,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            request_timeout: Duration::from_secs(5),
            heartbeat: Duration::from_millis(250),
            election_timeout: (Duration::from_millis(1000), Duration::from_millis(2000)),
            snapshot_every: 100_000,
            keep_behind_snapshot: 10_000,
            transport: Transport::Plain,
        }
    }
}

/// This node's part in the cluster.
pub struct Replica {
    id: NodeId,
    raft: Raft<TypeConfig>,
    server: tokio::task::JoinHandle<()>,
    /// This node's read lease while it leads, and the task renewing it.
    lease: Arc<Lease>,
    lease_keeper: tokio::task::JoinHandle<()>,
    /// The other members' last reports of themselves, and the task asking for them.
    reports: Arc<Reports>,
    observer: tokio::task::JoinHandle<()>,
    /// The connection to the leader that forwarded requests use, and which node that is.
    leader: tokio::sync::Mutex<Option<(NodeId, RaftServiceClient)>>,
    request_timeout: Duration,
    store: Arc<Store>,
    transport: Transport,
    /// The runtime the node started on, where shared connections to other nodes live.
    runtime: tokio::runtime::Handle,
    /// Proposes this node's writes, and those other nodes forward, grouped (while it leads).
    proposer: Arc<Proposer>,
}

impl Replica {
    /// Starts node `id` on `store`, answering the other nodes on `listener`.
    pub async fn start(
        id: NodeId,
        listener: TcpListener,
        store: Arc<Store>,
        settings: &ReplicaSettings,
    ) -> Result<Replica, ClusterError> {
        let millis = |d: Duration| d.as_millis() as u64;
        let config = openraft::Config {
            cluster_name: "kalamdb".into(),
            heartbeat_interval: millis(settings.heartbeat),
            election_timeout_min: millis(settings.election_timeout.0),
            election_timeout_max: millis(settings.election_timeout.1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
            max_in_snapshot_log_to_keep: settings.keep_behind_snapshot,
            // With grouped writes of up to 1 MiB of rows (about twice that encoded), an append
            // message of this many entries stays well inside the largest frame between nodes.
            max_payload_entries: 64,
            // A snapshot's last chunk is answered once the follower has installed it, which
            // takes as long as replacing its data does: openraft's 200 ms would fail every
            // install but the smallest, and send the snapshot again and again.
            install_snapshot_timeout: millis(SNAPSHOT_TIMEOUT),
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let machine = StateMachine::new(store.clone()).map_err(raft_error)?;
        let log = LogStore::new(store.clone());
        let raft = Raft::new(
            id,
            Arc::new(config),
            Network {
                transport: settings.transport.clone(),
            },
            log,
            machine,
        )
        .await
        .map_err(raft_error)?;
        let lease = Arc::new(Lease::new(id, settings.election_timeout.0 / 2));
        let proposer = Arc::new(Proposer::start(raft.clone()));
        let server = tokio::spawn(rpc::serve(
            id,
            listener,
            settings.transport.clone(),
            proposer.clone(),
            raft.clone(),
            lease.clone(),
            store.clone(),
        ));
        let lease_keeper =
            tokio::spawn(lease::keep(raft.clone(), lease.clone(), settings.heartbeat));
        let reports = Arc::new(Reports::default());
        let observer = tokio::spawn(members::observe(
            id,
            raft.clone(),
            settings.transport.clone(),
            reports.clone(),
            MEMBER_POLL,
        ));
        Ok(Replica {
            id,
            raft,
            server,
            lease,
            lease_keeper,
            reports,
            observer,
            leader: tokio::sync::Mutex::new(None),
            request_timeout: settings.request_timeout,
            store,
            transport: settings.transport.clone(),
            proposer,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Routes the store's writes through this replica from now on (see `storage::Replicator`).
    pub fn take_over_writes(self: &Arc<Self>) {
        self.store
            .install_replicator(Arc::new(ReplicaCommits(Arc::downgrade(self))));
    }

    /// Whether this node leads the cluster now (it may learn otherwise at any moment).
    pub fn leads(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    /// Forms a new cluster of `members`; a node that is already part of one ignores it.
    pub async fn initialize(
        &self,
        members: BTreeMap<NodeId, BasicNode>,
    ) -> Result<(), ClusterError> {
        if self.raft.is_initialized().await.map_err(raft_error)? {
            return Ok(());
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(raft_error(e)),
        }
    }

    /// Applies `command` on every node: proposed here when this node leads, else forwarded to
    /// the leader. Returns once a majority has it and it is applied on the leader and here, so
    /// the client's next read on this node sees it. A flushed segment travels with the command
    /// (see `Store::ship`).
    pub async fn write(&self, command: Command) -> Result<Outcome, ClusterError> {
        let command = self
            .store
            .ship(command)
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let deadline = Instant::now() + self.request_timeout;
        loop {
            // A node that does not lead proposes nothing; one that leads may have appended the
            // entry before any failure it reports, so only the former may send it again.
            let leader = self.raft.metrics().borrow().current_leader;
            let leads = leader == Some(self.id);
            let forward = if leads || leader.is_none() {
                match tokio::time::timeout_at(deadline, self.proposer.write(command.clone())).await
                {
                    // Leading now means the entry may have been appended meanwhile.
                    Err(_) if leads || self.metrics().current_leader == Some(self.id) => {
                        return Err(ClusterError::NoQuorum(self.request_timeout));
                    }
                    Err(_) => return Err(ClusterError::Unavailable(self.request_timeout)),
                    Ok(Ok(response)) => return Ok(response.data),
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))))
                        if !leads =>
                    {
                        forward
                    }
                    Ok(Err(e)) => return Err(proposal_error(e)),
                }
            } else {
                rpc::leader_of(&self.metrics())
            };
            let Some(client) = self.leader_client(&forward, deadline).await else {
                self.wait_for_election(deadline).await?;
                continue;
            };
            let context = rpc::deadline_in(deadline.saturating_duration_since(Instant::now()));
            match client.client_write(context, command.clone()).await {
                Ok(Forwarded::Applied(response)) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    self.raft
                        .wait(Some(remaining))
                        .applied_index_at_least(Some(response.log_id.index), "forwarded write")
                        .await
                        .map_err(|_| ClusterError::NotAppliedHere(self.request_timeout))?;
                    return Ok(response.data);
                }
                Ok(Forwarded::NotProposed(_)) => {
                    self.forget_leader().await;
                    self.wait_for_election(deadline).await?;
                }
                Ok(Forwarded::Failed(e)) => {
                    return Err(ClusterError::OutcomeUnknown(format!(
                        "the leader failed while it handled the write: {e}"
                    )));
                }
                // The request never left this node.
                Err(tarpc::client::RpcError::Send(_)) => {
                    self.forget_leader().await;
                    self.wait_for_election(deadline).await?;
                }
                Err(e) => {
                    self.forget_leader().await;
                    return Err(ClusterError::OutcomeUnknown(format!(
                        "the connection to the leader failed while it handled the write: {e}"
                    )));
                }
            }
        }
    }

    /// Returns once this node has applied every write the cluster acknowledged before the
    /// call: the leader confirms it still leads and names its commit point, and this node
    /// waits to have applied that far.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        // A leader holding its lease has applied every acknowledged write already.
        if self.lease.serves_local_reads(&self.raft) {
            return Ok(());
        }
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let forward =
                match tokio::time::timeout(remaining, self.raft.ensure_linearizable()).await {
                    Err(_) => return Err(ClusterError::Unavailable(self.request_timeout)),
                    Ok(Ok(_)) => return Ok(()),
                    Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)))) => {
                        forward
                    }
                    Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                        self.wait_for_election(deadline).await?;
                        continue;
                    }
                    Ok(Err(e)) => return Err(raft_error(e)),
                };
            let Some(client) = self.leader_client(&forward, deadline).await else {
                self.wait_for_election(deadline).await?;
                continue;
            };
            let context = rpc::deadline_in(deadline.saturating_duration_since(Instant::now()));
            let read_index = match client.read_index(context).await {
                Ok(Ok(read_index)) => read_index,
                Ok(Err(_)) | Err(_) => {
                    // Not the leader any more, or unreachable: nothing to undo, ask again.
                    self.forget_leader().await;
                    self.wait_for_election(deadline).await?;
                    continue;
                }
            };
            let Some(read_index) = read_index else {
                return Ok(());
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            return self
                .raft
                .wait(Some(remaining))
                .applied_index_at_least(Some(read_index.index), "read barrier")
                .await
                .map(|_| ())
                .map_err(|_| ClusterError::Unavailable(self.request_timeout));
        }
    }

    /// Changes the cluster's members: on the leader, or forwarded to it. Adding a node
    /// returns once it has caught up (from a snapshot when the log it needs was purged) and
    /// votes, which may take as long as copying the data takes.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let metrics = self.metrics();
            if metrics.current_leader == Some(self.id) {
                return rpc::change_membership(&self.raft, &self.transport, change)
                    .await
                    .map_err(membership_error);
            }
            let Some(client) = self
                .leader_client(&rpc::leader_of(&metrics), deadline)
                .await
            else {
                self.wait_for_election(deadline).await?;
                continue;
            };
            return match client
                .change_membership(rpc::deadline_in(MEMBERSHIP_TIMEOUT), change.clone())
                .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(MembershipError::NotLeader(_))) => {
                    self.forget_leader().await;
                    self.wait_for_election(deadline).await?;
                    continue;
                }
                Ok(Err(refused)) => Err(membership_error(refused)),
                Err(e) => {
                    self.forget_leader().await;
                    Err(ClusterError::OutcomeUnknown(format!(
                        "the connection to the leader failed while it handled the change: {e}"
                    )))
                }
            };
        }
    }

    /// Every member of the cluster as this node knows it, itself first.
    pub fn members(&self) -> Vec<Member> {
        self.reports.members(self.id, &self.raft)
    }

    /// Raft's view of this node and the cluster: role, term, log and applied indexes, members.
    pub fn metrics(&self) -> RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// Builds a snapshot on this node now and returns it once openraft has taken it.
    pub async fn snapshot(&self) -> Result<SnapshotReport, ClusterError> {
        state_machine::build_now(
            &self.raft,
            &self.store.raft_snapshot_dir(),
            SNAPSHOT_TIMEOUT,
        )
        .await
        .map_err(ClusterError::Raft)
    }

    /// Builds a snapshot on every member at once and reports each, this node first: a
    /// member that cannot be reached or fails reports why.
    pub async fn snapshot_everywhere(&self) -> Vec<(NodeId, Result<SnapshotReport, String>)> {
        let members = self.members();
        let builds = members.iter().map(|member| async move {
            let report = if member.node_id == self.id {
                self.snapshot().await.map_err(|e| e.to_string())
            } else {
                match rpc::connect(&self.transport, &member.address, Duration::from_secs(1)).await {
                    Ok(client) => client
                        .take_snapshot(rpc::deadline_in(SNAPSHOT_TIMEOUT))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string())),
                    Err(e) => Err(format!("unreachable: {e}")),
                }
            };
            (member.node_id, report)
        });
        futures::future::join_all(builds).await
    }

    /// A cluster started on a store with history (a single node's data, a restored archive)
    /// holds that history in no log entry: a node added while the log still starts at its
    /// first entry would replay it from there and miss the history. Builds a snapshot and
    /// purges the log behind it, once, so that every node added later is seeded from a
    /// snapshot.
    pub async fn seal_history(&self) -> Result<(), ClusterError> {
        let base = self
            .store
            .replication_base_seq()
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        if base == 0 || self.metrics().purged.is_some() {
            return Ok(());
        }
        let report = self.snapshot().await?;
        self.purge_log(report.index).await?;
        self.raft
            .wait(Some(self.request_timeout))
            .metrics(
                |m| m.purged.is_some_and(|id| id.index >= report.index),
                "log purged behind the snapshot",
            )
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// Drops log entries up to `index`, which a snapshot must already hold.
    pub async fn purge_log(&self, index: u64) -> Result<(), ClusterError> {
        self.raft
            .trigger()
            .purge_log(index)
            .await
            .map_err(raft_error)
    }

    /// The underlying Raft instance, for waits on its metrics.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    pub async fn shutdown(&self) {
        self.lease_keeper.abort();
        self.observer.abort();
        self.server.abort();
        let _ = self.raft.shutdown().await;
    }

    /// The connection to the leader `forward` names, made within what is left before
    /// `deadline` (at most a second) if there is none yet.
    async fn leader_client(
        &self,
        forward: &ForwardToLeader<NodeId, BasicNode>,
        deadline: Instant,
    ) -> Option<RaftServiceClient> {
        let (Some(id), Some(node)) = (forward.leader_id, forward.leader_node.as_ref()) else {
            return None;
        };
        if id == self.id {
            return None;
        }
        let mut leader = self.leader.lock().await;
        if let Some((known, client)) = leader.as_ref()
            && *known == id
        {
            return Some(client.clone());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let (transport, address) = (self.transport.clone(), node.addr.clone());
        let connect = async move {
            rpc::connect(&transport, &address, left.min(Duration::from_secs(1))).await
        };
        // Made on the node's runtime, not the lane of the statement that asked first: every
        // lane and job shares the client, whose task and socket live where it was made.
        let client = self.runtime.spawn(connect).await.ok()?.ok()?;
        *leader = Some((id, client.clone()));
        Some(client)
    }

    async fn forget_leader(&self) {
        *self.leader.lock().await = None;
    }

    async fn wait_for_election(&self, deadline: Instant) -> Result<(), ClusterError> {
        if Instant::now() + ELECTION_POLL >= deadline {
            return Err(ClusterError::Unavailable(self.request_timeout));
        }
        tokio::time::sleep(ELECTION_POLL).await;
        Ok(())
    }
}

/// The store's path into the cluster. It holds the replica weakly: the replica holds the
/// store, and a stopped replica commits nothing.
struct ReplicaCommits(std::sync::Weak<Replica>);

impl Replicator for ReplicaCommits {
    fn commit(&self, command: Command) -> CommitFuture<'_> {
        let replica = self.0.upgrade();
        Box::pin(async move {
            let Some(replica) = replica else {
                return Err(StorageError::ClusterUnavailable(
                    "this node's cluster service has stopped".into(),
                ));
            };
            match replica.write(command).await {
                Ok(outcome) => outcome.map_err(StorageError::Conflict),
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// Whether a failed write may have been committed decides what the client is told: nothing
/// happened (safe to send again), or the outcome is unknown.
impl From<ClusterError> for StorageError {
    fn from(e: ClusterError) -> StorageError {
        let message = e.to_string();
        match e {
            ClusterError::Unavailable(_)
            | ClusterError::NotLeader(_)
            | ClusterError::Raft(_)
            | ClusterError::Refused(_) => StorageError::ClusterUnavailable(message),
            ClusterError::NoQuorum(_)
            | ClusterError::OutcomeUnknown(_)
            | ClusterError::NotAppliedHere(_) => StorageError::ClusterOutcomeUnknown(message),
        }
    }
}

/// What a write this node proposed, and that Raft refused, tells the client (a leader being
/// forwarded to is handled before). The entry may have been appended before leadership moved
/// away, or before the Raft core stopped, panicked or lost its storage (every fatal error,
/// including the proposer ending with the write queued): its outcome is unknown, and a client
/// told "nothing happened" could apply it twice. Only the other refusals come before proposing.
fn proposal_error(e: rpc::WriteError) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            ClusterError::OutcomeUnknown("leadership moved while the write was pending".into())
        }
        RaftError::Fatal(fatal) => ClusterError::OutcomeUnknown(format!(
            "the node's Raft core stopped while the write was pending: {fatal}"
        )),
        refused => raft_error(refused),
    }
}

fn raft_error(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Raft(e.to_string())
}

fn membership_error(e: MembershipError) -> ClusterError {
    match e {
        MembershipError::NotLeader(leader) => ClusterError::NotLeader(leader),
        MembershipError::Refused(message) => ClusterError::Refused(message),
    }
}

#[cfg(test)]
mod tests {
    use openraft::error::{ChangeMembershipError, EmptyMembership, Fatal};

    use super::*;

    fn told(e: rpc::WriteError) -> StorageError {
        StorageError::from(proposal_error(e))
    }

    #[test]
    fn a_proposal_cut_short_by_a_stopped_core_or_a_lost_leadership_has_an_unknown_outcome() {
        for fatal in [Fatal::Stopped, Fatal::Panicked] {
            let e = told(RaftError::Fatal(fatal));
            assert!(matches!(e, StorageError::ClusterOutcomeUnknown(_)), "{e:?}");
        }
        let moved = ForwardToLeader {
            leader_id: Some(2),
            leader_node: None,
        };
        let e = told(RaftError::APIError(ClientWriteError::ForwardToLeader(
            moved,
        )));
        assert!(matches!(e, StorageError::ClusterOutcomeUnknown(_)), "{e:?}");
    }

    #[test]
    fn a_write_refused_before_it_was_proposed_is_safe_to_send_again() {
        let refused = ChangeMembershipError::EmptyMembership(EmptyMembership {});
        let e = told(RaftError::APIError(
            ClientWriteError::ChangeMembershipError(refused),
        ));
        assert!(matches!(e, StorageError::ClusterUnavailable(_)), "{e:?}");
    }
}
