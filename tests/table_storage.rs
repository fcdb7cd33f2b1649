//! Durability and concurrency of table writes through real clients: acknowledged writes survive
//! kill -9, everything survives a restart, and concurrent writers lose nothing.

mod common;

use common::side_by_side::{Params, contents, create_flushed_pair, on_both, same_outcome};
use common::{TestServer, sqlstate};

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let mut server = TestServer::start();
    {
        let client = server.root().await;
        client
            .batch_execute("CREATE NAMESPACE d; CREATE TABLE d.t (id INT PRIMARY KEY, v TEXT)")
            .await
            .unwrap();
        for i in 0..100 {
            client
                .execute(
                    "INSERT INTO d.t VALUES ($1, $2)",
                    &[&i, &format!("row {i}")],
                )
                .await
                .unwrap();
        }
        client
            .batch_execute("BEGIN; UPDATE d.t SET v = 'changed' WHERE id < 10; DELETE FROM d.t WHERE id >= 90; COMMIT")
            .await
            .unwrap();
    }
    server.kill();
    std::fs::write(server.log_path(), "").unwrap();
    server.restart_after_crash();
    let client = server.root().await;
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE v = 'changed') FROM d.t",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 90);
    assert_eq!(row.get::<_, i64>(1), 10);
}

#[tokio::test]
async fn tables_definitions_and_rows_survive_a_restart() {
    let mut server = TestServer::start();
    {
        let client = server.root().await;
        client
            .batch_execute(
                "CREATE NAMESPACE p; CREATE TABLE p.t (id BIGINT PRIMARY KEY, amount NUMERIC(10,2), at DATE); \
                 INSERT INTO p.t VALUES (1, 12.50, '2026-01-01'), (2, NULL, NULL); \
                 ALTER TABLE p.t ADD COLUMN flag BOOLEAN DEFAULT false; \
                 CREATE TABLE p.log (msg TEXT); INSERT INTO p.log VALUES ('a'), ('b')",
            )
            .await
            .unwrap();
    }
    server.restart();
    let client = server.root().await;
    let rows = client
        .query(
            "SELECT id, amount::text, at::text, flag FROM p.t ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].get::<_, Option<String>>(1).as_deref(),
        Some("12.50")
    );
    assert_eq!(
        rows[0].get::<_, Option<String>>(2).as_deref(),
        Some("2026-01-01")
    );
    assert!(!rows[1].get::<_, bool>(3));
    // Hidden row ids continue after a restart instead of reusing old ones.
    client
        .batch_execute("INSERT INTO p.log VALUES ('c')")
        .await
        .unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM p.log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 3);
}

