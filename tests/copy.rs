//! COPY against KalamDB and a throwaway PostgreSQL 15, the same data sent to both: text, CSV
//! and binary data loads the same rows or fails with the same SQLSTATE, message and CONTEXT
//! line (loading nothing), and COPY TO writes the same bytes. Through tokio-postgres (extended
//! protocol) and psql's `\copy` (simple protocol).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio_postgres::{Client, NoTls};

use common::TestServer;
use common::postgres::Postgres;

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, name TEXT NOT NULL, score BIGINT, \
     ok BOOLEAN, amount NUMERIC(10,2), day DATE, at TIMESTAMP, ratio DOUBLE PRECISION, \
     note VARCHAR(8) DEFAULT 'none', CHECK (score IS NULL OR score >= 0))";

/// A COPY FROM and its data.
struct Load {
    name: &'static str,
    copy: &'static str,
    data: &'static [u8],
}

const LOADS: &[Load] = &[
    Load {
        name: "text with escapes, NULLs and every column type",
        copy: "COPY t FROM STDIN",
        data: b"1\tann\t10\tt\t12.50\t2026-01-02\t2026-11-26 12:30:15.25\t1.5\tx\\ty\n\
                2\tb\\\\o\\nb\t\\N\tfalse\t-0.5\t1999-12-31\t\\N\t-2e-3\t\\N\n\
                3\t\\x41\\102C\t7\t\\N\t0\t2000-02-29\t2000-02-29 00:00:00\tInfinity\t\n",
    },
    Load {
        name: "a column list, the rest from defaults",
        copy: "COPY t (id, name) FROM STDIN",
        data: b"5\tdefaulted\n6\talso\n",
    },
    Load {
        name: "CSV with a header, quotes, embedded newlines and delimiters",
        copy: "COPY t (id, name, note) FROM STDIN WITH (FORMAT csv, HEADER true)",
        data: b"id,name,note\n7,\"a,b\",\"q\"\"d\"\n8,\"two\nlines\",\n9,plain,\"\"\n",
    },
    Load {
        name: "CSV with its own delimiter, NULL text, quote and escape",
        copy: "COPY t (id, name, note) FROM STDIN WITH (FORMAT csv, DELIMITER '|', NULL 'nil', QUOTE '''', ESCAPE '\\')",
        data: b"10|'it\\'s'|nil\n11|'nil'|x\n",
    },
    Load {
        name: "CSV FORCE_NOT_NULL and FORCE_NULL",
        copy: "COPY t (id, name, note) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (note), FORCE_NULL (name))",
        data: b"12,n,\n",
    },
    Load {
        name: "the old syntax, and the end-of-data marker",
        copy: "COPY t (id, name) FROM STDIN WITH CSV DELIMITER ';'",
        data: b"13;old\n\\.\n14;after the end\n",
    },
    Load {
        name: "a value its type refuses",
        copy: "COPY t (id, name, score) FROM STDIN",
        data: b"20\tok\t1\n21\tbad\tabc\n",
    },
    Load {
        name: "an integer out of range",
        copy: "COPY t (id, name) FROM STDIN",
        data: b"99999999999\tbig\n",
    },
    Load {
        name: "a bad boolean in CSV",
        copy: "COPY t (id, name, ok) FROM STDIN (FORMAT csv)",
        data: b"22,x,maybe\n",
    },
    Load {
        name: "a missing column",
        copy: "COPY t (id, name, score) FROM STDIN",
        data: b"23\tx\t1\n24\ty\n",
    },
    Load {
        name: "an extra column",
        copy: "COPY t (id, name) FROM STDIN (FORMAT csv)",
        data: b"25,x,extra\n",
    },
    Load {
        name: "an unterminated quote",
        copy: "COPY t (id, name) FROM STDIN (FORMAT csv)",
        data: b"26,\"open\n",
    },
    Load {
        name: "a NULL for a NOT NULL column",
        copy: "COPY t (id, name) FROM STDIN",
        data: b"27\t\\N\n",
    },
    Load {
        name: "a value too long for its VARCHAR",
        copy: "COPY t (id, name, note) FROM STDIN",
        data: b"28\tx\tmuch too long\n",
    },
    Load {
        name: "a CHECK violation",
        copy: "COPY t (id, name, score) FROM STDIN",
        data: b"29\tx\t-1\n",
    },
    Load {
        name: "a duplicate key, against a loaded row",
        copy: "COPY t (id, name) FROM STDIN",
        data: b"30\tfirst\n1\tclash\n",
    },
    Load {
        name: "a duplicate key inside the data",
        copy: "COPY t (id, name) FROM STDIN",
        data: b"31\tfirst\n31\tagain\n",
    },
    Load {
        name: "an unknown column",
        copy: "COPY t (id, nope) FROM STDIN",
        data: b"",
    },
];

