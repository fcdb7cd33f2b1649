//! What one command sees while it is turned into a write batch: the database as of the
//! command's start plus the command's own earlier writes, so that later parts of a batch (a
//! transaction's statements) see earlier ones.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rocksdb::{DB, WriteBatch};

use super::command::{Applied, RowWrite};
use super::records::{self, TableRecord};
use super::referential::Check;
use super::rows;
use super::{
    CF_CATALOG, CF_COLD_INDEX, CF_META, CF_ROWS, StorageError, StorageResult, catalog_keys, cf,
    keys::CF_INDEX_ENTRIES,
};

/// A command's own writes to one column family. Keyed by a fast non-cryptographic hash: a
/// flush remembers millions of keys, and SipHash was a sixth of its time; the keys are the
/// command's own, so no client picks them to collide.
pub(super) type PendingKeys = HashMap<Vec<u8>, Option<Vec<u8>>, foldhash::fast::RandomState>;

/// Below this many rows a write reads each key; the range check costs two seeks.
const UNOCCUPIED_RANGE_MIN_WRITES: usize = 64;

/// State visible while one command is being turned into a write batch: the database plus the
/// command's own earlier writes, so that later parts of a batch see earlier ones.
pub(super) struct ApplyContext<'a> {
    pub db: &'a DB,
    pub seq: u64,
    pub streams_root: &'a std::path::Path,
    pub sync: bool,
    /// Per column family, the keys this command wrote so far (`None`: deleted).
    pending: HashMap<&'static str, PendingKeys>,
    /// The index entries this command wrote so far, ordered, so that a foreign key finds the
    /// rows referring to a value with a range read that sees them.
    pending_entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Foreign-key checks of deferrable constraints, made when the whole command is applied
    /// (a transaction block's end).
    pub deferred_checks: Vec<Check>,
    /// `SET CONSTRAINTS` so far: ALL (deferred or not), then named constraints' own settings.
    timing_all: Option<bool>,
    timing_named: HashMap<String, bool>,
    /// Large writes into key ranges that held nothing, found by binary search, so that a bulk
    /// load does not hash and copy every row into `pending`. Later runs and `pending` shadow
    /// earlier runs.
    row_runs: Vec<RowRun<'a>>,
    /// A key range in which the database held no row and no cold-index entry when the
    /// command started, so lookups of those keys need not read the database.
    unoccupied: Option<(Vec<u8>, Vec<u8>)>,
    /// Key ranges this command deleted whole (a truncated or dropped table's rows), with how
    /// many row runs existed then: earlier writes in the range read as deleted, later ones
    /// as written.
    deleted_ranges: Vec<DeletedRange>,
    pub applied: Applied,
    /// Column families this command wrote without remembering the writes.
    unremembered: Vec<&'static str>,
    /// Where flushed rows are read from, when a command must see a row's flushed copy (to
    /// remove that row's index entries).
    segment_files: Option<SegmentFiles<'a>>,
    /// Table definitions found by id to read flushed rows with; forgotten whenever the
    /// command writes the catalog.
    definitions: RefCell<HashMap<u64, Arc<TableRecord>>>,
    /// Evaluates CHECK constraints over rows a cascade rewrote (`None`: none installed).
    pub check_evaluator: Option<&'a dyn super::CheckEvaluator>,
    /// Rows this command re-encoded for a dropped or retyped column, with the version each
    /// had before: a later write of the same block read them at that version.
    pub relaid_from: HashMap<Vec<u8>, u64>,
    /// Set while a block's DDL is previewed for its catalog alone, without the block's row
    /// writes: checks of rows against those writes wait for the block's COMMIT.
    pub catalog_preview: bool,
    /// Tables' write shapes kept between commands (`None`: read the catalog each time).
    pub write_shapes: Option<&'a super::write_shapes::WriteShapes>,
    /// Whether this command has written the catalog so far.
    wrote_catalog: bool,
}

/// The storage directory and the footer cache, for reading one flushed row.
#[derive(Clone, Copy)]
pub(super) struct SegmentFiles<'a> {
    pub storage_root: &'a std::path::Path,
    pub footers: &'a super::segment_cache::SegmentCache,
}

