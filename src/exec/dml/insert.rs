//! INSERT: the source rows (constant VALUES built directly, anything else planned), defaults
//! for the columns not named, keys, and the write with its ON CONFLICT handling.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Union, col, lit};
use datafusion::sql::sqlparser::ast::{
    self, Expr as SqlExpr, Ident, OnConflictAction, OnInsert, SelectItem, SetExpr,
};

use super::arbiters::{Meets, OnConflict, Proposals};
use super::coercion::assignment_cast;
use super::{TableRows, WRITE_RETRIES, column_index, literals, unsupported};
use crate::exec::outcome::Outcome;
use crate::exec::planner::{LazyPlanner, StatementPlanner};
use crate::exec::{ExecError, ExecResult, Session};
use crate::model::TableKind;
use crate::sql::SqlError;
use crate::storage::rows;
use crate::storage::{Expect, RowWrite, TableRecord};

/// Numbers the rows of a VALUES list planned row by row, so they keep their order.
const VALUES_ROW_NUMBER: &str = "__values_row";

fn column_count_mismatch(targets: usize, expressions: usize) -> ExecError {
    ExecError::Sql(SqlError::Syntax(if expressions > targets {
        "INSERT has more expressions than target columns".into()
    } else {
        "INSERT has more target columns than expressions".into()
    }))
}

/// `INSERT ... DEFAULT VALUES`: one row of `DEFAULT` for every column.
fn default_values_row(columns: usize) -> ExecResult<ast::Query> {
    let sql = format!("VALUES ({})", vec!["DEFAULT"; columns].join(", "));
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    match datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, &sql)
        .map_err(|e| ExecError::Internal(e.to_string()))?
        .pop()
    {
        Some(ast::Statement::Query(query)) => Ok(*query),
        _ => Err(ExecError::Internal(format!("{sql} is not a query"))),
    }
}

