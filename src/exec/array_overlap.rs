//! `a && b` on arrays: whether they have an element in common, as PostgreSQL's `arrayoverlap`
//! answers (a NULL element equals nothing). DataFusion plans no `&&`, and its `array_has_any`
//! counts two NULL elements as common.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::{Expr, ExprSchemable, ScalarUDF, Signature, Volatility};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use super::ExecError;
use super::functions::{postgres_type_name, vectorized};

/// The planner for `&&` between two arrays.
pub fn operator() -> Arc<dyn ExprPlanner> {
    Arc::new(ArrayOverlap {
        function: Arc::new(overlap_function()),
    })
}

#[derive(Debug)]
struct ArrayOverlap {
    function: Arc<ScalarUDF>,
}

impl ExprPlanner for ArrayOverlap {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        if expr.op != BinaryOperator::PGOverlap {
            return Ok(PlannerResult::Original(expr));
        }
        let list_type = |e: &Expr| {
            e.get_type(schema)
                .ok()
                .filter(|t| matches!(t, DataType::List(_) | DataType::LargeList(_)))
        };
        // Both as one element type, so that `int[] && bigint[]` compares numbers.
        let common = list_type(&expr.left)
            .zip(list_type(&expr.right))
            .and_then(|(left, right)| comparison_coercion(&left, &right));
        let Some(common) = common else {
            // No other type has `&&`; DataFusion would call the operator unsupported.
            let name = |e: &Expr| {
                e.get_type(schema)
                    .map_or_else(|_| "unknown".to_owned(), |t| postgres_type_name(&t))
            };
            return Err(DataFusionError::External(Box::new(
                ExecError::NoMatchingSignature {
                    message: format!(
                        "operator does not exist: {} && {}",
                        name(&expr.left),
                        name(&expr.right)
                    ),
                    hint: "No operator matches the given name and argument types. You might need to add explicit type casts.",
                },
            )));
        };
        let args = vec![
            expr.left.cast_to(&common, schema)?,
            expr.right.cast_to(&common, schema)?,
        ];
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.function.clone(), args),
        )))
    }
}

fn overlap_function() -> ScalarUDF {
    vectorized(
        "kalamdb_arrays_overlap",
        Signature::any(2, Volatility::Immutable),
        DataType::Boolean,
        |args: &[ArrayRef]| {
            let lists = |array: &ArrayRef| -> Result<Vec<Option<ArrayRef>>> {
                Ok(match array.data_type() {
                    DataType::LargeList(_) => array.as_list::<i64>().iter().collect(),
                    _ => array.as_list::<i32>().iter().collect(),
                })
            };
            // Planning gave both one type; typing literals as PostgreSQL does afterwards can
            // make them differ again (`array[id] && array[1, 5]`).
            let (mut left_array, mut right_array) = (args[0].clone(), args[1].clone());
            if left_array.data_type() != right_array.data_type()
                && let Some(common) =
                    comparison_coercion(left_array.data_type(), right_array.data_type())
            {
                left_array = cast(&left_array, &common)?;
                right_array = cast(&right_array, &common)?;
            }
            let (left, right) = (lists(&left_array)?, lists(&right_array)?);
            let overlaps = left
                .iter()
                .zip(&right)
                .map(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => overlap(a, b).map(Some),
                    _ => Ok(None),
                })
                .collect::<Result<BooleanArray>>()?;
            Ok(Arc::new(overlaps) as ArrayRef)
        },
    )
}

/// Whether the two arrays share a non-NULL element.
fn overlap(a: &ArrayRef, b: &ArrayRef) -> Result<bool> {
    let elements = |array: &ArrayRef| -> Result<HashSet<ScalarValue>> {
        (0..array.len())
            .filter(|&i| array.is_valid(i))
            .map(|i| ScalarValue::try_from_array(array, i))
            .collect()
    };
    let left = elements(a)?;
    Ok(elements(b)?.iter().any(|e| left.contains(e)))
}
