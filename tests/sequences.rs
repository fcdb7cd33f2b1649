//! Sequences under concurrency and crashes: every value is handed out once, whatever the number
//! of clients, and a kill -9 between a reservation and its use leaves a gap, never a repeat
//! (nor an index entry without its row, or a row without its entry).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;

const CLIENTS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_never_get_the_same_value() {
    let server = TestServer::start();
    let root = server.root().await;
    root.batch_execute("CREATE SEQUENCE shared CACHE 5")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = server.root().await;
        tasks.push(tokio::spawn(async move {
            let mut values = Vec::new();
            for _ in 0..100 {
                let row = client
                    .query_one("SELECT nextval('shared')", &[])
                    .await
                    .unwrap();
                values.push(row.get::<_, i64>(0));
            }
            // Several values in one statement come from one reservation.
            for row in client
                .query(
                    "SELECT nextval('shared') FROM generate_series(1, 50) AS g(value)",
                    &[],
                )
                .await
                .unwrap()
            {
                values.push(row.get::<_, i64>(0));
            }
            values
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let values = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("clients finish")
            .unwrap();
        // Each client sees its own values increase.
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
        all.extend(values);
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a value was handed out twice");
    assert_eq!(all.len(), CLIENTS * 150);
}

/// Inserts with SERIAL ids until the server dies, recording each acknowledged id.
async fn insert_until_killed(client: tokio_postgres::Client, acked: Arc<Mutex<Vec<i64>>>) {
    let insert = match client
        .prepare("INSERT INTO seq.items (writer) VALUES (1), (2), (3) RETURNING id")
        .await
    {
        Ok(statement) => statement,
        Err(e) => return assert!(client.is_closed() || e.is_closed(), "{e}"),
    };
    loop {
        match client.query(&insert, &[]).await {
            Ok(rows) => acked
                .lock()
                .unwrap()
                .extend(rows.iter().map(|r| r.get::<_, i32>(0) as i64)),
            Err(e) => return assert!(client.is_closed() || e.is_closed(), "{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_serial_inserts_never_repeats_a_value_and_keeps_indexes_whole() {
    let mut server = TestServer::start();
    {
        let root = server.root().await;
        // No primary key: a repeated id would be stored, and found below. The index and the
        // foreign key change in the same write batches as the rows, so the crashes must leave
        // them consistent too.
        root.batch_execute(
            "CREATE NAMESPACE seq; \
             CREATE TABLE seq.writers (id INT PRIMARY KEY); \
             INSERT INTO seq.writers VALUES (1), (2), (3); \
             CREATE TABLE seq.items (id SERIAL, writer INT REFERENCES seq.writers); \
             CREATE INDEX items_id ON seq.items (id)",
        )
        .await
        .unwrap();
    }
    let acked = Arc::new(Mutex::new(Vec::new()));
    for round in 0..6u64 {
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(server.root().await);
        }
        let writers = clients
            .into_iter()
            .map(|client| insert_until_killed(client, acked.clone()));
        let crash = tokio::time::sleep(Duration::from_millis(200 + (round * 137) % 400));
        tokio::select! {
            _ = futures::future::join_all(writers) => {}
            () = crash => {}
        }
        server.kill();
        server.restart_after_crash();
    }
    let root = server.root().await;
    let stored: Vec<i64> = root
        .query("SELECT id FROM seq.items", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i32>(0) as i64)
        .collect();
    let distinct: HashSet<i64> = stored.iter().copied().collect();
    assert_eq!(distinct.len(), stored.len(), "an id was stored twice");
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty(), "no insert was acknowledged");
    for id in acked.iter() {
        assert!(distinct.contains(id), "acknowledged id {id} is missing");
    }
    // The full consistency scan: every row has its index entries and every entry its row.
    for row in root
        .query(
            "SELECT index_name, entries, live_rows, missing_entries, dangling_entries \
             FROM system.indexes WHERE table_name = 'items'",
            &[],
        )
        .await
        .unwrap()
    {
        let name: String = row.get(0);
        let counts: (i64, i64, i64, i64) = (row.get(1), row.get(2), row.get(3), row.get(4));
        assert_eq!(
            counts.0, counts.1,
            "{name}: entries vs live rows {counts:?}"
        );
        assert_eq!((counts.2, counts.3), (0, 0), "{name}: {counts:?}");
        assert_eq!(counts.1, stored.len() as i64, "{name}");
    }
    let orphans: i64 = root
        .query_one(
            "SELECT count(*) FROM seq.items WHERE writer NOT IN (SELECT id FROM seq.writers)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0);
    // After the crashes, the sequence goes on past every stored value.
    let next: i64 = root
        .query_one("SELECT nextval('seq.items_id_seq')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        stored.iter().all(|&id| id < next),
        "nextval {next} repeats a stored id"
    );
}