struct DeletedRange {
    cf_name: &'static str,
    start: Vec<u8>,
    end: Vec<u8>,
    runs_before: usize,
}

/// The rows of one large write, borrowed from its command, and their order by key.
struct RowRun<'a> {
    writes: &'a [RowWrite],
    order: Vec<usize>,
}

impl<'a> ApplyContext<'a> {
    pub fn new(db: &'a DB, seq: u64, streams_root: &'a std::path::Path, sync: bool) -> Self {
        ApplyContext {
            db,
            seq,
            streams_root,
            sync,
            pending: HashMap::new(),
            pending_entries: BTreeMap::new(),
            deferred_checks: Vec::new(),
            timing_all: None,
            timing_named: HashMap::new(),
            row_runs: Vec::new(),
            unoccupied: None,
            deleted_ranges: Vec::new(),
            applied: Applied {
                seq,
                ..Applied::default()
            },
            unremembered: Vec::new(),
            segment_files: None,
            definitions: RefCell::default(),
            check_evaluator: None,
            catalog_preview: false,
            relaid_from: HashMap::new(),
            write_shapes: None,
            wrote_catalog: false,
        }
    }

    pub fn with_segment_files(mut self, files: SegmentFiles<'a>) -> Self {
        self.segment_files = Some(files);
        self
    }

    /// Applies `SET CONSTRAINTS names|ALL DEFERRED|IMMEDIATE` to what follows in the command.
    pub(super) fn set_constraint_timing(&mut self, names: Option<&[String]>, deferred: bool) {
        match names {
            None => {
                self.timing_all = Some(deferred);
                self.timing_named.clear();
            }
            Some(names) => {
                for name in names {
                    self.timing_named.insert(name.clone(), deferred);
                }
            }
        }
    }

    /// Whether a foreign key's checks wait for the end of the command.
    pub(super) fn defers(&self, fk: &super::ForeignKeyRecord) -> bool {
        if !fk.deferrable {
            return false;
        }
        match (self.timing_named.get(&fk.name), self.timing_all) {
            (Some(deferred), _) => *deferred,
            (None, Some(deferred)) => deferred,
            (None, None) => fk.initially_deferred,
        }
    }

    /// Whether the table has any row, hot or flushed, committed or written by this command.
    pub(super) fn has_rows(&self, table_id: u64) -> StorageResult<bool> {
        let prefix = rows::table_prefix(table_id);
        let high = rows::table_prefix(table_id + 1);
        if self.pending.get(CF_ROWS).is_some_and(|keys| {
            keys.iter()
                .any(|(k, v)| v.is_some() && k.starts_with(&prefix))
        }) || self
            .row_runs
            .iter()
            .any(|run| run.writes.iter().any(|w| w.key.starts_with(&prefix)))
        {
            return Ok(true);
        }
        let segments = catalog_keys::segments_of(table_id);
        let mut iter = self.db.raw_iterator_cf(cf(self.db, CF_CATALOG));
        iter.seek(&segments);
        if iter.key().is_some_and(|k| k.starts_with(&segments)) {
            return Ok(true);
        }
        self.occupied(CF_ROWS, &prefix, &high)
    }

