//! Subqueries that DataFusion cannot turn into joins, run once per outer row as PostgreSQL's
//! SubPlan runs them. DataFusion decorrelates a subquery only when its correlation is a
//! conjunction of equalities it can join on; `(SELECT count(*) FROM t x WHERE x.b < t.b)` is
//! left in the optimized plan, where its physical planner refuses it. Before physical planning,
//! every scalar, `EXISTS` and `IN` subquery still in a projection, filter or aggregate once
//! the plan is optimized becomes an async function of the outer row's
//! referenced columns: per distinct set of those values it binds them into the subquery's
//! plan as constants, plans that in the same session (so it sees the same transaction) and
//! runs it. This module decides which subqueries go that way; `scope` says which level an
//! outer reference belongs to and binds values into a plan; `run` runs and remembers.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::logical_expr::expr::{Exists, InSubquery, ScalarFunction};
use datafusion::logical_expr::logical_plan::{Aggregate, check_subquery_expr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Subquery, TypeSignature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// Both function kinds are equal only to themselves: two subqueries of one statement may be
/// written alike and still be bound to different rows.
macro_rules! identity_eq {
    ($type:ty, $field:tt) => {
        impl PartialEq for $type {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.$field, &other.$field)
            }
        }

        impl Eq for $type {}

        impl Hash for $type {
            fn hash<H: Hasher>(&self, state: &mut H) {
                std::ptr::hash(Arc::as_ptr(&self.$field), state);
            }
        }

        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.$field.fmt(f)
            }
        }
    };
}

mod run;
mod scope;

use run::SubPlan;
use scope::{bind, correlated_recursion, outer_references, reads_through, resolves_in};

/// Defers, before DataFusion's checks and optimizer see them, the subqueries they would refuse
/// or get wrong: one its analyzer rejects where it stands (a correlated scalar subquery that
/// is not aggregated, or one in a DISTINCT ON), one holding a subquery that reads this
/// level's columns (DataFusion's decorrelation loses such a reference), and one with a
/// correlated recursive query. Each becomes a
/// [`Deferred`] call, which [`subqueries_per_row`] runs per row.
#[derive(Debug, Default)]
pub struct DeferUnplannableSubqueries;

impl AnalyzerRule for DeferUnplannableSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            // Most nodes hold no subquery: they are not copied for the check below.
            if !holds_subquery(&node) {
                return Ok(Transformed::no(node));
            }
            let inputs = input_schemas(&node);
            let outer_node = node.clone();
            node.map_expressions(|expr| {
                expr.transform_up(|e| {
                    let Some((kind, subquery, compared)) = as_subquery(&e) else {
                        return Ok(Transformed::no(e));
                    };
                    // A subquery of the wrong width is DataFusion's to refuse.
                    let one_column = subquery.subquery.schema().fields().len() == 1;
                    let refused = one_column
                        && check_subquery_expr(&outer_node, &subquery.subquery, &e).is_err();
                    if !refused
                        && !reads_through(&subquery.subquery, &inputs)
                        && !correlated_recursion(&subquery.subquery)
                    {
                        return Ok(Transformed::no(e));
                    }
                    let call = SubqueryCall::new(kind, subquery, &e, &inputs)?;
                    Ok(Transformed::yes(call.into_expr(compared, Deferred::udf)))
                })
            })
        })
        .map(|rewritten| rewritten.data)
    }

    fn name(&self) -> &str {
        "defer_unplannable_subqueries"
    }
}

/// Replaces each deferred subquery, and each subquery expression left in `plan`'s
/// projections, filters and aggregates, with a [`SubPlan`] call. Subqueries inside a
/// subquery are left to the planning of that subquery, which comes back here.
pub fn subqueries_per_row(plan: LogicalPlan, state: &SessionState) -> Result<LogicalPlan> {
    plan.transform_up(|node| match node {
        LogicalPlan::Aggregate(aggregate) => per_row_under_aggregate(aggregate, state),
        node => {
            let runs_async = matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Filter(_));
            let is_projection = matches!(node, LogicalPlan::Projection(_));
            let inputs = input_schemas(&node);
            node.map_expressions(|expr| {
                let name = expr.schema_name().to_string();
                let rewritten =
                    expr.transform_up(|e| per_row_call(e, &inputs, state, runs_async))?;
                // A projection's column keeps its name (DataFusion names an async function's
                // column after the function, not after the expression it stands for).
                Ok(match rewritten.data {
                    Expr::Alias(_) => rewritten,
                    data if rewritten.transformed && is_projection => {
                        Transformed::yes(data.alias(name))
                    }
                    data => Transformed::new_transformed(data, rewritten.transformed),
                })
            })
        }
    })
    .map(|rewritten| rewritten.data)
}

