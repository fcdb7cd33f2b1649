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

use super::table::{PendingWrites, UserTable};
use crate::storage::rows::{self, RowDecoder};
use crate::storage::{Store, TableKind, TableRecord, is_tombstone};

/// Where a key column's value comes from at execution.
#[derive(Debug, Clone)]
enum KeyValue {
    /// `$n`, zero-based.
    Parameter(usize),
    Literal(ScalarValue),
}

/// A table definition and the catalog epoch it was read at.
type CachedTable = (u64, Arc<TableRecord>);

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
    /// The table's definition as of a catalog epoch, so executions skip reading it.
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

    fn table(&self, store: &Store) -> Option<Arc<TableRecord>> {
        let epoch = store.catalog_epoch();
        let mut cached = self.cached.lock().expect("point query cache");
        if let Some((at, record)) = cached.as_ref()
            && *at == epoch
        {
            return Some(record.clone());
        }
        let record = Arc::new(store.table(&self.namespace, &self.table).ok()??);
        *cached = Some((epoch, record.clone()));
        Some(record)
    }

    /// Reads the row, or `None` when the general path must answer.
    pub fn execute(
        &self,
        store: &Store,
        pending: &PendingWrites,
        params: &[ScalarValue],
        schema: &SchemaRef,
    ) -> Option<RecordBatch> {
        let record = self.table(store)?;
        if record.table_id != self.table_id || record.columns.len() != self.column_count {
            return None;
        }
        let mut arrays = Vec::with_capacity(self.key.len());
        for (value, &index) in self.key.iter().zip(&record.primary_key) {
            let value = match value {
                KeyValue::Parameter(n) => params.get(*n)?,
                KeyValue::Literal(v) => v,
            };
            if value.is_null() {
                return None;
            }
            let array = value.to_array_of_size(1).ok()?;
            arrays.push(cast(&array, &record.columns[index].sql_type.arrow_type()).ok()?);
        }
        let mut key = rows::table_prefix(record.table_id).to_vec();
        if !rows::encode_key(&arrays, 0, &mut key) {
            return None;
        }
        let overlay = pending
            .tables
            .lock()
            .expect("pending writes")
            .get(&record.table_id)
            .and_then(|rows| rows.get(&key).cloned());
        let row: Option<Vec<u8>> = match overlay {
            Some(row) => row,
            None => match store.row(&key).ok()? {
                Some(stored) if is_tombstone(&stored) => None,
                Some(stored) => Some(rows::stored_payload(&stored).to_vec()),
                // Not hot: a flushed row is read by the general path.
                None if store.cold_entry(&key).ok()?.is_some() => return None,
                None => None,
            },
        };
        // The decoder produces each column once, in the order asked; a query may repeat one.
        let mut unique: Vec<usize> = Vec::with_capacity(self.projection.len());
        for index in &self.projection {
            if !unique.contains(index) {
                unique.push(*index);
            }
        }
        let columns = Arc::new(record.columns.clone());
        let mut decoder = RowDecoder::new(columns, Some(&unique));
        if let Some(row) = &row {
            decoder.push(row).ok()?;
        }
        let count = decoder.len();
        let decoded = decoder.finish();
        let arrays: Vec<ArrayRef> = self
            .projection
            .iter()
            .zip(schema.fields())
            .map(|(index, field)| {
                let at = unique.iter().position(|u| u == index)?;
                let array = decoded.get(at)?.clone();
                if array.data_type() == field.data_type() {
                    Some(array)
                } else {
                    cast(&array, field.data_type()).ok()
                }
            })
            .collect::<Option<_>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(count));
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
