//! What an incremental backup leaves to its base: the base's manifest, read from its last gzip
//! member, says which archive of its chain holds each file; a captured file whose path, size
//! and SHA-256 match is listed with that archive's seal instead of being stored again. RocksDB
//! SST files and Parquet segments never change once written, so after a small change most of
//! the database matches.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use super::format::{self, BaseArchive, ManifestFile, sha256_hex};
use super::writer::{PROGRESS_INTERVAL, io_failed};
use super::{SigningKey, human_bytes, read_manifest};
use crate::jobs::{JobContext, JobError, JobResult};
use crate::storage::{BackupPoint, CapturedFile};

/// The base an incremental backup is taken on.
pub(super) struct Base {
    pub reference: BaseArchive,
    /// Archive path → (size, SHA-256, seal of the archive of the chain holding it).
    files: HashMap<String, (u64, String, String)>,
}

impl Base {
    /// Reads the manifest of the archive at `path`, which must be signed with `key` when one is
    /// set and be a backup of the database `database_id`.
    pub(super) fn read(
        path: &Path,
        key: Option<&SigningKey>,
        database_id: Option<&str>,
    ) -> JobResult<Base> {
        let (manifest, _) = read_manifest(&path.into(), key)
            .map_err(|e| JobError::Failed(format!("the base archive {}: {e}", path.display())))?;
        match (manifest.database_id.as_deref(), database_id) {
            (Some(base), Some(ours)) if base == ours => {}
            (None, _) => {
                return Err(JobError::Failed(format!(
                    "the base archive {} does not record which database it holds (it predates database ids); take a full backup first",
                    path.display()
                )));
            }
            _ => {
                return Err(JobError::Failed(format!(
                    "the base archive {} is a backup of another database",
                    path.display()
                )));
            }
        }
        let seal = manifest.seal();
        let files = manifest
            .files
            .iter()
            .map(|f| {
                let holder = f.archive.clone().unwrap_or_else(|| seal.clone());
                (f.path.clone(), (f.size, f.sha256.clone(), holder))
            })
            .collect();
        Ok(Base {
            reference: BaseArchive {
                path: path.display().to_string(),
                manifest_sha256: seal,
                job_id: manifest.job_id,
                created_at: manifest.created_at,
            },
            files,
        })
    }

    /// The manifest entry for `path` when the base's chain holds exactly these bytes: same
    /// size, and then the same SHA-256 (`digest` is computed only for a file whose size
    /// matches).
    pub(super) fn unchanged(
        &self,
        path: &str,
        size: u64,
        digest: impl FnOnce() -> std::io::Result<String>,
    ) -> std::io::Result<Option<ManifestFile>> {
        let Some((base_size, sha256, holder)) = self.files.get(path) else {
            return Ok(None);
        };
        if *base_size != size {
            return Ok(None);
        }
        let digest = digest()?;
        Ok((digest == *sha256).then(|| ManifestFile {
            path: path.to_owned(),
            size,
            sha256: digest,
            archive: Some(holder.clone()),
        }))
    }
}

/// What the archive stores, and for an incremental what it leaves to its base.
pub(super) struct Contents<'p> {
    pub stored: Vec<&'p CapturedFile>,
    /// The archived `server.toml`, when stored.
    pub config: Option<Vec<u8>>,
    pub left_to_base: Vec<ManifestFile>,
    pub base: Option<BaseArchive>,
}

impl<'p> Contents<'p> {
    /// Everything for a full backup; for an incremental, what differs from `base`, found by
    /// hashing each captured file whose size matches the base's.
    pub(super) fn choose(
        ctx: &JobContext,
        point: &'p BackupPoint,
        config: Option<Vec<u8>>,
        base: Option<&Base>,
    ) -> JobResult<Contents<'p>> {
        let Some(base) = base else {
            return Ok(Contents {
                stored: point.files.iter().collect(),
                config,
                left_to_base: Vec::new(),
                base: None,
            });
        };
        let mut contents = Contents {
            stored: Vec::new(),
            config: None,
            left_to_base: Vec::new(),
            base: Some(base.reference.clone()),
        };
        let mut compared = 0u64;
        let mut last_report = Instant::now();
        for captured in &point.files {
            ctx.check_cancelled()?;
            let path = format!("{}/{}", format::DATA_ROOT, captured.relative);
            let unchanged = base
                .unchanged(&path, captured.len, || {
                    file_sha256(&captured.source, captured.len)
                })
                .map_err(io_failed(format!("reading {}", captured.source.display())))?;
            match unchanged {
                Some(entry) => contents.left_to_base.push(entry),
                None => contents.stored.push(captured),
            }
            compared += captured.len;
            if last_report.elapsed() >= PROGRESS_INTERVAL {
                last_report = Instant::now();
                ctx.progress_saying(
                    0,
                    None,
                    format!(
                        "comparing with the base: {} of {}",
                        human_bytes(compared),
                        human_bytes(point.total_bytes())
                    ),
                )?;
            }
        }
        if let Some(config) = config {
            let len = config.len() as u64;
            match base
                .unchanged(format::CONFIG_NAME, len, || bytes_sha256(&config))
                .map_err(io_failed("hashing server.toml"))?
            {
                Some(entry) => contents.left_to_base.push(entry),
                None => contents.config = Some(config),
            }
        }
        Ok(contents)
    }

    pub(super) fn stored_count(&self) -> usize {
        self.stored.len() + usize::from(self.config.is_some())
    }

    pub(super) fn stored_bytes(&self) -> u64 {
        self.stored.iter().map(|f| f.len).sum::<u64>()
            + self.config.as_ref().map_or(0, |c| c.len() as u64)
    }
}

/// The SHA-256 of the first `len` bytes of the file at `path`, which must have them.
fn file_sha256(path: &Path, len: u64) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?.take(len);
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 256 * 1024];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        digest.update(&buffer[..n]);
        read += n as u64;
    }
    if read != len {
        return Err(std::io::Error::other(format!(
            "{} has {read} bytes, not the {len} of the backup point",
            path.display()
        )));
    }
    Ok(hex::encode(digest.finish()))
}

/// The SHA-256 of bytes held in memory (the archived config).
fn bytes_sha256(bytes: &[u8]) -> std::io::Result<String> {
    Ok(sha256_hex(bytes))
}
