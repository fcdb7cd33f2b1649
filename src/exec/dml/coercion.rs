//! Turning computed values into a column's stored form: the cast a value gets before it is
//! checked, PostgreSQL's text input for BYTEA and UUID, and the column's constraints (NOT NULL,
//! VARCHAR length, valid JSON).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr, ExprSchemable, cast};

use super::super::{ExecError, ExecResult};
use crate::model::types::{ColumnDef, NAME_MAX_BYTES, SqlType};
use crate::storage::TableRecord;

/// The type an expression assigned to a column of `sql_type` is cast to. Text stays text for
/// the types whose input syntax `conform` parses (JSON, UUID, VARCHAR's length check).
fn cast_target(sql_type: SqlType) -> DataType {
    match sql_type {
        SqlType::Varchar { .. }
        | SqlType::Name
        | SqlType::Char { .. }
        | SqlType::Json
        | SqlType::Jsonb
        | SqlType::Uuid
        | SqlType::Text => DataType::Utf8,
        other => other.arrow_type(),
    }
}

/// `value` cast for a column of `sql_type`. Text bound for BYTEA stays text so that `conform`
/// reads it as PostgreSQL's bytea input (`\x0102`), not as the text's own bytes.
pub(in crate::exec) fn assignment_cast(
    value: Expr,
    sql_type: SqlType,
    schema: &DFSchema,
) -> ExecResult<Expr> {
    let target = assigned_type(sql_type, &value.get_type(schema)?);
    Ok(cast(value, target))
}

/// The type a value of `given` type assigned to a column of `sql_type` is cast to.
pub(in crate::exec) fn assigned_type(sql_type: SqlType, given: &DataType) -> DataType {
    match (sql_type, given) {
        (SqlType::Bytea, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => {
            DataType::Utf8
        }
        (other, _) => cast_target(other),
    }
}

fn invalid_text(column: &ColumnDef, detail: impl std::fmt::Display) -> ExecError {
    ExecError::InvalidText(format!(
        "invalid input for column \"{}\" of type {}: {detail}",
        column.name,
        column.sql_type.sql_name()
    ))
}

/// Casts `array` to the column's stored type and checks the column's constraints.
pub(in crate::exec) fn conform(
    record: &TableRecord,
    column: &ColumnDef,
    array: &ArrayRef,
) -> ExecResult<ArrayRef> {
    let target = column.sql_type.arrow_type();
    // Text into BYTEA is PostgreSQL's bytea input syntax, not the text's own bytes.
    let array = if column.sql_type == SqlType::Bytea && array.data_type() == &DataType::Utf8 {
        let decoded: datafusion::arrow::array::BinaryArray = array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(parse_bytea).transpose())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid_text(column, e))?;
        Arc::new(decoded) as ArrayRef
    } else {
        array.clone()
    };
    // PostgreSQL reads dates and times in more forms than Arrow's parser.
    let array = match target {
        DataType::Timestamp(..) | DataType::Date32 => {
            crate::exec::text_casts::postgres_datetime_array(&array, &target)
                .map_err(ExecError::from)?
        }
        _ => array,
    };
    let array = &array;
    let array = if array.data_type() == &target {
        array.clone()
    } else {
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        let fractional = matches!(
            array.data_type(),
            DataType::Decimal128(..)
                | DataType::Decimal256(..)
                | DataType::Float32
                | DataType::Float64
        );
        let converted = if fractional && target.is_integer() {
            super::super::checked_arithmetic::rounded_to_integer(array, &target)
        } else {
            cast_with_options(array, &target, &options)
        };
        converted.map_err(|e| {
            // A number too large for the column is out of range, as PostgreSQL reports it.
            if array.data_type().is_numeric() && target.is_integer() {
                ExecError::NumericOutOfRange(format!("{} out of range", column.sql_type.sql_name()))
            } else {
                invalid_text(column, e)
            }
        })?
    };
    if !column.nullable && array.null_count() > 0 {
        return Err(ExecError::NotNullViolation(format!(
            "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
            column.name, record.name
        )));
    }
    match column.sql_type {
        SqlType::Varchar { max_len: Some(max) } => {
            let strings = array.as_string::<i32>();
            if strings
                .iter()
                .flatten()
                .any(|s| s.chars().count() > max as usize)
            {
                return Err(ExecError::StringTooLong(format!(
                    "value too long for type character varying({max})"
                )));
            }
            Ok(array)
        }
        // Padded with blanks to the length; longer text fails unless only blanks are cut.
        SqlType::Char { len } => {
            let strings = array.as_string::<i32>();
            let mut padded = datafusion::arrow::array::StringBuilder::new();
            for text in strings.iter() {
                match text {
                    None => padded.append_null(),
                    Some(text) => padded.append_value(blank_padded(text, len)?),
                }
            }
            Ok(Arc::new(padded.finish()))
        }
        // PostgreSQL cuts a longer name silently, at a character boundary.
        SqlType::Name => {
            let cut: StringArray = array
                .as_string::<i32>()
                .iter()
                .map(|text| text.map(|t| &t[..name_prefix_len(t)]))
                .collect();
            Ok(Arc::new(cut))
        }
        // `json` keeps the text as written; `jsonb` stores its canonical form.
        SqlType::Json => {
            for text in array.as_string::<i32>().iter().flatten() {
                crate::exec::json::parse(text)
                    .map_err(|e| ExecError::InvalidJson { detail: e.0 })?;
            }
            Ok(array)
        }
        SqlType::Jsonb => {
            let canonical: StringArray = array
                .as_string::<i32>()
                .iter()
                .map(|text| text.map(crate::exec::json::canonical_jsonb).transpose())
                .collect::<Result<_, _>>()?;
            Ok(Arc::new(canonical))
        }
        SqlType::Uuid => {
            let normalized: StringArray = array
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(normalize_uuid).transpose())
                .collect::<Result<_, _>>()
                .map_err(|bad| invalid_text(column, format!("\"{bad}\" is not a UUID")))?;
            Ok(Arc::new(normalized))
        }
        _ => Ok(array),
    }
}

