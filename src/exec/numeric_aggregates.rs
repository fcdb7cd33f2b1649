//! `sum` and `avg` typed as PostgreSQL types them. `sum` of a `bigint` is a `numeric`, so it
//! cannot overflow (DataFusion's wraps around); of smaller integers a `bigint`. `avg` over
//! integers and `numeric` is an exact `numeric` (`avg(1, 2)` is `1.5000000000000000`), over
//! floats a `double precision`; DataFusion averages integers as floats, and decimals at the
//! input's scale plus 4, truncated.
//!
//! Both take DataFusion's aggregate and change only its types. For `avg`, integers are averaged as
//! decimals, and the result has the scale PostgreSQL's division gives a quotient in the first
//! digit group, 16 digits or the input's scale if larger. A column holds one scale for all its
//! groups, where PostgreSQL picks one per value (see `numeric_division`). DataFusion's decimal
//! average, which truncates, computes one digit more, and the result is rounded half away from
//! zero as PostgreSQL rounds. Everything else (floats, intervals, DISTINCT, windows, grouping)
//! is DataFusion's.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, PrimitiveArray};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DECIMAL128_MAX_PRECISION, DECIMAL256_MAX_PRECISION, DataType,
    Decimal128Type, Decimal256Type, Field, FieldRef, Int64Type, IntervalUnit, i256,
};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF,
    Signature, Volatility,
};

/// Significant digits PostgreSQL keeps in a quotient at least (`NUMERIC_MIN_SIG_DIGITS`).
const MIN_SIGNIFICANT_DIGITS: i8 = 16;

/// Decimal digits a sum may grow by over its inputs' precision before DataFusion's sum type
/// (the input's precision plus 10) runs out.
const SUM_GROWTH: u8 = 10;

/// What `sum` of a `bigint` adds up: a decimal that holds any `bigint`.
const BIGINT_SUM_INPUT: DataType = DataType::Decimal128(20, 0);

