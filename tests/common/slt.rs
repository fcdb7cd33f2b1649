//! A sqllogictest adapter over tokio-postgres, for KalamDB and for a reference PostgreSQL.
//! Errors read `[SQLSTATE] message`, so an .slt file can pin the code.
#![allow(dead_code)]

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tokio_postgres::types::Type;
use tokio_postgres::{Row, SimpleQueryMessage};

#[derive(Debug)]
pub struct SqlStateError(pub tokio_postgres::Error);

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
pub enum Protocol {
    Simple,
    Extended,
}

/// A connection the sqllogictest runner drives, in one of the two protocols.
pub struct PgConnection {
    pub client: tokio_postgres::Client,
    pub protocol: Protocol,
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
        Type::JSON | Type::JSONB => get!(JsonText, |v| v.0),
        Type::VOID => get!(Void, |_| String::new()),
        Type::UUID => get!(uuid::Uuid, |v| v.to_string()),
        Type::OID => get!(u32, |v| v.to_string()),
        Type::INTERVAL => get!(Interval, |v| v.0),
        Type::BYTEA => get!(Vec<u8>, |v| format!("\\x{}", hex::encode(v))),
        Type::INT2_ARRAY
        | Type::INT4_ARRAY
        | Type::INT8_ARRAY
        | Type::TEXT_ARRAY
        | Type::VARCHAR_ARRAY => get!(ArrayText, |v| v.0),
        _ => get!(String, |v| v),
    };
    text(value.as_deref())
}

/// A `json` or `jsonb` value's text as the server sent it, so that its layout is compared
/// (binary `jsonb` is a version byte and the text).
struct JsonText(String);

impl<'a> tokio_postgres::types::FromSql<'a> for JsonText {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = if *ty == Type::JSONB {
            raw.strip_prefix(&[1]).ok_or("unknown jsonb version")?
        } else {
            raw
        };
        Ok(JsonText(std::str::from_utf8(text)?.to_owned()))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }
}

/// An interval read from PostgreSQL's binary form (microseconds, days, months), printed as
/// its text output would read (KalamDB's printer; the simple protocol compares the servers'
/// own text).
struct Interval(String);

impl<'a> tokio_postgres::types::FromSql<'a> for Interval {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let raw: [u8; 16] = raw.try_into()?;
        let micros = i64::from_be_bytes(raw[..8].try_into()?);
        let days = i32::from_be_bytes(raw[8..12].try_into()?);
        let months = i32::from_be_bytes(raw[12..].try_into()?);
        Ok(Interval(kalamdb::model::interval_text::interval_text(
            months, days, micros,
        )))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INTERVAL)
    }
}

/// A `void` value (what `pg_sleep` returns): no bytes, printed empty.
struct Void;

impl<'a> tokio_postgres::types::FromSql<'a> for Void {
    fn from_sql(
        _ty: &Type,
        _raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Void)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::VOID
    }
}

/// An array as PostgreSQL's text output writes it: `{a,"b c",NULL}`.
/// An array of integers or text, of any number of dimensions, as PostgreSQL's text output
/// reads (`{{1,2},{3,NULL}}`), decoded from its binary form.
struct ArrayText(String);

impl<'a> tokio_postgres::types::FromSql<'a> for ArrayText {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |at: usize| -> Result<i32, Box<dyn std::error::Error + Sync + Send>> {
            let bytes = raw.get(at..at + 4).ok_or("array value cut short")?;
            Ok(i32::from_be_bytes(bytes.try_into()?))
        };
        let dimensions = usize::try_from(word(0)?)?;
        if dimensions == 0 {
            return Ok(ArrayText("{}".to_owned()));
        }
        let mut lengths = Vec::with_capacity(dimensions);
        for d in 0..dimensions {
            lengths.push(usize::try_from(word(12 + 8 * d)?)?);
        }
        let mut at = 12 + 8 * dimensions;
        let mut elements = Vec::new();
        for _ in 0..lengths.iter().product::<usize>() {
            let size = word(at)?;
            at += 4;
            if size < 0 {
                elements.push("NULL".to_owned());
                continue;
            }
            let bytes = raw
                .get(at..at + size as usize)
                .ok_or("array element cut short")?;
            at += size as usize;
            elements.push(match *ty {
                Type::INT2_ARRAY => i16::from_be_bytes(bytes.try_into()?).to_string(),
                Type::INT4_ARRAY => i32::from_be_bytes(bytes.try_into()?).to_string(),
                Type::INT8_ARRAY => i64::from_be_bytes(bytes.try_into()?).to_string(),
                _ => quoted_element(std::str::from_utf8(bytes)?),
            });
        }
        Ok(ArrayText(nested(&lengths, &elements)))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2_ARRAY
                | Type::INT4_ARRAY
                | Type::INT8_ARRAY
                | Type::TEXT_ARRAY
                | Type::VARCHAR_ARRAY
        )
    }
}

/// `elements` in braces, one level per dimension.
fn nested(lengths: &[usize], elements: &[String]) -> String {
    let inner = match lengths {
        [_] | [] => elements.to_vec(),
        [_, rest @ ..] => {
            let step = rest.iter().product::<usize>().max(1);
            elements
                .chunks(step)
                .map(|chunk| nested(rest, chunk))
                .collect()
        }
    };
    format!("{{{}}}", inner.join(","))
}

/// An array element as PostgreSQL's array output writes it: quoted when it is empty, spells
/// NULL, or holds a space, brace, comma, quote or backslash.
fn quoted_element(v: &str) -> String {
    let plain = !v.is_empty()
        && !v.eq_ignore_ascii_case("null")
        && !v.contains(|c: char| c.is_whitespace() || "{},\"\\".contains(c));
    if plain {
        v.to_owned()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
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
impl AsyncDB for PgConnection {
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

/// Connects and returns a runner-ready connection.
pub async fn connect(conn: &str, protocol: Protocol) -> Result<PgConnection, SqlStateError> {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls)
        .await
        .map_err(SqlStateError)?;
    tokio::spawn(connection);
    Ok(PgConnection { client, protocol })
}

/// Runs one .slt file with fresh connections from `conn`; returns the failure, if any.
pub async fn run_file(
    path: &std::path::Path,
    conn: &str,
    protocol: Protocol,
) -> Result<(), String> {
    let conn = conn.to_owned();
    let mut runner = sqllogictest::Runner::new(move || {
        let conn = conn.clone();
        async move { connect(&conn, protocol).await }
    });
    runner.with_column_validator(|_, _| true);
    match tokio::time::timeout(
        std::time::Duration::from_secs(300),
        runner.run_file_async(path),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "{} ({protocol:?}):\n{}",
            path.display(),
            e.display(false)
        )),
        Err(_) => Err(format!("{} ({protocol:?}): timed out", path.display())),
    }
}

/// The .slt files in `dir`, sorted.
pub fn slt_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}
