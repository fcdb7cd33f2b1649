//! Row writes inside a command: checking each write's expectation, and the hot rows and
//! cold-index entries it changes.

use rocksdb::WriteBatch;

use super::apply_context::ApplyContext;
use super::command::{Expect, RowWrite};
use super::indexes::{IndexRecord, Visibility, update_entries};
use super::{CF_COLD_INDEX, CF_ROWS, Conflict, StorageError, StorageResult, cf, rows};

/// A hot value that hides a cold row: the key was deleted after it was flushed.
pub(super) const TOMBSTONE: &[u8] = &[0xFF];

/// Where the live cold copy of a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdEntry {
    pub segment_id: u64,
    pub version: u64,
    /// The row's position in the segment file; `None` in entries written before positions
    /// were recorded (the row is then found by its key).
    pub row: Option<u64>,
}

/// The size of a cold-index entry: segment id, version and row position.
pub(super) const COLD_ENTRY_BYTES: usize = 24;

pub(super) fn write_cold_entry(
    entry: &mut [u8; COLD_ENTRY_BYTES],
    segment_id: u64,
    version: u64,
    row: u64,
) {
    entry[..8].copy_from_slice(&segment_id.to_be_bytes());
    entry[8..16].copy_from_slice(&version.to_be_bytes());
    entry[16..].copy_from_slice(&row.to_be_bytes());
}

pub(super) fn decode_cold_entry(value: &[u8]) -> StorageResult<ColdEntry> {
    let word = |at: usize| {
        value
            .get(at..at + 8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_be_bytes)
    };
    match (value.len(), word(0), word(8)) {
        (16, Some(segment_id), Some(version)) => Ok(ColdEntry {
            segment_id,
            version,
            row: None,
        }),
        (24, Some(segment_id), Some(version)) => Ok(ColdEntry {
            segment_id,
            version,
            row: word(16),
        }),
        _ => Err(StorageError::Corrupt {
            cf: CF_COLD_INDEX,
            message: format!("entry is {} bytes, not 16 or 24", value.len()),
        }),
    }
}

pub(super) fn dead_key(segment_id: u64, key: &[u8]) -> Vec<u8> {
    let mut dead = segment_id.to_be_bytes().to_vec();
    dead.extend_from_slice(key);
    dead
}

/// The version of the live row under `key`, hot or cold; `None` when there is none.
pub(super) fn live_version(ctx: &ApplyContext, key: &[u8]) -> StorageResult<Option<u64>> {
    if let Some(stored) = ctx.get(CF_ROWS, key)? {
        return (rows::stored_payload(&stored) != TOMBSTONE)
            .then(|| rows::stored_version(&stored))
            .transpose();
    }
    Ok(ctx
        .get(CF_COLD_INDEX, key)?
        .map(|entry| decode_cold_entry(&entry))
        .transpose()?
        .map(|entry| entry.version))
}

/// Whether a row now at version `current` is the one a statement read at version `read`: the
/// same one, or the same block dropped or retyped a column after the read and this command
/// re-encoded the row from that version.
pub(super) fn read_at(ctx: &ApplyContext, key: &[u8], read: u64, current: u64) -> bool {
    current == read || (current == ctx.seq && ctx.relaid_from.get(key) == Some(&read))
}

/// Fails the command when `write` expects another state of its row than the current one.
fn check_expectation(ctx: &ApplyContext, table_id: u64, write: &RowWrite) -> StorageResult<()> {
    match (write.expect, live_version(ctx, &write.key)?) {
        (Expect::Anything, _) | (Expect::Absent, None) => Ok(()),
        (Expect::Version(v), Some(current)) if read_at(ctx, &write.key, v, current) => Ok(()),
        (Expect::Absent, Some(_)) => Err(Conflict::DuplicateKey {
            table_id,
            key: write.key.clone(),
        }
        .into()),
        (Expect::Version(_), _) => Err(Conflict::RowChanged { table_id }.into()),
    }
}

/// Writes rows, in the key `order` [`ApplyContext::begin_row_writes`] chose, into a range that
/// held nothing when the command started; they are recorded as one sorted run.
pub(super) fn write_new_rows<'a>(
    ctx: &mut ApplyContext<'a>,
    batch: &mut WriteBatch,
    table_id: u64,
    writes: &'a [RowWrite],
    order: Vec<usize>,
    indexes: &[IndexRecord],
) -> StorageResult<()> {
    let rows_cf = cf(ctx.db, CF_ROWS);
    let mut stored = Vec::new();
    for write in order.iter().map(|&i| &writes[i]) {
        check_expectation(ctx, table_id, write)?;
        // begin_row_writes admits only writes that carry a row.
        if let Some(row) = &write.value {
            rows::store_row_into(ctx.seq, row, &mut stored);
            batch.put_cf(rows_cf, &write.key, &stored);
            if !indexes.is_empty() {
                let change = (None, Some(row.as_slice()));
                update_entries(
                    ctx,
                    batch,
                    indexes,
                    &write.key,
                    change,
                    Visibility::UniqueOnly,
                )?;
            }
        }
    }
    ctx.end_row_writes(writes, order);
    Ok(())
}

/// Writes one row and its index entries. Returns the live row it replaced, read when the
/// indexes need it or `old_columns` asks for it (its first columns, as many as both need).
pub(super) fn write_row(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
    write: &RowWrite,
    indexes: &[IndexRecord],
    old_columns: usize,
) -> StorageResult<Option<Vec<u8>>> {
    check_expectation(ctx, table_id, write)?;
    let columns = indexes
        .iter()
        .map(|i| i.layout.len())
        .max()
        .unwrap_or(0)
        .max(old_columns);
    let old = match columns {
        0 => None,
        columns => ctx.live_row(table_id, &write.key, columns)?,
    };
    if !indexes.is_empty() {
        let change = (old.as_deref(), write.value.as_deref());
        update_entries(ctx, batch, indexes, &write.key, change, Visibility::All)?;
    }
    let key = write.key.clone();
    match &write.value {
        Some(value) => {
            let stored = rows::stored_row(ctx.seq, value);
            ctx.put(batch, CF_ROWS, key, stored);
        }
        // A flushed row is hidden by a tombstone until the next flush records it as dead.
        None if ctx.get(CF_COLD_INDEX, &key)?.is_some() => {
            ctx.put(batch, CF_ROWS, key, rows::stored_row(ctx.seq, TOMBSTONE));
        }
        None => ctx.delete(batch, CF_ROWS, key),
    }
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_entries_carry_a_row_position_and_older_ones_read_without_it() {
        let entry = decode_cold_entry(&{
            let mut entry = [0; COLD_ENTRY_BYTES];
            write_cold_entry(&mut entry, 4, 99, 12);
            entry
        })
        .unwrap();
        assert_eq!(
            entry,
            ColdEntry {
                segment_id: 4,
                version: 99,
                row: Some(12)
            }
        );
        let mut legacy = 4u64.to_be_bytes().to_vec();
        legacy.extend_from_slice(&99u64.to_be_bytes());
        assert_eq!(decode_cold_entry(&legacy).unwrap().row, None);
        assert!(decode_cold_entry(&legacy[..12]).is_err());
    }
}
