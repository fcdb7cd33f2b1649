//! Test harness: runs the real `kalamdb` binary on a free port with a temporary data directory.
#![allow(dead_code)]

pub mod postgres;
pub mod raw;
pub mod side_by_side;
pub mod slt;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const ROOT_PASSWORD: &str = "root-test-password";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The checkout under test. Cargo names it at run time; the compile-time path is only a fallback,
/// because clones sharing one target directory reuse each other's test binaries when the
/// sources match, and a binary would then read the files of the clone that built it.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The port a server's log says it is listening on.
pub fn listening_port(log: &str) -> Option<u16> {
    let (_, after) = log.split_once(" listening on ")?;
    let address: String = after
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '\x1b')
        .collect();
    address
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.port())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Options that change the generated server.toml.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub host: String,
    pub tls: bool,
    pub tls_required: bool,
    pub max_failed_attempts: u32,
    pub lockout_seconds: u64,
    pub max_connections: usize,
    pub reserved_connections: usize,
    pub root_password: String,
    pub extra: String,
    /// Environment variables for the server process (fault injection).
    pub env: Vec<(String, String)>,
    pub flush_row_limit: u64,
    /// `[flush] segment_rows`: small values make a test's flush write several segments.
    pub flush_segment_rows: usize,
    /// Extra keys of the `[backup]` section.
    pub backup: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            host: "127.0.0.1".into(),
            tls: false,
            tls_required: false,
            max_failed_attempts: 5,
            lockout_seconds: 60,
            max_connections: 100,
            reserved_connections: 3,
            root_password: ROOT_PASSWORD.into(),
            extra: String::new(),
            env: Vec::new(),
            flush_row_limit: 100_000,
            flush_segment_rows: 1_000_000,
            backup: String::new(),
        }
    }
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub options: ServerOptions,
    pub child: Option<Child>,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(options: ServerOptions) -> TestServer {
        Self::start_on(options, |_| {})
    }

    /// Starts on a data directory `populate` fills first (e.g. an extracted backup).
    pub fn start_on(options: ServerOptions, populate: impl FnOnce(&Path)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        populate(&dir.path().join("data"));
        let mut server = TestServer {
            dir,
            // The server binds a port the system picks and names it in its log: no race
            // between choosing a free port here and binding it there.
            port: 0,
            options,
            child: None,
        };
        server.write_config();
        server.spawn_and_wait();
        server
    }

    /// Starts on a config file holding exactly `text`, run from the server's directory, so
    /// relative paths (the default `./data`) land in it. `options.env` reaches the process.
    pub fn start_with_config_text(text: &str, options: ServerOptions) -> TestServer {
        let mut server = TestServer {
            dir: tempfile::tempdir().unwrap(),
            port: 0,
            options,
            child: None,
        };
        std::fs::write(server.config_path(), text).unwrap();
        server.spawn_and_wait();
        server
    }

    /// The server process's resident memory (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().expect("the server runs").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }

    pub fn data_path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("server.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Whether the server process has ended (exited, or killed by a signal).
    pub fn has_exited(&self) -> bool {
        let Some(child) = self.child.as_ref() else {
            return true;
        };
        match std::fs::read_to_string(format!("/proc/{}/stat", child.id())) {
            // The state follows the parenthesised command name: Z is a zombie.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => true,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn write_config(&self) {
        let o = &self.options;
        let certs = repo_root().join("certs");
        let text = format!(
            r#"
[server]
host = "{host}"
port = {port}
max_connections = {max_connections}
reserved_connections = {reserved_connections}
shutdown_timeout_seconds = 5

[storage]
data_path = "{data}"
sync_writes = true
wal_enabled = true

[auth]
root_password = "{root_password}"
scram_iterations = 4096
max_failed_attempts = {max_failed}
lockout_seconds = {lockout}

[tls]
enabled = {tls}
cert = "{cert}"
key = "{key}"
required = {tls_required}

[flush]
row_limit = {row_limit}
segment_rows = {segment_rows}

[jobs]
max_concurrent = 2
retention_days = 30

[backup]
{backup}

[logging]
level = "info"
format = "text"
{extra}
"#,
            host = o.host,
            port = self.port,
            max_connections = o.max_connections,
            reserved_connections = o.reserved_connections,
            data = self.data_path().display(),
            root_password = o.root_password,
            max_failed = o.max_failed_attempts,
            lockout = o.lockout_seconds,
            tls = o.tls,
            tls_required = o.tls_required,
            cert = certs.join("server.pem").display(),
            key = certs.join("server.key").display(),
            extra = o.extra,
            row_limit = o.flush_row_limit,
            segment_rows = o.flush_segment_rows,
            backup = o.backup,
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Starts the binary without waiting for it to listen.
    pub fn spawn(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_kalamdb"))
            .arg("--config")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .env_remove("KALAMDB_ROOT_PASSWORD")
            .env("RUST_LOG", "info")
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the kalamdb binary starts")
    }

    fn spawn_and_wait(&mut self) {
        self.launch();
        self.wait_listening();
    }

    /// A server whose config is written but which is not started yet: a cluster's nodes are
    /// launched together, since each waits for a quorum before it listens for clients.
    pub fn configured(options: ServerOptions) -> TestServer {
        let server = TestServer {
            dir: tempfile::tempdir().unwrap(),
            port: 0,
            options,
            child: None,
        };
        server.write_config();
        server
    }

    /// Starts the binary on this server's config without waiting for it to listen.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        // The log marker is per start: truncate so we wait for the new one.
        std::fs::write(self.log_path(), "").unwrap();
        self.child = Some(self.spawn());
    }

    /// Waits (bounded) until a launched server listens for clients.
    pub fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("the server was launched");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                panic!("kalamdb exited during start ({status}):\n{}", self.log());
            }
            if let Some(port) = listening_port(&self.log()) {
                self.port = port;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kalamdb did not start within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        wait_with_timeout(&mut child, Duration::from_secs(30))
    }

    /// SIGKILL: simulates a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "clean stop: {status}\n{}", self.log());
        // The log marker is per start: truncate so we wait for the new one.
        std::fs::write(self.log_path(), "").unwrap();
        self.spawn_and_wait();
    }

    /// Starts the server again on the same data directory after `kill` (no clean stop).
    pub fn restart_after_crash(&mut self) {
        assert!(self.child.is_none(), "kill the server first");
        // The start marker is per run: truncate so we wait for the new one.
        std::fs::write(self.log_path(), "").unwrap();
        self.spawn_and_wait();
    }

    pub fn conn_string(&self, user: &str, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname=kalamdb connect_timeout=10",
            self.port
        )
    }

    pub async fn connect(
        &self,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.conn_string(user, password), tokio_postgres::NoTls)
                .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    pub async fn root(&self) -> tokio_postgres::Client {
        self.connect("root", &self.options.root_password)
            .await
            .expect("root logs in")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a fresh binary with `args` against `dir`, returning (status, stderr).
pub fn run_to_exit(dir: &Path, config: &Path, timeout: Duration) -> (ExitStatus, String) {
    let log = dir.join("once.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kalamdb"))
        .arg("--config")
        .arg(config)
        .current_dir(dir)
        .env_remove("KALAMDB_ROOT_PASSWORD")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let status = wait_with_timeout(&mut child, timeout);
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

/// Waits (bounded) until the job is finished and returns (status, message).
pub async fn wait_for_job(client: &tokio_postgres::Client, job_id: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let row = client
            .query_one(
                "SELECT status, coalesce(message, '') FROM system.jobs WHERE job_id = $1",
                &[&job_id],
            )
            .await
            .unwrap();
        let status: String = row.get(0);
        if status != "Queued" && status != "Running" {
            return (status, row.get(1));
        }
        assert!(Instant::now() < deadline, "job {job_id} did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a statement that queues a job (FLUSH TABLE, BACKUP, RESTORE) and waits for the job;
/// returns (job id, final status, message).
pub async fn run_job(client: &tokio_postgres::Client, sql: &str) -> (String, String, String) {
    let row = client.query_one(sql, &[]).await.unwrap();
    assert_eq!(row.get::<_, String>("status"), "Queued", "{sql}");
    let job_id: String = row.get("job_id");
    let (status, message) = wait_for_job(client, &job_id).await;
    (job_id, status, message)
}

/// Sample data of every storage kind for backup and restore tests: `app.items` with flushed
/// rows and hot changes on top (2980 rows), the stream table `app.events` (2 rows), and the
/// user `alice` with password `old-password`.
pub async fn populate_app(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE NAMESPACE app;
             CREATE TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, price NUMERIC(10,2));
             INSERT INTO app.items SELECT value, 'item ' || value, value * 1.5 FROM generate_series(1, 3000) AS g(value);
             CREATE STREAM TABLE app.events (id BIGINT, kind TEXT) WITH (TTL_SECONDS = 3600);
             INSERT INTO app.events VALUES (1, 'login'), (2, 'logout');
             CREATE USER alice WITH PASSWORD 'old-password' ROLE user;",
        )
        .await
        .unwrap();
    let (_, status, message) = run_job(client, "FLUSH TABLE app.items").await;
    assert_eq!(status, "Completed", "{message}");
    client
        .batch_execute(
            "UPDATE app.items SET name = 'hot update' WHERE id <= 5;
             DELETE FROM app.items WHERE id BETWEEN 100 AND 120;
             INSERT INTO app.items VALUES (9000, 'hot only', 2.50);",
        )
        .await
        .unwrap();
}

/// Writes `mib` MiB of incompressible bytes under `snapshots/` so a backup takes a while.
pub fn plant_bulk_file(server: &TestServer, mib: usize) -> PathBuf {
    let dir = server.data_path().join("snapshots/bulk");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("filler.bin");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0u8; 1024 * 1024];
    let mut file = std::fs::File::create(&path).unwrap();
    for _ in 0..mib {
        for word in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        std::io::Write::write_all(&mut file, &chunk).unwrap();
    }
    path
}

