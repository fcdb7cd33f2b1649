//! The walk the executor's expression rewrites share: every expression of every plan node
//! (subqueries included) rewritten against the schema of the node's inputs, with output
//! names preserved and schemas recomputed where something changed; and the one analyzer rule
//! sessions run, which applies checked arithmetic, `character(n)`'s blank-insensitivity and
//! PostgreSQL's text casts in one walk.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

use super::checked_arithmetic::CheckedIntegerArithmetic;
use super::text_casts::PostgresTextCasts;

/// Checked integer arithmetic and PostgreSQL's text casts, in one pass over the plan.
#[derive(Debug, Default)]
pub struct PostgresExpressions {
    arithmetic: CheckedIntegerArithmetic,
    text_casts: PostgresTextCasts,
}

impl AnalyzerRule for PostgresExpressions {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, |expr, schema| {
            self.arithmetic
                .rewrite_expr(expr, schema)?
                .transform_data(|expr| super::bpchar::strip_blanks_where_ignored(expr, schema))?
                .transform_data(|expr| self.text_casts.rewrite(expr, schema))
        })
    }

    fn name(&self) -> &str {
        "postgres_expressions"
    }
}

pub(super) fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|plan| {
        let mut schema = merge_schema(&plan.inputs());
        if let LogicalPlan::TableScan(scan) = &plan {
            schema.merge(&DFSchema::try_from_qualified_schema(
                scan.table_name.clone(),
                &scan.source.schema(),
            )?);
        }
        let names = NamePreserver::new(&plan);
        let rewritten = plan.map_expressions(|expr| {
            let saved = names.save(&expr);
            Ok(rewrite(expr, &schema)?.update_data(|e| saved.restore(e)))
        })?;
        if rewritten.transformed {
            rewritten.map_data(|plan| plan.recompute_schema())
        } else {
            Ok(rewritten)
        }
    })
    .map(|t| t.data)
}
