//! What this node knows of every member of the cluster, for `system.cluster`: its own Raft
//! state, and for the others what each last reported of itself and when. A background task
//! asks every other member for its status once a period; a member that does not answer keeps
//! its last report and the time of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use openraft::Raft;

use super::rpc::{self, NodeStatus, RaftServiceClient};
use super::transport::Transport;
use super::{NodeId, TypeConfig};

/// One member as this node sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub node_id: NodeId,
    pub address: String,
    /// Votes in elections and commits (not a learner still catching up).
    pub voter: bool,
    /// Its last report of itself; `None` if it never answered this node.
    pub status: Option<NodeStatus>,
    /// When that report arrived (now, for this node itself).
    pub last_contact: Option<SystemTime>,
}

/// The other members' last reports.
#[derive(Default)]
pub(super) struct Reports(Mutex<BTreeMap<NodeId, (NodeStatus, SystemTime)>>);

impl Reports {
    /// Every member of the current membership, this node (`id`) first.
    pub(super) fn members(&self, id: NodeId, raft: &Raft<TypeConfig>) -> Vec<Member> {
        let metrics = raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let reports = self.0.lock().expect("member reports lock");
        let mut members: Vec<Member> = membership
            .nodes()
            .map(|(node_id, node)| {
                let (status, last_contact) = if *node_id == id {
                    (Some(NodeStatus::of(&metrics)), Some(SystemTime::now()))
                } else {
                    match reports.get(node_id) {
                        Some((status, at)) => (Some(status.clone()), Some(*at)),
                        None => (None, None),
                    }
                };
                Member {
                    node_id: *node_id,
                    address: node.addr.clone(),
                    voter: voters.contains(node_id),
                    status,
                    last_contact,
                }
            })
            .collect();
        members.sort_by_key(|m| (m.node_id != id, m.node_id));
        members
    }

    fn record(&self, node: NodeId, status: NodeStatus) {
        self.0
            .lock()
            .expect("member reports lock")
            .insert(node, (status, SystemTime::now()));
    }
}

/// Asks every other member for its status each `every`, until the task is aborted.
pub(super) async fn observe(
    id: NodeId,
    raft: Raft<TypeConfig>,
    transport: Transport,
    reports: std::sync::Arc<Reports>,
    every: Duration,
) {
    let mut clients: HashMap<NodeId, (String, RaftServiceClient)> = HashMap::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let others: Vec<(NodeId, String)> = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .filter(|(node, _)| **node != id)
            .map(|(node, info)| (*node, info.addr.clone()))
            .collect();
        for (node, address) in others {
            let client = match clients.get(&node) {
                Some((known, client)) if *known == address => client.clone(),
                _ => match rpc::connect(&transport, &address, every / 2).await {
                    Ok(client) => {
                        clients.insert(node, (address, client.clone()));
                        client
                    }
                    Err(_) => continue,
                },
            };
            match client.status(rpc::deadline_in(every / 2)).await {
                Ok(status) => reports.record(node, status),
                Err(_) => {
                    clients.remove(&node);
                }
            }
        }
    }
}
