//! Server configuration: the `server.toml` schema, its embedded defaults, and where it came from.
//!
//! The shipped `server.toml` at the repository root is compiled into the binary and is the
//! bottom layer of every configuration: a file holds only what differs from it, and
//! `KALAMDB_<SECTION>__<KEY>` environment variables override both (`layers`). The path of the
//! file actually loaded is kept, because a backup must archive that file and no other.

mod cluster;
mod layers;

pub use cluster::{ClusterPeer, ClusterSection};

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The shipped configuration, byte for byte.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../server.toml");

/// True when `host` (a name or an address, IPv6 possibly in brackets) is this machine's
/// loopback.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The root password the shipped configuration carries; only accepted on loopback.
pub const SHIPPED_ROOT_PASSWORD: &str = "kalamdb";

/// Environment variable that overrides `[auth] root_password`.
pub const ROOT_PASSWORD_ENV: &str = "KALAMDB_ROOT_PASSWORD";
/// Overrides `[backup] signing_key`, so the key need not sit in a file.
pub const SIGNING_KEY_ENV: &str = "KALAMDB_BACKUP_SIGNING_KEY";
/// RFC 2104: an HMAC key shorter than the hash output weakens it.
const MIN_SIGNING_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerSection,
    pub storage: StorageSection,
    pub auth: AuthSection,
    pub tls: TlsSection,
    pub flush: FlushSection,
    pub streams: StreamsSection,
    pub query: QuerySection,
    pub jobs: JobsSection,
    pub backup: BackupSection,
    pub logging: LoggingSection,
    /// Cluster mode; without it the server is a single node and writes no Raft log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSection>,
    /// The file this configuration was read from; `None` for the embedded defaults.
    #[serde(skip)]
    pub source_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub host: String,
    pub port: u16,
    pub max_connections: usize,
    /// Of `max_connections`, how many only the system role may use.
    pub reserved_connections: usize,
    /// The largest Query, Parse, Bind or CopyData message a logged-in client may send.
    pub max_message_bytes: usize,
    /// Named prepared statements, and named portals, one connection may hold at once.
    pub max_prepared_statements: usize,
    /// A client must complete its login within this many seconds.
    pub authentication_timeout_seconds: u64,
    pub shutdown_timeout_seconds: u64,
    /// Threads serving connections (each a runtime of its own); 0: two per core.
    pub lanes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub data_path: PathBuf,
    pub sync_writes: bool,
    pub wal_enabled: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub root_password: String,
    pub scram_iterations: u32,
    pub max_failed_attempts: u32,
    pub lockout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub enabled: bool,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlushSection {
    pub row_limit: u64,
    pub segment_rows: usize,
}

