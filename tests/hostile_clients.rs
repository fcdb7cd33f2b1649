//! Hostile clients: statements and protocol messages built to crash, stall or exhaust the
//! server, or to read past a role. After each case the server answers a new client at once.

mod common;

use std::time::{Duration, Instant};

use common::raw::{frame, startup};
use common::{ServerOptions, TestServer, message, sqlstate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where a case starts: the server's resident memory before it.
struct Baseline(u64);

/// Measured once the server has served a login and a query: what any server in use holds.
async fn baseline(server: &TestServer) -> Baseline {
    let client = server.root().await;
    client.simple_query("SELECT 1 + 1").await.unwrap();
    drop(client);
    Baseline(server.rss_bytes())
}

/// Memory a hostile case may leave behind (allocator caches, catalog caches).
const RSS_ALLOWANCE: u64 = 64 * 1024 * 1024;

/// The server still answers a fresh login within a second, and holds no more than
/// [`RSS_ALLOWANCE`] beyond where the case started.
async fn still_serves(server: &TestServer, before: &Baseline) {
    let started = Instant::now();
    let client = tokio::time::timeout(Duration::from_secs(5), server.root())
        .await
        .expect("a new client is answered");
    let row = client.query_one("SELECT 1 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "login took {:?}",
        started.elapsed()
    );
    // A closed connection's memory is returned once the server has seen it close.
    let settled = Instant::now() + Duration::from_secs(3);
    let mut rss = server.rss_bytes();
    while rss > before.0 + RSS_ALLOWANCE && Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rss = server.rss_bytes();
    }
    assert!(
        rss <= before.0 + RSS_ALLOWANCE,
        "resident memory grew from {} MiB to {} MiB",
        before.0 >> 20,
        rss >> 20
    );
}

fn chain(op: &str, terms: usize) -> String {
    vec!["1"; terms].join(op)
}

async fn simple_error(client: &tokio_postgres::Client, sql: &str) -> (String, String) {
    let err = client.simple_query(sql).await.unwrap_err();
    (sqlstate(&err), message(&err))
}

