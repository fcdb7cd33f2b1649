//! Editing `jsonb` documents as PostgreSQL's operators and functions do: `||` (concatenate or
//! merge), `-` (delete a key, the string elements equal to it, or an array position), `#-`
//! (delete at a path) and `jsonb_insert`, with PostgreSQL's errors for what it refuses.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};

use super::access::path_steps;
use super::functions::Call;
use super::value::{Node, Value};
use super::{Kind, invalid_parameter};
use crate::exec::ExecError;

/// `a || b`: two objects merge (b's members win); anything else concatenates as arrays, a
/// non-array value counting as a one-element array.
pub(super) fn concat(call: &Call) -> Result<ArrayRef> {
    let (lefts, rights) = (texts(call, 0)?, texts(call, 1)?);
    each_row(call, |row| {
        let (Some(left), Some(right)) = (jsonb(&lefts, row)?, jsonb(&rights, row)?) else {
            return Ok(None);
        };
        let merged = match (left.value, right.value) {
            (Value::Object(mut members), Value::Object(more)) => {
                for (key, node) in more {
                    match members.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, old)) => *old = node,
                        None => members.push((key, node)),
                    }
                }
                Value::Object(members)
            }
            (left, right) => {
                let mut items = as_items(left);
                items.extend(as_items(right));
                Value::Array(items)
            }
        };
        Ok(Some(Node::built(merged)))
    })
}

fn as_items(value: Value) -> Vec<Node> {
    match value {
        Value::Array(items) => items,
        other => vec![Node::built(other)],
    }
}

/// What `-` removes.
#[derive(Clone, Copy)]
pub(super) enum Removal {
    /// A key (text): the member, or the string elements equal to it.
    Key,
    /// Keys (text[]).
    Keys,
    /// An array position (integer), from the end when negative.
    Index,
}

/// `doc - key`, `doc - keys[]`, `doc - index`.
pub(super) fn delete(call: &Call, removal: Removal) -> Result<ArrayRef> {
    let docs = texts(call, 0)?;
    let indexes = match removal {
        Removal::Index => Some(cast(&call.args[1], &DataType::Int64)?),
        _ => None,
    };
    let keys = match removal {
        Removal::Key => Some(texts(call, 1)?),
        _ => None,
    };
    each_row(call, |row| {
        let Some(doc) = jsonb(&docs, row)? else {
            return Ok(None);
        };
        if is_null(&call.args[1], row) {
            return Ok(None);
        }
        let keys: Vec<String> = match removal {
            Removal::Key => keys
                .iter()
                .map(|k| k.as_string::<i32>().value(row).to_owned())
                .collect(),
            Removal::Keys => path_steps(&call.args[1], row)?
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect(),
            Removal::Index => Vec::new(),
        };
        let value = match (doc.value, removal) {
            (Value::Object(_), Removal::Index) => {
                return Err(invalid_parameter(
                    "cannot delete from object using integer index".into(),
                ));
            }
            (Value::Object(members), _) => Value::Object(
                members
                    .into_iter()
                    .filter(|(k, _)| !keys.contains(k))
                    .collect(),
            ),
            (Value::Array(mut items), Removal::Index) => {
                let index = indexes.as_ref().map_or(0, |i| {
                    i.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .value(row)
                });
                if let Some(at) = position(index, items.len()) {
                    items.remove(at);
                }
                Value::Array(items)
            }
            (Value::Array(items), _) => Value::Array(
                items
                    .into_iter()
                    .filter(|n| !matches!(&n.value, Value::String(s) if keys.contains(s)))
                    .collect(),
            ),
            _ => return Err(invalid_parameter("cannot delete from scalar".into())),
        };
        Ok(Some(Node::built(value)))
    })
}

/// `doc #- path`: the document without the value at `path`.
pub(super) fn delete_path(call: &Call) -> Result<ArrayRef> {
    let docs = texts(call, 0)?;
    each_row(call, |row| {
        let (Some(mut doc), Some(path)) = (jsonb(&docs, row)?, steps(call, 1, row)?) else {
            return Ok(None);
        };
        if path.is_empty() {
            return Ok(Some(doc));
        }
        if !matches!(doc.value, Value::Object(_) | Value::Array(_)) {
            return Err(invalid_parameter("cannot delete path in scalar".into()));
        }
        remove_at(&mut doc, &path, 0)?;
        Ok(Some(doc))
    })
}

