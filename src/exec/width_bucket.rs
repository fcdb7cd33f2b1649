//! `width_bucket(operand, low, high, count)`: which of `count` equal-width buckets between
//! `low` and `high` holds `operand`, 0 below the range and `count + 1` above it (buckets run
//! downwards when `low > high`), computed as PostgreSQL's `width_bucket_float8` does.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{ScalarUDF, Signature, Volatility};

use super::ExecError;
use super::functions::vectorized;

pub fn function() -> ScalarUDF {
    vectorized(
        "width_bucket",
        // Numbers of any type, read as double precision and the count as an integer below.
        Signature::any(4, Volatility::Immutable),
        DataType::Int32,
        |args: &[ArrayRef]| {
            let floats = (0..3)
                .map(|i| cast(&args[i], &DataType::Float64))
                .collect::<Result<Vec<_>, _>>()?;
            let counts = cast(&args[3], &DataType::Int32)?;
            let value = |i: usize, row: usize| {
                let array = floats[i].as_primitive::<Float64Type>();
                array.is_valid(row).then(|| array.value(row))
            };
            let counts = counts.as_primitive::<Int32Type>();
            let buckets = (0..args[0].len())
                .map(|row| {
                    let (Some(operand), Some(low), Some(high)) =
                        (value(0, row), value(1, row), value(2, row))
                    else {
                        return Ok(None);
                    };
                    if counts.is_null(row) {
                        return Ok(None);
                    }
                    bucket(operand, low, high, counts.value(row)).map(Some)
                })
                .collect::<Result<Int32Array>>()?;
            Ok(Arc::new(buckets) as ArrayRef)
        },
    )
}

fn bucket(operand: f64, low: f64, high: f64, count: i32) -> Result<i32> {
    let refuse = |message: &str| {
        Err(DataFusionError::External(Box::new(
            ExecError::InvalidWidthBucketArgument(message.to_owned()),
        )))
    };
    if count <= 0 {
        return refuse("count must be greater than zero");
    }
    if operand.is_nan() || low.is_nan() || high.is_nan() {
        return refuse("operand, lower bound, and upper bound cannot be NaN");
    }
    if low.is_infinite() || high.is_infinite() {
        return refuse("lower and upper bounds must be finite");
    }
    if low == high {
        return refuse("lower bound cannot equal upper bound");
    }
    let (below, above, position) = if low < high {
        (
            operand < low,
            operand >= high,
            (operand - low) / (high - low),
        )
    } else {
        (
            operand > low,
            operand <= high,
            (low - operand) / (low - high),
        )
    };
    if below {
        return Ok(0);
    }
    if above {
        return count.checked_add(1).map_or_else(
            || {
                Err(DataFusionError::External(Box::new(
                    ExecError::NumericOutOfRange("integer out of range".into()),
                )))
            },
            Ok,
        );
    }
    // The quotient may round up to 1.0; the operand is still inside the last bucket.
    let within = ((f64::from(count) * position) as i32).min(count - 1);
    Ok(within + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_fall_into_equal_buckets_and_outside_ones_at_either_end() {
        assert_eq!(bucket(5.35, 0.024, 10.06, 5).unwrap(), 3);
        assert_eq!(bucket(-1.0, 0.0, 10.0, 4).unwrap(), 0);
        assert_eq!(bucket(10.0, 0.0, 10.0, 4).unwrap(), 5);
        assert_eq!(bucket(5.0, 10.0, 0.0, 4).unwrap(), 3);
        assert_eq!(bucket(0.0, 10.0, 0.0, 4).unwrap(), 5);
        for (operand, low, high, count) in [
            (1.0, 0.0, 1.0, 0),
            (1.0, 2.0, 2.0, 3),
            (f64::NAN, 0.0, 1.0, 1),
        ] {
            assert!(bucket(operand, low, high, count).is_err());
        }
    }
}
