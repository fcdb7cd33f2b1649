//! The archive's gzip members. Everything up to MANIFEST.json is a run of members, one per
//! mebibyte of tar stream, each compressed whole on one of the compression threads: by ISA-L's
//! igzip at `[backup] compression_level` 1 and 2, by libdeflate above (see `MemberEncoder` for
//! the measurements behind the split); MANIFEST.json and the tar trailer follow as a last,
//! small member whose header carries a marker (an RFC 1952 extra subfield, `KM`). gzip and tar
//! read all members as one stream, as RFC 1952 allows, while SHOW BACKUP and an incremental
//! backup find the manifest from the end of the file without inflating the data before it.

use super::location::ArchiveLocation;
use super::remote::Upload;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use gzp::check::PassThroughCheck;
use gzp::deflate::Mgzip;
use gzp::par::compress::ParCompress;
use gzp::{Compression, FormatSpec, GzpError, ZWriter};

use super::format;

/// The extra field of the manifest's member: subfield `KM` (KalamDB manifest), two bytes of
/// length, and the layout version of the member.
const MANIFEST_MEMBER_EXTRA: [u8; 5] = [b'K', b'M', 1, 0, 1];
/// The fixed gzip header up to the extra field's length: magic, deflate, FEXTRA set.
const MEMBER_START: [u8; 4] = [0x1f, 0x8b, 0x08, 0x04];
/// The tails read, in turn, when looking for the manifest's member. A manifest whose member is
/// larger (some hundred thousand files) is found by reading the whole archive instead.
const TAILS: [u64; 3] = [64 * 1024, 1024 * 1024, 16 * 1024 * 1024];

pub(super) type Compressor = ParCompress<'static, ArchiveMembers, Output>;

/// The data members' format for gzp's parallel compressor: each block becomes one complete
/// gzip member, so any block can be compressed on any thread and gzip, tar and our readers see
/// one stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct ArchiveMembers;

/// One compression thread's encoder. On a 0.94 GB tar of a KalamDB data directory (LZ4
/// SST and Parquet files; 2026-12-07, one core), igzip's level 1 took 1.8 CPU seconds for 54%
/// of the size and its level 3 2.4 s for 51%, where libdeflate's level 1 took 6.6 s for 51% and
/// GNU gzip's level 1 13.6 s for 54%. Compression is three quarters of a backup's CPU time,
/// so igzip takes levels 1 and 2; libdeflate keeps 3 to 9 for data that rewards its slower
/// searches.
pub(super) enum MemberEncoder {
    Igzip(isal::CompressionLevel),
    Libdeflate(<Mgzip as FormatSpec>::Compressor),
}

impl FormatSpec for ArchiveMembers {
    type C = PassThroughCheck;
    type Compressor = MemberEncoder;

    fn new() -> Self {
        ArchiveMembers
    }

    fn needs_dict(&self) -> bool {
        false
    }

    fn create_compressor(&self, level: Compression) -> Result<MemberEncoder, GzpError> {
        Ok(match level.level() {
            1 => MemberEncoder::Igzip(isal::CompressionLevel::One),
            2 => MemberEncoder::Igzip(isal::CompressionLevel::Three),
            _ => MemberEncoder::Libdeflate(Mgzip::new().create_compressor(level)?),
        })
    }

    fn encode(
        &self,
        input: &[u8],
        encoder: &mut MemberEncoder,
        level: Compression,
        dict: Option<&bytes::Bytes>,
        is_last: bool,
    ) -> Result<Vec<u8>, GzpError> {
        match encoder {
            MemberEncoder::Igzip(igzip_level) => igzip_member(input, *igzip_level),
            MemberEncoder::Libdeflate(compressor) => {
                Mgzip::new().encode(input, compressor, level, dict, is_last)
            }
        }
    }

    fn header(&self, _level: Compression) -> Vec<u8> {
        Vec::new()
    }

    fn footer(&self, _check: &PassThroughCheck) -> Vec<u8> {
        Vec::new()
    }
}