/// COPY TO statements whose output must match byte for byte.
const UNLOADS: &[&str] = &[
    "COPY t TO STDOUT",
    "COPY t TO STDOUT WITH (FORMAT csv, HEADER)",
    "COPY t (id, note, name) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE (name), NULL 'N/A', DELIMITER ';')",
    "COPY (SELECT id, name || '!' AS shout FROM t WHERE id > 5 ORDER BY id DESC) TO STDOUT",
    "COPY t TO STDOUT WITH DELIMITER '|' NULL AS '-'",
    "COPY (SELECT id FROM t WHERE id < 0) TO STDOUT (FORMAT csv, HEADER)",
];

async fn connect(conn: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conn, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// How a load ended: the row count, or the error's SQLSTATE, message and CONTEXT up to the
/// line (PostgreSQL also quotes the line's text there).
async fn load(client: &Client, load: &Load) -> String {
    describe(copy_in(client, load.copy, load.data.to_vec()).await)
}

fn describe(loaded: Result<u64, tokio_postgres::Error>) -> String {
    match loaded {
        Ok(rows) => format!("COPY {rows}"),
        Err(e) => match e.as_db_error() {
            Some(db) => {
                let context = db
                    .where_()
                    .map(|w| w.split(": \"").next().unwrap_or(w).to_owned());
                format!(
                    "{} {} [{}]",
                    db.code().code(),
                    db.message(),
                    context.unwrap_or_default()
                )
            }
            None => format!("client error: {e}"),
        },
    }
}

/// Sends `data` as a COPY FROM STDIN's data; the number of rows loaded.
async fn copy_in(client: &Client, copy: &str, data: Vec<u8>) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in::<_, Bytes>(copy).await?;
    futures::pin_mut!(sink);
    sink.send(Bytes::from(data)).await?;
    sink.finish().await
}

async fn rows(client: &Client) -> Vec<String> {
    client
        .simple_query("SELECT * FROM t ORDER BY id")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_owned())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

