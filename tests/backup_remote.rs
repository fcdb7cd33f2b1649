//! Archives in an S3-compatible object store: BACKUP DATABASE TO 's3://...' as a multipart
//! upload, RESTORE, SHOW BACKUP and VERIFY BACKUP reading the object, a killed upload leaving
//! nothing, and URLs refused unless `[backup.remote]` allows them. The store is moto's
//! standalone server (`moto_server`, installed by `./dev.sh test`) on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    ServerOptions, TestServer, message, populate_app, run_job, sqlstate,
    wait_until_running_with_progress,
};

const BUCKET: &str = "kalamdb-test";
const ACCESS_KEY_ID: &str = "AKIAKALAMDBTEST7Q2X";
const SECRET_ACCESS_KEY: &str = "kalamdb-secret-9f8e7d6c5b4a";

/// A moto S3 server on its own port, killed when dropped.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    fn start() -> S3Server {
        Self::start_with_env(&[])
    }

    fn start_with_env(env: &[(&str, &str)]) -> S3Server {
        let port = common::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is installed (./dev.sh test installs moto[server])");
        let mut server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "moto_server exited"
            );
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let (status, _, body) = server.request("PUT", &format!("/{BUCKET}"));
        assert_eq!(status, 200, "creating the bucket: {}", text(&body));
        server
    }

    /// One plain HTTP/1.0 request (moto checks no signature): (status, headers, body).
    fn request(&self, method: &str, path: &str) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response");
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head, response[split + 4..].to_vec())
    }

    /// The keys in the bucket.
    fn keys(&self) -> Vec<String> {
        let (status, _, body) = self.request("GET", &format!("/{BUCKET}?list-type=2"));
        assert_eq!(status, 200);
        elements(&text(&body), "Key")
    }

    /// Multipart uploads started and neither completed nor aborted.
    fn open_uploads(&self) -> Vec<String> {
        let (status, _, body) = self.request("GET", &format!("/{BUCKET}?uploads"));
        assert_eq!(status, 200);
        elements(&text(&body), "UploadId")
    }

    fn object(&self, key: &str) -> Vec<u8> {
        let (status, _, body) = self.request("GET", &format!("/{BUCKET}/{key}"));
        assert_eq!(status, 200, "{key}");
        body
    }

    /// `[backup.remote]` naming this server and the test bucket.
    fn remote_section(&self) -> String {
        format!(
            "[backup.remote]\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\nbuckets = [\"{BUCKET}\"]\naccess_key_id = \"{ACCESS_KEY_ID}\"\nsecret_access_key = \"{SECRET_ACCESS_KEY}\"\n",
            self.port
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The texts of every `<name>` element of an XML document.
fn elements(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next().map(str::to_owned))
        .collect()
}

fn options_for(s3: &S3Server) -> ServerOptions {
    ServerOptions {
        backup: s3.remote_section(),
        ..ServerOptions::default()
    }
}

/// Every text column of every job, for looking for credentials.
async fn jobs_text(client: &tokio_postgres::Client) -> String {
    client
        .query(
            "SELECT job_id, job_type, status, coalesce(message, ''), coalesce(parameters, '') FROM system.jobs",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (0..5)
                .map(|i| row.get::<_, String>(i))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn an_s3_round_trip_uploads_in_parts_and_restores_from_the_object() {
    let s3 = S3Server::start();
    let mut server = TestServer::start_with(options_for(&s3));
    let client = server.root().await;
    populate_app(&client).await;
    // Incompressible bytes, so the archive spans several 5 MiB parts.
    let bulk = common::plant_bulk_file(&server, 12);
    let bulk_bytes = std::fs::read(&bulk).unwrap();
    let url = format!("s3://{BUCKET}/nightly/before.tar.gz");

    let (job_id, status, message) = run_job(&client, &format!("BACKUP DATABASE TO '{url}'")).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(message.contains(&url), "{message}");
    assert_eq!(s3.keys(), ["nightly/before.tar.gz"]);
    assert!(s3.open_uploads().is_empty());
    // S3 gives a multipart object the ETag "<md5 of the parts' md5s>-<parts>".
    let parts = multipart_parts(&s3, "nightly/before.tar.gz");
    assert!(parts >= 2, "uploaded in {parts} part(s)");

    // The same archive a file backup would be: readable by gzip and tar, server.toml redacted.
    let archive = s3.object("nightly/before.tar.gz");
    let mut names = Vec::new();
    let mut config = String::new();
    let mut entries = tar::Archive::new(flate2::read::MultiGzDecoder::new(archive.as_slice()));
    for entry in entries.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if name == "server.toml" {
            entry.read_to_string(&mut config).unwrap();
        }
        names.push(name);
    }
    assert!(names.iter().any(|n| n == "MANIFEST.json"), "{names:?}");
    assert!(config.contains("[backup.remote]"), "{config}");
    assert!(!config.contains(SECRET_ACCESS_KEY) && !config.contains(ACCESS_KEY_ID));

    let rows = client
        .query(&format!("SHOW BACKUP '{url}'"), &[])
        .await
        .unwrap();
    assert!(!rows.is_empty());
    assert_eq!(rows[0].get::<_, String>("archive"), url);
    assert_eq!(rows[0].get::<_, String>("backup_job_id"), job_id);

    let (_, status, message) = run_job(&client, &format!("VERIFY BACKUP '{url}'")).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(message.contains("verified"), "{message}");

    client
        .batch_execute("DELETE FROM app.items WHERE id < 100; DROP USER alice;")
        .await
        .unwrap();
    std::fs::remove_file(&bulk).unwrap();
    let (_, status, message) = run_job(&client, &format!("RESTORE DATABASE FROM '{url}'")).await;
    assert_eq!(status, "Completed", "{message}");
    assert!(
        message.contains(&format!("Restore staged from '{url}'")),
        "{message}"
    );

    let jobs = jobs_text(&client).await;
    drop(client);
    server.restart();
    let client = server.root().await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM app.items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2980, "the rows deleted after the backup are back");
    assert_eq!(std::fs::read(&bulk).unwrap(), bulk_bytes);

    let log = server.log();
    for secret in [SECRET_ACCESS_KEY, ACCESS_KEY_ID] {
        assert!(!log.contains(secret), "the log shows a credential");
        assert!(!jobs.contains(secret), "system.jobs shows a credential");
    }
}

/// The part count in a multipart object's ETag ("...-N"), read from a HEAD response.
fn multipart_parts(s3: &S3Server, key: &str) -> u32 {
    let (status, head, _) = s3.request("HEAD", &format!("/{BUCKET}/{key}"));
    assert_eq!(status, 200, "{head}");
    let etag = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("etag")
                .then(|| value.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no ETag in {head}"));
    etag.rsplit_once('-')
        .and_then(|(_, parts)| parts.parse().ok())
        .unwrap_or(1)
}

#[tokio::test]
async fn a_killed_upload_leaves_no_object_and_no_open_upload() {
    let s3 = S3Server::start();
    let server = TestServer::start_with(options_for(&s3));
    let client = server.root().await;
    common::plant_bulk_file(&server, 300);
    let url = format!("s3://{BUCKET}/killed.tar.gz");
    let row = client
        .query_one(&format!("BACKUP DATABASE TO '{url}'"), &[])
        .await
        .unwrap();
    let job_id: String = row.get("job_id");
    wait_until_running_with_progress(&client, &job_id).await;
    assert_eq!(s3.open_uploads().len(), 1, "the upload is under way");
    common::kill_job_and_wait(&client, &job_id).await;
    assert!(s3.keys().is_empty(), "{:?}", s3.keys());
    assert!(s3.open_uploads().is_empty(), "the upload was aborted");
    assert!(!server.data_path().join("backup_tmp").join(&job_id).exists());
}

#[tokio::test]
async fn remote_urls_are_refused_unless_configured_for_their_bucket() {
    let s3 = S3Server::start();
    let plain = TestServer::start();
    let client = plain.root().await;
    let err = client
        .batch_execute(&format!("BACKUP DATABASE TO 's3://{BUCKET}/a.tar.gz'"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{}", message(&err));
    assert!(
        message(&err).contains("[backup.remote]"),
        "{}",
        message(&err)
    );

    let server = TestServer::start_with(options_for(&s3));
    let client = server.root().await;
    let refused = [
        ("BACKUP DATABASE TO 's3://other-bucket/a.tar.gz'", "42501"),
        (
            "RESTORE DATABASE FROM 's3://other-bucket/a.tar.gz'",
            "42501",
        ),
        ("SHOW BACKUP 'gs://kalamdb-test/a.tar.gz'", "22023"),
        (
            "BACKUP DATABASE TO 's3://kalamdb-test/../a.tar.gz'",
            "22023",
        ),
        ("BACKUP DATABASE TO 's3://kalamdb-test/a.zip'", "22023"),
        (
            "BACKUP DATABASE TO 's3://kalamdb-test/i.tar.gz' INCREMENTAL FROM '/tmp/full.tar.gz'",
            "0A000",
        ),
    ];
    for (sql, state) in refused {
        let err = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(sqlstate(&err), state, "{sql}: {}", message(&err));
    }
    assert!(s3.keys().is_empty());

    // An existing object is never replaced.
    let url = format!("s3://{BUCKET}/once.tar.gz");
    let (_, status, message) = run_job(&client, &format!("BACKUP DATABASE TO '{url}'")).await;
    assert_eq!(status, "Completed", "{message}");
    let (_, status, message) = run_job(&client, &format!("BACKUP DATABASE TO '{url}'")).await;
    assert_eq!(status, "Failed");
    assert!(message.contains("already exists"), "{message}");
}

#[tokio::test]
async fn an_unreachable_store_fails_the_job_leaving_no_staging() {
    // A port nothing listens on.
    let port = common::free_port();
    let options = ServerOptions {
        backup: format!(
            "[backup.remote]\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"us-east-1\"\nbuckets = [\"{BUCKET}\"]\naccess_key_id = \"{ACCESS_KEY_ID}\"\nsecret_access_key = \"{SECRET_ACCESS_KEY}\"\n"
        ),
        ..ServerOptions::default()
    };
    let server = TestServer::start_with(options);
    let client = server.root().await;
    for sql in [
        format!("BACKUP DATABASE TO 's3://{BUCKET}/x.tar.gz'"),
        format!("RESTORE DATABASE FROM 's3://{BUCKET}/x.tar.gz'"),
    ] {
        let (_, status, message) = run_job(&client, &sql).await;
        assert_eq!(status, "Failed", "{sql}");
        // The store's own error, naming where it was sent.
        assert!(
            message.contains(&format!("http://127.0.0.1:{port}/{BUCKET}/x.tar.gz")),
            "{message}"
        );
        assert!(
            !message.contains(SECRET_ACCESS_KEY) && !message.contains(ACCESS_KEY_ID),
            "{message}"
        );
    }
    let err = client
        .batch_execute(&format!("SHOW BACKUP 's3://{BUCKET}/x.tar.gz'"))
        .await
        .unwrap_err();
    assert!(!message(&err).contains(SECRET_ACCESS_KEY));
    let leftovers: Vec<String> = std::fs::read_dir(server.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!server.log().contains(SECRET_ACCESS_KEY));
}

#[tokio::test]
async fn a_refusing_store_fails_the_job_with_its_answer_and_no_credentials() {
    // moto checks signatures after its first request (the bucket's creation): the test's keys
    // are unknown to it, so every request of the server is refused.
    let s3 = S3Server::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "1")]);
    let server = TestServer::start_with(options_for(&s3));
    let client = server.root().await;
    for sql in [
        format!("BACKUP DATABASE TO 's3://{BUCKET}/refused.tar.gz'"),
        format!("RESTORE DATABASE FROM 's3://{BUCKET}/refused.tar.gz'"),
        format!("VERIFY BACKUP 's3://{BUCKET}/refused.tar.gz'"),
    ] {
        let (_, status, message) = run_job(&client, &sql).await;
        assert_eq!(status, "Failed", "{sql}: {message}");
        assert!(message.contains("403"), "{sql}: {message}");
        assert!(
            !message.contains(SECRET_ACCESS_KEY) && !message.contains(ACCESS_KEY_ID),
            "{message}"
        );
    }
    let leftovers = std::fs::read_dir(server.dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("restore")
        })
        .count();
    assert_eq!(leftovers, 0);
    let log = server.log();
    assert!(!log.contains(SECRET_ACCESS_KEY) && !log.contains(ACCESS_KEY_ID));
}
