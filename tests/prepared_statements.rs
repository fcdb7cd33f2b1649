//! SQL-level and protocol-level prepared statements on the wire: one namespace for both, the
//! command tags drivers read to forget their statement caches, DISCARD ALL between a pooler's
//! clients, and a failed Bind or Execute failing its transaction block.

mod common;

use std::time::Duration;

use common::TestServer;
use common::raw::{frame, login, query, read_message};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Sends `frames`, then reads backend messages until ReadyForQuery.
async fn exchange(socket: &mut TcpStream, frames: &[Vec<u8>]) -> Vec<(u8, Vec<u8>)> {
    socket.write_all(&frames.concat()).await.unwrap();
    let mut messages = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), read_message(socket))
            .await
            .expect("an answer within 60 s");
        let ready = message.0 == b'Z';
        messages.push(message);
        if ready {
            return messages;
        }
    }
}

/// The command tags and error SQLSTATEs among `messages`, in order: `C:SELECT 1`, `E:26000`.
fn outcomes(messages: &[(u8, Vec<u8>)]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|(tag, body)| match tag {
            b'C' => Some(format!(
                "C:{}",
                String::from_utf8_lossy(body).trim_end_matches('\0')
            )),
            b'E' => {
                let code = body
                    .split(|b| *b == 0)
                    .find_map(|field| field.strip_prefix(b"C"))
                    .map(|code| String::from_utf8_lossy(code).into_owned());
                Some(format!("E:{}", code.unwrap_or_default()))
            }
            _ => None,
        })
        .collect()
}

fn parse(name: &str, sql: &str, param_oids: &[u32]) -> Vec<u8> {
    let mut body = format!("{name}\0{sql}\0").into_bytes();
    body.extend((param_oids.len() as i16).to_be_bytes());
    for oid in param_oids {
        body.extend(oid.to_be_bytes());
    }
    frame(b'P', &body)
}

/// Bind of the unnamed portal to `statement`, parameters in text, results in text.
fn bind(statement: &str, params: &[&str]) -> Vec<u8> {
    let mut body = format!("\0{statement}\0").into_bytes();
    body.extend(0i16.to_be_bytes());
    body.extend((params.len() as i16).to_be_bytes());
    for param in params {
        body.extend((param.len() as i32).to_be_bytes());
        body.extend(param.as_bytes());
    }
    body.extend(0i16.to_be_bytes());
    frame(b'B', &body)
}

fn execute() -> Vec<u8> {
    frame(b'E', b"\0\0\0\0\0")
}

fn sync() -> Vec<u8> {
    frame(b'S', b"")
}

async fn connect(server: &TestServer) -> TcpStream {
    login(server.port, "root", &server.options.root_password).await
}

#[tokio::test]
async fn deallocate_all_is_tagged_so_and_drops_the_protocols_named_statements() {
    let server = TestServer::start();
    let mut socket = connect(&server).await;
    let parsed = exchange(&mut socket, &[parse("S_1", "SELECT 1", &[]), sync()]).await;
    assert_eq!(outcomes(&parsed), Vec::<String>::new());
    // pgJDBC, psycopg and PgBouncer forget their statement caches on this tag.
    let dropped = exchange(&mut socket, &[query("DEALLOCATE ALL")]).await;
    assert_eq!(outcomes(&dropped), ["C:DEALLOCATE ALL"]);
    let gone = exchange(&mut socket, &[bind("S_1", &[]), execute(), sync()]).await;
    assert_eq!(outcomes(&gone), ["E:26000"]);
    let one = exchange(&mut socket, &[query("DEALLOCATE s_unknown")]).await;
    assert_eq!(outcomes(&one), ["E:26000"]);
}

