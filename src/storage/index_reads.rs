//! Reads of indexes: their definitions, the row keys an index holds for a range of values, the
//! rows a build job indexes, and a full check of an index against its table's rows.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;

use super::indexes::{self, IndexRecord, IndexedRow};
use super::keys::{CF_CATALOG, CF_INDEX_ENTRIES, catalog_keys};
use super::{ReadView, StorageError, StorageResult, Store, TableRecord, is_tombstone, rows};

impl Store {
    /// A table's indexes, in name order.
    pub fn indexes_of(&self, table_id: u64) -> StorageResult<Vec<IndexRecord>> {
        self.scan_records(CF_CATALOG, &catalog_keys::indexes_of(table_id))
    }

    pub fn all_indexes(&self) -> StorageResult<Vec<IndexRecord>> {
        self.scan_records(CF_CATALOG, &catalog_keys::indexes())
    }

    /// Calls `emit` with the table's live rows (hot, then flushed), `chunk` at a time, as of
    /// `view`, until it returns false. A flushed copy that is no longer live is read too: the
    /// version check where its entry is added leaves it out.
    pub fn rows_to_index(
        &self,
        view: &ReadView<'_>,
        table: &TableRecord,
        chunk: usize,
        mut emit: impl FnMut(Vec<IndexedRow>) -> StorageResult<bool>,
    ) -> StorageResult<()> {
        let mut pending = Vec::with_capacity(chunk);
        let mut going = true;
        let mut push = |row: IndexedRow, pending: &mut Vec<IndexedRow>| -> StorageResult<bool> {
            pending.push(row);
            if pending.len() >= chunk {
                going = emit(std::mem::take(pending))?;
            }
            Ok(going)
        };
        let mut more = true;
        view.scan_rows(table.table_id, |key, stored| {
            if is_tombstone(stored) {
                return Ok(true);
            }
            let row = IndexedRow {
                key: key.to_vec(),
                version: rows::stored_version(stored)?,
                row: rows::stored_payload(stored).to_vec(),
            };
            more = push(row, &mut pending)?;
            Ok(more)
        })?;
        for segment in view.segments(table.table_id)? {
            if !more {
                break;
            }
            let layout = segment.layout(&table.columns);
            let key_position = layout.key_position;
            super::segments::read_segment(&self.segment_path(&segment), |batch| {
                let keys = batch.column(key_position).as_binary::<i32>();
                let versions = batch.column(key_position + 1).as_primitive::<Int64Type>();
                for i in 0..batch.num_rows() {
                    // A column the file does not hold (added or retyped since) reads as its
                    // missing value; a retyped one's rows are all hot, so the version check
                    // leaves these out.
                    let mut row = Vec::new();
                    rows::encode_file_row(
                        &table.columns,
                        &layout.positions,
                        batch.columns(),
                        i,
                        &mut row,
                    );
                    let read = IndexedRow {
                        key: keys.value(i).to_vec(),
                        version: versions.value(i) as u64,
                        row,
                    };
                    more = push(read, &mut pending)?;
                    if !more {
                        break;
                    }
                }
                Ok(more)
            })?;
        }
        if more && !pending.is_empty() {
            emit(pending)?;
        }
        Ok(())
    }

    /// Checks an index against its table's live rows at one moment: every live row has its
    /// entry, and every entry names a live row whose values it holds.
    pub fn check_index(&self, index: &IndexRecord) -> StorageResult<IndexCheck> {
        let view = self.view();
        let table = self
            .table_by_id(index.table_id)?
            .ok_or_else(|| StorageError::Corrupt {
                cf: CF_CATALOG,
                message: format!("index {} has no table", index.name),
            })?;
        // Entry key to row key, for every live row.
        let mut expected: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut live_rows = 0u64;
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        self.rows_to_index(&view, &table, 4096, |chunk| {
            for read in chunk {
                // Only the live copy of a key: its hot row, else the cold copy the cold
                // index names.
                let live = match view.row(&read.key)? {
                    Some(stored) => {
                        !is_tombstone(&stored) && rows::stored_version(&stored)? == read.version
                    }
                    None => view
                        .cold_entry(&read.key)?
                        .is_some_and(|entry| entry.version == read.version),
                };
                if !live || !seen.insert(read.key.clone()) {
                    continue;
                }
                live_rows += 1;
                let (entry, _) = index.entry_of(&read.row, &read.key)?;
                expected.insert(entry, read.key);
            }
            Ok(true)
        })?;
        let (low, high) = indexes::entry_range(index.index_id);
        let mut check = IndexCheck {
            rows: live_rows,
            ..IndexCheck::default()
        };
        view.scan_range(CF_INDEX_ENTRIES, &low, &high, |entry, row_key| {
            check.entries += 1;
            match expected.remove(entry) {
                Some(expected_row) if expected_row == row_key => {}
                _ => check.dangling += 1,
            }
            Ok(true)
        })?;
        check.missing = expected.len() as u64;
        Ok(check)
    }
}

/// What [`Store::check_index`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexCheck {
    pub entries: u64,
    pub rows: u64,
    /// Live rows without their entry.
    pub missing: u64,
    /// Entries without a live row holding their values.
    pub dangling: u64,
}

impl ReadView<'_> {
    /// The row key a unique index's entry (its id and values, no NULL among them) names.
    pub fn unique_entry_row_key(&self, entry: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        self.get(CF_INDEX_ENTRIES, entry)
    }

    /// The row keys of an index's entries from `low` (inclusive) to `high` (exclusive), in
    /// entry order; `None` when there are more than `limit`.
    pub fn index_row_keys(
        &self,
        low: &[u8],
        high: &[u8],
        limit: usize,
    ) -> StorageResult<Option<Vec<Vec<u8>>>> {
        let mut keys = Vec::new();
        let mut over = false;
        self.scan_range(CF_INDEX_ENTRIES, low, high, |_, row_key| {
            if keys.len() == limit {
                over = true;
                return Ok(false);
            }
            keys.push(row_key.to_vec());
            Ok(true)
        })?;
        Ok((!over).then_some(keys))
    }
}
