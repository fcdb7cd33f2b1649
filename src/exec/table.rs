//! The table provider for user tables: hot rows from RocksDB, seen through the session's
//! uncommitted writes, with primary-key equality filters turned into point reads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
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
use super::cold::{HotLookup, Shadowed};
use super::hot_scan::{HotScanExec, HotSource, RowBatchBuilder, RowSource, read_chunk};
use crate::model::types::schema_of;
use crate::storage::SegmentRecord;
use crate::storage::rows;
use crate::storage::{CatalogChanges, OwnedView, ReadView, Store, TableRecord, is_tombstone};

/// Up to this many hot rows, a scan that also reads segments lists which of them hide flushed
/// copies while planning; past it, flushed rows are looked up among the hot ones as they are
/// read (a large hot set after a bulk load, which mostly lies past every flushed key).
const LISTED_HOT_KEYS: usize = 65_536;

/// Hidden columns a DML statement's scan adds to find and version the rows it changes.
pub const KEY_COLUMN: &str = "__kalamdb_key";
pub const VERSION_COLUMN: &str = "__kalamdb_version";

/// What a read takes from the table's committed hot rows.
#[derive(Clone, Debug)]
pub(super) enum CommittedRows {
    /// None: the reading block truncated the table.
    Hidden,
    /// Every one, encoded as the reader's definition says.
    Current,
    /// Every one, stored under these (older) columns: the reading block dropped or retyped a
    /// column, so each row is re-encoded by column id for the block's definition.
    Relayout(Arc<Vec<crate::model::ColumnDef>>),
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

    /// The row under `key` as the session sees it: its pending version, else the hot row.
    /// Returns it (or no row) and whether the key is hot or pending at all: a hot key, even a
    /// deletion marker, shadows the key's flushed copy.
    pub(super) fn read_point(
        &self,
        view: &ReadView<'_>,
        pending: Option<&PendingRows>,
        committed: &CommittedRows,
        key: &[u8],
        projection: &[usize],
    ) -> Result<(RecordBatch, bool)> {
        let mut batch = RowBatchBuilder::new(&self.record, &self.schema, projection)?;
        let hot = match pending.and_then(|p| p.get(key)) {
            Some(Some(row)) => {
                batch.push(key, None, row, None).map_err(storage_error)?;
                true
            }
            Some(None) => true,
            None if matches!(committed, CommittedRows::Hidden) => false,
            None => match view.row(key).map_err(storage_error)? {
                Some(stored) => {
                    if !is_tombstone(&stored) {
                        let version = rows::stored_version(&stored).map_err(storage_error)?;
                        let layout = match committed {
                            CommittedRows::Relayout(columns) => Some(columns.as_slice()),
                            _ => None,
                        };
                        batch
                            .push(key, Some(version), rows::stored_payload(&stored), layout)
                            .map_err(storage_error)?;
                    }
                    true
                }
                None => false,
            },
        };
        Ok((batch.finish()?, hot))
    }
}

