//! Interval arithmetic DataFusion lacks or does otherwise. An interval multiplied or divided
//! by a number (`interval '1 hour' * 3`, `n * interval '1 day'`, `interval '1 day' / 2`) has no
//! DataFusion operator: the planner turns each into a call that scales the interval as
//! PostgreSQL's `interval_mul` and `interval_div` do (months and days are scaled and truncated,
//! and what a fractional factor leaves of them cascades down into days, a month being 30 days,
//! and microseconds, never up). A date plus or minus an interval is a timestamp, as in
//! PostgreSQL; DataFusion kept a date and dropped the interval's time. And `justify_hours`,
//! `justify_days` and `justify_interval` carry whole days out of the time and whole months
//! out of the days.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::datatypes::{
    DataType, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable, ScalarUDF, Signature, Volatility};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use super::ExecError;
use super::functions::vectorized;

const DAYS_PER_MONTH: f64 = 30.0;
const SECONDS_PER_DAY: f64 = 86_400.0;
const MICROS_PER_SECOND: f64 = 1_000_000.0;
const NANOS_PER_MICRO: i64 = 1_000;

/// The planner for `interval * number`, `number * interval` and `interval / number`.
pub fn operators() -> Arc<dyn ExprPlanner> {
    Arc::new(IntervalScaling {
        multiply: Arc::new(scaling_function("kalamdb_interval_mul", Scale::Multiply)),
        divide: Arc::new(scaling_function("kalamdb_interval_div", Scale::Divide)),
    })
}

#[derive(Debug)]
struct IntervalScaling {
    multiply: Arc<ScalarUDF>,
    divide: Arc<ScalarUDF>,
}

