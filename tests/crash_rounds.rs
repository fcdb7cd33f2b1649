//! The kill -9 harness: rounds of writers (both protocols), flushes and a backup, each ended by
//! SIGKILL at a random moment, then a restart that must hold every acknowledged write, no row
//! that was never written, and no leftover partial file.
//!
//! `KALAMDB_CRASH_ROUNDS` sets the number of rounds (default 15, about 30 s); the documented
//! long run is `KALAMDB_CRASH_ROUNDS=200 cargo test --test crash_rounds -- --nocapture`.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;

const WRITERS: i64 = 4;

#[derive(Default)]
struct Ledger {
    /// Row ids whose INSERT was sent / acknowledged.
    attempted: HashSet<i64>,
    acknowledged: HashSet<i64>,
    /// Per writer: counter increments sent / acknowledged.
    increments_sent: HashMap<i64, i64>,
    increments_acked: HashMap<i64, i64>,
}

fn rounds() -> usize {
    std::env::var("KALAMDB_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
}

/// A pseudo-random duration from a round number, so a run is reproducible.
fn pause(round: usize, salt: u64, max_ms: u64) -> Duration {
    let mut z = (round as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
    z = (z ^ (z >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    Duration::from_millis(z % max_ms)
}

/// Writes until the server dies under it. Any failure but a lost connection is a bug.
async fn write_until_killed(
    client: tokio_postgres::Client,
    writer: i64,
    ledger: Arc<Mutex<Ledger>>,
    next: i64,
) {
    let alive = |e: tokio_postgres::Error| {
        assert!(client.is_closed() || e.is_closed(), "writer {writer}: {e}");
    };
    let insert = match client
        .prepare("INSERT INTO crash.rows VALUES ($1, $2)")
        .await
    {
        Ok(statement) => statement,
        Err(e) => return alive(e),
    };
    let counter = format!("UPDATE crash.counters SET n = n + 1 WHERE writer = {writer}");
    for n in next.. {
        let id = writer * 1_000_000_000 + n;
        ledger.lock().unwrap().attempted.insert(id);
        if let Err(e) = client.execute(&insert, &[&id, &(writer as i32)]).await {
            return alive(e);
        }
        {
            let mut book = ledger.lock().unwrap();
            book.acknowledged.insert(id);
            *book.increments_sent.entry(writer).or_default() += 1;
        }
        if let Err(e) = client.simple_query(&counter).await {
            return alive(e);
        }
        *ledger
            .lock()
            .unwrap()
            .increments_acked
            .entry(writer)
            .or_default() += 1;
    }
}

/// Files a finished or interrupted write may never leave behind once the server is up again.
fn leftovers(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                pending.push(path);
            } else if name.ends_with(".partial") || name.ends_with(".parquet.tmp") {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_kill_9_rounds_lose_no_acknowledged_write() {
    let rounds = rounds();
    let backups = tempfile::tempdir().unwrap();
    let mut server = TestServer::start();
    {
        let root = server.root().await;
        root.batch_execute(
            "CREATE NAMESPACE crash;
             CREATE TABLE crash.rows (id BIGINT PRIMARY KEY, writer INT);
             CREATE TABLE crash.counters (writer INT PRIMARY KEY, n BIGINT);
             INSERT INTO crash.counters VALUES (0, 0), (1, 0), (2, 0), (3, 0)",
        )
        .await
        .unwrap();
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut next = [0i64; WRITERS as usize];
    for round in 0..rounds {
        // Logins first (SCRAM costs the client time), so the whole window is workload.
        let mut clients = Vec::new();
        for _ in 0..=WRITERS {
            clients.push(server.root().await);
        }
        let root = clients.pop().unwrap();
        let writers = clients
            .into_iter()
            .zip(0..WRITERS)
            .map(|(client, w)| write_until_killed(client, w, ledger.clone(), next[w as usize]));
        let background = async {
            let backup = format!(
                "BACKUP DATABASE TO '{}/round-{round}.tar.gz'",
                backups.path().display()
            );
            let _ = root.simple_query(&backup).await;
            loop {
                if root.simple_query("FLUSH TABLE crash.rows").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let crash = async {
            tokio::time::sleep(Duration::from_millis(150) + pause(round, 7, 400)).await;
        };
        tokio::select! {
            _ = futures::future::join_all(writers) => {}
            _ = background => {}
            () = crash => {}
        }
        let (attempted, acked) = {
            let book = ledger.lock().unwrap();
            (book.attempted.len(), book.acknowledged.len())
        };
        eprintln!("round {round}: {attempted} attempted, {acked} acknowledged before the kill");
        server.kill();
        server.restart_after_crash();

        let root = server.root().await;
        let left = [leftovers(&server.data_path()), leftovers(backups.path())].concat();
        assert!(
            left.is_empty(),
            "round {round}: partial files left: {left:?}"
        );
        let rows = root.query("SELECT id FROM crash.rows", &[]).await.unwrap();
        let present: HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
        let counters = root
            .query("SELECT writer, n FROM crash.counters", &[])
            .await
            .unwrap();
        let mut ledger = ledger.lock().unwrap();
        let lost: Vec<_> = ledger.acknowledged.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged rows lost: {lost:?}"
        );
        let phantom: Vec<_> = present.difference(&ledger.attempted).collect();
        assert!(
            phantom.is_empty(),
            "round {round}: rows never written: {phantom:?}"
        );
        for row in counters {
            let (writer, n): (i32, i64) = (row.get(0), row.get(1));
            let writer = writer as i64;
            let acked = ledger.increments_acked.get(&writer).copied().unwrap_or(0);
            let sent = ledger.increments_sent.get(&writer).copied().unwrap_or(0);
            assert!(
                acked <= n && n <= sent,
                "round {round}: writer {writer}'s counter is {n}, acknowledged {acked}, sent {sent}"
            );
            // What is stored is now the truth both bounds start from.
            ledger.increments_acked.insert(writer, n);
            ledger.increments_sent.insert(writer, n);
        }
        // Rows in flight at the kill either made it or not: from now on they are what is there.
        ledger.attempted.retain(|id| present.contains(id));
        ledger.acknowledged = present.clone();
        for w in 0..WRITERS {
            next[w as usize] = present
                .iter()
                .filter(|id| **id / 1_000_000_000 == w)
                .map(|id| id % 1_000_000_000 + 1)
                .max()
                .unwrap_or(next[w as usize]);
        }
    }
    eprintln!(
        "crash rounds: {rounds}, rows at the end: {}",
        ledger.lock().unwrap().acknowledged.len()
    );
}
