//! The table provider for user tables: hot rows from RocksDB, seen through the session's
//! uncommitted writes, with primary-key equality filters turned into point reads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BinaryBuilder, Int64Builder, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::catalog::storage_error;
use crate::model::types::schema_of;
use crate::storage::SegmentRecord;
use crate::storage::rows::{self, RowDecoder};
use crate::storage::{CatalogChanges, ReadView, StorageResult, Store, TableRecord, is_tombstone};

/// Hidden columns a DML statement's scan adds to find and version the rows it changes.
pub const KEY_COLUMN: &str = "__kalamdb_key";
pub const VERSION_COLUMN: &str = "__kalamdb_version";

/// What a read takes from the table's committed hot rows.
#[derive(Clone, Copy)]
pub(super) enum CommittedRows<'a> {
    /// None: the reading block truncated the table.
    Hidden,
    /// Every one, encoded as the reader's definition says.
    Current,
    /// Every one, stored under these (older) columns: the reading block dropped or retyped a
    /// column, so each row is re-encoded by column id for the block's definition.
    Relayout(&'a [crate::model::ColumnDef]),
}

/// One table's uncommitted writes: encoded key to row (`None`: deleted).
pub type PendingRows = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A session's writes not yet committed: rows per table, and its block's DDL.
#[derive(Debug, Default)]
pub struct PendingWrites {
    pub tables: Mutex<HashMap<u64, PendingRows>>,
    /// The catalog records the block's DDL changed (see `storage::CatalogChanges`).
    pub catalog: Mutex<Arc<CatalogChanges>>,
    /// Tables the block truncated: their committed rows are gone for it.
    pub truncated: Mutex<HashSet<u64>>,
}

impl PendingWrites {
    pub fn catalog_changes(&self) -> Arc<CatalogChanges> {
        self.catalog.lock().expect("pending catalog").clone()
    }

    pub fn truncated(&self, table_id: u64) -> bool {
        self.truncated
            .lock()
            .expect("pending truncations")
            .contains(&table_id)
    }
}

#[derive(Debug)]
pub struct UserTable {
    store: Arc<Store>,
    record: Arc<TableRecord>,
    /// The table's columns, plus the hidden key and version columns for UPDATE and DELETE.
    schema: SchemaRef,
    /// The catalog epoch at which the stored layout last matched `record`'s: until the next
    /// DDL anywhere, a prepared plan's scans need not read the layout generation again.
    layout_checked_at: std::sync::atomic::AtomicU64,
}