/// PostgreSQL's bytea input: `\x` followed by hex digits, or the escape format in which
/// `\\` is a backslash and `\nnn` an octal byte.
pub(in crate::exec) fn parse_bytea(text: &str) -> Result<Vec<u8>, String> {
    if let Some(hex_digits) = text.strip_prefix("\\x") {
        let compact: String = hex_digits.chars().filter(|c| !c.is_whitespace()).collect();
        return hex::decode(compact).map_err(|e| match e {
            hex::FromHexError::InvalidHexCharacter { c, .. } => {
                format!("invalid hexadecimal digit: \"{c}\"")
            }
            _ => "invalid hexadecimal data: odd number of digits".to_owned(),
        });
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = bytes
                .get(i + 1..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
                .ok_or_else(|| "invalid escape sequence in bytea input".to_owned())?;
            out.push(octal);
            i += 4;
        }
    }
    Ok(out)
}

/// Canonical lower-case hyphenated form; accepts the spellings PostgreSQL accepts.
fn normalize_uuid(text: &str) -> Result<String, String> {
    let hex: String = text
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(text.to_owned());
    }
    let h = hex.to_ascii_lowercase();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The length in bytes of the longest prefix of `text` a `name` keeps.
fn name_prefix_len(text: &str) -> usize {
    if text.len() <= NAME_MAX_BYTES {
        return text.len();
    }
    (0..=NAME_MAX_BYTES)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// `text` as `character(len)` holds it: padded with blanks to `len` characters, or cut to
/// them when only blanks are cut (22001 otherwise); `bpchar` without a length keeps it.
fn blank_padded(text: &str, len: Option<u32>) -> ExecResult<String> {
    let Some(len) = len.map(|n| n as usize) else {
        return Ok(text.to_owned());
    };
    let count = text.chars().count();
    if count <= len {
        let mut padded = String::with_capacity(text.len() + len - count);
        padded.push_str(text);
        padded.extend(std::iter::repeat_n(' ', len - count));
        return Ok(padded);
    }
    let cut = text.char_indices().nth(len).map_or(text.len(), |(i, _)| i);
    if text[cut..].chars().all(|c| c == ' ') {
        Ok(text[..cut].to_owned())
    } else {
        Err(ExecError::StringTooLong(format!(
            "value too long for type character({len})"
        )))
    }
}
