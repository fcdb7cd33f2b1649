//! `numeric / numeric` as PostgreSQL computes it. DataFusion divides decimals at the dividend's
//! scale plus 4 and truncates (`1.0 / 3` gave `0.33333`); PostgreSQL rounds half away from zero
//! at a scale it chooses for at least 16 significant digits (`0.33333333333333333333`).
//!
//! The planner turns a division with a decimal operand and a decimal or integer other operand
//! into `kalamdb_numeric_div(dividend, divisor, scale)`. The scale is the one PostgreSQL picks
//! for the operands' values when both are literals. A column holds one scale for all its rows,
//! where PostgreSQL picks one per value, so for other operands the scale is PostgreSQL's for
//! a quotient in the operands' first digit group: 16 digits, or more if an operand has more.
//! `div(y, x)` is the same division truncated to an integer.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal256Array};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DECIMAL128_MAX_PRECISION, DECIMAL256_MAX_PRECISION, DECIMAL256_MAX_SCALE, DataType, Field,
    FieldRef, i256,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use super::ExecError;
use crate::model::numeric_text::{NumericDigits, division_scale};

const FUNCTION: &str = "kalamdb_numeric_div";

/// Significant digits PostgreSQL keeps in a quotient at least (`NUMERIC_MIN_SIG_DIGITS`).
const MIN_SIGNIFICANT_DIGITS: i32 = 16;

/// The planner for `/` with a `numeric` operand.
pub fn operator() -> Arc<dyn ExprPlanner> {
    Arc::new(NumericDivisionPlanner {
        function: Arc::new(ScalarUDF::new_from_impl(NumericDivision {
            signature: Signature::any(3, Volatility::Immutable),
            integer_quotient: false,
        })),
    })
}

#[derive(Debug)]
struct NumericDivisionPlanner {
    function: Arc<ScalarUDF>,
}

impl ExprPlanner for NumericDivisionPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        if expr.op != BinaryOperator::Divide {
            return Ok(PlannerResult::Original(expr));
        }
        let (Ok(left), Ok(right)) = (expr.left.get_type(schema), expr.right.get_type(schema))
        else {
            return Ok(PlannerResult::Original(expr));
        };
        let (Some(left_scale), Some(right_scale)) = (exact_scale(&left), exact_scale(&right))
        else {
            return Ok(PlannerResult::Original(expr));
        };
        if !is_decimal(&left) && !is_decimal(&right) {
            return Ok(PlannerResult::Original(expr));
        }
        let scale = match (literal_digits(&expr.left), literal_digits(&expr.right)) {
            (Some(dividend), Some(divisor)) => division_scale(&dividend, &divisor),
            _ => MIN_SIGNIFICANT_DIGITS
                .max(left_scale.into())
                .max(right_scale.into()),
        }
        .min(DECIMAL256_MAX_SCALE.into());
        let scale = Expr::Literal(ScalarValue::Int8(Some(scale as i8)), None);
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.function.clone(), vec![expr.left, expr.right, scale]),
        )))
    }
}

fn is_decimal(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Decimal128(..) | DataType::Decimal256(..)
    )
}

/// The scale of an exact number type: a decimal's own, 0 for an integer; None otherwise.
fn exact_scale(data_type: &DataType) -> Option<i8> {
    match data_type {
        DataType::Decimal128(_, scale) | DataType::Decimal256(_, scale) => Some(*scale),
        t if t.is_integer() => Some(0),
        _ => None,
    }
}

/// A literal operand's digits, for the scale PostgreSQL would pick for its value.
fn literal_digits(expr: &Expr) -> Option<NumericDigits> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    let (unscaled, scale) = match value {
        ScalarValue::Decimal128(Some(v), _, s) => (i256::from_i128(*v), *s),
        ScalarValue::Decimal256(Some(v), _, s) => (*v, *s),
        other if other.data_type().is_integer() && !other.is_null() => {
            let text = other.to_string();
            (i256::from_string(&text)?, 0)
        }
        _ => return None,
    };
    Some(NumericDigits::new(unscaled, scale))
}

/// `kalamdb_numeric_div`, the `/` above, or `div(y, x)`: PostgreSQL's integer quotient of two
/// numerics, truncated toward zero.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericDivision {
    signature: Signature,
    integer_quotient: bool,
}

/// `div(numeric, numeric)`.
pub fn integer_quotient() -> ScalarUDF {
    ScalarUDF::new_from_impl(NumericDivision {
        signature: Signature::user_defined(Volatility::Immutable),
        integer_quotient: true,
    })
}

impl ScalarUDFImpl for NumericDivision {
    fn name(&self) -> &str {
        if self.integer_quotient {
            "div"
        } else {
            FUNCTION
        }
    }

