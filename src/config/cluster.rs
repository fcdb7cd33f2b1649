//! The `[cluster]` section: this node's id and Raft address, the peers it forms a cluster
//! with, and Raft's timings, checked before the node starts.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[cluster]`: this node's part in a Raft cluster.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// This node's id: unique in the cluster, never reused after the node is removed.
    pub node_id: u64,
    /// Where this node listens for the other nodes, and the address they reach it at.
    pub raft_address: String,
    /// The other nodes of the cluster this node forms on its first start (each of them lists
    /// the rest the same way).
    #[serde(default, rename = "peer")]
    pub peers: Vec<ClusterPeer>,
    /// Start empty and wait to be added by `ALTER CLUSTER ADD NODE` on the leader, instead of
    /// forming a cluster of this node and its peers.
    #[serde(default)]
    pub join: bool,
    /// Answer reads from this node's applied state without asking the leader first: faster,
    /// and possibly behind writes acknowledged elsewhere.
    #[serde(default)]
    pub follower_reads: bool,
    /// How long a write or a read may wait for a leader and a quorum before it fails.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// A follower that hears no leader for between this and twice this starts an election.
    #[serde(default = "default_election_timeout_ms")]
    pub election_timeout_ms: u64,
    /// A snapshot is built after this many log entries since the last one.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, for followers only a little behind.
    #[serde(default = "default_log_kept_behind_snapshot")]
    pub log_kept_behind_snapshot: u64,
    /// The CA certificate(s) that signed every node's `[tls]` certificate. With `[tls]` on,
    /// nodes speak mutual TLS to each other and accept only peers whose certificate it signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterPeer {
    pub node_id: u64,
    pub raft_address: String,
}

fn default_request_timeout_ms() -> u64 {
    5000
}
fn default_heartbeat_ms() -> u64 {
    250
}
fn default_election_timeout_ms() -> u64 {
    1000
}
fn default_snapshot_every() -> u64 {
    100_000
}
fn default_log_kept_behind_snapshot() -> u64 {
    10_000
}

impl ClusterSection {
    /// Whether only this machine can reach this node's Raft port.
    pub fn raft_address_is_loopback(&self) -> bool {
        let host = self
            .raft_address
            .rsplit_once(':')
            .map_or("", |(host, _)| host);
        super::is_loopback_host(host)
    }

    /// `[cluster]` names distinct nodes with addresses, and timings Raft can work with: a
    /// heartbeat well inside the election timeout. `tls` is whether `[tls]` is on: Raft's
    /// traffic is authenticated only with it, so a Raft port off loopback requires it.
    pub(super) fn validate(&self, tls: bool) -> Result<(), ConfigError> {
        let cluster = self;
        let invalid = |what: String| Err(ConfigError::Invalid(format!("[cluster] {what}")));
        // Segment ids are striped by node id (see `Store::stripe_segment_ids`).
        for id in std::iter::once(cluster.node_id).chain(cluster.peers.iter().map(|p| p.node_id)) {
            if !(1..=1023).contains(&id) {
                return invalid(format!("node_id {id} must be between 1 and 1023"));
            }
        }
        let mut ids = std::collections::BTreeSet::from([cluster.node_id]);
        for peer in &cluster.peers {
            if !ids.insert(peer.node_id) {
                return invalid(format!("node_id {} is named twice", peer.node_id));
            }
        }
        for address in std::iter::once(&cluster.raft_address)
            .chain(cluster.peers.iter().map(|p| &p.raft_address))
        {
            if address
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                return invalid(format!("raft_address {address:?} is not host:port"));
            }
        }
        if cluster.join && !cluster.peers.is_empty() {
            return invalid(
                "a node that joins (join = true) lists no peers: the cluster's leader adds it"
                    .into(),
            );
        }
        if cluster.heartbeat_ms == 0 || cluster.heartbeat_ms * 3 > cluster.election_timeout_ms {
            return invalid(
                "heartbeat_ms must be at least 1 and at most a third of election_timeout_ms".into(),
            );
        }
        if cluster.request_timeout_ms < cluster.election_timeout_ms {
            return invalid("request_timeout_ms must be at least election_timeout_ms, or no write outlasts an election".into());
        }
        if cluster.snapshot_every == 0 {
            return invalid("snapshot_every must be at least 1".into());
        }
        if tls && cluster.ca.is_none() {
            return invalid("ca must name the CA certificate that signed the nodes' certificates when [tls] is on: nodes check each other's certificates against it".into());
        }
        if !tls && !cluster.raft_address_is_loopback() {
            return invalid(format!(
                "raft_address {:?} is not on loopback, and without [tls] nothing authenticates the nodes that connect to it (the Raft port applies any write it is sent): turn [tls] on and set [cluster] ca",
                cluster.raft_address
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    #[test]
    fn a_cluster_section_names_this_node_and_its_peers_and_is_checked() {
        assert!(
            Config::defaults().cluster.is_none(),
            "a single node by default"
        );
        let section = "[cluster]\nnode_id = 1\nraft_address = \"127.0.0.1:7001\"\n\
                       [[cluster.peer]]\nnode_id = 2\nraft_address = \"127.0.0.1:7002\"\n";
        let config = Config::parse(section, "test").unwrap();
        config.validate().unwrap();
        let cluster = config.cluster.as_ref().unwrap();
        assert_eq!(cluster.peers.len(), 1);
        assert_eq!(cluster.peers[0].node_id, 2);
        assert_eq!(cluster.request_timeout_ms, 5000);
        assert!(!cluster.follower_reads && !cluster.join);
        let this = "[cluster]\nnode_id = 1\nraft_address = \"127.0.0.1:7001\"\n";
        let peer = |id: u64| {
            format!("[[cluster.peer]]\nnode_id = {id}\nraft_address = \"127.0.0.1:7002\"\n")
        };
        for (text, complaint) in [
            (format!("{this}{}", peer(1)), "named twice"),
            (format!("{this}{}", peer(1024)), "between 1 and 1023"),
            (this.replace("127.0.0.1:7001", "nowhere"), "not host:port"),
            (format!("{this}heartbeat_ms = 600\n"), "heartbeat_ms"),
            (format!("{this}join = true\n{}", peer(2)), "lists no peers"),
            (
                this.replace("127.0.0.1:7001", "10.0.0.1:7001"),
                "not on loopback",
            ),
            (format!("[tls]\nenabled = true\n{this}"), "ca must name"),
        ] {
            let err = Config::parse(&text, "test")
                .and_then(|c| c.validate().map(|()| c))
                .unwrap_err()
                .to_string();
            assert!(err.contains(complaint), "{text}: {err}");
        }
        let off_loopback_with_tls = format!(
            "[tls]\nenabled = true\n{}ca = \"certs/ca.pem\"\n",
            this.replace("127.0.0.1:7001", "10.0.0.1:7001")
        );
        Config::parse(&off_loopback_with_tls, "test")
            .unwrap()
            .validate()
            .unwrap();
    }
}
