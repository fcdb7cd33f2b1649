//! The columns of `json(b)_to_record` and `json(b)_to_recordset`: for each record a document
//! holds, one key's value as text the column's type reads, as PostgreSQL's populate functions
//! convert it (JSON null as NULL, strings unquoted for scalar types, arrays as array literals).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, ListBuilder, StringBuilder};
use datafusion::error::{DataFusionError, Result};

use super::access::wrong_shape;
use super::functions::Call;
use super::value::{self, Node, Value};
use super::{Kind, invalid_parameter};
use crate::exec::ExecError;
use crate::sql::json_records::{SHAPE_ARRAY, SHAPE_JSON};

/// `(document, key, shape, function)`: a list per row of the key's value in each record.
/// `*_record` reads the document as one record (a NULL document as one record of NULLs),
/// `*_recordset` as an array of them (a NULL document as none).
pub(super) fn record_fields(call: &Call) -> Result<ArrayRef> {
    let kind = call.kind(0);
    let mut out = ListBuilder::new(StringBuilder::new());
    for row in 0..call.rows {
        let (Some(key), Some(shape), Some(function)) =
            (call.text(1, row), call.text(2, row), call.text(3, row))
        else {
            out.append_null();
            continue;
        };
        let one_record = !function.ends_with("recordset");
        let Some((doc, source)) = call.doc(0, row)? else {
            if one_record {
                out.values().append_null();
                out.append(true);
            } else {
                out.append_null();
            }
            continue;
        };
        let records: Vec<&Node> = match &doc.value {
            Value::Object(_) if one_record => vec![&doc],
            _ if one_record => {
                return Err(wrong_shape(
                    "cannot call populate_composite on",
                    &doc,
                    ("an array", "a scalar"),
                ));
            }
            Value::Array(items) => {
                if !items.iter().all(|i| matches!(i.value, Value::Object(_))) {
                    return Err(invalid_parameter(format!(
                        "argument of {function} must be an array of objects"
                    )));
                }
                items.iter().collect()
            }
            _ => {
                return Err(match kind {
                    Kind::Jsonb => {
                        invalid_parameter(format!("cannot call {function} on a non-array"))
                    }
                    Kind::Json => wrong_shape(
                        &format!("cannot call {function} on"),
                        &doc,
                        ("an object", "a scalar"),
                    ),
                });
            }
        };
        for record in records {
            let text = match value::field(record, key) {
                None => None,
                Some(found) => column_text(kind, found, source, key, shape)?,
            };
            out.values().append_option(text);
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

fn column_text(
    kind: Kind,
    found: &Node,
    source: &str,
    key: &str,
    shape: &str,
) -> Result<Option<String>> {
    let print = |n: &Node| kind.print(n, source);
    Ok(match (&found.value, shape) {
        (Value::Null, _) => None,
        (_, SHAPE_JSON) => Some(print(found)),
        (Value::String(s), SHAPE_ARRAY) => Some(s.clone()),
        (Value::Array(_), SHAPE_ARRAY) => Some(array_literal(found, &print, key)?),
        (_, SHAPE_ARRAY) => {
            return Err(invalid_array(
                "expected JSON array",
                None,
                format!("See the value of key \"{key}\"."),
            ));
        }
        _ => value::as_text(found, print),
    })
}

/// A JSON array as PostgreSQL's array literal: its dimensions are those of its first
/// elements, every sub-array must match them, and elements are quoted text (NULL for null).
fn array_literal(array: &Node, print: &dyn Fn(&Node) -> String, key: &str) -> Result<String> {
    let mut dimensions = 0;
    let mut first = array;
    while let Value::Array(items) = &first.value {
        dimensions += 1;
        match items.first() {
            Some(item) => first = item,
            None => break,
        }
    }
    let mut literal = String::new();
    let mut elements = 0;
    write_level(
        array,
        dimensions,
        &mut literal,
        &mut elements,
        &Where { print, key },
    )?;
    Ok(if elements == 0 { "{}".into() } else { literal })
}

struct Where<'a> {
    print: &'a dyn Fn(&Node) -> String,
    key: &'a str,
}

fn write_level(
    array: &Node,
    below: usize,
    out: &mut String,
    elements: &mut usize,
    at: &Where,
) -> Result<()> {
    let Value::Array(items) = &array.value else {
        return Ok(());
    };
    out.push('{');
    let width = items.first().and_then(|i| match &i.value {
        Value::Array(inner) => Some(inner.len()),
        _ => None,
    });
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        if below > 1 {
            let Value::Array(inner) = &item.value else {
                return Err(invalid_array(
                    "expected JSON array",
                    None,
                    format!("See the array element [{index}] of key \"{}\".", at.key),
                ));
            };
            if Some(inner.len()) != width {
                return Err(invalid_array(
                    "malformed JSON array",
                    Some(
                        "Multidimensional arrays must have sub-arrays with matching dimensions."
                            .into(),
                    ),
                    String::new(),
                ));
            }
            write_level(item, below - 1, out, elements, at)?;
            continue;
        }
        *elements += 1;
        match value::as_text(item, at.print) {
            None => out.push_str("NULL"),
            Some(text) => crate::exec::array_text::push_quoted(&text, out),
        }
    }
    out.push('}');
    Ok(())
}

fn invalid_array(message: &str, detail: Option<String>, hint: String) -> DataFusionError {
    DataFusionError::External(Box::new(ExecError::InvalidJsonArray {
        message: message.to_owned(),
        detail,
        hint: (!hint.is_empty()).then_some(hint),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(json: &str) -> Result<String> {
        let node = value::canonical(super::super::parse(json).unwrap()).unwrap();
        array_literal(&node, &|n| value::print_jsonb(n), "a")
    }

    #[test]
    fn json_arrays_become_array_literals_of_quoted_elements() {
        assert_eq!(
            literal("[1, \"x,y\", null]").unwrap(),
            "{\"1\",\"x,y\",NULL}"
        );
        assert_eq!(literal("[\"q\\\"\"]").unwrap(), "{\"q\\\"\"}");
        assert_eq!(
            literal("[[1,2],[3,4]]").unwrap(),
            "{{\"1\",\"2\"},{\"3\",\"4\"}}"
        );
        assert_eq!(literal("[]").unwrap(), "{}");
        assert_eq!(literal("[[]]").unwrap(), "{}");
        assert_eq!(literal("[1,[2]]").unwrap(), "{\"1\",\"[2]\"}");
    }

    #[test]
    fn sub_arrays_must_match_the_first_elements_dimensions() {
        assert!(literal("[[1],[2,3]]").is_err());
        assert!(literal("[[1],2]").is_err());
    }
}
