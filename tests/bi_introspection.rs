//! The catalog queries that BI and administration tools send when they connect and browse a
//! database (Grafana, Metabase, DBeaver, pgAdmin; `pg-compat/introspection/<tool>.sql`, each
//! query with the public source it was taken from) run on a throwaway PostgreSQL 15 and on
//! KalamDB over the same schema (`setup.sql`), as the same superuser name in a database of the
//! same name. Each must answer as PostgreSQL does: the same columns and rows, ignoring the
//! values of OID-typed columns (object identifiers are each server's own) and of size columns.
//! Queries that still differ are listed with the reason in `known-differences.txt`, a list
//! that may only shrink: a listed query that has come to agree fails the test too.

mod common;
#[path = "common/differential.rs"]
mod differential;
#[path = "common/psql_script.rs"]
mod psql_script;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use common::TestServer;
use common::postgres::Postgres;
use differential::{Outcome, Side};
use psql_script::{Item, split};
use tokio_postgres::types::Type;

const TOOLS: [&str; 4] = ["grafana", "metabase", "dbeaver", "pgadmin"];

/// Column types whose values are object identifiers, different on every server.
const IDENTIFIER_TYPES: [Type; 7] = [
    Type::OID,
    Type::OID_ARRAY,
    Type::OID_VECTOR,
    Type::XID,
    Type::XID8,
    Type::CID,
    Type::TID,
];

fn introspection_dir() -> std::path::PathBuf {
    common::repo_root().join("pg-compat/introspection")
}

fn statements(file: &str) -> Vec<String> {
    let script = std::fs::read_to_string(introspection_dir().join(file)).unwrap();
    split(&script)
        .into_iter()
        .filter_map(|item| match item {
            Item::Sql { text, .. } => Some(text),
            Item::Meta { .. } => None,
        })
        .collect()
}

/// The query ids `known-differences.txt` lists.
fn known_differences() -> BTreeSet<String> {
    std::fs::read_to_string(introspection_dir().join("known-differences.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

/// The positions of the columns PostgreSQL describes with an identifier type, or whose name
/// says they hold a size.
async fn ignored_columns(pg: &Side, text: &str) -> Vec<usize> {
    let Ok(statement) = pg.client.prepare(text).await else {
        return Vec::new();
    };
    statement
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            IDENTIFIER_TYPES.contains(c.type_())
                || c.name().contains("size")
                || matches!(c.name(), "relpages" | "reltuples" | "relallvisible")
        })
        .map(|(i, _)| i)
        .collect()
}

fn without(outcome: Outcome, ignored: &[usize]) -> Outcome {
    match outcome {
        Outcome::Rows { columns, rows } => {
            let rows = rows
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .enumerate()
                        .map(|(i, v)| if ignored.contains(&i) { None } else { v })
                        .collect()
                })
                .collect();
            Outcome::Rows { columns, rows }
        }
        other => other,
    }
}

/// The first cells (in sorted row order) where two row sets of the same columns differ, as
/// `  column: PostgreSQL's value / KalamDB's value` lines.
fn first_difference(expected: &Outcome, actual: &Outcome) -> String {
    let (
        Outcome::Rows { columns, rows },
        Outcome::Rows {
            columns: actual_columns,
            rows: actual_rows,
        },
    ) = (expected, actual)
    else {
        return String::new();
    };
    if columns != actual_columns {
        return String::new();
    }
    let (mut rows, mut actual_rows) = (rows.clone(), actual_rows.clone());
    rows.sort();
    actual_rows.sort();
    let Some((row, actual_row)) = rows.iter().zip(&actual_rows).find(|(a, b)| a != b) else {
        return String::new();
    };
    let mut lines = String::new();
    for ((column, value), actual_value) in columns.iter().zip(row).zip(actual_row) {
        if value != actual_value {
            writeln!(lines, "  {column}: {value:?} / {actual_value:?}").unwrap();
        }
    }
    lines
}

async fn postgres_as_root(postgres: &Postgres) -> String {
    let admin = Side::open(postgres.conn("postgres")).await;
    admin
        .client
        .batch_execute("CREATE ROLE root SUPERUSER LOGIN")
        .await
        .unwrap();
    admin
        .client
        .batch_execute("CREATE DATABASE kalamdb OWNER root")
        .await
        .unwrap();
    postgres
        .conn("kalamdb")
        .replace("user=postgres", "user=root")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_queries_of_bi_tools_answer_as_postgresql_does() {
    let postgres = Postgres::start();
    let kalamdb = TestServer::start();
    let mut pg = Side::open(postgres_as_root(&postgres).await).await;
    let mut kalam = Side::open(kalamdb.conn_string("root", &kalamdb.options.root_password)).await;
    for text in statements("setup.sql") {
        for (side, name) in [(&mut pg, "PostgreSQL"), (&mut kalam, "KalamDB")] {
            let outcome = side.run(&text, None).await;
            assert!(
                matches!(outcome, Outcome::Count(_)),
                "setup on {name}: {text}: {}",
                outcome.summary()
            );
        }
    }
    let known = known_differences();
    let mut report = String::new();
    let mut unexpected = Vec::new();
    let mut now_agreeing = Vec::new();
    let mut total = 0;
    for tool in TOOLS {
        for (n, text) in statements(&format!("{tool}.sql")).into_iter().enumerate() {
            total += 1;
            let id = format!("{tool}#{}", n + 1);
            let expected = pg.run(&text, None).await;
            assert!(
                !matches!(
                    expected,
                    Outcome::Error(_) | Outcome::TimedOut | Outcome::Lost(_)
                ),
                "{id} fails on PostgreSQL itself: {}\n{text}",
                expected.summary()
            );
            let actual = kalam.run(&text, None).await;
            assert!(
                !kalamdb.has_exited(),
                "{id} ended the KalamDB process:\n{}",
                kalamdb.log()
            );
            let ignored = ignored_columns(&pg, &text).await;
            let expected = without(expected, &ignored);
            let actual = without(actual, &ignored);
            let same = expected.same_as(&actual);
            if !same {
                writeln!(
                    report,
                    "{id}\n{text}\n  PostgreSQL: {}\n  KalamDB:    {}\n{}",
                    expected.summary(),
                    actual.summary(),
                    first_difference(&expected, &actual)
                )
                .unwrap();
            }
            match (same, known.contains(&id)) {
                (false, false) => unexpected.push(id),
                (true, true) => now_agreeing.push(id),
                _ => {}
            }
        }
    }
    let report_path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("bi-introspection-differences.txt");
    std::fs::write(&report_path, &report).unwrap();
    eprintln!(
        "introspection queries: {total}, differing {} (known {}); details in {}",
        report.matches("\n  PostgreSQL: ").count(),
        known.len(),
        report_path.display()
    );
    assert!(
        unexpected.is_empty(),
        "answers that differ from PostgreSQL's: {unexpected:?}\n{report}"
    );
    assert!(
        now_agreeing.is_empty(),
        "these now answer as PostgreSQL does; remove them from known-differences.txt: {now_agreeing:?}"
    );
}
