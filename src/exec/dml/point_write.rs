//! The primary-key write fast path: `UPDATE t SET col = value, ... WHERE pk = value` and
//! `DELETE FROM t WHERE pk = value`, where every value is a parameter or a constant, without
//! DataFusion.
//!
//! Planning an UPDATE (a scan, a filter and a projection, optimized and made physical) costs
//! many times the write it leads to, and an update or delete by key is what a service sends
//! most after a point read. When a prepared statement has that shape, the execution reads the
//! one row the key names (the session's uncommitted version, the hot row, or its flushed copy,
//! with the version it was read at), puts the new values in, and hands the row to the same
//! checks, encoding and `WriteRows` command as the general path. Whatever the shape does not
//! cover (a value that needs a cast, a changed table, the block's own DDL, RETURNING) answers
//! `None` and the statement is planned as usual, so both paths give the same answer.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, Expr, FromTable, TableFactor};

use super::prepared_target::PreparedTarget;
use super::{WRITE_RETRIES, assignment_column, coercion};
use crate::exec::outcome::Outcome;
use crate::exec::params::placeholder_index;
use crate::exec::point_query::KeyValue;
use crate::exec::table::encode_point_key;
use crate::exec::{ExecError, ExecResult, Session};
use crate::model::TableKind;
use crate::model::types::ColumnDef;
use crate::storage::{Expect, RowWrite, TableRecord};

/// A prepared UPDATE or DELETE that names its one row by the whole primary key.
#[derive(Debug, Clone)]
pub struct PointWrite {
    target: PreparedTarget,
    /// One value per primary-key column, in key order.
    key: Vec<KeyValue>,
    /// `None` for a DELETE; for an UPDATE, each SET column (table position) and its value.
    assignments: Option<Vec<(usize, KeyValue)>>,
}

impl PointWrite {
    /// Recognises the shape in `statement` (on `record`, which it calls `alias`).
    pub fn recognize(
        statement: &ast::Statement,
        record: &TableRecord,
        alias: &str,
    ) -> Option<PointWrite> {
        if !matches!(record.kind, TableKind::Regular) || record.primary_key.is_empty() {
            return None;
        }
        let (relation, selection, assignments) = match statement {
            ast::Statement::Update(update) => {
                if update.from.is_some()
                    || !update.table.joins.is_empty()
                    || update.returning.is_some()
                {
                    return None;
                }
                let mut set = Vec::with_capacity(update.assignments.len());
                for assignment in &update.assignments {
                    let column = assignment_column(record, &assignment.target).ok()?;
                    let definition = &record.columns[column];
                    // A key column moves the row; an ALWAYS identity is an error; a column set
                    // twice is an error: the general path handles all three.
                    if record.primary_key.contains(&column)
                        || definition.identity == Some(crate::model::types::Identity::Always)
                        || set.iter().any(|(c, _)| *c == column)
                    {
                        return None;
                    }
                    set.push((column, value_of(&assignment.value)?));
                }
                (&update.table.relation, update.selection.as_ref(), Some(set))
            }
            ast::Statement::Delete(delete) => {
                let from = match &delete.from {
                    FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => from,
                };
                if from.len() != 1
                    || !from[0].joins.is_empty()
                    || delete.using.is_some()
                    || delete.returning.is_some()
                    || delete.limit.is_some()
                    || !delete.order_by.is_empty()
                {
                    return None;
                }
                (&from[0].relation, delete.selection.as_ref(), None)
            }
            _ => return None,
        };
        let TableFactor::Table { name, .. } = relation else {
            return None;
        };
        let mut pins = Vec::new();
        if !collect_pins(selection?, alias, &mut pins) {
            return None;
        }
        let mut key = Vec::with_capacity(record.primary_key.len());
        for &column in &record.primary_key {
            let name = &record.columns[column].name;
            let mut matching = pins.iter().filter(|(pinned, _)| pinned == name);
            let (_, value) = matching.next()?;
            if matching.next().is_some() {
                return None;
            }
            key.push(value.clone());
        }
        // Every pin must be a key column: another one would filter the row further.
        if pins.len() != key.len() {
            return None;
        }
        Some(PointWrite {
            target: PreparedTarget::new(name, record)?,
            key,
            assignments,
        })
    }
}

/// A parameter or a constant as DataFusion would type it.
pub(super) fn value_of(expr: &Expr) -> Option<KeyValue> {
    match placeholder_index(expr) {
        Some(n) => Some(KeyValue::Parameter(n - 1)),
        None => super::literals::literal_scalar(expr).map(KeyValue::Literal),
    }
}

