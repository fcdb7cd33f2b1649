//! INSERT, UPDATE, DELETE and COPY.
//!
//! Each statement is planned as a DataFusion logical plan over the session's own state: the
//! source rows of an INSERT, the new rows of an UPDATE (with the hidden key and version of each
//! row it replaces), the rows a DELETE removes, and RETURNING over the rows written. Every
//! expression, subquery and function DataFusion supports works in VALUES, SET and WHERE. The
//! rows are then checked against the table's definition, encoded, and written as one
//! `WriteRows` command whose expectations (key absent, row unchanged since read) make concurrent
//! writers safe: an INSERT of an existing key fails with 23505, and an UPDATE that lost a race
//! is retried against the new row version.

mod arbiters;
pub(super) mod coercion;
mod copy;
mod insert;
mod literals;
mod modify;
mod point_insert;
mod point_write;
mod prepared_target;
mod returning;
mod upsert;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::{self, AssignmentTarget, FromTable, SelectItem, TableFactor};

use crate::exec::planner::{LazyPlanner, StatementPlanner};
pub(super) use coercion::conform;
pub use copy::CopyIn;
pub use point_insert::PointInsert;
pub use point_write::PointWrite;

use super::outcome::Outcome;
use super::table::{KEY_COLUMN, VERSION_COLUMN};
use super::{ExecError, ExecResult, Session};
use crate::model::TableKind;
use crate::model::types::{ColumnDef, SqlType, schema_of};
use crate::sql::TableName;
use crate::storage::TableRecord;
use crate::storage::rows;

/// How many times an autocommit UPDATE or upsert is re-run after losing a write race. Each
/// retry reads the newer row, so a retry only fails again if yet another writer got in first.
const WRITE_RETRIES: usize = 64;

/// A DML statement's table, the name its expressions call it by, and its RETURNING list.
pub(super) type DmlTarget<'s> = (TableRecord, String, Option<&'s [SelectItem]>);

/// Rows of a table, one array per column in table order, already checked against it.
struct TableRows {
    columns: Vec<ArrayRef>,
    len: usize,
}

impl TableRows {
    fn batch(&self, record: &TableRecord) -> ExecResult<RecordBatch> {
        RecordBatch::try_new(schema_of(&record.columns), self.columns.clone())
            .map_err(|e| ExecError::Internal(e.to_string()))
    }

    fn take(&self, indices: &[usize]) -> ExecResult<TableRows> {
        let indices = datafusion::arrow::array::UInt32Array::from_iter_values(
            indices.iter().map(|&i| i as u32),
        );
        let columns = self
            .columns
            .iter()
            .map(|c| datafusion::arrow::compute::take(c, &indices, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExecError::Internal(e.to_string()))?;
        Ok(TableRows {
            columns,
            len: indices.len(),
        })
    }

    fn append(self, more: TableRows) -> ExecResult<TableRows> {
        let columns = self
            .columns
            .iter()
            .zip(&more.columns)
            .map(|(x, y)| datafusion::arrow::compute::concat(&[x.as_ref(), y.as_ref()]))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ExecError::Internal(e.to_string()))?;
        Ok(TableRows {
            columns,
            len: self.len + more.len,
        })
    }
}

/// Rows an UPDATE-shaped plan produced: what to write, and the new rows for RETURNING.
struct UpdatedRows {
    /// (key, version read, encoded new row)
    writes: Vec<(Vec<u8>, Option<u64>, Vec<u8>)>,
    rows: TableRows,
}

/// `alias.name` in a plan whose relation the statement calls `alias`.
fn column_ref(alias: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(TableReference::bare(alias)), name))
}

fn assignment_column(record: &TableRecord, target: &AssignmentTarget) -> ExecResult<usize> {
    let name = match target {
        AssignmentTarget::ColumnName(name) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(crate::sql::fold)
            .unwrap_or_default(),
        AssignmentTarget::Tuple(_) => {
            return Err(ExecError::Sql(crate::sql::SqlError::Unsupported(
                "multiple-column assignment is not supported".into(),
            )));
        }
    };
    column_index(record, &name)
}

/// The index of a column by name, or 42703 naming the table.
pub(in crate::exec) fn column_index(record: &TableRecord, name: &str) -> ExecResult<usize> {
    record
        .columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| {
            ExecError::UndefinedColumn(format!(
                "column \"{name}\" of relation \"{}\" does not exist",
                record.name
            ))
        })
}

fn unsupported(what: &str) -> ExecError {
    ExecError::Sql(crate::sql::SqlError::Unsupported(format!(
        "{what} is not supported"
    )))
}

