//! Archives in an S3-compatible object store, named `s3://<bucket>/<key>`: which URLs
//! `[backup.remote]` allows, and the blocking adapters through which the archive writer and
//! reader (each on a thread of its own) stream to a multipart upload and from a GET.
//!
//! An upload holds about [`UPLOAD_MEMORY`] whatever the archive's size, with parts sized so
//! that any archive fits S3's 10,000 parts. The object exists only once the upload completes;
//! an upload that fails or is dropped before that (a failed or killed job) is aborted, so the
//! store keeps no part of it. Credentials stay inside the store's client, and are cut out of
//! the store's errors before those reach a message or a log.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use tokio::runtime::Handle;
use tokio::task::{JoinHandle, JoinSet};

use super::paths::{PathError, PathUse};
use crate::config::BackupRemote;

/// S3's smallest part but the last.
const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
/// S3 allows 10,000 parts; sizing parts for 9,000 leaves room for gzip's small expansion of
/// incompressible data over the size the part is chosen from.
const PLANNED_PARTS: u64 = 9_000;
/// Parts buffered or being sent stay within this, whatever the archive's size (one part at a
/// time once a part alone is larger).
const UPLOAD_MEMORY: usize = 20 * 1024 * 1024;
/// Reads fetch ranges of this size, the next one while the current one is consumed: no request
/// carries the whole object, so the per-request timeout bounds a stalled connection and not
/// the archive's size.
const READ_RANGE_BYTES: u64 = 8 * 1024 * 1024;
/// An unreachable store fails the job after this long rather than retrying for minutes.
const RETRY_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One request, a whole part or range included, must finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// What credentials in a store's error are replaced by.
const REDACTED: &str = "<redacted>";

/// The scheme of archive URLs; the only one `[backup.remote]` configures.
const SCHEME: &str = "s3";

/// Whether an archive path is a URL (`<scheme>://...`) rather than a file path. A file path is
/// absolute, so it never starts with a scheme.
pub fn is_url(raw: &str) -> bool {
    raw.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// An object an archive URL names, with the client of its store.
#[derive(Clone)]
pub struct RemoteObject {
    bucket: String,
    key: ObjectPath,
    store: Arc<dyn ObjectStore>,
    runtime: Handle,
    secrets: Secrets,
}

impl fmt::Display for RemoteObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}://{}/{}", self.bucket, self.key)
    }
}