    /// Every hot row of a table (key and stored value, tombstones included) as this command
    /// sees it: the database's, then this command's own writes over them.
    pub(super) fn hot_rows(&self, table_id: u64) -> StorageResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let prefix = rows::table_prefix(table_id);
        let mut keys = std::collections::BTreeSet::new();
        let mut iter = self.db.raw_iterator_cf(cf(self.db, CF_ROWS));
        iter.seek(prefix);
        while let Some(key) = iter.key() {
            if !key.starts_with(&prefix) {
                break;
            }
            keys.insert(key.to_vec());
            iter.next();
        }
        iter.status()?;
        let pending = self
            .pending
            .get(CF_ROWS)
            .into_iter()
            .flatten()
            .map(|(k, _)| k);
        let runs = self
            .row_runs
            .iter()
            .flat_map(|r| r.writes.iter().map(|w| &w.key));
        keys.extend(
            pending
                .chain(runs)
                .filter(|k| k.starts_with(&prefix))
                .cloned(),
        );
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(stored) = self.get(CF_ROWS, &key)? {
                found.push((key, stored));
            }
        }
        Ok(found)
    }

    /// The live row under `key` (encoded, without its version), hot or flushed; a flushed row
    /// is read from its segment and gives its first `columns` columns at most.
    pub(super) fn live_row(
        &self,
        table_id: u64,
        key: &[u8],
        columns: usize,
    ) -> StorageResult<Option<Vec<u8>>> {
        if let Some(stored) = self.get(CF_ROWS, key)? {
            let payload = rows::stored_payload(&stored);
            return Ok((payload != super::row_writes::TOMBSTONE).then(|| payload.to_vec()));
        }
        let Some(entry) = self.get(CF_COLD_INDEX, key)? else {
            return Ok(None);
        };
        let entry = super::row_writes::decode_cold_entry(&entry)?;
        let corrupt = |message: String| super::StorageError::Corrupt {
            cf: CF_COLD_INDEX,
            message,
        };
        let (Some(files), Some(position)) = (self.segment_files, entry.row) else {
            return Err(corrupt(format!(
                "the flushed row of table {table_id} has no recorded position; FLUSH the table again"
            )));
        };
        let segment: super::SegmentRecord = self
            .record(&catalog_keys::segment(table_id, entry.segment_id))?
            .ok_or_else(|| corrupt(format!("segment {} is not published", entry.segment_id)))?;
        let table = self.definition(table_id)?.ok_or_else(|| {
            corrupt(format!(
                "table {table_id} has flushed rows but no definition"
            ))
        })?;
        let columns = &table.columns[..columns.min(table.columns.len())];
        let layout = segment.layout(columns);
        let mut read: Vec<usize> = layout.positions.iter().flatten().copied().collect();
        read.sort_unstable();
        let batch = super::segments::read_segment_row(
            &files.storage_root.join(&segment.file),
            files.footers,
            segment.segment_id,
            position,
            &read,
        )?;
        // The batch holds the read columns in file order.
        let positions: Vec<Option<usize>> = layout
            .positions
            .iter()
            .map(|p| p.map(|p| read.binary_search(&p).expect("every held column is read")))
            .collect();
        let mut row = Vec::new();
        rows::encode_file_row(columns, &positions, batch.columns(), 0, &mut row);
        Ok(Some(row))
    }

    pub(super) fn get(&self, cf_name: &'static str, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        self.check_remembered(cf_name)?;
        let pending = if cf_name == CF_INDEX_ENTRIES {
            self.pending_entries.get(key)
        } else {
            self.pending.get(cf_name).and_then(|keys| keys.get(key))
        };
        if let Some(value) = pending {
            return Ok(value.clone());
        }
        // Row runs written after the last range deletion covering `key` are newer than it.
        let deleted_after = self
            .deleted_ranges
            .iter()
            .filter(|d| d.cf_name == cf_name && d.start.as_slice() <= key && key < d.end.as_slice())
            .map(|d| d.runs_before)
            .max();
        if cf_name == CF_ROWS {
            let newer = deleted_after.unwrap_or(0);
            for run in self.row_runs[newer..].iter().rev() {
                let key_at = |i: &usize| run.writes[*i].key.as_slice().cmp(key);
                if let Ok(at) = run.order.binary_search_by(key_at) {
                    let row = run.writes[run.order[at]].value.as_deref();
                    return Ok(row.map(|row| rows::stored_row(self.seq, row)));
                }
            }
        }
        if deleted_after.is_some() {
            return Ok(None);
        }
        if (cf_name == CF_ROWS || cf_name == CF_COLD_INDEX)
            && let Some((low, high)) = &self.unoccupied
            && (low.as_slice()..=high.as_slice()).contains(&key)
        {
            return Ok(None);
        }
        Ok(self.db.get_cf(cf(self.db, cf_name), key)?)
    }

    /// What this command wrote to `cf_name` so far (a dry run's result).
    pub(super) fn take_pending(&mut self, cf_name: &'static str) -> PendingKeys {
        self.pending.remove(cf_name).unwrap_or_default()
    }

    /// Whether a read of `cf_name` must look at what this command wrote before the database.
    pub(super) fn has_own_writes(&self, cf_name: &'static str) -> bool {
        self.pending
            .get(cf_name)
            .is_some_and(|keys| !keys.is_empty())
            || (cf_name == CF_INDEX_ENTRIES && !self.pending_entries.is_empty())
            || (cf_name == CF_ROWS && !self.row_runs.is_empty())
            || self.deleted_ranges.iter().any(|d| d.cf_name == cf_name)
            || self.unoccupied.is_some()
            || self.unremembered.contains(&cf_name)
    }

    /// `get` of each of `keys` (sorted), in one batched read when nothing this command did
    /// can answer for `cf_name`.
    pub(super) fn get_many(
        &self,
        cf_name: &'static str,
        keys: &[&[u8]],
    ) -> StorageResult<Vec<Option<Vec<u8>>>> {
        if self.has_own_writes(cf_name) {
            return keys.iter().map(|key| self.get(cf_name, key)).collect();
        }
        let sorted = keys.is_sorted();
        self.db
            .batched_multi_get_cf(cf(self.db, cf_name), keys, sorted)
            .into_iter()
            .map(|value| Ok(value?.map(|v| v.to_vec())))
            .collect()
    }

    pub(super) fn put(
        &mut self,
        batch: &mut WriteBatch,
        cf_name: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    ) {
        batch.put_cf(cf(self.db, cf_name), &key, &value);
        self.remember(cf_name, key, Some(value));
    }

    pub(super) fn delete(&mut self, batch: &mut WriteBatch, cf_name: &'static str, key: Vec<u8>) {
        batch.delete_cf(cf(self.db, cf_name), &key);
        self.remember(cf_name, key, None);
    }

    /// Writes (`Some`) or deletes an entry that nothing later in this command reads, without
    /// remembering it: hashing and copying a million cold-index keys cost a flush's publish
    /// more than all the rest of it did. A read of the family later in the same command fails
    /// instead of answering from the database without this write.
    pub(super) fn write_unremembered(
        &mut self,
        batch: &mut WriteBatch,
        cf_name: &'static str,
        key: &[u8],
        value: Option<&[u8]>,
    ) {
        match value {
            Some(value) => batch.put_cf(cf(self.db, cf_name), key, value),
            None => batch.delete_cf(cf(self.db, cf_name), key),
        }
        self.wrote_catalog |= cf_name == CF_CATALOG;
        if !self.unremembered.contains(&cf_name) {
            self.unremembered.push(cf_name);
        }
    }

    fn check_remembered(&self, cf_name: &'static str) -> StorageResult<()> {
        if self.unremembered.contains(&cf_name) {
            return Err(StorageError::ReadAfterUnrememberedWrite(cf_name));
        }
        Ok(())
    }

    /// Whether this command has written (or deleted) any catalog record so far.
    pub(super) fn wrote_catalog(&self) -> bool {
        self.wrote_catalog
    }

    fn remember(&mut self, cf_name: &'static str, key: Vec<u8>, value: Option<Vec<u8>>) {
        if cf_name == CF_CATALOG {
            self.definitions.get_mut().clear();
            self.wrote_catalog = true;
        }
        if cf_name == CF_INDEX_ENTRIES {
            self.pending_entries.insert(key, value);
        } else {
            self.pending.entry(cf_name).or_default().insert(key, value);
        }
    }

    /// The index entries under `prefix` and their values (row keys), this command's writes
    /// included, at most `limit` of them, in no particular order.
    pub(super) fn index_entries(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> StorageResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let cf_name = CF_INDEX_ENTRIES;
        let pending = &self.pending_entries;
        let mut found: Vec<(Vec<u8>, Vec<u8>)> = pending
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, value)| Some((key.clone(), value.clone()?)))
            .take(limit)
            .collect();
        let hidden = |key: &[u8]| {
            pending.contains_key(key)
                || self.deleted_ranges.iter().any(|d| {
                    d.cf_name == cf_name && d.start.as_slice() <= key && key < d.end.as_slice()
                })
        };
        let mut iter = self.db.raw_iterator_cf(cf(self.db, cf_name));
        iter.seek(prefix);
        while found.len() < limit {
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else {
                iter.status()?;
                break;
            };
            if !key.starts_with(prefix) {
                break;
            }
            if !hidden(key) {
                found.push((key.to_vec(), value.to_vec()));
            }
            iter.next();
        }
        Ok(found)
    }

    /// Deletes every key of `cf_name` from `start` (inclusive) to `end` (exclusive), including
    /// the ones this command wrote before.
    pub(super) fn delete_range(
        &mut self,
        batch: &mut WriteBatch,
        cf_name: &'static str,
        start: Vec<u8>,
        end: Vec<u8>,
    ) {
        batch.delete_range_cf(cf(self.db, cf_name), &start, &end);
        self.wrote_catalog |= cf_name == CF_CATALOG;
        if let Some(pending) = self.pending.get_mut(cf_name) {
            pending.retain(|key, _| !(start.as_slice() <= key.as_slice() && key < &end));
        }
        if cf_name == CF_INDEX_ENTRIES {
            self.pending_entries
                .retain(|key, _| !(start.as_slice() <= key.as_slice() && key < &end));
        }
        self.deleted_ranges.push(DeletedRange {
            cf_name,
            start,
            end,
            runs_before: self.row_runs.len(),
        });
    }

    /// Whether the database holds any key of `cf_name` between `low` and `high` inclusive.
    pub(super) fn occupied(
        &self,
        cf_name: &'static str,
        low: &[u8],
        high: &[u8],
    ) -> StorageResult<bool> {
        self.check_remembered(cf_name)?;
        let mut iter = self.db.raw_iterator_cf(cf(self.db, cf_name));
        iter.seek(low);
        match iter.key() {
            Some(key) => Ok(key <= high),
            None => {
                iter.status()?;
                Ok(false)
            }
        }
    }

    /// Decides how `writes` are applied. A large write of new rows whose keys are distinct and
    /// fall in a range holding no row and no cold-index entry gets the order (by key) to write
    /// them in, and until [`Self::end_row_writes`] lookups in that range skip the database:
    /// two seeks instead of two reads per row. `None`: write row by row.
    pub(super) fn begin_row_writes(
        &mut self,
        writes: &[RowWrite],
    ) -> StorageResult<Option<Vec<usize>>> {
        self.unoccupied = None;
        if writes.len() < UNOCCUPIED_RANGE_MIN_WRITES || writes.iter().any(|w| w.value.is_none()) {
            return Ok(None);
        }
        let key = |i: usize| writes[i].key.as_slice();
        let mut order: Vec<usize> = (0..writes.len()).collect();
        if !writes.windows(2).all(|pair| pair[0].key < pair[1].key) {
            // A stable sort merges the sorted stretches a parallel plan's batches arrive in.
            order.sort_by(|&a, &b| key(a).cmp(key(b)));
            if order.windows(2).any(|pair| key(pair[0]) == key(pair[1])) {
                return Ok(None);
            }
        }
        let (low, high) = (key(order[0]), key(order[order.len() - 1]));
        if self.occupied(CF_ROWS, low, high)? || self.occupied(CF_COLD_INDEX, low, high)? {
            return Ok(None);
        }
        self.unoccupied = Some((low.to_vec(), high.to_vec()));
        Ok(Some(order))
    }

    /// Ends a write [`Self::begin_row_writes`] ordered: its rows are what later parts of the
    /// command see for those keys.
    pub(super) fn end_row_writes(&mut self, writes: &'a [RowWrite], order: Vec<usize>) {
        self.unoccupied = None;
        if let Some(pending) = self
            .pending
            .get_mut(CF_ROWS)
            .filter(|rows| !rows.is_empty())
        {
            for write in writes {
                pending.remove(&write.key);
            }
        }
        self.row_runs.push(RowRun { writes, order });
    }

    pub(super) fn counter(&self, name: &[u8]) -> StorageResult<u64> {
        self.get(CF_META, name)?
            .map(|bytes| super::decode_u64(CF_META, &bytes))
            .transpose()
            .map(|v| v.unwrap_or(0))
    }

    pub(super) fn next_counter(
        &mut self,
        batch: &mut WriteBatch,
        name: Vec<u8>,
    ) -> StorageResult<u64> {
        let next = self.counter(&name)? + 1;
        self.put(batch, CF_META, name, next.to_be_bytes().to_vec());
        Ok(next)
    }

    /// A new id from the counter tables, indexes, sequences, views and constraints share.
    pub(super) fn next_relation_id(&mut self, batch: &mut WriteBatch) -> StorageResult<u64> {
        self.next_counter(batch, b"next_table_id".to_vec())
    }

    /// The catalog record under `key`, this command's own changes included.
    pub(super) fn record<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> StorageResult<Option<T>> {
        self.get(CF_CATALOG, key)?
            .map(|b| records::decode(CF_CATALOG, &b))
            .transpose()
    }

    pub(super) fn table(&self, namespace: &str, name: &str) -> StorageResult<Option<TableRecord>> {
        self.record(&catalog_keys::table(namespace, name))
    }

    pub(super) fn table_by_id(&self, table_id: u64) -> StorageResult<Option<TableRecord>> {
        for item in self
            .db
            .prefix_iterator_cf(cf(self.db, CF_CATALOG), catalog_keys::tables())
        {
            let (key, value) = item?;
            if !key.starts_with(&catalog_keys::tables()) {
                break;
            }
            let table: TableRecord = records::decode(CF_CATALOG, &value)?;
            if table.table_id == table_id {
                return Ok(Some(table));
            }
        }
        Ok(None)
    }

    /// The definition of table `table_id` as this command has left it so far.
    fn definition(&self, table_id: u64) -> StorageResult<Option<Arc<TableRecord>>> {
        if let Some(found) = self.definitions.borrow().get(&table_id) {
            return Ok(Some(found.clone()));
        }
        let Some(stored) = self.table_by_id(table_id)? else {
            return Ok(None);
        };
        let table = match self.table(&stored.namespace, &stored.name)? {
            Some(current) if current.table_id == table_id => current,
            _ => stored,
        };
        let table = Arc::new(table);
        self.definitions
            .borrow_mut()
            .insert(table_id, table.clone());
        Ok(Some(table))
    }

    pub(super) fn tables_in(&self, namespace: &str) -> StorageResult<Vec<TableRecord>> {
        self.records_in(&catalog_keys::tables_of(namespace))
    }

    /// The catalog keys under `prefix`, this command's own changes included.
    pub(super) fn keys_in(&self, prefix: &[u8]) -> StorageResult<Vec<Vec<u8>>> {
        let mut found = std::collections::BTreeSet::new();
        for item in self.db.prefix_iterator_cf(cf(self.db, CF_CATALOG), prefix) {
            let (key, _) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            found.insert(key.to_vec());
        }
        for (key, value) in self.pending.get(CF_CATALOG).into_iter().flatten() {
            if key.starts_with(prefix) {
                match value {
                    Some(_) => found.insert(key.clone()),
                    None => found.remove(key),
                };
            }
        }
        Ok(found.into_iter().collect())
    }

    /// The catalog records under `prefix`, this command's own changes included.
    pub(super) fn records_in<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> StorageResult<Vec<T>> {
        let mut found: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        for item in self.db.prefix_iterator_cf(cf(self.db, CF_CATALOG), prefix) {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            found.insert(key.to_vec(), Some(value.to_vec()));
        }
        for (key, value) in self.pending.get(CF_CATALOG).into_iter().flatten() {
            if key.starts_with(prefix) {
                found.insert(key.clone(), value.clone());
            }
        }
        found
            .into_values()
            .flatten()
            .map(|b| records::decode(CF_CATALOG, &b))
            .collect()
    }
}
