//! Raft replication of commands between real stores over TCP, several nodes in one process:
//! writes sent to any node are applied on every node, a refused command is refused everywhere,
//! a flushed segment is shipped with its command, a node added after the log was purged
//! catches up from a snapshot that carries the rows and segment files, and
//! the survivors elect a new leader and keep serving writes when the leader stops.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kalamdb::cluster::replica::{Replica, ReplicaSettings};
use kalamdb::cluster::rpc::MembershipChange;
use kalamdb::storage::rows::row_id_key;
use kalamdb::storage::{Command, Conflict, Durability, Expect, RowWrite, SegmentRecord, Store};
use openraft::BasicNode;

const TABLE: u64 = 7;

struct Node {
    replica: Replica,
    store: Arc<Store>,
    addr: String,
}

fn settings() -> ReplicaSettings {
    ReplicaSettings {
        request_timeout: Duration::from_secs(5),
        heartbeat: Duration::from_millis(100),
        election_timeout: (Duration::from_millis(400), Duration::from_millis(800)),
        snapshot_every: 1_000_000,
        keep_behind_snapshot: 0,
        ..ReplicaSettings::default()
    }
}

async fn start(id: u64, root: &Path) -> Node {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let durability = Durability {
        sync_writes: true,
        wal_enabled: true,
    };
    let store = Arc::new(Store::open(&root.join(format!("node{id}")), durability).unwrap());
    let replica = Replica::start(id, listener, store.clone(), &settings())
        .await
        .unwrap();
    Node {
        replica,
        store,
        addr,
    }
}

fn insert(row_id: u64) -> Command {
    Command::WriteRows {
        table_id: TABLE,
        writes: vec![RowWrite {
            key: row_id_key(TABLE, row_id),
            value: Some(row_id.to_be_bytes().to_vec()),
            expect: Expect::Absent,
            moved_to: None,
        }],
        row_id_high_water: Some(row_id),
        layout_generation: 0,
    }
}

fn row_ids(store: &Store) -> Vec<u64> {
    let mut ids = Vec::new();
    store
        .scan_rows(TABLE, |key, _| {
            ids.push(u64::from_be_bytes(key[8..16].try_into().unwrap()));
            Ok(true)
        })
        .unwrap();
    ids
}

async fn leader_of(nodes: &[&Node]) -> u64 {
    nodes[0]
        .replica
        .raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.current_leader.is_some(), "a leader is elected")
        .await
        .unwrap()
        .current_leader
        .unwrap()
}

