//! Cluster mode end to end: three real `kalamdb` processes on 127.0.0.1, each with its own data
//! directory and `[cluster]` section, spoken to over the PostgreSQL protocol. A write on any
//! node is readable on every node; killing the leader (SIGKILL) leaves a cluster that elects a
//! new leader and serves writes within five seconds, with every acknowledged write on every
//! node, the killed one included once it is back; `system.cluster` shows every member; a node
//! added empty catches up from a snapshot; `CLUSTER SNAPSHOT` builds one on every node; a
//! backup taken on a follower during writes holds every write acknowledged before it returned.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer, free_port, repo_root, run_job, sqlstate};

/// Shorter than the defaults (1 s, 250 ms) so that the test's elections are quick; the
/// README's figures are measured with the defaults.
const ELECTION_TIMEOUT_MS: u64 = 500;
const HEARTBEAT_MS: u64 = 100;

/// One cluster test at a time: three or four servers each on two cores are already many, and
/// heartbeats starved by another test's servers would set off elections this test did not ask
/// for.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    nodes: Vec<TestServer>,
    raft_ports: Vec<u16>,
}

impl Cluster {
    /// Starts `size` nodes that form one cluster, and waits until each serves clients.
    fn start(size: usize) -> Cluster {
        Self::start_with(size, "")
    }

    /// As [`Self::start`], with `settings` added to every node's `[cluster]` section.
    fn start_with(size: usize, settings: &str) -> Cluster {
        Self::start_configured(size, settings, false)
    }

