//! Sessions seen and signalled from other sessions, as PostgreSQL's monitoring views and
//! functions do it: `pg_stat_activity` lists every connection with its state and statement,
//! `pg_backend_pid()` names a session, `pg_cancel_backend` stops its statement and
//! `pg_terminate_backend` closes its connection; a plain user sees and signals only its own.

mod common;

use std::time::Duration;

use common::{TestServer, sqlstate};
use tokio_postgres::{Client, Row};

async fn pid(client: &Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

async fn activity_of(observer: &Client, pid: i32) -> Option<Row> {
    observer
        .query_opt(
            "SELECT usename, application_name, state, query, xact_start IS NOT NULL, \
                    backend_type, client_addr, backend_start IS NOT NULL, datname \
             FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .unwrap()
}

/// Polls until `pid` shows `state` with a statement containing `query`, for at most 5 s.
async fn wait_for_state(observer: &Client, pid: i32, state: &str, query: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(row) = activity_of(observer, pid).await
            && row.get::<_, Option<String>>(2).as_deref() == Some(state)
            && row.get::<_, String>(3).contains(query)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pid {pid} never showed {state} running {query}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls until `pid` has left `pg_stat_activity`, for at most 5 s.
async fn wait_until_unlisted(observer: &Client, pid: i32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while activity_of(observer, pid).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pid {pid} is still listed"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn connect_as(server: &TestServer, user: &str, password: &str, app: &str) -> Client {
    let conn = format!(
        "{} application_name={app}",
        server.conn_string(user, password)
    );
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

#[tokio::test]
async fn pg_stat_activity_lists_each_session_with_its_state_statement_and_transaction() {
    let server = TestServer::start();
    let observer = server.root().await;
    let worker = connect_as(&server, "root", &server.options.root_password, "worker").await;
    let (observer_pid, worker_pid) = (pid(&observer).await, pid(&worker).await);
    assert_ne!(observer_pid, worker_pid, "each session has its own pid");
    assert!(worker_pid > 0);

    let row = activity_of(&observer, worker_pid).await.expect("listed");
    assert_eq!(row.get::<_, String>(0), "root");
    assert_eq!(row.get::<_, String>(1), "worker");
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("idle"));
    assert_eq!(row.get::<_, String>(3), "SELECT pg_backend_pid()");
    assert!(!row.get::<_, bool>(4), "no transaction while idle");
    assert_eq!(row.get::<_, String>(5), "client backend");
    assert_eq!(
        row.get::<_, Option<String>>(6).as_deref(),
        Some("127.0.0.1")
    );
    assert!(row.get::<_, bool>(7));
    assert_eq!(row.get::<_, String>(8), "kalamdb");

    worker
        .batch_execute("BEGIN; SELECT 1 AS inside")
        .await
        .unwrap();
    let row = activity_of(&observer, worker_pid).await.unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("idle in transaction")
    );
    assert_eq!(row.get::<_, String>(3), "BEGIN; SELECT 1 AS inside");
    assert!(
        row.get::<_, bool>(4),
        "the block's start is its transaction's"
    );
    let _ = worker.batch_execute("SELECT 1 / 0").await.unwrap_err();
    let row = activity_of(&observer, worker_pid).await.unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("idle in transaction (aborted)")
    );
    worker.batch_execute("ROLLBACK").await.unwrap();
    let row = activity_of(&observer, worker_pid).await.unwrap();
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("idle"));

    // The asking session is active, running the query that reads the view.
    let own = activity_of(&observer, observer_pid).await.unwrap();
    assert_eq!(own.get::<_, Option<String>>(2).as_deref(), Some("active"));
    assert!(own.get::<_, String>(3).contains("pg_stat_activity"));

    // A statement that runs shows as active while it runs, with its text.
    let sleeper = tokio::spawn(async move {
        worker
            .execute("SELECT pg_sleep($1)", &[&0.6f64])
            .await
            .unwrap();
        worker
    });
    wait_for_state(&observer, worker_pid, "active", "SELECT pg_sleep($1)").await;
    let worker = sleeper.await.unwrap();

    // A closed connection leaves the view.
    drop(worker);
    wait_until_unlisted(&observer, worker_pid).await;
}

