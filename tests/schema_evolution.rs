//! Schema evolution over flushed rows: a segment's file names its columns by id, so renamed,
//! dropped, retyped and re-added columns read right from files written before, through more
//! flushes and restarts, with the table's indexes kept whole.

mod common;

use common::{TestServer, run_job};

/// Runs `expect` now, after FLUSH TABLE `table` (rows hot before now flushed beside older
/// segments), and after a restart.
async fn holds_after_flush_and_restart<F, Fut>(server: &mut TestServer, table: &str, expect: F)
where
    F: Fn(tokio_postgres::Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    expect(server.root().await).await;
    let client = server.root().await;
    let (_, status, _) = run_job(&client, &format!("FLUSH TABLE {table}")).await;
    assert_eq!(status, "Completed");
    expect(client).await;
    server.restart();
    expect(server.root().await).await;
}

/// `(missing_entries, dangling_entries, live_rows)` of an index, from `system.indexes`' full
/// check.
async fn index_health(client: &tokio_postgres::Client, index: &str) -> (i64, i64, i64) {
    let row = client
        .query_one(
            "SELECT missing_entries, dangling_entries, live_rows FROM system.indexes \
             WHERE index_name = $1",
            &[&index],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn a_dropped_column_leaves_flushed_and_hot_rows_readable_through_flushes_and_restarts() {
    let mut server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE wide (id INT PRIMARY KEY, gone TEXT, kept INT, tag TEXT); \
             INSERT INTO wide SELECT value, 'x' || value, value * 2, 't' || (value % 10) FROM generate_series(1, 3000) AS g(value); \
             CREATE INDEX wide_tag ON wide (tag)",
        )
        .await
        .unwrap();
    let (_, status, _) = run_job(&client, "FLUSH TABLE wide").await;
    assert_eq!(status, "Completed");
    // Rows in every state: flushed, updated after the flush (hot over cold), new, deleted.
    client
        .batch_execute(
            "UPDATE wide SET kept = -1 WHERE id <= 10; \
             INSERT INTO wide VALUES (5000, 'new', 5000, 't0'); \
             DELETE FROM wide WHERE id = 20; \
             ALTER TABLE wide DROP COLUMN gone",
        )
        .await
        .unwrap();
    let expect = |client: tokio_postgres::Client| async move {
        let row = client
            .query_one(
                "SELECT count(*), sum(kept), count(*) FILTER (WHERE tag = 't0') FROM wide",
                &[],
            )
            .await
            .unwrap();
        let (count, sum, tagged): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        // 3000 rows, one deleted, one added; ids 1..=10 carry -1.
        let kept: i64 = (11..=3000i64)
            .filter(|&v| v != 20)
            .map(|v| v * 2)
            .sum::<i64>()
            - 10
            + 5000;
        assert_eq!((count, sum, tagged), (3000, kept, 300));
        let columns: Vec<String> = client
            .query("SELECT * FROM wide WHERE id = 3", &[])
            .await
            .unwrap()[0]
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert_eq!(columns, ["id", "kept", "tag"]);
        let point = client
            .query_one("SELECT kept, tag FROM wide WHERE id = $1", &[&2999i32])
            .await
            .unwrap();
        assert_eq!(
            (point.get::<_, i32>(0), point.get::<_, String>(1)),
            (5998, "t9".to_owned())
        );
        assert_eq!(index_health(&client, "wide_tag").await, (0, 0, 3000));
    };
    expect(client).await;
    // A flush after the drop writes the new layout beside the old segment.
    let client = server.root().await;
    client
        .batch_execute("UPDATE wide SET tag = 't0' WHERE id = 2999")
        .await
        .unwrap();
    client
        .batch_execute("UPDATE wide SET tag = 't9' WHERE id = 2999")
        .await
        .unwrap();
    let (_, status, _) = run_job(&client, "FLUSH TABLE wide").await;
    assert_eq!(status, "Completed");
    expect(client).await;
    server.restart();
    expect(server.root().await).await;
}

#[tokio::test]
async fn retyped_columns_read_their_new_values_over_flushed_rows_and_rebuild_their_index() {
    let mut server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE r (id INT PRIMARY KEY, amount INT, code TEXT, tag TEXT); \
             INSERT INTO r SELECT value, value, CAST(value AS TEXT), 't' || (value % 4) FROM generate_series(1, 2000) AS g(value); \
             CREATE INDEX r_tag ON r (tag)",
        )
        .await
        .unwrap();
    let (_, status, _) = run_job(&client, "FLUSH TABLE r").await;
    assert_eq!(status, "Completed");
    client
        .batch_execute(
            "DELETE FROM r WHERE id = 7; \
             ALTER TABLE r ALTER COLUMN amount TYPE BIGINT; \
             ALTER TABLE r ALTER COLUMN code TYPE BIGINT USING code::bigint * 1000000000; \
             ALTER TABLE r DROP COLUMN amount; \
             ALTER TABLE r ALTER COLUMN tag TYPE VARCHAR(4)",
        )
        .await
        .unwrap();
    let expect = |client: tokio_postgres::Client| async move {
        let row = client
            .query_one(
                "SELECT count(*), CAST(sum(code) AS BIGINT), count(*) FILTER (WHERE tag = 't1') FROM r",
                &[],
            )
            .await
            .unwrap();
        let sum: i64 = (1..=2000i64)
            .filter(|&v| v != 7)
            .map(|v| v * 1_000_000_000)
            .sum();
        let got: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(got, (1999, sum, 500));
        let point = client
            .query_one("SELECT code FROM r WHERE id = $1", &[&1999i32])
            .await
            .unwrap();
        assert_eq!(point.get::<_, i64>(0), 1_999_000_000_000);
        assert_eq!(index_health(&client, "r_tag").await, (0, 0, 1999));
    };
    drop(client);
    holds_after_flush_and_restart(&mut server, "r", expect).await;
}

