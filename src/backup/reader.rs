//! Reading an archive with every check a restore needs: gzip and tar structure, the KalamDB
//! header, the entry rules (only regular files and directories inside the layout), and each
//! file's size and SHA-256 against the sealed manifest. The same pass serves `verify-backup`
//! (which discards the bytes) and RESTORE (which writes them into its staging directory).

use std::io::{BufReader, Read, Write};

use flate2::read::MultiGzDecoder;

use super::format::{self, Manifest, Place, Signature, SigningKey};
use super::location::ArchiveLocation;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive is damaged, foreign or hostile.
    #[error("{0}")]
    Invalid(String),
    /// Reading the archive file or writing the extracted data failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    NoSpace(String),
    #[error("cancelled")]
    Cancelled,
}

impl ArchiveError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ArchiveError {
        let context = context.into();
        move |source| ArchiveError::Io { context, source }
    }
}

pub type ArchiveResult<T> = Result<T, ArchiveError>;

/// Where the checked entries go.
pub trait Sink {
    /// Called once, before any entry, with the total the archive declares.
    fn reserve(&mut self, total_bytes: u64) -> ArchiveResult<()>;
    fn directory(&mut self, place: &Place) -> ArchiveResult<()>;
    fn create(&mut self, place: &Place) -> ArchiveResult<Box<dyn FileSink>>;
}

/// One file being written; `commit` makes it durable once all its bytes are in.
pub trait FileSink: Write {
    fn commit(self: Box<Self>) -> std::io::Result<()>;
}

/// Discards everything: the sink of `verify-backup`.
pub struct DiscardSink;