impl UserTable {
    pub fn new(store: Arc<Store>, record: Arc<TableRecord>, with_row_identity: bool) -> Self {
        let mut fields: Vec<Field> = schema_of(&record.columns)
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        if with_row_identity {
            fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
            fields.push(Field::new(VERSION_COLUMN, DataType::Int64, true));
        }
        UserTable {
            store,
            record,
            schema: Arc::new(Schema::new(fields)),
            layout_checked_at: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    pub fn record(&self) -> &TableRecord {
        &self.record
    }

    /// The encoded key when `filters` pin every primary-key column to a constant.
    fn point_key(&self, filters: &[Expr]) -> Option<Vec<u8>> {
        let mut values: HashMap<&str, &ScalarValue> = HashMap::new();
        for filter in filters {
            collect_equalities(filter, &mut values);
        }
        let key_values: Vec<&ScalarValue> = self
            .record
            .primary_key
            .iter()
            .map(|&index| {
                values
                    .get(self.record.columns[index].name.as_str())
                    .copied()
            })
            .collect::<Option<_>>()?;
        encode_point_key(&self.record, &key_values)
    }

    /// Reads the hot rows (and the session's pending ones). Returns them with the keys they
    /// shadow: every hot key, tombstones included, whose cold copy must not be read.
    pub(super) fn read(
        &self,
        view: &ReadView<'_>,
        pending: Option<&PendingRows>,
        committed: CommittedRows<'_>,
        point: Option<Vec<u8>>,
        projection: Option<&[usize]>,
        limit: Option<usize>,
    ) -> Result<(RecordBatch, Vec<Vec<u8>>)> {
        let mut hot_keys: Vec<Vec<u8>> = Vec::new();
        let table_columns = self.record.columns.len();
        let data_projection: Vec<usize> = match projection {
            Some(p) => p.iter().copied().filter(|&i| i < table_columns).collect(),
            None => (0..table_columns).collect(),
        };
        let columns = Arc::new(self.record.columns.clone());
        let mut decoder = RowDecoder::new(columns, Some(&data_projection));
        let mut keys = BinaryBuilder::new();
        let mut versions = Int64Builder::new();
        let limit = limit.unwrap_or(usize::MAX);
        let relayout = |row: &[u8]| -> StorageResult<Option<Vec<u8>>> {
            match committed {
                CommittedRows::Relayout(stored) => {
                    rows::relayout(stored, &self.record.columns, row).map(Some)
                }
                _ => Ok(None),
            }
        };
        let mut emit = |key: &[u8], version: Option<u64>, row: &[u8]| -> StorageResult<bool> {
            match version.map(|_| relayout(row)).transpose()?.flatten() {
                Some(row) => decoder.push(&row)?,
                None => decoder.push(row)?,
            }
            keys.append_value(key);
            versions.append_option(version.map(|v| v as i64));
            Ok(decoder.len() < limit)
        };
        match point {
            Some(key) => {
                let overlay = pending.and_then(|p| p.get(&key));
                match overlay {
                    Some(Some(row)) => {
                        emit(&key, None, row).map_err(storage_error)?;
                    }
                    Some(None) => {}
                    None if matches!(committed, CommittedRows::Hidden) => {}
                    None => {
                        if let Some(stored) = view.row(&key).map_err(storage_error)? {
                            hot_keys.push(key.clone());
                            if !is_tombstone(&stored) {
                                let version =
                                    rows::stored_version(&stored).map_err(storage_error)?;
                                emit(&key, Some(version), rows::stored_payload(&stored))
                                    .map_err(storage_error)?;
                            }
                        }
                    }
                }
                if overlay.is_some() {
                    hot_keys.push(key.clone());
                }
            }
            None => {
                let empty = BTreeMap::new();
                hot_keys.extend(pending.unwrap_or(&empty).keys().cloned());
                let mut overlay = pending.unwrap_or(&empty).iter().peekable();
                let mut more = true;
                let mut visit = |key: &[u8], stored: &[u8]| -> StorageResult<bool> {
                    hot_keys.push(key.to_vec());
                    // Emit the session's own rows that sort before this stored one.
                    while let Some((pending_key, row)) =
                        overlay.next_if(|(k, _)| k.as_slice() < key)
                    {
                        if let Some(row) = row {
                            more = emit(pending_key, None, row)?;
                            if !more {
                                return Ok(false);
                            }
                        }
                    }
                    if let Some((_, row)) = overlay.next_if(|(k, _)| k.as_slice() == key) {
                        if let Some(row) = row {
                            more = emit(key, None, row)?;
                        }
                        return Ok(more);
                    }
                    if is_tombstone(stored) {
                        return Ok(true);
                    }
                    let version = rows::stored_version(stored)?;
                    more = emit(key, Some(version), rows::stored_payload(stored))?;
                    Ok(more)
                };
                // A table the block truncated has only the block's rows.
                if !matches!(committed, CommittedRows::Hidden) {
                    view.scan_rows(self.record.table_id, &mut visit)
                        .map_err(storage_error)?;
                }
                if more {
                    for (key, row) in overlay {
                        if let Some(row) = row
                            && !emit(key, None, row).map_err(storage_error)?
                        {
                            break;
                        }
                    }
                }
            }
        }
        let rows = decoder.len();
        let mut data = decoder.finish().into_iter();
        let mut keys = Some(Arc::new(keys.finish()) as ArrayRef);
        let mut versions = Some(Arc::new(versions.finish()) as ArrayRef);
        let output: Vec<usize> = match projection {
            Some(p) => p.to_vec(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let arrays: Vec<ArrayRef> = output
            .iter()
            .map(|&i| {
                if i < table_columns {
                    data.next().expect("one array per projected column")
                } else if i == table_columns {
                    keys.take().expect("key column once")
                } else {
                    versions.take().expect("version column once")
                }
            })
            .collect();
        let schema = Arc::new(self.schema.project(&output)?);
        let options =
            datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok((
            RecordBatch::try_new_with_options(schema, arrays, &options)?,
            hot_keys,
        ))
    }
}

impl UserTable {
    fn output_schema(&self, projection: Option<&Vec<usize>>) -> Result<SchemaRef> {
        Ok(match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        })
    }

    /// The rows under `keys` (an index's, in its order) as the session sees them, followed by
    /// the session's other uncommitted rows (which no committed entry names yet).
    fn read_keys(
        &self,
        view: &ReadView<'_>,
        pending: Option<&PendingRows>,
        keys: Vec<Vec<u8>>,
        projection: Option<&Vec<usize>>,
    ) -> Result<RecordBatch> {
        let output: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let named: HashSet<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let others: PendingRows = pending
            .into_iter()
            .flatten()
            .filter(|(key, _)| !named.contains(key.as_slice()))
            .map(|(key, row)| (key.clone(), row.clone()))
            .collect();
        let mut batches = self.read_rows(view, pending, &keys, &output)?;
        if !others.is_empty() {
            batches.push(
                self.read(
                    view,
                    Some(&others),
                    CommittedRows::Hidden,
                    None,
                    Some(&output),
                    None,
                )?
                .0,
            );
        }
        Ok(datafusion::arrow::compute::concat_batches(
            &self.output_schema(projection)?,
            &batches,
        )?)
    }

    /// The live rows under `keys`, `projection` of each: the session's version, else the hot
    /// row, else the flushed copy.
    pub(super) fn read_rows(
        &self,
        view: &ReadView<'_>,
        pending: Option<&PendingRows>,
        keys: &[Vec<u8>],
        projection: &[usize],
    ) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::with_capacity(keys.len());
        for key in keys {
            let (batch, hot_keys) = self.read(
                view,
                pending,
                CommittedRows::Current,
                Some(key.clone()),
                Some(projection),
                None,
            )?;
            if !hot_keys.is_empty() {
                batches.push(batch);
            } else if let Some(entry) = view.cold_entry(key).map_err(storage_error)? {
                batches.extend(self.read_cold_point(entry, projection)?);
            }
        }
        Ok(batches)
    }

    /// The columns committed rows are stored under, when they are not encoded as this reader's
    /// definition says: a block that dropped or retyped a column reads them re-encoded. A
    /// plan made before another session's DROP COLUMN or ALTER COLUMN TYPE fails with
    /// `CachedPlanChanged` (a prepared query is then planned again).
    fn stored_layout(&self, catalog_unchanged: bool) -> Result<Option<TableRecord>> {
        let table_id = self.record.table_id;
        if catalog_unchanged {
            use std::sync::atomic::Ordering;
            // Read before the generation: DDL committing in between is seen next time.
            let epoch = self.store.catalog_epoch();
            if self.layout_checked_at.load(Ordering::Acquire) == epoch {
                return Ok(None);
            }
            let stored = self
                .store
                .layout_generation(table_id)
                .map_err(storage_error)?;
            if stored > self.record.layout_generation {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    super::ExecError::CachedPlanChanged,
                )));
            }
            self.layout_checked_at.store(epoch, Ordering::Release);
            return Ok(None);
        }
        let Some(stored) = self.store.table_by_id(table_id).map_err(storage_error)? else {
            return Ok(None);
        };
        let ids = |columns: &[crate::model::ColumnDef]| -> Vec<u32> {
            columns.iter().map(|c| c.id).collect()
        };
        let (stored_ids, read_ids) = (ids(&stored.columns), ids(&self.record.columns));
        // Columns added at the end leave the others where they were.
        let aligned = stored_ids.starts_with(&read_ids) || read_ids.starts_with(&stored_ids);
        Ok((!aligned).then_some(stored))
    }

    /// The flushed row `entry` locates, `projection` of the table's schema, read at its
    /// segment position; `None` when the position is not recorded (a scan must find it).
    pub(super) fn read_cold_point(
        &self,
        entry: crate::storage::ColdEntry,
        projection: &[usize],
    ) -> Result<Option<RecordBatch>> {
        // Only the entry's own segment: a point read must not list the table's segments.
        let segments: Vec<SegmentRecord> = self
            .store
            .segment(self.record.table_id, entry.segment_id)
            .map_err(storage_error)?
            .into_iter()
            .collect();
        // Files name their columns by id, so this definition reads segments flushed under any
        // other (a statement prepared before ADD COLUMN, a block after its DROP COLUMN).
        super::cold::read_cold_row(
            &self.store,
            &self.record,
            &segments,
            entry,
            projection,
            Arc::new(self.schema.project(projection)?),
        )
    }
}