impl fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The object `raw` names, when `[backup.remote]` allows it. Must be called on the runtime,
/// whose handle the blocking adapters use.
pub fn resolve(
    raw: &str,
    usage: PathUse,
    remote: Option<&BackupRemote>,
) -> Result<RemoteObject, PathError> {
    let noun = usage.noun();
    let invalid = |rule: String| Err(PathError::Invalid(rule));
    let Some((scheme, rest)) = raw.split_once("://") else {
        return invalid(format!("the {noun} '{raw}' is not a URL"));
    };
    if scheme != SCHEME {
        return invalid(format!(
            "the {noun} '{raw}' uses {scheme}://; archives in object stores are named s3://<bucket>/<key>"
        ));
    }
    let Some(remote) = remote else {
        return Err(PathError::Forbidden(format!(
            "the {noun} '{raw}' names an object store, and this server has no [backup.remote] in server.toml"
        )));
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || key.is_empty() {
        return invalid(format!(
            "the {noun} '{raw}' must name a bucket and a key: s3://<bucket>/<key>"
        ));
    }
    if !remote.buckets.iter().any(|allowed| allowed == bucket) {
        return Err(PathError::Forbidden(format!(
            "the bucket '{bucket}' of the {noun} '{raw}' is not in [backup.remote] buckets"
        )));
    }
    let suffixes = usage.suffixes();
    if !suffixes.iter().any(|s| key.ends_with(s)) {
        return invalid(format!(
            "the {noun} must end in {}, got '{raw}'",
            suffixes.join(" or ")
        ));
    }
    // Refuses empty segments, '.', '..' and control characters instead of rewriting them.
    let key = ObjectPath::parse(key)
        .map_err(|e| PathError::Invalid(format!("the {noun} '{raw}' has an invalid key: {e}")))?;
    let runtime = Handle::try_current().map_err(|_| {
        PathError::Invalid("object stores are reachable only from the server".into())
    })?;
    let (store, secrets) = client(remote, bucket)
        .map_err(|e| PathError::Invalid(format!("the object store for '{raw}': {e}")))?;
    Ok(RemoteObject {
        bucket: bucket.to_owned(),
        key,
        store,
        runtime,
        secrets,
    })
}

/// The credential values a store's error must not carry into a message.
#[derive(Clone, Default)]
struct Secrets(Arc<Vec<String>>);

impl Secrets {
    fn error(&self, e: object_store::Error) -> std::io::Error {
        // An S3 error body can echo the access key id, a session token or the request that
        // was signed.
        let mut text = e.to_string();
        for secret in self.0.iter().filter(|s| !s.is_empty()) {
            text = text.replace(secret.as_str(), REDACTED);
        }
        std::io::Error::other(text)
    }
}

/// The S3 client of one bucket. Keys in `[backup.remote]` are used alone; without them the
/// client takes the `AWS_*` environment, as AWS's own tools do.
fn client(
    remote: &BackupRemote,
    bucket: &str,
) -> object_store::Result<(Arc<dyn ObjectStore>, Secrets)> {
    let (mut builder, secrets) = match (&remote.access_key_id, &remote.secret_access_key) {
        (Some(id), Some(secret)) => (
            AmazonS3Builder::new()
                .with_access_key_id(id)
                .with_secret_access_key(secret),
            vec![id.clone(), secret.clone()],
        ),
        _ => (
            AmazonS3Builder::from_env(),
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ]
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .collect(),
        ),
    };
    builder = builder
        .with_bucket_name(bucket)
        .with_region(&remote.region)
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: RETRY_TIMEOUT,
            ..RetryConfig::default()
        })
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_timeout(REQUEST_TIMEOUT),
        );
    if let Some(endpoint) = &remote.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    Ok((Arc::new(builder.build()?), Secrets(Arc::new(secrets))))
}

impl RemoteObject {
    /// Whether the object exists.
    pub fn exists(&self) -> std::io::Result<bool> {
        match self.runtime.block_on(self.store.head(&self.key)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.secrets.error(e)),
        }
    }

    /// The object's size in bytes.
    pub fn size(&self) -> std::io::Result<u64> {
        let meta = self
            .runtime
            .block_on(self.store.head(&self.key))
            .map_err(|e| self.secrets.error(e))?;
        Ok(meta.size)
    }

    /// Bytes `start..end` of the object.
    pub fn range(&self, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
        let bytes = self
            .runtime
            .block_on(self.store.get_range(&self.key, start..end))
            .map_err(|e| self.secrets.error(e))?;
        Ok(bytes.to_vec())
    }

    /// Streams the object, with its size.
    pub fn download(&self) -> std::io::Result<(Download, u64)> {
        let meta = self
            .runtime
            .block_on(self.store.head(&self.key))
            .map_err(|e| self.secrets.error(e))?;
        let mut download = Download {
            object: self.clone(),
            size: meta.size,
            e_tag: meta.e_tag,
            next: 0,
            pending: None,
            current: Bytes::new(),
        };
        download.pending = download.request_next();
        Ok((download, meta.size))
    }

    /// Starts a multipart upload to the object, its parts sized for an archive of about
    /// `expected_bytes`. Nothing is visible at the key until [`Upload::complete`].
    pub fn upload(&self, expected_bytes: u64) -> std::io::Result<Upload> {
        let upload = self
            .runtime
            .block_on(self.store.put_multipart(&self.key))
            .map_err(|e| self.secrets.error(e))?;
        let part_bytes = part_size(expected_bytes);
        Ok(Upload {
            runtime: self.runtime.clone(),
            secrets: self.secrets.clone(),
            upload: Some(upload),
            buffer: Vec::with_capacity(part_bytes),
            part_bytes,
            most_in_flight: (UPLOAD_MEMORY / part_bytes).clamp(1, 4),
            in_flight: JoinSet::new(),
            parts: 0,
            written: 0,
        })
    }
}

