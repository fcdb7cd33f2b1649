//! Integer `+`, `-` and `*` that fail on overflow, as PostgreSQL's do (22003 "bigint out of
//! range"), instead of wrapping as DataFusion's operators do; and narrowing integer casts that
//! fail the same way rather than as an invalid-text error.
//!
//! An analyzer rule, run after type coercion, replaces each such operator on two `smallint`,
//! `integer` or `bigint` operands with PostgreSQL's function for it (`int8pl`, `int4mi`,
//! `int2mul`, ...), computed with Arrow's checked kernels, and each cast from a wider integer
//! type to `integer` or `smallint` with PostgreSQL's cast function (`int4`, `int2`). A cast
//! from `numeric` or a float to an integer type rounds as PostgreSQL's does (numeric halves
//! away from zero, floats halves to even: `2.5::numeric::int` is 3, `2.5::float8::int` 2)
//! where Arrow's truncates. DataFusion
//! types integer literals as `bigint`, so `i * 2` on an `integer` column is computed in `bigint`
//! and overflows only in the cast back to the column's type. Every other operator, cast and
//! type is left to DataFusion.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use super::ExecError;

/// The analyzer rule; see the module documentation.
#[derive(Debug)]
pub struct CheckedIntegerArithmetic {
    functions: Vec<(Operator, DataType, Arc<ScalarUDF>)>,
    /// (from, to, function) for the narrowing integer casts.
    casts: Vec<(DataType, DataType, Arc<ScalarUDF>)>,
    /// (to, function) for the casts from `numeric` and floats to integer types.
    rounding_casts: Vec<(DataType, Arc<ScalarUDF>)>,
}

impl Default for CheckedIntegerArithmetic {
    fn default() -> Self {
        let mut functions = Vec::new();
        for (data_type, type_name, prefix) in [
            (DataType::Int16, "smallint", "int2"),
            (DataType::Int32, "integer", "int4"),
            (DataType::Int64, "bigint", "int8"),
        ] {
            for (op, suffix) in [
                (Operator::Plus, "pl"),
                (Operator::Minus, "mi"),
                (Operator::Multiply, "mul"),
            ] {
                let udf = checked(
                    &format!("{prefix}{suffix}"),
                    op,
                    data_type.clone(),
                    type_name,
                );
                functions.push((op, data_type.clone(), Arc::new(udf)));
            }
        }
        let mut casts = Vec::new();
        for (from, to, name, type_name) in [
            (DataType::Int64, DataType::Int32, "int4", "integer"),
            (DataType::Int64, DataType::Int16, "int2", "smallint"),
            (DataType::Int32, DataType::Int16, "int2", "smallint"),
        ] {
            let udf = checked_cast(name, from.clone(), to.clone(), type_name);
            casts.push((from, to, Arc::new(udf)));
        }
        let rounding_casts = [
            (DataType::Int16, "smallint"),
            (DataType::Int32, "integer"),
            (DataType::Int64, "bigint"),
        ]
        .into_iter()
        .map(|(to, type_name)| (to.clone(), Arc::new(rounding_cast(to, type_name))))
        .collect();
        CheckedIntegerArithmetic {
            functions,
            casts,
            rounding_casts,
        }
    }
}

/// A cast from `numeric` or a float to the integer type `to`, rounding first.
fn rounding_cast(to: DataType, type_name: &'static str) -> ScalarUDF {
    let name = format!("kalamdb_round_to_{type_name}");
    let target = to.clone();
    super::functions::vectorized(
        &name,
        Signature::any(1, Volatility::Immutable),
        to,
        move |args| {
            rounded_to_integer(&args[0], &target).map_err(|_| {
                DataFusionError::External(Box::new(ExecError::NumericOutOfRange(format!(
                    "{type_name} out of range"
                ))))
            })
        },
    )
}

/// `numbers` (`numeric` or floats) as the integer type `to`, rounded as PostgreSQL rounds
/// them: a numeric's halves away from zero, a float's to even. Fails on a value out of range.
pub(crate) fn rounded_to_integer(
    numbers: &ArrayRef,
    to: &DataType,
) -> std::result::Result<ArrayRef, ArrowError> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::{CastOptions, cast, cast_with_options};
    use datafusion::arrow::datatypes::Float64Type;
    let rounded = match numbers.data_type() {
        // Arrow rounds halves away from zero when it drops a decimal's fraction.
        DataType::Decimal128(..) | DataType::Decimal256(..) => {
            cast(numbers, &DataType::Decimal256(76, 0))?
        }
        _ => {
            let floats = cast(numbers, &DataType::Float64)?;
            let rounded = floats
                .as_primitive::<Float64Type>()
                .unary::<_, Float64Type>(f64::round_ties_even);
            Arc::new(rounded) as ArrayRef
        }
    };
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(&rounded, to, &options)
}

fn checked_cast(name: &str, from: DataType, to: DataType, type_name: &'static str) -> ScalarUDF {
    let target = to.clone();
    super::functions::vectorized(
        name,
        Signature::exact(vec![from], Volatility::Immutable),
        to,
        move |args| {
            let options = datafusion::arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            datafusion::arrow::compute::cast_with_options(&args[0], &target, &options).map_err(
                |_| {
                    DataFusionError::External(Box::new(ExecError::NumericOutOfRange(format!(
                        "{type_name} out of range"
                    ))))
                },
            )
        },
    )
}