/// The [`SubPlan`] call a deferred subquery, or a subquery expression where async functions
/// run, becomes.
fn per_row_call(
    e: Expr,
    inputs: &[DFSchemaRef],
    state: &SessionState,
    runs_async: bool,
) -> Result<Transformed<Expr>> {
    if let Expr::ScalarFunction(function) = &e
        && let Some(deferred) = SubqueryCall::of_deferred(function)
    {
        let run = SubPlan::new(deferred, state);
        return Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(
                Arc::new(AsyncScalarUDF::new(Arc::new(run)).into_scalar_udf()),
                function.args.clone(),
            ),
        )));
    }
    match as_subquery(&e) {
        Some((kind, subquery, compared)) if runs_async => {
            let call = SubqueryCall::new(kind, subquery, &e, inputs)?;
            Ok(Transformed::yes(call.into_expr(compared, |call| {
                AsyncScalarUDF::new(Arc::new(SubPlan::new(call, state))).into_scalar_udf()
            })))
        }
        _ => Ok(Transformed::no(e)),
    }
}

/// An aggregate's subqueries are computed by a projection under it, each as a column its
/// expressions then read (DataFusion misplaces async functions inside aggregate arguments).
fn per_row_under_aggregate(
    aggregate: Aggregate,
    state: &SessionState,
) -> Result<Transformed<LogicalPlan>> {
    let inputs = vec![aggregate.input.schema().clone()];
    let mut computed: Vec<Expr> = Vec::new();
    let mut lift = |expr: Expr| -> Result<Transformed<Expr>> {
        let name = expr.schema_name().to_string();
        let lifted = expr.transform_up(|e| {
            let call = per_row_call(e, &inputs, state, true)?;
            if !call.transformed {
                return Ok(call);
            }
            let column = format!("__kalamdb_subquery_{}", computed.len());
            computed.push(call.data.alias(&column));
            Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                column,
            ))))
        })?;
        // The aggregate's columns keep their names.
        Ok(match lifted.data {
            Expr::Alias(_) => lifted,
            data if lifted.transformed => Transformed::yes(data.alias(name)),
            data => Transformed::no(data),
        })
    };
    let group_expr = aggregate
        .group_expr
        .into_iter()
        .map(&mut lift)
        .collect::<Result<Vec<_>>>()?;
    let aggr_expr = aggregate
        .aggr_expr
        .into_iter()
        .map(&mut lift)
        .collect::<Result<Vec<_>>>()?;
    let changed = group_expr.iter().chain(&aggr_expr).any(|e| e.transformed);
    let group_expr: Vec<Expr> = group_expr.into_iter().map(|e| e.data).collect();
    let aggr_expr: Vec<Expr> = aggr_expr.into_iter().map(|e| e.data).collect();
    if !changed {
        return Ok(Transformed::no(LogicalPlan::Aggregate(
            Aggregate::try_new_with_schema(
                aggregate.input,
                group_expr,
                aggr_expr,
                aggregate.schema,
            )?,
        )));
    }
    let mut columns: Vec<Expr> = aggregate
        .input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    columns.extend(computed);
    let input = LogicalPlanBuilder::from(aggregate.input.as_ref().clone())
        .project(columns)?
        .build()?;
    Ok(Transformed::yes(LogicalPlan::Aggregate(
        Aggregate::try_new(Arc::new(input), group_expr, aggr_expr)?,
    )))
}

fn input_schemas(node: &LogicalPlan) -> Vec<DFSchemaRef> {
    node.inputs()
        .iter()
        .map(|input| input.schema().clone())
        .collect()
}

