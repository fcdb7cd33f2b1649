//! `ON CONFLICT ... DO UPDATE`: the rows whose key already exists are joined with their proposed
//! versions (`excluded`) and updated by the statement's SET list and WHERE.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::logical_expr::{JoinType, in_list, lit};
use datafusion::sql::sqlparser::ast::{self, Expr as SqlExpr, Ident, VisitMut, VisitorMut};

use super::{TableRows, UpdatedRows, column_ref, updated_row_values, with_identity};
use crate::exec::planner::{StatementPlanner, rows_relation, scan};
use crate::exec::table::{KEY_COLUMN, UserTable};
use crate::exec::{ExecResult, Session};
use crate::storage::TableRecord;

/// What the proposed rows are called in the SET list and WHERE.
const EXCLUDED: &str = "excluded";

/// Qualifies bare column names with `table` so that `x` means `table.x` next to `excluded.x`.
struct Qualify<'a> {
    table: &'a str,
    columns: &'a HashSet<String>,
}

impl VisitorMut for Qualify<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &mut SqlExpr) -> std::ops::ControlFlow<()> {
        if let SqlExpr::Identifier(ident) = expr
            && self.columns.contains(&crate::sql::fold(ident))
        {
            *expr = SqlExpr::CompoundIdentifier(vec![
                Ident::with_quote('"', self.table),
                ident.clone(),
            ]);
        }
        std::ops::ControlFlow::Continue(())
    }
}

impl Session {
    /// The new versions of the rows the `conflicting` proposed rows met: index into
    /// `proposed`, the key of the row it met (its own key, or another row's through a unique
    /// index) and the version seen.
    pub(super) async fn upsert_rows(
        &self,
        planner: &StatementPlanner,
        (record, alias): (&TableRecord, &str),
        proposed: &TableRows,
        conflicting: &[(usize, Vec<u8>, Option<u64>)],
        update: &ast::DoUpdate,
    ) -> ExecResult<UpdatedRows> {
        let indices: Vec<usize> = conflicting.iter().map(|(r, _, _)| *r).collect();
        // The proposed rows take the keys of the rows they met: the join pairs them by key.
        let excluded = with_identity(
            record,
            proposed.take(&indices)?.columns,
            conflicting.iter().map(|(_, key, _)| key.clone()).collect(),
            vec![None; indices.len()],
        )?;
        let existing = Arc::new(UserTable::new(
            self.engine.store.clone(),
            Arc::new(record.clone()),
            true,
        ));
        // The key list lets the scan read just these rows instead of the whole table.
        let existing_keys = conflicting
            .iter()
            .map(|(_, key, _)| lit(ScalarValue::Binary(Some(key.clone()))))
            .collect();
        let mut joined = scan(alias, existing)?
            .filter(in_list(column_ref(alias, KEY_COLUMN), existing_keys, false))?
            .join(
                rows_relation(EXCLUDED, excluded)?.build()?,
                JoinType::Inner,
                (
                    vec![Column::new(Some(TableReference::bare(alias)), KEY_COLUMN)],
                    vec![Column::new(
                        Some(TableReference::bare(EXCLUDED)),
                        KEY_COLUMN,
                    )],
                ),
                None,
            )?;
        let columns: HashSet<String> = record.columns.iter().map(|c| c.name.clone()).collect();
        let mut qualify = Qualify {
            table: alias,
            columns: &columns,
        };
        if let Some(selection) = &update.selection {
            let mut selection = selection.clone();
            let _ = selection.visit(&mut qualify);
            let predicate = planner.expr(&selection, joined.schema())?;
            joined = joined.filter(predicate)?;
        }
        let schema = joined.schema().clone();
        let qualified = |value: &SqlExpr| {
            let mut value = value.clone();
            let _ = value.visit(&mut Qualify {
                table: alias,
                columns: &columns,
            });
            value
        };
        let values = updated_row_values(
            planner,
            record,
            alias,
            &update.assignments,
            &schema,
            qualified,
        )?;
        let plan = joined.project(values)?.build()?;
        let batches = planner.collect(plan).await?;
        self.updated_rows(record, &batches, true)
    }
}