fn checked(name: &str, op: Operator, data_type: DataType, type_name: &'static str) -> ScalarUDF {
    super::functions::vectorized(
        name,
        Signature::exact(vec![data_type.clone(); 2], Volatility::Immutable),
        data_type,
        move |args| {
            let result = match op {
                Operator::Plus => numeric::add(&args[0], &args[1]),
                Operator::Minus => numeric::sub(&args[0], &args[1]),
                _ => numeric::mul(&args[0], &args[1]),
            };
            result.map_err(|e| match e {
                ArrowError::ArithmeticOverflow(_) => DataFusionError::External(Box::new(
                    ExecError::NumericOutOfRange(format!("{type_name} out of range")),
                )),
                other => DataFusionError::ArrowError(Box::new(other), None),
            })
        },
    )
}

impl CheckedIntegerArithmetic {
    fn function_for(&self, op: Operator, data_type: &DataType) -> Option<&Arc<ScalarUDF>> {
        self.functions
            .iter()
            .find(|(o, t, _)| *o == op && t == data_type)
            .map(|(_, _, f)| f)
    }

    /// An operand's type. The operands of a long chain are this rule's own functions, whose
    /// type is known without walking the chain below them (which would make a chain of n
    /// operators cost n² type derivations).
    fn operand_type(&self, expr: &Expr, schema: &DFSchema) -> Option<DataType> {
        match expr {
            Expr::ScalarFunction(call) => {
                let own = self
                    .functions
                    .iter()
                    .map(|(_, t, f)| (t, f))
                    .chain(self.casts.iter().map(|(_, t, f)| (t, f)))
                    .find(|(_, f)| Arc::ptr_eq(f, &call.func));
                if let Some((data_type, _)) = own {
                    return Some(data_type.clone());
                }
            }
            Expr::Literal(value, _) => return Some(value.data_type()),
            _ => {}
        }
        expr.get_type(schema).ok()
    }

    pub(super) fn rewrite_expr(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        expr.transform_up(|expr| {
            if let Expr::Cast(cast) = &expr
                && let Ok(from) = cast.expr.get_type(schema)
                && let Some((_, _, function)) = self
                    .casts
                    .iter()
                    .find(|(f, t, _)| *f == from && t == cast.field.data_type())
            {
                return Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(function.clone(), vec![cast.expr.as_ref().clone()]),
                )));
            }
            if let Expr::Cast(cast) = &expr
                && let Ok(from) = cast.expr.get_type(schema)
                && matches!(
                    from,
                    DataType::Decimal128(..)
                        | DataType::Decimal256(..)
                        | DataType::Float32
                        | DataType::Float64
                )
                && let Some((_, function)) = self
                    .rounding_casts
                    .iter()
                    .find(|(t, _)| t == cast.field.data_type())
            {
                return Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(function.clone(), vec![cast.expr.as_ref().clone()]),
                )));
            }
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
                return Ok(Transformed::no(expr));
            };
            if !matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply) {
                return Ok(Transformed::no(expr));
            }
            // A type that cannot be worked out here is DataFusion's to report later.
            let (Some(left_type), Some(right_type)) = (
                self.operand_type(left, schema),
                self.operand_type(right, schema),
            ) else {
                return Ok(Transformed::no(expr));
            };
            match self.function_for(*op, &left_type) {
                Some(function) if left_type == right_type => {
                    let args = vec![left.as_ref().clone(), right.as_ref().clone()];
                    Ok(Transformed::yes(Expr::ScalarFunction(
                        ScalarFunction::new_udf(function.clone(), args),
                    )))
                }
                _ => Ok(Transformed::no(expr)),
            }
        })
    }
}

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::plan_rewrite::rewrite_expressions(plan, |expr, schema| {
            self.rewrite_expr(expr, schema)
        })
    }

    fn name(&self) -> &str {
        "checked_integer_arithmetic"
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn run(sql: &str) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
        let ctx = SessionContext::new();
        ctx.add_analyzer_rule(Arc::new(CheckedIntegerArithmetic::default()));
        ctx.sql(sql).await?.collect().await
    }

    fn out_of_range(result: Result<Vec<datafusion::arrow::array::RecordBatch>>) -> String {
        match result.expect_err("overflow must fail").find_root() {
            DataFusionError::External(e) => e.to_string(),
            other => panic!("not an out-of-range error: {other}"),
        }
    }

    #[tokio::test]
    async fn integer_overflow_is_out_of_range_for_each_type() {
        let cases = [
            ("SELECT CAST(9223372036854775807 AS BIGINT) + 1", "bigint"),
            ("SELECT CAST(-9223372036854775807 AS BIGINT) - 2", "bigint"),
            ("SELECT CAST(2147483647 AS INT) * CAST(2 AS INT)", "integer"),
            (
                "SELECT CAST(32767 AS SMALLINT) + CAST(1 AS SMALLINT)",
                "smallint",
            ),
        ];
        for (sql, type_name) in cases {
            assert_eq!(
                out_of_range(run(sql).await),
                format!("{type_name} out of range")
            );
        }
        assert_eq!(
            out_of_range(run("SELECT CAST(CAST(40000 AS BIGINT) AS SMALLINT)").await),
            "smallint out of range"
        );
        let over_columns =
            "SELECT b + 1 FROM (VALUES (CAST(1 AS BIGINT)), (9223372036854775807)) AS t(b)";
        assert_eq!(out_of_range(run(over_columns).await), "bigint out of range");
    }

    #[tokio::test]
    async fn arithmetic_within_range_keeps_its_value_and_name() {
        let batches =
            run("SELECT b * 2 - 1 AS x, b + 1 FROM (VALUES (CAST(20 AS BIGINT))) AS t(b)")
                .await
                .unwrap();
        let schema = batches[0].schema();
        assert_eq!(schema.field(0).name(), "x");
        assert_eq!(schema.field(1).name(), "t.b + Int64(1)");
        let row: Vec<String> = (0..2)
            .map(|i| {
                datafusion::scalar::ScalarValue::try_from_array(batches[0].column(i), 0)
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(row, ["39", "21"]);
    }
}
