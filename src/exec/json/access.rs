//! Reading JSON documents: `->`/`->>` and `#>`/`#>>` (and their functions), containment and
//! existence, `json(b)_typeof` and `json(b)_array_length`, and the set-returning functions'
//! lists of elements and keys.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, ListBuilder, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;

use super::Kind;
use super::functions::Call;
use super::invalid_parameter;
use super::value::{self, Node, Value};

/// A part of a document read from `source`, as its kind prints it, or as `->>` gives it
/// (`as_text`: strings unquoted, JSON null as NULL).
fn printed(kind: Kind, part: &Node, source: &str, as_text: bool) -> Option<String> {
    if as_text {
        value::as_text(part, |n| kind.print(n, source))
    } else {
        Some(kind.print(part, source))
    }
}

/// `->`/`->>`: a member by key or an element by index.
pub(super) fn get(call: &Call, as_text: bool) -> Result<ArrayRef> {
    let kind = call.kind(0);
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        let found = match call.doc(0, row)? {
            None => None,
            Some((doc, source)) => {
                let part = match call.args[1].data_type() {
                    DataType::Int64 => {
                        let indexes =
                            call.args[1].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                        indexes
                            .is_valid(row)
                            .then(|| value::element(&doc, indexes.value(row)))
                            .flatten()
                    }
                    _ => call.text(1, row).and_then(|key| value::field(&doc, key)),
                };
                part.and_then(|part| printed(kind, part, source, as_text))
            }
        };
        out.append_option(found);
    }
    Ok(Arc::new(out.finish()))
}

/// Where a path's steps are.
pub(super) enum Steps {
    /// One `text[]` argument (`#>`, `#>>`).
    Array,
    /// The arguments after the document (`json_extract_path(doc, VARIADIC steps)`).
    Arguments,
}

/// `#>`/`#>>` and `json_extract_path[_text]`: the value at a path.
pub(super) fn path(call: &Call, as_text: bool, steps_in: Steps) -> Result<ArrayRef> {
    let kind = call.kind(0);
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        let Some((doc, source)) = call.doc(0, row)? else {
            out.append_null();
            continue;
        };
        let steps = if let Steps::Array = steps_in {
            path_steps(&call.args[1], row)?
        } else {
            Some(
                call.args[1..]
                    .iter()
                    .map(|arg| {
                        let arg = cast(arg, &DataType::Utf8)?;
                        let texts = arg.as_string::<i32>();
                        Ok(texts.is_valid(row).then(|| texts.value(row).to_owned()))
                    })
                    .collect::<Result<Vec<_>>>()?,
            )
        };
        let found = steps
            .and_then(|steps| value::at_path(&doc, &steps))
            .and_then(|part| printed(kind, part, source, as_text));
        out.append_option(found);
    }
    Ok(Arc::new(out.finish()))
}

/// A `text[]` argument at `row`: a list, or an array literal (`'{a,b}'`) as text.
pub(super) fn path_steps(array: &ArrayRef, row: usize) -> Result<Option<Vec<Option<String>>>> {
    if super::edit::is_null(array, row) {
        return Ok(None);
    }
    match array.data_type() {
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            let items = cast(&items, &DataType::Utf8)?;
            let texts = items.as_string::<i32>();
            Ok(Some(texts.iter().map(|t| t.map(str::to_owned)).collect()))
        }
        _ => {
            let text = cast(array, &DataType::Utf8)?;
            let literal = text.as_string::<i32>().value(row).to_owned();
            crate::exec::array_text::parse_text_array(&literal)
                .map(Some)
                .ok_or_else(|| invalid_parameter(format!("malformed array literal: \"{literal}\"")))
        }
    }
}

