//! Integer literals typed as PostgreSQL types them: one that fits in 32 bits is an `integer`,
//! a larger one a `bigint`. DataFusion plans every integer literal as a bigint, so `SELECT 1`
//! described its column as int8, `pg_typeof(1)` said bigint and `2147483647 + 1` gave
//! 2147483648 where PostgreSQL reports integer out of range.
//!
//! The rewrite runs on each statement's plan as it is made, before type coercion: coercion
//! then widens a literal where its context needs it (`bigint_column + 1` is a bigint), and
//! Describe reports the types the statement returns. Bare literal arguments of aggregate and
//! window functions keep their type: `count(*)` is planned as a count of the literal 1, which
//! DataFusion's optimizer recognizes by its type, and `ntile(4)` or `lag(x, 1)` read theirs as
//! bigints. LIMIT and OFFSET are not expressions PostgreSQL types either way. A statement with
//! a recursive query or a correlated subquery keeps DataFusion's types throughout, as does an
//! aggregate by grouping sets (see `keeps_planned_types`).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DECIMAL128_MAX_PRECISION, DataType, Field};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, SortExpr, Union, Values,
};
use datafusion::optimizer::analyzer::type_coercion::coerce_union_schema;

/// `plan` with its integer literals typed as PostgreSQL types them; names stay as they were.
pub(super) fn type_as_postgres(plan: LogicalPlan) -> Result<LogicalPlan> {
    if keeps_planned_types(&plan)? {
        return Ok(plan);
    }
    plan.transform_up_with_subqueries(|plan| {
        let plan = match plan {
            LogicalPlan::Values(values) => values_as_postgres(values)?,
            LogicalPlan::Limit(_)
            | LogicalPlan::Extension(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::Unnest(_) => plan,
            // A grouping set's expressions are named as a whole: renaming one would leave
            // the aggregate without its grouping sets.
            LogicalPlan::Aggregate(ref aggregate)
                if aggregate
                    .group_expr
                    .iter()
                    .any(|e| matches!(e, Expr::GroupingSet(_))) =>
            {
                plan
            }
            plan => {
                let names = NamePreserver::new(&plan);
                let schema = merge_schema(&plan.inputs());
                plan.map_expressions(|expr| {
                    let saved = names.save(&expr);
                    Ok(real_arithmetic_in_double(int4_literals(expr)?, &schema)?
                        .update_data(|e| saved.restore(e)))
                })?
                .data
            }
        };
        // Its own expressions or an input's columns may have been typed anew.
        let plan = match plan {
            LogicalPlan::Union(union) => union_as_inputs(union)?,
            LogicalPlan::Values(_) | LogicalPlan::TableScan(_) => plan,
            plan => plan.recompute_schema()?,
        };
        Ok(Transformed::yes(plan))
    })
    .map(|t| t.data)
}

/// Whether `plan` must keep the types it was planned with throughout: a recursive query's work
/// table is typed from its first term when planned, and a correlated subquery holds the type
/// of each outer column it reads; typing literals anew would leave either reading old types.
fn keeps_planned_types(plan: &LogicalPlan) -> Result<bool> {
    let mut keeps = false;
    plan.apply_with_subqueries(|node| {
        keeps = matches!(node, LogicalPlan::RecursiveQuery(_))
            || node.expressions().iter().any(|expr| {
                expr.exists(|e| Ok(matches!(e, Expr::OuterReferenceColumn(..))))
                    .unwrap_or(true)
            });
        Ok(if keeps {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(keeps)
}

/// A union's columns take the types its inputs' columns now combine to (DataFusion keeps a
/// union's schema as planned when asked to recompute it).
fn union_as_inputs(union: Union) -> Result<LogicalPlan> {
    let combined = coerce_union_schema(&union.inputs)?;
    let schema = retyped(&union.schema, |column, _| {
        Some(combined.field(column).data_type().clone())
    })?;
    Ok(LogicalPlan::Union(Union {
        inputs: union.inputs,
        schema: Arc::new(schema),
    }))
}

/// `schema` with the columns `new_type` gives a type for retyped, names and nullability kept.
fn retyped(
    schema: &DFSchema,
    new_type: impl Fn(usize, &Field) -> Option<DataType>,
) -> Result<DFSchema> {
    let fields = schema
        .iter()
        .enumerate()
        .map(|(column, (qualifier, field))| {
            let field = match new_type(column, field) {
                Some(data_type) if &data_type != field.data_type() => {
                    Arc::new(field.as_ref().clone().with_data_type(data_type))
                }
                _ => field.clone(),
            };
            (qualifier.cloned(), field)
        })
        .collect();
    DFSchema::new_with_metadata(fields, schema.metadata().clone())
}

/// `real` arithmetic with an integer operand is `double precision`, as in PostgreSQL (which
/// has no `real` operator taking an integer); DataFusion keeps it in `real` for a 32-bit
/// integer, losing precision past 2^24 (`16777217 * 1::real`). Bigint operands already widen
/// to double in DataFusion.
fn real_arithmetic_in_double(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let real_with_integer = |a: &DataType, b: &DataType| *a == DataType::Float32 && b.is_integer();
    expr.transform_up(|expr| match expr {
        Expr::BinaryExpr(binary)
            if matches!(
                binary.op,
                Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide
            ) =>
        {
            let widen = match (binary.left.get_type(schema), binary.right.get_type(schema)) {
                (Ok(left), Ok(right)) => {
                    real_with_integer(&left, &right) || real_with_integer(&right, &left)
                }
                _ => false,
            };
            if !widen {
                return Ok(Transformed::no(Expr::BinaryExpr(binary)));
            }
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(binary.left.cast_to(&DataType::Float64, schema)?),
                binary.op,
                Box::new(binary.right.cast_to(&DataType::Float64, schema)?),
            ))))
        }
        other => Ok(Transformed::no(other)),
    })
}

/// The literal as PostgreSQL types it, when that differs from DataFusion's type: an integer
/// that fits in 32 bits is an `integer`, and a decimal written with an exponent (`1e5`, which
/// DataFusion holds as 1 at scale -5) has its zeros written out, as `numeric` has no negative
/// scale.
fn as_postgres_literal(value: &ScalarValue) -> Option<ScalarValue> {
    match value {
        ScalarValue::Decimal128(Some(v), precision, scale) if *scale < 0 => {
            let zeros = scale.unsigned_abs();
            let precision = precision.checked_add(zeros)?;
            let v = 10i128
                .checked_pow(zeros.into())
                .and_then(|p| v.checked_mul(p))?;
            (precision <= DECIMAL128_MAX_PRECISION).then_some(ScalarValue::Decimal128(
                Some(v),
                precision,
                0,
            ))
        }
        _ => as_int4(value),
    }
}

/// An integer literal that fits in 32 bits, as an `integer`.
fn as_int4(value: &ScalarValue) -> Option<ScalarValue> {
    match value {
        ScalarValue::Int64(Some(v)) => i32::try_from(*v).ok().map(|v| ScalarValue::Int32(Some(v))),
        _ => None,
    }
}

fn int4_literals(expr: Expr) -> Result<Expr> {
    Ok(match expr {
        Expr::Literal(value, metadata) => {
            Expr::Literal(as_postgres_literal(&value).unwrap_or(value), metadata)
        }
        Expr::AggregateFunction(AggregateFunction { func, mut params }) => {
            params.args = computed_arguments(std::mem::take(&mut params.args))?;
            params.filter = filter(params.filter.take())?;
            params.order_by = sort_exprs(std::mem::take(&mut params.order_by))?;
            Expr::AggregateFunction(AggregateFunction { func, params })
        }
        Expr::WindowFunction(window) => {
            let WindowFunction { fun, mut params } = *window;
            params.args = computed_arguments(std::mem::take(&mut params.args))?;
            params.partition_by = std::mem::take(&mut params.partition_by)
                .into_iter()
                .map(int4_literals)
                .collect::<Result<_>>()?;
            params.filter = filter(params.filter.take())?;
            params.order_by = sort_exprs(std::mem::take(&mut params.order_by))?;
            Expr::WindowFunction(Box::new(WindowFunction { fun, params }))
        }
        other => {
            other
                .map_children(|child| int4_literals(child).map(Transformed::yes))?
                .data
        }
    })
}

/// An aggregate's or window function's arguments: bare literals keep their type (see the
/// module documentation), computed ones are rewritten.
fn computed_arguments(args: Vec<Expr>) -> Result<Vec<Expr>> {
    args.into_iter()
        .map(|arg| match arg {
            Expr::Literal(..) => Ok(arg),
            arg => int4_literals(arg),
        })
        .collect()
}

fn filter(filter: Option<Box<Expr>>) -> Result<Option<Box<Expr>>> {
    filter.map(|f| int4_literals(*f).map(Box::new)).transpose()
}

fn sort_exprs(sorts: Vec<SortExpr>) -> Result<Vec<SortExpr>> {
    sorts
        .into_iter()
        .map(|sort| {
            Ok(SortExpr {
                expr: int4_literals(sort.expr)?,
                ..sort
            })
        })
        .collect()
}

/// A VALUES column whose every value is NULL or an integer literal that fits in 32 bits is an
/// `integer` column, as PostgreSQL resolves `VALUES (1), (2)`; a column mixing in anything
/// else keeps the type it was planned with.
fn values_as_postgres(values: Values) -> Result<LogicalPlan> {
    let Values { schema, mut values } = values;
    let columns = schema.fields().len();
    let int4_columns: Vec<usize> = (0..columns)
        .filter(|&column| {
            let mut any = false;
            let all = values.iter().all(|row| match &row[column] {
                Expr::Literal(value, _) if value.is_null() => true,
                Expr::Literal(value, _) => {
                    any = true;
                    as_int4(value).is_some()
                }
                _ => false,
            });
            all && any
        })
        .collect();
    if int4_columns.is_empty() {
        return Ok(LogicalPlan::Values(Values { schema, values }));
    }
    for row in &mut values {
        for &column in &int4_columns {
            if let Expr::Literal(value, metadata) = &row[column] {
                let int4 = as_int4(value).unwrap_or(ScalarValue::Int32(None));
                row[column] = Expr::Literal(int4, metadata.clone());
            }
        }
    }
    let schema = retyped(&schema, |column, _| {
        int4_columns.contains(&column).then_some(DataType::Int32)
    })?;
    Ok(LogicalPlan::Values(Values {
        schema: Arc::new(schema),
        values,
    }))
}