pub fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udaf(AggregateUDF::new_from_impl(NumericAverage {
        inner: avg_udaf(),
        signature: Signature::user_defined(Volatility::Immutable),
    }));
    ctx.register_udaf(AggregateUDF::new_from_impl(ExactSum {
        inner: sum_udaf(),
        signature: Signature::user_defined(Volatility::Immutable),
    }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ExactSum {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

impl AggregateUDFImpl for ExactSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Integers are summed as they are, each batch widened on its way in (see `widened`): a
    /// `bigint` to the decimal PostgreSQL's `numeric` sum needs, smaller ones to `bigint`.
    /// Planning a `bigint` as a cast to decimal instead cost a GROUP BY's `sum` about 10 ns a
    /// row in the cast kernel (overflow and precision checks that cannot fail here), more than
    /// the summing itself. Coercion may run twice on a plan, so no type here may become
    /// another that this maps further.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return plan_err!("sum takes one argument");
        };
        Ok(vec![match arg {
            DataType::UInt32 | DataType::UInt64 => BIGINT_SUM_INPUT,
            DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Null => {
                DataType::Float64
            }
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_)
            | DataType::Interval(_) => arg.clone(),
            other => return plan_err!("function sum({other}) does not exist"),
        }])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match &arg_types[0] {
            DataType::Int64 => self.inner.return_type(&[BIGINT_SUM_INPUT]),
            small if small.is_integer() => Ok(DataType::Int64),
            other => self.inner.return_type(std::slice::from_ref(other)),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        widened(
            &args,
            |args| self.inner.accumulator(args),
            |inner, widening| {
                Box::new(Adapted {
                    inner,
                    adaptation: Adaptation::Widen(widening),
                })
            },
        )
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        widened(
            &args,
            |args| self.inner.create_sliding_accumulator(args),
            |inner, widening| {
                Box::new(Adapted {
                    inner,
                    adaptation: Adaptation::Widen(widening),
                })
            },
        )
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        widened(
            &args,
            |args| self.inner.create_groups_accumulator(args),
            |inner, widening| {
                Box::new(Adapted {
                    inner,
                    adaptation: Adaptation::Widen(widening),
                })
            },
        )
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

/// An accumulator of DataFusion's `sum` made for the type an integer argument is widened to
/// (see `Widening`) and fed its batches widened; the argument's own accumulator otherwise.
fn widened<A>(
    args: &AccumulatorArgs,
    make: impl FnOnce(AccumulatorArgs) -> Result<A>,
    wrap: impl FnOnce(A, Widening) -> A,
) -> Result<A> {
    let argument = args.expr_fields[0].data_type();
    let widening = match argument {
        DataType::Int64 => Widening::BigintToDecimal,
        small if small.is_integer() => Widening::ToBigint,
        _ => return make(args.clone()),
    };
    let fields = [Arc::new(Field::new(
        args.expr_fields[0].name(),
        widening.target(),
        true,
    ))];
    let inner = make(AccumulatorArgs {
        expr_fields: &fields,
        ..args.clone()
    })?;
    Ok(wrap(inner, widening))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericAverage {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

impl AggregateUDFImpl for NumericAverage {
    fn name(&self) -> &str {
        "avg"
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Integers become decimals wide enough that the sum scaled to the result's scale fits.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return plan_err!("avg takes one argument");
        };
        let decimal = |precision: u8, scale: i8| {
            let digits = (i16::from(precision) - i16::from(scale)).max(0)
                + i16::from(SUM_GROWTH)
                + i16::from(result_scale(scale))
                + 1;
            if digits <= i16::from(DECIMAL128_MAX_PRECISION) {
                DataType::Decimal128(precision, scale)
            } else {
                DataType::Decimal256(precision.max(1), scale)
            }
        };
        Ok(vec![match arg {
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => decimal(5, 0),
            DataType::Int32 | DataType::UInt16 => decimal(10, 0),
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => decimal(20, 0),
            DataType::Decimal128(p, s) => decimal(*p, *s),
            DataType::Decimal256(p, s) => DataType::Decimal256(*p, *s),
            DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Null => {
                DataType::Float64
            }
            DataType::Duration(_) | DataType::Interval(IntervalUnit::MonthDayNano) => arg.clone(),
            other => return plan_err!("function avg({other}) does not exist"),
        }])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match &arg_types[0] {
            DataType::Decimal128(_, s) => {
                DataType::Decimal128(DECIMAL128_MAX_PRECISION, result_scale(*s))
            }
            DataType::Decimal256(_, s) => {
                DataType::Decimal256(DECIMAL256_MAX_PRECISION, result_scale(*s))
            }
            interval @ DataType::Interval(_) => interval.clone(),
            other => self.inner.return_type(std::slice::from_ref(other))?,
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if is_interval(args.return_field.data_type()) {
            return Ok(Box::<super::interval_average::IntervalAverage>::default());
        }
        let Some(rounding) = Rounding::of(args.return_field.data_type()) else {
            return self.inner.accumulator(args);
        };
        let inner = self.inner.accumulator(rounding.inner_args(&args))?;
        Ok(Box::new(Adapted {
            inner,
            adaptation: Adaptation::Round(rounding),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if is_interval(args.return_field.data_type()) {
            return Ok(super::interval_average::state_fields(args.name));
        }
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !is_interval(args.return_field.data_type()) && self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let Some(rounding) = Rounding::of(args.return_field.data_type()) else {
            return self.inner.create_groups_accumulator(args);
        };
        let inner = self
            .inner
            .create_groups_accumulator(rounding.inner_args(&args))?;
        Ok(Box::new(Adapted {
            inner,
            adaptation: Adaptation::Round(rounding),
        }))
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

/// `avg(interval)` is KalamDB's own (DataFusion averages no intervals).
fn is_interval(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Interval(IntervalUnit::MonthDayNano))
}

/// The scale of an average of values at `scale`.
fn result_scale(scale: i8) -> i8 {
    scale.max(MIN_SIGNIFICANT_DIGITS)
}

/// How a decimal average computed one digit further is brought to the result's scale.
#[derive(Debug, Clone)]
struct Rounding {
    result: DataType,
    /// The type DataFusion's average computes: one more digit of scale where there is room.
    computed: DataType,
}

impl Rounding {
    fn of(result: &DataType) -> Option<Rounding> {
        let computed = match *result {
            DataType::Decimal128(p, s) if s < p as i8 => DataType::Decimal128(p, s + 1),
            DataType::Decimal256(p, s) if s < p as i8 => DataType::Decimal256(p, s + 1),
            _ => return None,
        };
        Some(Rounding {
            result: result.clone(),
            computed,
        })
    }

    fn inner_args<'a>(&self, args: &AccumulatorArgs<'a>) -> AccumulatorArgs<'a> {
        AccumulatorArgs {
            return_field: Arc::new(Field::new(
                args.return_field.name(),
                self.computed.clone(),
                true,
            )),
            ..*args
        }
    }

    /// Drops the extra digit, rounding half away from zero.
    fn apply(&self, computed: ArrayRef) -> Result<ArrayRef> {
        fn rounded<T: ArrowPrimitiveType>(
            array: &ArrayRef,
            ten: T::Native,
            five: T::Native,
            result: &DataType,
            round: impl Fn(T::Native, T::Native, T::Native) -> T::Native,
        ) -> Result<ArrayRef> {
            let values: PrimitiveArray<T> =
                array.as_primitive::<T>().unary(|v| round(v, ten, five));
            Ok(Arc::new(values.with_data_type(result.clone())))
        }
        match self.result {
            DataType::Decimal128(..) => {
                rounded::<Decimal128Type>(&computed, 10, 5, &self.result, |v, ten, five| {
                    if v < 0 {
                        (v - five) / ten
                    } else {
                        (v + five) / ten
                    }
                })
            }
            _ => rounded::<Decimal256Type>(
                &computed,
                i256::from_i128(10),
                i256::from_i128(5),
                &self.result,
                |v, ten, five| {
                    let away = if v.is_negative() {
                        v.wrapping_sub(five)
                    } else {
                        v.wrapping_add(five)
                    };
                    away.wrapping_div(ten)
                },
            ),
        }
    }
}

/// How `sum` widens an integer argument's batches before DataFusion's accumulator sees them.
#[derive(Debug, Clone, Copy)]
enum Widening {
    /// Smaller integers to `bigint`.
    ToBigint,
    /// `bigint` to the decimal its `numeric` sum is computed in.
    BigintToDecimal,
}

impl Widening {
    fn target(self) -> DataType {
        match self {
            Widening::ToBigint => DataType::Int64,
            Widening::BigintToDecimal => BIGINT_SUM_INPUT,
        }
    }

    fn apply(self, values: &ArrayRef) -> Result<ArrayRef> {
        Ok(match self {
            Widening::ToBigint => datafusion::arrow::compute::cast(values, &DataType::Int64)?,
            // Every bigint fits the decimal, so this is a plain conversion with the nulls kept,
            // not the cast kernel's checked one.
            Widening::BigintToDecimal => {
                let Some(bigints) = values.as_primitive_opt::<Int64Type>() else {
                    return internal_err!("sum(bigint) was given {}", values.data_type());
                };
                Arc::new(
                    bigints
                        .unary::<_, Decimal128Type>(i128::from)
                        .with_data_type(BIGINT_SUM_INPUT),
                )
            }
        })
    }
}

/// What an adapted accumulator changes of DataFusion's: its input widened, or its result
/// rounded to a scale.
#[derive(Debug, Clone)]
enum Adaptation {
    Widen(Widening),
    Round(Rounding),
}

impl Adaptation {
    fn input(&self, values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
        match self {
            Adaptation::Widen(widening) => values.iter().map(|v| widening.apply(v)).collect(),
            Adaptation::Round(_) => Ok(values.to_vec()),
        }
    }

    fn output(&self, computed: ArrayRef) -> Result<ArrayRef> {
        match self {
            Adaptation::Widen(_) => Ok(computed),
            Adaptation::Round(rounding) => rounding.apply(computed),
        }
    }
}

/// DataFusion's accumulator `inner`, adapted.
#[derive(Debug)]
struct Adapted<A> {
    inner: A,
    adaptation: Adaptation,
}

impl Accumulator for Adapted<Box<dyn Accumulator>> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(&self.adaptation.input(values)?)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let computed = self.inner.evaluate()?.to_array()?;
        ScalarValue::try_from_array(&self.adaptation.output(computed)?, 0)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.retract_batch(&self.adaptation.input(values)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }
}

impl GroupsAccumulator for Adapted<Box<dyn GroupsAccumulator>> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner.update_batch(
            &self.adaptation.input(values)?,
            group_indices,
            opt_filter,
            total_num_groups,
        )
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let computed = self.inner.evaluate(emit_to)?;
        self.adaptation.output(computed)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.inner
            .convert_to_state(&self.adaptation.input(values)?, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}
