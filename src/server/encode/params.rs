//! Bound parameters: PostgreSQL wire values decoded into the scalars a plan expects.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::error::{PgWireError, PgWireResult};
use rust_decimal::Decimal;

use crate::server::sqlstate;

/// Decodes the portal's bound parameters. `declared` are the types the statement reported
/// (client-given or inferred); `planned` the Arrow types planning expects, where known.
pub fn decode_params<S: Clone>(
    portal: &Portal<S>,
    declared: &[Type],
    planned: &[Option<DataType>],
) -> PgWireResult<Vec<ScalarValue>> {
    // PostgreSQL checks the count at Bind; pgwire accepts any, so it is checked here.
    if portal.parameter_len() != declared.len() {
        return Err(PgWireError::UserError(Box::new(sqlstate::error(
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "bind message supplies {} parameters, but prepared statement \"{}\" requires {}",
                portal.parameter_len(),
                portal.statement.id,
                declared.len()
            ),
        ))));
    }
    (0..portal.parameter_len())
        .map(|i| {
            let pg = declared.get(i).cloned().unwrap_or(Type::TEXT);
            let value = decode_param(portal, i, &pg)?;
            match planned.get(i).cloned().flatten() {
                Some(target) if value.data_type() != target => {
                    value.cast_to(&target).map_err(|e| {
                        PgWireError::UserError(Box::new(sqlstate::error(
                            sqlstate::INVALID_TEXT_REPRESENTATION,
                            format!("parameter ${}: {}", i + 1, e.strip_backtrace()),
                        )))
                    })
                }
                _ => Ok(value),
            }
        })
        .collect()
}

fn decode_param<S: Clone>(portal: &Portal<S>, i: usize, pg: &Type) -> PgWireResult<ScalarValue> {
    Ok(match *pg {
        Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, pg)?),
        Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, pg)?),
        Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, pg)?),
        Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, pg)?),
        Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, pg)?),
        Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, pg)?),
        Type::NUMERIC => {
            let value = portal.parameter::<Decimal>(i, pg)?;
            match value {
                Some(d) => ScalarValue::Decimal128(Some(d.mantissa()), 38, d.scale() as i8),
                None => ScalarValue::Decimal128(None, 38, 0),
            }
        }
        Type::BYTEA => ScalarValue::Binary(portal.parameter::<Vec<u8>>(i, pg)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            ScalarValue::Utf8(portal.parameter::<String>(i, pg)?)
        }
        Type::DATE => ScalarValue::Date32(
            portal
                .parameter::<NaiveDate>(i, pg)?
                .map(|d| (d - NaiveDate::default()).num_days() as i32),
        ),
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            portal
                .parameter::<NaiveDateTime>(i, pg)?
                .map(|t| t.and_utc().timestamp_micros()),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            portal
                .parameter::<DateTime<chrono::FixedOffset>>(i, pg)?
                .map(|t| t.timestamp_micros()),
            Some("UTC".into()),
        ),
        Type::UUID if portal.parameter_format.is_binary(i) => {
            let raw = portal.parameters.get(i).cloned().flatten();
            ScalarValue::Utf8(match raw {
                None => None,
                Some(bytes) => Some(
                    uuid::Uuid::from_slice(&bytes)
                        .map_err(|_| binary_format_error(i, "uuid"))?
                        .hyphenated()
                        .to_string(),
                ),
            })
        }
        Type::JSON if portal.parameter_format.is_binary(i) => {
            ScalarValue::Utf8(portal.parameter::<String>(i, &Type::TEXT)?)
        }
        // jsonb's send form is a version byte (1) and the text.
        Type::JSONB if portal.parameter_format.is_binary(i) => {
            let raw = portal.parameters.get(i).cloned().flatten();
            ScalarValue::Utf8(match raw.as_deref().map(|b| b.split_first()) {
                None => None,
                Some(Some((1, text))) => Some(
                    std::str::from_utf8(text)
                        .map_err(|_| binary_format_error(i, "jsonb"))?
                        .to_owned(),
                ),
                Some(_) => return Err(binary_format_error(i, "jsonb")),
            })
        }
        _ if portal.parameter_format.is_binary(i) => {
            return Err(PgWireError::UserError(Box::new(sqlstate::error(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "binary parameters of type {} are not supported; send them as text",
                    pg.name()
                ),
            ))));
        }
        _ => ScalarValue::Utf8(portal.parameter::<String>(i, &Type::TEXT)?),
    })
}

fn binary_format_error(i: usize, type_name: &str) -> PgWireError {
    PgWireError::UserError(Box::new(sqlstate::error(
        sqlstate::INVALID_BINARY_REPRESENTATION,
        format!(
            "incorrect binary data format in bind parameter {}: not a {type_name} value",
            i + 1
        ),
    )))
}
