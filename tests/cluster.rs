//! Cluster mode end to end: three real `kalamdb` processes on 127.0.0.1, each with its own data
//! directory and `[cluster]` section, spoken to over the PostgreSQL protocol. A write on any
//! node is readable on every node; killing the leader (SIGKILL) leaves a cluster that elects a
//! new leader and serves writes within five seconds, with every acknowledged write on every
//! node, the killed one included once it is back; `system.cluster` shows every member.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer, free_port, sqlstate};

/// Shorter than the defaults (1 s, 250 ms) so that the test's elections are quick; the
/// README's figures are measured with the defaults.
const ELECTION_TIMEOUT_MS: u64 = 500;
const HEARTBEAT_MS: u64 = 100;

struct Cluster {
    nodes: Vec<TestServer>,
}

impl Cluster {
    /// Starts `size` nodes that form one cluster, and waits until each serves clients.
    fn start(size: usize) -> Cluster {
        let raft_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut nodes: Vec<TestServer> = (0..size)
            .map(|i| {
                let mut section = format!(
                    "[cluster]\nnode_id = {}\nraft_address = \"127.0.0.1:{}\"\n\
                     election_timeout_ms = {ELECTION_TIMEOUT_MS}\nheartbeat_ms = {HEARTBEAT_MS}\n",
                    i + 1,
                    raft_ports[i]
                );
                for (j, port) in raft_ports.iter().enumerate().filter(|(j, _)| *j != i) {
                    section.push_str(&format!(
                        "[[cluster.peer]]\nnode_id = {}\nraft_address = \"127.0.0.1:{port}\"\n",
                        j + 1
                    ));
                }
                TestServer::configured(ServerOptions {
                    extra: section,
                    ..ServerOptions::default()
                })
            })
            .collect();
        for node in &mut nodes {
            node.launch();
        }
        for node in &mut nodes {
            node.wait_listening();
        }
        Cluster { nodes }
    }

