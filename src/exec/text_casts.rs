//! Casts between text and other types as PostgreSQL's output and input functions make them.
//! Text read as a number is checked as PostgreSQL's input functions check it (surrounding
//! spaces allowed; `invalid input syntax for type integer: "abc"`, `value "99999999999" is out
//! of range for type integer`) before Arrow converts it. DataFusion writes a timestamp as `2024-01-01T00:00:00`; PostgreSQL (and KalamDB on the
//! wire) as `2024-01-01 00:00:00`, with `+00` for `timestamptz` in the UTC session zone. And
//! DataFusion cannot read a time of day without seconds (`2024-01-01 10:00`), which
//! PostgreSQL accepts. The rule runs after type coercion, so implicit casts (`'at ' || ts`,
//! `at = '2024-01-01 10:00'`) are handled the same way. Arrays cast to and from text use
//! PostgreSQL's array literal (`array_text`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, ExprSchemable, ScalarUDF, Signature, Volatility};

use crate::model::types::{BPCHAR_TAG, PG_TYPE_METADATA};

/// The rewrite; see the module documentation. Run by `plan_rewrite::PostgresExpressions`.
#[derive(Debug)]
pub struct PostgresTextCasts {
    timestamp: Arc<ScalarUDF>,
    timestamptz: Arc<ScalarUDF>,
    timestamp_input: Arc<ScalarUDF>,
    number_input: Arc<ScalarUDF>,
    array_input: Arc<ScalarUDF>,
    array_output: Arc<ScalarUDF>,
    plain_text: Arc<ScalarUDF>,
}

impl Default for PostgresTextCasts {
    fn default() -> Self {
        PostgresTextCasts {
            timestamp: Arc::new(timestamp_text("timestamp_out", None)),
            timestamptz: Arc::new(timestamp_text("timestamptz_out", Some("+00"))),
            timestamp_input: Arc::new(super::functions::vectorized(
                "timestamp_in_text",
                Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
                DataType::Utf8,
                |args| Ok(complete_seconds_array(&args[0])),
            )),
            number_input: Arc::new(super::functions::vectorized(
                "number_in_text",
                Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
                DataType::Utf8,
                |args| checked_number_text(&args[0], &args[1]),
            )),
            array_input: Arc::new(super::functions::vectorized(
                "array_in_text",
                Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
                DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new(
                    "item",
                    DataType::Utf8,
                    true,
                ))),
                |args| super::array_text::text_arrays(&args[0], &args[1]),
            )),
            plain_text: Arc::new(super::functions::vectorized(
                "text_of",
                Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
                DataType::Utf8,
                |args| Ok(args[0].clone()),
            )),
            array_output: Arc::new(super::functions::vectorized(
                "array_out_text",
                Signature::any(1, Volatility::Immutable),
                DataType::Utf8,
                |args| super::array_text::array_literals(&args[0]),
            )),
        }
    }
}

/// Timestamp text with seconds added where a time of day has only hours and minutes
/// (`2024-01-01 10:00` is `2024-01-01 10:00:00`, `2024-01-01 9:05+02` is
/// `2024-01-01 09:05:00+02`), so that Arrow's parser reads what PostgreSQL's does.
pub(super) fn complete_seconds(text: &str) -> Option<String> {
    let trimmed = text.trim();
    let split = trimmed.find([' ', 'T'])?;
    let (date, rest) = trimmed.split_at(split);
    let time = rest[1..].trim_start();
    let hour_digits = time.chars().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&hour_digits) || !time[hour_digits..].starts_with(':') {
        return None;
    }
    let after_hour = &time[hour_digits + 1..];
    let minute_digits = after_hour
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if minute_digits != 2 || after_hour[2..].starts_with(':') {
        return None;
    }
    Some(format!(
        "{date} {:0>2}:{}:00{}",
        &time[..hour_digits],
        &after_hour[..2],
        &after_hour[2..]
    ))
}