/// A file's bytes, dropped.
pub(super) struct Discard;

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FileSink for Discard {
    fn commit(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink for DiscardSink {
    fn reserve(&mut self, _: u64) -> ArchiveResult<()> {
        Ok(())
    }
    fn directory(&mut self, _: &Place) -> ArchiveResult<()> {
        Ok(())
    }
    fn create(&mut self, _: &Place) -> ArchiveResult<Box<dyn FileSink>> {
        Ok(Box::new(Discard))
    }
}

/// What a fully checked archive holds.
#[derive(Debug)]
pub struct CheckedArchive {
    pub manifest: Manifest,
    /// The manifest's seal ([`Manifest::seal`]).
    pub seal: String,
    pub archive_bytes: u64,
    pub directories: usize,
    pub has_config: bool,
    pub signature: Signature,
}

const CHUNK: usize = 256 * 1024;

/// Reads and checks the archive at `path`, handing every entry to `sink`. `on_progress` is
/// called with the file bytes read so far and may stop the read (cancellation). With `key`,
/// only an archive signed with it passes.
pub fn read_archive(
    location: &ArchiveLocation,
    key: Option<&SigningKey>,
    sink: &mut dyn Sink,
    on_progress: &mut dyn FnMut(u64) -> ArchiveResult<()>,
) -> ArchiveResult<CheckedArchive> {
    let context = || format!("reading {location}");
    let (mut source, archive_bytes) = location.open().map_err(ArchiveError::io(context()))?;
    if archive_bytes == 0 {
        return Err(ArchiveError::Invalid(format!(
            "{location} is empty, not a backup archive"
        )));
    }
    let mut magic = [0u8; 2];
    let got = read_full(&mut source, &mut magic).map_err(ArchiveError::io(context()))?;
    if got < 2 || magic != [0x1f, 0x8b] {
        return Err(ArchiveError::Invalid(format!(
            "{location} is not a gzip file, so not a backup archive"
        )));
    }
    // One sequential read, as an object store serves it: the magic goes back in front.
    let source = std::io::Cursor::new(magic).chain(source);
    let decoder = MultiGzDecoder::new(BufReader::with_capacity(CHUNK, source));
    let mut tar = tar::Archive::new(Pipelined::spawn(decoder));
    // Raw: long-name and pax headers come to `next_member`, which bounds them, instead of
    // being read whole by the tar crate.
    let mut entries = tar.entries().map_err(damaged)?.raw(true);
    let declared = read_header(&mut entries)?;
    sink.reserve(declared.total_bytes)?;
    // Every directory we write is `data/`, an area, or an ancestor of a file.
    let most_directories = 1
        + format::LAYOUT.len() as u64
        + declared
            .file_count
            .saturating_mul(format::MAX_PATH_DEPTH as u64);

    let mut seen: std::collections::HashMap<String, (u64, String)> = Default::default();
    let mut directories = 0;
    let mut manifest_bytes: Option<Vec<u8>> = None;
    let mut done = 0u64;
    let mut buffer = vec![0u8; CHUNK];
    while let Some((raw_path, mut entry)) = next_member(&mut entries)? {
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        if manifest_bytes.is_some() {
            return Err(ArchiveError::Invalid(format!(
                "entry '{shown}' follows MANIFEST.json, which must be the last entry"
            )));
        }
        let place = Place::of(&raw_path).map_err(ArchiveError::Invalid)?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                if matches!(place, Place::Manifest | Place::Config) {
                    return Err(ArchiveError::Invalid(format!(
                        "entry '{shown}' must be a file, not a directory"
                    )));
                }
                directories += 1;
                if directories as u64 > most_directories {
                    return Err(ArchiveError::Invalid(format!(
                        "the archive holds more than {most_directories} directories, more than its {} files can need",
                        declared.file_count
                    )));
                }
                sink.directory(&place)?;
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => {
                return Err(ArchiveError::Invalid(format!(
                    "entry '{shown}' is {}; only regular files and directories are allowed",
                    describe(other)
                )));
            }
        }
        if place == Place::DataRoot || matches!(&place, Place::Data(p) if !p.contains('/')) {
            return Err(ArchiveError::Invalid(format!(
                "entry '{shown}' must be a directory, not a file"
            )));
        }
        let size = entry.size();
        let key = place.archive_path();
        if seen.contains_key(&key) || (place == Place::Manifest && manifest_bytes.is_some()) {
            return Err(ArchiveError::Invalid(format!(
                "entry '{shown}' appears twice"
            )));
        }
        if place == Place::Manifest {
            if size > format::MAX_MANIFEST_BYTES {
                return Err(ArchiveError::Invalid(format!(
                    "MANIFEST.json claims {size} bytes, more than any manifest"
                )));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes).map_err(damaged)?;
            if bytes.len() as u64 != size {
                return Err(ArchiveError::Invalid(
                    "the archive is truncated inside MANIFEST.json".into(),
                ));
            }
            manifest_bytes = Some(bytes);
            continue;
        }
        if seen.len() as u64 >= declared.file_count {
            return Err(ArchiveError::Invalid(format!(
                "the archive holds more than the {} files its header declares",
                declared.file_count
            )));
        }
        let mut out = sink.create(&place)?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut read = 0u64;
        loop {
            let n = entry.read(&mut buffer).map_err(damaged)?;
            if n == 0 {
                break;
            }
            digest.update(&buffer[..n]);
            out.write_all(&buffer[..n])
                .map_err(ArchiveError::io(format!("writing {key}")))?;
            read += n as u64;
            done += n as u64;
            // A header that understates the total would let staging fill the disk that
            // the live database shares: the free-space check was made against it.
            if done > declared.total_bytes {
                return Err(ArchiveError::Invalid(format!(
                    "the archive holds more than the {} bytes its header declares",
                    declared.total_bytes
                )));
            }
            on_progress(done)?;
        }
        if read != size {
            return Err(ArchiveError::Invalid(format!(
                "the archive is truncated inside '{shown}' ({read} of {size} bytes)"
            )));
        }
        out.commit()
            .map_err(ArchiveError::io(format!("writing {key}")))?;
        seen.insert(key, (size, hex::encode(digest.finish())));
    }
    let Some(manifest_bytes) = manifest_bytes else {
        return Err(ArchiveError::Invalid(
            "the archive has no MANIFEST.json (truncated, or not a complete KalamDB backup)".into(),
        ));
    };
    let (manifest, signature): (Manifest, _) =
        format::unseal_signed(&manifest_bytes, "MANIFEST.json", key)
            .map_err(ArchiveError::Invalid)?;
    check_against_manifest(&manifest, &declared, &seen)?;
    let has_config = seen.contains_key(format::CONFIG_NAME);
    Ok(CheckedArchive {
        seal: manifest.seal(),
        manifest,
        archive_bytes,
        directories,
        has_config,
        signature,
    })
}

/// Decompresses on its own thread, a few chunks ahead, so inflating overlaps with hashing and
/// writing the previous chunks (restores then run at the speed of the slower of the two).
struct Pipelined {
    chunks: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl Pipelined {
    fn spawn<R: Read + Send + 'static>(mut source: R) -> Pipelined {
        let (sender, chunks) = std::sync::mpsc::sync_channel(4);
        std::thread::spawn(move || {
            loop {
                let mut chunk = vec![0u8; CHUNK];
                let result = match read_full(&mut source, &mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        chunk.truncate(n);
                        Ok(chunk)
                    }
                    Err(e) => Err(e),
                };
                let failed = result.is_err();
                // The reader hung up (it failed or finished early): stop.
                if sender.send(result).is_err() || failed {
                    break;
                }
            }
        });
        Pipelined {
            chunks,
            current: Vec::new(),
            at: 0,
        }
    }
}

