//! The point read fast path: `SELECT cols FROM t WHERE pk = $1`, or `WHERE col = $1` on the
//! leading columns of a secondary index, without DataFusion.
//!
//! Planning, optimizing and building a physical plan costs far more than reading one row from
//! RocksDB, and a prepared point SELECT is the most common statement a service sends. When a
//! prepared query's logical plan is exactly a projection of plain columns over a filter that
//! pins columns of one user table to a parameter or literal, the execution reads the rows
//! directly. Pinning every primary-key column reads one key: the session's uncommitted writes
//! first, then the hot row, then its flushed copy. Pinning the leading columns of an index
//! reads the index's entries for those values and the rows they name, in one snapshot (so an
//! entry and its row agree). Anything the fast path does not cover (a changed table, no usable
//! index, uncommitted rows in the table, a value that does not convert) answers `None`, and the
//! statement runs through DataFusion as usual, so both paths give the same answer.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};

use super::index_scan::{MAX_INDEXED_ROWS, exact_value_key};
use super::table::{PendingWrites, UserTable, encode_point_key};
use crate::model::TableKind;
use crate::storage::{IndexRecord, IndexState, Store, TableRecord, prefix_end};

/// Where a pinned column's value comes from at execution.
#[derive(Debug, Clone)]
pub(super) enum KeyValue {
    /// `$n`, zero-based.
    Parameter(usize),
    Literal(ScalarValue),
}

impl KeyValue {
    /// The value an execution with `params` gives (`None`: no such parameter).
    pub fn resolve<'a>(&'a self, params: &'a [ScalarValue]) -> Option<&'a ScalarValue> {
        match self {
            KeyValue::Parameter(n) => params.get(*n),
            KeyValue::Literal(v) => Some(v),
        }
    }
}

/// A table, its indexes, and the catalog epoch they were read at.
type CachedTable = (u64, Arc<UserTable>, Arc<Vec<IndexRecord>>);

/// What the filter pins.
#[derive(Debug, Clone)]
enum Lookup {
    /// Every primary-key column, in key order.
    PrimaryKey(Vec<KeyValue>),
    /// Other columns (table positions), for an index whose leading columns they are.
    Indexed(Vec<(usize, KeyValue)>),
}

/// A prepared query the fast path can answer.
#[derive(Debug, Clone)]
pub struct PointQuery {
    namespace: String,
    table: String,
    table_id: u64,
    /// The number of columns the table had when planned; ALTER TABLE changes it.
    column_count: usize,
    /// The table's layout generation when planned: DROP COLUMN or ALTER COLUMN TYPE since
    /// moves columns or changes their types (the general path then plans again).
    layout_generation: u64,
    lookup: Lookup,
    /// Table column indexes of the output columns.
    projection: Vec<usize>,
    /// The table as of a catalog epoch, so executions skip reading its definition.
    cached: Arc<Mutex<Option<CachedTable>>>,
}

impl PointQuery {
    /// Recognises the plan shape `Projection(columns) <- Filter(col = value AND ...) <- Scan`.
    pub fn recognize(plan: &LogicalPlan) -> Option<PointQuery> {
        let LogicalPlan::Projection(projection) = plan else {
            return None;
        };
        let LogicalPlan::Filter(filter) = projection.input.as_ref() else {
            return None;
        };
        let LogicalPlan::TableScan(scan) = filter.input.as_ref() else {
            return None;
        };
        if !scan.filters.is_empty() || scan.fetch.is_some() || scan.projection.is_some() {
            return None;
        }
        let provider = source_as_provider(&scan.source).ok()?;
        let table = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<UserTable>()?;
        let record = table.record();
        if !matches!(record.kind, TableKind::Regular) {
            return None;
        }
        let column_index =
            |column: &Column| record.columns.iter().position(|c| c.name == column.name);
        let mut output = Vec::with_capacity(projection.expr.len());
        for expr in &projection.expr {
            let column = match expr {
                Expr::Column(column) => column,
                Expr::Alias(alias) => match alias.expr.as_ref() {
                    Expr::Column(column) => column,
                    _ => return None,
                },
                _ => return None,
            };
            output.push(column_index(column)?);
        }
        let mut pinned = Vec::new();
        if !collect_pins(&filter.predicate, &mut pinned) {
            return None;
        }
        let mut columns: Vec<(usize, KeyValue)> = Vec::with_capacity(pinned.len());
        for (column, value) in pinned {
            let index = column_index(&column)?;
            // A column pinned twice is left to the general path.
            if columns.iter().any(|(c, _)| *c == index) {
                return None;
            }
            columns.push((index, value));
        }
        let value_of = |key: &usize| columns.iter().find(|(c, _)| c == key).map(|(_, v)| v);
        let lookup = if !record.primary_key.is_empty()
            && columns.len() == record.primary_key.len()
            && record.primary_key.iter().all(|k| value_of(k).is_some())
        {
            Lookup::PrimaryKey(
                record
                    .primary_key
                    .iter()
                    .filter_map(|k| value_of(k).cloned())
                    .collect(),
            )
        } else {
            Lookup::Indexed(columns)
        };
        Some(PointQuery {
            namespace: record.namespace.clone(),
            table: record.name.clone(),
            table_id: record.table_id,
            column_count: record.columns.len(),
            layout_generation: record.layout_generation,
            lookup,
            projection: output,
            cached: Arc::default(),
        })
    }