/// The part size for an archive of about `expected_bytes`: S3's minimum, or larger (in whole
/// MiB) when the archive would need more than [`PLANNED_PARTS`] parts.
fn part_size(expected_bytes: u64) -> usize {
    const MIB: u64 = 1024 * 1024;
    let needed = expected_bytes.div_ceil(PLANNED_PARTS).div_ceil(MIB) * MIB;
    (needed as usize).max(MIN_PART_BYTES)
}

/// A blocking reader over an object, fetched range by range with the next range requested
/// while the current one is read. Every range must come from the version of the object the
/// download started on (its ETag).
pub struct Download {
    object: RemoteObject,
    size: u64,
    e_tag: Option<String>,
    next: u64,
    pending: Option<JoinHandle<object_store::Result<Bytes>>>,
    current: Bytes,
}

impl Download {
    fn request_next(&mut self) -> Option<JoinHandle<object_store::Result<Bytes>>> {
        if self.next >= self.size {
            return None;
        }
        let end = (self.next + READ_RANGE_BYTES).min(self.size);
        let options = GetOptions {
            range: Some(GetRange::Bounded(self.next..end)),
            if_match: self.e_tag.clone(),
            ..GetOptions::default()
        };
        self.next = end;
        let store = self.object.store.clone();
        let key = self.object.key.clone();
        Some(
            self.object
                .runtime
                .spawn(async move { store.get_opts(&key, options).await?.bytes().await }),
        )
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            let Some(pending) = self.pending.take() else {
                return Ok(0);
            };
            let chunk = self
                .object
                .runtime
                .block_on(pending)
                .map_err(std::io::Error::other)?
                .map_err(|e| self.object.secrets.error(e))?;
            self.pending = self.request_next();
            self.current = chunk;
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.abort();
        }
    }
}

/// A blocking writer into a multipart upload: bytes gather into a part, and full parts are
/// sent by tasks on the runtime, a bounded number at a time. Any failure, and a drop before
/// [`Upload::complete`] succeeded, aborts the upload.
pub struct Upload {
    runtime: Handle,
    secrets: Secrets,
    /// `None` once completed (or aborted).
    upload: Option<Box<dyn MultipartUpload>>,
    buffer: Vec<u8>,
    part_bytes: usize,
    most_in_flight: usize,
    in_flight: JoinSet<object_store::Result<()>>,
    parts: usize,
    written: u64,
}

impl Upload {
    /// Sends the last part, waits for every part and completes the upload: the object
    /// appears. Returns its size. On failure the upload is aborted when `self` drops.
    pub fn complete(mut self) -> std::io::Result<u64> {
        // S3 completes an upload of at least one part.
        if !self.buffer.is_empty() || self.parts == 0 {
            self.send_part()?;
        }
        while !self.in_flight.is_empty() {
            self.join_one()?;
        }
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the upload was already ended"))?;
        self.runtime
            .block_on(upload.complete())
            .map_err(|e| self.secrets.error(e))?;
        self.upload = None;
        Ok(self.written)
    }