impl ExprPlanner for IntervalScaling {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        if !matches!(
            expr.op,
            BinaryOperator::Multiply
                | BinaryOperator::Divide
                | BinaryOperator::Plus
                | BinaryOperator::Minus
        ) {
            return Ok(PlannerResult::Original(expr));
        }
        let (Ok(left), Ok(right)) = (expr.left.get_type(schema), expr.right.get_type(schema))
        else {
            return Ok(PlannerResult::Original(expr));
        };
        let is_interval = |t: &DataType| matches!(t, DataType::Interval(_));
        let is_date = |t: &DataType| matches!(t, DataType::Date32 | DataType::Date64);
        if matches!(expr.op, BinaryOperator::Plus | BinaryOperator::Minus) {
            let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
            return Ok(match (is_date(&left), is_interval(&right)) {
                (true, true) => PlannerResult::Original(RawBinaryExpr {
                    left: expr.left.cast_to(&timestamp, schema)?,
                    ..expr
                }),
                _ if expr.op == BinaryOperator::Plus && is_interval(&left) && is_date(&right) => {
                    PlannerResult::Original(RawBinaryExpr {
                        right: expr.right.cast_to(&timestamp, schema)?,
                        ..expr
                    })
                }
                _ => PlannerResult::Original(expr),
            });
        }
        let is_number = |t: &DataType| t.is_numeric() || *t == DataType::Null;
        let (interval, factor, function) = match expr.op {
            BinaryOperator::Multiply if is_interval(&left) && is_number(&right) => {
                (expr.left, expr.right, &self.multiply)
            }
            BinaryOperator::Multiply if is_number(&left) && is_interval(&right) => {
                (expr.right, expr.left, &self.multiply)
            }
            BinaryOperator::Divide if is_interval(&left) && is_number(&right) => {
                (expr.left, expr.right, &self.divide)
            }
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let args = vec![
            interval.cast_to(&DataType::Interval(IntervalUnit::MonthDayNano), schema)?,
            factor.cast_to(&DataType::Float64, schema)?,
        ];
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(function.clone(), args),
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Multiply,
    Divide,
}

fn scaling_function(name: &str, scale: Scale) -> ScalarUDF {
    vectorized(
        name,
        Signature::exact(
            vec![
                DataType::Interval(IntervalUnit::MonthDayNano),
                DataType::Float64,
            ],
            Volatility::Immutable,
        ),
        DataType::Interval(IntervalUnit::MonthDayNano),
        move |args: &[ArrayRef]| {
            let spans =
                args[0].as_primitive::<datafusion::arrow::datatypes::IntervalMonthDayNanoType>();
            let factors = args[1].as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            let scaled = spans
                .iter()
                .zip(factors.iter())
                .map(|(span, factor)| match (span, factor) {
                    (Some(span), Some(factor)) => scaled(span, factor, scale).map(Some),
                    _ => Ok(None),
                })
                .collect::<Result<IntervalMonthDayNanoArray>>()?;
            Ok(Arc::new(scaled) as ArrayRef)
        },
    )
}

/// `span` multiplied or divided by `factor`, as PostgreSQL 15 computes it.
fn scaled(span: IntervalMonthDayNano, factor: f64, scale: Scale) -> Result<IntervalMonthDayNano> {
    if scale == Scale::Divide && factor == 0.0 {
        return Err(DataFusionError::ArrowError(
            Box::new(ArrowError::DivideByZero),
            None,
        ));
    }
    let apply = |value: f64| match scale {
        Scale::Multiply => value * factor,
        Scale::Divide => value / factor,
    };
    let whole = |value: f64| -> Result<i32> {
        if value.is_nan() || value > f64::from(i32::MAX) || value < f64::from(i32::MIN) {
            return Err(out_of_range());
        }
        Ok(value as i32)
    };
    let months = apply(f64::from(span.months));
    let days = apply(f64::from(span.days));
    let result_months = whole(months)?;
    let mut result_days = whole(days)?;
    let month_remainder_days =
        round_to_micros((months - f64::from(result_months)) * DAYS_PER_MONTH);
    let mut second_remainder = round_to_micros(
        (days - f64::from(result_days) + month_remainder_days - month_remainder_days.trunc())
            * SECONDS_PER_DAY,
    );
    // Rounding can leave 24:00:00, and a month's fraction more than a day.
    if second_remainder.abs() >= SECONDS_PER_DAY {
        let carried = (second_remainder / SECONDS_PER_DAY).trunc();
        result_days = result_days
            .checked_add(whole(carried)?)
            .ok_or_else(out_of_range)?;
        second_remainder -= carried * SECONDS_PER_DAY;
    }
    result_days = result_days
        .checked_add(whole(month_remainder_days.trunc())?)
        .ok_or_else(out_of_range)?;
    let micros = (apply(span.nanoseconds as f64 / NANOS_PER_MICRO as f64)
        + second_remainder * MICROS_PER_SECOND)
        .round_ties_even();
    Ok(IntervalMonthDayNano::new(
        result_months,
        result_days,
        time_in_nanos(micros)?,
    ))
}

/// `span` divided by `factor`, as PostgreSQL's `interval / float8`.
pub(super) fn divided(span: IntervalMonthDayNano, factor: f64) -> Result<IntervalMonthDayNano> {
    scaled(span, factor, Scale::Divide)
}

/// An interval's time part, computed in microseconds, as Arrow keeps it: nanoseconds, which
/// hold a thousandth of PostgreSQL's range.
fn time_in_nanos(micros: f64) -> Result<i64> {
    if !micros.is_finite() || micros.abs() >= (i64::MAX / NANOS_PER_MICRO) as f64 {
        return Err(out_of_range());
    }
    Ok(micros as i64 * NANOS_PER_MICRO)
}

/// Registers `justify_hours`, `justify_days`, `justify_interval` and `make_interval`.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(make_interval());
    for (name, justify) in [
        ("justify_hours", justify_hours as fn(Parts) -> Parts),
        ("justify_days", justify_days),
        ("justify_interval", justify_interval),
    ] {
        ctx.register_udf(vectorized(
            name,
            Signature::exact(
                vec![DataType::Interval(IntervalUnit::MonthDayNano)],
                Volatility::Immutable,
            ),
            DataType::Interval(IntervalUnit::MonthDayNano),
            move |args: &[ArrayRef]| {
                let justified: IntervalMonthDayNanoArray = args[0]
                    .as_primitive::<IntervalMonthDayNanoType>()
                    .iter()
                    .map(|span| span.map(|span| justify(Parts::of(span)).interval()))
                    .collect();
                Ok(Arc::new(justified) as ArrayRef)
            },
        ));
    }
}