/// Every node, after a read barrier, holds exactly `expected` rows.
async fn assert_rows_everywhere(nodes: &[&Node], expected: &[u64]) {
    for node in nodes {
        node.replica.read_barrier().await.unwrap();
        assert_eq!(
            row_ids(&node.store),
            expected,
            "rows on node {}",
            node.replica.id()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_replicate_to_every_node_and_survive_snapshots_and_a_lost_leader() {
    tokio::time::timeout(Duration::from_secs(120), scenario())
        .await
        .expect("the scenario finishes within two minutes");
}

async fn scenario() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let tmp = tempfile::tempdir().unwrap();
    let first = [
        start(1, tmp.path()).await,
        start(2, tmp.path()).await,
        start(3, tmp.path()).await,
    ];
    let members: BTreeMap<u64, BasicNode> = first
        .iter()
        .map(|n| (n.replica.id(), BasicNode::new(&n.addr)))
        .collect();
    first[0].replica.initialize(members).await.unwrap();
    let nodes: Vec<&Node> = first.iter().collect();
    leader_of(&nodes).await;

    // Writes sent to every node, leader and followers alike.
    let mut expected = Vec::new();
    let mut first_version = None;
    for (turn, node) in nodes.iter().enumerate() {
        for i in 0..5 {
            let row_id = (turn * 100 + i) as u64 + 1;
            let outcome = node.replica.write(insert(row_id)).await.unwrap();
            first_version.get_or_insert(outcome.as_ref().unwrap().seq);
            expected.push(row_id);
        }
    }
    expected.sort();
    assert_rows_everywhere(&nodes, &expected).await;

    // A command whose precondition fails is refused, through whichever node it came.
    let refused = nodes[1].replica.write(insert(expected[0])).await.unwrap();
    assert!(
        matches!(refused, Err(Conflict::DuplicateKey { .. })),
        "{refused:?}"
    );
    assert_rows_everywhere(&nodes, &expected).await;
    let applied: Vec<u64> = nodes.iter().map(|n| n.store.applied_seq()).collect();
    assert!(applied.iter().all(|a| *a == applied[0]), "{applied:?}");

    // A follower flushes row 1 into a segment: the command carries the file, and every node
    // publishes the same bytes and no longer holds the row hot.
    let segment = SegmentRecord {
        segment_id: 1,
        table_id: TABLE,
        file: "s1.parquet".into(),
        rows: 1,
        bytes: 11,
        columns: 1,
        created_at: 0,
        column_ids: vec![0],
        column_names: Vec::new(),
    };
    let flusher = nodes[1];
    std::fs::write(flusher.store.segment_path(&segment), b"segment one").unwrap();
    let key = row_id_key(TABLE, 1);
    let flush = Command::FlushSegment {
        segment: segment.clone(),
        rows: [(&key, first_version.unwrap(), false)]
            .into_iter()
            .collect(),
    };
    let outcome = flusher.replica.write(flush).await.unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
    expected.retain(|id| *id != 1);
    assert_rows_everywhere(&nodes, &expected).await;
    for node in &nodes {
        assert_eq!(
            node.store.segments(TABLE).unwrap(),
            std::slice::from_ref(&segment)
        );
        assert_eq!(
            std::fs::read(node.store.segment_path(&segment)).unwrap(),
            b"segment one"
        );
    }

    // The leader snapshots and purges its log; a node added empty can only catch up from
    // the snapshot, which carries the rows.
    let leader_id = leader_of(&nodes).await;
    let leader = nodes.iter().find(|n| n.replica.id() == leader_id).unwrap();
    leader.replica.snapshot().await.unwrap();
    let snapshot_index = leader.replica.metrics().snapshot.unwrap().index;
    leader.replica.purge_log(snapshot_index).await.unwrap();
    leader
        .replica
        .raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index == snapshot_index),
            "log purged",
        )
        .await
        .unwrap();
    let fourth = start(4, tmp.path()).await;
    leader
        .replica
        .change_membership(MembershipChange::Add {
            id: 4,
            addr: fourth.addr.clone(),
        })
        .await
        .unwrap();
    let mut all = nodes.clone();
    all.push(&fourth);
    assert_rows_everywhere(&all, &expected).await;
    assert!(
        fourth.replica.metrics().snapshot.is_some(),
        "node 4 installed a snapshot"
    );
    assert_eq!(fourth.store.applied_seq(), leader.store.applied_seq());
    assert_eq!(
        std::fs::read(fourth.store.segment_path(&segment)).unwrap(),
        b"segment one"
    );

    // The leader stops; the other three of four voters elect another and keep writing.
    leader.replica.shutdown().await;
    let survivors: Vec<&Node> = all
        .iter()
        .copied()
        .filter(|n| n.replica.id() != leader_id)
        .collect();
    // While they fail over, a write can fail: cleanly when nothing was proposed, or with an
    // unknown outcome when the old leader may have taken it. Each attempt inserts its own row:
    // afterwards every node holds the same rows, the acknowledged one among them, and no row
    // that was never attempted.
    let stopped_at = std::time::Instant::now();
    let mut attempts = Vec::new();
    let written = loop {
        let row_id = 1_000 + attempts.len() as u64;
        attempts.push(row_id);
        match survivors[0].replica.write(insert(row_id)).await {
            Ok(Ok(_)) => break row_id,
            Ok(Err(refused)) => panic!("attempt {row_id} refused: {refused:?}"),
            Err(e) => {
                assert!(
                    stopped_at.elapsed() < Duration::from_secs(5),
                    "no write succeeded within 5 s of the leader stopping; last error: {e}"
                );
            }
        }
    };
    assert!(
        stopped_at.elapsed() < Duration::from_secs(5),
        "a new leader served a write {:?} after the old one stopped",
        stopped_at.elapsed()
    );
    survivors[0].replica.read_barrier().await.unwrap();
    let present = row_ids(&survivors[0].store);
    assert!(present.contains(&written));
    let late: Vec<u64> = present
        .iter()
        .copied()
        .filter(|id| !expected.contains(id))
        .collect();
    assert!(late.iter().all(|id| attempts.contains(id)), "{late:?}");
    assert_rows_everywhere(&survivors, &present).await;
    for node in &survivors {
        node.replica.shutdown().await;
    }
}
