//! Making JSON documents: the `json`/`jsonb` input functions, `json(b)_build_object/array`,
//! `json(b)_object` from text arrays, `to_json(b)` (a SQL value as JSON), `jsonb_set`,
//! `json(b)_strip_nulls` and `jsonb_pretty`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::{DataFusionError, Result};

use super::functions::Call;
use super::value::{self, Node, Value};
use super::{Kind, invalid_parameter};
use crate::exec::ExecError;
use crate::exec::array_text::{TextArray, parse_text_array_2d};

pub(super) fn read_each(call: &Call, kind: Kind) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        match call.text(0, row) {
            None => out.append_null(),
            Some(text) => {
                let node = kind.read(text)?;
                match kind {
                    Kind::Json => out.append_value(text),
                    Kind::Jsonb => out.append_value(value::print_jsonb(&node)),
                }
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

pub(super) fn finish_each(
    call: &Call,
    kind: Kind,
    build: impl Fn(usize) -> Result<Option<Node>>,
) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        match build(row)? {
            Some(node) => out.append_value(kind.print_built(node)?),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

pub(super) fn build_object(call: &Call, kind: Kind) -> Result<ArrayRef> {
    if !call.args.len().is_multiple_of(2) {
        return Err(invalid_parameter(
            "argument list must have even number of elements".into(),
        ));
    }
    finish_each(call, kind, |row| {
        let mut members = Vec::with_capacity(call.args.len() / 2);
        for pair in (0..call.args.len()).step_by(2) {
            let key = &call.args[pair];
            if key.is_null(row) {
                return Err(invalid_parameter(
                    "null value not allowed for object key".into(),
                ));
            }
            let key = datafusion::arrow::util::display::array_value_to_string(key, row)?;
            members.push((
                key,
                to_node(&call.args[pair + 1], &call.fields[pair + 1], row)?,
            ));
        }
        Ok(Some(Node::built(Value::Object(members))))
    })
}

pub(super) fn build_array(call: &Call, kind: Kind) -> Result<ArrayRef> {
    finish_each(call, kind, |row| {
        let items = (0..call.args.len())
            .map(|arg| to_node(&call.args[arg], &call.fields[arg], row))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Node::built(Value::Array(items))))
    })
}

pub(super) fn to_json(call: &Call, kind: Kind) -> Result<ArrayRef> {
    finish_each(call, kind, |row| {
        if call.args[0].is_null(row) {
            return Ok(None);
        }
        to_node(&call.args[0], &call.fields[0], row).map(Some)
    })
}

/// A SQL value as JSON, as `to_jsonb` converts it: numbers and booleans as themselves,
/// `json`/`jsonb` as the document, arrays and rows as arrays and objects, anything else as
/// its text.
pub(super) fn to_node(array: &ArrayRef, field: &Field, row: usize) -> Result<Node> {
    use datafusion::arrow::util::display::array_value_to_string;
    if array.data_type() == &DataType::Null || array.is_null(row) {
        return Ok(Node::built(Value::Null));
    }
    let value = match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Value::Number(array_value_to_string(array, row)?),
        DataType::Float32 | DataType::Float64 => {
            let number = cast(&array.slice(row, 1), &DataType::Float64)?;
            let number = number
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .value(0);
            if number.is_finite() {
                Value::Number(number.to_string())
            } else if number.is_nan() {
                Value::String("NaN".into())
            } else if number > 0.0 {
                Value::String("Infinity".into())
            } else {
                Value::String("-Infinity".into())
            }
        }
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            let text = array_value_to_string(array, row)?;
            match Kind::tagged(field) {
                // Either kind's value becomes part of the built value, canonical.
                Some(_) => return Kind::Jsonb.read(&text),
                None => Value::String(text),
            }
        }
        DataType::List(item) => {
            let items = array.as_list::<i32>().value(row);
            Value::Array(
                (0..items.len())
                    .map(|i| to_node(&items, item, i))
                    .collect::<Result<_>>()?,
            )
        }
        DataType::Struct(fields) => {
            let parts = array.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(parts.columns())
                    .map(|(f, column)| Ok((f.name().clone(), to_node(column, f, row)?)))
                    .collect::<Result<_>>()?,
            )
        }
        _ => Value::String(array_value_to_string(array, row)?),
    };
    Ok(Node::built(value))
}

pub(super) fn strip_nulls(call: &Call) -> Result<ArrayRef> {
    let kind = call.kind(0);
    finish_each(call, kind, |row| {
        Ok(call.doc(0, row)?.map(|(doc, _)| value::strip_nulls(doc)))
    })
}