impl UserTable {
    /// The hot keys that hide flushed copies from this scan's segment reads: the table's hot
    /// rows and deletion markers as `view` shows them, and the session's pending keys.
    fn shadowed(&self, view: &Arc<OwnedView>, pending: Option<&PendingRows>) -> Result<Shadowed> {
        let table_id = self.record.table_id;
        let reader = view.view();
        let pending_keys: Vec<Vec<u8>> = pending
            .into_iter()
            .flat_map(|rows| rows.keys().cloned())
            .collect();
        let listed = reader
            .hot_keys_up_to(table_id, LISTED_HOT_KEYS)
            .map_err(storage_error)?;
        let lookup = match listed {
            Some(_) => None,
            None => reader
                .hot_key_bounds(table_id)
                .map_err(storage_error)?
                .map(|(low, high)| {
                    Arc::new(HotLookup {
                        view: view.clone(),
                        low,
                        high,
                    })
                }),
        };
        // Only keys that have a flushed copy can hide one.
        let mut candidates = listed.unwrap_or_default();
        candidates.extend(pending_keys);
        candidates.sort_unstable();
        candidates.dedup();
        let keys = reader
            .with_cold_copies(&candidates)
            .map_err(storage_error)?;
        Ok(Shadowed {
            keys: Arc::new(keys),
            lookup,
        })
    }

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
            let source = RowSource {
                record: &self.record,
                scan_schema: &self.schema,
                committed: &CommittedRows::Hidden,
                pending: Some(&others),
            };
            batches.push(read_chunk(view, &source, &output, None, usize::MAX)?.0);
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
            let (batch, hot) =
                self.read_point(view, pending, &CommittedRows::Current, key, projection)?;
            if hot {
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
    let mut key = rows::table_prefix(record.table_id).to_vec();
    if let [value] = values
        && let Some(integer) = integer_of(value)
    {
        let key_type = record.columns[record.primary_key[0]].sql_type.arrow_type();
        if matches!(
            key_type,
            DataType::Int16 | DataType::Int32 | DataType::Int64
        ) {
            return rows::encode_integer_key(&key_type, integer, &mut key).then_some(key);
        }
    }
    let mut arrays = Vec::with_capacity(values.len());
    for (value, &index) in values.iter().zip(&record.primary_key) {
        let array = value.to_array_of_size(1).ok()?;
        arrays.push(cast(&array, &record.columns[index].sql_type.arrow_type()).ok()?);
    }
    rows::encode_key(&arrays, 0, &mut key).then_some(key)
}

/// A non-NULL signed integer value.
fn integer_of(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::Int64(v) => *v,
        ScalarValue::Int32(v) => v.map(i64::from),
        ScalarValue::Int16(v) => v.map(i64::from),
        ScalarValue::Int8(v) => v.map(i64::from),
        _ => None,
    }
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
        let table_id = self.record.table_id;
        let committed = !pending.as_ref().is_some_and(|p| p.truncated(table_id));
        let pending_tables = pending
            .as_ref()
            .map(|p| p.tables.lock().expect("pending writes"));
        let pending_rows = pending_tables
            .as_ref()
            .and_then(|tables| tables.get(&table_id));
        // Every read below sees one moment: a flush publishing meanwhile moves rows from the
        // hot keys into a segment, and the two reads must not straddle it.
        let owned_view = Arc::new(OwnedView::pinned(self.store.clone()));
        let view = owned_view.view();
        let segments = if committed {
            view.segments(table_id).map_err(storage_error)?
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
        let committed_rows = match (stored_layout, committed) {
            (_, false) => CommittedRows::Hidden,
            (Some(stored), true) => CommittedRows::Relayout(Arc::new(stored.columns)),
            (None, true) => CommittedRows::Current,
        };
        let output: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let output_schema = self.output_schema(projection)?;
        // A block's own DDL may have created an index not committed yet: only committed
        // indexes, whose entries exist, are read.
        if point.is_none() && committed && catalog_unchanged {
            let indexes = self.store.indexes_of(table_id).map_err(storage_error)?;
            if let Some(range) = super::index_scan::choose(&self.record, &indexes, filters)
                && let Some(keys) = view
                    .index_row_keys(&range.low, &range.high, super::index_scan::MAX_INDEXED_ROWS)
                    .map_err(storage_error)?
            {
                let rows = self.read_keys(view, pending_rows, keys, projection)?;
                return Ok(Arc::new(super::index_scan::IndexScanExec::new(
                    MemorySourceConfig::try_new_exec(&[vec![rows]], output_schema, None)?,
                    &range,
                )));
            }
        }
        if let Some(key) = point {
            let (batch, hot) =
                self.read_point(view, pending_rows, &committed_rows, &key, &output)?;
            // A point read looks only at the segment the cold index names, unless the key is
            // hot.
            let entry = if hot || segments.is_empty() {
                None
            } else {
                view.cold_entry(&key).map_err(storage_error)?
            };
            let cold = match entry {
                Some(entry) => entry,
                _ => {
                    return Ok(MemorySourceConfig::try_new_exec(
                        &[vec![batch]],
                        output_schema,
                        None,
                    )?);
                }
            };
            if let Some(row) = super::cold::read_cold_row(
                &self.store,
                &self.record,
                &segments,
                cold,
                &output,
                output_schema.clone(),
            )? {
                return Ok(MemorySourceConfig::try_new_exec(
                    &[vec![row]],
                    output_schema,
                    None,
                )?);
            }
            let segments: Vec<SegmentRecord> = segments
                .into_iter()
                .filter(|s| s.segment_id == cold.segment_id)
                .collect();
            let hot =
                MemorySourceConfig::try_new_exec(&[vec![batch]], output_schema.clone(), None)?;
            let mut inputs: Vec<Arc<dyn ExecutionPlan>> = vec![hot];
            inputs.extend(super::cold::scan_segments(
                &self.store,
                view,
                &self.record,
                &segments,
                &Shadowed::default(),
                &output,
                output_schema,
            )?);
            return datafusion::physical_plan::union::UnionExec::try_new(inputs);
        }
        let shadowed = if segments.is_empty() {
            Shadowed::default()
        } else {
            self.shadowed(&owned_view, pending_rows)?
        };
        let pending_copy = pending_rows
            .filter(|rows| !rows.is_empty())
            .map(|rows| Arc::new(rows.clone()));
        drop(pending_tables);
        let source = HotSource {
            view: owned_view.clone(),
            record: self.record.clone(),
            scan_schema: self.schema.clone(),
            committed: committed_rows,
            pending: pending_copy,
            projection: output.clone(),
        };
        let hot: Arc<dyn ExecutionPlan> = Arc::new(HotScanExec::new(source, limit)?);
        if segments.is_empty() {
            return Ok(hot);
        }
        let mut inputs = vec![hot];
        inputs.extend(super::cold::scan_segments(
            &self.store,
            view,
            &self.record,
            &segments,
            &shadowed,
            &output,
            output_schema,
        )?);
        datafusion::physical_plan::union::UnionExec::try_new(inputs)
    }
}
