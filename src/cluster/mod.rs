//! Cluster mode: the Raft engine (openraft 0.9, its v2 storage traits) bound to the store. The
//! replicated log carries [`Command`]s, the same values a single node applies, so a replicated
//! write is applied by the same function as a local one; the log index becomes the applied
//! sequence number that backups capture.
//!
//! [`log_store`] keeps the log and this node's vote in RocksDB's `raft_log` column family;
//! [`state_machine`] applies committed entries to the store and builds and installs snapshots
//! that carry the data: a RocksDB checkpoint plus the segment and stream files at one applied
//! index, as one tar file in `data/snapshots/raft/`. [`rpc`] and [`network`] carry Raft's
//! traffic between nodes over TCP, or mutual TLS ([`transport`]); [`replica`] is one node:
//! writes proposed through the leader (concurrent row writes grouped into one entry by the
//! [`proposer`]), read barriers (answered on the leader from its read [`lease`] while it
//! holds one), membership changes; [`members`] what this node knows of the others, for `system.cluster`.
//!
//! Entries, votes and log ids are encoded as MessagePack with field names: catalog records skip
//! empty fields when serialised, which only a self-describing format reads back.

// openraft's traits return its own StorageError (over 200 bytes); helpers return it too
// rather than converting at every call.
#![allow(clippy::result_large_err)]

pub mod lease;
pub mod log_store;
pub mod members;
pub mod network;
pub mod proposer;
pub mod replica;
pub mod rpc;
pub mod state_machine;
pub mod transport;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::storage::{Applied, Command, Conflict};

/// What applying a replicated entry gave: the command's outcome, or the precondition that
/// refused it on every node alike.
pub type Outcome = Result<Applied, Conflict>;

openraft::declare_raft_types!(
    /// KalamDB's Raft types: commands in, outcomes out, snapshots as files.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type RaftStorageError = openraft::StorageError<NodeId>;

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}
