//! Runs every `tests/slt/*.slt` file against the real server, once over the simple query
//! protocol (text results) and once over the extended protocol (binary results), each on a
//! fresh server. Errors are reported as `[SQLSTATE] message`, so a file can pin the code.

mod common;

use std::path::PathBuf;

use async_trait::async_trait;
use common::TestServer;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tokio_postgres::types::Type;
use tokio_postgres::{Row, SimpleQueryMessage};

#[derive(Debug)]
struct SqlStateError(tokio_postgres::Error);

impl std::fmt::Display for SqlStateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => write!(f, "[{}] {}", db.code().code(), db.message()),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for SqlStateError {}

#[derive(Clone, Copy, Debug)]
enum Protocol {
    Simple,
    Extended,
}

struct Kalam {
    client: tokio_postgres::Client,
    protocol: Protocol,
}

fn text(value: Option<&str>) -> String {
    match value {
        None => "NULL".into(),
        Some("") => "(empty)".into(),
        Some(v) => v.into(),
    }
}

/// Formats a binary-decoded value as PostgreSQL's text output would read.
fn cell(row: &Row, i: usize) -> String {
    macro_rules! get {
        ($t:ty, $f:expr) => {
            row.get::<_, Option<$t>>(i).map($f)
        };
    }
    let value: Option<String> = match *row.columns()[i].type_() {
        Type::BOOL => get!(bool, |b| if b { "t" } else { "f" }.to_owned()),
        Type::INT2 => get!(i16, |v| v.to_string()),
        Type::INT4 => get!(i32, |v| v.to_string()),
        Type::INT8 => get!(i64, |v| v.to_string()),
        Type::FLOAT4 => get!(f32, |v| v.to_string()),
        Type::FLOAT8 => get!(f64, |v| v.to_string()),
        Type::NUMERIC => get!(rust_decimal::Decimal, |v| v.to_string()),
        Type::DATE => get!(chrono::NaiveDate, |v| v.to_string()),
        Type::TIMESTAMP => get!(chrono::NaiveDateTime, |v| postgres_timestamp(&v)),
        Type::TIMESTAMPTZ => get!(chrono::DateTime<chrono::Utc>, |v| format!(
            "{}+00",
            postgres_timestamp(&v.naive_utc())
        )),
        Type::JSON | Type::JSONB => get!(serde_json::Value, |v| v.to_string()),
        Type::UUID => get!(uuid::Uuid, |v| v.to_string()),
        Type::BYTEA => get!(Vec<u8>, |v| format!("\\x{}", hex::encode(v))),
        _ => get!(String, |v| v),
    };
    text(value.as_deref())
}

/// PostgreSQL prints fractional seconds without trailing zeros, and none when they are zero.
fn postgres_timestamp(t: &chrono::NaiveDateTime) -> String {
    let micros = t.and_utc().timestamp_subsec_micros();
    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
    if micros == 0 {
        base
    } else {
        format!("{base}.{}", format!("{micros:06}").trim_end_matches('0'))
    }
}

#[async_trait]
impl AsyncDB for Kalam {
    type Error = SqlStateError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlStateError> {
        match self.protocol {
            Protocol::Simple => {
                let messages = self.client.simple_query(sql).await.map_err(SqlStateError)?;
                let mut rows = Vec::new();
                let mut columns = None;
                let mut affected = 0;
                for message in messages {
                    match message {
                        SimpleQueryMessage::RowDescription(desc) => columns = Some(desc.len()),
                        SimpleQueryMessage::Row(row) => {
                            rows.push((0..row.len()).map(|i| text(row.get(i))).collect())
                        }
                        SimpleQueryMessage::CommandComplete(n) => affected = n,
                        _ => {}
                    }
                }
                Ok(match columns {
                    Some(width) => DBOutput::Rows {
                        types: vec![DefaultColumnType::Any; width],
                        rows,
                    },
                    None => DBOutput::StatementComplete(affected),
                })
            }
            Protocol::Extended => {
                let statement = self.client.prepare(sql).await.map_err(SqlStateError)?;
                if statement.columns().is_empty() {
                    let n = self
                        .client
                        .execute(&statement, &[])
                        .await
                        .map_err(SqlStateError)?;
                    return Ok(DBOutput::StatementComplete(n));
                }
                let rows = self
                    .client
                    .query(&statement, &[])
                    .await
                    .map_err(SqlStateError)?;
                Ok(DBOutput::Rows {
                    types: vec![DefaultColumnType::Any; statement.columns().len()],
                    rows: rows
                        .iter()
                        .map(|row| (0..row.len()).map(|i| cell(row, i)).collect())
                        .collect(),
                })
            }
        }
    }

    async fn shutdown(&mut self) {}

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

fn slt_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(common::repo_root().join("tests/slt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files found");
    files
}

async fn run_all(protocol: Protocol) {
    let mut failures = Vec::new();
    for file in slt_files() {
        let server = TestServer::start();
        let conn = server.conn_string("root", &server.options.root_password);
        let mut runner = sqllogictest::Runner::new(|| {
            let conn = conn.clone();
            async move {
                let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                    .await
                    .map_err(SqlStateError)?;
                tokio::spawn(connection);
                Ok(Kalam { client, protocol })
            }
        });
        runner.with_column_validator(|_, _| true);
        let outcome = tokio::time::timeout(
            std::time::Duration::from_secs(300),
            runner.run_file_async(&file),
        )
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!(
                "{} ({protocol:?}):\n{}",
                file.display(),
                e.display(false)
            )),
            Err(_) => failures.push(format!("{} ({protocol:?}): timed out", file.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn slt_files_pass_over_the_simple_protocol() {
    run_all(Protocol::Simple).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slt_files_pass_over_the_extended_protocol() {
    run_all(Protocol::Extended).await;
}
