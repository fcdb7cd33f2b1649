//! PostgreSQL's binary COPY format: the `PGCOPY` signature, then per row a field count and
//! each field as a length and the value in its type's binary send form, then `-1`.
//!
//! A row's fields are laid out as a binary DataRow's are, each value its type's send form (COPY
//! TO encodes them with the result encoder's cell encoder); COPY FROM decodes each field with
//! the column type's receive function (the same decoders binary Bind parameters use).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::array::ArrayRef;
use datafusion::scalar::ScalarValue;
use pgwire::api::Type;
use postgres_types::FromSql;
use rust_decimal::Decimal;

use super::{CopyDataError, FormatFault};
use crate::model::types::SqlType;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

pub fn write_header(out: &mut Vec<u8>) {
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    out.extend_from_slice(&0i32.to_be_bytes()); // no header extension
}

pub fn write_trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

/// Reads binary COPY data into typed columns.
pub struct BinaryReader {
    types: Vec<SqlType>,
    buffer: Vec<u8>,
    header_read: bool,
    ended: bool,
    /// Rows read so far, for messages.
    row: u64,
    columns: Vec<Vec<ScalarValue>>,
    lines: Vec<u64>,
}

fn bad(message: impl Into<String>, row: u64) -> CopyDataError {
    CopyDataError {
        fault: FormatFault::BadFormat,
        message: message.into(),
        line: row,
    }
}