pub(super) fn contains(call: &Call, reversed: bool) -> Result<ArrayRef> {
    let mut out = BooleanBuilder::new();
    for row in 0..call.rows {
        match (call.doc(0, row)?, call.doc(1, row)?) {
            (Some((a, _)), Some((b, _))) => out.append_value(if reversed {
                value::contains(&b, &a)
            } else {
                value::contains(&a, &b)
            }),
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

pub(super) enum Existence {
    Key,
    Any,
    All,
}

pub(super) fn exists(call: &Call, test: Existence) -> Result<ArrayRef> {
    let mut out = BooleanBuilder::new();
    for row in 0..call.rows {
        let Some((doc, _)) = call.doc(0, row)? else {
            out.append_null();
            continue;
        };
        let answer = match test {
            Existence::Key => call.text(1, row).map(|key| value::exists(&doc, key)),
            Existence::Any | Existence::All => path_steps(&call.args[1], row)?.map(|keys| {
                let mut present = keys.iter().flatten().map(|key| value::exists(&doc, key));
                match test {
                    Existence::Any => present.any(|p| p),
                    _ => present.all(|p| p),
                }
            }),
        };
        out.append_option(answer);
    }
    Ok(Arc::new(out.finish()))
}

pub(super) fn typeof_each(call: &Call) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        out.append_option(call.doc(0, row)?.map(|(doc, _)| doc.type_name()));
    }
    Ok(Arc::new(out.finish()))
}

pub(super) fn array_length(call: &Call) -> Result<ArrayRef> {
    let mut out = Int32Builder::new();
    for row in 0..call.rows {
        match call.doc(0, row)? {
            None => out.append_null(),
            Some((
                Node {
                    value: Value::Array(items),
                    ..
                },
                _,
            )) => out.append_value(items.len() as i32),
            Some((doc, _)) => {
                return Err(wrong_shape(
                    "cannot get array length of a",
                    &doc,
                    ("non-array", "scalar"),
                ));
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// The error for a document of the wrong shape: `{action} {container}` when it is a container
/// (of the kind the function does not take), `{action} {scalar}` otherwise.
pub(super) fn wrong_shape(
    action: &str,
    doc: &Node,
    (container, scalar): (&str, &str),
) -> datafusion::error::DataFusionError {
    let is_container = matches!(doc.value, Value::Array(_) | Value::Object(_));
    invalid_parameter(format!(
        "{action} {}",
        if is_container { container } else { scalar }
    ))
}

/// A list per row: what `items` appends for each document and its row (NULL for a NULL one).
fn list_per_row(
    call: &Call,
    mut items: impl FnMut(Node, &str, usize, &mut StringBuilder) -> Result<()>,
) -> Result<ArrayRef> {
    let mut out = ListBuilder::new(StringBuilder::new());
    for row in 0..call.rows {
        match call.doc(0, row)? {
            None => out.append_null(),
            Some((doc, source)) => {
                items(doc, source, row, out.values())?;
                out.append(true);
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

pub(super) fn elements(call: &Call, as_text: bool) -> Result<ArrayRef> {
    let kind = call.kind(0);
    list_per_row(call, |doc, source, _, out| match doc.value {
        Value::Array(items) => {
            for item in &items {
                out.append_option(printed(kind, item, source, as_text));
            }
            Ok(())
        }
        _ => Err(wrong_shape(
            "cannot extract elements from",
            &doc,
            ("an object", "a scalar"),
        )),
    })
}

pub(super) fn object_keys(call: &Call) -> Result<ArrayRef> {
    list_per_row(call, |doc, _, _, out| match doc.value {
        Value::Object(members) => {
            let mut seen: Vec<&str> = Vec::new();
            for (key, _) in &members {
                if !seen.contains(&key.as_str()) {
                    seen.push(key);
                    out.append_value(key);
                }
            }
            Ok(())
        }
        _ => Err(wrong_shape(
            "cannot call jsonb_object_keys on",
            &doc,
            ("an array", "a scalar"),
        )),
    })
}

/// Which part of each member `json(b)_each(_text)` reads: its key, or its value as the
/// document's kind or as text.
#[derive(Clone, Copy)]
pub(super) enum MemberPart {
    Key,
    Value,
    Text,
}

/// One part of every member of an object, in order (a `json` object's repeated keys too):
/// the columns of `json(b)_each(_text)`, whose name (argument 1) the errors use.
pub(super) fn each_member(call: &Call, part: MemberPart) -> Result<ArrayRef> {
    let kind = call.kind(0);
    list_per_row(call, |doc, source, row, out| {
        let Value::Object(members) = &doc.value else {
            return Err(match kind {
                Kind::Jsonb => invalid_parameter(format!(
                    "cannot call {} on a non-object",
                    call.text(1, row).unwrap_or("jsonb_each")
                )),
                Kind::Json => wrong_shape(
                    "cannot deconstruct",
                    &doc,
                    ("an array as an object", "a scalar"),
                ),
            });
        };
        for (key, member) in members {
            out.append_option(match part {
                MemberPart::Key => Some(key.clone()),
                MemberPart::Value => printed(kind, member, source, false),
                MemberPart::Text => printed(kind, member, source, true),
            });
        }
        Ok(())
    })
}