pub(super) fn pretty(call: &Call) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        // `jsonb_pretty` takes jsonb: the document is read in canonical form.
        let text = call.text(0, row);
        let doc = text.map(|text| Kind::Jsonb.read(text)).transpose()?;
        out.append_option(doc.map(|doc| value::print_pretty(&doc)));
    }
    Ok(Arc::new(out.finish()))
}

pub(super) fn set(call: &Call) -> Result<ArrayRef> {
    let target = cast(&call.args[0], &DataType::Utf8)?;
    let new = cast(&call.args[2], &DataType::Utf8)?;
    let create = match call.args.get(3) {
        Some(flag) => Some(cast(flag, &DataType::Boolean)?),
        None => None,
    };
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        let (Some(doc), Some(steps), Some(new)) = (
            target
                .as_string::<i32>()
                .is_valid(row)
                .then(|| target.as_string::<i32>().value(row)),
            super::edit::steps(call, 1, row)?,
            new.as_string::<i32>()
                .is_valid(row)
                .then(|| new.as_string::<i32>().value(row)),
        ) else {
            out.append_null();
            continue;
        };
        let mut doc = Kind::Jsonb.read(doc)?;
        let new = Kind::Jsonb.read(new)?;
        let create_missing = create
            .as_ref()
            .is_none_or(|c| c.as_boolean().is_valid(row) && c.as_boolean().value(row));
        value::set_path(&mut doc, &steps, new, create_missing);
        out.append_value(value::print_jsonb(&doc));
    }
    Ok(Arc::new(out.finish()))
}

/// `json(b)_object(text[])` and `json(b)_object(keys text[], values text[])`: an object from
/// alternating keys and values, from two-column rows, or from two parallel arrays; every value
/// is a string or null. A literal argument is read as an array literal, as PostgreSQL reads
/// an untyped one for a `text[]` parameter.
pub(super) fn object_from_arrays(call: &Call, kind: Kind) -> Result<ArrayRef> {
    let shape = |message: &str| {
        DataFusionError::External(Box::new(ExecError::ArraySubscriptError(message.into())))
    };
    finish_each(call, kind, |row| {
        let mut arrays = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            match text_array_at(arg, row)? {
                Some(array) => arrays.push(array),
                None => return Ok(None),
            }
        }
        let pairs: Vec<(Option<String>, Option<String>)> = match arrays.as_slice() {
            [TextArray::Flat(items)] if items.len() % 2 == 0 => items
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect(),
            [TextArray::Flat(_)] => return Err(shape("array must have even number of elements")),
            [TextArray::Rows(rows)] if rows.iter().all(|r| r.len() == 2) => rows
                .iter()
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect(),
            [TextArray::Rows(_)] => return Err(shape("array must have two columns")),
            [TextArray::Flat(keys), TextArray::Flat(values)] if keys.len() == values.len() => {
                keys.iter().cloned().zip(values.iter().cloned()).collect()
            }
            [TextArray::Flat(_), TextArray::Flat(_)] => {
                return Err(shape("mismatched array dimensions"));
            }
            _ => return Err(shape("wrong number of array subscripts")),
        };
        let mut members = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let key = key.ok_or_else(|| {
                DataFusionError::External(Box::new(ExecError::NullValueNotAllowed(
                    "null value not allowed for object key".into(),
                )))
            })?;
            let value = value.map_or(Value::Null, Value::String);
            members.push((key, Node::built(value)));
        }
        Ok(Some(Node::built(Value::Object(members))))
    })
}

/// Argument `array` at `row` as an array of texts; None when NULL.
fn text_array_at(array: &ArrayRef, row: usize) -> Result<Option<TextArray>> {
    if array.is_null(row) {
        return Ok(None);
    }
    let texts = |list: &ArrayRef| -> Result<Vec<Option<String>>> {
        let list = cast(list, &DataType::Utf8)?;
        Ok(list
            .as_string::<i32>()
            .iter()
            .map(|item| item.map(str::to_owned))
            .collect())
    };
    Ok(Some(match array.data_type() {
        DataType::List(item) if matches!(item.data_type(), DataType::List(_)) => {
            let rows = array.as_list::<i32>().value(row);
            let rows = rows.as_list::<i32>();
            TextArray::Rows(
                (0..rows.len())
                    .map(|r| texts(&rows.value(r)))
                    .collect::<Result<_>>()?,
            )
        }
        DataType::List(_) => TextArray::Flat(texts(&array.as_list::<i32>().value(row))?),
        _ => {
            let literal = cast(array, &DataType::Utf8)?;
            let literal = literal.as_string::<i32>().value(row);
            parse_text_array_2d(literal).ok_or_else(|| {
                DataFusionError::External(Box::new(ExecError::InvalidText(format!(
                    "malformed array literal: \"{literal}\""
                ))))
            })?
        }
    }))
}
