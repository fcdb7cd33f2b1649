//! Integer `+`, `-` and `*` that fail on overflow, as PostgreSQL's do (22003 "bigint out of
//! range"), instead of wrapping as DataFusion's operators do.
//!
//! An analyzer rule, run after type coercion, replaces each such operator on two `smallint`,
//! `integer` or `bigint` operands with PostgreSQL's function for it (`int8pl`, `int4mi`,
//! `int2mul`, ...), computed with Arrow's checked kernels. Every other operator and type is left
//! to DataFusion.

use std::sync::Arc;

use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use super::ExecError;

/// The analyzer rule; see the module documentation.
#[derive(Debug)]
pub struct CheckedIntegerArithmetic {
    functions: Vec<(Operator, DataType, Arc<ScalarUDF>)>,
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
                let udf = checked(&format!("{prefix}{suffix}"), op, data_type.clone(), type_name);
                functions.push((op, data_type.clone(), Arc::new(udf)));
            }
        }
        CheckedIntegerArithmetic { functions }
    }
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

    fn rewrite_expr(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        expr.transform_up(|expr| {
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
                return Ok(Transformed::no(expr));
            };
            // A type that cannot be worked out here is DataFusion's to report later.
            let (Ok(left_type), Ok(right_type)) = (left.get_type(schema), right.get_type(schema))
            else {
                return Ok(Transformed::no(expr));
            };
            match self.function_for(*op, &left_type) {
                Some(function) if left_type == right_type => {
                    let args = vec![left.as_ref().clone(), right.as_ref().clone()];
                    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                        function.clone(),
                        args,
                    ))))
                }
                _ => Ok(Transformed::no(expr)),
            }
        })
    }
}

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
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
                Ok(self.rewrite_expr(expr, &schema)?.update_data(|e| saved.restore(e)))
            })?;
            if rewritten.transformed {
                rewritten.map_data(|plan| plan.recompute_schema())
            } else {
                Ok(rewritten)
            }
        })
        .map(|t| t.data)
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
            ("SELECT CAST(32767 AS SMALLINT) + CAST(1 AS SMALLINT)", "smallint"),
        ];
        for (sql, type_name) in cases {
            assert_eq!(out_of_range(run(sql).await), format!("{type_name} out of range"));
        }
        let over_columns =
            "SELECT b + 1 FROM (VALUES (CAST(1 AS BIGINT)), (9223372036854775807)) AS t(b)";
        assert_eq!(out_of_range(run(over_columns).await), "bigint out of range");
    }

    #[tokio::test]
    async fn arithmetic_within_range_keeps_its_value_and_name() {
        let batches = run("SELECT b * 2 - 1 AS x, b + 1 FROM (VALUES (CAST(20 AS BIGINT))) AS t(b)")
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