/// `complete_seconds` over a text array, leaving other values as they are.
pub(super) fn complete_seconds_array(array: &ArrayRef) -> ArrayRef {
    use datafusion::arrow::array::AsArray;
    let Some(strings) = array.as_string_opt::<i32>() else {
        return array.clone();
    };
    if !strings
        .iter()
        .flatten()
        .any(|s| complete_seconds(s).is_some())
    {
        return array.clone();
    }
    let completed: datafusion::arrow::array::StringArray = strings
        .iter()
        .map(|s| s.map(|s| complete_seconds(s).unwrap_or_else(|| s.to_owned())))
        .collect();
    Arc::new(completed)
}

fn timestamp_text(name: &str, zone_suffix: Option<&'static str>) -> ScalarUDF {
    let input = DataType::Timestamp(TimeUnit::Microsecond, zone_suffix.map(|_| Arc::from("UTC")));
    super::functions::vectorized(
        name,
        Signature::exact(vec![input], Volatility::Immutable),
        DataType::Utf8,
        move |args| {
            let micros = args[0]
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal(format!(
                        "timestamp text of {}",
                        args[0].data_type()
                    ))
                })?;
            let mut out = StringBuilder::with_capacity(micros.len(), micros.len() * 26);
            for value in micros.iter() {
                match value.and_then(chrono::DateTime::from_timestamp_micros) {
                    Some(at) => out.append_value(postgres_timestamp(at.naive_utc(), zone_suffix)),
                    None => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        },
    )
}

/// `YYYY-MM-DD HH:MM:SS`, then the fraction without trailing zeros, then the zone.
pub(super) fn postgres_timestamp(at: chrono::NaiveDateTime, zone_suffix: Option<&str>) -> String {
    use chrono::Timelike;
    let mut text = at.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = at.nanosecond() / 1_000;
    if micros > 0 {
        let fraction = format!("{micros:06}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    if let Some(zone) = zone_suffix {
        text.push_str(zone);
    }
    text
}

/// PostgreSQL's name for a numeric type text may be read as.
fn number_type(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric",
        _ => return None,
    })
}

/// The text trimmed of surrounding whitespace when it is a valid input for the type named by
/// `type_names` (per row), else PostgreSQL's error.
fn checked_number_text(texts: &ArrayRef, type_names: &ArrayRef) -> Result<ArrayRef> {
    use datafusion::arrow::array::AsArray;
    let texts = texts.as_string::<i32>();
    let type_names = type_names.as_string::<i32>();
    let mut out = StringBuilder::with_capacity(texts.len(), texts.value_data().len());
    for (text, type_name) in texts.iter().zip(type_names.iter()) {
        match (text, type_name) {
            (Some(text), Some(type_name)) => out.append_value(checked_number(text, type_name)?),
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// `text` trimmed of surrounding whitespace when it is a valid input for the numeric type
/// PostgreSQL names `type_name`, else PostgreSQL's error (22P02, or 22003 out of range).
pub(super) fn checked_number<'t>(text: &'t str, type_name: &str) -> Result<&'t str> {
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let invalid = || {
        datafusion::error::DataFusionError::External(Box::new(super::ExecError::InvalidText(
            format!("invalid input syntax for type {type_name}: \"{text}\""),
        )))
    };
    let integer_range = match type_name {
        "smallint" => Some((i64::from(i16::MIN), i64::from(i16::MAX))),
        "integer" => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
        "bigint" => Some((i64::MIN, i64::MAX)),
        _ => None,
    };
    match integer_range {
        Some((min, max)) => {
            let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            if !trimmed
                .parse::<i64>()
                .is_ok_and(|v| (min..=max).contains(&v))
            {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    super::ExecError::NumericOutOfRange(format!(
                        "value \"{text}\" is out of range for type {type_name}"
                    )),
                )));
            }
        }
        // Rust reads the forms PostgreSQL's float and numeric input accept (`1e5`, `.5`,
        // `NaN`, `Infinity`, `-inf`).
        None if trimmed.parse::<f64>().is_err() => return Err(invalid()),
        None => {}
    }
    Ok(trimmed)
}

