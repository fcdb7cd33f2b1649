//! The primary-key point read fast path: `SELECT cols FROM t WHERE pk = $1` without DataFusion.
//!
//! Planning, optimizing and building a physical plan costs far more than reading one row from
//! RocksDB, and a prepared point SELECT is the most common statement a service sends. When a
//! prepared query's logical plan is exactly a projection of plain columns over a filter that
//! pins every primary-key column of one user table to a parameter or literal, the execution
//! reads the row directly: the session's uncommitted writes first, then the hot rows. Anything
//! the fast path does not cover (a key held only in a Parquet segment, a changed table, a value
//! that does not convert) answers `None`, and the statement runs through DataFusion as usual,
//! so both paths give the same answer.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};

use super::table::{PendingWrites, UserTable, encode_point_key};
use crate::model::TableKind;
use crate::storage::Store;

/// Where a key column's value comes from at execution.
#[derive(Debug, Clone)]
enum KeyValue {
    /// `$n`, zero-based.
    Parameter(usize),
    Literal(ScalarValue),
}

/// A table and the catalog epoch its definition was read at.
type CachedTable = (u64, Arc<UserTable>);

/// A prepared query the fast path can answer.
#[derive(Debug, Clone)]
pub struct PointQuery {
    namespace: String,
    table: String,
    table_id: u64,
    /// The number of columns the table had when planned; ALTER TABLE changes it.
    column_count: usize,
    /// Per primary-key column, in key order.
    key: Vec<KeyValue>,
    /// Table column indexes of the output columns.
    projection: Vec<usize>,
    /// The table as of a catalog epoch, so executions skip reading its definition.
    cached: Arc<Mutex<Option<CachedTable>>>,
}

impl PointQuery {
    /// Recognises the plan shape `Projection(columns) <- Filter(pk = value AND ...) <- Scan`.
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
        if record.primary_key.is_empty() || !matches!(record.kind, TableKind::Regular) {
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
        let mut key = Vec::with_capacity(record.primary_key.len());
        for &index in &record.primary_key {
            let mut values = pinned
                .iter()
                .filter(|(column, _)| column_index(column) == Some(index));
            let (_, value) = values.next()?;
            if values.next().is_some() {
                return None;
            }
            key.push(value.clone());
        }
        // Every condition must be on a key column, each exactly once.
        if pinned.len() != key.len() {
            return None;
        }
        Some(PointQuery {
            namespace: record.namespace.clone(),
            table: record.name.clone(),
            table_id: record.table_id,
            column_count: record.columns.len(),
            key,
            projection: output,
            cached: Arc::default(),
        })
    }

    /// The table as of the current catalog epoch (read again only after a catalog change).
    fn table(&self, store: &Arc<Store>) -> Option<Arc<UserTable>> {
        let epoch = store.catalog_epoch();
        let mut cached = self.cached.lock().expect("point query cache");
        if let Some((at, table)) = cached.as_ref()
            && *at == epoch
        {
            return Some(table.clone());
        }
        let record = store.table(&self.namespace, &self.table).ok()??;
        let table = Arc::new(UserTable::new(store.clone(), Arc::new(record), false));
        *cached = Some((epoch, table.clone()));
        Some(table)
    }

    /// Reads the row, or `None` when the general path must answer.
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
        let table = self.table(store)?;
        let record = table.record();
        if record.table_id != self.table_id || record.columns.len() != self.column_count {
            return None;
        }
        let values: Vec<&ScalarValue> = self
            .key
            .iter()
            .map(|value| match value {
                KeyValue::Parameter(n) => params.get(*n),
                KeyValue::Literal(v) => Some(v),
            })
            .collect::<Option<_>>()?;
        if values.iter().any(|v| v.is_null()) {
            return None;
        }
        let key = encode_point_key(record, &values)?;
        // The reader produces each column once; a query may name one twice.
        let mut unique: Vec<usize> = Vec::with_capacity(self.projection.len());
        for index in &self.projection {
            if !unique.contains(index) {
                unique.push(*index);
            }
        }
        // Hot row, then cold-index entry, then that entry's segment by id: a flush publishing
        // between any two of these is seen by the later ones, so no snapshot is needed on this
        // path (unlike a scan, which lists segments before it reads rows).
        if pending.truncated(record.table_id) {
            return None;
        }
        let view = store.unpinned_view();
        let (batch, hot_keys) = {
            let tables = pending.tables.lock().expect("pending writes");
            table
                .read(
                    &view,
                    tables.get(&record.table_id),
                    true,
                    Some(key.clone()),
                    Some(&unique),
                    None,
                )
                .ok()?
        };
        // Not hot: a flushed row is read at its segment position (or by the general path
        // when that position is not recorded).
        // (A hot row, or its tombstone, answers without looking at the cold index.)
        let batch = if hot_keys.is_empty()
            && let Some(entry) = view.cold_entry(&key).ok()?
        {
            table.read_cold_point(entry, &unique).ok()??
        } else {
            batch
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