async fn unload(client: &Client, copy: &str) -> Result<Vec<u8>, String> {
    let stream = client.copy_out(copy).await.map_err(|e| e.to_string())?;
    futures::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Every load in turn on one server: how each ended and the table after it.
async fn run_loads(conn: &str) -> Vec<(String, Vec<String>)> {
    connect(conn).await.batch_execute(TABLE).await.unwrap();
    let mut seen = Vec::new();
    for case in LOADS {
        // A connection per load: after a COPY refused before its data, tokio-postgres's
        // CopyFail and Sync leave a ReadyForQuery behind that confuses the next query.
        let client = connect(conn).await;
        let outcome = load(&client, case).await;
        seen.push((
            format!("{}: {outcome}", case.name),
            rows(&connect(conn).await).await,
        ));
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_loads_and_unloads_as_postgresql_does() {
    let postgres = Postgres::start();
    let reference = postgres.fresh_database("copy_reference").await;
    let server = TestServer::start();
    let kalamdb = server.conn_string("root", &server.options.root_password);

    let expected = run_loads(&reference).await;
    let actual = run_loads(&kalamdb).await;
    for ((want, want_rows), (got, got_rows)) in expected.iter().zip(&actual) {
        assert_eq!(got, want);
        assert_eq!(got_rows, want_rows, "rows after {want}");
    }
    // Every successful load added rows and every failed one added none.
    assert!(expected.iter().any(|(o, _)| o.contains("COPY 3")));

    let (pg, kdb) = (connect(&reference).await, connect(&kalamdb).await);
    for copy in UNLOADS {
        let want = unload(&pg, copy).await;
        assert!(want.is_ok(), "{copy} on PostgreSQL: {want:?}");
        assert_eq!(
            unload(&kdb, copy)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            want.map(|b| String::from_utf8_lossy(&b).into_owned()),
            "{copy}"
        );
    }

    // Binary: PostgreSQL's binary COPY TO loads into KalamDB, and KalamDB's back into
    // PostgreSQL, each giving the same rows.
    for (from, to) in [(&pg, &kdb), (&kdb, &pg)] {
        let data = unload(from, "COPY t TO STDOUT (FORMAT binary)")
            .await
            .unwrap();
        to.batch_execute("CREATE TABLE copied (LIKE t)")
            .await
            .unwrap();
        let loaded = copy_in(to, "COPY copied FROM STDIN (FORMAT binary)", data)
            .await
            .unwrap();
        assert!(loaded > 5);
        let copied = to
            .simple_query("SELECT count(*) FROM (SELECT * FROM copied EXCEPT SELECT * FROM t) AS d")
            .await
            .unwrap();
        let differing = copied.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        });
        assert_eq!(differing.as_deref(), Some("0"));
        to.batch_execute("DROP TABLE copied").await.unwrap();
    }
    // UUID and JSONB in binary: PostgreSQL's send forms load as the same values.
    for client in [&pg, &kdb] {
        client
            .batch_execute("CREATE TABLE u (id UUID PRIMARY KEY, doc JSONB)")
            .await
            .unwrap();
    }
    pg.batch_execute(
        "INSERT INTO u VALUES ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"a\": [1, 2]}'), \
         ('00000000-0000-0000-0000-000000000001', NULL)",
    )
    .await
    .unwrap();
    let data = unload(&pg, "COPY u TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let loaded = copy_in(&kdb, "COPY u FROM STDIN (FORMAT binary)", data).await;
    assert_eq!(loaded.unwrap(), 2);
    let text = "COPY (SELECT * FROM u ORDER BY id) TO STDOUT";
    assert_eq!(unload(&kdb, text).await, unload(&pg, text).await);
    assert_eq!(
        unload(
            &kdb,
            "COPY (SELECT id FROM t ORDER BY id) TO STDOUT (FORMAT binary)"
        )
        .await,
        unload(
            &pg,
            "COPY (SELECT id FROM t ORDER BY id) TO STDOUT (FORMAT binary)"
        )
        .await
    );
}

/// psql's `\copy` on one server: its exit status and what it printed.
fn psql_copy(conn: &str, command: &str, input: &[u8]) -> (bool, String) {
    let mut psql = Command::new("psql");
    psql.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conn,
        "-c",
        command,
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = psql.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let out = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("psql finishes within a minute")
        .unwrap();
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), printed)
}

#[tokio::test(flavor = "multi_thread")]
async fn psql_copy_works_both_ways_as_on_postgresql() {
    let postgres = Postgres::start();
    let reference = postgres.fresh_database("psql_copy").await;
    let server = TestServer::start();
    let kalamdb = server.conn_string("root", &server.options.root_password);
    for conn in [&reference, &kalamdb] {
        connect(conn)
            .await
            .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT, n INT)")
            .await
            .unwrap();
    }
    let steps: &[(&str, &[u8])] = &[
        ("\\copy t from stdin", b"1\tone\t1\n2\t\\N\t2\n"),
        (
            "\\copy t (id, name) from stdin with (format csv, header)",
            b"id,name\n3,\"th,ree\"\n",
        ),
        ("\\copy t from stdin", b"4\tfour\tnot a number\n"),
        ("\\copy t to stdout", b""),
        (
            "\\copy (select id, name from t order by id desc) to stdout with csv header",
            b"",
        ),
        (
            "BEGIN; INSERT INTO t VALUES (9, 'in block', 9); COMMIT",
            b"",
        ),
    ];
    for (command, input) in steps {
        let want = psql_copy(&reference, command, input);
        let got = psql_copy(&kalamdb, command, input);
        // psql prints the server's words; the CONTEXT line quotes the row in PostgreSQL.
        let first_lines = |s: &str| s.lines().take(1).collect::<Vec<_>>().join("\n");
        assert_eq!(
            (got.0, first_lines(&got.1)),
            (want.0, first_lines(&want.1)),
            "{command}: KalamDB printed {} / PostgreSQL printed {}",
            got.1,
            want.1
        );
    }
}

