//! Secondary indexes through real clients: reads through an index agree with scans whatever
//! state rows are in, writes go on while an index builds, unique values hold under racing
//! clients, and a crash during a build leaves a consistent index after the restart.

mod common;

use std::time::Duration;

use common::{ServerOptions, TestServer, run_job, sqlstate};

/// `(entries, live_rows, missing_entries, dangling_entries, state)` of an index, from the
/// full check `system.indexes` runs.
async fn health(client: &tokio_postgres::Client, index: &str) -> (i64, i64, i64, i64, String) {
    let row = client
        .query_one(
            "SELECT entries, live_rows, missing_entries, dangling_entries, state \
             FROM system.indexes WHERE index_name = $1",
            &[&index],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

async fn ids(client: &tokio_postgres::Client, sql: &str, value: &str) -> Vec<i64> {
    client
        .query(sql, &[&value])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn plan(client: &tokio_postgres::Client, sql: &str) -> String {
    client
        .query(&format!("EXPLAIN {sql}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(1))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn index_reads_agree_with_scans_for_hot_flushed_and_uncommitted_rows() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE t (id BIGINT PRIMARY KEY, tag TEXT, n INT); \
             INSERT INTO t SELECT value, 'tag' || (value % 50), value % 7 FROM generate_series(1, 2000) AS g(value); \
             CREATE INDEX t_tag ON t (tag)",
        )
        .await
        .unwrap();
    let (_, status, _) = run_job(&client, "FLUSH TABLE t").await;
    assert_eq!(status, "Completed");
    // Hot changes over flushed rows: updates that move rows between tags, deletes, inserts.
    client
        .batch_execute(
            "UPDATE t SET tag = 'tag1' WHERE id % 50 = 2 AND id < 500; \
             DELETE FROM t WHERE tag = 'tag3' AND id > 1000; \
             INSERT INTO t SELECT value, 'tag' || (value % 50), 0 FROM generate_series(2001, 2100) AS g(value)",
        )
        .await
        .unwrap();
    let by_index = "SELECT id FROM t WHERE tag = $1 ORDER BY id";
    let by_scan = "SELECT id FROM t WHERE tag || '' = $1 ORDER BY id";
    assert!(
        plan(&client, "SELECT id FROM t WHERE tag = 'tag1'")
            .await
            .contains("IndexScan: t_tag")
    );
    assert!(
        !plan(&client, "SELECT id FROM t WHERE tag || '' = 'tag1'")
            .await
            .contains("IndexScan")
    );
    for tag in ["tag1", "tag2", "tag3", "tag49", "none"] {
        assert_eq!(
            ids(&client, by_index, tag).await,
            ids(&client, by_scan, tag).await,
            "{tag}"
        );
    }
    // The session's own uncommitted rows, seen through the index plan too.
    client
        .batch_execute(
            "BEGIN; UPDATE t SET tag = 'fresh' WHERE id = 7; INSERT INTO t VALUES (5000, 'fresh', 1); \
             DELETE FROM t WHERE id = 1",
        )
        .await
        .unwrap();
    assert_eq!(ids(&client, by_index, "fresh").await, vec![7, 5000]);
    assert_eq!(
        ids(&client, by_index, "tag1").await,
        ids(&client, by_scan, "tag1").await
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert!(ids(&client, by_index, "fresh").await.is_empty());
    let (entries, rows, missing, dangling, state) = health(&client, "t_tag").await;
    assert_eq!((missing, dangling, state.as_str()), (0, 0, "ready"));
    assert_eq!(entries, rows);
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, count);
}

/// A prepared lookup pinning every column of a unique index reads its one entry directly; it
/// must answer as a scan does while rows are flushed, updated to other values, deleted and
/// inserted again, for one-column and two-column unique indexes, and a lookup pinning only a
/// unique index's first column still finds every row with that value.
#[tokio::test]
async fn lookups_through_unique_indexes_agree_with_scans_as_rows_change() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE u (id BIGINT PRIMARY KEY, code BIGINT, a INT, b INT); \
             INSERT INTO u SELECT value, value * 10, value % 5, value FROM generate_series(1, 300) AS g(value); \
             CREATE UNIQUE INDEX u_code ON u (code); CREATE UNIQUE INDEX u_ab ON u (a, b)",
        )
        .await
        .unwrap();
    let (_, status, _) = run_job(&client, "FLUSH TABLE u").await;
    assert_eq!(status, "Completed");
    client
        .batch_execute(
            "UPDATE u SET code = code + 1, b = b + 1000 WHERE id % 3 = 0; \
             DELETE FROM u WHERE id % 7 = 0; \
             INSERT INTO u VALUES (7000, 70, 0, 7000), (7001, 140, 1, 7001)",
        )
        .await
        .unwrap();
    let by_code = client
        .prepare("SELECT id, a FROM u WHERE code = $1")
        .await
        .unwrap();
    let by_code_scan = client
        .prepare("SELECT id, a FROM u WHERE code + 0 = $1")
        .await
        .unwrap();
    let by_ab = client
        .prepare("SELECT id FROM u WHERE a = $1 AND b = $2")
        .await
        .unwrap();
    let by_ab_scan = client
        .prepare("SELECT id FROM u WHERE a + 0 = $1 AND b + 0 = $2")
        .await
        .unwrap();
    let by_a = client
        .prepare("SELECT id FROM u WHERE a = $1")
        .await
        .unwrap();
    let by_a_scan = client
        .prepare("SELECT id FROM u WHERE a + 0 = $1")
        .await
        .unwrap();
    let rows = |rows: Vec<tokio_postgres::Row>| {
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort();
        ids
    };
    let mut found = 0;
    for code in [10i64, 30, 31, 60, 61, 70, 140, 2990, 3000, 3001, 5] {
        let direct = rows(client.query(&by_code, &[&code]).await.unwrap());
        found += direct.len();
        assert_eq!(
            direct,
            rows(client.query(&by_code_scan, &[&code]).await.unwrap()),
            "code {code}"
        );
    }
    assert!(found >= 6, "the probe values name live rows: {found}");
    for (a, b) in [
        (1i32, 1i32),
        (3, 3),
        (3, 1003),
        (2, 7),
        (0, 7000),
        (1, 7001),
        (4, 999),
    ] {
        assert_eq!(
            rows(client.query(&by_ab, &[&a, &b]).await.unwrap()),
            rows(
                client
                    .query(&by_ab_scan, &[&(a as i64), &(b as i64)])
                    .await
                    .unwrap()
            ),
            "a {a}, b {b}"
        );
    }
    for a in 0i32..5 {
        let direct = rows(client.query(&by_a, &[&a]).await.unwrap());
        assert!(direct.len() > 40);
        let scanned = rows(client.query(&by_a_scan, &[&(a as i64)]).await.unwrap());
        assert_eq!(direct, scanned);
    }
}

#[tokio::test]
async fn writes_go_on_while_an_index_builds_and_it_ends_consistent() {
    let server = TestServer::start();
    let setup = server.root().await;
    setup
        .batch_execute(
            "CREATE TABLE w (id BIGINT PRIMARY KEY, k TEXT, n INT); \
             INSERT INTO w SELECT value, 'k' || (value % 1000), 0 FROM generate_series(1, 60000) AS g(value)",
        )
        .await
        .unwrap();
    let (_, status, _) = run_job(&setup, "FLUSH TABLE w").await;
    assert_eq!(status, "Completed");
    setup
        .batch_execute("UPDATE w SET n = 1 WHERE id % 10 = 0")
        .await
        .unwrap();
    let writer = server.root().await;
    let writes = tokio::spawn(async move {
        let mut done = 0;
        for i in 0..150i64 {
            writer
                .execute("INSERT INTO w VALUES ($1, 'new', 2)", &[&(100_000 + i)])
                .await
                .unwrap();
            writer
                .execute("UPDATE w SET k = 'moved' WHERE id = $1", &[&(i * 7 + 1)])
                .await
                .unwrap();
            writer
                .execute("DELETE FROM w WHERE id = $1", &[&(i * 11 + 3)])
                .await
                .unwrap();
            done += 1;
        }
        done
    });
    let builder = server.root().await;
    tokio::time::timeout(
        Duration::from_secs(300),
        builder.batch_execute("CREATE INDEX w_k ON w (k)"),
    )
    .await
    .expect("CREATE INDEX finished")
    .unwrap();
    assert_eq!(writes.await.unwrap(), 150);
    let job = setup
        .query_one(
            "SELECT status, bytes_done, bytes_total FROM system.jobs WHERE job_type = 'index_build'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(job.get::<_, String>(0), "Completed");
    let (done, total): (i64, i64) = (job.get(1), job.get(2));
    assert!(done >= 60000 && total >= 60000, "progress {done}/{total}");
    let (entries, rows, missing, dangling, state) = health(&setup, "w_k").await;
    assert_eq!((missing, dangling, state.as_str()), (0, 0, "ready"));
    assert_eq!(entries, rows);
    let by_index = "SELECT id FROM w WHERE k = $1 ORDER BY id";
    let by_scan = "SELECT id FROM w WHERE k || '' = $1 ORDER BY id";
    for k in ["moved", "new", "k3", "k500"] {
        assert_eq!(
            ids(&setup, by_index, k).await,
            ids(&setup, by_scan, k).await,
            "{k}"
        );
    }
}

#[tokio::test]
async fn eight_clients_racing_on_one_unique_value_admit_exactly_one() {
    let server = TestServer::start();
    let setup = server.root().await;
    setup
        .batch_execute(
            "CREATE TABLE accounts (id INT PRIMARY KEY, email TEXT); \
             CREATE UNIQUE INDEX accounts_email ON accounts (email); \
             INSERT INTO accounts VALUES (100, 'taken@example.org')",
        )
        .await
        .unwrap();
    for round in 0..5 {
        let mut tasks = Vec::new();
        for client_no in 0..8i32 {
            let client = server.root().await;
            tasks.push(tokio::spawn(async move {
                let id = round * 100 + client_no + 1000;
                client
                    .execute(
                        "INSERT INTO accounts VALUES ($1, $2)",
                        &[&id, &format!("race{round}@example.org")],
                    )
                    .await
                    .map_err(|e| sqlstate(&e))
            }));
        }
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => won += 1,
                Err(state) => assert_eq!(state, "23505"),
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
    // Racing updates of eight rows onto one value, inside transaction blocks: one commits.
    setup
        .batch_execute(
            "INSERT INTO accounts SELECT value, NULL FROM generate_series(2000, 2007) AS g(value)",
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for client_no in 0..8i32 {
        let client = server.root().await;
        tasks.push(tokio::spawn(async move {
            client
                .batch_execute(&format!(
                    "BEGIN; UPDATE accounts SET email = 'prize@example.org' WHERE id = {}; COMMIT",
                    2000 + client_no
                ))
                .await
                .map_err(|e| sqlstate(&e))
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(state) => assert_eq!(state, "23505"),
        }
    }
    assert_eq!(won, 1);
    let count: i64 = setup
        .query_one(
            "SELECT count(*) FROM accounts WHERE email = 'prize@example.org'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
    let (_, _, missing, dangling, _) = health(&setup, "accounts_email").await;
    assert_eq!((missing, dangling), (0, 0));
}

#[tokio::test]
async fn a_crash_during_an_index_build_is_built_again_at_restart() {
    let mut server = TestServer::start_with(ServerOptions {
        env: vec![("KALAMDB_FAULT".into(), "index_build_chunk".into())],
        ..Default::default()
    });
    {
        let client = server.root().await;
        client
            .batch_execute(
                "CREATE TABLE c (id BIGINT PRIMARY KEY, v TEXT); \
                 INSERT INTO c SELECT value, 'v' || (value % 100) FROM generate_series(1, 12000) AS g(value)",
            )
            .await
            .unwrap();
        // The fault aborts the server after the build's first chunk of entries.
        assert!(
            client
                .batch_execute("CREATE UNIQUE INDEX c_id_v ON c (v, id)")
                .await
                .is_err()
        );
    }
    let child = server.child.as_mut().unwrap();
    let status = common::wait_with_timeout(child, Duration::from_secs(60));
    assert!(!status.success());
    server.child = None;
    server.options.env.clear();
    server.write_config();
    server.restart_after_crash();
    let client = server.root().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (entries, rows, missing, dangling, state) = health(&client, "c_id_v").await;
        if state == "ready" {
            assert_eq!((missing, dangling), (0, 0));
            assert_eq!((entries, rows), (12000, 12000));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the build did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = client
        .query_one("SELECT id FROM c WHERE v = 'v42' AND id = 1042", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1042);
    let err = client
        .execute("INSERT INTO c VALUES (1042, 'v42')", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23505");
}
