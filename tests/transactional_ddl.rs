//! DDL inside transaction blocks across sessions and crashes: another session sees none of a
//! block's DDL before its COMMIT, concurrent DDL on one object fails one COMMIT with 40001,
//! and a block cut off by a crash leaves nothing behind.

mod common;

use common::{TestServer, sqlstate};

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn other_sessions_see_a_blocks_ddl_only_after_commit() {
    let server = TestServer::start();
    let author = server.root().await;
    let other = server.root().await;
    author
        .batch_execute(
            "BEGIN; CREATE TABLE drafts (id INT PRIMARY KEY, body TEXT); \
             INSERT INTO drafts VALUES (1, 'x')",
        )
        .await
        .unwrap();
    let err = other.query("SELECT * FROM drafts", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42P01");
    let listed = count(
        &other,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'drafts'",
    )
    .await;
    assert_eq!(listed, 0);
    author.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&other, "SELECT count(*) FROM drafts").await, 1);
}

#[tokio::test]
async fn concurrent_ddl_on_one_table_fails_the_second_commit_with_40001() {
    let server = TestServer::start();
    let first = server.root().await;
    let second = server.root().await;
    first
        .batch_execute("CREATE TABLE shared (id INT PRIMARY KEY)")
        .await
        .unwrap();
    first
        .batch_execute("BEGIN; ALTER TABLE shared ADD COLUMN a INT")
        .await
        .unwrap();
    second
        .batch_execute("BEGIN; DROP TABLE shared")
        .await
        .unwrap();
    first.batch_execute("COMMIT").await.unwrap();
    let err = second.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&err), "40001", "{err:?}");
    // The first block's change stands; the second left nothing.
    first
        .batch_execute("INSERT INTO shared (id, a) VALUES (1, 2)")
        .await
        .unwrap();

    // Two blocks creating the same table: one wins.
    first
        .batch_execute("BEGIN; CREATE TABLE twice (id INT)")
        .await
        .unwrap();
    second
        .batch_execute("BEGIN; CREATE TABLE twice (id INT, other TEXT)")
        .await
        .unwrap();
    second.batch_execute("COMMIT").await.unwrap();
    let err = first.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&err), "40001", "{err:?}");
    let columns = count(
        &first,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'twice'",
    )
    .await;
    assert_eq!(columns, 2);
}

#[tokio::test]
async fn a_block_cut_off_by_a_crash_leaves_no_ddl_behind() {
    let mut server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE kept (id INT PRIMARY KEY); INSERT INTO kept VALUES (1); \
             BEGIN; CREATE TABLE lost (id SERIAL PRIMARY KEY, v TEXT); \
             INSERT INTO lost (v) VALUES ('a'), ('b'); DROP TABLE kept; \
             CREATE VIEW lost_view AS SELECT v FROM lost",
        )
        .await
        .unwrap();
    server.kill();
    server.restart_after_crash();
    let client = server.root().await;
    let err = client.query("SELECT * FROM lost", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42P01");
    let err = client
        .query("SELECT * FROM lost_view", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42P01");
    assert_eq!(count(&client, "SELECT count(*) FROM kept").await, 1);
    // The names are free again.
    client
        .batch_execute("CREATE TABLE lost (id INT); CREATE SEQUENCE lost_id_seq")
        .await
        .unwrap();
}