/// `input` as one gzip member. The room covers deflate's stored blocks (five bytes per 64 KiB)
/// and the gzip header and trailer, so data that does not compress still fits.
fn igzip_member(input: &[u8], level: isal::CompressionLevel) -> Result<Vec<u8>, GzpError> {
    let mut member = vec![0u8; input.len() + input.len() / 1024 + 1024];
    let written = isal::compress_into(input, &mut member, level, isal::Codec::Gzip)
        .map_err(|e| GzpError::Io(std::io::Error::other(format!("igzip: {e}"))))?;
    member.truncate(written);
    Ok(member)
}

/// Where the compressed archive goes: a file (published once complete) or a multipart upload
/// (completed once the archive is).
pub(super) enum Output {
    File(BufWriter<File>),
    Upload(Upload),
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::File(file) => file.write(buf),
            Output::Upload(upload) => upload.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::File(file) => file.flush(),
            Output::Upload(upload) => upload.flush(),
        }
    }
}

/// Where tar writes: the parallel compressor for the data, then the manifest's member. A
/// failed or cancelled backup stops the compressor without the panic gzp's drop would raise on
/// a broken writer.
pub(super) enum Members {
    Data(Compressor),
    Manifest(Box<flate2::write::GzEncoder<Output>>),
    Closed,
}

impl Members {
    /// Ends the data member and starts the manifest's.
    pub(super) fn start_manifest_member(&mut self, level: u32) -> std::io::Result<()> {
        let Members::Data(mut compressor) = std::mem::replace(self, Members::Closed) else {
            return Err(std::io::Error::other("the data member is already closed"));
        };
        let output = compressor.finish().map_err(std::io::Error::other)?;
        *self = Members::Manifest(Box::new(
            flate2::GzBuilder::new()
                .extra(MANIFEST_MEMBER_EXTRA.to_vec())
                .write(output, flate2::Compression::new(level)),
        ));
        Ok(())
    }

    /// Ends the last member and returns where the archive went, flushed.
    pub(super) fn finish(&mut self) -> std::io::Result<Output> {
        match std::mem::replace(self, Members::Closed) {
            Members::Manifest(encoder) => {
                let mut output = encoder.finish()?;
                output.flush()?;
                Ok(output)
            }
            _ => Err(std::io::Error::other(
                "the archive has no manifest member to finish",
            )),
        }
    }

    /// Stops whatever is open after a failure, discarding its output.
    pub(super) fn abort(&mut self) {
        if let Members::Data(mut compressor) = std::mem::replace(self, Members::Closed) {
            let _ = compressor.finish();
        }
    }
}

impl Write for Members {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Members::Data(c) => c.write(buf),
            Members::Manifest(e) => e.write(buf),
            Members::Closed => Err(std::io::Error::other("the archive was abandoned")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Members::Data(c) => c.flush(),
            Members::Manifest(e) => e.flush(),
            Members::Closed => Ok(()),
        }
    }
}

/// The sealed MANIFEST.json bytes of the archive at `path`, read from its manifest member at
/// the end of the file; `None` when it has none (an archive written before the member existed,
/// or not ours). Nothing before the member is read, so nothing there is checked.
pub fn read_manifest_member(location: &ArchiveLocation) -> std::io::Result<Option<Vec<u8>>> {
    match location {
        ArchiveLocation::Local(path) => {
            let mut file = File::open(path)?;
            let len = file.metadata()?.len();
            find_manifest_member(len, |start| {
                let mut tail = Vec::with_capacity((len - start) as usize);
                file.seek(SeekFrom::Start(start))?;
                (&mut file).take(len - start).read_to_end(&mut tail)?;
                Ok(tail)
            })
        }
        // Ranged GETs of the object's end, as a file's end is read.
        ArchiveLocation::Remote(object) => {
            let len = object.size()?;
            find_manifest_member(len, |start| object.range(start, len))
        }
    }
}