    /// The index of the node that leads, as the live nodes report it (bounded wait).
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            for (i, node) in self.nodes.iter().enumerate() {
                if node.child.is_none() {
                    continue;
                }
                let Ok(client) = node.connect("root", &node.options.root_password).await else {
                    continue;
                };
                if let Ok(row) = client
                    .query_one("SELECT role FROM system.cluster WHERE is_local", &[])
                    .await
                    && row.get::<_, Option<String>>(0).as_deref() == Some("leader")
                {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no node reported leading");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn ids_on(node: &TestServer) -> BTreeSet<i64> {
    let client = node.root().await;
    client
        .query("SELECT id FROM app.events", &[])
        .await
        .unwrap_or_else(|e| panic!("reading app.events: {e}\n{}", node.log()))
        .iter()
        .map(|row| row.get::<_, i64>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_any_node_is_readable_on_every_node_and_every_node_lists_the_members() {
    let cluster = Cluster::start(3);
    // Schema changes made on one node are seen by the next statement on another.
    let first = cluster.nodes[0].root().await;
    first.batch_execute("CREATE SCHEMA app").await.unwrap();
    let second = cluster.nodes[1].root().await;
    second
        .batch_execute("CREATE TABLE app.events (id BIGINT PRIMARY KEY, origin TEXT NOT NULL)")
        .await
        .unwrap();
    let mut expected = BTreeSet::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let client = node.root().await;
        for k in 0..20i64 {
            let id = i as i64 * 100 + k;
            client
                .execute(
                    "INSERT INTO app.events VALUES ($1, $2)",
                    &[&id, &format!("node {}", i + 1)],
                )
                .await
                .unwrap();
            expected.insert(id);
        }
        // A refused write is refused wherever it is sent, with PostgreSQL's code.
        let duplicate = client
            .execute("INSERT INTO app.events VALUES (0, 'again')", &[])
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&duplicate), "23505");
    }
    for node in &cluster.nodes {
        assert_eq!(ids_on(node).await, expected, "node log:\n{}", node.log());
        let client = node.root().await;
        let origin: String = client
            .query_one("SELECT origin FROM app.events WHERE id = 219", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(origin, "node 3");
    }
    // Every node lists the three members, itself once, and one leader they agree on.
    let mut leaders = BTreeSet::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let client = node.root().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let rows = loop {
            let rows = client
                .query(
                    "SELECT node_id, address, role, voter, is_local, term, last_log_index, \
                     last_applied_index, last_contact FROM system.cluster ORDER BY node_id",
                    &[],
                )
                .await
                .unwrap();
            // The others' reports arrive within a poll period of the start.
            if rows.iter().all(|r| r.get::<_, Option<String>>(2).is_some())
                || Instant::now() > deadline
            {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(rows.len(), 3);
        for (j, row) in rows.iter().enumerate() {
            assert_eq!(row.get::<_, i64>(0), j as i64 + 1);
            assert!(row.get::<_, String>(1).starts_with("127.0.0.1:"));
            assert!(row.get::<_, bool>(3), "every initial member votes");
            assert_eq!(row.get::<_, bool>(4), i == j);
            let role: String = row
                .get::<_, Option<String>>(2)
                .expect("every member answered");
            assert!(["leader", "follower"].contains(&role.as_str()), "{role}");
            if role == "leader" {
                leaders.insert(j);
            }
            assert!(row.get::<_, Option<i64>>(5).unwrap() >= 1);
            assert!(
                row.get::<_, Option<i64>>(7).unwrap() > 60,
                "60 inserts applied"
            );
            assert!(
                row.get::<_, Option<std::time::SystemTime>>(8).is_some(),
                "a member that answered has a last contact"
            );
        }
    }
    assert_eq!(leaders.len(), 1, "the nodes agree on one leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_a_new_one_within_five_seconds_and_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3);
    let setup = cluster.nodes[0].root().await;
    setup
        .batch_execute(
            "CREATE SCHEMA app; CREATE TABLE app.events (id BIGINT PRIMARY KEY, origin TEXT NOT NULL)",
        )
        .await
        .unwrap();
    let mut acknowledged = BTreeSet::new();
    for id in 0..150i64 {
        let node = &cluster.nodes[id as usize % 3];
        node.root()
            .await
            .execute("INSERT INTO app.events VALUES ($1, 'before')", &[&id])
            .await
            .unwrap();
        acknowledged.insert(id);
    }
    let leader = cluster.leader().await;
    let survivor = (leader + 1) % 3;
    let client = cluster.nodes[survivor].root().await;
    cluster.nodes[leader].kill();
    let killed_at = Instant::now();
    // The first write after the kill waits for the new leader within its request timeout;
    // one refused for want of a leader is tried again.
    let mut id = 1000i64;
    let served_after = loop {
        match client
            .execute("INSERT INTO app.events VALUES ($1, 'after')", &[&id])
            .await
        {
            Ok(_) => break killed_at.elapsed(),
            Err(e) => {
                assert_eq!(sqlstate(&e), "57P03", "{e:?}");
                assert!(
                    killed_at.elapsed() < Duration::from_secs(15),
                    "no leader: {e:?}"
                );
            }
        }
    };
    acknowledged.insert(id);
    assert!(
        served_after < Duration::from_secs(5),
        "a new leader served writes {served_after:?} after the old one was killed"
    );
    for node in [survivor, (leader + 2) % 3] {
        let client = cluster.nodes[node].root().await;
        for _ in 0..20 {
            id += 1;
            client
                .execute("INSERT INTO app.events VALUES ($1, 'after')", &[&id])
                .await
                .unwrap();
            acknowledged.insert(id);
        }
    }
    for node in [survivor, (leader + 2) % 3] {
        assert_eq!(ids_on(&cluster.nodes[node]).await, acknowledged);
    }
    // The killed node comes back as a follower and catches up with what it missed.
    cluster.nodes[leader].restart_after_crash();
    assert_eq!(ids_on(&cluster.nodes[leader]).await, acknowledged);
}
