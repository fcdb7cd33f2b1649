//! FLUSH TABLE: hot rows move to Parquet segments through a job, later writes to flushed rows
//! are correct, and a crash at any point of a flush neither loses nor duplicates rows.

mod common;

use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer, sqlstate, wait_for_job};
use tokio_postgres::Client;

async fn flush(client: &Client, table: &str) -> String {
    let row = client
        .query_one(&format!("FLUSH TABLE {table}"), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>("status"), "Queued");
    let job_id: String = row.get("job_id");
    assert!(job_id.starts_with("FL-"), "{job_id}");
    let (status, message) = wait_for_job(client, &job_id).await;
    assert_eq!(status, "Completed", "{message}");
    job_id
}

async fn contents(client: &Client, table: &str) -> Vec<(i64, Option<String>, Option<i32>)> {
    client
        .query(&format!("SELECT id, v, n FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Runs each statement (`{t}` standing for the table) on the unflushed twin, then the flushed.
async fn on_twins(client: &Client, statements: &[&str]) {
    for statement in statements {
        for table in ["plain", "flushed"] {
            client
                .batch_execute(&statement.replace("{t}", table))
                .await
                .unwrap();
        }
    }
}

const WORKLOAD: [&str; 6] = [
    "UPDATE {t} SET v = 'changed' WHERE id % 10 = 0",
    "DELETE FROM {t} WHERE id BETWEEN 100 AND 150",
    "INSERT INTO {t} VALUES (5000, 'late', 1), (5001, 'late', 2)",
    "INSERT INTO {t} VALUES (7, 'again', 7) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
    "UPDATE {t} SET id = id + 10000 WHERE id BETWEEN 200 AND 205",
    "DELETE FROM {t} WHERE id = 5000",
];

#[tokio::test]
async fn flushed_tables_answer_exactly_as_unflushed_ones() {
    let server = TestServer::start();
    let client = server.root().await;
    on_twins(
        &client,
        &["CREATE TABLE {t} (id BIGINT PRIMARY KEY, v TEXT, n INT); \
           INSERT INTO {t} SELECT value, 'v' || value, CAST(value % 7 AS INT) FROM generate_series(1, 1000) AS g(value)"],
    )
    .await;
    flush(&client, "flushed").await;
    for (i, statement) in WORKLOAD.iter().enumerate() {
        on_twins(&client, &[statement]).await;
        if i == 2 {
            // Flush again midway: later statements see rows spread over two segments.
            flush(&client, "flushed").await;
        }
    }
    assert_eq!(
        contents(&client, "plain").await,
        contents(&client, "flushed").await
    );
    // Point reads of flushed rows, and a duplicate key that exists only in a segment.
    let row = client
        .query_one("SELECT v FROM flushed WHERE id = 20", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "changed");
    assert!(
        client
            .query("SELECT v FROM flushed WHERE id = 120", &[])
            .await
            .unwrap()
            .is_empty()
    );
    let err = client
        .batch_execute("INSERT INTO flushed VALUES (1, 'dup', 0)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23505");
    let stats = client
        .query_one(
            "SELECT hot_rows, cold_rows, segments FROM system.tables WHERE table_name = 'flushed'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(stats.get::<_, i64>(2), 2);
    let total: i64 = client
        .query_one("SELECT count(*) FROM flushed", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stats.get::<_, i64>(0) + stats.get::<_, i64>(1), total);
}

#[tokio::test]
async fn flushed_rows_survive_restart_and_drop_table_removes_segments() {
    let mut server = TestServer::start();
    {
        let client = server.root().await;
        client
            .batch_execute("CREATE TABLE keep (id BIGINT PRIMARY KEY, v TEXT, n INT); INSERT INTO keep VALUES (1, 'a', 1), (2, 'b', 2)")
            .await
            .unwrap();
        flush(&client, "keep").await;
    }
    server.restart();
    let client = server.root().await;
    assert_eq!(contents(&client, "keep").await.len(), 2);
    let dir = server.data_path().join("storage/public/keep");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    client.batch_execute("DROP TABLE keep").await.unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[tokio::test]
async fn a_crash_between_writing_and_publishing_a_segment_loses_and_duplicates_nothing() {
    let mut server = TestServer::start_with(ServerOptions {
        env: vec![("KALAMDB_FAULT".into(), "flush_before_publish".into())],
        ..Default::default()
    });
    let job_id = {
        let client = server.root().await;
        client
            .batch_execute("CREATE TABLE c (id BIGINT PRIMARY KEY, v TEXT, n INT); INSERT INTO c SELECT value, 'x', 1 FROM generate_series(1, 500) AS g(value)")
            .await
            .unwrap();
        let row = client.query_one("FLUSH TABLE c", &[]).await.unwrap();
        row.get::<_, String>("job_id")
    };
    // The fault aborts the server right after the segment file is written.
    let child = server.child.as_mut().unwrap();
    let status = common::wait_with_timeout(child, Duration::from_secs(60));
    assert!(!status.success());
    server.child = None;
    server.options.env.clear();
    server.write_config();
    std::fs::write(server.log_path(), "").unwrap();
    server.restart_after_crash();
    assert!(
        server.log().contains("removing unreferenced segment file"),
        "{}",
        server.log()
    );
    let client = server.root().await;
    let (count, sum): (i64, i64) = {
        let row = client
            .query_one("SELECT count(*), sum(id)::bigint FROM c", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((count, sum), (500, 500 * 501 / 2));
    let (status, message) = wait_for_job(&client, &job_id).await;
    assert_eq!(status, "Failed");
    assert_eq!(message, "server stopped while the job was running");
    flush(&client, "c").await;
    let row = client
        .query_one("SELECT count(*), sum(id)::bigint FROM c", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (500, 500 * 501 / 2)
    );
}

#[tokio::test]
async fn flush_and_kill_job_need_the_dba_role() {
    let server = TestServer::start();
    let root = server.root().await;
    root.batch_execute(
        "CREATE TABLE f (id INT PRIMARY KEY); CREATE USER app WITH PASSWORD 'app-pw' ROLE service",
    )
    .await
    .unwrap();
    let app = server.connect("app", "app-pw").await.unwrap();
    let err = app.batch_execute("FLUSH TABLE f").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let err = root.batch_execute("KILL JOB 'FL-nope'").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42704");
    let job_id = flush(&root, "f").await;
    let err = root
        .batch_execute(&format!("KILL JOB '{job_id}'"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55000");
}

#[tokio::test]
async fn tables_flush_themselves_after_row_limit_writes() {
    let server = TestServer::start_with(ServerOptions {
        flush_row_limit: 100,
        ..Default::default()
    });
    let client = server.root().await;
    client
        .batch_execute("CREATE TABLE auto (id BIGINT PRIMARY KEY, v TEXT, n INT)")
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO auto SELECT value, 'x', 1 FROM generate_series(1, 150) AS g(value)",
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = client
            .query_one(
                "SELECT hot_rows, cold_rows FROM system.tables WHERE table_name = 'auto'",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(1) == 150 {
            assert_eq!(row.get::<_, i64>(0), 0);
            break;
        }
        assert!(Instant::now() < deadline, "no automatic flush");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let job = client
        .query_one(
            "SELECT created_by, status FROM system.jobs WHERE job_type = 'flush'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(job.get::<_, String>(0), "system");
    assert_eq!(contents(&client, "auto").await.len(), 150);
}

/// Two flushes of one table submitted together run one after the other: the second finds no
/// hot rows, so the rows land in one segment and no copy of them is left dead in another
/// (which every later scan would have to filter out).
#[tokio::test]
async fn flushes_of_one_table_run_one_after_another() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE twice (id BIGINT PRIMARY KEY, v TEXT, n INT);
             INSERT INTO twice SELECT value, 'v' || value, CAST(value AS INT) FROM generate_series(1, 20000) AS g(value);",
        )
        .await
        .unwrap();
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let row = client.query_one("FLUSH TABLE twice", &[]).await.unwrap();
        jobs.push(row.get::<_, String>("job_id"));
    }
    let mut messages = Vec::new();
    for job in &jobs {
        let (status, message) = wait_for_job(&client, job).await;
        assert_eq!(status, "Completed", "{message}");
        messages.push(message);
    }
    let moved = messages
        .iter()
        .filter(|m| m.starts_with("Flushed 20000 rows"))
        .count();
    assert_eq!(moved, 1, "exactly one flush moves the rows: {messages:?}");
    let row = client
        .query_one(
            "SELECT hot_rows, cold_rows, segments FROM system.tables WHERE table_name = 'twice'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (0, 20000, 1)
    );
    let row = client
        .query_one("SELECT count(*), sum(n) FROM twice", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 20000);
    assert_eq!(row.get::<_, i64>(1), 20000 * 20001 / 2);
}

/// Several writers increment existing rows while the table is flushed every 50 ms: every
/// UPDATE finds its row (none answers `UPDATE 0`), and the final values are exactly the
/// acknowledged increments. Half the writers use the extended protocol, half the simple one.
#[tokio::test]
async fn updates_racing_flushes_never_miss_a_row() {
    const ROWS: i64 = 200;
    const WRITERS: i64 = 4;
    let seconds: u64 = std::env::var("KALAMDB_STRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
             INSERT INTO counters SELECT value, 0 FROM generate_series(1, {ROWS}) AS g(value);"
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let client = server.root().await;
        writers.push(tokio::spawn(async move {
            let mut acknowledged = std::collections::HashMap::<i64, i64>::new();
            let mut misses = 0u64;
            let update = client
                .prepare("UPDATE counters SET n = n + 1 WHERE id = $1")
                .await
                .unwrap();
            let mut round = 0i64;
            while Instant::now() < deadline {
                let id = 1 + (writer + WRITERS * round) % ROWS;
                round += 1;
                let changed = if writer % 2 == 0 {
                    client.execute(&update, &[&id]).await.unwrap()
                } else {
                    let sql = format!("UPDATE counters SET n = n + 1 WHERE id = {id}");
                    match client.simple_query(&sql).await.unwrap().last() {
                        Some(tokio_postgres::SimpleQueryMessage::CommandComplete(n)) => *n,
                        other => panic!("no command completion: {other:?}"),
                    }
                };
                match changed {
                    1 => *acknowledged.entry(id).or_default() += 1,
                    0 => misses += 1,
                    n => panic!("UPDATE of one key changed {n} rows"),
                }
            }
            (acknowledged, misses)
        }));
    }
    let mut flushes = 0;
    while Instant::now() < deadline {
        client.query_one("FLUSH TABLE counters", &[]).await.unwrap();
        flushes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut expected = std::collections::HashMap::<i64, i64>::new();
    let mut misses = 0;
    for writer in writers {
        let (acknowledged, missed) = writer.await.unwrap();
        misses += missed;
        for (id, n) in acknowledged {
            *expected.entry(id).or_default() += n;
        }
    }
    assert_eq!(
        misses, 0,
        "UPDATEs of an existing row that answered UPDATE 0"
    );
    assert!(flushes > 20, "only {flushes} flushes were queued");
    let total: i64 = expected.values().sum();
    assert!(total > 1000, "only {total} updates in {seconds} s");
    // Settle the queued flushes, then compare every row with its acknowledged increments.
    let last = flush(&client, "counters").await;
    assert!(last.starts_with("FL-"));
    for row in client
        .query("SELECT id, n FROM counters ORDER BY id", &[])
        .await
        .unwrap()
    {
        let id: i64 = row.get(0);
        let n: i64 = row.get(1);
        assert_eq!(n, expected.get(&id).copied().unwrap_or(0), "row {id}");
    }
}

/// TRUNCATE empties hot rows and flushed segments alike and deletes the segment files; a flush
/// racing it never brings rows back, and leaves no segment behind that holds no live row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_removes_flushed_rows_and_racing_flushes_leave_no_dead_segment() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE churn (id BIGINT PRIMARY KEY, v TEXT, n INT);
             INSERT INTO churn SELECT value, 'cold', 1 FROM generate_series(1, 500) AS g(value);",
        )
        .await
        .unwrap();
    flush(&client, "churn").await;
    client
        .batch_execute(
            "INSERT INTO churn SELECT value, 'hot', 2 FROM generate_series(501, 600) AS g(value)",
        )
        .await
        .unwrap();
    let dir = server.data_path().join("storage/public/churn");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    client.batch_execute("TRUNCATE churn").await.unwrap();
    assert!(contents(&client, "churn").await.is_empty());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    for round in 0..20i64 {
        let base = round * 1000;
        client
            .batch_execute(&format!(
                "INSERT INTO churn SELECT value, 'r', 3 FROM generate_series({}, {}) AS g(value)",
                base + 1,
                base + 300
            ))
            .await
            .unwrap();
        let job: String = client
            .query_one("FLUSH TABLE churn", &[])
            .await
            .unwrap()
            .get("job_id");
        client.batch_execute("TRUNCATE churn").await.unwrap();
        let (status, message) = wait_for_job(&client, &job).await;
        assert!(
            status == "Completed" || status == "Failed",
            "{status}: {message}"
        );
        assert!(
            contents(&client, "churn").await.is_empty(),
            "round {round}: a flush racing TRUNCATE brought rows back"
        );
    }
    // Every segment a flush published after its TRUNCATE would hold only dead rows.
    let segments: i64 = client
        .query_one(
            "SELECT segments FROM system.tables WHERE table_name = 'churn'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(segments, 0);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "segment files left behind"
    );
}

/// Flushed segments written before a rename read the same afterwards (files keep their paths,
/// columns are read by position), also after a restart and a further flush.
#[tokio::test]
async fn renamed_tables_and_columns_read_their_flushed_segments() {
    let mut server = TestServer::start();
    {
        let client = server.root().await;
        client
            .batch_execute(
                "CREATE TABLE before (id BIGINT PRIMARY KEY, v TEXT, n INT);
                 INSERT INTO before VALUES (1, 'a', 1), (2, 'b', 2);",
            )
            .await
            .unwrap();
        flush(&client, "before").await;
        client
            .batch_execute(
                "ALTER TABLE before RENAME TO after_t;
                 ALTER TABLE after_t RENAME COLUMN n TO amount;
                 INSERT INTO after_t VALUES (3, 'c', 3);",
            )
            .await
            .unwrap();
        flush(&client, "after_t").await;
    }
    server.restart();
    let client = server.root().await;
    let rows: Vec<(i64, String, i32)> = client
        .query("SELECT id, v, amount FROM after_t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![(1, "a".into(), 1), (2, "b".into(), 2), (3, "c".into(), 3)]
    );
    let point: i32 = client
        .query_one("SELECT amount FROM after_t WHERE id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(point, 2);
    client.batch_execute("DROP TABLE after_t").await.unwrap();
    for dir in ["before", "after_t"] {
        let path = server.data_path().join("storage/public").join(dir);
        let left = std::fs::read_dir(&path).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "segment files left in {dir}");
    }
}

/// A fully flushed table is not empty: adding a NOT NULL column without a default fails as it
/// does while the rows are hot, and SET NOT NULL finds a NULL in a segment.
#[tokio::test]
async fn not_null_checks_see_flushed_rows() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE cold_only (id BIGINT PRIMARY KEY, v TEXT, n INT);
             INSERT INTO cold_only VALUES (1, NULL, 1);",
        )
        .await
        .unwrap();
    flush(&client, "cold_only").await;
    let err = client
        .batch_execute("ALTER TABLE cold_only ADD COLUMN must INT NOT NULL")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23502", "{err}");
    let err = client
        .batch_execute("ALTER TABLE cold_only ALTER COLUMN v SET NOT NULL")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23502", "{err}");
    client
        .batch_execute("ALTER TABLE cold_only ALTER COLUMN n SET NOT NULL")
        .await
        .unwrap();
}

/// Past 65,536 hot rows a scan no longer lists which hot keys shadow flushed copies while
/// planning; it looks each flushed row up among the hot ones as it reads it. Hot rows are
/// also read a batch at a time, the session's uncommitted rows merged in across batches.
#[tokio::test]
async fn large_hot_sets_over_flushed_rows_read_exactly_as_unflushed_ones() {
    let server = TestServer::start();
    let client = server.root().await;
    on_twins(
        &client,
        &["CREATE TABLE {t} (id BIGINT PRIMARY KEY, v TEXT, n INT); \
           INSERT INTO {t} SELECT value * 2, 'v' || value, CAST(value % 7 AS INT) \
           FROM generate_series(1, 60000) AS g(value)"],
    )
    .await;
    flush(&client, "flushed").await;
    // Updated and deleted flushed rows, and 70,000 new hot rows between the flushed keys.
    on_twins(
        &client,
        &[
            "UPDATE {t} SET v = 'changed' WHERE id % 20 = 0",
            "DELETE FROM {t} WHERE id % 30 = 0",
            "INSERT INTO {t} SELECT value * 2 + 1, 'odd', 1 FROM generate_series(0, 69999) AS g(value)",
        ],
    )
    .await;
    let expected = contents(&client, "plain").await;
    assert_eq!(expected.len(), 60000 - 4000 + 70000);
    assert_same_rows(&contents(&client, "flushed").await, &expected);
    // Inside a block, the block's own changes shadow both hot and flushed rows.
    client.batch_execute("BEGIN").await.unwrap();
    on_twins(
        &client,
        &[
            "DELETE FROM {t} WHERE id % 40 = 2",
            "UPDATE {t} SET n = -1 WHERE id % 50 = 1",
            "INSERT INTO {t} VALUES (1000001, 'new', 0)",
        ],
    )
    .await;
    let in_block = contents(&client, "plain").await;
    assert_same_rows(&contents(&client, "flushed").await, &in_block);
    assert_ne!(in_block, expected);
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_same_rows(&contents(&client, "flushed").await, &expected);
    // A LIMIT past one batch still returns exactly that many rows.
    for table in ["plain", "flushed"] {
        let rows = client
            .query(&format!("SELECT id FROM {table} LIMIT 20000"), &[])
            .await
            .unwrap();
        assert_eq!(rows.len(), 20000, "{table}");
    }
}

/// Compares two large row lists, naming the first difference instead of printing both.
fn assert_same_rows<T: PartialEq + std::fmt::Debug>(got: &[T], expected: &[T]) {
    let first = got.iter().zip(expected).position(|(g, e)| g != e);
    assert!(
        first.is_none() && got.len() == expected.len(),
        "{} rows, expected {}; first difference at {first:?}: {:?} vs {:?}",
        got.len(),
        expected.len(),
        first.map(|i| &got[i]),
        first.map(|i| &expected[i]),
    );
}

/// A backlog larger than `[flush] segment_rows` is flushed as several segments, each scan
/// starting after the last key of the one before; deletion markers count toward a segment.
#[tokio::test]
async fn a_large_backlog_flushes_into_several_segments_without_losing_a_row() {
    let server = TestServer::start_with(ServerOptions {
        flush_segment_rows: 1000,
        ..ServerOptions::default()
    });
    let client = server.root().await;
    on_twins(
        &client,
        &["CREATE TABLE {t} (id BIGINT PRIMARY KEY, v TEXT, n INT); \
           INSERT INTO {t} SELECT value, 'v' || value, CAST(value % 7 AS INT) \
           FROM generate_series(1, 5500) AS g(value)"],
    )
    .await;
    flush(&client, "flushed").await;
    let segments: i64 = client
        .query_one(
            "SELECT segments FROM system.tables WHERE table_name = 'flushed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(segments, 6);
    assert_same_rows(
        &contents(&client, "flushed").await,
        &contents(&client, "plain").await,
    );
    on_twins(
        &client,
        &[
            "DELETE FROM {t} WHERE id BETWEEN 100 AND 2600",
            "UPDATE {t} SET v = 'changed' WHERE id % 9 = 0",
            "INSERT INTO {t} SELECT value, 'late', 0 FROM generate_series(6000, 7499) AS g(value)",
        ],
    )
    .await;
    // 2,501 deletion markers, 334 updated rows and 1,500 new ones, read 1,000 at a time: a
    // segment of deletion markers alone is applied but not published, and the flush goes on.
    let job = flush(&client, "flushed").await;
    let message: String = client
        .query_one("SELECT message FROM system.jobs WHERE job_id = $1", &[&job])
        .await
        .unwrap()
        .get(0);
    assert!(
        message.contains("Flushed 1834 rows and 2501 deletions"),
        "{message}"
    );
    assert_same_rows(
        &contents(&client, "flushed").await,
        &contents(&client, "plain").await,
    );
    let hot: i64 = client
        .query_one(
            "SELECT hot_rows FROM system.tables WHERE table_name = 'flushed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hot, 0);
}
