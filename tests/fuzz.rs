//! Bounded fuzzing against the real server: mutated SQL (seeded from the `.slt` files), mutated
//! protocol messages over real sockets (before and after login), and mutated backup archives
//! through the archive reader. Every case may fail; none may panic or stop the server.
//!
//! Each target runs `KALAMDB_FUZZ_SECONDS` (default 20). `KALAMDB_FUZZ_SEED` replays a run;
//! the seed is printed either way. A longer run:
//! `KALAMDB_FUZZ_SECONDS=600 cargo test --test fuzz -- --nocapture`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TestServer, raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn seed(target: &str) -> u64 {
    let seed = std::env::var("KALAMDB_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("fuzz {target}: KALAMDB_FUZZ_SEED={seed}");
    seed
}

fn budget() -> Duration {
    let seconds = std::env::var("KALAMDB_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(seconds)
}

/// Every SQL statement of the `.slt` suites (ours and pg-compat's).
fn slt_statements() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["tests/slt", "pg-compat/slt"] {
        for file in common::slt::slt_files(&common::repo_root().join(dir)) {
            let text = std::fs::read_to_string(file).unwrap();
            let mut current: Option<String> = None;
            for line in text.lines() {
                if line.starts_with("statement ") || line.starts_with("query ") {
                    current = Some(String::new());
                } else if line.trim().is_empty() || line.starts_with("----") {
                    if let Some(sql) = current.take().filter(|s| !s.trim().is_empty()) {
                        out.push(sql);
                    }
                } else if let Some(sql) = current.as_mut() {
                    sql.push_str(line);
                    sql.push('\n');
                }
            }
            if let Some(sql) = current.filter(|s| !s.trim().is_empty()) {
                out.push(sql);
            }
        }
    }
    assert!(out.len() > 100, "the .slt files seed the corpus");
    out
}

/// The server logged no panic, and still answers.
async fn assert_unharmed(server: &TestServer) {
    let log = server.log();
    assert!(
        !log.contains("panic: ") && !log.contains("a statement panicked"),
        "the server panicked:\n{log}"
    );
    let client = tokio::time::timeout(Duration::from_secs(10), server.root())
        .await
        .expect("the server still answers");
    client.simple_query("SELECT 1").await.unwrap();
}

const SQL_TOKENS: &[&str] = &[
    "(",
    ")",
    ",",
    ";",
    "'",
    "\"",
    "$1",
    "$0",
    "$65536",
    "$99999999999",
    "NULL",
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "+",
    "-",
    "*",
    "/",
    "%",
    "||",
    "::",
    "::int2",
    "::numeric(1000,999)",
    "::text[]",
    "CAST(",
    "AS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "9223372036854775807",
    "-9223372036854775808",
    "2147483648",
    "1e308",
    "1e-400",
    "0",
    "''",
    "'\\x00'",
    "E'\\\\'",
    "ARRAY[",
    "]",
    "[",
    "INTERVAL '1 day'",
    "now()",
    "count(*)",
    "generate_series(1,3)",
    "system.users",
    "system.jobs",
    "pg_catalog.pg_class",
    "RETURNING",
    "ON CONFLICT",
    "DO NOTHING",
    "DEFAULT",
    "VALUES",
    "INSERT INTO",
    "UPDATE",
    "SET",
    "DELETE",
    "WITH",
    "UNION ALL",
    "ORDER BY",
    "LIMIT",
    "-1",
    "OFFSET",
    "GROUP BY",
    "HAVING",
    "JOIN",
    "LATERAL",
    "IN",
    "EXISTS",
    "BETWEEN",
    "LIKE",
    "ILIKE",
    "~",
    "IS DISTINCT FROM",
    "COLLATE",
];

/// Token-level mutations of one statement.
fn mutate_sql(rng: &mut Rng, sql: &str) -> String {
    let mut tokens: Vec<String> = sql
        .split_inclusive(|c: char| c.is_whitespace() || "(),;".contains(c))
        .map(str::to_owned)
        .collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(tokens.len() + 1);
        match rng.below(7) {
            0 if !tokens.is_empty() => {
                tokens.remove(at.min(tokens.len() - 1));
            }
            1 if !tokens.is_empty() => {
                let t = tokens[at.min(tokens.len() - 1)].clone();
                tokens.insert(at.min(tokens.len()), t);
            }
            2 if tokens.len() > 1 => {
                let (last, other) = (tokens.len() - 1, rng.below(tokens.len()));
                tokens.swap(at.min(last), other);
            }
            3 => {
                let depth = 1 + rng.below(40);
                tokens.insert(at, "(".repeat(depth));
                let close = at + 1 + rng.below(tokens.len() - at);
                tokens.insert(close.min(tokens.len()), ")".repeat(depth));
            }
            _ => tokens.insert(at, format!(" {} ", rng.pick(SQL_TOKENS))),
        }
    }
    tokens.concat()
}

