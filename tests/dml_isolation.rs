//! INSERT, UPDATE and DELETE run as plans private to their statement: the rows a RETURNING
//! reads, an upsert's proposed rows and the hidden key and version columns exist inside the
//! statement's plan only, so no other session and no catalog can reach them.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, sqlstate};

/// Schemas a fresh database lists: its own namespace, KalamDB's and PostgreSQL's catalogs.
const EXPECTED_SCHEMAS: [&str; 4] = ["information_schema", "pg_catalog", "public", "system"];

/// The first column of every row `sql` returns.
async fn strings(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn schemas(client: &tokio_postgres::Client) -> Vec<String> {
    strings(
        client,
        "SELECT DISTINCT table_schema FROM information_schema.tables ORDER BY 1",
    )
    .await
}

#[tokio::test]
async fn another_session_cannot_read_rows_a_returning_is_evaluating() {
    let server = TestServer::start();
    let writer = server.root().await;
    let reader = server.root().await;
    writer
        .batch_execute("CREATE TABLE items (id BIGINT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let writes = tokio::spawn(async move {
        writer.batch_execute("BEGIN").await.unwrap();
        let mut returned = 0;
        for round in 0..6i64 {
            let first = round * 20_000;
            let rows = writer
                .query(
                    &format!(
                        "INSERT INTO items SELECT value, 'v' || value \
                         FROM generate_series({first}, {last}) AS g(value) \
                         ON CONFLICT (id) DO UPDATE SET v = excluded.v || items.v RETURNING id, v",
                        last = first + 29_999
                    ),
                    &[],
                )
                .await
                .unwrap();
            returned += rows.len();
            let rows = writer
                .query(
                    "UPDATE items SET v = upper(v) WHERE id >= $1 RETURNING *",
                    &[&first],
                )
                .await
                .unwrap();
            returned += rows.len();
        }
        // Uncommitted all along: nothing of it may be visible elsewhere either.
        writer.batch_execute("ROLLBACK").await.unwrap();
        returned
    });
    let started = Instant::now();
    let mut probes = 0;
    while !writes.is_finished() {
        assert!(started.elapsed() < Duration::from_secs(300), "writer hung");
        // Where per-statement tables used to live, by the names they were given.
        for name in ["s0", "s1", "s2", "s3"] {
            let err = reader
                .query(
                    &format!("SELECT count(*) FROM __kalamdb_scratch.{name}"),
                    &[],
                )
                .await
                .expect_err("no internal schema is readable");
            assert_eq!(sqlstate(&err), "42P01", "{err:?}");
        }
        let err = reader
            .query("SELECT count(*) FROM \"items$rowid\"", &[])
            .await
            .expect_err("the hidden key columns are no table");
        assert_eq!(sqlstate(&err), "42P01", "{err:?}");
        let seen: i64 = reader
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(seen, 0, "uncommitted rows leaked to another session");
        assert_eq!(schemas(&reader).await, EXPECTED_SCHEMAS);
        probes += 1;
    }
    assert_eq!(writes.await.unwrap(), 6 * 30_000 * 2);
    assert!(probes > 0);
}

#[tokio::test]
async fn catalogs_list_only_the_objects_users_created() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT);
             INSERT INTO accounts VALUES (1, 'ann') ON CONFLICT (id) DO UPDATE SET owner = excluded.owner RETURNING *;
             UPDATE accounts SET owner = 'bo' WHERE id = 1 RETURNING id;
             DELETE FROM accounts WHERE id = 2 RETURNING *",
        )
        .await
        .unwrap();
    assert_eq!(schemas(&client).await, EXPECTED_SCHEMAS);
    let public = strings(
        &client,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .await;
    assert_eq!(public, ["accounts"]);
    let columns = strings(
        &client,
        "SELECT column_name FROM information_schema.columns \
         WHERE table_schema = 'public' ORDER BY ordinal_position",
    )
    .await;
    assert_eq!(columns, ["id", "owner"]);
    let relations: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_class WHERE relname LIKE '%kalamdb%' OR relname LIKE '%$%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(relations, 0);
    // A namespace of the old internal name is an ordinary namespace now.
    client
        .batch_execute("CREATE SCHEMA __kalamdb_scratch; DROP SCHEMA __kalamdb_scratch")
        .await
        .unwrap();
}