#[tokio::test]
async fn prepare_and_parse_share_one_namespace_and_discard_all_empties_it() {
    let server = TestServer::start();
    let mut socket = connect(&server).await;
    let prepared = exchange(&mut socket, &[query("PREPARE p AS SELECT 1")]).await;
    assert_eq!(outcomes(&prepared), ["C:PREPARE"]);
    let taken = exchange(&mut socket, &[parse("p", "SELECT 2", &[]), sync()]).await;
    assert_eq!(outcomes(&taken), ["E:42P05"]);
    let parsed = exchange(&mut socket, &[parse("s_2", "SELECT 3", &[]), sync()]).await;
    assert_eq!(outcomes(&parsed), Vec::<String>::new());
    let taken = exchange(&mut socket, &[query("PREPARE S_2 AS SELECT 4")]).await;
    assert_eq!(outcomes(&taken), ["E:42P05"]);
    // A PREPARE sent through the extended protocol is held to the same namespace.
    let taken = exchange(
        &mut socket,
        &[
            parse("", "PREPARE S_2 AS SELECT 5", &[]),
            bind("", &[]),
            execute(),
            sync(),
        ],
    )
    .await;
    assert_eq!(outcomes(&taken), ["E:42P05"]);
    // EXECUTE through the extended protocol is described by the statement's columns.
    let executed = exchange(
        &mut socket,
        &[
            parse("", "EXECUTE p", &[]),
            bind("", &[]),
            frame(b'D', b"P\0"),
            execute(),
            sync(),
        ],
    )
    .await;
    let types: Vec<u8> = executed.iter().map(|(tag, _)| *tag).collect();
    assert_eq!(types, b"12TDCZ");
    let discarded = exchange(&mut socket, &[query("DISCARD ALL")]).await;
    assert_eq!(outcomes(&discarded), ["C:DISCARD ALL"]);
    let gone = exchange(&mut socket, &[bind("s_2", &[]), execute(), sync()]).await;
    assert_eq!(outcomes(&gone), ["E:26000"]);
    let gone = exchange(&mut socket, &[query("EXECUTE p")]).await;
    assert_eq!(outcomes(&gone), ["E:26000"]);
}

#[tokio::test]
async fn a_failed_bind_or_parameter_fails_the_transaction_block_so_commit_rolls_back() {
    let server = TestServer::start();
    let mut socket = connect(&server).await;
    let setup = exchange(
        &mut socket,
        &[query("CREATE TABLE bind_t (id INT PRIMARY KEY)")],
    )
    .await;
    assert_eq!(outcomes(&setup), ["C:CREATE TABLE"]);
    for failing in [
        // A value that is no integer, found when the portal runs.
        vec![
            parse("", "INSERT INTO bind_t VALUES ($1)", &[23]),
            bind("", &["abc"]),
            execute(),
            sync(),
        ],
        // A Bind naming no statement.
        vec![bind("no_such_statement", &[]), execute(), sync()],
    ] {
        let begun = exchange(
            &mut socket,
            &[query("BEGIN; INSERT INTO bind_t VALUES (1)")],
        )
        .await;
        assert_eq!(outcomes(&begun), ["C:BEGIN", "C:INSERT 0 1"]);
        let failed = outcomes(&exchange(&mut socket, &failing).await);
        assert!(
            failed.len() == 1 && failed[0].starts_with("E:"),
            "{failed:?}"
        );
        let refused = exchange(&mut socket, &[query("SELECT 1")]).await;
        assert_eq!(outcomes(&refused), ["E:25P02"]);
        let ended = exchange(&mut socket, &[query("COMMIT")]).await;
        assert_eq!(outcomes(&ended), ["C:ROLLBACK"]);
    }
    let counted = exchange(&mut socket, &[query("SELECT count(*) FROM bind_t")]).await;
    let row = counted
        .iter()
        .find(|(tag, _)| *tag == b'D')
        .map(|(_, body)| body.clone())
        .unwrap();
    // One column, four bytes of length, then the text "0".
    assert_eq!(&row[6..], b"0");
}

#[tokio::test]
async fn discard_all_and_reset_return_settings_to_what_the_client_sent_at_startup() {
    let server = TestServer::start();
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "{} application_name=pooled options='-c search_path=pg_catalog,public'",
            server.conn_string("root", &server.options.root_password)
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let show = async |name: &str| {
        let rows = client.simple_query(&format!("SHOW {name}")).await.unwrap();
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap()
    };
    client
        .batch_execute("SET application_name = 'changed'; SET search_path = public")
        .await
        .unwrap();
    client.batch_execute("RESET search_path").await.unwrap();
    assert_eq!(
        show("search_path").await.replace(' ', ""),
        "pg_catalog,public"
    );
    assert_eq!(show("application_name").await, "changed");
    client.batch_execute("DISCARD ALL").await.unwrap();
    assert_eq!(show("application_name").await, "pooled");
    client
        .batch_execute("SET statement_timeout = '5s'")
        .await
        .unwrap();
    client.batch_execute("RESET ALL").await.unwrap();
    assert_eq!(show("statement_timeout").await, "0");
    assert_eq!(
        show("search_path").await.replace(' ', ""),
        "pg_catalog,public"
    );
}