/// The kind, subquery and `IN` operand of a subquery expression.
fn as_subquery(expr: &Expr) -> Option<(Kind, Subquery, Option<Expr>)> {
    match expr {
        Expr::ScalarSubquery(subquery) => Some((Kind::Scalar, subquery.clone(), None)),
        Expr::Exists(Exists { subquery, negated }) => {
            Some((Kind::Exists { negated: *negated }, subquery.clone(), None))
        }
        Expr::InSubquery(InSubquery {
            expr,
            subquery,
            negated,
        }) => Some((
            Kind::In { negated: *negated },
            subquery.clone(),
            Some(expr.as_ref().clone()),
        )),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// The only row's value, NULL without rows, 21000 with more.
    Scalar,
    Exists {
        negated: bool,
    },
    /// The first argument compared with every row's value, with SQL's NULL logic.
    In {
        negated: bool,
    },
}

/// A subquery as a function of the outer columns it reads, passed in `outer`'s order after
/// the `IN` operand.
#[derive(Clone)]
struct SubqueryCall {
    kind: Kind,
    plan: Arc<LogicalPlan>,
    outer: Vec<Column>,
    output: DataType,
    /// Whether the answer may be NULL, as DataFusion typed the subquery expression.
    nullable: bool,
    /// The subquery expression's own column name, kept so the plan's schemas do not change.
    name: String,
    signature: Signature,
}

impl SubqueryCall {
    fn new(kind: Kind, subquery: Subquery, expr: &Expr, inputs: &[DFSchemaRef]) -> Result<Self> {
        // A reference that is not this level's column belongs to a subquery nested inside
        // and is bound when that one is planned.
        let outer = outer_references(&subquery.subquery)
            .into_iter()
            .filter(|column| resolves_in(column, inputs))
            .collect();
        let output = match kind {
            Kind::Scalar => subquery
                .subquery
                .schema()
                .fields()
                .first()
                .map(|field| field.data_type().clone())
                .ok_or_else(|| {
                    DataFusionError::Plan("a scalar subquery must return one column".into())
                })?,
            Kind::Exists { .. } | Kind::In { .. } => DataType::Boolean,
        };
        // A scalar subquery is NULL over no rows, unless it aggregates without grouping.
        let nullable = match (kind, inputs.first()) {
            (Kind::Scalar, _) if !always_one_row(&subquery.subquery) => true,
            (_, Some(schema)) => expr.nullable(schema.as_ref()).unwrap_or(true),
            (_, None) => true,
        };
        Ok(Self {
            kind,
            plan: subquery.subquery,
            outer,
            output,
            nullable,
            name: expr.schema_name().to_string(),
            signature: Signature::one_of(
                vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
                Volatility::Volatile,
            ),
        })
    }

    fn field(&self) -> FieldRef {
        Arc::new(Field::new(&self.name, self.output.clone(), self.nullable))
    }

    fn of_deferred(function: &ScalarFunction) -> Option<Arc<SubqueryCall>> {
        function
            .func
            .inner()
            .downcast_ref::<Deferred>()
            .map(|deferred| deferred.0.clone())
    }

    fn into_expr<F>(self, compared: Option<Expr>, function: F) -> Expr
    where
        F: FnOnce(Arc<SubqueryCall>) -> ScalarUDF,
    {
        let mut args: Vec<Expr> = compared.into_iter().collect();
        args.extend(self.outer.iter().cloned().map(Expr::Column));
        let udf = function(Arc::new(self));
        Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), args))
    }

    /// The subquery's plan with `values` in place of the outer columns, nested subqueries
    /// (deferred ones too) included.
    fn bound(&self, values: &[ScalarValue]) -> Result<LogicalPlan> {
        let bindings: Vec<(Column, ScalarValue)> = self
            .outer
            .iter()
            .cloned()
            .zip(values.iter().cloned())
            .collect();
        let bound = bind(self.plan.as_ref().clone(), &bindings)?;
        // EXISTS needs one row to answer; a scalar subquery needs two to fail.
        match self.kind {
            Kind::Exists { .. } => LogicalPlanBuilder::from(bound).limit(0, Some(1))?.build(),
            Kind::Scalar => LogicalPlanBuilder::from(bound).limit(0, Some(2))?.build(),
            Kind::In { .. } => Ok(bound),
        }
    }
}

/// A subquery waiting for the physical planner (see [`DeferUnplannableSubqueries`]).
struct Deferred(Arc<SubqueryCall>);

impl Deferred {
    fn udf(call: Arc<SubqueryCall>) -> ScalarUDF {
        ScalarUDF::new_from_impl(Deferred(call))
    }
}

impl fmt::Debug for SubqueryCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubqueryCall")
            .field("kind", &self.kind)
            .field("outer", &self.outer)
            .field("plan", &self.plan.display_indent().to_string())
            .finish()
    }
}

impl ScalarUDFImpl for Deferred {
    fn name(&self) -> &str {
        "subquery"
    }

    fn schema_name(&self, _args: &[Expr]) -> Result<String> {
        Ok(self.0.name.clone())
    }

    fn signature(&self) -> &Signature {
        &self.0.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.0.output.clone())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.0.field())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        datafusion::common::internal_err!("a deferred subquery runs only once planned")
    }
}

identity_eq!(Deferred, 0);

/// Whether `plan` answers exactly one row: an aggregate without grouping, under projections.
fn always_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(projection) => always_one_row(&projection.input),
        LogicalPlan::SubqueryAlias(alias) => always_one_row(&alias.input),
        LogicalPlan::Aggregate(aggregate) => aggregate.group_expr.is_empty(),
        _ => false,
    }
}

fn holds_subquery(node: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = node.apply_expressions(|expr| {
        found |= expr.exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
            ))
        })?;
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}
