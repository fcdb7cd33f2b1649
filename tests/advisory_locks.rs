//! Advisory locks between real sessions: what one session holds another cannot take until it
//! is released, a wait ends when the lock is freed, cancelled, timed out or would deadlock,
//! and locks end with their transaction or session, as in PostgreSQL.

mod common;

use std::time::Duration;

use common::{TestServer, sqlstate};
use tokio_postgres::Client;

async fn try_lock(client: &Client, sql: &str) -> bool {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Polls `sql` (a try-lock returning bool) until it answers true, for at most five seconds.
async fn eventually_true(client: &Client, sql: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if try_lock(client, sql).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn a_held_lock_keeps_other_sessions_out_until_each_hold_is_released() {
    let server = TestServer::start();
    let (a, b) = (server.root().await, server.root().await);
    a.batch_execute("SELECT pg_advisory_lock(42); SELECT pg_advisory_lock(42)")
        .await
        .unwrap();
    assert!(!try_lock(&b, "SELECT pg_try_advisory_lock(42)").await);
    assert!(
        try_lock(&b, "SELECT pg_try_advisory_lock(0, 42)").await,
        "two integers are a key space of their own"
    );
    assert!(try_lock(&a, "SELECT pg_advisory_unlock(42)").await);
    assert!(
        !try_lock(&b, "SELECT pg_try_advisory_lock(42)").await,
        "taken twice, released once"
    );
    assert!(try_lock(&a, "SELECT pg_advisory_unlock(42)").await);
    assert!(
        !try_lock(&a, "SELECT pg_advisory_unlock(42)").await,
        "a holds it no more"
    );
    assert!(try_lock(&b, "SELECT pg_try_advisory_lock(42)").await);
    // Migration tools bind the key as a parameter (golang-migrate: `pg_advisory_lock($1)`).
    let by_parameter = a
        .query_one("SELECT pg_try_advisory_lock($1)", &[&42i64])
        .await
        .unwrap();
    assert!(!by_parameter.get::<_, bool>(0), "b holds 42");
    a.execute("SELECT pg_advisory_lock($1, $2)", &[&1i32, &2i32])
        .await
        .unwrap();
    assert!(!try_lock(&b, "SELECT pg_try_advisory_lock(1, 2)").await);
    // Shared holds coexist and keep an exclusive one out.
    a.batch_execute("SELECT pg_advisory_lock_shared(9)")
        .await
        .unwrap();
    assert!(try_lock(&b, "SELECT pg_try_advisory_lock_shared(9)").await);
    let c = server.root().await;
    assert!(!try_lock(&c, "SELECT pg_try_advisory_lock(9)").await);
    a.batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    assert!(try_lock(&b, "SELECT pg_advisory_unlock_shared(9)").await);
    assert!(try_lock(&c, "SELECT pg_try_advisory_lock(9)").await);
}

#[tokio::test]
async fn a_waiting_session_gets_the_lock_when_it_is_released_and_not_before() {
    let server = TestServer::start();
    let (a, b) = (server.root().await, server.root().await);
    a.batch_execute("SELECT pg_advisory_lock(7)").await.unwrap();
    let waiter = tokio::spawn(async move {
        b.batch_execute("SELECT pg_advisory_lock(7)").await.unwrap();
        b
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "the wait ended while the lock was held"
    );
    assert!(try_lock(&a, "SELECT pg_advisory_unlock(7)").await);
    let b = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter got the lock within 5 s")
        .unwrap();
    assert!(
        !try_lock(&a, "SELECT pg_try_advisory_lock(7)").await,
        "b holds it now"
    );
    drop(b);
    assert!(
        eventually_true(&a, "SELECT pg_try_advisory_lock(7)").await,
        "a session's locks end with its connection"
    );
}

#[tokio::test]
async fn transaction_locks_end_with_the_block_or_the_statement_outside_one() {
    let server = TestServer::start();
    let (a, b) = (server.root().await, server.root().await);
    a.batch_execute("BEGIN; SELECT pg_advisory_xact_lock(5)")
        .await
        .unwrap();
    assert!(try_lock(&a, "SELECT pg_try_advisory_xact_lock(6)").await);
    assert!(!try_lock(&b, "SELECT pg_try_advisory_lock(5)").await);
    assert!(!try_lock(&b, "SELECT pg_try_advisory_lock(6)").await);
    assert!(
        !try_lock(&a, "SELECT pg_advisory_unlock(5)").await,
        "unlock releases session locks only"
    );
    a.batch_execute("ROLLBACK").await.unwrap();
    assert!(try_lock(&b, "SELECT pg_try_advisory_lock(5)").await);
    assert!(try_lock(&b, "SELECT pg_try_advisory_lock(6)").await);
    // Outside a block the statement is the transaction.
    assert!(try_lock(&a, "SELECT pg_try_advisory_xact_lock(8)").await);
    assert!(try_lock(&b, "SELECT pg_try_advisory_lock(8)").await);
    // A session lock taken inside a block outlives it.
    a.batch_execute("BEGIN; SELECT pg_advisory_lock(11); COMMIT")
        .await
        .unwrap();
    assert!(!try_lock(&b, "SELECT pg_try_advisory_lock(11)").await);
}

#[tokio::test]
async fn a_wait_that_would_deadlock_fails_with_40p01_and_the_other_goes_on() {
    let server = TestServer::start();
    let (a, b) = (server.root().await, server.root().await);
    a.batch_execute("SELECT pg_advisory_lock(1)").await.unwrap();
    b.batch_execute("SELECT pg_advisory_lock(2)").await.unwrap();
    let waiter = tokio::spawn(async move {
        a.batch_execute("SELECT pg_advisory_lock(2)").await.unwrap();
        a
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let error = tokio::time::timeout(
        Duration::from_secs(5),
        b.batch_execute("SELECT pg_advisory_lock(1)"),
    )
    .await
    .expect("the deadlock was found within 5 s")
    .unwrap_err();
    assert_eq!(sqlstate(&error), "40P01", "{error:?}");
    assert!(!waiter.is_finished(), "b still holds 2");
    assert!(try_lock(&b, "SELECT pg_advisory_unlock(2)").await);
    let a = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("a got 2 once b released it")
        .unwrap();
    assert!(!try_lock(&b, "SELECT pg_try_advisory_lock(2)").await);
    drop(a);
}

#[tokio::test]
async fn a_wait_ends_at_statement_timeout_and_leaves_nothing_behind() {
    let server = TestServer::start();
    let (a, b) = (server.root().await, server.root().await);
    a.batch_execute("SELECT pg_advisory_lock(3)").await.unwrap();
    b.batch_execute("SET statement_timeout = '200ms'")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let error = b
        .batch_execute("SELECT pg_advisory_lock(3)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "57014", "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(try_lock(&a, "SELECT pg_advisory_unlock(3)").await);
    // b's given-up wait neither took the lock nor keeps it from anyone.
    let c = server.root().await;
    assert!(try_lock(&c, "SELECT pg_try_advisory_lock(3)").await);
    b.batch_execute("SET statement_timeout = 0").await.unwrap();
    assert!(!try_lock(&b, "SELECT pg_try_advisory_lock(3)").await);
}
