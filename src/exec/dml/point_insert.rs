//! The single-row INSERT fast path: `INSERT INTO t [(columns)] VALUES (...)`, optionally with
//! `ON CONFLICT [target] DO NOTHING`, where every value is a parameter or a constant
//! and every column left out has no default.
//!
//! The general path binds the parameters into a copy of the statement, resolves the table,
//! parses each column's default and reads the VALUES list back out of the syntax tree on
//! every execution; for the statement a service sends most after a point read that costs
//! about as much as the write. Here the shape is recognised once at Parse, and an execution
//! builds the one row from its parameters and hands it to the same checks, keys, ON CONFLICT
//! handling and `WriteRows` command as the general path. Whatever the shape does not cover
//! (a value that needs a cast, a default to evaluate, a changed table, the block's own DDL,
//! RETURNING) answers `None`, and the statement runs the general way.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, ConflictTarget, OnConflictAction, OnInsert, SetExpr, TableObject,
};

use super::arbiters::{Arbiters, OnConflict};
use super::point_write::{assigned_array, value_of};
use super::prepared_target::PreparedTarget;
use crate::exec::outcome::Outcome;
use crate::exec::planner::LazyPlanner;
use crate::exec::point_query::KeyValue;
use crate::exec::{ExecResult, Session};
use crate::model::TableKind;
use crate::model::types::Identity;
use crate::storage::TableRecord;

/// ON CONFLICT's arbiters as resolved at a catalog epoch.
type ArbitersAtEpoch = (u64, Arc<Arbiters>);

/// A prepared single-row INSERT of parameters and constants.
#[derive(Debug, Clone)]
pub struct PointInsert {
    target: PreparedTarget,
    /// Each VALUES item: the column it fills (table position) and its value.
    values: Vec<(usize, KeyValue)>,
    /// `ON CONFLICT [target] DO NOTHING`: the target (its arbiters are resolved at each
    /// execution, against the indexes the table has then).
    skip_conflicts: Option<Option<ConflictTarget>>,
    /// The primary key when prepared.
    primary_key: Vec<usize>,
    /// The ON CONFLICT target's arbiters as of a catalog epoch: resolving them reads the
    /// table's indexes, as much work as the rest of a point write.
    arbiters: Arc<Mutex<Option<ArbitersAtEpoch>>>,
}

impl PointInsert {
    /// Recognises the shape in `statement`, an INSERT into `record`.
    pub fn recognize(statement: &ast::Statement, record: &TableRecord) -> Option<PointInsert> {
        let ast::Statement::Insert(insert) = statement else {
            return None;
        };
        let TableObject::TableName(name) = &insert.table else {
            return None;
        };
        if !matches!(record.kind, TableKind::Regular) || insert.returning.is_some() {
            return None;
        }
        let source = insert.source.as_deref()?;
        if source.with.is_some()
            || source.order_by.is_some()
            || source.limit_clause.is_some()
            || source.fetch.is_some()
        {
            return None;
        }
        let SetExpr::Values(values) = source.body.as_ref() else {
            return None;
        };
        let [row] = values.rows.as_slice() else {
            return None;
        };
        let targets = target_columns(record, &insert.columns, row.len())?;
        let values = row
            .iter()
            .zip(targets)
            .map(|(expr, column)| Some((column, value_of(expr)?)))
            .collect::<Option<Vec<_>>>()?;
        let skip_conflicts = match &insert.on {
            None => None,
            Some(OnInsert::OnConflict(on_conflict))
                if matches!(on_conflict.action, OnConflictAction::DoNothing) =>
            {
                Some(on_conflict.conflict_target.clone())
            }
            Some(_) => return None,
        };
        let insert = PointInsert {
            target: PreparedTarget::new(name, record)?,
            values,
            skip_conflicts,
            primary_key: record.primary_key.clone(),
            arbiters: Arc::default(),
        };
        insert.fits(record).then_some(insert)
    }

