//! Running a statement that takes a fast path and its planned twin side by side: the two
//! tables they write (`fast` and `slow`, created alike) and the outcome of each execution
//! must stay the same.

use super::sqlstate;

/// Statement parameters as tokio-postgres takes them.
pub type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

/// The rows of a side-by-side table: id, v, n, code, small.
pub type Contents = Vec<(i64, Option<String>, i32, Option<String>, Option<i16>)>;

/// Creates `fast` and `slow` alike (a key, a CHECK, NOT NULL, a unique VARCHAR(4), a
/// SMALLINT) with rows 1-20 flushed to a segment.
pub async fn create_flushed_pair(client: &tokio_postgres::Client) {
    for t in ["fast", "slow"] {
        client
            .batch_execute(&format!(
                "CREATE TABLE {t} (id BIGINT PRIMARY KEY, v TEXT, n INT NOT NULL CHECK (n >= 0),
                                   code VARCHAR(4) UNIQUE, small SMALLINT);
                 INSERT INTO {t} (id, v, n) SELECT value, 'v' || value, CAST(value AS INT)
                   FROM generate_series(1, 20) AS g(value);"
            ))
            .await
            .unwrap();
        let (_, status, message) = super::run_job(client, &format!("FLUSH TABLE {t}")).await;
        assert_eq!(status, "Completed", "{message}");
    }
}

/// Runs `sql`, statements that name their table `{t}`, on `fast` and then on `slow`.
pub async fn on_both(client: &tokio_postgres::Client, sql: &str) {
    for t in ["fast", "slow"] {
        client.batch_execute(&sql.replace("{t}", t)).await.unwrap();
    }
}

pub async fn contents(client: &tokio_postgres::Client, table: &str) -> Contents {
    let sql = format!("SELECT id, v, n, code, small FROM {table} ORDER BY id");
    let rows = client.query(&sql, &[]).await.unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

/// Runs `fast` (a statement a fast path takes) and `slow` (the same change written so that it
/// is planned) and requires the same outcome: rows affected or SQLSTATE.
pub async fn same_outcome(
    client: &tokio_postgres::Client,
    (fast, slow): (&tokio_postgres::Statement, &tokio_postgres::Statement),
    params: Params<'_>,
) -> Result<u64, String> {
    let outcome = |r: Result<u64, tokio_postgres::Error>| r.map_err(|e| sqlstate(&e));
    let fast = outcome(client.execute(fast, params).await);
    let slow = outcome(client.execute(slow, params).await);
    assert_eq!(fast, slow, "params {params:?}");
    fast
}