fn is_default_keyword(value: &SqlExpr) -> bool {
    matches!(value, SqlExpr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// A `GENERATED ALWAYS` identity column takes only its own values: an INSERT naming it must
/// give DEFAULT in every row (428C9 otherwise, as PostgreSQL without OVERRIDING SYSTEM VALUE).
fn check_generated_always(
    record: &TableRecord,
    insert: &ast::Insert,
    targets: &[usize],
) -> ExecResult<()> {
    for (position, &index) in targets.iter().enumerate() {
        let column = &record.columns[index];
        if column.identity != Some(crate::model::types::Identity::Always) {
            continue;
        }
        let all_default = match insert.source.as_deref().map(|s| s.body.as_ref()) {
            // DEFAULT VALUES
            None => true,
            Some(SetExpr::Values(values)) => values
                .rows
                .iter()
                .all(|row| row.get(position).is_some_and(is_default_keyword)),
            _ => false,
        };
        if !all_default {
            return Err(ExecError::GeneratedAlways(format!(
                "cannot insert a non-DEFAULT value into column \"{}\"",
                column.name
            )));
        }
    }
    Ok(())
}

impl Session {
    pub(in crate::exec) async fn insert(&self, statement: &ast::Statement) -> ExecResult<Outcome> {
        let ast::Statement::Insert(insert) = statement else {
            return Err(ExecError::Internal(
                "insert() called with another statement".into(),
            ));
        };
        let Some((record, alias)) = self.insert_target(insert)? else {
            return Err(unsupported("INSERT into a table function"));
        };
        let targets: Vec<usize> = if insert.columns.is_empty() {
            // Without a column list the values fill the leading columns; the rest take their
            // defaults (`INSERT INTO t VALUES (1)` on a two-column table).
            let width = match insert.source.as_deref().map(|s| s.body.as_ref()) {
                Some(SetExpr::Values(values)) => values.rows.first().map(|r| r.len()),
                _ => None,
            };
            (0..record.columns.len().min(width.unwrap_or(usize::MAX))).collect()
        } else {
            insert
                .columns
                .iter()
                .map(|c| {
                    let name =
                        c.0.last()
                            .and_then(|p| p.as_ident())
                            .map(crate::sql::fold)
                            .unwrap_or_default();
                    column_index(&record, &name)
                })
                .collect::<ExecResult<_>>()?
        };
        check_generated_always(&record, insert, &targets)?;
        let planner = LazyPlanner::new(self, statement);
        let new_rows = self
            .insert_source_rows(&planner, &record, insert, &targets)
            .await?;
        let returning = insert.returning.as_deref();
        if let TableKind::Stream { .. } = record.kind {
            if insert.on.is_some() {
                return Err(unsupported("ON CONFLICT on a stream table"));
            }
            let mut encoder = rows::RowEncoder::default();
            let rows = (0..new_rows.len)
                .map(|row| encoder.encode(&new_rows.columns, row))
                .collect();
            self.append_stream(&record, rows)?;
            return self
                .finish_dml(&planner, (&record, &alias), new_rows, returning, "INSERT")
                .await;
        }
        let on_conflict = match &insert.on {
            None => None,
            Some(OnInsert::OnConflict(on_conflict)) => Some((
                &on_conflict.action,
                self.arbiters(
                    &record,
                    on_conflict.conflict_target.as_ref(),
                    &on_conflict.action,
                )?,
            )),
            Some(_) => return Err(unsupported("ON DUPLICATE KEY UPDATE")),
        };
        let on_conflict = on_conflict
            .as_ref()
            .map(|(action, arbiters)| OnConflict { action, arbiters });
        let written = self
            .insert_rows(&planner, (&record, &alias), &new_rows, on_conflict)
            .await?;
        self.finish_dml(&planner, (&record, &alias), written, returning, "INSERT")
            .await
    }

    /// Writes checked rows into `target` with ON CONFLICT's handling, re-running a write
    /// that lost a race outside a transaction block; the rows written (or updated) result.
    pub(super) async fn insert_rows(
        &self,
        planner: &LazyPlanner<'_>,
        (record, alias): (&TableRecord, &str),
        new_rows: &TableRows,
        on_conflict: Option<OnConflict<'_>>,
    ) -> ExecResult<TableRows> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .write_insert(planner, record, alias, new_rows, on_conflict)
                .await;
            let lost_race = match &result {
                Err(ExecError::ConcurrentUpdate(_)) => true,
                // A row that committed between the check for conflicts and this write's
                // commit, on a constraint ON CONFLICT decides: run again, the check now sees
                // it and skips or updates it.
                Err(ExecError::DuplicateKey { .. }) => {
                    on_conflict.is_some_and(|c| c.arbiters.decide_duplicate_keys())
                }
                Err(ExecError::KeyViolation { constraint, .. }) => {
                    on_conflict.is_some_and(|c| c.arbiters.decide_violations_of(constraint))
                }
                _ => false,
            };
            if lost_race && attempt < WRITE_RETRIES && !self.in_transaction_block() {
                tokio::task::yield_now().await;
                continue;
            }
            return result;
        }
    }

    /// Evaluates VALUES or the query, fills defaults, and returns full rows in table order.
    async fn insert_source_rows(
        &self,
        planner: &LazyPlanner<'_>,
        record: &TableRecord,
        insert: &ast::Insert,
        targets: &[usize],
    ) -> ExecResult<TableRows> {
        let defaults: Vec<Option<SqlExpr>> = record
            .columns
            .iter()
            .map(|c| {
                c.default
                    .as_deref()
                    .map(|d| crate::sql::parse_expr(d).map_err(ExecError::Sql))
                    .transpose()
            })
            .collect::<ExecResult<_>>()?;
        let mut source = match &insert.source {
            Some(source) => source.as_ref().clone(),
            None => default_values_row(targets.len())?,
        };
        // `DEFAULT` inside VALUES means the column's default expression.
        if let SetExpr::Values(values) = source.body.as_mut() {
            let first_width = values.rows.first().map_or(0, |r| r.len());
            for row in &mut values.rows {
                if row.len() != first_width {
                    return Err(ExecError::Sql(SqlError::Syntax(
                        "VALUES lists must all be the same length".into(),
                    )));
                }
                if row.len() != targets.len() {
                    return Err(column_count_mismatch(targets.len(), row.len()));
                }
                for (value, &column) in row.iter_mut().zip(targets) {
                    if is_default_keyword(value) {
                        *value = defaults[column]
                            .clone()
                            .unwrap_or(SqlExpr::value(ast::Value::Null));
                    }
                }
            }
        }
        // PostgreSQL allows a SELECT feeding an INSERT to repeat an output name
        // (`SELECT v, CAST(v AS INT)`); DataFusion does not, and the names are replaced anyway.
        if let SetExpr::Select(select) = source.body.as_mut() {
            for (i, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(expr) = item {
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::new(format!("__v{i}")),
                    };
                }
            }
        }
        if let Some(batch) =
            literals::literal_values(&source, targets, &defaults, record.columns.len())
        {
            return self.table_rows(record, &[batch]);
        }
        let planner = planner.get().await?;
        let source = match values_with_subqueries(&source) {
            Some(rows) => values_row_by_row(planner, rows)?,
            None => planner.query(&source)?,
        };
        let width = source.schema().fields().len();
        let targets = match insert.columns.is_empty() && width < targets.len() {
            true => &targets[..width],
            false => targets,
        };
        if width != targets.len() {
            return Err(column_count_mismatch(targets.len(), width));
        }
        let source_schema = source.schema().clone();
        let empty = DFSchema::empty();
        let projection = record
            .columns
            .iter()
            .enumerate()
            .map(|(index, column)| {
                let value = match targets.iter().position(|&t| t == index) {
                    Some(position) => {
                        Expr::Column(Column::from(source_schema.qualified_field(position)))
                    }
                    None => {
                        let default = match &defaults[index] {
                            Some(default) => planner.expr(default, &empty)?,
                            None => lit(ScalarValue::Null),
                        };
                        assignment_cast(default, column.sql_type, &empty)?
                    }
                };
                Ok(value.alias(format!("c{index}")))
            })
            .collect::<ExecResult<Vec<_>>>()?;
        let plan = LogicalPlanBuilder::from(source)
            .project(projection)?
            .build()?;
        let batches = planner.collect(plan).await?;
        self.table_rows(record, &batches)
    }

    /// Encodes the key of every row (allocating hidden row ids where the table has no key).
    pub(super) fn row_keys(
        &self,
        record: &TableRecord,
        rows: &TableRows,
    ) -> ExecResult<(Vec<Vec<u8>>, Option<u64>)> {
        if record.primary_key.is_empty() {
            let first = self
                .engine
                .store
                .allocate_row_ids(record.table_id, rows.len as u64)?;
            let keys = (0..rows.len as u64)
                .map(|i| rows::row_id_key(record.table_id, first + i))
                .collect();
            return Ok((keys, (rows.len > 0).then(|| first + rows.len as u64 - 1)));
        }
        let key_columns: Vec<_> = record
            .primary_key
            .iter()
            .map(|&i| rows.columns[i].clone())
            .collect();
        let prefix = rows::table_prefix(record.table_id);
        // One scratch buffer, and each key copied out at its exact size.
        let mut scratch = Vec::new();
        let keys = (0..rows.len)
            .map(|row| {
                scratch.clear();
                scratch.extend_from_slice(&prefix);
                rows::encode_key(&key_columns, row, &mut scratch);
                scratch.clone()
            })
            .collect();
        Ok((keys, None))
    }

    async fn write_insert(
        &self,
        planner: &LazyPlanner<'_>,
        record: &TableRecord,
        alias: &str,
        rows: &TableRows,
        on_conflict: Option<OnConflict<'_>>,
    ) -> ExecResult<TableRows> {
        let (keys, high_water) = self.row_keys(record, rows)?;
        let mut encoder = rows::RowEncoder::default();
        let Some(on_conflict) = on_conflict else {
            // Every row is written: no per-row bookkeeping, and the rows are already the result.
            let writes = keys
                .into_iter()
                .enumerate()
                .map(|(row, key)| RowWrite {
                    key,
                    value: Some(encoder.encode(&rows.columns, row)),
                    expect: Expect::Absent,
                    moved_to: None,
                })
                .collect();
            self.commit_rows(record, writes, high_water).await?;
            return Ok(TableRows {
                columns: rows.columns.clone(),
                len: rows.len,
            });
        };
        let update = match on_conflict.action {
            OnConflictAction::DoUpdate(update) => Some(update),
            OnConflictAction::DoNothing => None,
        };
        if let (None, [key]) = (update, keys.as_slice())
            && on_conflict.arbiters.is_primary_key_only()
            && !self.in_transaction_block()
        {
            let value = encoder.encode(&rows.columns, 0);
            return self
                .insert_unless_present(record, (key, value), high_water, rows)
                .await;
        }
        let cannot_affect_twice = || {
            ExecError::CardinalityViolation(
                "ON CONFLICT DO UPDATE command cannot affect row a second time".into(),
            )
        };
        let mut writes = Vec::with_capacity(rows.len);
        let mut written: Vec<usize> = Vec::with_capacity(rows.len);
        let mut conflicting: Vec<(usize, Vec<u8>, Option<u64>)> = Vec::new();
        let mut updated_keys: HashSet<Vec<u8>> = HashSet::new();
        let mut proposals = Proposals::default();
        for (row, key) in keys.iter().enumerate() {
            let value = encoder.encode(&rows.columns, row);
            let (meets, entries) =
                self.conflict_of(on_conflict.arbiters, &mut proposals, record, (key, &value))?;
            match meets {
                Meets::Nothing => {
                    proposals.add(key, entries);
                    writes.push(RowWrite {
                        key: key.clone(),
                        value: Some(value),
                        expect: Expect::Absent,
                        moved_to: None,
                    });
                    written.push(row);
                }
                Meets::Proposed if update.is_some() => return Err(cannot_affect_twice()),
                Meets::Proposed => {}
                Meets::Existing {
                    key: existing,
                    version,
                } if update.is_some() => {
                    // A skipped row leaves its values free for later rows; an updated one not.
                    proposals.add(key, entries);
                    if !updated_keys.insert(existing.clone()) {
                        return Err(cannot_affect_twice());
                    }
                    conflicting.push((row, existing, version));
                }
                Meets::Existing { .. } => {}
            }
        }
        let mut result = rows.take(&written)?;
        if let (Some(update), false) = (update, conflicting.is_empty()) {
            let updated = self
                .upsert_rows(
                    planner.get().await?,
                    (record, alias),
                    rows,
                    &conflicting,
                    update,
                )
                .await?;
            for (key, version, row) in updated.writes {
                writes.push(RowWrite {
                    key,
                    value: Some(row),
                    expect: version.map_or(Expect::Anything, Expect::Version),
                    moved_to: None,
                });
            }
            result = result.append(updated.rows)?;
        }
        self.commit_rows(record, writes, high_water).await?;
        Ok(result)
    }

    /// One row of `INSERT ... ON CONFLICT DO NOTHING` outside a transaction block: the write
    /// expects no live row under its key, and the duplicate key its commit may meet means the
    /// row is skipped. The key is read once, under the apply lock, rather than also before it
    /// (two reads fewer per such INSERT, hot rows and the cold index each), and a row another
    /// session commits meanwhile is skipped rather than reported as a duplicate.
    async fn insert_unless_present(
        &self,
        record: &TableRecord,
        (key, value): (&[u8], Vec<u8>),
        high_water: Option<u64>,
        rows: &TableRows,
    ) -> ExecResult<TableRows> {
        let write = RowWrite {
            key: key.to_vec(),
            value: Some(value),
            expect: Expect::Absent,
            moved_to: None,
        };
        match self.commit_rows(record, vec![write], high_water).await {
            Ok(()) => Ok(TableRows {
                columns: rows.columns.clone(),
                len: 1,
            }),
            Err(ExecError::DuplicateKey { key: taken, .. }) if taken == key => rows.take(&[]),
            Err(e) => Err(e),
        }
    }

    /// The version of the live row under `key` (`Some(None)`: an uncommitted row of this
    /// session), or `None` when there is no live row.
    pub(super) fn current_version(&self, key: &[u8]) -> ExecResult<Option<Option<u64>>> {
        if let Some(pending) = self.pending_row(key) {
            return Ok(pending.map(|_| None));
        }
        Ok(self.engine.store.live_version(key)?.map(Some))
    }
}

