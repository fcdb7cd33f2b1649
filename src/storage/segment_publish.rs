//! Publishing a flushed segment inside its command: the segment joins the manifest, each
//! flushed row still current gets its cold-index entry (older copies are marked dead) and
//! its hot version is removed, in runs; rows rewritten since the flush read them stay hot.

use rocksdb::WriteBatch;

use super::apply_context::ApplyContext;
use super::flushed_rows::{FlushedRow, FlushedRows};
use super::row_writes::{COLD_ENTRY_BYTES, dead_key, decode_cold_entry, write_cold_entry};
use super::segments::SegmentRecord;
use super::{
    CF_CATALOG, CF_COLD_INDEX, CF_DEAD_KEYS, CF_ROWS, StorageResult, catalog_keys, cf, records,
    rows,
};

pub(super) fn flush_segment(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    segment: &SegmentRecord,
    flushed: &FlushedRows,
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
        .map(|(row, _)| row.key)
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
        .any(|(row, current)| *current && !row.tombstone);
    // The segment holds the flushed rows that are not deletions, in this order.
    let mut position = 0u64;
    let mut hot_deletions = HotDeletions::default();
    let mut entry = [0u8; COLD_ENTRY_BYTES];
    for (i, (row, still_current)) in flushed.iter().zip(current).enumerate() {
        let at = position;
        if !row.tombstone {
            position += 1;
        }
        if !still_current {
            // Rewritten, or flushed by another flush, since this flush read it: the segment's
            // copy is stale or a duplicate, and nothing else changes.
            if !row.tombstone && publish {
                ctx.put(
                    batch,
                    CF_DEAD_KEYS,
                    dead_key(segment.segment_id, row.key),
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
                dead_key(old.segment_id, row.key),
                Vec::new(),
            );
        }
        // Nothing after the publish in its command reads the cold index (a flush is a command
        // of its own), and remembering a million entries was most of the publish's cost.
        if row.tombstone {
            ctx.applied.flushed_deletions += 1;
            ctx.write_unremembered(batch, CF_COLD_INDEX, row.key, None);
        } else {
            write_cold_entry(&mut entry, segment.segment_id, row.version, at);
            ctx.write_unremembered(batch, CF_COLD_INDEX, row.key, Some(&entry));
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
    flushed: &FlushedRows,
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
        let keys: Vec<&[u8]> = flushed.iter().map(|row| row.key).collect();
        for (row, stored) in flushed.iter().zip(ctx.get_many(CF_ROWS, &keys)?) {
            let current = match stored {
                Some(stored) => is_current(&stored, row.version)?,
                None => false,
            };
            state.current.push(current);
            state.written_between.push(true);
        }
        return Ok(state);
    }
    let mut iter = ctx.db.raw_iterator_cf(cf(ctx.db, CF_ROWS));
    if !flushed.is_empty() {
        iter.seek(flushed.key(0));
    }
    for FlushedRow { key, version, .. } in flushed.iter() {
        let mut between = false;
        while iter.key().is_some_and(|stored_key| stored_key < key) {
            between = true;
            iter.next();
        }
        iter.status()?;
        let current = match iter.item() {
            Some((stored_key, stored)) if stored_key == key => {
                let current = is_current(stored, version)?;
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

    fn apply(self, ctx: &mut ApplyContext, batch: &mut WriteBatch, flushed: &FlushedRows) {
        // Ranges first: each range deletion sweeps this command's remembered writes to the
        // column family, which are then still empty.
        let (short, long): (Vec<_>, Vec<_>) = self
            .runs
            .into_iter()
            .partition(|run| run.len() < RANGE_DELETION_MIN_KEYS);
        for run in long {
            let mut end = flushed.key(run.end - 1).to_vec();
            // The last key's immediate successor in byte order: the range ends just past it.
            end.push(0);
            ctx.delete_range(batch, CF_ROWS, flushed.key(run.start).to_vec(), end);
        }
        for row in short.into_iter().flatten() {
            ctx.delete(batch, CF_ROWS, flushed.key(row).to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::command::{Expect, RowWrite};
    use crate::storage::{Command, Durability, Store};

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
                    .map(|key| (key, loaded.seq, false))
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
