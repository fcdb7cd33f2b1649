//! Stream tables' commit logs under `streams/<namespace>/<table>/log-<n>.kal`.
//!
//! A log file is a sequence of records `[u32 length][u32 CRC-32 of payload][payload]`, the
//! payload being the append time (i64 microseconds) and the encoded row. The committed length
//! of every file is kept in RocksDB and changes in the same write batch as the command that
//! appended, so a crash between writing the bytes and committing the batch leaves bytes past
//! the committed length, which are never read and are cut off by the next append. A file is
//! started when the current one is large or spans half the TTL, so eviction can drop whole
//! files once every row in them is past the TTL.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StorageError, StorageResult};

/// Rotate the current file past this size.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
const HEADER: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    pub files: Vec<LogFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFile {
    pub number: u64,
    /// Relative to the data directory's `streams/`.
    pub file: String,
    /// Committed bytes; anything after is not part of the log.
    pub len: u64,
    pub first_appended_at: i64,
    pub last_appended_at: i64,
}

fn corrupt(message: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        cf: "streams",
        message: message.into(),
    }
}

/// Appends `rows` (encoded rows) at `appended_at` to the table's log and returns the new state.
/// The bytes are fsynced when `sync` is set; the caller commits the returned state.
pub fn append(
    root: &Path,
    table_dir: &Path,
    state: &StreamState,
    ttl_micros: i64,
    appended_at: i64,
    rows: &[Vec<u8>],
    sync: bool,
) -> StorageResult<StreamState> {
    let mut state = state.clone();
    let rotate = match state.files.last() {
        None => true,
        Some(last) => {
            last.len >= MAX_FILE_BYTES || appended_at - last.first_appended_at > ttl_micros / 2
        }
    };
    if rotate {
        let number = state.files.last().map_or(1, |f| f.number + 1);
        state.files.push(LogFile {
            number,
            file: table_dir
                .join(format!("log-{number:012}.kal"))
                .to_string_lossy()
                .into_owned(),
            len: 0,
            first_appended_at: appended_at,
            last_appended_at: appended_at,
        });
    }
    let current = state.files.last_mut().expect("a current file");
    let path = root.join(&current.file);
    let dir = path.parent().expect("log files have a directory");
    std::fs::create_dir_all(dir)
        .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
    let io =
        |what: &str, e: std::io::Error| StorageError::io(format!("{what} {}", path.display()), e);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("opening", e))?;
    // Cut off whatever a crashed append left past the committed length.
    file.set_len(current.len).map_err(|e| io("truncating", e))?;
    file.seek(SeekFrom::Start(current.len))
        .map_err(|e| io("seeking", e))?;
    let mut buffer = Vec::new();
    for row in rows {
        let mut payload = Vec::with_capacity(8 + row.len());
        payload.extend_from_slice(&appended_at.to_le_bytes());
        payload.extend_from_slice(row);
        buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buffer.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        buffer.extend_from_slice(&payload);
    }
    file.write_all(&buffer).map_err(|e| io("writing", e))?;
    if sync {
        file.sync_data().map_err(|e| io("syncing", e))?;
        if rotate {
            super::segments::sync_dir(dir)?;
        }
    }
    current.len += buffer.len() as u64;
    current.last_appended_at = appended_at;
    Ok(state)
}

/// Calls `visit(appended_at, row)` for every committed record, oldest first.
pub fn read(
    root: &Path,
    state: &StreamState,
    mut visit: impl FnMut(i64, &[u8]) -> StorageResult<()>,
) -> StorageResult<()> {
    for log in &state.files {
        let path = root.join(&log.file);
        let mut bytes = Vec::with_capacity(log.len as usize);
        File::open(&path)
            .and_then(|f| f.take(log.len).read_to_end(&mut bytes))
            .map_err(|e| StorageError::io(format!("reading {}", path.display()), e))?;
        if (bytes.len() as u64) < log.len {
            return Err(corrupt(format!(
                "{} is shorter than its committed length",
                path.display()
            )));
        }
        let mut at = 0;
        while at < bytes.len() {
            let header = bytes
                .get(at..at + HEADER)
                .ok_or_else(|| corrupt("truncated record header"))?;
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            let payload = bytes
                .get(at + HEADER..at + HEADER + len)
                .ok_or_else(|| corrupt("truncated record"))?;
            if crc32fast::hash(payload) != crc || payload.len() < 8 {
                return Err(corrupt(format!(
                    "checksum mismatch in {} at byte {at}",
                    path.display()
                )));
            }
            let appended_at = i64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
            visit(appended_at, &payload[8..])?;
            at += HEADER + len;
        }
    }
    Ok(())
}

/// Paths of every log file a state references.
pub fn files(root: &Path, state: &StreamState) -> Vec<PathBuf> {
    state.files.iter().map(|f| root.join(&f.file)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_rows_read_back_and_uncommitted_bytes_are_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Path::new("ns/events");
        let hour = 3_600_000_000;
        let state = append(
            tmp.path(),
            dir,
            &StreamState::default(),
            hour,
            10,
            &[vec![1, 2], vec![3]],
            true,
        )
        .unwrap();
        // A crashed append: bytes written, state never committed.
        let _lost = append(tmp.path(), dir, &state, hour, 11, &[vec![9; 100]], true).unwrap();
        let state = append(tmp.path(), dir, &state, hour, 12, &[vec![4]], true).unwrap();
        let mut seen = Vec::new();
        read(tmp.path(), &state, |at, row| {
            seen.push((at, row.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(10, vec![1, 2]), (10, vec![3]), (12, vec![4])]);
    }

    #[test]
    fn a_flipped_byte_is_detected() {
        let tmp = tempfile::tempdir().unwrap();
        let state = append(
            tmp.path(),
            Path::new("t"),
            &StreamState::default(),
            1000,
            1,
            &[vec![7; 10]],
            true,
        )
        .unwrap();
        let path = tmp.path().join(&state.files[0].file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[12] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();
        assert!(read(tmp.path(), &state, |_, _| Ok(())).is_err());
    }
}
