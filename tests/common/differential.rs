//! Running one statement on PostgreSQL and on KalamDB and comparing what came back: the
//! shared core of the differential suites (`pg_regress`, `bi_introspection`).

use std::fmt::Write as _;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Longest a statement may run on either server before it counts as different. pgAdmin's
/// column query (a CTE over five catalog joins) takes a few seconds in a debug build, and
/// passed 10 s twice while the whole suite ran on two cores; 30 s still ends a hang.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What one statement returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Rows {
        columns: Vec<String>,
        rows: Vec<Vec<Option<String>>>,
    },
    Count(u64),
    Copied(Vec<u8>),
    Error(String),
    TimedOut,
    /// The connection broke (the server may have gone).
    Lost(String),
}

impl Outcome {
    pub fn same_as(&self, other: &Outcome) -> bool {
        match (self, other) {
            (
                Outcome::Rows { columns, rows },
                Outcome::Rows {
                    columns: other_columns,
                    rows: other_rows,
                },
            ) => {
                let sorted = |rows: &[Vec<Option<String>>]| {
                    let mut rows = rows.to_vec();
                    rows.sort();
                    rows
                };
                columns == other_columns && sorted(rows) == sorted(other_rows)
            }
            (Outcome::Copied(a), Outcome::Copied(b)) => {
                let lines = |bytes: &[u8]| {
                    let mut lines: Vec<Vec<u8>> =
                        bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                    lines.sort();
                    lines
                };
                lines(a) == lines(b)
            }
            (Outcome::TimedOut, _) | (Outcome::Lost(_), _) => false,
            (a, b) => a == b,
        }
    }

    pub fn summary(&self) -> String {
        let text = match self {
            Outcome::Rows { columns, rows } => {
                let mut text = format!("{} row(s) [{}]", rows.len(), columns.join(", "));
                for row in rows.iter().take(3) {
                    let cells: Vec<&str> =
                        row.iter().map(|c| c.as_deref().unwrap_or("NULL")).collect();
                    write!(text, " ({})", cells.join(", ")).unwrap();
                }
                text
            }
            Outcome::Count(n) => format!("ok, {n} row(s)"),
            Outcome::Copied(bytes) => format!("COPY out, {} byte(s)", bytes.len()),
            Outcome::Error(e) => format!("ERROR {e}"),
            Outcome::TimedOut => "timed out".into(),
            Outcome::Lost(e) => format!("connection lost: {e}"),
        };
        text.chars().take(300).collect()
    }
}

pub async fn connect(conn: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {conn}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

pub fn error_outcome(e: tokio_postgres::Error) -> Outcome {
    match e.as_db_error() {
        Some(db) => Outcome::Error(format!("{}: {}", db.code().code(), db.message())),
        None if e.is_closed() => Outcome::Lost(e.to_string()),
        None => Outcome::Error(e.to_string()),
    }
}

pub async fn execute(client: &Client, text: &str, copy_in: Option<&[u8]>) -> Outcome {
    if let Some(data) = copy_in {
        let sink = match client.copy_in::<_, bytes::Bytes>(text).await {
            Ok(sink) => sink,
            Err(e) => return error_outcome(e),
        };
        futures::pin_mut!(sink);
        if let Err(e) = sink.send(bytes::Bytes::copy_from_slice(data)).await {
            return error_outcome(e);
        }
        return match sink.finish().await {
            Ok(n) => Outcome::Count(n),
            Err(e) => error_outcome(e),
        };
    }
    if is_copy_to_stdout(text) {
        let stream = match client.copy_out(text).await {
            Ok(stream) => stream,
            Err(e) => return error_outcome(e),
        };
        futures::pin_mut!(stream);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(e) => return error_outcome(e),
            }
        }
        return Outcome::Copied(out);
    }
    match client.simple_query(text).await {
        Ok(messages) => {
            let mut columns = None;
            let mut rows = Vec::new();
            let mut count = 0;
            for message in messages {
                match message {
                    SimpleQueryMessage::RowDescription(description) => {
                        columns = Some(description.iter().map(|c| c.name().to_owned()).collect())
                    }
                    SimpleQueryMessage::Row(row) => rows.push(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_owned))
                            .collect(),
                    ),
                    SimpleQueryMessage::CommandComplete(n) => count = n,
                    _ => {}
                }
            }
            match columns {
                Some(columns) => Outcome::Rows { columns, rows },
                None => Outcome::Count(count),
            }
        }
        Err(e) => error_outcome(e),
    }
}

pub fn is_copy_to_stdout(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.starts_with("copy") && lower.split_whitespace().any(|w| w == "stdout")
}

/// Runs `text` with a deadline; past it the query is cancelled and counts as timed out.
pub async fn execute_bounded(client: &Client, text: &str, copy_in: Option<&[u8]>) -> Outcome {
    match tokio::time::timeout(STATEMENT_TIMEOUT, execute(client, text, copy_in)).await {
        Ok(outcome) => outcome,
        Err(_) => {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                client.cancel_token().cancel_query(NoTls),
            )
            .await;
            Outcome::TimedOut
        }
    }
}

/// One side of the comparison: a connection string and the session on it.
pub struct Side {
    pub conn: String,
    pub client: Client,
}

impl Side {
    pub async fn open(conn: String) -> Side {
        let client = connect(&conn).await;
        Side { conn, client }
    }

    pub async fn run(&mut self, text: &str, copy_in: Option<&[u8]>) -> Outcome {
        let outcome = execute_bounded(&self.client, text, copy_in).await;
        // tokio-postgres closes the connection after a COPY FROM that fails, on either
        // server; a timed-out statement leaves the session in doubt. What follows gets a
        // fresh session.
        let failed_copy = copy_in.is_some() && matches!(outcome, Outcome::Error(_));
        if failed_copy || matches!(outcome, Outcome::TimedOut) {
            self.reconnect().await;
        }
        outcome
    }

    pub async fn reconnect(&mut self) {
        match tokio::time::timeout(
            Duration::from_secs(15),
            tokio_postgres::connect(&self.conn, NoTls),
        )
        .await
        {
            Ok(Ok((client, connection))) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                self.client = client;
            }
            Ok(Err(e)) => panic!("the server no longer accepts connections: {e}"),
            Err(_) => panic!("the server no longer answers a connection within 15 s"),
        }
    }
}