async fn hammer(server: &TestServer, sql: &'static str, clients: usize, per_client: usize) {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = server.root().await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_client {
                client.batch_execute(sql).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_one_row_lose_no_increment() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute("CREATE TABLE counter (id INT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO counter VALUES (1, 0)")
        .await
        .unwrap();
    hammer(&server, "UPDATE counter SET n = n + 1 WHERE id = 1", 8, 25).await;
    hammer(
        &server,
        "INSERT INTO counter VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = counter.n + 1",
        8,
        25,
    )
    .await;
    let n: i64 = client
        .query_one("SELECT n FROM counter WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_of_one_key_admit_exactly_one() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute("CREATE TABLE once (id INT PRIMARY KEY, who INT)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for who in 0..8i32 {
        let client = server.root().await;
        tasks.push(tokio::spawn(async move {
            client
                .execute("INSERT INTO once VALUES (1, $1)", &[&who])
                .await
                .map_err(|e| sqlstate(&e))
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(1) => won += 1,
            Ok(n) => panic!("inserted {n} rows"),
            Err(code) => assert_eq!(code, "23505"),
        }
    }
    assert_eq!(won, 1);
    let count: i64 = client
        .query_one("SELECT count(*) FROM once", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

/// Point reads by primary key take a fast path that skips DataFusion; in every state a row can
/// be in (hot, flushed, updated after a flush, deleted, uncommitted in the session's block) it
/// must answer exactly as a scan does (`id + 0 = $1` defeats the fast path).
#[tokio::test]
async fn primary_key_point_reads_answer_like_scans_in_every_row_state() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE pt (id BIGINT PRIMARY KEY, v TEXT, n INT);
             CREATE TABLE pair (a INT, b TEXT, w TEXT, PRIMARY KEY (a, b));
             INSERT INTO pt SELECT value, 'v' || value, CAST(value AS INT) FROM generate_series(1, 50) AS g(value);
             INSERT INTO pair VALUES (1, 'x', 'one-x'), (1, 'y', 'one-y');",
        )
        .await
        .unwrap();
    let (_, status, message) = common::run_job(&client, "FLUSH TABLE pt").await;
    assert_eq!(status, "Completed", "{message}");
    client
        .batch_execute(
            "UPDATE pt SET v = 'updated' WHERE id = 3; DELETE FROM pt WHERE id = 4;
             INSERT INTO pt VALUES (60, 'hot', 60);",
        )
        .await
        .unwrap();
    let fast = client
        .prepare("SELECT v, id, v AS again, n FROM pt WHERE id = $1")
        .await
        .unwrap();
    let slow = client
        .prepare("SELECT v, id, v AS again, n FROM pt WHERE id + 0 = $1")
        .await
        .unwrap();
    let same = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, i64, String, i32)> {
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    };
    for id in [1i64, 3, 4, 60, 999] {
        assert_eq!(
            same(client.query(&fast, &[&id]).await.unwrap()),
            same(client.query(&slow, &[&id]).await.unwrap()),
            "id {id}"
        );
    }
    assert_eq!(
        same(client.query(&fast, &[&3i64]).await.unwrap())[0].0,
        "updated"
    );
    assert!(client.query(&fast, &[&4i64]).await.unwrap().is_empty());
    // Uncommitted writes of the session's own block are seen; others' are not.
    client
        .batch_execute(
            "BEGIN; INSERT INTO pt VALUES (70, 'mine', 70); DELETE FROM pt WHERE id = 60",
        )
        .await
        .unwrap();
    assert_eq!(client.query(&fast, &[&70i64]).await.unwrap().len(), 1);
    assert!(client.query(&fast, &[&60i64]).await.unwrap().is_empty());
    let other = server.root().await;
    assert!(
        other
            .query("SELECT v FROM pt WHERE id = 70", &[])
            .await
            .unwrap()
            .is_empty()
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(client.query(&fast, &[&60i64]).await.unwrap().len(), 1);
    // Composite keys, literals, and a NULL parameter.
    let row = client
        .query_one("SELECT w FROM pair WHERE b = 'y' AND a = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "one-y");
    let none: Option<i64> = None;
    assert!(client.query(&fast, &[&none]).await.unwrap().is_empty());
    // A column added later reads as its default through the fast path too.
    client
        .batch_execute("ALTER TABLE pt ADD COLUMN extra TEXT DEFAULT 'd'")
        .await
        .unwrap();
    let row = client
        .query_one("SELECT extra FROM pt WHERE id = 60", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "d");
    let row = client.query_one(&fast, &[&60i64]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "hot");
    // Flushed rows are read at the position the cold index records: across two segments,
    // past a deletion the second flush carried (it holds no row), and for a column added
    // after the first segment was written.
    let (_, status, message) = common::run_job(&client, "FLUSH TABLE pt").await;
    assert_eq!(status, "Completed", "{message}");
    for id in [1i64, 2, 3, 4, 50, 60, 999] {
        let answer = client.query(&fast, &[&id]).await;
        let answer = answer.unwrap_or_else(|e| panic!("id {id}: {e}\n{}", server.log()));
        let scanned = client.query(&slow, &[&id]).await;
        let scanned = scanned.unwrap_or_else(|e| panic!("id {id}: {e}\n{}", server.log()));
        assert_eq!(
            same(answer),
            same(scanned),
            "id {id} after the second flush"
        );
    }
    assert_eq!(
        same(client.query(&fast, &[&60i64]).await.unwrap()),
        [("hot".to_owned(), 60, "hot".to_owned(), 60)]
    );
    for (sql, expected) in [
        ("SELECT extra FROM pt WHERE id = 1", "d"),
        ("SELECT v || '!' FROM pt WHERE id = 2", "v2!"),
        ("SELECT v FROM pt WHERE id = 3", "updated"),
    ] {
        let row = client.query_one(sql, &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), expected, "{sql}");
    }
    client
        .batch_execute("UPDATE pt SET n = n + 100 WHERE id = 2")
        .await
        .unwrap();
    let row = client.query_one(&fast, &[&2i64]).await.unwrap();
    assert_eq!(row.get::<_, i32>(3), 102);
}

/// UPDATE and DELETE by the whole primary key take a fast path that skips DataFusion; in every
/// state a row can be in (flushed, updated after a flush, deleted, hot, uncommitted in the
/// session's block, absent) they must change exactly what the planned statement changes
/// (`id + 0 = $1` defeats the fast path) and fail with the same SQLSTATE.
#[tokio::test]
async fn primary_key_updates_and_deletes_change_what_planned_ones_change() {
    let server = TestServer::start();
    let client = server.root().await;
    create_flushed_pair(&client).await;
    on_both(
        &client,
        "INSERT INTO {t} (id, v, n) VALUES (30, 'hot', 30);
         UPDATE {t} SET v = 'after flush' WHERE id + 0 = 2;
         DELETE FROM {t} WHERE id + 0 = 3;",
    )
    .await;
    let prepare = |sql: &'static str| client.prepare(sql);
    let update = (
        &prepare("UPDATE fast SET v = $2, n = $3 WHERE id = $1")
            .await
            .unwrap(),
        &prepare("UPDATE slow SET v = $2, n = $3 WHERE id + 0 = $1")
            .await
            .unwrap(),
    );
    let delete = (
        &prepare("DELETE FROM fast WHERE id = $1").await.unwrap(),
        &prepare("DELETE FROM slow WHERE id + 0 = $1").await.unwrap(),
    );
    let set_code = (
        &prepare("UPDATE fast SET code = $2 WHERE fast.id = $1")
            .await
            .unwrap(),
        &prepare("UPDATE slow SET code = $2 WHERE slow.id + 0 = $1")
            .await
            .unwrap(),
    );
    let text = |s: &str| Some(s.to_owned());
    // Flushed, updated after the flush, deleted, hot, absent.
    for (id, expected) in [
        (1i64, Ok(1)),
        (2, Ok(1)),
        (3, Ok(0)),
        (30, Ok(1)),
        (999, Ok(0)),
    ] {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&id, &text("new"), &7i32];
        assert_eq!(
            same_outcome(&client, update, &params).await,
            expected,
            "id {id}"
        );
    }
    // Constraint failures: CHECK, NOT NULL, VARCHAR length, a unique index.
    let none: Option<i32> = None;
    let cases: [(Params<'_>, Result<u64, String>); 2] = [
        (&[&4i64, &text("x"), &-1i32], Err("23514".into())),
        (&[&4i64, &text("x"), &none], Err("23502".into())),
    ];
    for (params, expected) in cases {
        assert_eq!(same_outcome(&client, update, params).await, expected);
    }
    assert_eq!(
        same_outcome(&client, set_code, &[&5i64, &text("toolong")]).await,
        Err("22001".into())
    );
    assert_eq!(
        same_outcome(&client, set_code, &[&5i64, &text("ab")]).await,
        Ok(1)
    );
    assert_eq!(
        same_outcome(&client, set_code, &[&6i64, &text("ab")]).await,
        Err("23505".into())
    );
    assert_eq!(
        same_outcome(&client, set_code, &[&5i64, &None::<String>]).await,
        Ok(1)
    );
    // Constants in the statement text: one that fits a narrower column, one that does not.
    for (sql, expected) in [
        (
            "UPDATE {t} SET v = 'literal', small = 7 WHERE id = 8",
            Ok(1),
        ),
        (
            "UPDATE {t} SET small = 100000 WHERE id = 8",
            Err("22003".to_owned()),
        ),
        ("UPDATE {t} SET v = NULL WHERE id = '9'", Ok(1)),
        ("DELETE FROM {t} WHERE id = 10", Ok(1)),
    ] {
        let fast = client.execute(&sql.replace("{t}", "fast"), &[]).await;
        let slow_sql = sql
            .replace("{t}", "slow")
            .replace("WHERE id", "WHERE id + 0");
        let slow = client.execute(&slow_sql, &[]).await;
        assert_eq!(fast.map_err(|e| sqlstate(&e)), expected, "{sql}");
        assert_eq!(slow.map_err(|e| sqlstate(&e)), expected, "{slow_sql}");
    }
    assert_eq!(
        contents(&client, "fast").await,
        contents(&client, "slow").await
    );
    // Inside a block: the block's own uncommitted row, and a rollback that undoes the change.
    client
        .batch_execute("BEGIN; INSERT INTO fast (id, n) VALUES (40, 40); INSERT INTO slow (id, n) VALUES (40, 40)")
        .await
        .unwrap();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&40i64, &text("in block"), &41i32];
    assert_eq!(same_outcome(&client, update, &params).await, Ok(1));
    let other = server.root().await;
    assert!(
        other
            .query("SELECT 1 FROM fast WHERE id = 40", &[])
            .await
            .unwrap()
            .is_empty()
    );
    client.batch_execute("COMMIT").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&1i64, &text("rolled back"), &1i32];
    assert_eq!(client.execute(update.0, &params).await.unwrap(), 1);
    let row = client
        .query_one("SELECT v FROM fast WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "rolled back");
    client.batch_execute("ROLLBACK").await.unwrap();
    for id in [1i64, 3, 30, 40, 999] {
        assert!(
            same_outcome(&client, delete, &[&id]).await.is_ok(),
            "id {id}"
        );
    }
    assert_eq!(
        contents(&client, "fast").await,
        contents(&client, "slow").await
    );
    // A column added after Parse: the prepared statement still changes the right row.
    for t in ["fast", "slow"] {
        client
            .batch_execute(&format!(
                "ALTER TABLE {t} ADD COLUMN extra TEXT DEFAULT 'd'"
            ))
            .await
            .unwrap();
    }
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&11i64, &text("altered"), &11i32];
    assert_eq!(same_outcome(&client, update, &params).await, Ok(1));
    for t in ["fast", "slow"] {
        let (_, status, message) = common::run_job(&client, &format!("FLUSH TABLE {t}")).await;
        assert_eq!(status, "Completed", "{message}");
    }
    let after_flush = contents(&client, "fast").await;
    assert_eq!(after_flush, contents(&client, "slow").await);
    assert!(after_flush.contains(&(11, text("altered"), 11, None, None)));
    assert!(after_flush.contains(&(2, text("new"), 7, None, None)));
    assert!(after_flush.contains(&(8, text("literal"), 8, None, Some(7))));
    assert!(!after_flush.iter().any(|row| row.0 == 1 || row.0 == 40));
}

/// The fast path resolves the table as the statement would now: `SET search_path` between
/// executions of one prepared UPDATE changes which table it writes, as in PostgreSQL.
#[tokio::test]
async fn primary_key_updates_follow_search_path() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE SCHEMA a; CREATE SCHEMA b;
             CREATE TABLE a.sp (id INT PRIMARY KEY, v TEXT); CREATE TABLE b.sp (id INT PRIMARY KEY, v TEXT);
             INSERT INTO a.sp VALUES (1, 'a'); INSERT INTO b.sp VALUES (1, 'b');
             SET search_path = a",
        )
        .await
        .unwrap();
    let update = client
        .prepare("UPDATE sp SET v = $2 WHERE id = $1")
        .await
        .unwrap();
    client.execute(&update, &[&1i32, &"x"]).await.unwrap();
    client.batch_execute("SET search_path = b").await.unwrap();
    client.execute(&update, &[&1i32, &"y"]).await.unwrap();
    let rows = client
        .query(
            "SELECT v FROM a.sp UNION ALL SELECT v FROM b.sp ORDER BY v",
            &[],
        )
        .await
        .unwrap();
    let values: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, ["x", "y"]);
}

/// An UPDATE by key writes the whole row it read; a concurrent change to another column of
/// that row must make it read again rather than be overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn primary_key_updates_never_overwrite_a_concurrent_change() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute("CREATE TABLE tally (id INT PRIMARY KEY, n BIGINT NOT NULL, label TEXT); INSERT INTO tally VALUES (1, 0, 'start')")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let client = server.root().await;
        tasks.push(tokio::spawn(async move {
            let relabel = client
                .prepare("UPDATE tally SET label = $1 WHERE id = 1")
                .await
                .unwrap();
            for i in 0..50 {
                client
                    .execute(&relabel, &[&format!("w{worker}-{i}")])
                    .await
                    .unwrap();
            }
        }));
    }
    hammer(&server, "UPDATE tally SET n = n + 1 WHERE id = 1", 4, 25).await;
    for task in tasks {
        task.await.unwrap();
    }
    let n: i64 = client
        .query_one("SELECT n FROM tally WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 100);
}