#[tokio::test]
async fn flushed_files_follow_renames_drops_and_re_added_names_by_column_id() {
    let mut server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE ev (id INT PRIMARY KEY, a INT, b TEXT, c TEXT); \
             INSERT INTO ev SELECT value, value, 'b' || value, 'c' || value FROM generate_series(1, 1000) AS g(value); \
             CREATE INDEX ev_c ON ev (c)",
        )
        .await
        .unwrap();
    let (_, status, _) = run_job(&client, "FLUSH TABLE ev").await;
    assert_eq!(status, "Completed");
    // Every old name comes back on another column: by name or by place, the file's columns
    // would be read as the wrong ones.
    client
        .batch_execute(
            "ALTER TABLE ev RENAME COLUMN c TO d; \
             ALTER TABLE ev DROP COLUMN a; \
             ALTER TABLE ev RENAME COLUMN b TO a; \
             ALTER TABLE ev ADD COLUMN b TEXT DEFAULT 'later'; \
             ALTER TABLE ev ADD COLUMN c INT",
        )
        .await
        .unwrap();
    // An update of a flushed row reads its old copy (to move its index entry) from the file.
    client
        .batch_execute("UPDATE ev SET d = 'moved' WHERE id = 5")
        .await
        .unwrap();
    let expect = |client: tokio_postgres::Client| async move {
        let columns: Vec<String> = client
            .query("SELECT * FROM ev WHERE id = 3", &[])
            .await
            .unwrap()[0]
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert_eq!(columns, ["id", "a", "d", "b", "c"]);
        let row = client
            .query_one("SELECT a, d, b, c FROM ev WHERE id = $1", &[&700i32])
            .await
            .unwrap();
        let got: (String, String, String, Option<i32>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(got, ("b700".into(), "c700".into(), "later".into(), None));
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE a LIKE 'b%' AND b = 'later' AND c IS NULL), \
                 count(*) FILTER (WHERE d = 'moved') FROM ev",
                &[],
            )
            .await
            .unwrap();
        let got: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(got, (1000, 1000, 1));
        assert_eq!(index_health(&client, "ev_c").await, (0, 0, 1000));
    };
    drop(client);
    holds_after_flush_and_restart(&mut server, "ev", expect).await;
}

#[tokio::test]
async fn a_retyped_primary_key_moves_hot_and_flushed_rows_to_their_new_keys() {
    let mut server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE pk (id INT PRIMARY KEY, tag TEXT); \
             INSERT INTO pk SELECT value, 't' || (value % 5) FROM generate_series(1, 2000) AS g(value); \
             CREATE INDEX pk_tag ON pk (tag)",
        )
        .await
        .unwrap();
    let (_, status, _) = run_job(&client, "FLUSH TABLE pk").await;
    assert_eq!(status, "Completed");
    // Rows in every state before the retype: flushed, updated hot over flushed, new, deleted.
    client
        .batch_execute(
            "UPDATE pk SET tag = 'changed' WHERE id <= 3; \
             INSERT INTO pk VALUES (5000, 't0'); \
             DELETE FROM pk WHERE id = 10; \
             ALTER TABLE pk ALTER COLUMN id TYPE BIGINT",
        )
        .await
        .unwrap();
    let expect = |client: tokio_postgres::Client| async move {
        let row = client
            .query_one(
                "SELECT count(*), CAST(sum(id) AS BIGINT), count(*) FILTER (WHERE tag = 'changed') FROM pk",
                &[],
            )
            .await
            .unwrap();
        let sum: i64 = (1..=2000i64).filter(|&v| v != 10).sum::<i64>() + 5000;
        let got: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(got, (2000, sum, 3));
        // Point reads by the new key type, hot and flushed; the deleted row stays gone.
        for (id, tag) in [
            (2i64, Some("changed")),
            (1999, Some("t4")),
            (5000, Some("t0")),
            (10, None),
        ] {
            let found = client
                .query_opt("SELECT tag FROM pk WHERE id = $1", &[&id])
                .await
                .unwrap()
                .map(|r| r.get::<_, String>(0));
            assert_eq!(found.as_deref(), tag, "id {id}");
        }
        assert_eq!(index_health(&client, "pk_tag").await, (0, 0, 2000));
    };
    drop(client);
    holds_after_flush_and_restart(&mut server, "pk", expect).await;
}