/// Whether `columns` name exactly the table's primary key columns, in any order.
pub(super) fn names_primary_key(record: &TableRecord, columns: &[Ident]) -> bool {
    let named: HashSet<String> = columns.iter().map(crate::sql::fold).collect();
    let key: HashSet<String> = record
        .primary_key
        .iter()
        .map(|&i| record.columns[i].name.clone())
        .collect();
    named == key
}

/// The rows of a VALUES list that holds a subquery: DataFusion runs subqueries in a projection
/// but not inside VALUES, so such a list is planned row by row.
fn values_with_subqueries(source: &ast::Query) -> Option<Vec<&[SqlExpr]>> {
    let SetExpr::Values(values) = source.body.as_ref() else {
        return None;
    };
    if source.with.is_some() || source.order_by.is_some() || source.limit_clause.is_some() {
        return None;
    }
    let has_subquery = ast::visit_expressions(&values.rows, |e| match e {
        SqlExpr::Subquery(_) | SqlExpr::Exists { .. } | SqlExpr::InSubquery { .. } => {
            std::ops::ControlFlow::Break(())
        }
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break();
    has_subquery.then(|| values.rows.iter().map(|row| row.as_slice()).collect())
}

/// One single-row projection per VALUES row, in a UNION ALL ordered by row number (RETURNING
/// shows the rows in VALUES order).
fn values_row_by_row(planner: &StatementPlanner, rows: Vec<&[SqlExpr]>) -> ExecResult<LogicalPlan> {
    let empty = DFSchema::empty();
    let mut branches = Vec::with_capacity(rows.len());
    let mut width = 0;
    for (number, row) in rows.iter().enumerate() {
        width = row.len();
        let mut items = row
            .iter()
            .enumerate()
            .map(|(i, value)| {
                Ok(planner
                    .expr(value, &empty)?
                    .alias(format!("column{}", i + 1)))
            })
            .collect::<ExecResult<Vec<_>>>()?;
        items.push(lit(number as i64).alias(VALUES_ROW_NUMBER));
        branches.push(Arc::new(
            LogicalPlanBuilder::empty(true).project(items)?.build()?,
        ));
    }
    // One flat UNION of every row: a nested one would be as deep as the list is long.
    let union = match branches.len() {
        0 => return Err(ExecError::Internal("VALUES without rows".into())),
        1 => LogicalPlanBuilder::from(branches[0].as_ref().clone()),
        _ => LogicalPlanBuilder::from(LogicalPlan::Union(Union::try_new_with_loose_types(
            branches,
        )?)),
    };
    let columns: Vec<Expr> = (1..=width).map(|i| col(format!("column{i}"))).collect();
    Ok(union
        .sort(vec![col(VALUES_ROW_NUMBER).sort(true, false)])?
        .project(columns)?
        .build()?)
}