/// Whether the `<target>.partial` file a running backup writes exists.
pub fn partial_exists(target: &Path) -> bool {
    let mut name = target.file_name().unwrap().to_os_string();
    name.push(".partial");
    target.with_file_name(name).exists()
}

/// Runs `kalamdb verify-backup <archive>`: (passed, stdout + stderr).
pub fn verify_backup(archive: &Path) -> (bool, String) {
    verify_backup_with_key(archive, None)
}

/// `kalamdb verify-backup`, with `key` as `KALAMDB_BACKUP_SIGNING_KEY` (none when `None`).
pub fn verify_backup_with_key(archive: &Path, key: Option<&str>) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kalamdb"));
    command.arg("verify-backup").arg(archive);
    match key {
        Some(key) => command.env("KALAMDB_BACKUP_SIGNING_KEY", key),
        None => command.env_remove("KALAMDB_BACKUP_SIGNING_KEY"),
    };
    let out = command.output().expect("kalamdb runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The SQLSTATE of a tokio-postgres error.
pub fn sqlstate(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.code().code().to_owned())
        .unwrap_or_else(|| format!("no SQLSTATE: {err}"))
}

pub fn message(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_else(|| err.to_string())
}

/// Runs psql against the server as root with `args`; returns its output.
pub fn psql(server: &TestServer, args: &[&str]) -> std::process::Output {
    Command::new("psql")
        .args([
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "root",
            "-d",
            "kalamdb",
        ])
        .arg("-p")
        .arg(server.port.to_string())
        .args(args)
        .env("PGPASSWORD", &server.options.root_password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql is installed")
}

/// Starts BACKUP and returns the job id, checking the row the statement returns.
pub async fn start_backup(client: &tokio_postgres::Client, path: &Path) -> String {
    let row = client
        .query_one(&format!("BACKUP DATABASE TO '{}'", path.display()), &[])
        .await
        .unwrap();
    let job_id: String = row.get("job_id");
    assert!(job_id.starts_with("BK-"), "{job_id}");
    assert_eq!(row.get::<_, String>("status"), "Queued");
    assert_eq!(
        row.get::<_, String>("message"),
        format!(
            "Database backup started to '{}'. Job ID: {job_id}",
            path.display()
        )
    );
    job_id
}

/// Waits (bounded) until the job runs and reports progress.
pub async fn wait_until_running_with_progress(client: &tokio_postgres::Client, job_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = client
            .query_one(
                "SELECT status, bytes_done, bytes_total, progress FROM system.jobs WHERE job_id = $1",
                &[&job_id],
            )
            .await
            .unwrap();
        let status: String = row.get(0);
        let done: i64 = row.get(1);
        if status == "Running" && done > 0 {
            let total: Option<i64> = row.get(2);
            assert!(
                total.is_some_and(|t| t >= done),
                "bytes_total is known once running"
            );
            let progress: f64 = row.get(3);
            assert!(progress > 0.0 && progress < 1.0, "{progress}");
            return;
        }
        assert!(
            status == "Queued" || status == "Running",
            "job ended early: {status}"
        );
        assert!(Instant::now() < deadline, "job never showed progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `KILL JOB` for `job_id`, waits for the job to end, asserts it ended `Cancelled`, and
/// returns how long that took from the KILL.
pub async fn kill_job_and_wait(client: &tokio_postgres::Client, job_id: &str) -> Duration {
    let killed_at = Instant::now();
    client
        .batch_execute(&format!("KILL JOB '{job_id}'"))
        .await
        .unwrap();
    let (status, message) = wait_for_job(client, job_id).await;
    assert_eq!(status, "Cancelled", "{message}");
    killed_at.elapsed()
}