/// Looks for the manifest's member in the last bytes of an archive of `len` bytes;
/// `read_tail(start)` returns the bytes from `start` to the end.
fn find_manifest_member(
    len: u64,
    mut read_tail: impl FnMut(u64) -> std::io::Result<Vec<u8>>,
) -> std::io::Result<Option<Vec<u8>>> {
    if len == 0 {
        return Ok(None);
    }
    for window in TAILS {
        let start = len.saturating_sub(window);
        let tail = read_tail(start)?;
        // The last candidate first: a marker-like byte run inside compressed data before the
        // real member does not decode to a whole member ending at the end of the file.
        // Magic, method and flags; time, extra flags and OS; then the extra field's length.
        let header = MEMBER_START.len() + 6 + 2;
        let candidates = tail
            .windows(header + MANIFEST_MEMBER_EXTRA.len())
            .enumerate()
            .filter(|(_, w)| {
                w.starts_with(&MEMBER_START)
                    && w[header - 2..header] == (MANIFEST_MEMBER_EXTRA.len() as u16).to_le_bytes()
                    && w[header..] == MANIFEST_MEMBER_EXTRA
            })
            .map(|(at, _)| at)
            .collect::<Vec<_>>();
        for at in candidates.into_iter().rev() {
            if let Some(manifest) = decode_manifest_member(&tail[at..]) {
                return Ok(Some(manifest));
            }
        }
        if start == 0 {
            break;
        }
    }
    Ok(None)
}