    /// As [`Self::start_with`], with `[tls]` on when `tls` (the development certificates).
    fn start_configured(size: usize, settings: &str, tls: bool) -> Cluster {
        let raft_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut nodes: Vec<TestServer> = (0..size)
            .map(|i| {
                let mut section = format!(
                    "[cluster]\nnode_id = {}\nraft_address = \"127.0.0.1:{}\"\n\
                     election_timeout_ms = {ELECTION_TIMEOUT_MS}\nheartbeat_ms = {HEARTBEAT_MS}\n{settings}",
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
                    tls,
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
        Cluster { nodes, raft_ports }
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

/// Waits (bounded) until a node just launched answers on its Raft port: `ALTER CLUSTER ADD
/// NODE` refuses a node it cannot reach.
fn wait_for_raft_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on raft port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
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
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
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
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
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

async fn create_events(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE SCHEMA app; CREATE TABLE app.events (id BIGINT PRIMARY KEY, origin TEXT NOT NULL)",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_empty_catches_up_from_a_snapshot_and_cluster_snapshot_reports_every_node() {
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    // A snapshot every 100 entries, and no log kept behind it: a new node cannot catch up from
    // the log.
    let cluster = Cluster::start_with(3, "snapshot_every = 100\nlog_kept_behind_snapshot = 0\n");
    let client = cluster.nodes[1].root().await;
    create_events(&client).await;
    let mut expected = BTreeSet::new();
    for id in 0..300i64 {
        client
            .execute("INSERT INTO app.events VALUES ($1, 'before')", &[&id])
            .await
            .unwrap();
        expected.insert(id);
    }
    let rows = client.query("CLUSTER SNAPSHOT", &[]).await.unwrap();
    assert_eq!(rows.len(), 3, "one row per node");
    let mut reported = BTreeSet::new();
    for row in &rows {
        let node_id: i64 = row.get("node_id");
        let error: Option<String> = row.get("error");
        assert_eq!(error, None, "node {node_id}");
        let applied: i64 = row.get::<_, Option<i64>>("applied_seq").unwrap();
        assert!(applied > 300, "node {node_id} snapshot at {applied}");
        let path = std::path::PathBuf::from(row.get::<_, Option<String>>("path").unwrap());
        let node = &cluster.nodes[node_id as usize - 1];
        assert!(
            path.starts_with(node.data_path().join("snapshots").join("raft")),
            "{path:?}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as i64,
            row.get::<_, Option<i64>>("bytes").unwrap()
        );
        reported.insert(node_id);
    }
    assert_eq!(reported, BTreeSet::from([1, 2, 3]));

    let raft_port = free_port();
    let mut joining = TestServer::configured(ServerOptions {
        extra: format!(
            "[cluster]\nnode_id = 4\nraft_address = \"127.0.0.1:{raft_port}\"\njoin = true\n\
             election_timeout_ms = {ELECTION_TIMEOUT_MS}\nheartbeat_ms = {HEARTBEAT_MS}\n"
        ),
        ..ServerOptions::default()
    });
    joining.launch();
    wait_for_raft_port(raft_port);
    // It waits to be added before it serves clients; the statement returns once it votes.
    client
        .batch_execute(&format!("ALTER CLUSTER ADD NODE 4 '127.0.0.1:{raft_port}'"))
        .await
        .unwrap();
    joining.wait_listening();
    assert_eq!(ids_on(&joining).await, expected);
    let installed = std::fs::read_dir(joining.data_path().join("snapshots").join("raft"))
        .unwrap()
        .filter_map(|entry| entry.ok())
        .any(|entry| entry.file_name().to_string_lossy().ends_with(".tar"));
    assert!(installed, "the new node was seeded from a snapshot");
    // It takes part from now on: a write through it reaches the others.
    joining
        .root()
        .await
        .execute("INSERT INTO app.events VALUES (1000, 'node 4')", &[])
        .await
        .unwrap();
    expected.insert(1000);
    assert_eq!(ids_on(&cluster.nodes[0]).await, expected);
    let members = |client: tokio_postgres::Client| async move {
        client
            .query(
                "SELECT node_id, voter FROM system.cluster ORDER BY node_id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get::<_, i64>(0), row.get::<_, bool>(1)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        members(cluster.nodes[2].root().await).await,
        [(1, true), (2, true), (3, true), (4, true)]
    );
    client
        .batch_execute("ALTER CLUSTER REMOVE NODE 4")
        .await
        .unwrap();
    assert_eq!(
        members(cluster.nodes[0].root().await).await,
        [(1, true), (2, true), (3, true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_on_a_follower_during_writes_holds_every_write_acknowledged_before_it_returned() {
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    let cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    create_events(&cluster.nodes[leader].root().await).await;
    // Writes go on through the leader while the follower takes the backup.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let client = cluster.nodes[leader].root().await;
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        tokio::spawn(async move {
            let mut id = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                client
                    .execute("INSERT INTO app.events VALUES ($1, 'during')", &[&id])
                    .await
                    .unwrap();
                acknowledged.lock().unwrap().insert(id);
                id += 1;
            }
        })
    };
    while acknowledged.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("cluster.tar.gz");
    let backing_up = cluster.nodes[follower].root().await;
    let row = backing_up
        .query_one(&format!("BACKUP DATABASE TO '{}'", archive.display()), &[])
        .await
        .unwrap();
    let before_return = acknowledged.lock().unwrap().clone();
    let job_id: String = row.get("job_id");
    let (status, message) = common::wait_for_job(&backing_up, &job_id).await;
    assert_eq!(status, "Completed", "{message}");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();

    // Restored onto a single node, the archive holds all of them.
    let mut single = TestServer::start();
    let (_, status, message) = run_job(
        &single.root().await,
        &format!("RESTORE DATABASE FROM '{}'", archive.display()),
    )
    .await;
    assert_eq!(status, "Completed", "{message}");
    single.restart();
    let restored = ids_on(&single).await;
    let missing: Vec<_> = before_return.difference(&restored).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before BACKUP returned, not in it: {missing:?}"
    );
}

#[tokio::test]
async fn cluster_statements_on_a_single_node_say_what_they_need() {
    let server = TestServer::start();
    let client = server.root().await;
    let err = client
        .batch_execute("ALTER CLUSTER ADD NODE 2 '127.0.0.1:6002'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55000", "{err:?}");
    let err = client
        .batch_execute("ALTER CLUSTER ADD NODE 2")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42601", "{err:?}");
    let rows = client
        .query("SELECT * FROM system.cluster", &[])
        .await
        .unwrap();
    assert!(rows.is_empty(), "a single node has no members to list");
}

/// Waits (bounded) until `node` holds exactly `expected`: a node that was behind answers
/// `57P03` while it catches up for longer than a read's timeout.
async fn wait_for_ids(node: &TestServer, expected: &BTreeSet<i64>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(client) = node.connect("root", &node.options.root_password).await
            && let Ok(rows) = client.query("SELECT id FROM app.events", &[]).await
        {
            let ids: BTreeSet<i64> = rows.iter().map(|row| row.get(0)).collect();
            if ids == *expected {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the node did not catch up within 2 minutes:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// 10,000 single-row INSERTs through `node`, one after another; returns their ids.
async fn insert_many(node: &TestServer, first: i64) -> BTreeSet<i64> {
    // One client: concurrent writes would be grouped into fewer log entries, and the test
    // that pauses a node counts on 10,000 entries to purge the log behind a snapshot.
    let client = node.root().await;
    let statement = client
        .prepare("INSERT INTO app.events VALUES ($1, 'paused')")
        .await
        .unwrap();
    for id in first..first + 10_000 {
        client.execute(&statement, &[&id]).await.unwrap();
    }
    (first..first + 10_000).collect()
}

fn signal(node: &TestServer, signal: i32) {
    let pid = node.child.as_ref().expect("the node runs").id() as i32;
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_catches_up_through_the_log_and_after_compaction_through_a_snapshot() {
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    // No snapshot within the first 10,000 writes; one, with the log behind it purged, within
    // the next 10,000.
    let cluster = Cluster::start_with(3, "snapshot_every = 15000\nlog_kept_behind_snapshot = 0\n");
    let leader = cluster.leader().await;
    let paused = &cluster.nodes[(leader + 1) % 3];
    create_events(&cluster.nodes[leader].root().await).await;

    signal(paused, libc::SIGSTOP);
    let mut expected = insert_many(&cluster.nodes[leader], 0).await;
    signal(paused, libc::SIGCONT);
    wait_for_ids(paused, &expected).await;
    assert!(
        !paused.log().contains("installed a snapshot"),
        "the first catch-up goes through the log"
    );

    signal(paused, libc::SIGSTOP);
    expected.extend(insert_many(&cluster.nodes[leader], 100_000).await);
    signal(paused, libc::SIGCONT);
    wait_for_ids(paused, &expected).await;
    assert!(
        paused
            .log()
            .contains("installed a snapshot the leader sent"),
        "after the log was purged, the node catches up from a snapshot:\n{}",
        paused.log()
    );
}

fn node_section(id: u64, raft_port: u16, rest: &str) -> String {
    format!(
        "[cluster]\nnode_id = {id}\nraft_address = \"127.0.0.1:{raft_port}\"\n\
         election_timeout_ms = {ELECTION_TIMEOUT_MS}\nheartbeat_ms = {HEARTBEAT_MS}\n{rest}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_nodes_data_seeds_a_cluster_whose_added_nodes_receive_it_by_snapshot() {
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    // A single node with data, as a restore leaves one.
    let mut seed = TestServer::start();
    create_events(&seed.root().await).await;
    let mut expected: BTreeSet<i64> = (0..50).collect();
    seed.root()
        .await
        .batch_execute(
            "INSERT INTO app.events SELECT value, 'single' FROM generate_series(0, 49) AS g(value)",
        )
        .await
        .unwrap();
    seed.stop();

    // It may not form a cluster with peers that would replay a log without its history.
    let (first_port, second_port) = (free_port(), free_port());
    seed.options.extra = node_section(
        1,
        first_port,
        &format!("[[cluster.peer]]\nnode_id = 2\nraft_address = \"127.0.0.1:{second_port}\"\n"),
    );
    seed.write_config();
    let (status, log) = common::run_to_exit(
        seed.dir.path(),
        &seed.config_path(),
        Duration::from_secs(60),
    );
    assert!(!status.success());
    assert!(
        log.contains("becomes a cluster's first node alone"),
        "{log}"
    );

    // Alone, it becomes node 1 with its data; the node added later is seeded by a snapshot.
    seed.options.extra = node_section(1, first_port, "");
    seed.write_config();
    seed.launch();
    seed.wait_listening();
    assert_eq!(ids_on(&seed).await, expected);
    let mut joining = TestServer::configured(ServerOptions {
        extra: node_section(2, second_port, "join = true\n"),
        ..ServerOptions::default()
    });
    joining.launch();
    wait_for_raft_port(second_port);
    seed.root()
        .await
        .batch_execute(&format!(
            "ALTER CLUSTER ADD NODE 2 '127.0.0.1:{second_port}'"
        ))
        .await
        .unwrap();
    joining.wait_listening();
    assert_eq!(ids_on(&joining).await, expected);
    assert!(
        joining
            .log()
            .contains("installed a snapshot the leader sent"),
        "{}",
        joining.log()
    );
    // Both serve writes; the single node's root user logs in on the new node too.
    joining
        .root()
        .await
        .execute("INSERT INTO app.events VALUES (100, 'cluster')", &[])
        .await
        .unwrap();
    expected.insert(100);
    assert_eq!(ids_on(&seed).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_on_two_nodes_at_once_share_a_sequence_and_keyless_row_ids_without_conflict() {
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    let cluster = Cluster::start(3);
    cluster.nodes[0]
        .root()
        .await
        .batch_execute(
            "CREATE TABLE serials (id BIGSERIAL PRIMARY KEY, origin TEXT NOT NULL); \
             CREATE TABLE notes (origin TEXT NOT NULL)",
        )
        .await
        .unwrap();
    // Four clients on each of two nodes: each node reserves sequence values while the other's
    // reservations are still on their way to it.
    let mut writers = Vec::new();
    for node in [0usize, 1, 0, 1, 0, 1, 0, 1] {
        let client = cluster.nodes[node].root().await;
        writers.push(tokio::spawn(async move {
            for _ in 0..50 {
                client
                    .batch_execute(&format!(
                        "INSERT INTO serials (origin) VALUES ('node {node}'); \
                         INSERT INTO notes VALUES ('node {node}')"
                    ))
                    .await
                    .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    for node in &cluster.nodes {
        let client = node.root().await;
        let row = client
            .query_one(
                "SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM notes) FROM serials",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            (
                row.get::<_, i64>(0),
                row.get::<_, i64>(1),
                row.get::<_, i64>(2)
            ),
            (400, 400, 400)
        );
    }
}

/// What a client that is not a node gets from a node's Raft port under TLS: the connection is
/// closed (or the handshake refused) without any call being answered. `Ok(())` means closed.
async fn raft_port_refuses(
    port: u16,
    client_certificate: bool,
    plaintext: bool,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A length-delimited frame as a node would send one; its content does not matter, since
    // nothing may be read from a connection that is not a node's.
    let frame = [0u8, 0, 0, 4, 0x80, 0x80, 0x80, 0x80];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let tcp = if plaintext {
        let mut tcp = tcp;
        let _ = tcp.write_all(&frame).await;
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut answer)).await;
        return refused(read, &answer);
    } else {
        tcp
    };
    use rustls_pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(repo_root().join("certs/ca.pem")).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = if client_certificate {
        // A certificate its own key signed, not the cluster's CA.
        let fixtures = repo_root().join("tests/fixtures");
        let chain =
            rustls_pki_types::CertificateDer::pem_file_iter(fixtures.join("foreign-node.pem"))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(fixtures.join("foreign-node.key"))
            .unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![b"kalamdb-raft".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = match connector.connect(name, tcp).await {
        Ok(tls) => tls,
        Err(_) => return Ok(()),
    };
    let _ = tls.write_all(&frame).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tls.read_to_end(&mut answer)).await;
    refused(read, &answer)
}

/// A connection the Raft port refused: closed (or failed) within the time, with nothing but a
/// TLS alert record (content type 21) sent back.
fn refused(
    read: Result<std::io::Result<usize>, tokio::time::error::Elapsed>,
    answer: &[u8],
) -> Result<(), String> {
    match read {
        Err(_) => Err("the Raft port kept the connection open".into()),
        Ok(_) if answer.is_empty() || answer[0] == 21 => Ok(()),
        Ok(_) => Err(format!(
            "the Raft port answered {} bytes: {answer:?}",
            answer.len()
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_on_nodes_replicate_over_mutual_tls_and_the_raft_port_refuses_everyone_else() {
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    let ca = repo_root().join("certs/ca.pem");
    let cluster =
        Cluster::start_configured(3, &format!("ca = {:?}\n", ca.display().to_string()), true);
    let raft_port = cluster.raft_ports[0];
    for (what, client_certificate, plaintext) in [
        ("plain TCP", false, true),
        ("TLS without a client certificate", false, false),
        ("TLS with a certificate another CA signed", true, false),
    ] {
        if let Err(e) = raft_port_refuses(raft_port, client_certificate, plaintext).await {
            panic!("{what}: {e}");
        }
    }
    let first = cluster.nodes[0].root().await;
    create_events(&first).await;
    let second = cluster.nodes[1].root().await;
    for id in 0..200i64 {
        second
            .execute("INSERT INTO app.events VALUES ($1, 'over TLS')", &[&id])
            .await
            .unwrap();
    }
    let expected: BTreeSet<i64> = (0..200).collect();
    for node in &cluster.nodes {
        wait_for_ids(node, &expected).await;
    }
    let leaders = cluster.nodes[2]
        .root()
        .await
        .query(
            "SELECT node_id FROM system.cluster WHERE role = 'leader'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        leaders.len(),
        1,
        "every node reports to the others over TLS"
    );
    assert!(
        cluster.nodes[0]
            .log()
            .contains("refused a cluster connection"),
        "the refusals are logged"
    );
}

/// Concurrent row writes are proposed together as one log entry; a group holding a duplicate
/// is applied as none of its writes, and each write is proposed again alone. Eight clients on
/// two nodes race to insert the same 50 keys: each key is inserted once, every other attempt
/// is told 23505, and every node holds the same 50 rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_inserts_of_the_same_keys_succeed_once_each_and_the_rest_are_duplicates() {
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    let cluster = Cluster::start(3);
    create_events(&cluster.nodes[0].root().await).await;
    let mut racers = Vec::new();
    for racer in 0..8usize {
        let client = cluster.nodes[racer % 2].root().await;
        racers.push(tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO app.events VALUES ($1, $2)")
                .await
                .unwrap();
            let (mut inserted, mut duplicates) = (0, 0);
            for id in 0..50i64 {
                match client
                    .execute(&insert, &[&id, &format!("racer {racer}")])
                    .await
                {
                    Ok(1) => inserted += 1,
                    Err(e) if sqlstate(&e) == "23505" => duplicates += 1,
                    other => panic!("racer {racer}, id {id}: {other:?}"),
                }
            }
            (inserted, duplicates)
        }));
    }
    let (mut inserted, mut duplicates) = (0, 0);
    for racer in racers {
        let (i, d) = racer.await.unwrap();
        inserted += i;
        duplicates += d;
    }
    assert_eq!(inserted, 50, "each key inserted exactly once");
    assert_eq!(duplicates, 7 * 50, "every other attempt is a duplicate");
    let expected: BTreeSet<i64> = (0..50).collect();
    for node in &cluster.nodes {
        wait_for_ids(node, &expected).await;
    }
}
