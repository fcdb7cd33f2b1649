//! Reads of hot rows, segments and the cold index that agree with one another.
//!
//! A flush publishes in one write batch: rows leave the hot keys, their cold-index entries and
//! the segment that holds them appear. A reader that lists a table's segments and then looks
//! for a row can still fall between the two moments: the row already left the hot keys, and
//! its segment came after the list. Every read through one [`ReadView`] sees the database at the
//! moment the view was taken, so a row is always either hot or in a segment the view lists.

use std::sync::Arc;

use rocksdb::{ReadOptions, Snapshot};

use super::row_writes::{self, ColdEntry};
use super::segments::SegmentRecord;
use super::{CF_CATALOG, CF_COLD_INDEX, CF_DEAD_KEYS, CF_ROWS, StorageResult, Store};
use super::{catalog_keys, cf, records, rows};

/// Reads from one point in the store's history (or, for [`Store`]'s own read methods, from
/// whatever is current at each read).
pub struct ReadView<'a> {
    store: &'a Store,
    snapshot: Option<Snapshot<'a>>,
}

self_cell::self_cell!(
    /// A pinned [`ReadView`] that holds its store: for reads that go on after the call that
    /// took the view returns (a scan plan that streams its rows when executed).
    pub struct OwnedView {
        owner: Arc<Store>,
        #[covariant]
        dependent: ReadView,
    }
);

impl OwnedView {
    pub fn pinned(store: Arc<Store>) -> Self {
        OwnedView::new(store, |store| ReadView::pinned(store))
    }

    pub fn view(&self) -> &ReadView<'_> {
        self.borrow_dependent()
    }
}

impl std::fmt::Debug for OwnedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnedView")
    }
}

impl<'a> ReadView<'a> {
    pub(super) fn pinned(store: &'a Store) -> Self {
        ReadView {
            store,
            snapshot: Some(store.db.snapshot()),
        }
    }

    pub(super) fn latest(store: &'a Store) -> Self {
        ReadView {
            store,
            snapshot: None,
        }
    }

    fn options(&self) -> ReadOptions {
        let mut options = ReadOptions::default();
        if let Some(snapshot) = &self.snapshot {
            options.set_snapshot(snapshot);
        }
        options
    }

    pub(super) fn get(&self, cf_name: &'static str, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        let db = &self.store.db;
        Ok(db.get_cf_opt(cf(db, cf_name), key, &self.options())?)
    }

    /// The stored hot row (version and payload) under `key`, if any.
    pub fn row(&self, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        self.get(CF_ROWS, key)
    }

    /// Where the live cold copy of `key` is.
    pub fn cold_entry(&self, key: &[u8]) -> StorageResult<Option<ColdEntry>> {
        self.get(CF_COLD_INDEX, key)?
            .map(|v| row_writes::decode_cold_entry(&v))
            .transpose()
    }

    /// A table's published segments.
    pub fn segments(&self, table_id: u64) -> StorageResult<Vec<SegmentRecord>> {
        self.scan_records(CF_CATALOG, &catalog_keys::segments_of(table_id))
    }

    /// Those of `keys` that have a live cold copy.
    pub fn with_cold_copies(&self, keys: &[Vec<u8>]) -> StorageResult<Vec<Vec<u8>>> {
        let present = self.present(CF_COLD_INDEX, keys)?;
        Ok(keys
            .iter()
            .zip(present)
            .filter(|(_, present)| *present)
            .map(|(key, _)| key.clone())
            .collect())
    }

    /// For each of `keys`, whether a hot row (or its deletion marker) is stored under it.
    pub fn hot_rows_present<K: AsRef<[u8]>>(&self, keys: &[K]) -> StorageResult<Vec<bool>> {
        self.present(CF_ROWS, keys)
    }

    fn present<K: AsRef<[u8]>>(
        &self,
        cf_name: &'static str,
        keys: &[K],
    ) -> StorageResult<Vec<bool>> {
        let db = &self.store.db;
        // Keys from a scan arrive sorted; telling RocksDB so spares it sorting them again.
        let sorted = keys.is_sorted_by(|a, b| a.as_ref() <= b.as_ref());
        let found = db.batched_multi_get_cf_opt(cf(db, cf_name), keys, sorted, &self.options());
        found
            .into_iter()
            .map(|value| Ok(value?.is_some()))
            .collect()
    }

