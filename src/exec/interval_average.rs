//! `avg` of `interval`: the months, days and time of every value summed apart, then divided by
//! the count as PostgreSQL divides an interval (fractions of months and days cascade down into
//! days and time, see `interval_arithmetic`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType,
};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::Accumulator;

/// The state an average carries between partitions: sums of months, days and nanoseconds,
/// and the count.
pub(super) fn state_fields(name: &str) -> Vec<FieldRef> {
    ["months", "days", "nanoseconds", "count"]
        .into_iter()
        .map(|part| Arc::new(Field::new(format!("{name}[{part}]"), DataType::Int64, true)))
        .collect()
}

#[derive(Debug, Default)]
pub(super) struct IntervalAverage {
    months: i64,
    days: i64,
    nanoseconds: i128,
    count: i64,
}

impl IntervalAverage {
    fn add(&mut self, months: i64, days: i64, nanoseconds: i128, count: i64) {
        self.months = self.months.saturating_add(months);
        self.days = self.days.saturating_add(days);
        self.nanoseconds = self.nanoseconds.saturating_add(nanoseconds);
        self.count = self.count.saturating_add(count);
    }
}

impl Accumulator for IntervalAverage {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let spans = values[0].as_primitive::<IntervalMonthDayNanoType>();
        for span in spans.iter().flatten() {
            self.add(
                i64::from(span.months),
                i64::from(span.days),
                i128::from(span.nanoseconds),
                1,
            );
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let column = |i: usize| states[i].as_primitive::<Int64Type>();
        let (months, days, nanoseconds, counts) = (column(0), column(1), column(2), column(3));
        for row in 0..counts.len() {
            if counts.is_valid(row) {
                self.add(
                    months.value(row),
                    days.value(row),
                    i128::from(nanoseconds.value(row)),
                    counts.value(row),
                );
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let nanoseconds = i64::try_from(self.nanoseconds)
            .map_err(|_| super::interval_arithmetic::out_of_range())?;
        Ok(vec![
            ScalarValue::Int64(Some(self.months)),
            ScalarValue::Int64(Some(self.days)),
            ScalarValue::Int64(Some(nanoseconds)),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.count == 0 {
            return Ok(ScalarValue::IntervalMonthDayNano(None));
        }
        let out_of_range = super::interval_arithmetic::out_of_range;
        let sum = IntervalMonthDayNano::new(
            i32::try_from(self.months).map_err(|_| out_of_range())?,
            i32::try_from(self.days).map_err(|_| out_of_range())?,
            i64::try_from(self.nanoseconds).map_err(|_| out_of_range())?,
        );
        let average = super::interval_arithmetic::divided(sum, self.count as f64)?;
        Ok(ScalarValue::IntervalMonthDayNano(Some(average)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::IntervalMonthDayNanoArray;

    #[test]
    fn an_average_divides_the_sum_as_postgresql_divides_an_interval() {
        let day = IntervalMonthDayNano::new(0, 1, 0);
        let hours = IntervalMonthDayNano::new(0, 0, 3 * 3_600_000_000_000);
        let values: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
            Some(day),
            Some(hours),
            None,
        ]));
        let mut average = IntervalAverage::default();
        average.update_batch(&[values]).unwrap();
        // (1 day 03:00) / 2 is 13:30:00, the half day carried into the time.
        assert_eq!(
            average.evaluate().unwrap(),
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
                0,
                0,
                13 * 3_600_000_000_000 + 30 * 60_000_000_000
            )))
        );
    }
}