/// The encoded row key for one value per primary-key column (in key order), each converted to
/// its column's type; `None` for a table without a declared key or a value that does not fit.
pub(super) fn encode_point_key(record: &TableRecord, values: &[&ScalarValue]) -> Option<Vec<u8>> {
    if record.primary_key.is_empty() || values.len() != record.primary_key.len() {
        return None;
    }
    let mut arrays = Vec::with_capacity(values.len());
    for (value, &index) in values.iter().zip(&record.primary_key) {
        let array = value.to_array_of_size(1).ok()?;
        arrays.push(cast(&array, &record.columns[index].sql_type.arrow_type()).ok()?);
    }
    let mut key = rows::table_prefix(record.table_id).to_vec();
    rows::encode_key(&arrays, 0, &mut key).then_some(key)
}

/// Collects `column = literal` conjuncts.
fn collect_equalities<'a>(expr: &'a Expr, out: &mut HashMap<&'a str, &'a ScalarValue>) {
    if let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr {
        match (op, left.as_ref(), right.as_ref()) {
            (Operator::And, l, r) => {
                collect_equalities(l, out);
                collect_equalities(r, out);
            }
            (Operator::Eq, Expr::Column(Column { name, .. }), Expr::Literal(value, _))
            | (Operator::Eq, Expr::Literal(value, _), Expr::Column(Column { name, .. })) => {
                out.insert(name.as_str(), value);
            }
            _ => {}
        }
    }
}

