//! PostgreSQL's ordered-set aggregates that DataFusion lacks: `percentile_disc(f) WITHIN GROUP
//! (ORDER BY x)`, the first value at or past fraction `f` of the ordered group, and
//! `mode() WITHIN GROUP (ORDER BY x)`, its most frequent value (the first in the order among
//! equally frequent ones). NULLs are left out, an empty group gives NULL, and a fraction
//! outside 0..1 is 22003, as in PostgreSQL. (`percentile_cont` is DataFusion's.)

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{SortOptions, sort_to_indices};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::ExecError;

pub fn register(ctx: &SessionContext) {
    for (name, kind, arguments) in [
        ("percentile_disc", Kind::PercentileDisc, 2),
        ("mode", Kind::Mode, 1),
    ] {
        ctx.register_udaf(AggregateUDF::new_from_impl(OrderedSet {
            name,
            kind,
            signature: Signature::any(arguments, Volatility::Immutable),
        }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    PercentileDisc,
    Mode,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct OrderedSet {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl AggregateUDFImpl for OrderedSet {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn is_nullable(&self) -> bool {
        true
    }

    fn supports_within_group_clause(&self) -> bool {
        true
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let fraction = match self.kind {
            Kind::Mode => None,
            Kind::PercentileDisc => Some(fraction(&args)?),
        };
        // A NULL fraction gives NULL, as in PostgreSQL.
        if fraction == Some(None) {
            return Ok(Box::new(NullResult(
                args.expr_fields[0].data_type().clone(),
            )));
        }
        let fraction = fraction.flatten();
        let descending = args
            .order_bys
            .first()
            .is_some_and(|key| key.options.descending);
        Ok(Box::new(OrderedSetAccumulator {
            kind: self.kind,
            fraction,
            data_type: args.expr_fields[0].data_type().clone(),
            descending,
            values: Vec::new(),
            bytes: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}_values", args.name),
            DataType::List(Arc::new(Field::new(
                "item",
                args.input_fields[0].data_type().clone(),
                true,
            ))),
            true,
        ))])
    }
}

/// The fraction a `percentile_disc` was given, which must be a constant in 0..1 (or NULL).
fn fraction(args: &AccumulatorArgs) -> Result<Option<f64>> {
    // A constant evaluates without any row.
    let no_rows = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let given = match args.exprs.get(1).map(|e| e.evaluate(&no_rows)) {
        Some(Ok(ColumnarValue::Scalar(value))) => value,
        _ => {
            return Err(DataFusionError::External(Box::new(
                ExecError::InvalidParameterValue(
                    "the fraction of percentile_disc must be a constant".into(),
                ),
            )));
        }
    };
    if given.is_null() {
        return Ok(None);
    }
    let fraction = match given.cast_to(&DataType::Float64)? {
        ScalarValue::Float64(Some(f)) => f,
        _ => f64::NAN,
    };
    if !(0.0..=1.0).contains(&fraction) {
        return Err(DataFusionError::External(Box::new(
            ExecError::NumericOutOfRange(format!(
                "percentile value {given} is not between 0 and 1"
            )),
        )));
    }
    Ok(Some(fraction))
}

/// The accumulator of a `percentile_disc(NULL)`: NULL whatever the group holds.
#[derive(Debug)]
struct NullResult(DataType);

impl Accumulator for NullResult {
    fn update_batch(&mut self, _values: &[ArrayRef]) -> Result<()> {
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from(&self.0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &[],
            &self.0,
        ))])
    }

    fn merge_batch(&mut self, _states: &[ArrayRef]) -> Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct OrderedSetAccumulator {
    kind: Kind,
    fraction: Option<f64>,
    data_type: DataType,
    descending: bool,
    /// The group's non-NULL values so far.
    values: Vec<ScalarValue>,
    /// The memory `values` holds, kept as they come (DataFusion asks for it per batch).
    bytes: usize,
}

impl OrderedSetAccumulator {
    /// The values in the WITHIN GROUP order.
    fn ordered(&self) -> Result<ArrayRef> {
        let values = ScalarValue::iter_to_array(self.values.iter().cloned())?;
        let order = sort_to_indices(
            &values,
            Some(SortOptions {
                descending: self.descending,
                nulls_first: false,
            }),
            None,
        )?;
        Ok(datafusion::arrow::compute::take(&values, &order, None)?)
    }
}

impl Accumulator for OrderedSetAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let column = &values[0];
        for row in 0..column.len() {
            if column.is_valid(row) {
                let value = ScalarValue::try_from_array(column, row)?;
                self.bytes += value.size();
                self.values.push(value);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.values.is_empty() {
            return ScalarValue::try_from(&self.data_type);
        }
        let ordered = self.ordered()?;
        let at = match (self.kind, self.fraction) {
            (Kind::PercentileDisc, Some(fraction)) => {
                // The first row whose cumulative share reaches the fraction.
                let rows = ordered.len();
                let position = (fraction * rows as f64).ceil() as usize;
                position.clamp(1, rows) - 1
            }
            _ => most_frequent(&ordered)?,
        };
        ScalarValue::try_from_array(&ordered, at)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bytes
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &self.values,
            &self.data_type,
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for row in 0..lists.len() {
            if lists.is_valid(row) {
                self.update_batch(&[lists.value(row)])?;
            }
        }
        Ok(())
    }
}

/// The position of the first value of the longest run of equal values in `ordered`.
fn most_frequent(ordered: &ArrayRef) -> Result<usize> {
    let (mut best_at, mut best_run) = (0, 0);
    let mut run_at = 0;
    for at in 1..=ordered.len() {
        let run_ends = at == ordered.len()
            || ScalarValue::try_from_array(ordered, at)?
                != ScalarValue::try_from_array(ordered, run_at)?;
        if run_ends {
            if at - run_at > best_run {
                (best_at, best_run) = (run_at, at - run_at);
            }
            run_at = at;
        }
    }
    Ok(best_at)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int32Array;

    use super::*;

    #[test]
    fn the_most_frequent_value_is_the_first_of_its_longest_run() {
        let ordered: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 2, 3, 3, 4]));
        assert_eq!(most_frequent(&ordered).unwrap(), 1);
        let single: ArrayRef = Arc::new(Int32Array::from(vec![7]));
        assert_eq!(most_frequent(&single).unwrap(), 0);
    }
}
