//! Limits that keep one client's statement from taking the server down: the query memory pool
//! (`[query] memory_limit`), the connection limit under a flood of connections, and the panic
//! guard around each statement.

mod common;

use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer, message, sqlstate};

#[tokio::test]
async fn queries_beyond_the_memory_pool_spill_or_fail_with_53200() {
    let server = TestServer::start_with(ServerOptions {
        extra: "[query]\nmemory_limit = 16777216\n".into(),
        ..Default::default()
    });
    let client = server.root().await;
    // A full sort of 5 million rows (~80 MB) spills to disk and still answers.
    let row = client
        .query_one(
            "SELECT max(r)::BIGINT FROM (SELECT row_number() OVER (ORDER BY x DESC) AS r, x
                                 FROM generate_series(1, 5000000) t(x)) s WHERE x = 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 5_000_000);
    // One aggregate state of ~100 MB cannot spill: the statement fails, the server stays.
    let err = client
        .simple_query(
            "SELECT length(string_agg(repeat('x', 100), ',')) FROM generate_series(1, 1000000) AS g(value)",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "53200", "{}", message(&err));
    client.simple_query("SELECT 1").await.unwrap();
}

/// A WITH HOLD cursor keeps its whole result, and a SCROLL cursor every row it read: both are
/// counted against the pool, so a cursor over more than it holds fails with 53200 and the
/// session goes on.
#[tokio::test]
async fn cursors_that_keep_rows_fail_with_53200_beyond_the_memory_pool() {
    let server = TestServer::start_with(ServerOptions {
        extra: "[query]\nmemory_limit = 16777216\n".into(),
        ..Default::default()
    });
    let client = server.root().await;
    let big = "SELECT repeat('x', 100) FROM generate_series(1, 1000000)";
    let err = client
        .simple_query(&format!("DECLARE held CURSOR WITH HOLD FOR {big}"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "53200", "{}", message(&err));
    client.simple_query("BEGIN").await.unwrap();
    client
        .simple_query(&format!("DECLARE scrolled SCROLL CURSOR FOR {big}"))
        .await
        .unwrap();
    let err = client
        .simple_query("FETCH ALL FROM scrolled")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "53200", "{}", message(&err));
    client.simple_query("ROLLBACK").await.unwrap();
    // A forward-only cursor lets go of what it passed: the same rows stream through it.
    client.simple_query("BEGIN").await.unwrap();
    client
        .simple_query(&format!("DECLARE streamed CURSOR FOR {big}"))
        .await
        .unwrap();
    let mut fetched = 0;
    loop {
        let rows = client
            .simple_query("FETCH FORWARD 50000 FROM streamed")
            .await
            .unwrap();
        let count = rows
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        if count == 0 {
            break;
        }
        fetched += count;
    }
    assert_eq!(fetched, 1_000_000);
    client.simple_query("COMMIT").await.unwrap();
}

#[tokio::test]
async fn five_hundred_connections_beyond_the_limit_get_a_clear_53300() {
    let server = TestServer::start_with(ServerOptions {
        max_connections: 50,
        reserved_connections: 2,
        ..Default::default()
    });
    let root = server.root().await;
    root.batch_execute("CREATE USER crowd WITH PASSWORD 'crowd-secret' ROLE user")
        .await
        .unwrap();
    let attempts: Vec<_> = (0..500)
        .map(|_| {
            let server = &server;
            async move { server.connect("crowd", "crowd-secret").await }
        })
        .collect();
    let results = futures::future::join_all(attempts).await;
    let mut held = Vec::new();
    let mut refused = 0;
    for result in results {
        match result {
            Ok(client) => held.push(client),
            Err(e) => {
                assert_eq!(sqlstate(&e), "53300", "{}", message(&e));
                // Refused while logging in (too many at once) or at the slot count.
                assert!(
                    [
                        "sorry, too many clients already",
                        "remaining connection slots are reserved for the system role",
                    ]
                    .contains(&message(&e).as_str()),
                    "{}",
                    message(&e)
                );
                refused += 1;
            }
        }
    }
    assert_eq!(held.len(), 50 - 2 - 1, "every general slot less root's");
    assert_eq!(refused, 500 - held.len());
    // The system role still gets in on a reserved slot, and the held sessions still work.
    server.root().await.simple_query("SELECT 1").await.unwrap();
    held[0].simple_query("SELECT 1").await.unwrap();
    drop(held);
    let started = Instant::now();
    loop {
        match server.connect("crowd", "crowd-secret").await {
            Ok(client) => {
                client.simple_query("SELECT 1").await.unwrap();
                break;
            }
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                assert_eq!(sqlstate(&e), "53300");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("slots were not returned: {e}"),
        }
    }
}

#[tokio::test]
async fn a_panicking_statement_fails_alone_with_xx000() {
    let server = TestServer::start_with(ServerOptions {
        env: vec![("KALAMDB_FAULT".into(), "query:SELECT 'boom'".into())],
        ..Default::default()
    });
    let victim = server.root().await;
    let bystander = server.root().await;
    bystander
        .batch_execute("CREATE TABLE calm (id INT PRIMARY KEY); INSERT INTO calm VALUES (1)")
        .await
        .unwrap();
    let err = victim.simple_query("SELECT 'boom'").await.unwrap_err();
    assert_eq!(sqlstate(&err), "XX000");
    assert!(
        message(&err).contains("failed unexpectedly"),
        "{}",
        message(&err)
    );
    // The same connection carries on, and so does everyone else.
    let rows = victim
        .query("SELECT count(*) FROM calm", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    bystander.simple_query("SELECT 1").await.unwrap();
    let log = server.log();
    assert!(log.contains("panic: panicked at"), "{log}");
    assert!(log.contains("fault injection: panicking at query"), "{log}");
}
