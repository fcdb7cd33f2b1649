//! Reading a chain of archives: an incremental backup, its base, the base's base, down to a
//! full backup. Every archive of the chain is read whole, with every check of `reader`, and
//! hands the sink only the files the newest manifest says it holds. A base is found at the
//! path its incremental recorded or, failing that, beside the incremental; it must carry the
//! seal and the database id the incremental names, and hold each of those files with the size
//! and SHA-256 the newest manifest lists. Nothing is published by the caller until the whole
//! chain has passed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::format::{self, BaseArchive, ManifestFile, Place};
use super::location::ArchiveLocation;
use super::members;
use super::reader::{self, ArchiveError, ArchiveResult, CheckedArchive, FileSink, Sink};
use super::{PathPolicy, PathUse, SigningKey, check_path};

/// Longer chains are refused: a crafted manifest could otherwise send the reader round a loop
/// of archives, and a real chain this long is better replaced by a new full backup.
const MAX_BASES: usize = 64;

/// A chain that passed every check: the newest archive, and its bases, newest first.
#[derive(Debug)]
pub struct CheckedChain {
    pub top: CheckedArchive,
    pub bases: Vec<PathBuf>,
}

impl CheckedChain {
    /// The bases' paths, newest first, for messages.
    pub fn base_list(&self) -> String {
        self.bases
            .iter()
            .map(|b| b.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The bytes of every file of the database the chain restores.
    pub fn database_bytes(&self) -> u64 {
        self.top.manifest.files.iter().map(|f| f.size).sum()
    }
}

/// Reads the archive at `top` and each base it builds on into `sink`. `policy` holds every
/// base to the path rules of a restore source.
pub fn read_chain(
    top: &ArchiveLocation,
    key: Option<&SigningKey>,
    policy: &PathPolicy,
    sink: &mut dyn Sink,
    on_progress: &mut dyn FnMut(u64) -> ArchiveResult<()>,
) -> ArchiveResult<CheckedChain> {
    // Found from the manifest's member first, so an incremental in a bucket is refused before
    // it is downloaded.
    if let ArchiveLocation::Remote(_) = top
        && let Ok(Some(sealed)) = members::read_manifest_member(top)
        && let Ok((manifest, _)) =
            format::unseal_signed::<format::Manifest>(&sealed, format::MANIFEST_NAME, key)
        && let Some(base) = &manifest.base
    {
        return Err(remote_incremental(top, base));
    }
    let newest = reader::read_archive(top, key, sink, on_progress)?;
    let mut done = newest.manifest.total_bytes;
    let mut levels = HashSet::from([newest.seal.clone()]);
    let mut bases = Vec::new();
    let mut next = newest.manifest.base.clone();
    let mut from = match (top, &next) {
        (ArchiveLocation::Local(path), _) => path.clone(),
        (ArchiveLocation::Remote(_), None) => PathBuf::new(),
        (ArchiveLocation::Remote(_), Some(base)) => return Err(remote_incremental(top, base)),
    };
    while let Some(expected) = next {
        if bases.len() == MAX_BASES {
            return Err(ArchiveError::Invalid(format!(
                "{top} builds on a chain of more than {MAX_BASES} archives"
            )));
        }
        let path = locate(&expected, &from, policy)?;
        let wanted: HashMap<&str, &ManifestFile> = newest
            .manifest
            .files
            .iter()
            .filter(|f| f.archive.as_deref() == Some(expected.manifest_sha256.as_str()))
            .map(|f| (f.path.as_str(), f))
            .collect();
        let mut filtered = Filtered {
            inner: &mut *sink,
            wanted: &wanted,
        };
        let offset = done;
        let base = reader::read_archive(&path.as_path().into(), key, &mut filtered, &mut |read| {
            on_progress(offset + read)
        })
        .map_err(|e| match e {
            ArchiveError::Invalid(m) => ArchiveError::Invalid(format!(
                "the base archive {} of {}: {m}",
                path.display(),
                from.display()
            )),
            other => other,
        })?;
        check_base(&base, &expected, &newest, &wanted, &path, &from)?;
        if !levels.insert(base.seal.clone()) {
            return Err(ArchiveError::Invalid(format!(
                "the chain of {top} returns to an archive it already read ({})",
                path.display()
            )));
        }
        done += base.manifest.total_bytes;
        next = base.manifest.base.clone();
        from = path.clone();
        bases.push(path);
    }
    if let Some(orphan) = newest.manifest.files.iter().find(|f| {
        f.archive
            .as_ref()
            .is_some_and(|seal| !levels.contains(seal))
    }) {
        return Err(ArchiveError::Invalid(format!(
            "MANIFEST.json of {top} says '{}' is held by an archive that is not in its chain",
            orphan.path
        )));
    }
    Ok(CheckedChain { top: newest, bases })
}

fn remote_incremental(top: &ArchiveLocation, base: &BaseArchive) -> ArchiveError {
    ArchiveError::Invalid(format!(
        "{top} is an incremental backup on {}, and chains are read from local files only: restore from a local copy of the chain",
        base.path
    ))
}

/// The base's file: at its recorded path, or beside the archive that names it.
fn locate(expected: &BaseArchive, from: &Path, policy: &PathPolicy) -> ArchiveResult<PathBuf> {
    let recorded = PathBuf::from(&expected.path);
    let mut candidates = vec![recorded.clone()];
    if let (Some(name), Some(dir)) = (recorded.file_name(), from.parent()) {
        candidates.push(dir.join(name));
    }
    for candidate in &candidates {
        if let Ok(path) = check_path(
            &candidate.to_string_lossy(),
            true,
            PathUse::RestoreSource,
            policy,
        ) {
            return Ok(path);
        }
    }
    Err(ArchiveError::Invalid(format!(
        "the base archive {} of {} is missing (looked for it there and beside {}); it was written by job {} at {}",
        recorded.display(),
        from.display(),
        from.display(),
        expected.job_id,
        expected.created_at
    )))
}

/// The base is the archive the newer one was taken on, of the same database, and holds what
/// the newest manifest says it holds.
fn check_base(
    base: &CheckedArchive,
    expected: &BaseArchive,
    newest: &CheckedArchive,
    wanted: &HashMap<&str, &ManifestFile>,
    path: &Path,
    from: &Path,
) -> ArchiveResult<()> {
    let invalid = |m: String| Err(ArchiveError::Invalid(m));
    if base.seal != expected.manifest_sha256 {
        return invalid(format!(
            "{} is not the base archive {} was taken on: its manifest seal is {}, not {} (the file was altered or replaced)",
            path.display(),
            from.display(),
            base.seal,
            expected.manifest_sha256
        ));
    }
    if base.manifest.database_id != newest.manifest.database_id {
        return invalid(format!(
            "the base archive {} is a backup of another database",
            path.display()
        ));
    }
    let held: HashMap<&str, &ManifestFile> = base
        .manifest
        .stored_files()
        .map(|f| (f.path.as_str(), f))
        .collect();
    for (file_path, file) in wanted {
        match held.get(file_path) {
            Some(stored) if stored.size == file.size && stored.sha256 == file.sha256 => {}
            _ => {
                return invalid(format!(
                    "the base archive {} does not hold '{file_path}' as {} expects",
                    path.display(),
                    from.display()
                ));
            }
        }
    }
    Ok(())
}

/// Passes on only the files a base holds for the newest manifest; directories come from the
/// newest archive, and files create their parents.
struct Filtered<'s, 'w> {
    inner: &'s mut dyn Sink,
    wanted: &'w HashMap<&'w str, &'w ManifestFile>,
}

impl Sink for Filtered<'_, '_> {
    fn reserve(&mut self, _: u64) -> ArchiveResult<()> {
        self.inner
            .reserve(self.wanted.values().map(|f| f.size).sum())
    }

    fn directory(&mut self, _: &Place) -> ArchiveResult<()> {
        Ok(())
    }

    fn create(&mut self, place: &Place) -> ArchiveResult<Box<dyn FileSink>> {
        if self.wanted.contains_key(place.archive_path().as_str()) {
            self.inner.create(place)
        } else {
            Ok(Box::new(reader::Discard))
        }
    }
}