/// The manifest inside `member` when it is exactly one gzip member with our marker, holding
/// MANIFEST.json and the tar trailer, and nothing follows it.
fn decode_manifest_member(member: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = flate2::bufread::GzDecoder::new(member);
    let mut tar_bytes = Vec::new();
    (&mut decoder)
        .take(format::MAX_MANIFEST_BYTES + 4096)
        .read_to_end(&mut tar_bytes)
        .ok()?;
    if decoder.header()?.extra() != Some(&MANIFEST_MEMBER_EXTRA[..])
        || !decoder.into_inner().is_empty()
    {
        return None;
    }
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut entries = archive.entries().ok()?;
    let mut entry = entries.next()?.ok()?;
    if entry.path_bytes().as_ref() != format::MANIFEST_NAME.as_bytes()
        || entry.header().entry_type() != tar::EntryType::Regular
    {
        return None;
    }
    let mut manifest = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut manifest).ok()?;
    drop(entry);
    entries.next().is_none().then_some(manifest)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use gzp::par::compress::ParCompressBuilder;

    fn local(path: &Path) -> ArchiveLocation {
        ArchiveLocation::from(path)
    }

    fn append(tar: &mut tar::Builder<Members>, path: &str, data: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, data).unwrap();
    }

    /// An archive of one data file and the manifest, written as a backup writes it at
    /// compression `level`.
    fn write_archive_at(path: &Path, manifest: &[u8], level: u32, data: &[u8]) {
        let file = File::create(path).unwrap();
        let compressor = ParCompressBuilder::<ArchiveMembers>::new()
            .compression_level(Compression::new(level))
            .num_threads(1)
            .unwrap()
            .buffer_size(super::super::writer::COMPRESS_BLOCK)
            .unwrap()
            .from_writer(Output::File(BufWriter::new(file)));
        let mut tar = tar::Builder::new(Members::Data(compressor));
        append(&mut tar, "data/storage/x.parquet", data);
        tar.get_mut().start_manifest_member(level).unwrap();
        append(&mut tar, format::MANIFEST_NAME, manifest);
        tar.finish().unwrap();
        tar.get_mut().finish().unwrap();
    }

    /// 1.2 MB of rows of text, which every level shortens to well under half.
    fn patterned_data() -> Vec<u8> {
        let mut rows = String::new();
        let mut i = 0u32;
        while rows.len() < 1_200_000 {
            rows.push_str(&format!("{i}|customer {}|{}.25\n", i % 977, i % 31));
            i += 1;
        }
        rows.into_bytes()
    }

    fn write_archive(path: &Path, manifest: &[u8]) {
        write_archive_at(path, manifest, 1, &patterned_data());
    }

    /// Each gzip member of the file at `path`: its inflated length and whether it carries the
    /// manifest's marker.
    fn members_of(path: &Path) -> Vec<(usize, bool)> {
        let bytes = std::fs::read(path).unwrap();
        let mut rest = bytes.as_slice();
        let mut members = Vec::new();
        while !rest.is_empty() {
            let mut decoder = flate2::bufread::GzDecoder::new(rest);
            let mut inflated = Vec::new();
            decoder.read_to_end(&mut inflated).unwrap();
            let marked = decoder.header().unwrap().extra() == Some(&MANIFEST_MEMBER_EXTRA[..]);
            members.push((inflated.len(), marked));
            rest = decoder.into_inner();
        }
        members
    }

    #[test]
    fn the_manifest_member_is_found_from_the_end_and_all_members_read_as_one_tar() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        write_archive(&path, b"{\"sealed\": true}\n");
        assert_eq!(
            read_manifest_member(&local(&path)).unwrap().as_deref(),
            Some(&b"{\"sealed\": true}\n"[..])
        );
        let stream = flate2::read::MultiGzDecoder::new(File::open(&path).unwrap());
        let names: Vec<String> = tar::Archive::new(stream)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["data/storage/x.parquet", format::MANIFEST_NAME]);
    }

    #[test]
    fn each_block_of_data_is_a_gzip_member_of_its_own_and_the_manifest_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        write_archive(&path, b"{}");
        let members = members_of(&path);
        // 1.2 MB of file data and its tar header: one full block and the rest, then the manifest.
        let blocks: Vec<_> = members.iter().map(|(len, _)| *len).collect();
        assert_eq!(members.len(), 3, "{blocks:?}");
        assert_eq!(members[0], (super::super::writer::COMPRESS_BLOCK, false));
        assert!(!members[1].1 && members[2].1, "{members:?}");
    }

    #[test]
    fn every_level_and_data_that_does_not_compress_read_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        // xorshift bytes: no encoder finds anything to shorten, so igzip must fall back to
        // stored blocks within the member's room.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..1_500_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for (level, data) in [
            (1, patterned_data()),
            (2, patterned_data()),
            (6, patterned_data()),
            (1, noise.clone()),
            (9, noise.clone()),
        ] {
            let path = dir.path().join(format!("{level}-{}.tar.gz", data.len()));
            write_archive_at(&path, b"{}", level, &data);
            let members = members_of(&path);
            assert_eq!(members.len(), 3, "level {level}: {members:?}");
            assert!(members[2].1, "level {level}: {members:?}");
            let stream = flate2::read::MultiGzDecoder::new(File::open(&path).unwrap());
            let mut archive = tar::Archive::new(stream);
            let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
            let mut read = Vec::new();
            entry.read_to_end(&mut read).unwrap();
            assert!(read == data, "level {level}: the data file differs");
            let size = std::fs::metadata(&path).unwrap().len() as usize;
            if data == noise {
                assert!(
                    size < data.len() + data.len() / 100,
                    "level {level}: {size}"
                );
            } else {
                assert!(size < data.len() / 2, "level {level}: {size}");
            }
        }
    }

    #[test]
    fn a_damaged_or_followed_member_and_a_single_member_archive_have_no_manifest_member() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        write_archive(&path, b"{}");
        let bytes = std::fs::read(&path).unwrap();

        let followed = dir.path().join("followed.tar.gz");
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"trailing");
        std::fs::write(&followed, &longer).unwrap();
        assert_eq!(read_manifest_member(&local(&followed)).unwrap(), None);

        let damaged = dir.path().join("damaged.tar.gz");
        let mut flipped = bytes.clone();
        let last = flipped.len() - 6;
        flipped[last] ^= 0x40;
        std::fs::write(&damaged, &flipped).unwrap();
        assert_eq!(read_manifest_member(&local(&damaged)).unwrap(), None);

        let single = dir.path().join("single.tar.gz");
        let mut encoder = flate2::write::GzEncoder::new(
            File::create(&single).unwrap(),
            flate2::Compression::fast(),
        );
        encoder.write_all(&bytes).unwrap();
        encoder.finish().unwrap();
        assert_eq!(read_manifest_member(&local(&single)).unwrap(), None);
    }
}
