//! The cluster's members as SQL sees them: `system.cluster`, one row per member as this node
//! knows it (its id, address, role, term, log positions and when this node last heard from
//! it; empty on a single node), `ALTER CLUSTER ADD NODE` / `REMOVE NODE`, and `CLUSTER SNAPSHOT`
//! on every node.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;

use super::outcome::Outcome;
use super::system_tables::{SystemTable, texts, timestamp_type, timestamps};
use super::{ExecError, ExecResult, Session};
use crate::cluster::replica::{ClusterError, Replica};
use crate::cluster::rpc::MembershipChange;
use crate::sql::ClusterChange;
use crate::storage::{StorageError, Store};

/// The rows `CLUSTER SNAPSHOT` returns in cluster mode: one per member.
pub(super) fn snapshot_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("node_id", DataType::Int64, false),
        Field::new("snapshot_id", DataType::Utf8, true),
        Field::new("applied_seq", DataType::Int64, true),
        Field::new("path", DataType::Utf8, true),
        Field::new("bytes", DataType::Int64, true),
        // Why the member built none (unreachable, failed); NULL when it did.
        Field::new("error", DataType::Utf8, true),
    ]))
}

/// A refused membership change is the statement's fault; every other cluster failure says
/// whether anything was committed (see `storage::StorageError`).
impl From<ClusterError> for ExecError {
    fn from(e: ClusterError) -> ExecError {
        match e {
            ClusterError::Refused(message) => ExecError::ObjectNotInPrerequisiteState(message),
            other => StorageError::from(other).into(),
        }
    }
}

impl Session {
    /// Builds a Raft snapshot (`data/snapshots/raft/`) on every member at once and reports
    /// each.
    pub(super) async fn snapshot_every_node(&self, replica: &Replica) -> ExecResult<Outcome> {
        let reports = replica.snapshot_everywhere().await;
        let built = |f: &dyn Fn(&crate::cluster::state_machine::SnapshotReport) -> i64| {
            Arc::new(Int64Array::from_iter(
                reports.iter().map(|(_, r)| r.as_ref().ok().map(f)),
            )) as ArrayRef
        };
        let schema = snapshot_schema();
        let columns = vec![
            Arc::new(Int64Array::from_iter_values(
                reports.iter().map(|(id, _)| *id as i64),
            )) as ArrayRef,
            texts(
                reports
                    .iter()
                    .map(|(_, r)| r.as_ref().ok().map(|r| r.snapshot_id.as_str())),
            ),
            built(&|r| r.index as i64),
            texts(
                reports
                    .iter()
                    .map(|(_, r)| r.as_ref().ok().map(|r| r.path.as_str())),
            ),
            built(&|r| r.bytes as i64),
            texts(
                reports
                    .iter()
                    .map(|(_, r)| r.as_ref().err().map(String::as_str)),
            ),
        ];
        let batch = datafusion::arrow::array::RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| ExecError::Internal(e.to_string()))?;
        Ok(Outcome::rows(schema, vec![batch]))
    }

    /// Adds or removes a node, on the leader or forwarded to it. Adding returns once the new
    /// node has caught up and votes.
    pub(super) async fn alter_cluster(&self, change: &ClusterChange) -> ExecResult<Outcome> {
        let Some(replica) = self.engine.cluster() else {
            return Err(ExecError::ObjectNotInPrerequisiteState(
                "ALTER CLUSTER needs a cluster: this server has no [cluster] section".into(),
            ));
        };
        let change = match change {
            ClusterChange::AddNode { node_id, address } => {
                if !(1..=1023).contains(node_id) {
                    return Err(ExecError::InvalidParameterValue(format!(
                        "node id {node_id} must be between 1 and 1023"
                    )));
                }
                if address
                    .rsplit_once(':')
                    .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                {
                    return Err(ExecError::InvalidParameterValue(format!(
                        "node address {address:?} is not host:port"
                    )));
                }
                MembershipChange::Add {
                    id: *node_id,
                    addr: address.clone(),
                }
            }
            ClusterChange::RemoveNode { node_id } => MembershipChange::Remove { id: *node_id },
        };
        replica.change_membership(change).await?;
        Ok(Outcome::Done {
            tag: "ALTER CLUSTER",
        })
    }
}

pub(super) struct ClusterTable {
    pub(super) replica: Option<Arc<Replica>>,
}

impl std::fmt::Debug for ClusterTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTable")
            .field("node_id", &self.replica.as_ref().map(|r| r.id()))
            .finish()
    }
}

impl SystemTable for ClusterTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("node_id", DataType::Int64, false),
            Field::new("address", DataType::Utf8, false),
            // leader, follower, candidate or learner; NULL while it has never answered.
            Field::new("role", DataType::Utf8, true),
            Field::new("voter", DataType::Boolean, false),
            Field::new("is_local", DataType::Boolean, false),
            Field::new("term", DataType::Int64, true),
            Field::new("last_log_index", DataType::Int64, true),
            Field::new("last_applied_index", DataType::Int64, true),
            Field::new("last_contact", timestamp_type(), true),
        ]))
    }

    fn rows(&self, _: &Store) -> Result<Vec<ArrayRef>> {
        let (members, local) = match &self.replica {
            Some(replica) => (replica.members(), replica.id()),
            None => (Vec::new(), 0),
        };
        let index = |value: Option<u64>| value.map(|v| v as i64);
        Ok(vec![
            Arc::new(Int64Array::from_iter_values(
                members.iter().map(|m| m.node_id as i64),
            )),
            texts(members.iter().map(|m| Some(m.address.as_str()))),
            texts(
                members
                    .iter()
                    .map(|m| m.status.as_ref().map(|s| s.role.as_str())),
            ),
            Arc::new(BooleanArray::from_iter(
                members.iter().map(|m| Some(m.voter)),
            )),
            Arc::new(BooleanArray::from_iter(
                members.iter().map(|m| Some(m.node_id == local)),
            )),
            Arc::new(Int64Array::from_iter(
                members
                    .iter()
                    .map(|m| m.status.as_ref().map(|s| s.term as i64)),
            )),
            Arc::new(Int64Array::from_iter(members.iter().map(|m| {
                m.status.as_ref().and_then(|s| index(s.last_log_index))
            }))),
            Arc::new(Int64Array::from_iter(members.iter().map(|m| {
                m.status.as_ref().and_then(|s| index(s.last_applied_index))
            }))),
            timestamps(members.iter().map(|m| {
                m.last_contact.and_then(|at| {
                    at.duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_micros() as i64)
                })
            })),
        ])
    }
}
