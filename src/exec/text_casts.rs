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
use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, ExprSchemable, ScalarUDF, Signature, Volatility};

use crate::model::types::{BPCHAR_TAG, PG_TYPE_METADATA, REGPROC_TAG, REGPROCEDURE_TAG};

/// The rewrite; see the module documentation. Run by `plan_rewrite::PostgresExpressions`.
#[derive(Debug)]
pub struct PostgresTextCasts {
    timestamp: Arc<ScalarUDF>,
    timestamptz: Arc<ScalarUDF>,
    timestamp_input: Arc<ScalarUDF>,
    number_input: Arc<ScalarUDF>,
    array_input: Arc<ScalarUDF>,
    array_output: Arc<ScalarUDF>,
    vector_output: Arc<ScalarUDF>,
    regproc_output: Arc<ScalarUDF>,
    plain_oid: Arc<ScalarUDF>,
    regprocedure_output: Arc<ScalarUDF>,
    plain_text: Arc<ScalarUDF>,
    interval_output: Arc<ScalarUDF>,
    bytea_input: Arc<ScalarUDF>,
}

impl Default for PostgresTextCasts {
    fn default() -> Self {
        PostgresTextCasts {
            timestamp: Arc::new(timestamp_text("timestamp_out", None)),
            timestamptz: Arc::new(timestamp_text("timestamptz_out", Some("+00"))),
            timestamp_input: Arc::new(super::functions::vectorized(
                "datetime_in_text",
                Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Stable),
                DataType::Utf8,
                |args| {
                    use datafusion::arrow::array::AsArray;
                    let target = match args[1].as_string::<i32>().iter().flatten().next() {
                        Some("date") => DataType::Date32,
                        Some("timestamptz") => DataType::Timestamp(
                            datafusion::arrow::datatypes::TimeUnit::Microsecond,
                            Some("UTC".into()),
                        ),
                        _ => DataType::Timestamp(
                            datafusion::arrow::datatypes::TimeUnit::Microsecond,
                            None,
                        ),
                    };
                    postgres_datetime_array(&args[0], &target)
                },
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
            bytea_input: Arc::new(super::functions::vectorized(
                "bytea_in_text",
                Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
                DataType::Binary,
                |args| bytea_values(&args[0]),
            )),
            interval_output: Arc::new(super::functions::vectorized(
                "interval_out_text",
                Signature::any(1, Volatility::Immutable),
                DataType::Utf8,
                |args| Ok(interval_texts(&args[0])),
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
            plain_oid: Arc::new(super::functions::vectorized(
                "oid_of",
                Signature::exact(vec![DataType::Int32], Volatility::Immutable),
                DataType::Int32,
                |args| Ok(args[0].clone()),
            )),
            regproc_output: Arc::new(super::functions::vectorized(
                "regproc_out_text",
                Signature::any(1, Volatility::Stable),
                DataType::Utf8,
                |args| super::function_names::texts(&args[0], false),
            )),
            regprocedure_output: Arc::new(super::functions::vectorized(
                "regprocedure_out_text",
                Signature::any(1, Volatility::Stable),
                DataType::Utf8,
                |args| super::function_names::texts(&args[0], true),
            )),
            vector_output: Arc::new(super::functions::vectorized(
                "vector_out_text",
                Signature::any(1, Volatility::Immutable),
                DataType::Utf8,
                |args| super::array_text::vector_literals(&args[0]),
            )),
        }
    }
}

/// Date and timestamp text in the forms PostgreSQL reads (see `model::datetime_input`),
/// written as the ISO text Arrow's cast to `target` reads; text in no such form is left for
/// that cast to refuse. A zone is kept for `timestamptz` only: a timestamp without time zone
/// ignores it, as PostgreSQL's does.
pub(super) fn postgres_datetime_array(array: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    use crate::model::datetime_input::{DateTimeInputError, parse_datetime};
    use datafusion::arrow::array::AsArray;
    let Some(strings) = array.as_string_opt::<i32>() else {
        return Ok(array.clone());
    };
    // Bulk loads write ISO text, which Arrow reads as it is: checked, not rewritten.
    if strings
        .iter()
        .flatten()
        .all(|text| valid_iso(text.as_bytes(), target))
    {
        return Ok(array.clone());
    }
    let now = chrono::Utc::now().naive_utc();
    let mut out = StringBuilder::with_capacity(strings.len(), strings.value_data().len() + 16);
    for text in strings.iter() {
        let Some(text) = text else {
            out.append_null();
            continue;
        };
        match parse_datetime(text, now) {
            Ok(input) => out.append_value(match target {
                DataType::Date32 | DataType::Date64 => input.date_text(),
                DataType::Timestamp(_, zone) => input.timestamp_text(zone.is_some()),
                _ => text.to_owned(),
            }),
            Err(DateTimeInputError::OutOfRange) => {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    super::ExecError::DatetimeOutOfRange(format!(
                        "date/time field value out of range: \"{text}\""
                    )),
                )));
            }
            Err(DateTimeInputError::Syntax) if arrow_reads(text, target) => out.append_value(text),
            Err(DateTimeInputError::Syntax) => {
                let type_name = match target {
                    DataType::Date32 | DataType::Date64 => "date",
                    DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
                    _ => "timestamp",
                };
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    super::ExecError::InvalidDatetimeFormat(format!(
                        "invalid input syntax for type {type_name}: \"{text}\""
                    )),
                )));
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Whether `text` is a valid date in ISO form (`1999-01-08`), or for a timestamp without time
/// zone a valid ISO date and time (`1999-01-08 04:05:06[.ffffff]`), which Arrow reads as
/// PostgreSQL does.
fn valid_iso(text: &[u8], target: &DataType) -> bool {
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'))
        })
    };
    let date_valid = text.get(4) == Some(&b'-')
        && text.get(7) == Some(&b'-')
        && matches!(
            (digits(0..4), digits(5..7), digits(8..10)),
            (Some(y), Some(m), Some(d))
                if chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some()
        );
    match target {
        DataType::Date32 => date_valid && text.len() == 10,
        DataType::Timestamp(_, None) => {
            let time_valid = matches!(text.get(10), Some(b' ' | b'T'))
                && text.get(13) == Some(&b':')
                && text.get(16) == Some(&b':')
                && matches!(
                    (digits(11..13), digits(14..16), digits(17..19)),
                    (Some(h), Some(m), Some(s)) if h < 24 && m < 60 && s < 60
                );
            let fraction_valid = match text.get(19..) {
                Some([]) => true,
                Some([b'.', rest @ ..]) => {
                    !rest.is_empty() && rest.len() <= 6 && rest.iter().all(u8::is_ascii_digit)
                }
                _ => false,
            };
            date_valid && time_valid && fraction_valid
        }
        _ => false,
    }
}