/// Reads until `buf` is full or the source ends.
fn read_full(source: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Read for Pipelined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

struct Declared {
    total_bytes: u64,
    file_count: u64,
}

/// The first entry must be our pax global header.
fn read_header<R: Read>(entries: &mut tar::Entries<R>) -> ArchiveResult<Declared> {
    let foreign = |found: &str| {
        ArchiveError::Invalid(format!(
            "not a KalamDB backup: the archive does not start with a KalamDB header ({found})"
        ))
    };
    let mut first = match entries.next() {
        None => return Err(foreign("it holds no entries")),
        Some(Err(e)) => return Err(damaged(e)),
        Some(Ok(entry)) => entry,
    };
    if first.header().entry_type() != tar::EntryType::XGlobalHeader {
        let path = String::from_utf8_lossy(&first.path_bytes()).into_owned();
        return Err(foreign(&format!("its first entry is '{path}'")));
    }
    let body = read_extended_header(&mut first, "pax global", format::MAX_PAX_HEADER_BYTES)?;
    let mut values = std::collections::HashMap::new();
    for record in tar::PaxExtensions::new(&body) {
        let record = record.map_err(|e| foreign(&format!("its header is malformed: {e}")))?;
        if let (Ok(key), Ok(value)) = (record.key(), record.value()) {
            values.insert(key.to_owned(), value.to_owned());
        }
    }
    let number = |key: &str| -> ArchiveResult<u64> {
        values
            .get(key)
            .ok_or_else(|| foreign(&format!("its header has no {key}")))?
            .parse()
            .map_err(|_| foreign(&format!("its header's {key} is not a number")))
    };
    let version = number(format::PAX_FORMAT_VERSION)?;
    if version != format::FORMAT_VERSION {
        return Err(ArchiveError::Invalid(format!(
            "the archive has format version {version}; this KalamDB reads version {}",
            format::FORMAT_VERSION
        )));
    }
    Ok(Declared {
        total_bytes: number(format::PAX_TOTAL_BYTES)?,
        file_count: number(format::PAX_FILE_COUNT)?,
    })
}

/// The next member with its path. GNU long-name and pax headers in front of it are read here,
/// within [`format::MAX_PATH_BYTES`] and [`format::MAX_PAX_HEADER_BYTES`]: a few megabytes of
/// gzip can otherwise declare a header of gigabytes that a reader buffers whole.
fn next_member<'a, R: Read>(
    entries: &mut tar::Entries<'a, R>,
) -> ArchiveResult<Option<(Vec<u8>, tar::Entry<'a, R>)>> {
    let mut extended = false;
    let mut long_path: Option<Vec<u8>> = None;
    loop {
        let Some(entry) = entries.next() else {
            if extended {
                return Err(ArchiveError::Invalid(
                    "the archive ends after an extended header, without the entry it describes"
                        .into(),
                ));
            }
            return Ok(None);
        };
        let mut entry = entry.map_err(damaged)?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longlink() {
            return Err(ArchiveError::Invalid(
                "the archive has a GNU long link name; links are not allowed".into(),
            ));
        }
        if !kind.is_gnu_longname() && !kind.is_pax_local_extensions() {
            let path = long_path.unwrap_or_else(|| entry.path_bytes().into_owned());
            return Ok(Some((path, entry)));
        }
        if extended {
            return Err(ArchiveError::Invalid(
                "two extended headers describe the same entry".into(),
            ));
        }
        extended = true;
        if kind.is_gnu_longname() {
            // The name is NUL-terminated inside the header's data.
            let limit = format::MAX_PATH_BYTES as u64 + 1;
            let mut name = read_extended_header(&mut entry, "GNU long-name", limit)?;
            while name.last() == Some(&0) {
                name.pop();
            }
            long_path = Some(name);
            continue;
        }
        let body = read_extended_header(&mut entry, "pax", format::MAX_PAX_HEADER_BYTES)?;
        for record in tar::PaxExtensions::new(&body) {
            let record = record.map_err(|e| {
                ArchiveError::Invalid(format!("the archive has a malformed pax header: {e}"))
            })?;
            match record.key() {
                Ok("path") => long_path = Some(record.value_bytes().to_vec()),
                // Each would make the entry something the plain header does not say: a
                // different size, a link, a sparse map. KalamDB never writes them.
                Ok(key) if key == "size" || key == "linkpath" || key.starts_with("GNU.sparse") => {
                    return Err(ArchiveError::Invalid(format!(
                        "the archive has a pax '{key}' record, which backups never hold"
                    )));
                }
                _ => {}
            }
        }
    }
}