/// `make_interval(years, months, weeks, days, hours, mins, secs)`, each given (the SQL layer
/// fills in the zeros PostgreSQL defaults the missing ones to).
fn make_interval() -> ScalarUDF {
    vectorized(
        "make_interval",
        // Any numbers, read as integers and seconds below.
        Signature::any(7, Volatility::Immutable),
        DataType::Interval(IntervalUnit::MonthDayNano),
        |args: &[ArrayRef]| {
            let args = args
                .iter()
                .enumerate()
                .map(|(i, arg)| {
                    let to = if i == 6 {
                        DataType::Float64
                    } else {
                        DataType::Int64
                    };
                    datafusion::arrow::compute::cast(arg, &to)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let int = |i: usize| args[i].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let seconds = args[6].as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            (0..args[0].len())
                .map(|row| {
                    let mut fields = [0i64; 6];
                    for (i, field) in fields.iter_mut().enumerate() {
                        if int(i).is_null(row) {
                            return Ok(None);
                        }
                        *field = int(i).value(row);
                    }
                    if seconds.is_null(row) {
                        return Ok(None);
                    }
                    let [years, months, weeks, days, hours, minutes] = fields;
                    let whole = |v: Option<i64>| {
                        v.and_then(|v| i32::try_from(v).ok())
                            .ok_or_else(out_of_range)
                    };
                    let months = whole(years.checked_mul(12).and_then(|y| y.checked_add(months)))?;
                    let days = whole(weeks.checked_mul(7).and_then(|w| w.checked_add(days)))?;
                    let micros = (hours as f64 * 3600.0 + minutes as f64 * 60.0)
                        * MICROS_PER_SECOND
                        + (seconds.value(row) * MICROS_PER_SECOND).round_ties_even();
                    Ok(Some(IntervalMonthDayNano::new(
                        months,
                        days,
                        time_in_nanos(micros)?,
                    )))
                })
                .collect::<Result<IntervalMonthDayNanoArray>>()
                .map(|a| Arc::new(a) as ArrayRef)
        },
    )
}

/// An interval in PostgreSQL's units, widened so carrying between them cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    months: i64,
    days: i64,
    micros: i64,
}

use crate::model::interval_text::MICROS_PER_DAY;

impl Parts {
    fn of(span: IntervalMonthDayNano) -> Parts {
        Parts {
            months: i64::from(span.months),
            days: i64::from(span.days),
            micros: span.nanoseconds / NANOS_PER_MICRO,
        }
    }

    /// Back to Arrow's interval; months and days saturate (PostgreSQL reports an overflow
    /// there, which only intervals near the type's limits reach).
    fn interval(self) -> IntervalMonthDayNano {
        let clamp = |v: i64| v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        IntervalMonthDayNano::new(
            clamp(self.months),
            clamp(self.days),
            self.micros.saturating_mul(NANOS_PER_MICRO),
        )
    }

    /// Days and time of one sign, borrowing a day where they differ.
    fn days_and_time_agree(mut self) -> Parts {
        if self.days > 0 && self.micros < 0 {
            self.micros += MICROS_PER_DAY;
            self.days -= 1;
        } else if self.days < 0 && self.micros > 0 {
            self.micros -= MICROS_PER_DAY;
            self.days += 1;
        }
        self
    }
}

fn justify_hours(mut parts: Parts) -> Parts {
    parts.days += parts.micros / MICROS_PER_DAY;
    parts.micros %= MICROS_PER_DAY;
    parts.days_and_time_agree()
}

fn justify_days(mut parts: Parts) -> Parts {
    parts.months += parts.days / 30;
    parts.days %= 30;
    if parts.months > 0 && parts.days < 0 {
        parts.days += 30;
        parts.months -= 1;
    } else if parts.months < 0 && parts.days > 0 {
        parts.days -= 30;
        parts.months += 1;
    }
    parts
}

fn justify_interval(mut parts: Parts) -> Parts {
    parts.days += parts.micros / MICROS_PER_DAY;
    parts.micros %= MICROS_PER_DAY;
    parts.months += parts.days / 30;
    parts.days %= 30;
    if parts.months > 0 && (parts.days < 0 || (parts.days == 0 && parts.micros < 0)) {
        parts.days += 30;
        parts.months -= 1;
    } else if parts.months < 0 && (parts.days > 0 || (parts.days == 0 && parts.micros > 0)) {
        parts.days -= 30;
        parts.months += 1;
    }
    parts.days_and_time_agree()
}

/// PostgreSQL's `TSROUND`: to the microsecond, so that a whole number computed in floating
/// point stays whole.
fn round_to_micros(value: f64) -> f64 {
    (value * MICROS_PER_SECOND).round_ties_even() / MICROS_PER_SECOND
}

pub(super) fn out_of_range() -> DataFusionError {
    DataFusionError::External(Box::new(ExecError::DatetimeOutOfRange(
        "interval out of range".into(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(months: i32, days: i32, micros: i64) -> IntervalMonthDayNano {
        IntervalMonthDayNano::new(months, days, micros * NANOS_PER_MICRO)
    }

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn fractions_of_months_and_days_cascade_down_into_days_and_time() {
        let multiply = |span, factor| scaled(span, factor, Scale::Multiply).unwrap();
        let divide = |span, factor| scaled(span, factor, Scale::Divide).unwrap();
        assert_eq!(
            multiply(interval(0, 0, HOUR), 3.0),
            interval(0, 0, 3 * HOUR)
        );
        assert_eq!(divide(interval(0, 1, 0), 2.0), interval(0, 0, 12 * HOUR));
        // A month and a half: one month, 15 days.
        assert_eq!(multiply(interval(1, 0, 0), 1.5), interval(1, 15, 0));
        // 1 month 1 day / 3: 10 days and 8 hours.
        assert_eq!(divide(interval(1, 1, 0), 3.0), interval(0, 10, 8 * HOUR));
        assert_eq!(
            multiply(interval(2, 3, HOUR), -1.0),
            interval(-2, -3, -HOUR)
        );
    }

    #[test]
    fn justifying_carries_whole_days_and_months_up_and_makes_signs_agree() {
        let parts = |months, days, micros| Parts {
            months,
            days,
            micros,
        };
        assert_eq!(justify_hours(parts(0, 0, 27 * HOUR)), parts(0, 1, 3 * HOUR));
        assert_eq!(justify_hours(parts(0, 1, -HOUR)), parts(0, 0, 23 * HOUR));
        assert_eq!(justify_days(parts(0, 35, 0)), parts(1, 5, 0));
        assert_eq!(justify_days(parts(1, -5, 0)), parts(0, 25, 0));
        assert_eq!(
            justify_interval(parts(1, 0, -HOUR)),
            parts(0, 29, 23 * HOUR)
        );
        assert_eq!(
            justify_interval(parts(-1, 0, HOUR)),
            parts(0, -29, -23 * HOUR)
        );
    }

    #[test]
    fn division_by_zero_and_overflow_are_errors() {
        assert!(scaled(interval(0, 1, 0), 0.0, Scale::Divide).is_err());
        assert!(scaled(interval(i32::MAX, 0, 0), 2.0, Scale::Multiply).is_err());
        assert!(scaled(interval(0, 0, HOUR), f64::NAN, Scale::Multiply).is_err());
    }
}