/// An UPDATE-shaped projection over `schema`: every column as read from `alias`, or its SET
/// value (after `rewrite`) cast for the column, followed by the row's hidden key and version.
fn updated_row_values(
    planner: &StatementPlanner,
    record: &TableRecord,
    alias: &str,
    assignments: &[ast::Assignment],
    schema: &DFSchema,
    rewrite: impl Fn(&ast::Expr) -> ast::Expr,
) -> ExecResult<Vec<Expr>> {
    let mut values: Vec<Expr> = record
        .columns
        .iter()
        .map(|c| column_ref(alias, &c.name))
        .collect();
    for assignment in assignments {
        let index = assignment_column(record, &assignment.target)?;
        let column = &record.columns[index];
        if column.identity == Some(crate::model::types::Identity::Always) {
            return Err(ExecError::GeneratedAlways(format!(
                "column \"{}\" can only be updated to DEFAULT",
                column.name
            )));
        }
        let value = planner.expr(&rewrite(&assignment.value), schema)?;
        values[index] =
            coercion::assignment_cast(value, column.sql_type, schema)?.alias(&column.name);
    }
    values.push(column_ref(alias, KEY_COLUMN));
    values.push(column_ref(alias, VERSION_COLUMN));
    Ok(values)
}

/// Functions that return a set of rows; PostgreSQL refuses them where one value is needed.
const SET_RETURNING_FUNCTIONS: [&str; 3] = ["unnest", "generate_series", "generate_subscripts"];

impl Session {
    /// A table that UPDATE or DELETE may change (stream tables only take appended rows).
    pub(in crate::exec) fn table_for_write(&self, name: &TableName) -> ExecResult<TableRecord> {
        let record = self.resolve_table(name)?;
        if let TableKind::Stream { .. } = record.kind {
            return Err(ExecError::WrongObjectType(format!(
                "\"{}\" is a stream table: rows can only be appended with INSERT",
                record.name
            )));
        }
        Ok(record)
    }

    /// The table an INSERT writes and the name its expressions call it by (`None`: an INSERT
    /// into a table function).
    fn insert_target(&self, insert: &ast::Insert) -> ExecResult<Option<(TableRecord, String)>> {
        let ast::TableObject::TableName(object) = &insert.table else {
            return Ok(None);
        };
        let record = self.resolve_table(&TableName::from_object_name(object)?)?;
        let alias = insert
            .table_alias
            .as_ref()
            .map(|a| crate::sql::fold(&a.alias))
            .unwrap_or_else(|| record.name.clone());
        Ok(Some((record, alias)))
    }

    fn dml_target(&self, relation: &TableFactor) -> ExecResult<(TableRecord, String)> {
        let TableFactor::Table { name, alias, .. } = relation else {
            return Err(unsupported("DML on something other than a table"));
        };
        let record = self.table_for_write(&TableName::from_object_name(name)?)?;
        let alias = alias
            .as_ref()
            .map(|a| crate::sql::fold(&a.name))
            .unwrap_or_else(|| record.name.clone());
        Ok((record, alias))
    }