/// `segment_rows` for flush jobs queued before the key existed (their recorded parameters lack
/// it); the shipped `server.toml` carries the same number.
pub(crate) fn default_segment_rows() -> usize {
    1_000_000
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsSection {
    pub eviction_interval_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySection {
    /// Bytes all running queries together may hold for sorts, joins and aggregates; beyond
    /// it they spill to disk, or fail with SQLSTATE 53200.
    pub memory_limit: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSection {
    pub max_concurrent: usize,
    pub retention_days: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    pub allowed_dirs: Vec<PathBuf>,
    pub compression_level: u32,
    /// 0 means half the CPUs, at least one.
    pub compression_threads: usize,
    /// How fast a backup may read the database, in bytes per second; 0: as fast as it can.
    pub max_bytes_per_second: u64,
    pub keep_pre_restore: usize,
    pub snapshots_keep: usize,
    /// Restore staging stops before free disk falls below this many bytes.
    pub min_free_bytes: u64,
    /// HMAC-SHA-256 key that signs backups and that restores require (or
    /// `KALAMDB_BACKUP_SIGNING_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// `[[backup.schedule]]`: backups the server takes by itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<BackupSchedule>,
    /// `[backup.remote]`: the S3-compatible store `s3://` archive URLs may name. Without it,
    /// such URLs are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<BackupRemote>,
}

/// `[backup.remote]`: where `s3://bucket/key` URLs go and which buckets they may name. The
/// credentials come from here or from the standard `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` variables; `Debug` never shows the secret.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackupRemote {
    /// The store's URL (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`); the
    /// region's AWS endpoint when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub region: String,
    /// The only buckets archive URLs may name.
    pub buckets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for BackupRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupRemote")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("buckets", &self.buckets)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// One `[[backup.schedule]]` entry: a cron expression (five fields, or six with seconds first,
/// in UTC), the directory its archives go to, and how many of them to keep.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackupSchedule {
    /// Names the schedule and starts its archives' names: `<name>-<UTC time>.tar.gz`.
    pub name: String,
    pub cron: String,
    pub directory: PathBuf,
    /// Keep the newest this many archives...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<usize>,
    /// ...and every archive younger than this many days. With neither, all are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u64>,
}

impl BackupSection {
    /// Compression threads to use: the configured number, or half the CPUs (at least one), so
    /// that a backup never wants every core of a server that is also serving clients.
    pub fn threads(&self) -> usize {
        match self.compression_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSection {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Loads the embedded defaults, overlaid by `explicit` when given (otherwise by
    /// `./server.toml` if present), overlaid by `KALAMDB_<SECTION>__<KEY>` environment
    /// variables and the two dedicated ones (`KALAMDB_ROOT_PASSWORD`,
    /// `KALAMDB_BACKUP_SIGNING_KEY`).
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(path) => Some(path.to_path_buf()),
            None => Some(PathBuf::from("server.toml")).filter(|p| p.is_file()),
        };
        let file = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some((text, path.display().to_string()))
            }
            None => None,
        };
        let mut config = layers::resolve(
            file.as_ref()
                .map(|(text, origin)| (text.as_str(), origin.as_str())),
            std::env::vars(),
        )?;
        config.source_path = path
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
            .filter(|p| p.is_file());
        if let Ok(password) = std::env::var(ROOT_PASSWORD_ENV) {
            config.auth.root_password = password;
        }
        if let Ok(key) = std::env::var(SIGNING_KEY_ENV) {
            config.backup.signing_key = Some(key);
        }
        config.validate()?;
        Ok(config)
    }

    pub fn defaults() -> Config {
        Self::parse(DEFAULT_CONFIG_TOML, "embedded defaults")
            .expect("the embedded server.toml is valid")
    }

    /// Reads a configuration file's text over the embedded defaults; `origin` names the source
    /// in error messages. The environment is not consulted.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        layers::resolve(Some((text, origin)), std::iter::empty())
    }

    /// The effective configuration as TOML, secrets masked: what `kalamdb config show` prints.
    pub fn to_masked_toml(&self) -> String {
        layers::masked_toml(self)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.required && !self.tls.enabled {
            return Err(ConfigError::Invalid(
                "[tls] required = true needs [tls] enabled = true".into(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "[server] max_connections must be at least 1".into(),
            ));
        }
        if self.server.reserved_connections >= self.server.max_connections {
            return Err(ConfigError::Invalid(
                "[server] reserved_connections must be less than max_connections".into(),
            ));
        }
        if !(1024..=0x3fff_fffe).contains(&self.server.max_message_bytes) {
            return Err(ConfigError::Invalid(
                "[server] max_message_bytes must be between 1024 and 1073741822".into(),
            ));
        }
        if self.server.max_prepared_statements == 0 {
            return Err(ConfigError::Invalid(
                "[server] max_prepared_statements must be at least 1".into(),
            ));
        }
        if self.server.authentication_timeout_seconds == 0 {
            return Err(ConfigError::Invalid(
                "[server] authentication_timeout_seconds must be at least 1".into(),
            ));
        }
        if self.jobs.max_concurrent == 0 {
            return Err(ConfigError::Invalid(
                "[jobs] max_concurrent must be at least 1".into(),
            ));
        }
        if !(1..=9).contains(&self.backup.compression_level) {
            return Err(ConfigError::Invalid(
                "[backup] compression_level must be between 1 and 9".into(),
            ));
        }
        if self
            .backup
            .signing_key
            .as_ref()
            .is_some_and(|key| key.len() < MIN_SIGNING_KEY_BYTES)
        {
            return Err(ConfigError::Invalid(format!(
                "[backup] signing_key must be at least {MIN_SIGNING_KEY_BYTES} bytes (for example `openssl rand -hex 32`)"
            )));
        }
        self.validate_schedules()?;
        self.validate_remote()?;
        if let Some(cluster) = &self.cluster {
            cluster.validate(self.tls.enabled)?;
        }
        if self.auth.root_password.is_empty() {
            return Err(ConfigError::Invalid(
                "[auth] root_password must not be empty".into(),
            ));
        }
        if !(1000..=10_000_000).contains(&self.auth.scram_iterations) {
            return Err(ConfigError::Invalid(
                "[auth] scram_iterations must be between 1000 and 10000000".into(),
            ));
        }
        Ok(())
    }

    /// Each `[[backup.schedule]]` has a file-name-safe unique name, a cron expression croner
    /// accepts, and a retention of at least one archive or one day. Its directory is held to
    /// the path rules when the node starts, where the data directory is known.
    fn validate_schedules(&self) -> Result<(), ConfigError> {
        for (index, schedule) in self.backup.schedule.iter().enumerate() {
            let key = format!("[[backup.schedule]] #{} ({:?})", index + 1, schedule.name);
            let invalid = |what: String| Err(ConfigError::Invalid(format!("{key} {what}")));
            if schedule.name.is_empty()
                || !schedule
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return invalid(
                    "name must be letters, digits, '_' or '-': it starts the archives' file names"
                        .into(),
                );
            }
            if self.backup.schedule[..index]
                .iter()
                .any(|other| other.name == schedule.name)
            {
                return invalid("name is used by an earlier schedule".into());
            }
            if let Err(e) = schedule.cron.parse::<croner::Cron>() {
                return invalid(format!(
                    "cron = {:?} is not a cron expression: {e}",
                    schedule.cron
                ));
            }
            if schedule.keep_last == Some(0) || schedule.keep_days == Some(0) {
                return invalid("keep_last and keep_days must be at least 1 when set".into());
            }
        }
        Ok(())
    }

    /// `[backup.remote]` names at least one bucket, a region, and an http(s) endpoint if any.
    fn validate_remote(&self) -> Result<(), ConfigError> {
        let Some(remote) = &self.backup.remote else {
            return Ok(());
        };
        let invalid = |what: &str| Err(ConfigError::Invalid(format!("[backup.remote] {what}")));
        if remote.region.trim().is_empty() {
            return invalid("region must not be empty (for example \"us-east-1\")");
        }
        if remote.buckets.is_empty() || remote.buckets.iter().any(|b| b.trim().is_empty()) {
            return invalid("buckets must list the buckets archive URLs may name");
        }
        if let Some(endpoint) = &remote.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return invalid(&format!(
                "endpoint = {endpoint:?} must start with http:// or https://"
            ));
        }
        if remote.access_key_id.is_some() != remote.secret_access_key.is_some() {
            return invalid("access_key_id and secret_access_key are set together or not at all");
        }
        Ok(())
    }

    /// True when the server only accepts connections from this machine.
    pub fn listens_on_loopback(&self) -> bool {
        is_loopback_host(&self.server.host)
    }

    pub fn listen_address(&self) -> String {
        if self.server.host.contains(':') && !self.server.host.starts_with('[') {
            format!("[{}]:{}", self.server.host, self.server.port)
        } else {
            format!("{}:{}", self.server.host, self.server.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_match_the_documented_behaviour() {
        let config = Config::defaults();
        assert_eq!(config.server.host, "127.0.0.1");
        assert_eq!(config.server.port, 5432);
        assert_eq!(config.storage.data_path, PathBuf::from("./data"));
        assert!(config.storage.sync_writes);
        assert!(config.listens_on_loopback());
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let text = DEFAULT_CONFIG_TOML.replace("max_connections = 100", "max_conections = 100");
        let err = Config::parse(&text, "test").unwrap_err().to_string();
        assert!(err.contains("max_conections"), "{err}");
    }

    #[test]
    fn loopback_detection_covers_names_and_addresses() {
        let mut config = Config::defaults();
        for (host, loopback) in [
            ("localhost", true),
            ("127.0.0.5", true),
            ("::1", true),
            ("0.0.0.0", false),
            ("192.0.2.1", false),
        ] {
            config.server.host = host.into();
            assert_eq!(config.listens_on_loopback(), loopback, "{host}");
        }
    }
}