    /// The table and its indexes as of the current catalog epoch (read again only after a
    /// catalog change).
    fn table(&self, store: &Arc<Store>) -> Option<(Arc<UserTable>, Arc<Vec<IndexRecord>>)> {
        let epoch = store.catalog_epoch();
        let mut cached = self.cached.lock().expect("point query cache");
        if let Some((at, table, indexes)) = cached.as_ref()
            && *at == epoch
        {
            return Some((table.clone(), indexes.clone()));
        }
        let record = store.table(&self.namespace, &self.table).ok()??;
        let indexes = Arc::new(store.indexes_of(record.table_id).ok()?);
        let table = Arc::new(UserTable::new(store.clone(), Arc::new(record), false));
        *cached = Some((epoch, table.clone(), indexes.clone()));
        Some((table, indexes))
    }

    /// Reads the rows, or `None` when the general path must answer.
    pub fn execute(
        &self,
        store: &Arc<Store>,
        pending: &PendingWrites,
        params: &[ScalarValue],
        schema: &SchemaRef,
    ) -> Option<RecordBatch> {
        // The block's own DDL is not in the committed catalog this path reads.
        if !pending.catalog_changes().is_empty() {
            return None;
        }
        let (table, indexes) = self.table(store)?;
        let record = table.record();
        if record.table_id != self.table_id
            || record.columns.len() != self.column_count
            || record.layout_generation != self.layout_generation
        {
            return None;
        }
        if pending.truncated(record.table_id) {
            return None;
        }
        let value = |value: &KeyValue| -> Option<ScalarValue> {
            let v = value.resolve(params)?;
            (!v.is_null()).then(|| v.clone())
        };
        // The reader produces each column once; a query may name one twice.
        let mut unique: Vec<usize> = Vec::with_capacity(self.projection.len());
        for index in &self.projection {
            if !unique.contains(index) {
                unique.push(*index);
            }
        }
        let batch = match &self.lookup {
            Lookup::PrimaryKey(key) => {
                let values: Vec<ScalarValue> = key.iter().map(value).collect::<Option<_>>()?;
                let values: Vec<&ScalarValue> = values.iter().collect();
                let key = encode_point_key(record, &values)?;
                read_by_key(&table, store, pending, key, &unique)?
            }
            Lookup::Indexed(columns) => {
                // The session's uncommitted rows of the table are in no index yet.
                if pending
                    .tables
                    .lock()
                    .expect("pending writes")
                    .get(&record.table_id)
                    .is_some_and(|rows| !rows.is_empty())
                {
                    return None;
                }
                let values: Vec<(usize, ScalarValue)> = columns
                    .iter()
                    .map(|(c, v)| Some((*c, value(v)?)))
                    .collect::<Option<_>>()?;
                let view = store.view();
                let keys = match index_probe(record, &indexes, &values)? {
                    IndexProbe::Unique(entry) => view
                        .unique_entry_row_key(&entry)
                        .ok()?
                        .into_iter()
                        .collect(),
                    IndexProbe::Range(low, high) => {
                        view.index_row_keys(&low, &high, MAX_INDEXED_ROWS).ok()??
                    }
                };
                let batches = table.read_rows(&view, None, &keys, &unique).ok()?;
                let read_schema = std::sync::Arc::new(table.schema().project(&unique).ok()?);
                concat_batches(&read_schema, &batches).ok()?
            }
        };
        let arrays: Vec<ArrayRef> = self
            .projection
            .iter()
            .zip(schema.fields())
            .map(|(index, field)| {
                let at = unique.iter().position(|u| u == index)?;
                let array = batch.column(at).clone();
                if array.data_type() == field.data_type() {
                    Some(array)
                } else {
                    cast(&array, field.data_type()).ok()
                }
            })
            .collect::<Option<_>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(schema.clone(), arrays, &options).ok()
    }
}

