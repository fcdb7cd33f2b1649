//! Which query level an outer reference belongs to, and binding a level's values into a
//! subquery's plan.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{Exists, InSubquery, ScalarFunction};
use datafusion::logical_expr::{Expr, LogicalPlan, Subquery};

use super::{Deferred, SubqueryCall, input_schemas};
/// Whether a subquery nested in `plan` reads a column of `inputs`, two levels out.
pub(super) fn reads_through(plan: &LogicalPlan, inputs: &[DFSchemaRef]) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        let own = input_schemas(node);
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                // A column of the level holding the nested subquery is that level's own.
                if let Some(nested) = nested_plan(e)
                    && outer_references(&nested)
                        .iter()
                        .any(|column| !resolves_in(column, &own) && resolves_in(column, inputs))
                {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

/// Whether a recursive query in `plan` reads outer columns, which DataFusion's decorrelation
/// adds to its terms' columns unevenly.
pub(super) fn correlated_recursion(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if matches!(node, LogicalPlan::RecursiveQuery(_)) && !outer_references(node).is_empty() {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

pub(super) fn resolves_in(column: &Column, inputs: &[DFSchemaRef]) -> bool {
    inputs.iter().any(|schema| schema.has_column(column))
}

/// The outer columns `plan` reads, its nested subqueries (deferred ones too) included, less
/// those a nested subquery reads of the level that holds it: DataFusion resolves a reference
/// to the nearest level that has the column, so those are not this level's outer columns.
pub(super) fn outer_references(plan: &LogicalPlan) -> Vec<Column> {
    let mut columns: Vec<Column> = Vec::new();
    let mut add = |column: Column| {
        if !columns.contains(&column) {
            columns.push(column);
        }
    };
    let _ = plan.apply(|node| {
        let inputs = input_schemas(node);
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::OuterReferenceColumn(_, column) = e {
                    add(column.clone());
                } else if let Some(nested) = nested_plan(e) {
                    for column in outer_references(&nested) {
                        if !resolves_in(&column, &inputs) {
                            add(column);
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    columns
}

/// The plan of a subquery expression or deferred subquery call.
fn nested_plan(expr: &Expr) -> Option<Arc<LogicalPlan>> {
    match expr {
        Expr::ScalarSubquery(subquery)
        | Expr::Exists(Exists { subquery, .. })
        | Expr::InSubquery(InSubquery { subquery, .. }) => Some(subquery.subquery.clone()),
        Expr::ScalarFunction(function) => {
            SubqueryCall::of_deferred(function).map(|deferred| deferred.plan.clone())
        }
        _ => None,
    }
}

/// `plan` with `values` in place of the outer columns it reads (see [`outer_references`]:
/// inside a nested subquery, a column of the level holding it is that level's, not bound).
pub(super) fn bind(plan: LogicalPlan, bindings: &[(Column, ScalarValue)]) -> Result<LogicalPlan> {
    plan.transform_up(|node| {
        let inputs = input_schemas(&node);
        let unshadowed: Vec<(Column, ScalarValue)> = bindings
            .iter()
            .filter(|(column, _)| !resolves_in(column, &inputs))
            .cloned()
            .collect();
        node.map_expressions(|expr| {
            expr.transform_up(|e| match e {
                Expr::OuterReferenceColumn(field, column) => {
                    match bindings.iter().find(|(bound, _)| *bound == column) {
                        Some((_, value)) => {
                            let value = value.cast_to(field.data_type())?;
                            Ok(Transformed::yes(Expr::Literal(value, None)))
                        }
                        None => Ok(Transformed::no(Expr::OuterReferenceColumn(field, column))),
                    }
                }
                Expr::ScalarSubquery(subquery) => Ok(Transformed::yes(Expr::ScalarSubquery(
                    bound_subquery(subquery, &unshadowed)?,
                ))),
                Expr::Exists(Exists { subquery, negated }) => {
                    Ok(Transformed::yes(Expr::Exists(Exists {
                        subquery: bound_subquery(subquery, &unshadowed)?,
                        negated,
                    })))
                }
                Expr::InSubquery(InSubquery {
                    expr,
                    subquery,
                    negated,
                }) => Ok(Transformed::yes(Expr::InSubquery(InSubquery {
                    expr,
                    subquery: bound_subquery(subquery, &unshadowed)?,
                    negated,
                }))),
                Expr::ScalarFunction(function) => match SubqueryCall::of_deferred(&function) {
                    Some(deferred) => {
                        let mut call = deferred.as_ref().clone();
                        call.plan = Arc::new(bind(call.plan.as_ref().clone(), &unshadowed)?);
                        Ok(Transformed::yes(Expr::ScalarFunction(
                            ScalarFunction::new_udf(
                                Arc::new(Deferred::udf(Arc::new(call))),
                                function.args,
                            ),
                        )))
                    }
                    None => Ok(Transformed::no(Expr::ScalarFunction(function))),
                },
                other => Ok(Transformed::no(other)),
            })
        })
    })
    .map(|bound| bound.data)
}

fn bound_subquery(subquery: Subquery, bindings: &[(Column, ScalarValue)]) -> Result<Subquery> {
    Ok(Subquery {
        subquery: Arc::new(bind(subquery.subquery.as_ref().clone(), bindings)?),
        ..subquery
    })
}