#[tokio::test]
async fn widened_keys_on_both_sides_of_a_foreign_key_keep_flushed_references() {
    let mut server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE parents (id INT PRIMARY KEY); \
             CREATE TABLE kids (id INT PRIMARY KEY, parent_id INT REFERENCES parents ON DELETE CASCADE); \
             INSERT INTO parents SELECT value FROM generate_series(1, 100) AS g(value); \
             INSERT INTO kids SELECT value, value % 100 + 1 FROM generate_series(1, 1000) AS g(value)",
        )
        .await
        .unwrap();
    for table in ["parents", "kids"] {
        let (_, status, _) = run_job(&client, &format!("FLUSH TABLE {table}")).await;
        assert_eq!(status, "Completed");
    }
    client
        .batch_execute(
            "ALTER TABLE parents ALTER COLUMN id TYPE BIGINT; \
             ALTER TABLE kids ALTER COLUMN parent_id TYPE BIGINT; \
             DELETE FROM parents WHERE id = 7",
        )
        .await
        .unwrap();
    let expect = |client: tokio_postgres::Client| async move {
        let orphan = client
            .execute("INSERT INTO kids VALUES (5000, 7)", &[])
            .await
            .unwrap_err();
        assert_eq!(common::sqlstate(&orphan), "23503");
        let row = client
            .query_one(
                "SELECT count(*) AS kids, count(*) FILTER (WHERE parent_id = 7) AS orphans, \
                 (SELECT count(*) FROM parents) AS parents FROM kids",
                &[],
            )
            .await
            .unwrap();
        let got: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        // The cascade removed parent 7's ten children, flushed as they were.
        assert_eq!(got, (990, 0, 99));
        let kid = client
            .query_one("SELECT parent_id FROM kids WHERE id = $1", &[&205i32])
            .await
            .unwrap();
        assert_eq!(kid.get::<_, i64>(0), 6);
    };
    expect(client).await;
    server.restart();
    expect(server.root().await).await;
}

#[tokio::test]
async fn a_key_retyped_with_using_is_validated_against_flushed_references() {
    let mut server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE accounts (id INT PRIMARY KEY); \
             CREATE TABLE entries (id INT PRIMARY KEY, account_id INT REFERENCES accounts); \
             INSERT INTO accounts SELECT value FROM generate_series(1, 100) AS g(value); \
             INSERT INTO entries SELECT value, value % 100 + 1 FROM generate_series(1, 1000) AS g(value)",
        )
        .await
        .unwrap();
    for table in ["accounts", "entries"] {
        let (_, status, _) = run_job(&client, &format!("FLUSH TABLE {table}")).await;
        assert_eq!(status, "Completed");
    }
    // Shifting the referenced keys strands the flushed entries of account 1.
    let err = client
        .batch_execute("ALTER TABLE accounts ALTER COLUMN id TYPE BIGINT USING id + 1")
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&err), "23503", "{err:?}");
    // Shifting both sides keeps every reference.
    client
        .batch_execute(
            "BEGIN; \
             ALTER TABLE entries DROP CONSTRAINT entries_account_id_fkey; \
             ALTER TABLE accounts ALTER COLUMN id TYPE BIGINT USING id + 1000; \
             ALTER TABLE entries ALTER COLUMN account_id TYPE BIGINT USING account_id + 1000; \
             ALTER TABLE entries ADD FOREIGN KEY (account_id) REFERENCES accounts; \
             COMMIT",
        )
        .await
        .unwrap();
    let err = client
        .batch_execute(
            "ALTER TABLE entries ALTER COLUMN account_id TYPE BIGINT USING account_id - 1000",
        )
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&err), "23503", "{err:?}");
    let expect = |client: tokio_postgres::Client| async move {
        let row = client
            .query_one(
                "SELECT min(account_id), max(account_id), count(*) FROM entries",
                &[],
            )
            .await
            .unwrap();
        let got: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(got, (1001, 1100, 1000));
        let err = client
            .execute("DELETE FROM accounts WHERE id = 1050", &[])
            .await
            .unwrap_err();
        assert_eq!(common::sqlstate(&err), "23503");
    };
    expect(client).await;
    server.restart();
    expect(server.root().await).await;
}
