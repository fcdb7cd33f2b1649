//! RETURNING: the statement's list evaluated over the rows it wrote, with the column names
//! PostgreSQL gives them.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast::{self, SelectItem};

use super::{column_ref, unsupported};
use crate::exec::planner::{StatementPlanner, rows_relation};
use crate::exec::{ExecError, ExecResult, Session};
use crate::model::types::schema_of;

/// The RETURNING plan over `rows` and the result schema with PostgreSQL's column names.
fn plan(
    planner: &StatementPlanner,
    alias: &str,
    rows: RecordBatch,
    items: &[SelectItem],
) -> ExecResult<(LogicalPlan, SchemaRef)> {
    let columns: Vec<String> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let relation = rows_relation(alias, rows)?;
    let schema = relation.schema().clone();
    let mut values: Vec<Expr> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for item in items {
        match item {
            SelectItem::UnnamedExpr(expr) => {
                values.push(planner.expr(expr, &schema)?);
                names.push(crate::sql::output_names::output_name(expr));
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                values.push(planner.expr(expr, &schema)?);
                names.push(crate::sql::fold(alias));
            }
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                for column in &columns {
                    values.push(column_ref(alias, column));
                    names.push(column.clone());
                }
            }
            SelectItem::ExprWithAliases { .. } => {
                return Err(unsupported("several aliases for one RETURNING item"));
            }
        }
    }
    // Positional names keep repeated items (`RETURNING id, id`) apart inside the plan.
    let values: Vec<Expr> = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| value.alias(format!("__returning{i}")))
        .collect();
    let plan = relation.project(values)?.build()?;
    let fields: Vec<Field> = plan
        .schema()
        .fields()
        .iter()
        .zip(names)
        .map(|(field, name)| field.as_ref().clone().with_name(name))
        .collect();
    Ok((plan, Arc::new(Schema::new(fields))))
}

/// Evaluates a RETURNING list over `rows`, the rows a statement wrote.
pub(super) async fn evaluate(
    planner: &StatementPlanner,
    alias: &str,
    rows: RecordBatch,
    items: &[SelectItem],
) -> ExecResult<(SchemaRef, Vec<RecordBatch>)> {
    let (plan, schema) = plan(planner, alias, rows, items)?;
    let batches = planner
        .collect(plan)
        .await?
        .into_iter()
        .map(|batch| RecordBatch::try_new(schema.clone(), batch.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ExecError::Internal(e.to_string()))?;
    Ok((schema, batches))
}

impl Session {
    /// What a DML statement's RETURNING produces (`None` without RETURNING), for Describe.
    pub(in crate::exec) async fn returning_schema(
        &self,
        statement: &ast::Statement,
    ) -> ExecResult<Option<SchemaRef>> {
        let Some((record, alias, Some(items))) = self.dml_table(statement)? else {
            return Ok(None);
        };
        let planner = StatementPlanner::new(self, statement).await?;
        let empty = RecordBatch::new_empty(schema_of(&record.columns));
        let (_, schema) = plan(&planner, &alias, empty, items)?;
        Ok(Some(schema))
    }
}
