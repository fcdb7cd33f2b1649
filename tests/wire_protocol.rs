//! The PostgreSQL protocol as real clients use it: simple and extended query, parameters,
//! result formats, settings, transactions, errors, cancel, TLS, and psql itself.

mod common;

use std::time::Duration;

use common::{ServerOptions, TestServer, message, psql, repo_root, sqlstate};
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::types::Type;

/// The first column of the first row of a simple-protocol result.
fn first_value(messages: Vec<SimpleQueryMessage>) -> String {
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or_default().to_owned()),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test]
async fn prepared_statements_bind_typed_parameters_and_return_binary_results() {
    let server = TestServer::start();
    let client = server.root().await;
    let statement = client
        .prepare_typed(
            "SELECT $1 + 1 AS next, $2 AS greeting",
            &[Type::INT8, Type::TEXT],
        )
        .await
        .unwrap();
    assert_eq!(statement.params(), &[Type::INT8, Type::TEXT]);
    assert_eq!(statement.columns()[0].name(), "next");
    assert_eq!(statement.columns()[0].type_(), &Type::INT8);
    let row = client
        .query_one(&statement, &[&41i64, &"hello"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>("next"), 42);
    assert_eq!(row.get::<_, String>("greeting"), "hello");
    // Untyped parameters are described as text and cast where the query says so.
    let row = client
        .query_one("SELECT CAST($1 AS BIGINT) * 2", &[&"21"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 42);
}

#[tokio::test]
async fn describe_reports_result_columns_with_postgres_types() {
    let server = TestServer::start();
    let client = server.root().await;
    let statement = client
        .prepare("SELECT true AS b, 1.5::double precision AS f, 'x' AS t, now() AS ts")
        .await
        .unwrap();
    let types: Vec<&Type> = statement.columns().iter().map(|c| c.type_()).collect();
    assert_eq!(
        types,
        [&Type::BOOL, &Type::FLOAT8, &Type::TEXT, &Type::TIMESTAMPTZ]
    );
    let row = client.query_one(&statement, &[]).await.unwrap();
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, f64>("f"), 1.5);
}

#[tokio::test]
async fn an_error_leaves_the_connection_usable_in_both_protocols() {
    let server = TestServer::start();
    let client = server.root().await;
    let err = client.batch_execute("SELEC 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), "42601");
    let err = client.query("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "22012");
    let err = client
        .query("SELECT * FROM no_such_table", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42P01");
    assert_eq!(
        client
            .query_one("SELECT 3", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );
    let rows = client.simple_query("SELECT 4").await.unwrap();
    assert_eq!(first_value(rows), "4");
}

#[tokio::test]
async fn a_cancel_request_stops_a_running_query() {
    let server = TestServer::start();
    let client = server.root().await;
    let sql = "SELECT count(*) FROM generate_series(1, 100000000000) AS g(value)";
    cancel_after(&client, Duration::from_millis(500), client.query(sql, &[])).await;
    client.query_one("SELECT 1", &[]).await.unwrap();
}

/// Cancels `work`, running on `client`, from another connection after `delay`, and checks it
/// ends soon with 57014.
async fn cancel_after<T: std::fmt::Debug>(
    client: &tokio_postgres::Client,
    delay: Duration,
    work: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) {
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .expect("the statement ends")
        .unwrap_err();
    canceller.await.unwrap();
    assert_eq!(sqlstate(&err), "57014", "{}", message(&err));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn pg_sleep_waits_without_holding_a_worker_and_stops_on_cancel() {
    let server = TestServer::start();
    let client = server.root().await;
    let statement = client.prepare("SELECT pg_sleep(0.3)").await.unwrap();
    assert_eq!(statement.columns()[0].type_(), &Type::VOID);
    let started = std::time::Instant::now();
    let value = first_value(client.simple_query("SELECT pg_sleep(0.3)").await.unwrap());
    assert_eq!(value, "");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let null = client.simple_query("SELECT pg_sleep(NULL)").await.unwrap();
    let null_row = null.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0).is_none()),
        _ => None,
    });
    assert_eq!(null_row, Some(true), "pg_sleep(NULL) is NULL");

    // Eight sessions sleeping a second each on a server with fewer worker threads finish in
    // about a second: a sleep holds no thread.
    let mut sleepers = Vec::new();
    for _ in 0..8 {
        sleepers.push(server.root().await);
    }
    let started = std::time::Instant::now();
    let sleeps = sleepers
        .iter()
        .map(|c| c.simple_query("SELECT pg_sleep(1)"));
    for result in futures::future::join_all(sleeps).await {
        result.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let sleep = client.simple_query("SELECT pg_sleep(3600)");
    cancel_after(&client, Duration::from_millis(300), sleep).await;
    client.query_one("SELECT 1", &[]).await.unwrap();
}

#[tokio::test]
async fn connections_beyond_max_connections_get_53300_and_reserved_slots_admit_only_system() {
    let server = TestServer::start_with(ServerOptions {
        max_connections: 3,
        reserved_connections: 1,
        ..Default::default()
    });
    let root = server.root().await;
    root.batch_execute("CREATE USER ann WITH PASSWORD 'ann-secret' ROLE dba")
        .await
        .unwrap();
    let _a = server.connect("ann", "ann-secret").await.unwrap();
    // Two general slots are taken (root, ann): the last one is kept for the system role.
    let err = server.connect("ann", "ann-secret").await.unwrap_err();
    assert_eq!(sqlstate(&err), "53300");
    assert!(message(&err).contains("reserved"), "{}", message(&err));
    let _admin = server.root().await;
    let err = server
        .connect("root", &server.options.root_password)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "53300");
    drop(_a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.connect("ann", "ann-secret").await.unwrap();
}

fn tls_connector(root_ca: bool) -> tokio_postgres_rustls::MakeRustlsConnect {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if root_ca {
        use rustls_pki_types::pem::PemObject;
        for cert in
            rustls_pki_types::CertificateDer::pem_file_iter(repo_root().join("certs/ca.pem"))
                .unwrap()
        {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

#[tokio::test]
async fn tls_with_certificate_verification_and_scram() {
    let server = TestServer::start_with(ServerOptions {
        tls: true,
        ..Default::default()
    });
    let conn = format!(
        "host=localhost port={} user=root password={} dbname=kalamdb sslmode=require",
        server.port, server.options.root_password
    );
    let (client, connection) = tokio_postgres::connect(&conn, tls_connector(true))
        .await
        .unwrap();
    tokio::spawn(connection);
    assert_eq!(
        client
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    // A client that does not trust the development CA refuses the server.
    assert!(
        tokio_postgres::connect(&conn, tls_connector(false))
            .await
            .is_err()
    );
    // Plaintext is still allowed unless [tls] required = true.
    server.root().await;
}

#[tokio::test]
async fn tls_required_refuses_plaintext_with_a_clear_error() {
    let server = TestServer::start_with(ServerOptions {
        tls: true,
        tls_required: true,
        ..Default::default()
    });
    let err = server
        .connect("root", &server.options.root_password)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "28000");
    assert!(message(&err).contains("requires TLS"), "{}", message(&err));
}

#[tokio::test]
async fn psql_runs_statements_against_the_server() {
    let server = TestServer::start();
    let out = psql(&server, &["-A", "-t", "-c", "SELECT 1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    let out = psql(
        &server,
        &["-A", "-t", "-c", "SELECT current_user, version()"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("root|PostgreSQL 15.18 (KalamDB"), "{text}");
    let out = psql(&server, &["-c", "SELECT * FROM nowhere"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERROR"));
}

#[tokio::test]
async fn psql_connects_over_verified_tls() {
    let server = TestServer::start_with(ServerOptions {
        tls: true,
        tls_required: true,
        ..Default::default()
    });
    let ca = repo_root().join("certs/ca.pem");
    let conninfo = format!(
        "host=localhost port={} user=root dbname=kalamdb sslmode=verify-full sslrootcert={}",
        server.port,
        ca.display()
    );
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            &conninfo,
            "-c",
            "SELECT 'secure'",
        ])
        .env("PGPASSWORD", &server.options.root_password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "secure");
}

#[tokio::test]
async fn a_gssenc_request_is_answered_with_n() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start();
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    // GSSENCRequest: length 8, request code 80877104.
    let mut request = 8i32.to_be_bytes().to_vec();
    request.extend_from_slice(&80877104i32.to_be_bytes());
    socket.write_all(&request).await.unwrap();
    let mut answer = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(10), socket.read_exact(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(&answer, b"N");
}

#[tokio::test]
async fn psql_sees_the_startup_parameters_drivers_depend_on() {
    let server = TestServer::start();
    let out = psql(
        &server,
        &[
            "-A",
            "-t",
            "-c",
            r"\echo :SERVER_VERSION_NAME :ENCODING",
            "-c",
            "SHOW standard_conforming_strings",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("15.18 UTF8"));
    assert_eq!(lines.next(), Some("on"));
}

#[tokio::test]
async fn dml_parameters_are_typed_from_their_columns() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute("CREATE TABLE p (id BIGINT PRIMARY KEY, name TEXT, at DATE)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO p VALUES ($1, $2, $3)")
        .await
        .unwrap();
    assert_eq!(insert.params(), &[Type::INT8, Type::TEXT, Type::DATE]);
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    client
        .execute(&insert, &[&7i64, &"seven", &day])
        .await
        .unwrap();
    let update = client
        .prepare("UPDATE p SET name = $1 WHERE id = $2")
        .await
        .unwrap();
    assert_eq!(update.params(), &[Type::TEXT, Type::INT8]);
    assert_eq!(client.execute(&update, &[&"it's", &7i64]).await.unwrap(), 1);
    let row = client
        .query_one("SELECT name, at FROM p WHERE id = $1", &[&7i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "it's");
    assert_eq!(row.get::<_, chrono::NaiveDate>(1), day);
    let delete = client
        .prepare("DELETE FROM p WHERE id = $1 RETURNING name")
        .await
        .unwrap();
    assert_eq!(delete.columns()[0].name(), "name");
    let rows = client.query(&delete, &[&7i64]).await.unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn limit_and_offset_parameters_are_bigint() {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute("CREATE TABLE l (id INT PRIMARY KEY); INSERT INTO l VALUES (1), (2), (3)")
        .await
        .unwrap();
    let page = client
        .prepare("SELECT id FROM l WHERE id > $1 ORDER BY id LIMIT $2 OFFSET $3")
        .await
        .unwrap();
    assert_eq!(page.params(), &[Type::INT4, Type::INT8, Type::INT8]);
    let rows = client.query(&page, &[&0i32, &1i64, &1i64]).await.unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [2]);
}

/// Sends `frames`, then reads backend messages until ReadyForQuery; returns their type bytes.
async fn message_types_until_ready(
    socket: &mut tokio::net::TcpStream,
    frames: &[Vec<u8>],
) -> Vec<u8> {
    use tokio::io::AsyncWriteExt;
    socket.write_all(&frames.concat()).await.unwrap();
    let mut types = Vec::new();
    loop {
        let (tag, _) =
            tokio::time::timeout(Duration::from_secs(60), common::raw::read_message(socket))
                .await
                .expect("an answer within 60 s");
        types.push(tag);
        if tag == b'Z' {
            return types;
        }
    }
}

/// Each message type in `types` with how many times it came in a row: `[(b'D', 3), (b'C', 1)]`.
fn runs(types: &[u8]) -> Vec<(char, usize)> {
    let mut out: Vec<(char, usize)> = Vec::new();
    for &t in types {
        match out.last_mut() {
            Some((last, n)) if *last == t as char => *n += 1,
            _ => out.push((t as char, 1)),
        }
    }
    out
}

#[tokio::test]
async fn execute_row_limits_of_any_size_are_honoured_without_reserving_memory_for_them() {
    use common::raw::frame;
    let server = TestServer::start();
    let mut socket = common::raw::login(server.port, "root", &server.options.root_password).await;
    let execute = |max_rows: i32| {
        let mut body = b"\0".to_vec();
        body.extend_from_slice(&max_rows.to_be_bytes());
        frame(b'E', &body)
    };
    let parse = frame(
        b'P',
        b"\0SELECT g FROM generate_series(1, 70000) AS g\0\0\0",
    );
    let bind = frame(b'B', b"\0\0\0\0\0\0\0\0");
    let sync = frame(b'S', b"");
    // Two billion rows asked for: pgwire used to reserve room for them all and abort. The
    // portal is suspended after 65,536 and the next Execute finishes it.
    let types = message_types_until_ready(
        &mut socket,
        &[
            parse.clone(),
            bind.clone(),
            execute(i32::MAX),
            execute(i32::MAX),
            sync.clone(),
        ],
    )
    .await;
    assert_eq!(
        runs(&types),
        [
            ('1', 1),
            ('2', 1),
            ('D', 65_536),
            ('s', 1),
            ('D', 4_464),
            ('C', 1),
            ('Z', 1)
        ]
    );
    // A negative limit means every row, as in PostgreSQL.
    let types = message_types_until_ready(
        &mut socket,
        &[parse.clone(), bind.clone(), execute(-1), sync.clone()],
    )
    .await;
    assert_eq!(
        runs(&types),
        [('1', 1), ('2', 1), ('D', 70_000), ('C', 1), ('Z', 1)]
    );
    // A small limit suspends exactly there.
    let types = message_types_until_ready(&mut socket, &[parse, bind, execute(3), sync]).await;
    assert_eq!(
        runs(&types),
        [('1', 1), ('2', 1), ('D', 3), ('s', 1), ('Z', 1)]
    );
}

#[tokio::test]
async fn subqueries_used_as_values_keep_postgresqls_column_names_and_types() {
    let server = TestServer::start();
    let client = server.root().await;
    let statement = client
        .prepare(
            "SELECT 1 IN (SELECT 1), EXISTS (SELECT 1), NOT EXISTS (SELECT 1), \
             (SELECT 2 ORDER BY 1 LIMIT 1) AS two ORDER BY (SELECT 3)",
        )
        .await
        .unwrap();
    let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["?column?", "exists", "?column?", "two"]);
    let types: Vec<&Type> = statement.columns().iter().map(|c| c.type_()).collect();
    assert_eq!(types[..3], [&Type::BOOL, &Type::BOOL, &Type::BOOL]);
    let row = client.query_one(&statement, &[]).await.unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2)
        ),
        (true, true, false)
    );
    // A subquery limited to its first row, and one answered per outer row, are named after
    // their value as PostgreSQL names them.
    client
        .batch_execute("CREATE TABLE named (id INT PRIMARY KEY, score INT)")
        .await
        .unwrap();
    let statement = client
        .prepare(
            "SELECT (SELECT x.score FROM named x WHERE x.id = n.id ORDER BY x.id LIMIT 1), \
             (SELECT x.id FROM named x WHERE x.score > n.score), \
             n.id IN (SELECT x.score FROM named x WHERE x.id < n.id) FROM named n",
        )
        .await
        .unwrap();
    let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["score", "id", "?column?"]);
}

#[tokio::test]
async fn integer_literals_are_described_as_integer_and_wider_ones_as_bigint() {
    let server = TestServer::start();
    let client = server.root().await;
    let statement = client
        .prepare("SELECT 1, 3000000000, 1 + 1, 1 UNION SELECT 2, 4000000000, 3, 4")
        .await
        .unwrap();
    let types: Vec<&Type> = statement.columns().iter().map(|c| c.type_()).collect();
    assert_eq!(types, [&Type::INT4, &Type::INT8, &Type::INT4, &Type::INT4]);
    // The values arrive in binary as the types Describe announced.
    let rows = client.query(&statement, &[]).await.unwrap();
    let mut firsts: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    firsts.sort();
    assert_eq!(firsts, [(1, 3_000_000_000), (2, 4_000_000_000)]);
    let values = client
        .prepare("SELECT x FROM (VALUES (1), (2)) AS v(x)")
        .await
        .unwrap();
    assert_eq!(values.columns()[0].type_(), &Type::INT4);
}

#[tokio::test]
async fn a_call_no_signature_accepts_is_42883_with_postgresqls_hint_in_both_protocols() {
    let server = TestServer::start();
    let client = server.root().await;
    for sql in ["SELECT lower(1)", "SELECT 'a'::text * 2"] {
        let extended = client.query(sql, &[]).await.unwrap_err();
        let simple = client.simple_query(sql).await.unwrap_err();
        for err in [extended, simple] {
            assert_eq!(sqlstate(&err), "42883", "{sql}");
            let db = err.as_db_error().expect("a server error");
            assert!(
                db.hint()
                    .is_some_and(|h| h.contains("You might need to add explicit type casts")),
                "{sql}: {db:?}"
            );
        }
    }
    let err = client.query("SELECT lower(1)", &[]).await.unwrap_err();
    assert_eq!(message(&err), "function lower(integer) does not exist");
    let err = client.query("SELECT 'a'::text * 2", &[]).await.unwrap_err();
    assert_eq!(message(&err), "operator does not exist: text * integer");
}

/// A FETCH parsed before its cursor is declared (a driver caching named statements) is
/// described by the cursor's columns once it exists, as PostgreSQL describes it at Bind.
#[tokio::test]
async fn a_fetch_parsed_before_its_cursor_is_declared_describes_the_cursors_columns() {
    use common::raw::frame;
    let server = TestServer::start();
    let mut socket = common::raw::login(server.port, "root", &server.options.root_password).await;
    let sync = frame(b'S', b"");
    let parse = frame(b'P', b"f\0FETCH ALL FROM c\0\0\0");
    let types = message_types_until_ready(&mut socket, &[parse, sync.clone()]).await;
    assert_eq!(runs(&types), [('1', 1), ('Z', 1)]);
    let declare = frame(b'Q', b"BEGIN; DECLARE c CURSOR FOR SELECT 1 AS a\0");
    let types = message_types_until_ready(&mut socket, &[declare]).await;
    assert_eq!(runs(&types), [('C', 2), ('Z', 1)]);
    let bind = frame(b'B', b"\0f\0\0\0\0\0\0\0");
    let describe = frame(b'D', b"P\0");
    let execute = frame(b'E', b"\0\0\0\0\0");
    let types = message_types_until_ready(&mut socket, &[bind, describe, execute, sync]).await;
    assert_eq!(
        runs(&types),
        [('2', 1), ('T', 1), ('D', 1), ('C', 1), ('Z', 1)]
    );
}
