//! Traffic between nodes: one tarpc service over TCP carrying Raft's own calls (append,
//! vote, snapshot chunks) and the two a node needs from its leader (proposing a write a client
//! sent to a follower, and the read index a linearizable read waits for). Frames are
//! length-delimited MessagePack with field names, the encoding of the log itself.

use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, InstallSnapshotError, RaftError,
};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, ClientWriteResponse, InstallSnapshotRequest,
    InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tarpc::context::Context;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::{Deserializer, Serializer};
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::lease::Lease;
use super::proposer::Proposer;
use super::state_machine::SnapshotReport;
use super::transport::Transport;
use super::{LogId, NodeId, TypeConfig};
use crate::storage::{Command, Store};

/// The largest frame a node sends or accepts: an append of many large commands, or a
/// forwarded bulk write, stays far below it.
const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

pub type WriteError = RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>;
pub type ReadIndexError = RaftError<NodeId, CheckIsLeaderError<NodeId, BasicNode>>;

/// What became of a write forwarded to the node believed to lead.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Forwarded {
    /// Committed and applied on the leader.
    Applied(ClientWriteResponse<TypeConfig>),
    /// The node did not lead when the write arrived, so it proposed nothing; the write may be
    /// sent again, to the leader named here if it knows one.
    NotProposed(ForwardToLeader<NodeId, BasicNode>),
    /// Proposed, then failed: it may or may not be applied in the end.
    Failed(WriteError),
}

#[tarpc::service]
pub trait RaftService {
    async fn append_entries(
        request: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;
    async fn install_snapshot(
        request: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;
    async fn vote(request: VoteRequest<NodeId>) -> Result<VoteResponse<NodeId>, RaftError<NodeId>>;
    /// Proposes a command a client sent to another node if this node leads; answers once it
    /// is committed and applied here.
    async fn client_write(command: Command) -> Forwarded;
    /// Confirms this node still leads and returns the log id a linearizable read elsewhere
    /// must have applied before it reads.
    async fn read_index() -> Result<Option<LogId>, ReadIndexError>;
    /// This node's own view of itself, for `system.cluster` on the others.
    async fn status() -> NodeStatus;
    /// Builds a snapshot on this node now (`CLUSTER SNAPSHOT` run on another node).
    async fn take_snapshot() -> Result<SnapshotReport, String>;
    /// Makes a membership change another node was asked for, if this node leads.
    async fn change_membership(change: MembershipChange) -> Result<(), MembershipError>;
}

/// How long a node being added may take to catch up before the change is given up.
const CATCH_UP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1800);

/// A change of the cluster's members (`ALTER CLUSTER`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum MembershipChange {
    /// Node `id` at `addr` catches up as a learner, then votes.
    Add {
        id: NodeId,
        addr: String,
    },
    Remove {
        id: NodeId,
    },
}

/// Why a membership change was not made.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MembershipError {
    #[error("this node is not the leader")]
    NotLeader(Option<NodeId>),
    #[error("{0}")]
    Refused(String),
}

/// Makes `change` on `raft`, which must lead; returns once the new membership is committed
/// (an added node has caught up by then).
pub async fn change_membership(
    raft: &Raft<TypeConfig>,
    transport: &Transport,
    change: MembershipChange,
) -> Result<(), MembershipError> {
    let refused = |e: WriteError| match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            MembershipError::NotLeader(forward.leader_id)
        }
        other => MembershipError::Refused(other.to_string()),
    };
    match change {
        MembershipChange::Add { id, addr } => {
            // A mistyped address fails here, not after the catch-up's time limit.
            if let Err(e) = connect(transport, &addr, std::time::Duration::from_secs(2)).await {
                return Err(MembershipError::Refused(format!(
                    "node {id} at {addr} cannot be reached: {e}"
                )));
            }
            let caught_up = tokio::time::timeout(
                CATCH_UP_TIMEOUT,
                raft.add_learner(id, BasicNode { addr: addr.clone() }, true),
            )
            .await;
            match caught_up {
                Ok(added) => {
                    added.map_err(refused)?;
                }
                Err(_) => {
                    // A learner that never catches up must not stay in the membership.
                    let _ = raft
                        .change_membership(
                            openraft::ChangeMembers::RemoveNodes(std::collections::BTreeSet::from(
                                [id],
                            )),
                            false,
                        )
                        .await;
                    return Err(MembershipError::Refused(format!(
                        "node {id} at {addr} did not catch up within {CATCH_UP_TIMEOUT:?}; it was not added"
                    )));
                }
            }
            raft.change_membership(
                openraft::ChangeMembers::AddVoterIds(std::collections::BTreeSet::from([id])),
                false,
            )
            .await
            .map_err(refused)?;
        }
        MembershipChange::Remove { id } => {
            raft.change_membership(
                openraft::ChangeMembers::RemoveVoters(std::collections::BTreeSet::from([id])),
                false,
            )
            .await
            .map_err(refused)?;
        }
    }
    Ok(())
}

/// The leader `metrics` name, as openraft's forwarding hint.
pub fn leader_of(
    metrics: &openraft::RaftMetrics<NodeId, BasicNode>,
) -> ForwardToLeader<NodeId, BasicNode> {
    ForwardToLeader {
        leader_id: metrics.current_leader,
        leader_node: metrics.current_leader.and_then(|leader| {
            metrics
                .membership_config
                .membership()
                .get_node(&leader)
                .cloned()
        }),
    }
}

/// What a node reports of itself: its role, term and log positions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodeStatus {
    pub role: String,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
}