impl PostgresTextCasts {
    pub(super) fn rewrite(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        use datafusion::common::tree_node::TreeNode;
        expr.transform_up(|expr| {
            let Expr::Cast(cast) = &expr else {
                return Ok(Transformed::no(expr));
            };
            let target = cast.field.data_type();
            let source = cast.expr.get_type(schema).ok();
            let call = |function: &Arc<ScalarUDF>, args: Vec<Expr>| {
                Expr::ScalarFunction(ScalarFunction::new_udf(function.clone(), args))
            };
            let inner = cast.expr.as_ref().clone();
            if source == Some(DataType::Utf8) {
                // Text read as a value: checked (numbers), read as an array literal (DataFusion
                // makes a one-element list of the whole text), or completed (timestamps)
                // before Arrow's cast.
                let read = if let Some(type_name) = number_type(target) {
                    let type_name = Expr::Literal(
                        datafusion::scalar::ScalarValue::Utf8(Some(type_name.into())),
                        None,
                    );
                    Some(call(&self.number_input, vec![inner.clone(), type_name]))
                } else if let DataType::List(element) = target {
                    // Elements of a numeric type are checked as a number's text is.
                    let type_name = Expr::Literal(
                        datafusion::scalar::ScalarValue::Utf8(Some(
                            number_type(element.data_type()).unwrap_or_default().into(),
                        )),
                        None,
                    );
                    Some(call(&self.array_input, vec![inner.clone(), type_name]))
                } else if matches!(target, DataType::Timestamp(..)) {
                    Some(call(&self.timestamp_input, vec![inner.clone()]))
                } else {
                    None
                };
                if let Some(read) = read {
                    return Ok(Transformed::yes(Expr::Cast(
                        datafusion::logical_expr::Cast::new(Box::new(read), target.clone()),
                    )));
                }
            }
            if !matches!(
                target,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                return Ok(Transformed::no(expr));
            }
            // Text of a type Arrow holds as text (`jsonb`, `json`, `varchar`, `uuid`) is plain
            // `text`: a cast alone would keep the source's type tag, so that the column was
            // described as `jsonb` and sent in binary as text.
            if source == Some(DataType::Utf8)
                && cast.expr.to_field(schema).is_ok_and(|(_, field)| {
                    field
                        .metadata()
                        .get(PG_TYPE_METADATA)
                        .is_some_and(|tag| tag != BPCHAR_TAG)
                })
            {
                let plain = call(&self.plain_text, vec![inner]);
                return Ok(Transformed::yes(match target {
                    DataType::Utf8 => plain,
                    other => plain.cast_to(other, schema)?,
                }));
            }
            // A value written as text, as PostgreSQL's output function for its type writes it.
            let text = match source {
                Some(DataType::Timestamp(_, zone)) => {
                    let (function, zone) = match zone {
                        None => (&self.timestamp, None),
                        Some(_) => (&self.timestamptz, Some(Arc::from("UTC"))),
                    };
                    let micros = Expr::Cast(datafusion::logical_expr::Cast::new(
                        cast.expr.clone(),
                        DataType::Timestamp(TimeUnit::Microsecond, zone),
                    ));
                    call(function, vec![micros])
                }
                Some(DataType::List(_) | DataType::LargeList(_)) => {
                    call(&self.array_output, vec![inner])
                }
                _ => return Ok(Transformed::no(expr)),
            };
            Ok(Transformed::yes(match target {
                DataType::Utf8 => text,
                other => text.cast_to(other, schema)?,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::complete_seconds;

    #[test]
    fn a_time_of_day_without_seconds_gets_them() {
        assert_eq!(
            complete_seconds("2024-01-01 10:00").as_deref(),
            Some("2024-01-01 10:00:00")
        );
        assert_eq!(
            complete_seconds("2024-01-01T9:05+02").as_deref(),
            Some("2024-01-01 09:05:00+02")
        );
        assert_eq!(
            complete_seconds("2024-01-01 10:00 UTC").as_deref(),
            Some("2024-01-01 10:00:00 UTC")
        );
        assert_eq!(complete_seconds("2024-01-01 10:00:30"), None);
        assert_eq!(complete_seconds("2024-01-01"), None);
    }
}