#[tokio::test]
async fn mutated_statements_never_panic_the_server() {
    let mut rng = Rng::new(seed("sql"));
    let corpus = slt_statements();
    let server = TestServer::start();
    let mut client = server.root().await;
    for sql in &corpus {
        let _ = client.batch_execute(sql).await;
    }
    client.batch_execute("ROLLBACK").await.ok();
    let deadline = Instant::now() + budget();
    let mut cases = 0;
    while Instant::now() < deadline {
        let original = rng.pick(&corpus).clone();
        let sql = mutate_sql(&mut rng, &original);
        let extended = rng.below(3) == 0;
        let run = async {
            if extended {
                client.prepare(&sql).await.map(drop)
            } else {
                client.batch_execute(&sql).await
            }
        };
        // A slow statement is no failure; a hung server is (caught below).
        // The panic guard's answer; other errors, internal ones included, are fair outcomes.
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(5), run).await {
            let message = common::message(&e);
            assert!(
                !message.contains("the statement failed unexpectedly"),
                "the server panicked ({message}) on: {sql}"
            );
        }
        if client.is_closed() {
            panic!("the connection closed after: {sql}");
        }
        cases += 1;
        if cases % 200 == 0 {
            client = server.root().await;
        }
    }
    eprintln!("fuzz sql: {cases} statements");
    assert_unharmed(&server).await;
}

/// Frontend message sequences a real client sends after login.
fn protocol_seeds(corpus: &[String]) -> Vec<Vec<u8>> {
    let frame = raw::frame;
    let mut seeds = Vec::new();
    for sql in corpus.iter().take(60) {
        let mut parse = b"s1\0".to_vec();
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(b"\0\0\0");
        let bind = b"p1\0s1\0\0\0\0\0\0\0".to_vec();
        seeds.push(
            [
                frame(b'P', &parse),
                frame(b'B', &bind),
                frame(b'D', b"Pp1\0"),
                frame(b'E', b"p1\0\0\0\0\0"),
                frame(b'C', b"Ss1\0"),
                frame(b'S', b""),
            ]
            .concat(),
        );
        seeds.push(raw::query(sql));
    }
    // Typed parameters (int8, text), one sent in binary.
    let typed = b"\0SELECT $1::int8, $2\0\0\x02\0\0\0\x14\0\0\0\x19";
    seeds.push(
        [
            frame(b'P', typed),
            frame(
                b'B',
                b"\0\0\0\x02\0\x01\0\x00\0\x02\0\0\0\x08\0\0\0\0\0\0\0\x07\0\0\0\x02hi\0\0",
            ),
            frame(b'E', b"\0\0\0\0\0"),
            frame(b'H', b""),
            frame(b'S', b""),
        ]
        .concat(),
    );
    seeds
}

/// Byte-level mutations: bit flips, interesting bytes and lengths, insertions, deletions,
/// duplicated ranges and truncation.
fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) {
    const LENGTHS: [u32; 8] = [0, 1, 3, 4, 5, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        let at = rng.below(len);
        match rng.below(7) {
            0 if len > 0 => bytes[at] ^= 1 << rng.below(8),
            1 if len > 0 => bytes[at] = *rng.pick(&[0u8, 0x7f, 0x80, 0xff, b'P', b'B', b'S']),
            2 if len >= 4 => {
                let at = at.min(len - 4);
                bytes[at..at + 4].copy_from_slice(&rng.pick(&LENGTHS).to_be_bytes());
            }
            3 => {
                let extra: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, extra);
            }
            4 if len > 0 => {
                let end = (at + 1 + rng.below(16)).min(len);
                bytes.drain(at..end);
            }
            5 if len > 0 => {
                let end = (at + 1 + rng.below(64)).min(len);
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => bytes.truncate(at),
        }
    }
}