    /// Whether the table's definition (as it is now) still lets this path write the row as
    /// the general path would: the same primary key, no default to evaluate for a column
    /// left out, and no `GENERATED ALWAYS` column given a value.
    fn fits(&self, record: &TableRecord) -> bool {
        if record.primary_key != self.primary_key {
            return false;
        }
        record.columns.iter().enumerate().all(|(position, column)| {
            match self.values.iter().any(|(given, _)| *given == position) {
                true => column.identity != Some(Identity::Always),
                false => column.default.is_none() && column.identity.is_none(),
            }
        })
    }
}

/// The columns a VALUES row of `width` items fills: the listed ones, or the leading ones
/// without a list. `None` for anything the general path reports an error for.
fn target_columns(
    record: &TableRecord,
    listed: &[ast::ObjectName],
    width: usize,
) -> Option<Vec<usize>> {
    if listed.is_empty() {
        return (width <= record.columns.len()).then(|| (0..width).collect());
    }
    let mut targets = Vec::with_capacity(listed.len());
    for name in listed {
        let [part] = name.0.as_slice() else {
            return None;
        };
        let column = crate::sql::fold(part.as_ident()?);
        let position = record.columns.iter().position(|c| c.name == column)?;
        if targets.contains(&position) {
            return None;
        }
        targets.push(position);
    }
    (targets.len() == width).then_some(targets)
}

impl Session {
    /// Runs `insert` (prepared from `statement`) with `params`, or answers `None` when the
    /// general path must.
    pub(in crate::exec) async fn point_insert(
        &self,
        insert: &PointInsert,
        statement: &ast::Statement,
        params: &[ScalarValue],
    ) -> ExecResult<Option<Outcome>> {
        let Some((record, _)) = self.prepared_table(&insert.target)? else {
            return Ok(None);
        };
        if !insert.fits(&record) {
            return Ok(None);
        }
        let mut columns: Vec<Option<ArrayRef>> = vec![None; record.columns.len()];
        for (position, value) in &insert.values {
            let Some(array) = value
                .resolve(params)
                .and_then(|v| assigned_array(v, &record.columns[*position]))
            else {
                return Ok(None);
            };
            columns[*position] = Some(array);
        }
        let columns: Vec<ArrayRef> = columns
            .into_iter()
            .zip(&record.columns)
            .map(|(array, column)| {
                array.unwrap_or_else(|| new_null_array(&column.sql_type.arrow_type(), 1))
            })
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, array)| Field::new(format!("c{i}"), array.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| crate::exec::ExecError::Internal(e.to_string()))?;
        let rows = self.table_rows(&record, &[batch])?;
        let planner = LazyPlanner::new(self, statement);
        let arbiters = match &insert.skip_conflicts {
            Some(target) => Some(self.point_arbiters(insert, &record, target.as_ref())?),
            None => None,
        };
        let on_conflict = arbiters.as_deref().map(|arbiters| OnConflict {
            action: &OnConflictAction::DoNothing,
            arbiters,
        });
        let written = self
            .insert_rows(&planner, (&record, &record.name), &rows, on_conflict)
            .await?;
        Ok(Some(Outcome::Affected {
            tag: "INSERT",
            rows: written.len,
        }))
    }

    /// `insert`'s ON CONFLICT arbiters on `record`, resolved again after any DDL. The caller
    /// has checked that the block has no DDL of its own (`prepared_table`).
    fn point_arbiters(
        &self,
        insert: &PointInsert,
        record: &TableRecord,
        target: Option<&ConflictTarget>,
    ) -> ExecResult<Arc<Arbiters>> {
        let epoch = self.engine.store.catalog_epoch();
        let mut cached = insert.arbiters.lock().expect("point insert arbiters");
        if let Some((at, arbiters)) = cached.as_ref()
            && *at == epoch
        {
            return Ok(arbiters.clone());
        }
        let arbiters = Arc::new(self.arbiters(record, target, &OnConflictAction::DoNothing)?);
        *cached = Some((epoch, arbiters.clone()));
        Ok(arbiters)
    }
}