#[tokio::test]
async fn flat_operator_chains_answer_54001_instead_of_overflowing_the_stack() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let client = server.root().await;
    for sql in [
        format!("SELECT {}", chain("+", 5_000)),
        format!("SELECT 1 WHERE {}", chain(" = 1 AND ", 5_000)),
        format!("SELECT {}", chain("||", 100_000)),
    ] {
        let (code, text) = simple_error(&client, &sql).await;
        assert_eq!(code, "54001", "{text}");
        assert!(text.contains("stack depth limit exceeded"), "{text}");
    }
    // Just inside the limit, the chain is planned and evaluated, in both protocols.
    let terms = kalamdb::sql::limits::MAX_EXPRESSION_DEPTH;
    let sql = format!("SELECT {}", chain("+", terms));
    let row = client.query_one(sql.as_str(), &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), terms as i32);
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn placeholder_numbers_beyond_65535_are_refused_with_42p02() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let client = server.root().await;
    for sql in [
        "SELECT 1 WHERE 1 = $100000000000000000",
        "SELECT 1 WHERE 1 = $1000000000",
        "SELECT $65536",
    ] {
        let (code, text) = simple_error(&client, sql).await;
        assert_eq!(code, "42P02", "{text}");
        let err = client.prepare(sql).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42P02");
    }
    client.prepare("SELECT $65535::int").await.unwrap();
    // Every parameter at once: refused at PostgreSQL's select-list limit, or planned in time
    // that grows linearly with the list (it grew with its square).
    let all: Vec<String> = (1..=65_535).map(|i| format!("${i}")).collect();
    let started = Instant::now();
    let err = client
        .prepare(&format!("SELECT {}", all.join(", ")))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "54011", "{}", message(&err));
    let in_list = format!("SELECT 1 WHERE 1 IN ({})", all.join(", "));
    let statement = client.prepare(&in_list).await.unwrap();
    assert_eq!(statement.params().len(), 65_535);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn malformed_type_names_are_errors_not_panics() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let client = server.root().await;
    let row = client
        .query_one("SELECT to_regtype(')(') IS NULL", &[])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    let (code, _) = simple_error(&client, "CREATE TABLE odd (id INT PRIMARY KEY, v \"a)(\")").await;
    assert!(
        ["42601", "0A000", "42704"].contains(&code.as_str()),
        "{code}"
    );
    let (code, text) = simple_error(
        &client,
        "CREATE TABLE sub (id INT PRIMARY KEY, v TEXT DEFAULT (SELECT 'x'))",
    )
    .await;
    assert_eq!(code, "0A000", "{text}");
    client
        .batch_execute("CREATE TABLE grows (id INT PRIMARY KEY); INSERT INTO grows VALUES (1)")
        .await
        .unwrap();
    let (code, text) = simple_error(
        &client,
        "ALTER TABLE grows ADD COLUMN v INT DEFAULT unnest(ARRAY[]::int[])",
    )
    .await;
    assert_eq!(code, "0A000", "{text}");
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn integer_overflow_raises_22003_and_changes_nothing() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE big (id INT PRIMARY KEY, b BIGINT, i INT, s SMALLINT);
             INSERT INTO big VALUES (1, 9223372036854775807, 2147483647, 32767)",
        )
        .await
        .unwrap();
    for (sql, type_name) in [
        ("UPDATE big SET b = b + 1", "bigint"),
        ("UPDATE big SET i = i * 2", "integer"),
        ("UPDATE big SET s = s + CAST(1 AS SMALLINT)", "smallint"),
        ("SELECT b + 1 FROM big", "bigint"),
        ("SELECT -b - 2 FROM big", "bigint"),
        ("INSERT INTO big VALUES (2, 1, 1, 100000)", "smallint"),
        ("INSERT INTO big VALUES (3, 1, 3000000000, 1)", "integer"),
    ] {
        let (code, text) = simple_error(&client, sql).await;
        assert_eq!(code, "22003", "{sql}: {text}");
        assert_eq!(text, format!("{type_name} out of range"), "{sql}");
    }
    let count = client
        .query_one("SELECT count(*) FROM big", &[])
        .await
        .unwrap();
    assert_eq!(count.get::<_, i64>(0), 1);
    let row = client
        .query_one("SELECT b, i, s FROM big WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), i64::MAX);
    assert_eq!(row.get::<_, i32>(1), i32::MAX);
    assert_eq!(row.get::<_, i16>(2), i16::MAX);
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn a_user_login_reads_system_tables_through_no_part_of_a_statement() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let root = server.root().await;
    root.batch_execute(
        "CREATE USER carl WITH PASSWORD 'carl-secret' ROLE user;
         CREATE TABLE notes (id INT PRIMARY KEY, v TEXT)",
    )
    .await
    .unwrap();
    let carl = server.connect("carl", "carl-secret").await.unwrap();
    for sql in [
        "SELECT user_id FROM system.users",
        "INSERT INTO notes VALUES (1, 'x') RETURNING (SELECT string_agg(user_id, ',') FROM system.users)",
        "INSERT INTO notes SELECT 2, max(user_id) FROM system.users",
        "UPDATE notes SET v = (SELECT max(job_id) FROM system.jobs)",
        "INSERT INTO notes VALUES (1, 'y') ON CONFLICT (id) DO UPDATE SET v = (SELECT max(user_id) FROM system.users)",
        "DELETE FROM notes WHERE EXISTS (SELECT 1 FROM system.users) RETURNING id",
    ] {
        let (code, text) = simple_error(&carl, sql).await;
        assert_eq!(code, "42501", "{sql}: {text}");
    }
    let rows = root.query("SELECT count(*) FROM notes", &[]).await.unwrap();
    assert_eq!(
        rows[0].get::<_, i64>(0),
        0,
        "refused statements wrote nothing"
    );
    // pg_authid lists the real users and no verifier, to every role.
    let rows = carl
        .query(
            "SELECT rolname, rolpassword FROM pg_catalog.pg_authid ORDER BY rolname",
            &[],
        )
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["carl", "root"]);
    assert!(rows.iter().all(|r| r.get::<_, Option<String>>(1).is_none()));
    still_serves(&server, &before).await;
}

/// A raw connection that sends `bytes` and returns everything the server answers until it
/// closes the connection (or a few seconds pass).
async fn exchange(server: &TestServer, bytes: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let _ = socket.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    answer
}

/// The backend messages in `bytes`, as (type, body).
fn messages(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        if rest.len() < 1 + len {
            break;
        }
        out.push((rest[0], rest[5..1 + len].to_vec()));
        rest = &rest[1 + len..];
    }
    out
}