impl NodeStatus {
    /// Node `metrics`' view of itself.
    pub fn of(metrics: &openraft::RaftMetrics<NodeId, BasicNode>) -> NodeStatus {
        let role = match metrics.state {
            openraft::ServerState::Leader => "leader",
            openraft::ServerState::Candidate => "candidate",
            openraft::ServerState::Follower => "follower",
            openraft::ServerState::Learner => "learner",
            openraft::ServerState::Shutdown => "shutdown",
        };
        NodeStatus {
            role: role.into(),
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|id| id.index),
        }
    }
}

/// The service side: every call goes to the local Raft instance.
#[derive(Clone)]
struct RaftServer {
    id: NodeId,
    raft: Raft<TypeConfig>,
    lease: Arc<Lease>,
    store: Arc<Store>,
    transport: Transport,
    proposer: Arc<Proposer>,
}

impl RaftService for RaftServer {
    async fn append_entries(
        self,
        _: Context,
        request: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.raft.append_entries(request).await
    }

    async fn install_snapshot(
        self,
        _: Context,
        request: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.raft.install_snapshot(request).await
    }

    async fn vote(
        self,
        _: Context,
        request: VoteRequest<NodeId>,
    ) -> Result<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.raft.vote(request).await
    }

    async fn client_write(self, _: Context, command: Command) -> Forwarded {
        // Checked first so that a node that does not lead answers without proposing: only
        // then may the sender try again elsewhere without applying the write twice.
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.id) {
            return Forwarded::NotProposed(leader_of(&metrics));
        }
        match self.proposer.write(command).await {
            Ok(response) => Forwarded::Applied(response),
            Err(e) => Forwarded::Failed(e),
        }
    }

    async fn change_membership(
        self,
        _: Context,
        change: MembershipChange,
    ) -> Result<(), MembershipError> {
        change_membership(&self.raft, &self.transport, change).await
    }

    async fn take_snapshot(self, context: Context) -> Result<SnapshotReport, String> {
        let left = context
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        super::state_machine::build_now(&self.raft, &self.store.raft_snapshot_dir(), left).await
    }

    async fn status(self, _: Context) -> NodeStatus {
        NodeStatus::of(&self.raft.metrics().borrow())
    }

    async fn read_index(self, _: Context) -> Result<Option<LogId>, ReadIndexError> {
        match self.lease.read_index(&self.raft, &self.store) {
            Some(read_index) => Ok(read_index),
            None => self.raft.ensure_linearizable().await,
        }
    }
}

/// Answers other nodes' calls on `listener` until the task is aborted, which also closes
/// every connection it accepted: a stopped node must not go on answering from its old state.
pub async fn serve(
    id: NodeId,
    listener: TcpListener,
    transport: Transport,
    proposer: Arc<Proposer>,
    raft: Raft<TypeConfig>,
    lease: Arc<Lease>,
    store: Arc<Store>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow with every one ever accepted.
        while connections.try_join_next().is_some() {}
        let (connection, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "accepting a cluster connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let server = RaftServer {
            id,
            raft: raft.clone(),
            lease: lease.clone(),
            store: store.clone(),
            transport: transport.clone(),
            proposer: proposer.clone(),
        };
        connections.spawn(async move {
            // The handshake runs here, not in the accept loop, so a peer that stalls in it
            // holds up nobody else.
            let stream = match server.transport.accept(connection).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "refused a cluster connection");
                    return;
                }
            };
            let frames = tarpc::serde_transport::new(frame(stream), NamedMessagePack::default());
            BaseChannel::with_defaults(frames)
                .execute(server.serve())
                .for_each(|request| async {
                    tokio::spawn(request);
                })
                .await;
        });
    }
}

/// Connects to the node at `addr` over `transport`, failing after `timeout`.
pub async fn connect(
    transport: &Transport,
    addr: &str,
    timeout: std::time::Duration,
) -> io::Result<RaftServiceClient> {
    let stream = transport.dial(addr, timeout).await?;
    let frames = tarpc::serde_transport::new(frame(stream), NamedMessagePack::default());
    Ok(RaftServiceClient::new(tarpc::client::Config::default(), frames).spawn())
}

fn frame<S: AsyncRead + AsyncWrite>(io: S) -> Framed<S, LengthDelimitedCodec> {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_framed(io)
}

/// A call's context with `timeout` as its deadline.
pub fn deadline_in(timeout: std::time::Duration) -> Context {
    let mut context = tarpc::context::current();
    context.deadline = std::time::Instant::now() + timeout;
    context
}

/// MessagePack with field names (see the module's note) as a tokio-serde codec.
struct NamedMessagePack<Item, SinkItem>(PhantomData<fn() -> (Item, SinkItem)>);

impl<Item, SinkItem> Default for NamedMessagePack<Item, SinkItem> {
    fn default() -> Self {
        NamedMessagePack(PhantomData)
    }
}

impl<Item: DeserializeOwned, SinkItem> Deserializer<Item> for NamedMessagePack<Item, SinkItem> {
    type Error = io::Error;

    fn deserialize(self: Pin<&mut Self>, src: &BytesMut) -> Result<Item, io::Error> {
        super::decode(src).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

impl<Item, SinkItem: Serialize> Serializer<SinkItem> for NamedMessagePack<Item, SinkItem> {
    type Error = io::Error;

    fn serialize(self: Pin<&mut Self>, item: &SinkItem) -> Result<Bytes, io::Error> {
        super::encode(item)
            .map(Bytes::from)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}