fn be_i32(bytes: &[u8]) -> i32 {
    i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// A column's value from its binary form, as the scalar the executor types it from.
fn decode(sql_type: SqlType, raw: &[u8]) -> Result<ScalarValue, String> {
    fn from<'a, T: FromSql<'a>>(ty: &Type, raw: &'a [u8]) -> Result<T, String> {
        T::from_sql(ty, raw).map_err(|e| e.to_string())
    }
    Ok(match sql_type {
        SqlType::Boolean => ScalarValue::Boolean(Some(from(&Type::BOOL, raw)?)),
        SqlType::SmallInt => ScalarValue::Int16(Some(from(&Type::INT2, raw)?)),
        SqlType::Integer => ScalarValue::Int32(Some(from(&Type::INT4, raw)?)),
        SqlType::BigInt => ScalarValue::Int64(Some(from(&Type::INT8, raw)?)),
        SqlType::Real => ScalarValue::Float32(Some(from(&Type::FLOAT4, raw)?)),
        SqlType::Double => ScalarValue::Float64(Some(from(&Type::FLOAT8, raw)?)),
        SqlType::Numeric { .. } => {
            let d: Decimal = from(&Type::NUMERIC, raw)?;
            ScalarValue::Decimal128(Some(d.mantissa()), 38, d.scale() as i8)
        }
        SqlType::Text
        | SqlType::Varchar { .. }
        | SqlType::Name
        | SqlType::Char { .. }
        | SqlType::Json => ScalarValue::Utf8(Some(from::<String>(&Type::TEXT, raw)?)),
        // jsonb's send form is a version byte (1) and the text.
        SqlType::Jsonb => match raw.split_first() {
            Some((1, text)) => ScalarValue::Utf8(Some(from::<String>(&Type::TEXT, text)?)),
            _ => return Err("unsupported jsonb version number".into()),
        },
        SqlType::Uuid => {
            let bytes: [u8; 16] = raw
                .try_into()
                .map_err(|_| "invalid length for uuid".to_owned())?;
            // The column's input rule writes it in the canonical hyphenated form.
            ScalarValue::Utf8(Some(hex::encode(bytes)))
        }
        SqlType::Bytea => ScalarValue::Binary(Some(raw.to_vec())),
        SqlType::Date => {
            let date: NaiveDate = from(&Type::DATE, raw)?;
            ScalarValue::Date32(Some((date - NaiveDate::default()).num_days() as i32))
        }
        SqlType::Timestamp => {
            let at: NaiveDateTime = from(&Type::TIMESTAMP, raw)?;
            ScalarValue::TimestampMicrosecond(Some(at.and_utc().timestamp_micros()), None)
        }
        SqlType::TimestampTz => {
            let at: DateTime<Utc> = from(&Type::TIMESTAMPTZ, raw)?;
            ScalarValue::TimestampMicrosecond(Some(at.timestamp_micros()), Some("UTC".into()))
        }
    })
}

/// The scalar a NULL of the column's type decodes to.
fn null_of(sql_type: SqlType) -> Result<ScalarValue, String> {
    let data_type = match sql_type {
        SqlType::Numeric { .. } => datafusion::arrow::datatypes::DataType::Decimal128(38, 0),
        other => other.arrow_type(),
    };
    ScalarValue::try_from(&data_type).map_err(|e| e.to_string())
}

impl BinaryReader {
    pub fn new(types: Vec<SqlType>) -> Self {
        BinaryReader {
            columns: types.iter().map(|_| Vec::new()).collect(),
            types,
            buffer: Vec::new(),
            header_read: false,
            ended: false,
            row: 0,
            lines: Vec::new(),
        }
    }

    pub fn rows_ready(&self) -> usize {
        self.lines.len()
    }

    pub fn feed(&mut self, data: &[u8]) -> Result<(), CopyDataError> {
        if self.ended {
            return Ok(());
        }
        self.buffer.extend_from_slice(data);
        let mut at = 0;
        if !self.header_read {
            if self.buffer.len() < 19 {
                return Ok(());
            }
            if &self.buffer[..11] != SIGNATURE {
                return Err(bad("COPY file signature not recognized", 0));
            }
            let flags = be_i32(&self.buffer[11..15]);
            if flags & (1 << 16) != 0 {
                return Err(bad("invalid COPY file header (WITH OIDS)", 0));
            }
            let extension = be_i32(&self.buffer[15..19]);
            if extension < 0 {
                return Err(bad("invalid COPY file header (missing length)", 0));
            }
            let end = 19 + extension as usize;
            if self.buffer.len() < end {
                return Ok(());
            }
            self.header_read = true;
            at = end;
        }
        while let Some(next) = self.row_at(at)? {
            at = next;
            if self.ended {
                break;
            }
        }
        self.buffer.drain(..at);
        Ok(())
    }

    /// Reads the row at `at` if the buffer holds all of it; where the next one starts.
    fn row_at(&mut self, at: usize) -> Result<Option<usize>, CopyDataError> {
        let Some(count) = self.buffer.get(at..at + 2) else {
            return Ok(None);
        };
        let count = i16::from_be_bytes([count[0], count[1]]);
        let row = self.row + 1;
        if count == -1 {
            self.ended = true;
            return Ok(Some(at + 2));
        }
        if count as usize != self.types.len() {
            return Err(bad(
                format!("row field count is {count}, expected {}", self.types.len()),
                row,
            ));
        }
        // Find every field first, so a row split across messages is read once, whole.
        let mut fields = Vec::with_capacity(self.types.len());
        let mut cursor = at + 2;
        for _ in 0..self.types.len() {
            let Some(length) = self.buffer.get(cursor..cursor + 4) else {
                return Ok(None);
            };
            let length = be_i32(length);
            cursor += 4;
            if length < 0 {
                if length != -1 {
                    return Err(bad(format!("invalid field size {length}"), row));
                }
                fields.push(None);
                continue;
            }
            let end = cursor + length as usize;
            if self.buffer.len() < end {
                return Ok(None);
            }
            fields.push(Some(cursor..end));
            cursor = end;
        }
        for (column, field) in fields.into_iter().enumerate() {
            let sql_type = self.types[column];
            let value = match field {
                None => null_of(sql_type),
                Some(range) => decode(sql_type, &self.buffer[range]),
            }
            .map_err(|e| {
                bad(
                    format!("incorrect binary data format in column {}: {e}", column + 1),
                    row,
                )
            })?;
            self.columns[column].push(value);
        }
        self.row = row;
        self.lines.push(row);
        Ok(Some(cursor))
    }

    /// The end of the data: after the trailer, or (as PostgreSQL allows) between rows.
    pub fn finish(&mut self) -> Result<(), CopyDataError> {
        let at_row_boundary = self.header_read && self.buffer.is_empty();
        if !(self.ended || at_row_boundary) {
            return Err(bad("unexpected EOF in COPY data", self.row + 1));
        }
        Ok(())
    }

    /// The rows read so far as typed arrays, and their row numbers.
    pub fn take(&mut self) -> Result<(Vec<ArrayRef>, Vec<u64>), CopyDataError> {
        let row = self.row;
        let arrays = self
            .columns
            .iter_mut()
            .zip(&self.types)
            .map(|(values, sql_type)| {
                let values = std::mem::take(values);
                if values.is_empty() {
                    let data_type = match sql_type {
                        SqlType::Numeric { .. } => {
                            datafusion::arrow::datatypes::DataType::Decimal128(38, 0)
                        }
                        other => other.arrow_type(),
                    };
                    return Ok(datafusion::arrow::array::new_empty_array(&data_type));
                }
                // Decimals keep each value's own scale; widen all to the largest.
                let values = widen_decimals(values)
                    .map_err(|e| bad(format!("incorrect binary data format: {e}"), row))?;
                ScalarValue::iter_to_array(values)
                    .map_err(|e| bad(format!("incorrect binary data format: {e}"), row))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((arrays, std::mem::take(&mut self.lines)))
    }
}

/// Numeric values decoded with different scales, brought to one (the largest) so they form
/// one array; a value that cannot take that scale in 38 digits is an error.
fn widen_decimals(values: Vec<ScalarValue>) -> Result<Vec<ScalarValue>, String> {
    let scale = values
        .iter()
        .filter_map(|v| match v {
            ScalarValue::Decimal128(_, _, s) => Some(*s),
            _ => None,
        })
        .max();
    let Some(scale) = scale else {
        return Ok(values);
    };
    values
        .into_iter()
        .map(|v| match v {
            ScalarValue::Decimal128(Some(m), p, s) => 10i128
                .checked_pow((scale - s) as u32)
                .and_then(|factor| m.checked_mul(factor))
                .map(|m| ScalarValue::Decimal128(Some(m), p, scale))
                .ok_or_else(|| "numeric value out of range".to_owned()),
            ScalarValue::Decimal128(None, p, _) => Ok(ScalarValue::Decimal128(None, p, scale)),
            other => Ok(other),
        })
        .collect()
}
