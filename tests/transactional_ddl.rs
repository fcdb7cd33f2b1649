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

#[tokio::test]
async fn rows_encoded_before_another_sessions_drop_column_fail_their_commit_with_40001() {
    let mut server = TestServer::start();
    let writer = server.root().await;
    let migrator = server.root().await;
    writer
        .batch_execute(
            "CREATE TABLE ledger (id INT PRIMARY KEY, memo TEXT, amount INT); \
             INSERT INTO ledger VALUES (1, 'one', 10)",
        )
        .await
        .unwrap();
    // The writer's rows are encoded with `memo`; the migrator's DROP commits first.
    writer
        .batch_execute("BEGIN; INSERT INTO ledger VALUES (2, 'two', 20); UPDATE ledger SET amount = 11 WHERE id = 1")
        .await
        .unwrap();
    migrator
        .batch_execute("ALTER TABLE ledger DROP COLUMN memo")
        .await
        .unwrap();
    let err = writer.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&err), "40001", "{err:?}");
    // A retype as well: a write planned for the old type is refused, not stored.
    writer
        .batch_execute("BEGIN; INSERT INTO ledger VALUES (3, 30)")
        .await
        .unwrap();
    migrator
        .batch_execute("ALTER TABLE ledger ALTER COLUMN amount TYPE BIGINT")
        .await
        .unwrap();
    let err = writer.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&err), "40001", "{err:?}");
    let expect = |client: tokio_postgres::Client| async move {
        let rows = client
            .query("SELECT id, amount FROM ledger ORDER BY id", &[])
            .await
            .unwrap();
        let got: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, vec![(1, 10)]);
    };
    expect(writer).await;
    server.restart();
    expect(server.root().await).await;
}

#[tokio::test]
async fn a_block_that_drops_and_retypes_columns_over_flushed_rows_commits_what_it_read() {
    let mut server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE orders (id INT PRIMARY KEY, legacy TEXT, total INT); \
             INSERT INTO orders SELECT value, 'l' || value, value FROM generate_series(1, 300) AS g(value)",
        )
        .await
        .unwrap();
    let (_, status, _) = common::run_job(&client, "FLUSH TABLE orders").await;
    assert_eq!(status, "Completed");
    // Hot rows beside the flushed ones, some of them newer copies of flushed rows.
    client
        .batch_execute(
            "INSERT INTO orders SELECT value, 'l' || value, value FROM generate_series(301, 400) AS g(value); \
             UPDATE orders SET total = total + 1000 WHERE id <= 50",
        )
        .await
        .unwrap();
    // A migration: backfill, drop the old column, widen and rewrite another, all in one block.
    client
        .batch_execute(
            "BEGIN; \
             UPDATE orders SET total = total + 1 WHERE id % 2 = 0; \
             ALTER TABLE orders DROP COLUMN legacy; \
             ALTER TABLE orders ALTER COLUMN total TYPE BIGINT USING total * 10; \
             INSERT INTO orders VALUES (401, 7); \
             UPDATE orders SET total = 0 WHERE id = 3",
        )
        .await
        .unwrap();
    // Every total plus 1000 for ids up to 50 and 1 for even ids, times ten; id 3 (1003 then)
    // set to 0; 401 added with 7.
    let expected: i64 = ((1..=400).sum::<i64>() + 50 * 1000 + 200) * 10 - 10_030 + 7;
    assert_eq!(
        count(&client, "SELECT sum(total)::BIGINT FROM orders").await,
        expected
    );
    client.batch_execute("COMMIT").await.unwrap();
    let check = |client: tokio_postgres::Client| async move {
        assert_eq!(
            count(&client, "SELECT sum(total)::BIGINT FROM orders").await,
            expected
        );
        assert_eq!(count(&client, "SELECT count(*) FROM orders").await, 401);
        assert_eq!(
            count(&client, "SELECT total FROM orders WHERE id = 2").await,
            (1002 + 1) * 10
        );
        assert_eq!(
            count(&client, "SELECT total FROM orders WHERE id = 299").await,
            2990
        );
        assert_eq!(
            count(&client, "SELECT total FROM orders WHERE id = 3").await,
            0
        );
        let columns = count(
            &client,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders'",
        )
        .await;
        assert_eq!(columns, 2);
    };
    check(server.root().await).await;
    let (_, status, _) = common::run_job(&server.root().await, "FLUSH TABLE orders").await;
    assert_eq!(status, "Completed");
    server.restart();
    check(server.root().await).await;
}

#[tokio::test]
async fn queries_prepared_before_another_sessions_drop_column_are_planned_again() {
    let server = TestServer::start();
    let app = server.root().await;
    let migrator = server.root().await;
    app.batch_execute(
        "CREATE TABLE items (id INT PRIMARY KEY, memo TEXT, amount INT); \
         INSERT INTO items SELECT value, 'm' || value, value * 10 FROM generate_series(1, 20) AS g(value)",
    )
    .await
    .unwrap();
    let some = app
        .prepare("SELECT id, amount FROM items WHERE id > $1 ORDER BY id")
        .await
        .unwrap();
    let one = app
        .prepare("SELECT amount FROM items WHERE id = $1")
        .await
        .unwrap();
    let all = app
        .prepare("SELECT * FROM items ORDER BY id")
        .await
        .unwrap();
    migrator
        .batch_execute(
            "ALTER TABLE items DROP COLUMN memo; ALTER TABLE items ADD COLUMN note TEXT; \
             INSERT INTO items VALUES (21, 210, 'n')",
        )
        .await
        .unwrap();
    let rows = app.query(&some, &[&18i32]).await.unwrap();
    let got: Vec<(i32, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(19, 190), (20, 200), (21, 210)]);
    // The primary-key fast path too, though the table has as many columns as before.
    for (id, amount) in [(21, 210), (3, 30)] {
        let row = app.query_one(&one, &[&id]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), amount);
    }
    // The result columns changed: PostgreSQL's error, which drivers answer by preparing again.
    let err = app.query(&all, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "0A000", "{err:?}");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("cached plan must not change result type")
    );
    let fresh = app
        .prepare("SELECT * FROM items ORDER BY id")
        .await
        .unwrap();
    assert_eq!(app.query(&fresh, &[]).await.unwrap().len(), 21);
}
