//! Running a statement that takes a fast path and its planned twin side by side: the two
//! tables they write (`fast` and `slow`, created alike) and the outcome of each execution
//! must stay the same.

use super::sqlstate;

/// Statement parameters as tokio-postgres takes them.
pub type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

/// The rows of a side-by-side table: id, v, n, code, small.
pub type Contents = Vec<(i64, Option<String>, i32, Option<String>, Option<i16>)>;

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
