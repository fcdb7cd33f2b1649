//! Reads of table data: hot rows, the Parquet segments a table has been flushed to, the cold
//! index that says where a flushed row lives, table sizes, and the start-up sweep of files no
//! manifest references.

use std::path::{Path, PathBuf};

use super::keys::{CF_CATALOG, catalog_keys};
use super::{
    ColdEntry, ReadView, SegmentRecord, StorageResult, Store, TableRecord, is_tombstone,
    remove_unreferenced_files, rows, segments, streams,
};

impl Store {
    pub fn segments(&self, table_id: u64) -> StorageResult<Vec<SegmentRecord>> {
        ReadView::latest(self).segments(table_id)
    }

    pub fn segment(&self, table_id: u64, segment_id: u64) -> StorageResult<Option<SegmentRecord>> {
        self.get_record(CF_CATALOG, &catalog_keys::segment(table_id, segment_id))
    }

    pub(super) fn all_segments(&self) -> StorageResult<Vec<SegmentRecord>> {
        self.scan_records(CF_CATALOG, b"seg\0")
    }

    /// The absolute path of a segment file.
    pub fn segment_path(&self, segment: &SegmentRecord) -> PathBuf {
        self.dir.storage().join(&segment.file)
    }

    /// Row `row` of `segment`: the file's columns at `columns` (ascending indexes into the
    /// segment schema, whose table columns are followed by key and version).
    pub fn read_segment_row(
        &self,
        segment: &SegmentRecord,
        row: u64,
        columns: &[usize],
    ) -> StorageResult<datafusion::arrow::array::RecordBatch> {
        segments::read_segment_row(
            &self.segment_path(segment),
            &self.segment_cache,
            segment.segment_id,
            row,
            columns,
        )
    }

    /// Where the live cold copy of `key` is.
    pub fn cold_entry(&self, key: &[u8]) -> StorageResult<Option<ColdEntry>> {
        ReadView::latest(self).cold_entry(key)
    }

    /// The version of the live row under `key`, hot or cold (`None`: no live row).
    pub fn live_version(&self, key: &[u8]) -> StorageResult<Option<u64>> {
        if let Some(stored) = self.row(key)? {
            return if is_tombstone(&stored) {
                Ok(None)
            } else {
                rows::stored_version(&stored).map(Some)
            };
        }
        Ok(self.cold_entry(key)?.map(|entry| entry.version))
    }

    /// Deletes segment files no manifest entry references (a crash between writing a segment
    /// and publishing it, or after dropping a table), and leftover temporary files.
    pub(super) fn remove_orphan_segment_files(&self) -> StorageResult<()> {
        let referenced: std::collections::HashSet<PathBuf> = self
            .all_segments()?
            .iter()
            .map(|s| self.segment_path(s))
            .collect();
        remove_unreferenced_files(&self.dir.storage(), &referenced, "segment file")
    }

    /// The bytes a table occupies: its hot rows (keys and values as stored), its Parquet
    /// segments and, for a stream table, its commit log files.
    pub fn table_bytes(&self, table: &TableRecord) -> StorageResult<u64> {
        let mut bytes = 0u64;
        self.scan_rows(table.table_id, |key, stored| {
            bytes += (key.len() + stored.len()) as u64;
            Ok(true)
        })?;
        bytes += self
            .segments(table.table_id)?
            .iter()
            .map(|s| s.bytes)
            .sum::<u64>();
        if matches!(table.kind, crate::model::TableKind::Stream { .. }) {
            let state = self.stream_state(table.table_id)?;
            bytes += streams::files(&self.streams_root, &state)
                .iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum::<u64>();
        }
        Ok(bytes)
    }

    /// Where stream commit logs live.
    pub fn streams_root(&self) -> &Path {
        &self.streams_root
    }

    pub(super) fn remove_orphan_stream_files(&self) -> StorageResult<()> {
        let mut referenced = std::collections::HashSet::new();
        for state in self.scan_records::<streams::StreamState>(CF_CATALOG, b"str\0")? {
            referenced.extend(streams::files(&self.streams_root, &state));
        }
        remove_unreferenced_files(&self.streams_root, &referenced, "stream log file")
    }

    /// The stored hot row (version and payload) under `key`, if any.
    pub fn row(&self, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        ReadView::latest(self).row(key)
    }

    /// Calls `visit(key, stored_row)` for every hot row of a table, in key order, from one
    /// consistent view of the database. `visit` returns false to stop early.
    pub fn scan_rows(
        &self,
        table_id: u64,
        visit: impl FnMut(&[u8], &[u8]) -> StorageResult<bool>,
    ) -> StorageResult<()> {
        // One iterator: RocksDB iterators read from the implicit snapshot they were opened at.
        ReadView::latest(self).scan_rows(table_id, visit)
    }

    /// Calls `visit(key, stored_row)` for the hot rows of a table after key `after` (all of
    /// them when `None`), in key order, until it returns false.
    pub fn scan_rows_after(
        &self,
        table_id: u64,
        after: Option<&[u8]>,
        visit: impl FnMut(&[u8], &[u8]) -> StorageResult<bool>,
    ) -> StorageResult<()> {
        let view = ReadView::latest(self);
        match after {
            Some(after) => view.scan_rows_after(table_id, after, visit),
            None => view.scan_rows(table_id, visit),
        }
    }
}