/// Text read as PostgreSQL's `bytea` input (`\x0102ff`, or the escape format), where Arrow
/// takes the text's own bytes.
fn bytea_values(texts: &ArrayRef) -> Result<ArrayRef> {
    use datafusion::arrow::array::AsArray;
    let values: datafusion::arrow::array::BinaryArray = texts
        .as_string::<i32>()
        .iter()
        .map(|text| text.map(super::dml::coercion::parse_bytea).transpose())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            datafusion::error::DataFusionError::External(Box::new(super::ExecError::InvalidText(e)))
        })?;
    Ok(Arc::new(values))
}

/// Intervals as PostgreSQL's `interval_out` writes them (`1 day`, `01:00:00`), where Arrow
/// writes `1 days`.
fn interval_texts(intervals: &ArrayRef) -> ArrayRef {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::IntervalMonthDayNanoType;
    let intervals = intervals.as_primitive::<IntervalMonthDayNanoType>();
    let texts: datafusion::arrow::array::StringArray = intervals
        .iter()
        .map(|interval| {
            interval.map(|i| {
                crate::model::interval_text::interval_text(i.months, i.days, i.nanoseconds / 1_000)
            })
        })
        .collect();
    Arc::new(texts)
}

/// Whether Arrow's cast reads `text` as `target`, for forms outside PostgreSQL's that it
/// accepted before KalamDB read PostgreSQL's.
fn arrow_reads(text: &str, target: &DataType) -> bool {
    let one: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec![text]));
    let options = datafusion::arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    datafusion::arrow::compute::cast_with_options(&one, target, &options).is_ok()
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
                } else if *target == DataType::Binary {
                    Some(call(&self.bytea_input, vec![inner.clone()]))
                } else if let Some(kind) = match target {
                    DataType::Date32 => Some("date"),
                    DataType::Timestamp(_, None) => Some("timestamp"),
                    DataType::Timestamp(_, Some(_)) => Some("timestamptz"),
                    _ => None,
                } {
                    let kind = Expr::Literal(
                        datafusion::scalar::ScalarValue::Utf8(Some(kind.into())),
                        None,
                    );
                    Some(call(&self.timestamp_input, vec![inner.clone(), kind]))
                } else {
                    None
                };
                if let Some(read) = read {
                    return Ok(Transformed::yes(Expr::Cast(
                        datafusion::logical_expr::Cast::new(Box::new(read), target.clone()),
                    )));
                }
            }
            // A `regproc`/`regprocedure` value cast to text is the function's name (or name and
            // argument types); cast to a number, it is the OID, no longer tagged.
            if let Ok((_, field)) = cast.expr.to_field(schema)
                && let Some(tag @ (REGPROC_TAG | REGPROCEDURE_TAG)) =
                    field.metadata().get(PG_TYPE_METADATA).map(String::as_str)
            {
                let value = if matches!(
                    target,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    let output = if tag == REGPROC_TAG {
                        &self.regproc_output
                    } else {
                        &self.regprocedure_output
                    };
                    call(output, vec![inner])
                } else {
                    call(&self.plain_oid, vec![inner])
                };
                return Ok(Transformed::yes(match target {
                    DataType::Utf8 | DataType::Int32 => value,
                    other => value.cast_to(other, schema)?,
                }));
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
                // An int2vector or oidvector prints as its numbers separated by spaces.
                Some(DataType::List(_) | DataType::LargeList(_))
                    if cast.expr.to_field(schema).is_ok_and(|(_, field)| {
                        field
                            .metadata()
                            .get(PG_TYPE_METADATA)
                            .is_some_and(|tag| tag == "oidvector" || tag == "int2vector")
                    }) =>
                {
                    call(&self.vector_output, vec![inner])
                }
                Some(DataType::List(_) | DataType::LargeList(_)) => {
                    call(&self.array_output, vec![inner])
                }
                Some(DataType::Interval(IntervalUnit::MonthDayNano)) => {
                    call(&self.interval_output, vec![inner])
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
    use super::*;

    fn timestamps(texts: &[&str]) -> Result<Vec<String>> {
        let array: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(texts.to_vec()));
        let target = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None);
        let out = postgres_datetime_array(&array, &target)?;
        use datafusion::arrow::array::AsArray;
        Ok(out
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap().to_owned())
            .collect())
    }

    #[test]
    fn iso_text_is_kept_and_other_forms_are_written_as_iso() {
        assert_eq!(
            timestamps(&["2024-01-01 10:00:00", "2024-01-01T10:00:00.5"]).unwrap(),
            ["2024-01-01 10:00:00", "2024-01-01T10:00:00.5"]
        );
        assert_eq!(
            timestamps(&["2024-01-01 10:00"]).unwrap(),
            ["2024-01-01 10:00:00.000000"]
        );
        assert_eq!(
            timestamps(&["January 8, 1999 5:00 pm", "2020-01-01 00:00:00.1234567"]).unwrap(),
            ["1999-01-08 17:00:00.000000", "2020-01-01 00:00:00.123457"]
        );
    }

    #[test]
    fn impossible_dates_and_unreadable_text_fail_as_in_postgresql() {
        assert!(
            timestamps(&["2024-02-30 10:00:00"])
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        assert!(
            timestamps(&["soon"])
                .unwrap_err()
                .to_string()
                .contains("invalid input syntax for type timestamp")
        );
        assert!(!valid_iso(b"2024-02-30", &DataType::Date32));
        assert!(valid_iso(b"2024-02-29", &DataType::Date32));
    }
}