    /// The first and last hot keys of a table (deletion markers included), if it has any.
    pub fn hot_key_bounds(&self, table_id: u64) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>> {
        let prefix = rows::table_prefix(table_id);
        let db = &self.store.db;
        let mut options = self.options();
        if let Some(end) = prefix_end(&prefix) {
            options.set_iterate_upper_bound(end);
        }
        options.set_iterate_lower_bound(prefix.to_vec());
        let mut iter = db.raw_iterator_cf_opt(cf(db, CF_ROWS), options);
        // Each seek resets the iterator's status: an error is read after the seek that made it.
        iter.seek_to_first();
        iter.status()?;
        let first = iter.key().map(<[u8]>::to_vec);
        iter.seek_to_last();
        iter.status()?;
        let last = iter.key().map(<[u8]>::to_vec);
        Ok(first.zip(last))
    }

    /// A table's hot keys (deletion markers included) when there are at most `limit` of them.
    pub fn hot_keys_up_to(
        &self,
        table_id: u64,
        limit: usize,
    ) -> StorageResult<Option<Vec<Vec<u8>>>> {
        let mut keys = Vec::new();
        let mut within = true;
        self.scan_rows(table_id, |key, _| {
            within = keys.len() < limit;
            if within {
                keys.push(key.to_vec());
            }
            Ok(within)
        })?;
        Ok(within.then_some(keys))
    }

    /// Keys whose copy in `segment_id` is no longer live.
    pub fn dead_keys(&self, segment_id: u64) -> StorageResult<std::collections::HashSet<Vec<u8>>> {
        let prefix = segment_id.to_be_bytes();
        let mut keys = std::collections::HashSet::new();
        self.scan_prefix(CF_DEAD_KEYS, &prefix, |key, _| {
            keys.insert(key[prefix.len()..].to_vec());
            Ok(true)
        })?;
        Ok(keys)
    }

    /// Calls `visit(key, stored_row)` for every hot row of a table, in key order. `visit`
    /// returns false to stop early.
    pub fn scan_rows(
        &self,
        table_id: u64,
        visit: impl FnMut(&[u8], &[u8]) -> StorageResult<bool>,
    ) -> StorageResult<()> {
        self.scan_prefix(CF_ROWS, &rows::table_prefix(table_id), visit)
    }

    /// Like `scan_rows`, from the first key after `after` (a key `visit` was given).
    pub fn scan_rows_after(
        &self,
        table_id: u64,
        after: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> StorageResult<bool>,
    ) -> StorageResult<()> {
        let prefix = rows::table_prefix(table_id);
        let Some(high) = prefix_end(&prefix) else {
            return self.scan_rows(table_id, visit);
        };
        // The smallest key greater than `after`.
        let mut low = after.to_vec();
        low.push(0);
        self.scan_range(CF_ROWS, &low, &high, visit)
    }

    pub(super) fn scan_records<T: serde::de::DeserializeOwned>(
        &self,
        cf_name: &'static str,
        prefix: &[u8],
    ) -> StorageResult<Vec<T>> {
        let mut out = Vec::new();
        self.scan_prefix(cf_name, prefix, |_, value| {
            out.push(records::decode(cf_name, value)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Visits the entries of `cf_name` from `low` (inclusive) to `high` (exclusive), in key
    /// order.
    pub(super) fn scan_range(
        &self,
        cf_name: &'static str,
        low: &[u8],
        high: &[u8],
        visit: impl FnMut(&[u8], &[u8]) -> StorageResult<bool>,
    ) -> StorageResult<()> {
        self.visit_from(cf_name, low, Some(high.to_vec()), visit)
    }

    /// Visits the entries of `cf_name` whose keys start with `prefix`, in key order.
    fn scan_prefix(
        &self,
        cf_name: &'static str,
        prefix: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> StorageResult<bool>,
    ) -> StorageResult<()> {
        self.visit_from(cf_name, prefix, prefix_end(prefix), |key, value| {
            Ok(key.starts_with(prefix) && visit(key, value)?)
        })
    }

    /// Visits entries from `low` up to `high` (exclusive; the end of the column family when
    /// `None`) through a raw iterator, which lends each key and value instead of copying them.
    fn visit_from(
        &self,
        cf_name: &'static str,
        low: &[u8],
        high: Option<Vec<u8>>,
        mut visit: impl FnMut(&[u8], &[u8]) -> StorageResult<bool>,
    ) -> StorageResult<()> {
        let db = &self.store.db;
        let mut options = self.options();
        if let Some(high) = high {
            options.set_iterate_upper_bound(high);
        }
        let mut iter = db.raw_iterator_cf_opt(cf(db, cf_name), options);
        iter.seek(low);
        while let Some((key, value)) = iter.item() {
            if !visit(key, value)? {
                return Ok(());
            }
            iter.next();
        }
        Ok(iter.status()?)
    }
}

/// The smallest key after every key that starts with `prefix` (none if it is all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
