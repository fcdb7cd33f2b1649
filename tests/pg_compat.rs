//! The same SQL against KalamDB and a throwaway real PostgreSQL 15: every `pg-compat/slt/*.slt`
//! file must pass on both, over both protocols. PostgreSQL runs from the machine's binaries
//! (`pg_config --bindir`), initialised in a temporary directory on its own port.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use common::postgres::Postgres;
use common::slt::{Protocol, run_file, slt_files};

#[tokio::test(flavor = "multi_thread")]
async fn the_same_sql_gives_the_same_answers_on_kalamdb_and_postgresql() {
    let started = Instant::now();
    let postgres = Postgres::start();
    let mut failures = Vec::new();
    // `PG_COMPAT_ONLY=json` runs only the files whose names contain `json` (while working on one).
    let only = std::env::var("PG_COMPAT_ONLY").unwrap_or_default();
    for (i, file) in slt_files(&common::repo_root().join("pg-compat/slt"))
        .iter()
        .filter(|f| f.to_string_lossy().contains(only.as_str()))
        .enumerate()
    {
        for protocol in [Protocol::Simple, Protocol::Extended] {
            let reference = postgres
                .fresh_database(&format!("compat_{i}_{protocol:?}").to_lowercase())
                .await;
            if let Err(e) = run_file(file, &reference, protocol).await {
                failures.push(format!("PostgreSQL disagrees with the expected file: {e}"));
            }
            let server = TestServer::start();
            let kalamdb = server.conn_string("root", &server.options.root_password);
            if let Err(e) = run_file(file, &kalamdb, protocol).await {
                failures.push(format!("KalamDB differs from PostgreSQL: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(started.elapsed() < Duration::from_secs(600));
}