/// The data of an extended header, refused unread when it declares more than `limit` bytes.
fn read_extended_header<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    what: &str,
    limit: u64,
) -> ArchiveResult<Vec<u8>> {
    let size = entry.size();
    if size > limit {
        return Err(ArchiveError::Invalid(format!(
            "the archive has a {what} header of {size} bytes; at most {limit} are accepted"
        )));
    }
    let mut body = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut body).map_err(damaged)?;
    if body.len() as u64 != size {
        return Err(ArchiveError::Invalid(format!(
            "the archive is truncated inside a {what} header"
        )));
    }
    Ok(body)
}

fn damaged(e: std::io::Error) -> ArchiveError {
    ArchiveError::Invalid(format!("the archive is truncated or damaged: {e}"))
}

fn check_against_manifest(
    manifest: &Manifest,
    declared: &Declared,
    seen: &std::collections::HashMap<String, (u64, String)>,
) -> ArchiveResult<()> {
    let invalid = |m: String| Err(ArchiveError::Invalid(m));
    if manifest.format_version != format::FORMAT_VERSION {
        return invalid(format!(
            "MANIFEST.json has format version {}; this KalamDB reads version {}",
            manifest.format_version,
            format::FORMAT_VERSION
        ));
    }
    let stored = manifest.stored_files().count();
    let listed: u64 = manifest.stored_files().map(|f| f.size).sum();
    if listed != manifest.total_bytes
        || manifest.total_bytes != declared.total_bytes
        || stored as u64 != declared.file_count
    {
        return invalid(format!(
            "the manifest lists {stored} stored files of {listed} bytes (declaring {}), but the archive header declares {} files of {} bytes",
            manifest.total_bytes, declared.file_count, declared.total_bytes
        ));
    }
    if manifest.base.is_none() && stored != manifest.files.len() {
        return invalid(
            "MANIFEST.json names files held by other archives but no base archive".into(),
        );
    }
    let mut listed_paths = std::collections::HashSet::new();
    for file in &manifest.files {
        if !listed_paths.insert(file.path.as_str()) {
            return invalid(format!("MANIFEST.json lists '{}' twice", file.path));
        }
        if file.archive.is_some() {
            if seen.contains_key(&file.path) {
                return invalid(format!(
                    "'{}' is in the archive, but MANIFEST.json says an earlier archive holds it",
                    file.path
                ));
            }
            continue;
        }
        match seen.get(&file.path) {
            None => {
                return invalid(format!(
                    "'{}' is listed in MANIFEST.json but missing from the archive",
                    file.path
                ));
            }
            Some((size, _)) if *size != file.size => {
                return invalid(format!(
                    "'{}' has {size} bytes in the archive but {} in MANIFEST.json",
                    file.path, file.size
                ));
            }
            Some((_, sha)) if *sha != file.sha256 => {
                return invalid(format!(
                    "'{}' does not match its SHA-256 in MANIFEST.json (the file is corrupted)",
                    file.path
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = seen.keys().find(|p| !listed_paths.contains(p.as_str())) {
        return invalid(format!(
            "'{extra}' is in the archive but not listed in MANIFEST.json"
        ));
    }
    Ok(())
}

fn describe(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "a symbolic link",
        tar::EntryType::Link => "a hard link",
        tar::EntryType::Char => "a character device",
        tar::EntryType::Block => "a block device",
        tar::EntryType::Fifo => "a FIFO",
        tar::EntryType::GNUSparse => "a sparse file",
        tar::EntryType::XGlobalHeader => "a second global header",
        _ => "an unsupported entry type",
    }
}
