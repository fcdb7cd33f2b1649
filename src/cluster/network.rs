//! How this node's Raft reaches the others: one connection per peer, made when first needed
//! and made again after any failure, with every call bounded by the deadline openraft gives.
//! A peer that cannot be connected to is reported unreachable, so openraft backs off.

use std::future::Future;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::rpc::{self, RaftServiceClient};
use super::transport::Transport;
use super::{NodeId, TypeConfig};

/// How long connecting to a peer may take before it counts as unreachable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Makes a [`Peer`] for every node this one replicates to or asks for votes.
#[derive(Clone, Default)]
pub struct Network {
    pub transport: Transport,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
            client: None,
        }
    }
}

/// The connection to one peer.
pub struct Peer {
    target: NodeId,
    addr: String,
    transport: Transport,
    client: Option<RaftServiceClient>,
}

type Failure<E> = RPCError<NodeId, BasicNode, E>;

impl Peer {
    /// Makes one call on the connection (connecting first if there is none); a transport
    /// failure drops the connection so the next call connects afresh.
    async fn call<R, E, F, Fut>(&mut self, option: &RPCOption, call: F) -> Result<R, Failure<E>>
    where
        E: std::error::Error,
        F: FnOnce(RaftServiceClient, tarpc::context::Context) -> Fut,
        Fut: Future<Output = Result<Result<R, E>, tarpc::client::RpcError>>,
    {
        let client = match &self.client {
            Some(client) => client.clone(),
            None => {
                let client = rpc::connect(&self.transport, &self.addr, CONNECT_TIMEOUT)
                    .await
                    .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
                self.client = Some(client.clone());
                client
            }
        };
        match call(client, rpc::deadline_in(option.hard_ttl())).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(remote)) => Err(RPCError::RemoteError(RemoteError::new(self.target, remote))),
            Err(e) => {
                self.client = None;
                Err(RPCError::Network(NetworkError::new(&e)))
            }
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Failure<RaftError<NodeId>>> {
        self.call(&option, |client, context| async move {
            client.append_entries(context, request).await
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Failure<RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(&option, |client, context| async move {
            client.install_snapshot(context, request).await
        })
        .await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Failure<RaftError<NodeId>>> {
        self.call(&option, |client, context| async move {
            client.vote(context, request).await
        })
        .await
    }
}