#[async_trait]
impl TableProvider for UserTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters are used to narrow the read, and DataFusion still applies them all.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let pending = state.config().get_extension::<PendingWrites>();
        let committed = !pending
            .as_ref()
            .is_some_and(|p| p.truncated(self.record.table_id));
        let pending_tables = pending
            .as_ref()
            .map(|p| p.tables.lock().expect("pending writes"));
        let pending_rows = pending_tables
            .as_ref()
            .and_then(|tables| tables.get(&self.record.table_id));
        // Every read below sees one moment: a flush publishing meanwhile moves rows from the
        // hot keys into a segment, and the two reads must not straddle it.
        let view = self.store.view();
        let segments = if committed {
            view.segments(self.record.table_id).map_err(storage_error)?
        } else {
            Vec::new()
        };
        // A LIMIT is only safe to push when every filter is applied after the read and no
        // cold rows are merged in.
        let limit = if filters.is_empty() && segments.is_empty() {
            limit
        } else {
            None
        };
        let point = self.point_key(filters);
        let catalog_unchanged = pending
            .as_ref()
            .is_none_or(|p| p.catalog_changes().is_empty());
        let stored_layout = if committed {
            self.stored_layout(catalog_unchanged)?
        } else {
            None
        };
        let committed_rows = match (&stored_layout, committed) {
            (_, false) => CommittedRows::Hidden,
            (Some(stored), true) => CommittedRows::Relayout(&stored.columns),
            (None, true) => CommittedRows::Current,
        };
        // A block's own DDL may have created an index not committed yet: only committed
        // indexes, whose entries exist, are read.
        if point.is_none() && committed && catalog_unchanged {
            let indexes = self
                .store
                .indexes_of(self.record.table_id)
                .map_err(storage_error)?;
            if let Some(range) = super::index_scan::choose(&self.record, &indexes, filters)
                && let Some(keys) = view
                    .index_row_keys(&range.low, &range.high, super::index_scan::MAX_INDEXED_ROWS)
                    .map_err(storage_error)?
            {
                let rows = self.read_keys(&view, pending_rows, keys, projection)?;
                return Ok(Arc::new(super::index_scan::IndexScanExec::new(
                    MemorySourceConfig::try_new_exec(
                        &[vec![rows]],
                        self.output_schema(projection)?,
                        None,
                    )?,
                    &range,
                )));
            }
        }
        let (batch, hot_keys) = self.read(
            &view,
            pending_rows,
            committed_rows,
            point.clone(),
            projection.map(|p| p.as_slice()),
            limit,
        )?;
        drop(pending_tables);
        let schema = batch.schema();
        let hot: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[vec![batch]], schema.clone(), None)?;
        if segments.is_empty() {
            return Ok(hot);
        }
        let output: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let (segments, shadowed) = match &point {
            // A point read looks only at the segment the cold index names, unless the key is hot.
            Some(key) if hot_keys.contains(key) => (Vec::new(), HashSet::new()),
            Some(key) => match view.cold_entry(key).map_err(storage_error)? {
                Some(entry) => {
                    let output_schema = Arc::new(self.schema.project(&output)?);
                    if let Some(row) = super::cold::read_cold_row(
                        &self.store,
                        &self.record,
                        &segments,
                        entry,
                        &output,
                        output_schema.clone(),
                    )? {
                        return Ok(MemorySourceConfig::try_new_exec(
                            &[vec![row]],
                            output_schema,
                            None,
                        )?);
                    }
                    (
                        segments
                            .into_iter()
                            .filter(|s| s.segment_id == entry.segment_id)
                            .collect(),
                        HashSet::new(),
                    )
                }
                None => (Vec::new(), HashSet::new()),
            },
            None => (
                segments,
                view.with_cold_copies(&hot_keys)
                    .map_err(storage_error)?
                    .into_iter()
                    .collect(),
            ),
        };
        if segments.is_empty() {
            return Ok(hot);
        }
        let mut inputs = vec![hot];
        inputs.extend(super::cold::scan_segments(
            &self.store,
            &view,
            &self.record,
            &segments,
            &shadowed,
            &output,
            schema,
        )?);
        datafusion::physical_plan::union::UnionExec::try_new(inputs)
    }
}
