//! `age(a, b)` and `age(a)`: the interval from `b` (or today's midnight) back to `a` in years,
//! months and days as a calendar counts them, then time (`age('2024-01-01', '2023-06-15')` is
//! `6 mons 16 days`). Each field is subtracted on its own and a negative one borrows from the
//! next larger, a month borrowing the days of the month it starts from, as PostgreSQL's
//! `timestamp_age` does.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit, TimestampMicrosecondType,
};
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};
use datafusion::prelude::SessionContext;

use super::functions::vectorized;

const TIMESTAMP: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

/// Registers `age`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(vectorized(
        "age",
        Signature::one_of(
            // Dates and timestamps of any unit or zone (sessions run in UTC), read as
            // microsecond timestamps below.
            vec![TypeSignature::Any(2), TypeSignature::Any(1)],
            // `age(a)` reads the current date.
            Volatility::Stable,
        ),
        DataType::Interval(IntervalUnit::MonthDayNano),
        |args: &[ArrayRef]| {
            let args = args
                .iter()
                .map(|arg| cast(arg, &TIMESTAMP))
                .collect::<Result<Vec<_>, _>>()?;
            let later = args[0].as_primitive::<TimestampMicrosecondType>();
            let today = chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0);
            let ages: IntervalMonthDayNanoArray = match args.get(1) {
                Some(earlier) => {
                    let earlier = earlier.as_primitive::<TimestampMicrosecondType>();
                    (0..later.len())
                        .map(|row| {
                            let a = later
                                .value_as_datetime(row)
                                .filter(|_| later.is_valid(row))?;
                            let b = earlier
                                .value_as_datetime(row)
                                .filter(|_| earlier.is_valid(row))?;
                            Some(age(a, b))
                        })
                        .collect()
                }
                None => (0..later.len())
                    .map(|row| {
                        let a = later
                            .value_as_datetime(row)
                            .filter(|_| later.is_valid(row))?;
                        Some(age(today?, a))
                    })
                    .collect(),
            };
            Ok(Arc::new(ages) as ArrayRef)
        },
    ));
}

/// `later - earlier` field by field, as PostgreSQL's `timestamp_age` computes it.
fn age(later: NaiveDateTime, earlier: NaiveDateTime) -> IntervalMonthDayNano {
    let fields = |t: NaiveDateTime| {
        [
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
            i64::from(t.minute()),
            i64::from(t.second()),
            i64::from(t.nanosecond() / 1_000),
        ]
    };
    let (a, b) = (fields(later), fields(earlier));
    // Computed for the later minus the earlier, and negated back when it is the other way.
    let backwards = later < earlier;
    let sign = if backwards { -1 } else { 1 };
    let [
        mut years,
        mut months,
        mut days,
        mut hours,
        mut minutes,
        mut seconds,
        mut micros,
    ] = std::array::from_fn(|i| (a[i] - b[i]) * sign);
    borrow(&mut micros, &mut seconds, 1_000_000);
    borrow(&mut seconds, &mut minutes, 60);
    borrow(&mut minutes, &mut hours, 60);
    borrow(&mut hours, &mut days, 24);
    // A month borrowed is as long as the month the span starts in.
    let start = if backwards { later } else { earlier };
    borrow(
        &mut days,
        &mut months,
        days_in_month(start.year(), start.month()),
    );
    borrow(&mut months, &mut years, 12);
    let time = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros;
    IntervalMonthDayNano::new(
        ((years * 12 + months) * sign) as i32,
        (days * sign) as i32,
        time * sign * 1_000,
    )
}

/// Brings a negative `low` up into range by borrowing whole units of `base` from `high`.
fn borrow(low: &mut i64, high: &mut i64, base: i64) {
    while *low < 0 {
        *low += base;
        *high -= 1;
    }
}

fn days_in_month(year: i32, month: u32) -> i64 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    match (first, next) {
        (Some(first), Some(next)) => (next - first).num_days(),
        _ => 30,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn text(interval: IntervalMonthDayNano) -> String {
        crate::model::interval_text::interval_text(
            interval.months,
            interval.days,
            interval.nanoseconds / 1_000,
        )
    }

    #[test]
    fn ages_count_calendar_months_and_days_as_postgresql_does() {
        for (later, earlier, expected) in [
            (
                "2024-01-01 00:00:00",
                "2023-06-15 00:00:00",
                "6 mons 16 days",
            ),
            (
                "2023-06-15 00:00:00",
                "2024-01-01 00:00:00",
                "-6 mons -16 days",
            ),
            ("2024-03-01 00:00:00", "2024-01-31 00:00:00", "1 mon 1 day"),
            (
                "2024-01-31 00:00:00",
                "2024-03-01 00:00:00",
                "-1 mons -1 days",
            ),
            (
                "2024-03-01 00:00:00",
                "2024-02-28 12:00:00",
                "1 day 12:00:00",
            ),
            (
                "2024-03-31 10:00:00",
                "2000-02-29 11:30:00",
                "24 years 1 mon 1 day 22:30:00",
            ),
            ("2024-01-01 00:00:00", "2024-01-01 00:00:00", "00:00:00"),
        ] {
            assert_eq!(
                text(age(at(later), at(earlier))),
                expected,
                "{later} - {earlier}"
            );
        }
    }
}