    /// `div` takes two exact numbers (integers are numerics to it).
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [y, x] if exact_scale(y).is_some() && exact_scale(x).is_some() => {
                Ok(arg_types.to_vec())
            }
            _ => datafusion::common::plan_err!("function div does not accept {arg_types:?}"),
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("{FUNCTION} is typed by its scale argument")
    }

    /// A decimal at the scale the third argument names: 128 bits wide when the quotient's
    /// integer digits (at most the dividend's plus the divisor's fraction digits) leave room.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let scale = if self.integer_quotient {
            &0
        } else if let Some(Some(ScalarValue::Int8(Some(scale)))) = args.scalar_arguments.get(2) {
            scale
        } else {
            return datafusion::common::plan_err!("{FUNCTION} takes a literal scale");
        };
        let integer_digits = |t: &DataType| match t {
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
                i32::from(*p) - i32::from(*s)
            }
            _ => 20,
        };
        let dividend = args.arg_fields[0].data_type();
        let divisor = args.arg_fields[1].data_type();
        let divisor_fraction = exact_scale(divisor).unwrap_or(0).max(0);
        let needed = integer_digits(dividend) + i32::from(divisor_fraction) + i32::from(*scale);
        let data_type = if needed <= i32::from(DECIMAL128_MAX_PRECISION) {
            DataType::Decimal128(DECIMAL128_MAX_PRECISION, *scale)
        } else {
            DataType::Decimal256(DECIMAL256_MAX_PRECISION, *scale)
        };
        Ok(Arc::new(Field::new(self.name(), data_type, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let returns = args.return_field.data_type().clone();
        let (DataType::Decimal128(_, scale) | DataType::Decimal256(_, scale)) = returns else {
            return datafusion::common::internal_err!("{FUNCTION} returns a decimal");
        };
        let rounding = if self.integer_quotient {
            Rounding::TowardZero
        } else {
            Rounding::HalfAwayFromZero
        };
        super::functions::per_call(&args.args, |arrays| {
            let quotients = divide(&arrays[0], &arrays[1], scale, rounding)?;
            let options = CastOptions {
                safe: false,
                ..Default::default()
            };
            cast_with_options(&quotients, &returns, &options).map_err(|_| overflow())
        })
    }
}

/// How a quotient drops the digits past its scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rounding {
    /// As `/` rounds: half away from zero.
    HalfAwayFromZero,
    /// As `div` truncates.
    TowardZero,
}

/// Each row's quotient at `scale`, as 256-bit decimals.
fn divide(
    dividend: &ArrayRef,
    divisor: &ArrayRef,
    scale: i8,
    rounding: Rounding,
) -> Result<ArrayRef> {
    let (dividend_scale, dividends) = widened(dividend)?;
    let (divisor_scale, divisors) = widened(divisor)?;
    // quotient * 10^scale = dividend * 10^(scale + divisor_scale - dividend_scale) / divisor
    let exponent = i32::from(scale) + i32::from(divisor_scale) - i32::from(dividend_scale);
    let quotients = dividends
        .iter()
        .zip(divisors.iter())
        .map(|pair| match pair {
            (Some(dividend), Some(divisor)) => {
                quotient(dividend, divisor, exponent, rounding).map(Some)
            }
            _ => Ok(None),
        })
        .collect::<Result<Decimal256Array>>()?
        .with_precision_and_scale(DECIMAL256_MAX_PRECISION, scale)?;
    Ok(Arc::new(quotients))
}

/// An exact number array as 256-bit unscaled values, with their scale.
fn widened(array: &ArrayRef) -> Result<(i8, Decimal256Array)> {
    let scale = exact_scale(array.data_type()).unwrap_or(0);
    let wide = DataType::Decimal256(DECIMAL256_MAX_PRECISION, scale);
    let array = cast_with_options(array, &wide, &CastOptions::default())?;
    Ok((scale, array.as_primitive().clone()))
}

fn quotient(dividend: i256, divisor: i256, exponent: i32, rounding: Rounding) -> Result<i256> {
    if divisor == i256::ZERO {
        return Err(DataFusionError::ArrowError(
            Box::new(ArrowError::DivideByZero),
            None,
        ));
    }
    let power = |e: i32| i256::from_i128(10).checked_pow(e.unsigned_abs());
    let (numerator, denominator) = if exponent >= 0 {
        (
            power(exponent).and_then(|p| dividend.checked_mul(p)),
            Some(divisor),
        )
    } else {
        (
            Some(dividend),
            power(exponent).and_then(|p| divisor.checked_mul(p)),
        )
    };
    let (Some(numerator), Some(denominator)) = (numerator, denominator) else {
        return Err(overflow());
    };
    let truncated = numerator.wrapping_div(denominator);
    let remainder = numerator.wrapping_rem(denominator).wrapping_abs();
    let rounds_away = rounding == Rounding::HalfAwayFromZero
        && remainder
            .checked_mul(i256::from_i128(2))
            .is_none_or(|twice| twice >= denominator.wrapping_abs());
    Ok(if rounds_away {
        truncated.wrapping_add(numerator.signum().wrapping_mul(denominator.signum()))
    } else {
        truncated
    })
}

fn overflow() -> DataFusionError {
    DataFusionError::External(Box::new(ExecError::NumericOutOfRange(
        "value overflows numeric format".into(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotient_of(dividend: i128, divisor: i128, exponent: i32, rounding: Rounding) -> i128 {
        quotient(
            i256::from_i128(dividend),
            i256::from_i128(divisor),
            exponent,
            rounding,
        )
        .unwrap()
        .as_i128()
    }

    #[test]
    fn quotients_round_half_away_from_zero() {
        let rounded = |y, x, e| quotient_of(y, x, e, Rounding::HalfAwayFromZero);
        assert_eq!(rounded(1, 3, 4), 3333);
        assert_eq!(rounded(2, 3, 4), 6667);
        assert_eq!(rounded(-2, 3, 4), -6667);
        assert_eq!(rounded(5, 10, 0), 1);
        assert_eq!(rounded(-5, 10, 0), -1);
        assert_eq!(rounded(15, 1, -1), 2);
    }

    #[test]
    fn integer_quotients_truncate_toward_zero() {
        let truncated = |y, x| quotient_of(y, x, 0, Rounding::TowardZero);
        assert_eq!(truncated(9, 4), 2);
        assert_eq!(truncated(-9, 4), -2);
        assert_eq!(truncated(-7, -2), 3);
    }

    #[test]
    fn dividing_by_zero_is_refused() {
        assert!(quotient(i256::ONE, i256::ZERO, 4, Rounding::TowardZero).is_err());
    }
}