/// Sends `bytes` and reads whatever comes back for a moment. False once the server closed
/// the connection.
async fn exchange(socket: &mut TcpStream, bytes: &[u8]) -> bool {
    if socket.write_all(bytes).await.is_err() {
        return false;
    }
    let mut sink = vec![0u8; 64 * 1024];
    let until = Instant::now() + Duration::from_millis(100);
    loop {
        match tokio::time::timeout_at(until.into(), socket.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return false,
            Ok(Ok(_)) => {}
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_protocol_messages_never_panic_the_server() {
    let seed = seed("protocol");
    let corpus = slt_statements();
    let seeds = protocol_seeds(&corpus);
    let server = std::sync::Arc::new(TestServer::start());
    let password = server.options.root_password.clone();
    let port = server.port;
    let deadline = Instant::now() + budget();
    let mut tasks = Vec::new();
    for worker in 0..8u64 {
        let seeds = seeds.clone();
        let password = password.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ worker.wrapping_mul(0x1000_0001));
            let mut cases = 0u64;
            while Instant::now() < deadline {
                if rng.below(4) == 0 {
                    // Before login: startup packets, SSL and cancel requests.
                    let mut bytes = match rng.below(3) {
                        0 => raw::startup(&[("user", "root"), ("database", "kalamdb")]),
                        1 => vec![0, 0, 0, 8, 4, 210, 22, 47],
                        _ => vec![0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2],
                    };
                    mutate_bytes(&mut rng, &mut bytes);
                    if let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)).await {
                        exchange(&mut socket, &bytes).await;
                    }
                    cases += 1;
                } else {
                    // Sequences on one logged-in connection until the server closes it.
                    // Between cases the server is never busy for long: a refused or dropped
                    // login means a case harmed it, and the log says how.
                    let mut socket = match raw::try_login(port, "root", &password).await {
                        Ok(socket) => socket,
                        Err(why) => return Err(format!("worker {worker}: login failed: {why}")),
                    };
                    for _ in 0..20 {
                        let mut bytes = rng.pick(&seeds).clone();
                        mutate_bytes(&mut rng, &mut bytes);
                        cases += 1;
                        if !exchange(&mut socket, &bytes).await {
                            break;
                        }
                    }
                }
            }
            Ok(cases)
        }));
    }
    let mut cases = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(n) => cases += n,
            Err(why) => panic!(
                "{why}\nserver exited: {}\nserver log:\n{}",
                server.has_exited(),
                server.log()
            ),
        }
    }
    eprintln!("fuzz protocol: {cases} message sequences");
    assert_unharmed(&server).await;
}

/// A small backup archive, decompressed to its tar bytes.
async fn small_archive(dir: &Path) -> Vec<u8> {
    let server = TestServer::start();
    let client = server.root().await;
    client
        .batch_execute(
            "CREATE TABLE t (id INT PRIMARY KEY, v TEXT);
             INSERT INTO t VALUES (1, 'one'), (2, 'two')",
        )
        .await
        .unwrap();
    let _ = common::run_job(&client, "FLUSH TABLE t").await;
    let archive = dir.join("seed.tar.gz");
    let (_, status, message) = common::run_job(
        &client,
        &format!("BACKUP DATABASE TO '{}'", archive.display()),
    )
    .await;
    assert_eq!(status, "Completed", "{message}");
    let mut tar = Vec::new();
    let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(&archive).unwrap());
    std::io::Read::read_to_end(&mut gz, &mut tar).unwrap();
    tar
}

#[tokio::test]
async fn mutated_archives_never_panic_the_reader() {
    let mut rng = Rng::new(seed("archive"));
    let dir = tempfile::tempdir().unwrap();
    let tar = small_archive(dir.path()).await;
    let path: PathBuf = dir.path().join("case.tar.gz");
    let deadline = Instant::now() + budget();
    let (mut cases, mut accepted) = (0, 0);
    while Instant::now() < deadline {
        let mut bytes = tar.clone();
        // Headers are where parsers break: aim most mutations at a 512-byte header block.
        if rng.below(3) > 0 {
            let blocks = bytes.len() / 512;
            let block = rng.below(blocks) * 512;
            let mut header = bytes[block..block + 512].to_vec();
            mutate_bytes(&mut rng, &mut header);
            header.resize(512, 0);
            bytes[block..block + 512].copy_from_slice(&header);
        } else {
            mutate_bytes(&mut rng, &mut bytes);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        let mut compressed = gz.finish().unwrap();
        if rng.below(10) == 0 {
            mutate_bytes(&mut rng, &mut compressed);
        }
        std::fs::write(&path, &compressed).unwrap();
        let result = std::panic::catch_unwind(|| {
            kalamdb::backup::verify_archive(&path.clone().into(), None)
        });
        match result {
            Ok(Ok(_)) => accepted += 1,
            Ok(Err(_)) => {}
            Err(_) => panic!(
                "the archive reader panicked; the case is at {}",
                path.display()
            ),
        }
        cases += 1;
    }
    eprintln!("fuzz archive: {cases} archives, {accepted} still valid");
    assert!(cases > 0);
}