/// One row by primary key. Hot row, then cold-index entry, then that entry's segment by id: a
/// flush publishing between any two of these is seen by the later ones, so no snapshot is
/// needed (unlike a scan, which lists segments before it reads rows).
fn read_by_key(
    table: &UserTable,
    store: &Store,
    pending: &PendingWrites,
    key: Vec<u8>,
    columns: &[usize],
) -> Option<RecordBatch> {
    let view = store.unpinned_view();
    let (batch, hot) = {
        let tables = pending.tables.lock().expect("pending writes");
        table
            .read_point(
                &view,
                tables.get(&table.record().table_id),
                &super::table::CommittedRows::Current,
                &key,
                columns,
            )
            .ok()?
    };
    // Not hot: a flushed row is read at its segment position (or by the general path when
    // that position is not recorded). A hot row, or its tombstone, answers without looking
    // at the cold index.
    if !hot && let Some(entry) = view.cold_entry(&key).ok()? {
        table.read_cold_point(entry, columns).ok()?
    } else {
        Some(batch)
    }
}

/// Where an index lookup finds its entries.
enum IndexProbe {
    /// Every column of a unique index is pinned to a non-NULL value: at most one entry, keyed
    /// by the values alone, found with a point read (bloom filters skip most files, where a
    /// range must seek in every level).
    Unique(Vec<u8>),
    /// The entries from the first key (inclusive) to the second (exclusive).
    Range(Vec<u8>, Vec<u8>),
}

/// The entries of a ready index whose leading columns are exactly the pinned ones, holding
/// `values` (table position and value per pinned column, none of them NULL).
fn index_probe(
    record: &TableRecord,
    indexes: &[IndexRecord],
    values: &[(usize, ScalarValue)],
) -> Option<IndexProbe> {
    let index = indexes
        .iter()
        .filter(|i| i.state == IndexState::Ready && i.columns.len() >= values.len())
        .filter(|i| {
            i.columns[..values.len()]
                .iter()
                .all(|c| values.iter().any(|(v, _)| v == c))
        })
        .min_by_key(|i| i.columns.len())?;
    let mut low = index.index_id.to_be_bytes().to_vec();
    for position in &index.columns[..values.len()] {
        let (_, value) = values.iter().find(|(c, _)| c == position)?;
        low.extend_from_slice(&exact_value_key(record, *position, value)?);
    }
    if index.unique && index.columns.len() == values.len() {
        return Some(IndexProbe::Unique(low));
    }
    let high = prefix_end(&low)?;
    Some(IndexProbe::Range(low, high))
}

/// Collects `column = $n` / `column = literal` conjuncts; false if anything else appears.
fn collect_pins(expr: &Expr, out: &mut Vec<(Column, KeyValue)>) -> bool {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return false;
    };
    match op {
        Operator::And => collect_pins(left, out) && collect_pins(right, out),
        Operator::Eq => {
            let (column, value) = match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), v) | (v, Expr::Column(c)) => (c, v),
                _ => return false,
            };
            let value = match value {
                Expr::Placeholder(p) => {
                    match p.id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                        Some(n) if n >= 1 => KeyValue::Parameter(n - 1),
                        _ => return false,
                    }
                }
                Expr::Literal(v, _) => KeyValue::Literal(v.clone()),
                _ => return false,
            };
            out.push((column.clone(), value));
            true
        }
        _ => false,
    }
}