    fn send_part(&mut self) -> std::io::Result<()> {
        while self.in_flight.len() >= self.most_in_flight {
            self.join_one()?;
        }
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the upload was already ended"))?;
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.part_bytes));
        let part = upload.put_part(PutPayload::from(data));
        let _context = self.runtime.enter();
        self.in_flight.spawn(part);
        self.parts += 1;
        Ok(())
    }

    /// Waits for one part in flight; its failure is the upload's.
    fn join_one(&mut self) -> std::io::Result<()> {
        match self.runtime.block_on(self.in_flight.join_next()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(self.secrets.error(e)),
            Some(Err(e)) => Err(std::io::Error::other(e)),
        }
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let take = (self.part_bytes - self.buffer.len()).min(rest.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() == self.part_bytes {
                self.send_part()?;
            }
        }
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        // Parts still being sent could land after the abort and keep the upload alive.
        self.in_flight.abort_all();
        let runtime = self.runtime.clone();
        let in_flight = &mut self.in_flight;
        let aborted = runtime.block_on(async {
            while in_flight.join_next().await.is_some() {}
            upload.abort().await
        });
        match aborted {
            Ok(()) => tracing::info!("aborted an unfinished multipart upload"),
            Err(e) => tracing::warn!(
                "aborting an unfinished multipart upload: {}",
                self.secrets.error(e)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> BackupRemote {
        BackupRemote {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: "us-east-1".into(),
            buckets: vec!["backups".into()],
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
        }
    }

    #[test]
    fn parts_are_five_mib_until_an_archive_would_need_more_than_nine_thousand() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(part_size(0), MIN_PART_BYTES);
        assert_eq!(part_size(40 * 1024 * MIB), MIN_PART_BYTES);
        let huge = 5 * 1024 * 1024 * MIB; // 5 TiB, S3's largest object
        let part = part_size(huge) as u64;
        assert!(huge.div_ceil(part) <= PLANNED_PARTS, "{part}");
        assert_eq!(part % MIB, 0);
    }

    #[test]
    fn credentials_are_cut_out_of_store_errors() {
        let secrets = Secrets(Arc::new(vec!["AKIAKEYID".into(), "s3cr3t".into()]));
        let e = object_store::Error::Generic {
            store: "S3",
            source: "<Error><AWSAccessKeyId>AKIAKEYID</AWSAccessKeyId><X>s3cr3t</X></Error>".into(),
        };
        let text = secrets.error(e).to_string();
        assert!(
            !text.contains("AKIAKEYID") && !text.contains("s3cr3t"),
            "{text}"
        );
        assert!(text.contains(REDACTED), "{text}");
    }

    #[test]
    fn urls_have_a_scheme_and_file_paths_do_not() {
        assert!(is_url("s3://b/k.tar.gz"));
        assert!(is_url("gs://b/k.tar.gz"));
        assert!(!is_url("/backups/s3://x.tar.gz"));
        assert!(!is_url("relative/k.tar.gz"));
        assert!(!is_url("://k.tar.gz"));
    }

    #[tokio::test]
    async fn only_configured_buckets_and_well_formed_keys_resolve() {
        let remote = remote();
        let object = resolve(
            "s3://backups/a/b.tar.gz",
            PathUse::BackupTarget,
            Some(&remote),
        )
        .expect("an allowed URL resolves");
        assert_eq!(object.to_string(), "s3://backups/a/b.tar.gz");
        let refused = |raw: &str, remote: Option<&BackupRemote>| {
            resolve(raw, PathUse::BackupTarget, remote).unwrap_err()
        };
        assert!(matches!(
            refused("s3://backups/a.tar.gz", None),
            PathError::Forbidden(_)
        ));
        assert!(matches!(
            refused("s3://other/a.tar.gz", Some(&remote)),
            PathError::Forbidden(_)
        ));
        for raw in [
            "gs://backups/a.tar.gz",
            "s3://backups/",
            "s3://backups/a.zip",
            "s3://backups/a/../b.tar.gz",
            "s3://backups/a//b.tar.gz",
        ] {
            assert!(
                matches!(refused(raw, Some(&remote)), PathError::Invalid(_)),
                "{raw}"
            );
        }
        assert!(resolve("s3://backups/a.tgz", PathUse::RestoreSource, Some(&remote)).is_ok());
    }
}
