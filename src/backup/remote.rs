//! Archives in an S3-compatible object store, named `s3://<bucket>/<key>`: which URLs
//! `[backup.remote]` allows, and the blocking adapters through which the archive writer and
//! reader (each on a thread of its own) stream to a multipart upload and from a GET.
//!
//! An upload holds at most [`PARTS_IN_FLIGHT`] parts of [`PART_BYTES`] in memory whatever the
//! archive's size. The object exists only once the upload completes; an upload dropped before
//! that (a failed or killed job) is aborted, so the store keeps no part of it. Credentials stay
//! inside the store's client: nothing here formats them, and `BackupRemote`'s `Debug` hides
//! them.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};
use tokio::runtime::Handle;

use super::paths::{PathError, PathUse};
use crate::config::BackupRemote;

/// S3's smallest part but the last.
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts being sent at once: the upload's memory is at most this many parts.
const PARTS_IN_FLIGHT: usize = 4;
/// An unreachable store fails the job after this long rather than retrying for minutes.
const RETRY_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One request, a whole part included, must finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

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
    if key
        .as_ref()
        .split('/')
        .any(|part| part == "." || part == "..")
    {
        return invalid(format!(
            "the {noun} must not contain '.' or '..' segments, got '{raw}'"
        ));
    }
    let runtime = Handle::try_current().map_err(|_| {
        PathError::Invalid("object stores are reachable only from the server".into())
    })?;
    let store = client(remote, bucket)
        .map_err(|e| PathError::Invalid(format!("the object store for '{raw}': {e}")))?;
    Ok(RemoteObject {
        bucket: bucket.to_owned(),
        key,
        store,
        runtime,
    })
}

/// The S3 client of one bucket. Values in `[backup.remote]` win over the `AWS_*` environment.
fn client(remote: &BackupRemote, bucket: &str) -> object_store::Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env()
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
    if let (Some(id), Some(secret)) = (&remote.access_key_id, &remote.secret_access_key) {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret);
    }
    Ok(Arc::new(builder.build()?))
}

impl RemoteObject {
    /// Whether the object exists.
    pub fn exists(&self) -> std::io::Result<bool> {
        match self.runtime.block_on(self.store.head(&self.key)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The object's size in bytes.
    pub fn size(&self) -> std::io::Result<u64> {
        let meta = self
            .runtime
            .block_on(self.store.head(&self.key))
            .map_err(store_error)?;
        Ok(meta.size)
    }

    /// Bytes `start..end` of the object.
    pub fn range(&self, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
        let bytes = self
            .runtime
            .block_on(self.store.get_range(&self.key, start..end))
            .map_err(store_error)?;
        Ok(bytes.to_vec())
    }

    /// Streams the object, with its size.
    pub fn download(&self) -> std::io::Result<(Download, u64)> {
        let got = self
            .runtime
            .block_on(self.store.get(&self.key))
            .map_err(store_error)?;
        let size = got.meta.size;
        Ok((
            Download {
                runtime: self.runtime.clone(),
                stream: got.into_stream(),
                current: Bytes::new(),
            },
            size,
        ))
    }

    /// Starts a multipart upload to the object. Nothing is visible at the key until
    /// [`Upload::complete`].
    pub fn upload(&self) -> std::io::Result<Upload> {
        let upload = self
            .runtime
            .block_on(self.store.put_multipart(&self.key))
            .map_err(store_error)?;
        Ok(Upload {
            runtime: self.runtime.clone(),
            parts: Some(WriteMultipart::new_with_chunk_size(upload, PART_BYTES)),
            written: 0,
        })
    }
}

/// The store's error as it gave it (never carrying credentials: requests are signed, and the
/// error names the operation, the location and the store's answer).
fn store_error(e: object_store::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A blocking reader over a GET's body.
pub struct Download {
    runtime: Handle,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    current: Bytes,
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(chunk) => self.current = chunk.map_err(store_error)?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A blocking writer into a multipart upload. Dropped before [`Upload::complete`], it aborts
/// the upload.
pub struct Upload {
    runtime: Handle,
    parts: Option<WriteMultipart>,
    written: u64,
}

impl Upload {
    /// Sends the last part and completes the upload: the object appears. Returns its size.
    pub fn complete(mut self) -> std::io::Result<u64> {
        let parts = self
            .parts
            .take()
            .ok_or_else(|| std::io::Error::other("the upload was already ended"))?;
        let _context = self.runtime.enter();
        self.runtime.block_on(parts.finish()).map_err(store_error)?;
        Ok(self.written)
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let parts = self
            .parts
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the upload was already ended"))?;
        // Parts are sent by tasks on the runtime; wait while too many are in flight.
        let _context = self.runtime.enter();
        self.runtime
            .block_on(parts.wait_for_capacity(PARTS_IN_FLIGHT))
            .map_err(store_error)?;
        parts.write(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(parts) = self.parts.take() {
            let _context = self.runtime.enter();
            match self.runtime.block_on(parts.abort()) {
                Ok(()) => tracing::info!("aborted an unfinished multipart upload"),
                Err(e) => tracing::warn!("aborting an unfinished multipart upload: {e}"),
            }
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