    /// A DML statement's target table, the name its expressions use for it, and its RETURNING.
    pub(super) fn dml_table<'s>(
        &self,
        statement: &'s ast::Statement,
    ) -> ExecResult<Option<DmlTarget<'s>>> {
        Ok(Some(match statement {
            ast::Statement::Insert(insert) => {
                let Some((record, alias)) = self.insert_target(insert)? else {
                    return Ok(None);
                };
                (record, alias, insert.returning.as_deref())
            }
            ast::Statement::Update(update) => {
                let (record, alias) = self.dml_target(&update.table.relation)?;
                (record, alias, update.returning.as_deref())
            }
            ast::Statement::Delete(delete) => {
                let from = match &delete.from {
                    FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => from,
                };
                let Some(first) = from.first() else {
                    return Ok(None);
                };
                let (record, alias) = self.dml_target(&first.relation)?;
                (record, alias, delete.returning.as_deref())
            }
            _ => return Ok(None),
        }))
    }

    /// Checks computed rows (one column per table column, in table order) against the table:
    /// its column types and NOT NULL, then its CHECK constraints.
    fn table_rows(&self, record: &TableRecord, batches: &[RecordBatch]) -> ExecResult<TableRows> {
        let rows = self.conformed_rows(record, batches)?;
        self.enforce_checks(record, &rows.columns, rows.len)?;
        Ok(rows)
    }

    /// Computed rows in the table's column types (NOT NULL checked).
    fn conformed_rows(
        &self,
        record: &TableRecord,
        batches: &[RecordBatch],
    ) -> ExecResult<TableRows> {
        let len: usize = batches.iter().map(|b| b.num_rows()).sum();
        let columns = record
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
                let joined = if parts.is_empty() {
                    datafusion::arrow::array::new_empty_array(&column.sql_type.arrow_type())
                } else {
                    datafusion::arrow::compute::concat(&parts)
                        .map_err(|e| ExecError::Internal(e.to_string()))?
                };
                conform(record, column, &joined)
            })
            .collect::<ExecResult<Vec<_>>>()?;
        Ok(TableRows { columns, len })
    }

    /// Turns the output of an UPDATE-shaped plan (table columns, key, version) into writes.
    /// `written` rows are checked against the table's constraints; rows a DELETE removes are
    /// not.
    fn updated_rows(
        &self,
        record: &TableRecord,
        batches: &[RecordBatch],
        written: bool,
    ) -> ExecResult<UpdatedRows> {
        let rows = if written {
            self.table_rows(record, batches)?
        } else {
            self.conformed_rows(record, batches)?
        };
        let n = record.columns.len();
        let mut identities = Vec::with_capacity(rows.len);
        for batch in batches {
            let keys = batch.column(n).as_binary::<i32>();
            let versions = batch.column(n + 1).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                identities.push((
                    keys.value(i).to_vec(),
                    versions.is_valid(i).then(|| versions.value(i) as u64),
                ));
            }
        }
        let mut encoder = rows::RowEncoder::default();
        let writes = identities
            .into_iter()
            .enumerate()
            .map(|(row, (key, version))| (key, version, encoder.encode(&rows.columns, row)))
            .collect();
        Ok(UpdatedRows { writes, rows })
    }

    /// The command tag, or the RETURNING rows evaluated over the rows the statement wrote.
    async fn finish_dml(
        &self,
        planner: &LazyPlanner<'_>,
        target: (&TableRecord, &str),
        rows: TableRows,
        returning: Option<&[SelectItem]>,
        tag: &'static str,
    ) -> ExecResult<Outcome> {
        let (record, alias) = target;
        let count = rows.len;
        let Some(items) = returning else {
            return Ok(Outcome::Affected { tag, rows: count });
        };
        let (schema, batches) =
            returning::evaluate(planner.get().await?, alias, rows.batch(record)?, items).await?;
        Ok(Outcome::rows(schema, batches))
    }

    /// Evaluates a column's DEFAULT once, cast for the column: CREATE TABLE checks it this way
    /// and ADD COLUMN stores the value existing rows read.
    pub(super) async fn evaluate_default(
        &self,
        default: &str,
        sql_type: SqlType,
    ) -> ExecResult<Vec<RecordBatch>> {
        let expr = crate::sql::parse_expr(default)?;
        let set_returning = ast::visit_expressions(&expr, |e| match e {
            ast::Expr::Function(f)
                if f.name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|name| {
                        SET_RETURNING_FUNCTIONS.contains(&crate::sql::fold(name).as_str())
                    }) =>
            {
                std::ops::ControlFlow::Break(())
            }
            _ => std::ops::ControlFlow::Continue(()),
        })
        .is_break();
        if set_returning {
            return Err(crate::sql::SqlError::Unsupported(
                "set-returning functions are not allowed in DEFAULT expressions".into(),
            )
            .into());
        }
        let planner = StatementPlanner::without_tables(self);
        let empty = DFSchema::empty();
        let value = coercion::assignment_cast(planner.expr(&expr, &empty)?, sql_type, &empty)?;
        let plan = LogicalPlanBuilder::empty(true)
            .project(vec![value])?
            .build()?;
        planner.collect(plan).await
    }
}

/// `columns` of a table plus the hidden key and version columns, as one batch.
fn with_identity(
    record: &TableRecord,
    mut columns: Vec<ArrayRef>,
    keys: Vec<Vec<u8>>,
    versions: Vec<Option<i64>>,
) -> ExecResult<RecordBatch> {
    let mut fields: Vec<Field> = record.columns.iter().map(ColumnDef::field).collect();
    fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
    fields.push(Field::new(VERSION_COLUMN, DataType::Int64, true));
    columns.push(Arc::new(
        datafusion::arrow::array::BinaryArray::from_iter_values(keys),
    ));
    columns.push(Arc::new(datafusion::arrow::array::Int64Array::from(
        versions,
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| ExecError::Internal(e.to_string()))
}
