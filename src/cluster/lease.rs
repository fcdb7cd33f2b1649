//! The leader's read lease: how a leader answers a read barrier without a round trip to the
//! other nodes.
//!
//! openraft's followers refuse to vote for another candidate until `election_timeout_max` has
//! passed since they last heard from the leader. So once a quorum has confirmed this node's
//! leadership in answer to a heartbeat sent at time T, no other leader can commit anything
//! before T plus that timeout. The lease runs for half the shortest election timeout from T:
//! inside it, a leader that has applied an entry of its own term (so every entry of earlier
//! terms too) holds every acknowledged write already, since a write is acknowledged only once
//! the leader has applied it. A background task renews the lease with a confirmation round
//! every heartbeat while this node leads; reads that find it expired ask for a confirmation
//! round of their own.

use std::sync::Mutex;
use std::time::Duration;

use openraft::Raft;
use tokio::time::Instant;

use super::{LogId, NodeId, TypeConfig};
use crate::storage::Store;

/// Until when this node may serve linearizable reads as leader without asking a quorum.
pub struct Lease {
    id: NodeId,
    valid_until: Mutex<Option<Instant>>,
    span: Duration,
}

impl Lease {
    /// A lease for node `id` lasting `span` from each quorum confirmation.
    pub fn new(id: NodeId, span: Duration) -> Lease {
        Lease {
            id,
            valid_until: Mutex::new(None),
            span,
        }
    }

    /// Whether a read on this node sees every acknowledged write without asking anyone: it
    /// leads under an unexpired lease and has applied an entry of its current term. (openraft's
    /// metrics may lag what was applied, which only makes this answer no more often.)
    pub fn serves_local_reads(&self, raft: &Raft<TypeConfig>) -> bool {
        let held = self
            .valid_until
            .lock()
            .expect("lease lock")
            .is_some_and(|until| Instant::now() < until);
        if !held {
            return false;
        }
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        metrics.current_leader == Some(self.id)
            && metrics
                .last_applied
                .is_some_and(|applied| applied.leader_id.term == metrics.current_term)
    }

    /// The log index a read on another node must have been applied through, when the lease
    /// answers it; `None` when only a confirmation round can tell. The index is the last one
    /// `store` applied, not openraft's metrics': a write is acknowledged once applied, and
    /// the metrics may be published only after that.
    pub fn read_index(&self, raft: &Raft<TypeConfig>, store: &Store) -> Option<Option<LogId>> {
        if !self.serves_local_reads(raft) {
            return None;
        }
        super::state_machine::last_applied(store).ok()
    }

    fn renew(&self, confirmation_sent: Instant) {
        let mut until = self.valid_until.lock().expect("lease lock");
        let renewed = confirmation_sent + self.span;
        *until = Some(until.map_or(renewed, |held| held.max(renewed)));
    }

    fn end(&self) {
        *self.valid_until.lock().expect("lease lock") = None;
    }
}

/// Renews `lease` every `every` while this node leads, until the task is aborted.
pub async fn keep(raft: Raft<TypeConfig>, lease: std::sync::Arc<Lease>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if raft.metrics().borrow().current_leader != Some(lease.id) {
            lease.end();
            continue;
        }
        let sent = Instant::now();
        match tokio::time::timeout(lease.span, raft.ensure_linearizable()).await {
            Ok(Ok(_)) => lease.renew(sent),
            _ => lease.end(),
        }
    }
}