/// Collects `column = value` conjuncts (column names folded); false if anything else appears.
fn collect_pins(expr: &Expr, alias: &str, out: &mut Vec<(String, KeyValue)>) -> bool {
    let Expr::BinaryOp { left, op, right } = expr else {
        return match expr {
            Expr::Nested(inner) => collect_pins(inner, alias, out),
            _ => false,
        };
    };
    match op {
        BinaryOperator::And => collect_pins(left, alias, out) && collect_pins(right, alias, out),
        BinaryOperator::Eq => {
            let pinned = match (column_of(left, alias), column_of(right, alias)) {
                (Some(column), None) => value_of(right).map(|v| (column, v)),
                (None, Some(column)) => value_of(left).map(|v| (column, v)),
                _ => None,
            };
            match pinned {
                Some(pin) => {
                    out.push(pin);
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

/// `column` or `alias.column`, folded.
fn column_of(expr: &Expr, alias: &str) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(crate::sql::fold(ident)),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [qualifier, column] if crate::sql::fold(qualifier) == alias => {
                Some(crate::sql::fold(column))
            }
            _ => None,
        },
        _ => None,
    }
}

/// A key value the fast path can look up exactly as the general path compares it: the
/// column's own type, an integer of another width, or text read as an integer. Anything else
/// (a fraction against an integer key, text against a date) is left to the planner.
fn key_value_fits(value: &ScalarValue, column: &ColumnDef) -> bool {
    let (given, wanted) = (value.data_type(), column.sql_type.arrow_type());
    given == wanted || (wanted.is_integer() && (given.is_integer() || given == DataType::Utf8))
}

/// The one-row array the general path would hand to `conform` for `value` assigned to
/// `column`, or `None` where that takes a cast the fast path does not repeat.
pub(super) fn assigned_array(value: &ScalarValue, column: &ColumnDef) -> Option<ArrayRef> {
    let target = coercion::assigned_type(column.sql_type, &value.data_type());
    if value.is_null() {
        return Some(new_null_array(&target, 1));
    }
    let array = value.to_array_of_size(1).ok()?;
    if array.data_type() == &target {
        return Some(array);
    }
    // The general path's integer cast succeeds exactly when the value fits, and then gives
    // this value; a value that does not fit is left to it (and its error).
    if array.data_type().is_integer() && target.is_integer() {
        let options = CastOptions {
            safe: true,
            ..Default::default()
        };
        let narrowed = cast_with_options(&array, &target, &options).ok()?;
        return (narrowed.null_count() == 0).then_some(narrowed);
    }
    None
}

impl Session {
    /// Runs `write` with `params`, or answers `None` when the general path must.
    pub(in crate::exec) async fn point_write(
        &self,
        write: &PointWrite,
        params: &[ScalarValue],
    ) -> ExecResult<Option<Outcome>> {
        let Some((record, table)) = self.prepared_table(&write.target)? else {
            return Ok(None);
        };
        if self.pending.truncated(record.table_id) {
            return Ok(None);
        }
        let param = |value: &KeyValue| value.resolve(params).cloned();
        let mut key_values = Vec::with_capacity(write.key.len());
        for (value, &column) in write.key.iter().zip(&record.primary_key) {
            let Some(value) = param(value) else {
                return Ok(None);
            };
            // NULL matches no row; the general path says so.
            if value.is_null() || !key_value_fits(&value, &record.columns[column]) {
                return Ok(None);
            }
            key_values.push(value);
        }
        let Some(key) = encode_point_key(&record, &key_values.iter().collect::<Vec<_>>()) else {
            return Ok(None);
        };
        let assigned: Option<Vec<(usize, ArrayRef)>> = match &write.assignments {
            None => None,
            Some(assignments) => {
                let mut arrays = Vec::with_capacity(assignments.len());
                for (column, value) in assignments {
                    let array =
                        param(value).and_then(|v| assigned_array(&v, &record.columns[*column]));
                    let Some(array) = array else {
                        return Ok(None);
                    };
                    arrays.push((*column, array));
                }
                Some(arrays)
            }
        };
        let tag = if assigned.is_some() {
            "UPDATE"
        } else {
            "DELETE"
        };
        let identity: Vec<usize> = (0..record.columns.len() + 2).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let read = {
                let view = self.engine.store.unpinned_view();
                let tables = self.pending.tables.lock().expect("pending writes");
                table.read_rows(
                    &view,
                    tables.get(&record.table_id),
                    std::slice::from_ref(&key),
                    &identity,
                )?
            };
            let found = concat_batches(&table.schema(), &read)
                .map_err(|e| ExecError::Internal(e.to_string()))?;
            if found.num_rows() == 0 {
                return Ok(Some(Outcome::Affected { tag, rows: 0 }));
            }
            let mut columns = found.columns().to_vec();
            for (column, array) in assigned.iter().flatten() {
                columns[*column] = array.clone();
            }
            // The assigned values keep the type `conform` takes them in, as the general
            // path's projection does.
            let fields: Vec<Field> = found
                .schema()
                .fields()
                .iter()
                .zip(&columns)
                .map(|(field, array)| Field::new(field.name(), array.data_type().clone(), true))
                .collect();
            let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
                .map_err(|e| ExecError::Internal(e.to_string()))?;
            let updated = self.updated_rows(&record, &[batch], assigned.is_some())?;
            let rows = updated.rows.len;
            let writes = updated
                .writes
                .into_iter()
                .map(|(key, version, value)| RowWrite {
                    key,
                    // An UPDATE writes over the version it read (a lost race retries); a
                    // DELETE removes whatever is there, as the general path does.
                    expect: match (&assigned, version) {
                        (Some(_), Some(version)) => Expect::Version(version),
                        _ => Expect::Anything,
                    },
                    value: assigned.is_some().then_some(value),
                    moved_to: None,
                })
                .collect();
            match self.commit_rows(&record, writes, None).await {
                Err(ExecError::ConcurrentUpdate(_))
                    if attempt < WRITE_RETRIES && !self.in_transaction_block() =>
                {
                    continue;
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(Some(Outcome::Affected { tag, rows })),
            }
        }
    }
}