/// Rows per large load: past what a COPY holds in memory before sorting its rows on disk.
const LARGE: u64 = 150_000;

/// CSV rows `id,label id` for ids `first..first + LARGE`, last id first (so the rows must be
/// sorted), with line `at` holding `id` instead where `replace` says so.
fn large_csv(first: u64, replace: Option<(u64, u64)>) -> Vec<u8> {
    let mut data = Vec::new();
    for line in 1..=LARGE {
        let id = match replace {
            Some((at, id)) if at == line => id,
            _ => first + LARGE - line,
        };
        writeln!(data, "{id},label {id}").unwrap();
    }
    data
}

/// Large loads on one server: how each ended, then what each table holds.
async fn run_large_loads(conn: &str) -> Vec<String> {
    connect(conn)
        .await
        .batch_execute(
            "CREATE TABLE big (id BIGINT PRIMARY KEY, label TEXT NOT NULL); \
             CREATE TABLE heap (id BIGINT, label TEXT); \
             CREATE TABLE indexed (id BIGINT PRIMARY KEY, label TEXT); \
             CREATE INDEX indexed_label ON indexed (label)",
        )
        .await
        .unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("COPY big FROM STDIN (FORMAT csv)", large_csv(1, None)),
        // A key stored by the first load, on line 140000.
        (
            "COPY big FROM STDIN (FORMAT csv)",
            large_csv(LARGE + 1, Some((140_000, 77))),
        ),
        // A key the data itself repeats: line 120000 repeats line 5's.
        (
            "COPY big FROM STDIN (FORMAT csv)",
            large_csv(2 * LARGE + 1, Some((120_000, 3 * LARGE - 5))),
        ),
        ("COPY heap FROM STDIN (FORMAT csv)", large_csv(1, None)),
        ("COPY indexed FROM STDIN (FORMAT csv)", large_csv(1, None)),
    ];
    let mut seen = Vec::new();
    for (copy, data) in cases {
        let client = connect(conn).await;
        let outcome = describe(copy_in(&client, copy, data).await);
        seen.push(format!("{copy}: {outcome}"));
    }
    connect(conn)
        .await
        .batch_execute("INSERT INTO heap VALUES (0, 'after the load')")
        .await
        .unwrap();
    seen.extend(large_tables(conn).await);
    seen
}

/// Each large-load table's row count, distinct ids and id sum, and a row by its key.
async fn large_tables(conn: &str) -> Vec<String> {
    let client = connect(conn).await;
    let mut seen = Vec::new();
    for table in ["big", "heap", "indexed"] {
        let sql =
            format!("SELECT count(*)::text, count(DISTINCT id)::text, sum(id)::text FROM {table}");
        let row = client.query_one(&sql, &[]).await.unwrap();
        let values: Vec<String> = (0..3).map(|i| row.get(i)).collect();
        seen.push(format!("{table}: {}", values.join("|")));
    }
    for sql in [
        "SELECT label FROM big WHERE id = 123456",
        "SELECT id::text FROM indexed WHERE label = 'label 4242'",
    ] {
        let row = client.query_one(sql, &[]).await.unwrap();
        seen.push(format!("{sql}: {}", row.get::<_, String>(0)));
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn large_loads_sorted_on_disk_load_all_their_rows_or_none_as_on_postgresql() {
    let postgres = Postgres::start();
    let reference = postgres.fresh_database("large_copy").await;
    let mut server = TestServer::start();
    let kalamdb = server.conn_string("root", &server.options.root_password);

    let want = run_large_loads(&reference).await;
    let got = run_large_loads(&kalamdb).await;
    assert_eq!(got, want);
    assert!(want[0].ends_with(&format!("COPY {LARGE}")), "{want:?}");
    assert!(want[1].contains("23505"), "{want:?}");

    // The ingested rows are durable like any others, and the scratch area is empty.
    server.restart();
    let kalamdb = server.conn_string("root", &server.options.root_password);
    let after = large_tables(&kalamdb).await;
    assert_eq!(after, got[got.len() - 5..]);
    let scratch = server.data_path().join("load_tmp");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