fn remove_at(node: &mut Node, path: &[String], level: usize) -> Result<()> {
    let step = &path[level];
    let last = level + 1 == path.len();
    node.span = 0..0;
    match &mut node.value {
        Value::Object(members) => {
            if let Some(at) = members.iter().position(|(k, _)| k == step) {
                if last {
                    members.remove(at);
                } else {
                    remove_at(&mut members[at].1, path, level + 1)?;
                }
            }
        }
        Value::Array(items) => {
            if let Some(at) = position(array_step(step, level)?, items.len()) {
                if last {
                    items.remove(at);
                } else {
                    remove_at(&mut items[at], path, level + 1)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// `jsonb_insert(doc, path, new [, insert_after])`: `new` inserted before (after) the array
/// element at `path`, or as a new member where `path` names a missing key.
pub(super) fn insert(call: &Call) -> Result<ArrayRef> {
    let after = match call.args.get(3) {
        Some(flag) => Some(cast(flag, &DataType::Boolean)?),
        None => None,
    };
    let (docs, news) = (texts(call, 0)?, texts(call, 2)?);
    each_row(call, |row| {
        let (Some(mut doc), Some(path), Some(new)) =
            (jsonb(&docs, row)?, steps(call, 1, row)?, jsonb(&news, row)?)
        else {
            return Ok(None);
        };
        let after = match &after {
            Some(flag) if flag.is_null(row) => return Ok(None),
            Some(flag) => flag.as_boolean().value(row),
            None => false,
        };
        if !matches!(doc.value, Value::Object(_) | Value::Array(_)) {
            return Err(invalid_parameter("cannot set path in scalar".into()));
        }
        if !path.is_empty() {
            insert_at(&mut doc, &path, 0, new, after)?;
        }
        Ok(Some(doc))
    })
}

fn insert_at(node: &mut Node, path: &[String], level: usize, new: Node, after: bool) -> Result<()> {
    let step = &path[level];
    let last = level + 1 == path.len();
    node.span = 0..0;
    match &mut node.value {
        Value::Object(members) => match members.iter_mut().find(|(k, _)| k == step) {
            Some(_) if last => {
                return Err(invalid_parameter("cannot replace existing key".into()));
            }
            Some((_, member)) => insert_at(member, path, level + 1, new, after)?,
            // The result is printed canonically, which puts the new key in its place.
            None if last => members.push((step.clone(), new)),
            None => {}
        },
        Value::Array(items) => {
            let index = array_step(step, level)?;
            let len = items.len() as i64;
            if !last {
                if let Some(at) = position(index, items.len()) {
                    insert_at(&mut items[at], path, level + 1, new, after)?;
                }
                return Ok(());
            }
            // Before the first element when counting back past it, after the last when
            // counting past it; otherwise next to the element named.
            let at = match index {
                i if i < -len => 0,
                i if i < 0 => (len + i) as usize + usize::from(after),
                i if i >= len => items.len(),
                i => i as usize + usize::from(after),
            };
            items.insert(at, new);
        }
        _ => {}
    }
    Ok(())
}

/// Whether `array` is NULL at `row`; an untyped NULL argument is a NullArray, which has no
/// validity buffer for `is_null` to read.
pub(super) fn is_null(array: &ArrayRef, row: usize) -> bool {
    *array.data_type() == DataType::Null || array.is_null(row)
}

/// An array position counted from the start, or from the end when negative; `None` past
/// either end.
fn position(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let at = if index < 0 { len + index } else { index };
    (0..len).contains(&at).then_some(at as usize)
}

/// A path step that must be an array position (22P02 otherwise, as PostgreSQL says).
fn array_step(step: &str, level: usize) -> Result<i64> {
    step.parse::<i32>().map(i64::from).map_err(|_| {
        DataFusionError::External(Box::new(ExecError::InvalidText(format!(
            "path element at position {} is not an integer: \"{step}\"",
            level + 1
        ))))
    })
}

/// Argument `arg` as text (what JSON arguments are; a NULL literal is untyped).
fn texts(call: &Call, arg: usize) -> Result<ArrayRef> {
    Ok(cast(&call.args[arg], &DataType::Utf8)?)
}

/// The value at `row` of `texts` read as `jsonb`, whatever the argument's own kind.
fn jsonb(texts: &ArrayRef, row: usize) -> Result<Option<Node>> {
    let texts = texts.as_string::<i32>();
    texts
        .is_valid(row)
        .then(|| Kind::Jsonb.read(texts.value(row)))
        .transpose()
}

/// A text[] path at `row`; a NULL element is an error (22004), as in PostgreSQL.
pub(super) fn steps(call: &Call, arg: usize, row: usize) -> Result<Option<Vec<String>>> {
    let Some(steps) = path_steps(&call.args[arg], row)? else {
        return Ok(None);
    };
    steps
        .into_iter()
        .enumerate()
        .map(|(at, step)| {
            step.ok_or_else(|| {
                DataFusionError::External(Box::new(ExecError::NullValueNotAllowed(format!(
                    "path element at position {} is null",
                    at + 1
                ))))
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The `jsonb` result of `edit` for each row (`None`: NULL).
fn each_row(call: &Call, mut edit: impl FnMut(usize) -> Result<Option<Node>>) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for row in 0..call.rows {
        match edit(row)? {
            Some(node) => out.append_value(Kind::Jsonb.print_built(node)?),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}