fn error_code(body: &[u8]) -> String {
    let mut fields = body.split(|&b| b == 0);
    fields
        .find(|f| f.first() == Some(&b'C'))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn malformed_startup_packets_are_refused_without_buffering() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    // A startup length of 2 GiB, a garbage packet, a truncated one, an SSLRequest then garbage.
    let mut huge = 0x7fff_fff0u32.to_be_bytes().to_vec();
    huge.extend_from_slice(&(3u32 << 16).to_be_bytes());
    let cases: Vec<Vec<u8>> = vec![
        huge,
        b"\x00\x00\x00\x10GARBAGEGARBAGE!!".to_vec(),
        startup(&[("user", "root")])[..9].to_vec(),
        [&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f][..], b"\xde\xad\xbe\xef"].concat(),
    ];
    for case in cases {
        let answer = exchange(&server, &case).await;
        assert!(
            !messages(&answer)
                .iter()
                .any(|(t, _)| *t == b'R' || *t == b'Z'),
            "no login and no ReadyForQuery for {case:?}"
        );
    }
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn a_fatal_login_error_is_the_last_message() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    // No user name: FATAL 28000, then the server closes, with no ReadyForQuery.
    let answer = exchange(&server, &startup(&[("database", "kalamdb")])).await;
    let messages = messages(&answer);
    let last = messages.last().expect("an answer");
    assert_eq!(last.0, b'E');
    assert_eq!(error_code(&last.1), "28000");
    assert!(!messages.iter().any(|(t, _)| *t == b'Z'));
    // A password message that is no SASL response, before login: FATAL 08P01.
    let mut bytes = startup(&[("user", "root")]);
    bytes.extend_from_slice(b"p\x00\x00\x00\x08\xff\xff\xff\xff");
    let answer = exchange(&server, &bytes).await;
    let messages = self::messages(&answer);
    assert!(!messages.iter().any(|(t, _)| *t == b'Z'));
    let last = messages.last().expect("an answer");
    assert_eq!(last.0, b'E');
    still_serves(&server, &before).await;
}

/// A raw socket logged in as root, ready for hand-made frames.
async fn logged_in_socket(server: &TestServer) -> TcpStream {
    common::raw::login(server.port, "root", &server.options.root_password).await
}

#[tokio::test]
async fn malformed_extended_protocol_messages_answer_08p01() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    // A Parse declaring length 2; a Bind whose value runs past the message; a Bind with a bad
    // format code; a Describe without a subtype; an Execute cut short.
    let mut bind_long = b"\0\0\0\0\0\x01\x00\x00\x03\xe8abc".to_vec();
    bind_long.extend_from_slice(&0u16.to_be_bytes());
    let mut bind_format = b"\0\0\0\x01\x00\x07\0\x01\0\0\0\x011".to_vec();
    bind_format.extend_from_slice(&0u16.to_be_bytes());
    let cases: Vec<Vec<u8>> = vec![
        b"P\x00\x00\x00\x02".to_vec(),
        [frame(b'P', b"\0SELECT $1\0\0\0"), frame(b'B', &bind_long)].concat(),
        [frame(b'P', b"\0SELECT $1\0\0\0"), frame(b'B', &bind_format)].concat(),
        frame(b'D', b""),
        frame(b'E', b"\0\0"),
        frame(b'z', b"whatever"),
    ];
    for case in cases {
        let mut socket = logged_in_socket(&server).await;
        socket.write_all(&case).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
        let messages = messages(&answer);
        let errors: Vec<String> = messages
            .iter()
            .filter(|(t, _)| *t == b'E')
            .map(|(_, b)| error_code(b))
            .collect();
        assert!(errors.contains(&"08P01".to_owned()), "{case:?}: {errors:?}");
        still_serves(&server, &before).await;
    }
}

