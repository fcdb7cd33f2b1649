//! Row writes inside a command: checking each write's expectation, the hot rows and cold-index
//! entries it changes, and publishing a flushed segment over the rows it holds.

use rocksdb::WriteBatch;

use super::apply_context::ApplyContext;
use super::command::{Expect, RowWrite};
use super::indexes::{IndexRecord, Visibility, update_entries};
use super::segments::SegmentRecord;
use super::{
    CF_CATALOG, CF_COLD_INDEX, CF_DEAD_KEYS, CF_ROWS, Conflict, StorageError, StorageResult,
    catalog_keys, cf, records, rows,
};

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

pub(super) fn cold_entry(segment_id: u64, version: u64, row: u64) -> Vec<u8> {
    let mut value = segment_id.to_be_bytes().to_vec();
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(&row.to_be_bytes());
    value
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

fn dead_key(segment_id: u64, key: &[u8]) -> Vec<u8> {
    let mut dead = segment_id.to_be_bytes().to_vec();
    dead.extend_from_slice(key);
    dead
}

pub(super) fn flush_segment(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    segment: &SegmentRecord,
    flushed: &[(Vec<u8>, u64, bool)],
) -> StorageResult<()> {
    // Hot rows are encoded by column place, so the flush decoded them right only if the
    // table still has the columns it read them with: ids are never reused, so a change of
    // columns meanwhile (a drop, a retype, an added column) leaves them different. Then none
    // of the rows is taken as current and the segment is not published. (A dropped table's
    // rows are gone, which the version check below sees.)
    let columns_changed = ctx.table_by_id(segment.table_id)?.is_some_and(|table| {
        !table
            .columns
            .iter()
            .map(|c| c.id)
            .eq(segment.column_ids.iter().copied())
    });
    // Every read comes before the first write.
    let HotState {
        current,
        written_between,
    } = hot_state(ctx, flushed, columns_changed)?;
    let current_keys: Vec<&[u8]> = flushed
        .iter()
        .zip(&current)
        .filter(|(_, current)| **current)
        .map(|((key, _, _), _)| key.as_slice())
        .collect();
    // A first flush of new rows finds no cold entry in its range: one seek instead of a
    // lookup per row.
    let cold_entries = match (current_keys.first(), current_keys.last()) {
        (Some(first), Some(last))
            if ctx.has_own_writes(CF_COLD_INDEX) || ctx.occupied(CF_COLD_INDEX, first, last)? =>
        {
            ctx.get_many(CF_COLD_INDEX, &current_keys)?
        }
        _ => vec![None; current_keys.len()],
    };
    let mut old_entries = cold_entries.into_iter();
    // A segment none of whose rows is still current (its table was truncated or dropped
    // since the flush read it, or every row rewritten), or that holds only deletion markers,
    // is not published: its file is left unreferenced, for the flush job to delete (or the
    // start-up sweep after a crash).
    let publish = flushed
        .iter()
        .zip(&current)
        .any(|((_, _, tombstone), current)| *current && !tombstone);
    // The segment holds the flushed rows that are not deletions, in this order.
    let mut position = 0u64;
    let mut hot_deletions = HotDeletions::default();
    for (i, ((key, version, tombstone), still_current)) in flushed.iter().zip(current).enumerate() {
        let row = position;
        if !tombstone {
            position += 1;
        }
        if !still_current {
            // Rewritten, or flushed by another flush, since this flush read it: the segment's
            // copy is stale or a duplicate, and nothing else changes.
            if !tombstone && publish {
                ctx.put(
                    batch,
                    CF_DEAD_KEYS,
                    dead_key(segment.segment_id, key),
                    Vec::new(),
                );
            }
            continue;
        }
        if let Some(old) = old_entries.next().flatten() {
            let old = decode_cold_entry(&old)?;
            ctx.put(
                batch,
                CF_DEAD_KEYS,
                dead_key(old.segment_id, key),
                Vec::new(),
            );
        }
        if *tombstone {
            ctx.applied.flushed_deletions += 1;
            ctx.delete(batch, CF_COLD_INDEX, key.clone());
        } else {
            ctx.put(
                batch,
                CF_COLD_INDEX,
                key.clone(),
                cold_entry(segment.segment_id, *version, row),
            );
        }
        hot_deletions.add(i, written_between[i]);
    }
    hot_deletions.apply(ctx, batch, flushed);
    if publish {
        ctx.put(
            batch,
            CF_CATALOG,
            catalog_keys::segment(segment.table_id, segment.segment_id),
            records::encode(segment),
        );
    } else {
        ctx.applied.unpublished_segments.push(segment.segment_id);
    }
    Ok(())
}

/// A run of flushed keys shorter than this is deleted key by key: a range deletion costs every
/// later read of the memtable a little, a few point deletions cost nothing but their keys.
const RANGE_DELETION_MIN_KEYS: usize = 32;

/// What the hot rows a flush read look like now.
struct HotState {
    /// Per flushed row: still the version the flush read (and decodable as it decoded it).
    current: Vec<bool>,
    /// Per flushed row: a hot key the flush did not read lies between it and the one before
    /// (a row written since), or that is not known.
    written_between: Vec<bool>,
}

/// Reads the hot rows a flush read (given in key order) in one pass of an iterator over their
/// range, which costs a fraction of a lookup per row.
fn hot_state(
    ctx: &ApplyContext,
    flushed: &[(Vec<u8>, u64, bool)],
    columns_changed: bool,
) -> StorageResult<HotState> {
    let mut state = HotState {
        current: Vec::with_capacity(flushed.len()),
        written_between: Vec::with_capacity(flushed.len()),
    };
    let is_current = |stored: &[u8], version: u64| -> StorageResult<bool> {
        Ok(!columns_changed && rows::stored_version(stored)? == version)
    };
    if ctx.has_own_writes(CF_ROWS) {
        let keys: Vec<&[u8]> = flushed.iter().map(|(key, _, _)| key.as_slice()).collect();
        for ((_, version, _), stored) in flushed.iter().zip(ctx.get_many(CF_ROWS, &keys)?) {
            let current = match stored {
                Some(stored) => is_current(&stored, *version)?,
                None => false,
            };
            state.current.push(current);
            state.written_between.push(true);
        }
        return Ok(state);
    }
    let mut iter = ctx.db.raw_iterator_cf(cf(ctx.db, CF_ROWS));
    if let Some((first, _, _)) = flushed.first() {
        iter.seek(first);
    }
    for (key, version, _) in flushed {
        let mut between = false;
        while iter
            .key()
            .is_some_and(|stored_key| stored_key < key.as_slice())
        {
            between = true;
            iter.next();
        }
        iter.status()?;
        let current = match iter.item() {
            Some((stored_key, stored)) if stored_key == key.as_slice() => {
                let current = is_current(stored, *version)?;
                iter.next();
                current
            }
            _ => false,
        };
        state.current.push(current);
        state.written_between.push(between);
    }
    Ok(state)
}

/// The hot versions a flush published, as runs of flushed rows (by index) with no other hot
/// key between them. Each long run goes as one range deletion: a point deletion per row would
/// leave a marker that every scan of the table steps over until compaction, which made reads
/// during a large flush several times slower than after it.
#[derive(Default)]
struct HotDeletions {
    runs: Vec<std::ops::Range<usize>>,
}

impl HotDeletions {
    fn add(&mut self, row: usize, written_between: bool) {
        match self.runs.last_mut() {
            Some(run) if run.end == row && !written_between => run.end += 1,
            _ => self.runs.push(row..row + 1),
        }
    }

    fn apply(
        self,
        ctx: &mut ApplyContext,
        batch: &mut WriteBatch,
        flushed: &[(Vec<u8>, u64, bool)],
    ) {
        // Ranges first: each range deletion sweeps this command's remembered writes to the
        // column family, which are then still empty.
        let (short, long): (Vec<_>, Vec<_>) = self
            .runs
            .into_iter()
            .partition(|run| run.len() < RANGE_DELETION_MIN_KEYS);
        for run in long {
            let (first, _, _) = &flushed[run.start];
            let (last, _, _) = &flushed[run.end - 1];
            let mut end = last.clone();
            // The last key's immediate successor in byte order: the range ends just past it.
            end.push(0);
            ctx.delete_range(batch, CF_ROWS, first.clone(), end);
        }
        for (key, _, _) in short.into_iter().flat_map(|run| &flushed[run]) {
            ctx.delete(batch, CF_ROWS, key.clone());
        }
    }
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
    use crate::storage::{Command, Durability, Store};

    #[test]
    fn cold_entries_carry_a_row_position_and_older_ones_read_without_it() {
        let entry = decode_cold_entry(&cold_entry(4, 99, 12)).unwrap();
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

    fn hot_write(key: Vec<u8>, value: u8, expect: Expect) -> RowWrite {
        RowWrite {
            key,
            value: Some(vec![1, value]),
            expect,
            moved_to: None,
        }
    }

    #[test]
    fn a_flush_removes_its_hot_rows_in_runs_and_keeps_rows_written_between_them_meanwhile() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(
            tmp.path(),
            Durability {
                sync_writes: false,
                wal_enabled: true,
            },
        )
        .unwrap();
        let odd_keys: Vec<Vec<u8>> = (0..200).map(|i| rows::row_id_key(7, 2 * i + 1)).collect();
        let loaded = store
            .apply(&Command::WriteRows {
                table_id: 7,
                writes: odd_keys
                    .iter()
                    .map(|key| hot_write(key.clone(), 0, Expect::Absent))
                    .collect(),
                row_id_high_water: Some(400),
                layout_generation: 0,
            })
            .unwrap();
        // After the flush read the odd rows: a new row lands between two of them and one of
        // them is rewritten.
        let inserted = rows::row_id_key(7, 100);
        let rewritten = odd_keys[120].clone();
        store
            .apply(&Command::WriteRows {
                table_id: 7,
                writes: vec![
                    hot_write(inserted.clone(), 1, Expect::Absent),
                    hot_write(rewritten.clone(), 2, Expect::Anything),
                ],
                row_id_high_water: None,
                layout_generation: 0,
            })
            .unwrap();
        let segment = SegmentRecord {
            segment_id: 1,
            table_id: 7,
            file: "s1.parquet".into(),
            rows: odd_keys.len() as u64,
            bytes: 0,
            columns: 1,
            created_at: 0,
            column_ids: vec![0],
            column_names: Vec::new(),
        };
        store
            .apply(&Command::FlushSegment {
                segment,
                rows: odd_keys
                    .iter()
                    .map(|key| (key.clone(), loaded.seq, false))
                    .collect(),
            })
            .unwrap();
        let view = store.unpinned_view();
        assert_eq!(
            rows::stored_payload(&view.row(&inserted).unwrap().unwrap()),
            [1, 1]
        );
        assert_eq!(
            rows::stored_payload(&view.row(&rewritten).unwrap().unwrap()),
            [1, 2]
        );
        for key in odd_keys.iter().filter(|key| **key != rewritten) {
            assert!(view.row(key).unwrap().is_none());
            assert!(view.cold_entry(key).unwrap().is_some());
        }
        // Three runs (before the new row, up to the rewritten one, after it), each one range
        // deletion: no point deletion was written for any flushed row.
        let point_deletions = store
            .db
            .property_int_value_cf(
                cf(&store.db, CF_ROWS),
                "rocksdb.num-deletes-active-mem-table",
            )
            .unwrap()
            .unwrap();
        assert_eq!(point_deletions, 0);
    }
}