#[tokio::test]
async fn pg_cancel_backend_stops_another_sessions_statement_and_leaves_it_connected() {
    let server = TestServer::start();
    let (observer, worker) = (server.root().await, server.root().await);
    let worker_pid = pid(&worker).await;
    let sleeping = tokio::spawn(async move {
        let err = worker
            .batch_execute("SELECT pg_sleep(30)")
            .await
            .unwrap_err();
        (worker, err)
    });
    wait_for_state(&observer, worker_pid, "active", "pg_sleep(30)").await;
    let sent: bool = observer
        .query_one("SELECT pg_cancel_backend($1)", &[&i64::from(worker_pid)])
        .await
        .unwrap()
        .get(0);
    assert!(sent);
    let (worker, err) = tokio::time::timeout(Duration::from_secs(10), sleeping)
        .await
        .expect("the statement ends when cancelled")
        .unwrap();
    assert_eq!(sqlstate(&err), "57014");
    assert_eq!(pid(&worker).await, worker_pid, "still connected");

    let unknown: bool = observer
        .query_one("SELECT pg_cancel_backend(2147483647)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!unknown, "no such backend");
}

#[tokio::test]
async fn pg_terminate_backend_closes_another_sessions_connection_with_57p01() {
    let server = TestServer::start();
    let observer = server.root().await;
    let (worker, connection) = tokio_postgres::connect(
        &server.conn_string("root", &server.options.root_password),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let ended = tokio::spawn(connection);
    let worker_pid = pid(&worker).await;
    let sent: bool = observer
        .query_one("SELECT pg_terminate_backend($1)", &[&i64::from(worker_pid)])
        .await
        .unwrap()
        .get(0);
    assert!(sent);
    let closed = tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("the connection is closed")
        .unwrap();
    let err = closed.expect_err("closed by the server with an error");
    assert_eq!(sqlstate(&err), "57P01");
    assert!(worker.batch_execute("SELECT 1").await.is_err());
    wait_until_unlisted(&observer, worker_pid).await;
}

#[tokio::test]
async fn a_user_sees_other_users_sessions_without_their_statements_and_cannot_signal_them() {
    let server = TestServer::start();
    let root = server.root().await;
    root.batch_execute(
        "CREATE USER alice WITH PASSWORD 'alice-pw' ROLE user;
         CREATE USER ops WITH PASSWORD 'ops-pw' ROLE dba",
    )
    .await
    .unwrap();
    let alice = connect_as(&server, "alice", "alice-pw", "alice-app").await;
    let alice_again = connect_as(&server, "alice", "alice-pw", "alice-app").await;
    let ops = connect_as(&server, "ops", "ops-pw", "ops-app").await;
    let (root_pid, alice_pid) = (pid(&root).await, pid(&alice_again).await);

    let seen_by_alice = activity_of(&alice, root_pid).await.expect("listed");
    assert_eq!(seen_by_alice.get::<_, String>(0), "root");
    assert_eq!(seen_by_alice.get::<_, Option<String>>(2), None, "no state");
    assert_eq!(
        seen_by_alice.get::<_, String>(3),
        "<insufficient privilege>"
    );
    assert_eq!(
        seen_by_alice.get::<_, Option<String>>(6),
        None,
        "no address"
    );
    let own = activity_of(&alice, alice_pid).await.unwrap();
    assert_eq!(own.get::<_, String>(3), "SELECT pg_backend_pid()");

    let err = alice
        .query_one("SELECT pg_cancel_backend($1)", &[&i64::from(root_pid)])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let err = alice
        .query_one("SELECT pg_terminate_backend($1)", &[&i64::from(root_pid)])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let own_other: bool = alice
        .query_one("SELECT pg_cancel_backend($1)", &[&i64::from(alice_pid)])
        .await
        .unwrap()
        .get(0);
    assert!(own_other, "a user signals its own sessions");

    // A dba reads every statement and signals anyone but a system user.
    let seen_by_ops = activity_of(&ops, alice_pid).await.unwrap();
    assert_eq!(seen_by_ops.get::<_, String>(3), "SELECT pg_backend_pid()");
    let err = ops
        .query_one("SELECT pg_cancel_backend($1)", &[&i64::from(root_pid)])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "root is a system user");
    let sent: bool = ops
        .query_one("SELECT pg_terminate_backend($1)", &[&i64::from(alice_pid)])
        .await
        .unwrap()
        .get(0);
    assert!(sent);
}
