//! UPDATE and DELETE: a scan of the table with each row's hidden key and version, joined with
//! the rows of UPDATE's FROM or DELETE's USING when there are any, filtered by WHERE, projected
//! to the new rows (UPDATE) or the rows to remove (DELETE).

use std::sync::Arc;

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    self, Assignment, Expr as SqlExpr, FromTable, TableWithJoins, UpdateTableFromKind,
};

use super::{WRITE_RETRIES, column_ref, unsupported, updated_row_values};
use crate::exec::outcome::Outcome;
use crate::exec::planner::{LazyPlanner, StatementPlanner, scan};
use crate::exec::table::KEY_COLUMN;
use crate::exec::table::UserTable;
use crate::exec::{ExecError, ExecResult, Session};
use crate::storage::{Expect, RowWrite, TableRecord};

impl Session {
    pub(in crate::exec) async fn update(&self, statement: &ast::Statement) -> ExecResult<Outcome> {
        let ast::Statement::Update(update) = statement else {
            return Err(ExecError::Internal(
                "update() called with another statement".into(),
            ));
        };
        let from: &[TableWithJoins] = match &update.from {
            Some(UpdateTableFromKind::AfterSet(from)) => from,
            Some(UpdateTableFromKind::BeforeSet(_)) => {
                return Err(unsupported("UPDATE FROM ... SET"));
            }
            None => &[],
        };
        if !update.table.joins.is_empty() {
            return Err(unsupported("UPDATE of a join"));
        }
        let (record, alias) = self.dml_target(&update.table.relation)?;
        let lazy = LazyPlanner::new(self, statement);
        let planner = lazy.get().await?;
        let plan = self.rows_with_identity(
            planner,
            (&record, &record),
            (&alias, from),
            update.selection.as_ref(),
            &update.assignments,
        )?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let batches = planner.collect(plan.clone()).await?;
            let updated = self.updated_rows(&record, &batches, true)?;
            let new_keys: Vec<Vec<u8>> = if record.primary_key.is_empty() {
                updated.writes.iter().map(|(k, _, _)| k.clone()).collect()
            } else {
                self.row_keys(&record, &updated.rows)?.0
            };
            let mut writes = Vec::with_capacity(updated.writes.len());
            let mut inserts = Vec::new();
            for ((old_key, version, value), new_key) in updated.writes.into_iter().zip(new_keys) {
                let expect = version.map_or(Expect::Anything, Expect::Version);
                if old_key == new_key {
                    writes.push(RowWrite {
                        key: old_key,
                        value: Some(value),
                        expect,
                        moved_to: None,
                    });
                } else {
                    // The primary key changed: remove the old row, then insert under the new key.
                    writes.push(RowWrite {
                        key: old_key,
                        value: None,
                        expect,
                        moved_to: Some(new_key.clone()),
                    });
                    inserts.push(RowWrite {
                        key: new_key,
                        value: Some(value),
                        expect: Expect::Absent,
                        moved_to: None,
                    });
                }
            }
            writes.extend(inserts);
            match self.commit_rows(&record, writes, None).await {
                Err(ExecError::ConcurrentUpdate(_))
                    if attempt < WRITE_RETRIES && !self.in_transaction_block() =>
                {
                    tokio::task::yield_now().await;
                    continue;
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    return self
                        .finish_dml(
                            &lazy,
                            (&record, &alias),
                            updated.rows,
                            update.returning.as_deref(),
                            "UPDATE",
                        )
                        .await;
                }
            }
        }
    }

    pub(in crate::exec) async fn delete(&self, statement: &ast::Statement) -> ExecResult<Outcome> {
        let ast::Statement::Delete(delete) = statement else {
            return Err(ExecError::Internal(
                "delete() called with another statement".into(),
            ));
        };
        let from = match &delete.from {
            FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => from,
        };
        if from.len() != 1 || !from[0].joins.is_empty() {
            return Err(unsupported("DELETE from several tables"));
        }
        let (record, alias) = self.dml_target(&from[0].relation)?;
        let lazy = LazyPlanner::new(self, statement);
        let planner = lazy.get().await?;
        let plan = self.rows_with_identity(
            planner,
            (&record, &record),
            (&alias, delete.using.as_deref().unwrap_or_default()),
            delete.selection.as_ref(),
            &[],
        )?;
        let batches = planner.collect(plan).await?;
        let deleted = self.updated_rows(&record, &batches, false)?;
        let writes = deleted
            .writes
            .into_iter()
            .map(|(key, _, _)| RowWrite {
                key,
                value: None,
                expect: Expect::Anything,
                moved_to: None,
            })
            .collect();
        self.commit_rows(&record, writes, None).await?;
        self.finish_dml(
            &lazy,
            (&record, &alias),
            deleted.rows,
            delete.returning.as_deref(),
            "DELETE",
        )
        .await
    }

    /// Every live row of `record` with `column` set to `value` (SQL over the row, as an UPDATE
    /// assignment) and the row conformed to `retyped` (the table's new definition, whose CHECK
    /// constraints it must pass): key, version read, and the row encoded for `retyped`.
    pub(in crate::exec) async fn rows_rewritten(
        &self,
        (record, retyped): (&TableRecord, &TableRecord),
        column: &str,
        value: &str,
    ) -> ExecResult<Vec<crate::storage::RewrittenRow>> {
        use crate::exec::sequences::{qualified, quote_ident};
        let sql = format!(
            "UPDATE {} SET {} = {value}",
            qualified(&record.namespace, &record.name),
            quote_ident(column)
        );
        let statement = match crate::sql::parse(&sql)?.into_iter().next() {
            Some(crate::sql::Statement::Update(statement)) => statement,
            _ => return Err(ExecError::Internal(format!("{sql} is not an UPDATE"))),
        };
        let ast::Statement::Update(update) = statement.as_ref() else {
            return Err(ExecError::Internal(format!("{sql} is not an UPDATE")));
        };
        let (_, alias) = self.dml_target(&update.table.relation)?;
        let lazy = LazyPlanner::new(self, &statement);
        let planner = lazy.get().await?;
        // USING's value takes the new type (`'v' || n` for an integer column retyped to text).
        let plan = self.rows_with_identity(
            planner,
            (record, retyped),
            (&alias, &[]),
            None,
            &update.assignments,
        )?;
        let batches = planner.collect(plan).await?;
        // A row the open block wrote carries no version: storage knows it as the block's own.
        Ok(self.updated_rows(retyped, &batches, true)?.writes)
    }

    /// The rows WHERE selects, with `assignments` applied (each cast to its column's type in
    /// `target`, the table's definition once written), followed by each row's key and the
    /// version it was read at: what an UPDATE writes or a DELETE removes. With `joined` (the
    /// relations of UPDATE's FROM or DELETE's USING), WHERE and the assignments see their
    /// columns too, and a row that several of their rows join is changed once, with the values
    /// of one of them, which one unspecified (as in PostgreSQL).
    fn rows_with_identity(
        &self,
        planner: &StatementPlanner,
        (record, target): (&TableRecord, &TableRecord),
        (alias, joined): (&str, &[TableWithJoins]),
        selection: Option<&SqlExpr>,
        assignments: &[Assignment],
    ) -> ExecResult<LogicalPlan> {
        let table = Arc::new(UserTable::new(
            self.engine.store.clone(),
            Arc::new(record.clone()),
            true,
        ));
        let mut rows = scan(alias, table)?;
        if !joined.is_empty() {
            let joined = planner.query(&select_all_from(joined)?)?;
            if joined
                .schema()
                .iter()
                .any(|(relation, _)| relation.is_some_and(|r| r.table() == alias))
            {
                return Err(ExecError::DuplicateAlias(format!(
                    "table name \"{alias}\" specified more than once"
                )));
            }
            rows = rows.cross_join(joined)?;
        }
        if let Some(selection) = selection {
            let predicate = planner.expr(selection, rows.schema())?;
            rows = rows.filter(predicate)?;
        }
        let schema = rows.schema().clone();
        let values =
            updated_row_values(planner, target, alias, assignments, &schema, Clone::clone)?;
        if joined.is_empty() {
            Ok(rows.project(values)?.build()?)
        } else {
            let key = column_ref(alias, KEY_COLUMN);
            Ok(rows.distinct_on(vec![key], values, None)?.build()?)
        }
    }
}

/// `SELECT * FROM <from>`: every column of the relations, under each relation's name.
fn select_all_from(from: &[TableWithJoins]) -> ExecResult<ast::Query> {
    let mut query = crate::sql::parse_view_query("SELECT *")?;
    match query.body.as_mut() {
        ast::SetExpr::Select(select) => select.from = from.to_vec(),
        _ => return Err(ExecError::Internal("SELECT * is not a SELECT".into())),
    }
    Ok(query)
}