#[tokio::test]
async fn a_bind_with_more_values_than_parameters_is_refused() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let mut socket = logged_in_socket(&server).await;
    let mut bind = b"\0\0\0\0".to_vec();
    bind.extend_from_slice(&65_535u16.to_be_bytes());
    for _ in 0..65_535 {
        bind.extend_from_slice(&(-1i32).to_be_bytes());
    }
    bind.extend_from_slice(&0u16.to_be_bytes());
    let bytes = [
        frame(b'P', b"\0SELECT $1::int\0\0\0"),
        frame(b'B', &bind),
        frame(b'E', b"\0\0\0\0\0"),
        frame(b'S', b""),
    ]
    .concat();
    socket.write_all(&bytes).await.unwrap();
    let mut answer = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        answer.extend_from_slice(&chunk[..n]);
        if n == 0 || messages(&answer).iter().any(|(t, _)| *t == b'Z') {
            break;
        }
    }
    let codes: Vec<String> = messages(&answer)
        .iter()
        .filter(|(t, _)| *t == b'E')
        .map(|(_, b)| error_code(b))
        .collect();
    assert_eq!(codes, ["08P01"]);
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn idle_sockets_take_no_connection_slot() {
    let server = TestServer::start_with(ServerOptions {
        max_connections: 20,
        reserved_connections: 2,
        ..Default::default()
    });
    let before = baseline(&server).await;
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(
            TcpStream::connect(("127.0.0.1", server.port))
                .await
                .unwrap(),
        );
    }
    still_serves(&server, &before).await;
    // Logged-in connections do count: beyond the general slots a user gets 53300.
    let root = server.root().await;
    root.batch_execute("CREATE USER dora WITH PASSWORD 'dora-secret' ROLE user")
        .await
        .unwrap();
    let mut sessions = Vec::new();
    let mut refused = None;
    for _ in 0..20 {
        match server.connect("dora", "dora-secret").await {
            Ok(client) => sessions.push(client),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("the slots run out");
    assert_eq!(sqlstate(&err), "53300");
    assert_eq!(sessions.len(), 20 - 2 - 1, "general slots less root's");
    // The reserved slots still let the system role in.
    server.root().await.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_storm_locks_only_its_target() {
    let server = TestServer::start_with(ServerOptions {
        max_failed_attempts: 3,
        ..Default::default()
    });
    let before = baseline(&server).await;
    let root = server.root().await;
    root.batch_execute(
        "CREATE USER eve WITH PASSWORD 'eve-secret' ROLE user;
         CREATE USER fay WITH PASSWORD 'fay-secret' ROLE user",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        let err = server.connect("eve", "wrong").await.unwrap_err();
        assert_eq!(sqlstate(&err), "28P01");
    }
    // Locked: even the right password is refused now.
    let err = server.connect("eve", "eve-secret").await.unwrap_err();
    assert_eq!(sqlstate(&err), "28P01");
    server.connect("fay", "fay-secret").await.unwrap();
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn statement_timeout_cancels_a_long_query_with_57014() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let client = server.root().await;
    client
        .batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    let started = Instant::now();
    let (code, text) = simple_error(
        &client,
        "SELECT count(*) FROM generate_series(1, 10000000000) a",
    )
    .await;
    assert_eq!(code, "57014", "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();
    client.simple_query("SELECT 1").await.unwrap();
    let (code, _) = simple_error(&client, "SET statement_timeout = 'soon'").await;
    assert_eq!(code, "22023");
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn an_idle_transaction_is_ended_after_its_timeout() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let client = server.root().await;
    client
        .batch_execute("SET idle_in_transaction_session_timeout = '300ms'; BEGIN")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(client.simple_query("SELECT 1").await.is_err());
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn sql_prepare_is_capped_like_the_protocols_statements_and_deallocate_makes_room() {
    let server = TestServer::start_with(ServerOptions {
        env: vec![("KALAMDB_SERVER__MAX_PREPARED_STATEMENTS".into(), "5".into())],
        ..Default::default()
    });
    let before = baseline(&server).await;
    let client = server.root().await;
    for i in 0..5 {
        client
            .batch_execute(&format!("PREPARE held_{i} AS SELECT {i}"))
            .await
            .unwrap();
    }
    let err = client
        .batch_execute("PREPARE held_5 AS SELECT 5")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "54000", "{}", message(&err));
    client.batch_execute("DEALLOCATE held_0").await.unwrap();
    client
        .batch_execute("PREPARE held_5 AS SELECT 5")
        .await
        .unwrap();
    let rows = client.simple_query("EXECUTE held_5").await.unwrap();
    let value = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("5"));
    drop(client);
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn ten_thousand_prepared_statements_fit_and_the_next_one_is_54000() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let client = server.root().await;
    let mut held = Vec::with_capacity(10_000);
    let started = Instant::now();
    for i in 0..10_000 {
        let sql = format!("SELECT $1::TEXT || '-{i}'");
        held.push(client.prepare(&sql).await.unwrap());
    }
    let elapsed = started.elapsed();
    let err = client.prepare("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), "54000", "{}", message(&err));
    assert!(message(&err).contains("10000 named prepared statements"));
    // Every statement still works; closing some (tokio-postgres sends Close on drop) makes room.
    let row = client.query_one(&held[9_999], &[&"s"]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "s-9999");
    held.truncate(9_990);
    let again = client.prepare("SELECT 2").await.unwrap();
    assert_eq!(
        client
            .query_one(&again, &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
    eprintln!("10,000 Parse round trips: {elapsed:?}");
    drop(held);
    drop(client);
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn deallocate_all_drops_every_named_statement() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let client = server.root().await;
    let statement = client.prepare("SELECT 41 + 1").await.unwrap();
    assert_eq!(
        client
            .query_one(&statement, &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        42
    );
    client.batch_execute("DEALLOCATE ALL").await.unwrap();
    let err = client.query_one(&statement, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "26000", "{}", message(&err));
    still_serves(&server, &before).await;
}

/// Sends `sql` as one Query message and reads the answer until ReadyForQuery, discarding rows.
/// Returns the DataRows seen, the CommandComplete tags, and the server's peak resident memory
/// sampled while the rows streamed.
async fn stream_through(
    server: &TestServer,
    socket: &mut TcpStream,
    sql: &str,
) -> (u64, Vec<String>, u64) {
    socket.write_all(&common::raw::query(sql)).await.unwrap();
    let (mut rows, mut tags, mut peak) = (0u64, Vec::new(), 0);
    loop {
        let (tag, body) =
            tokio::time::timeout(Duration::from_secs(120), common::raw::read_message(socket))
                .await
                .expect("the result keeps streaming");
        match tag {
            b'D' => {
                rows += 1;
                if rows % 20_000 == 0 {
                    peak = peak.max(server.rss_bytes());
                }
            }
            b'C' => tags.push(String::from_utf8_lossy(&body[..body.len() - 1]).into_owned()),
            b'E' => panic!("{}", String::from_utf8_lossy(&body)),
            b'Z' => return (rows, tags, peak),
            _ => {}
        }
    }
}

#[tokio::test]
async fn each_statement_of_a_query_message_streams_before_the_next_runs() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let mut socket = logged_in_socket(&server).await;
    // 600 MB of rows ahead of a second statement: they stream, so only the batches in flight
    // (a few 8 MB batches in DataFusion's exchanges, more under CPU contention) are resident.
    let (rows, tags, peak) = stream_through(
        &server,
        &mut socket,
        "SELECT repeat('x', 1000) FROM generate_series(1, 600000) AS g(value); SELECT 1",
    )
    .await;
    assert_eq!(rows, 600_001);
    assert_eq!(tags, ["SELECT 600000", "SELECT 1"]);
    assert!(
        peak <= before.0 + 4 * RSS_ALLOWANCE,
        "resident memory peaked at {} MiB from {} MiB",
        peak >> 20,
        before.0 >> 20
    );
    // Later statements see the earlier ones' effects; an error ends the message.
    let (_, tags, _) = stream_through(
        &server,
        &mut socket,
        "CREATE TABLE seq (id INT PRIMARY KEY); INSERT INTO seq VALUES (1); SELECT count(*) FROM seq",
    )
    .await;
    assert_eq!(tags, ["CREATE TABLE", "INSERT 0 1", "SELECT 1"]);
    still_serves(&server, &before).await;
}

#[tokio::test]
async fn a_client_that_never_reads_a_large_result_holds_no_server_memory() {
    let server = TestServer::start();
    let before = baseline(&server).await;
    let mut stalled = logged_in_socket(&server).await;
    // About 2 GB of rows, never read: the server may only fill the socket buffers.
    stalled
        .write_all(&common::raw::query(
            "SELECT repeat('x', 1000) FROM generate_series(1, 2000000) AS g(value)",
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    still_serves(&server, &before).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    still_serves(&server, &before).await;
    drop(stalled);
    still_serves(&server, &before).await;
}
