//! Result column names as PostgreSQL 15 gives them (its FigureColname), checked against a
//! throwaway PostgreSQL for the same statements: a cast of a literal is named by its type
//! (`'1'::int` is `int4`, `date '1999-01-08'` is `date`), a cast of a column by the column,
//! a function call by the function, and a constant by nothing (`?column?`, `true` included).

mod common;
#[path = "common/differential.rs"]
mod differential;

use common::TestServer;
use common::postgres::Postgres;
use differential::{Outcome, Side};

const STATEMENTS: [&str; 12] = [
    "SELECT date '1999-01-08', timestamp '2020-01-01', timestamptz '2020-01-01'",
    "SELECT interval '1 day', interval '1 day'::text",
    "SELECT '1'::int, CAST('1' AS bigint), 1::numeric(5,2), 1.5::float8",
    "SELECT true, false, true::text, NULL",
    "SELECT date '2020-01-01'::text, '{\"a\":1}'::jsonb",
    "SELECT x::text, (x + 1)::text, cast(x AS bigint) FROM (VALUES (1)) v(x)",
    "SELECT now()::date IS NOT NULL, length('abc'), upper('a')",
    "SELECT CASE WHEN true THEN 1 END, ARRAY[1], EXISTS (SELECT 1)",
    "SELECT x FROM (VALUES (date '2020-01-01')) v(x)",
    "SELECT 'a'::varchar(3), 1::real, 'x'::text",
    "SELECT interval '1 day'::text, interval '1 hour'::text, interval '1 year 1 mon 1 day 01:00:00'::text",
    "SELECT (interval '1 day' * 2)::text, interval '-1 day 02:00'::text",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_columns_are_named_and_written_as_postgresql_names_and_writes_them() {
    let postgres = Postgres::start();
    let kalamdb = TestServer::start();
    let mut pg = Side::open(postgres.conn("postgres")).await;
    let mut kalam = Side::open(kalamdb.conn_string("root", &kalamdb.options.root_password)).await;
    let mut differences = Vec::new();
    for text in STATEMENTS {
        let expected = pg.run(text, None).await;
        assert!(
            matches!(expected, Outcome::Rows { .. }),
            "{text} on PostgreSQL: {}",
            expected.summary()
        );
        let actual = kalam.run(text, None).await;
        // `now()` and the like differ in value between the servers; their names do not.
        let same = match (&expected, &actual) {
            (Outcome::Rows { columns, .. }, Outcome::Rows { columns: other, .. })
                if text.contains("now()") =>
            {
                columns == other
            }
            _ => expected.same_as(&actual),
        };
        if !same {
            differences.push(format!(
                "{text}\n  PostgreSQL: {}\n  KalamDB:    {}",
                expected.summary(),
                actual.summary()
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
