//! PostgreSQL's array literal text, both ways: reading `{a,"b c",NULL}` into a list of texts
//! (casts of text to an array) and writing a list the way PostgreSQL's `array_out` does (casts
//! of an array to text), where Arrow would write `[a, b c, ]`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::Result;

/// The elements of a one-dimensional PostgreSQL array literal (`{a,"b c",NULL}`); `None`
/// when it is malformed.
pub(crate) fn parse_text_array(literal: &str) -> Option<Vec<Option<String>>> {
    let inner = literal
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))?;
    let mut items = Vec::new();
    if inner.trim().is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => item.push(chars.next()?),
                    Some(c) => item.push(c),
                    None => return None,
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c == ',' {
                break;
            }
            chars.next();
            if quoted {
                if !c.is_whitespace() {
                    return None;
                }
            } else if c == '\\' {
                item.push(chars.next()?);
            } else {
                item.push(c);
            }
        }
        let item = if quoted {
            item
        } else {
            item.trim_end().to_owned()
        };
        // KalamDB arrays have one dimension; an empty element is malformed in PostgreSQL too.
        if !quoted && (item.is_empty() || item.contains(['{', '}'])) {
            return None;
        }
        items.push((quoted || !item.eq_ignore_ascii_case("null")).then_some(item));
        if chars.next().is_none() {
            return Some(items);
        }
    }
}

/// A PostgreSQL array literal of one or two dimensions, as text elements.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TextArray {
    Flat(Vec<Option<String>>),
    /// Two dimensions: the rows, which PostgreSQL requires to be of one length.
    Rows(Vec<Vec<Option<String>>>),
    /// Three or more dimensions.
    Deeper,
}

/// Reads a one- or two-dimensional array literal (`{a,b}`, `{{a,1},{b,2}}`); `None` when it
/// is malformed or its rows differ in length.
pub(crate) fn parse_text_array_2d(literal: &str) -> Option<TextArray> {
    let inner = literal
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))?;
    if !inner.trim_start().starts_with('{') {
        return parse_text_array(literal).map(TextArray::Flat);
    }
    let mut rows = Vec::new();
    for row in top_level_items(inner)? {
        let row_inner = row.trim().strip_prefix('{')?;
        if row_inner.trim_start().starts_with('{') {
            return Some(TextArray::Deeper);
        }
        rows.push(parse_text_array(row)?);
    }
    if rows.windows(2).any(|pair| pair[0].len() != pair[1].len()) {
        return None;
    }
    Some(TextArray::Rows(rows))
}

/// The comma-separated items of an array literal's inside, braces and quotes respected.
fn top_level_items(inner: &str) -> Option<Vec<&str>> {
    let mut items = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0usize, false, false, 0);
    for (at, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => depth = depth.checked_sub(1)?,
            ',' if !quoted && depth == 0 => {
                items.push(&inner[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    Some(items)
}

/// Each text read as a PostgreSQL array literal, as a list of its elements' text; with the
/// name of a numeric element type (else empty), each element checked as that type's input.
pub(super) fn text_arrays(texts: &ArrayRef, element_types: &ArrayRef) -> Result<ArrayRef> {
    use datafusion::arrow::array::ListBuilder;
    let texts = texts.as_string::<i32>();
    let element_types = element_types.as_string::<i32>();
    let mut out = ListBuilder::new(StringBuilder::new());
    for (row, text) in texts.iter().enumerate() {
        let Some(text) = text else {
            out.append_null();
            continue;
        };
        let element_type = element_types
            .is_valid(row)
            .then(|| element_types.value(row));
        let items = parse_text_array(text).ok_or_else(|| {
            datafusion::error::DataFusionError::External(Box::new(super::ExecError::InvalidText(
                format!("malformed array literal: \"{text}\""),
            )))
        })?;
        for item in items {
            match (item, element_type) {
                (Some(item), Some(type_name)) if !type_name.is_empty() => out
                    .values()
                    .append_value(super::text_casts::checked_number(&item, type_name)?),
                (item, _) => out.values().append_option(item),
            }
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}

/// Each list written as PostgreSQL writes an array: `{1,2}`, `{a,"b c",NULL}`, `{t,f}`,
/// `{{1,2},{3,4}}`; a NULL list stays NULL.
pub(super) fn array_literals(lists: &ArrayRef) -> Result<ArrayRef> {
    let mut out = StringBuilder::with_capacity(lists.len(), lists.len() * 16);
    let mut text = String::new();
    for row in 0..lists.len() {
        if lists.is_null(row) {
            out.append_null();
            continue;
        }
        text.clear();
        write_array(&list_value(lists, row), &mut text)?;
        out.append_value(&text);
    }
    Ok(Arc::new(out.finish()))
}

/// Each `int2vector` or `oidvector` as PostgreSQL prints it: `25 23`.
pub(super) fn vector_literals(lists: &ArrayRef) -> Result<ArrayRef> {
    let mut out = StringBuilder::with_capacity(lists.len(), lists.len() * 8);
    for row in 0..lists.len() {
        if lists.is_null(row) {
            out.append_null();
            continue;
        }
        let numbers = datafusion::arrow::compute::cast(&list_value(lists, row), &DataType::Utf8)?;
        let numbers: Vec<&str> = numbers.as_string::<i32>().iter().flatten().collect();
        out.append_value(numbers.join(" "));
    }
    Ok(Arc::new(out.finish()))
}

fn list_value(lists: &dyn Array, row: usize) -> ArrayRef {
    match lists.as_list_opt::<i32>() {
        Some(list) => list.value(row),
        None => lists.as_list::<i64>().value(row),
    }
}

fn write_array(elements: &ArrayRef, out: &mut String) -> Result<()> {
    out.push('{');
    let texts = ElementTexts::new(elements)?;
    for i in 0..elements.len() {
        if i > 0 {
            out.push(',');
        }
        if elements.is_null(i) {
            out.push_str("NULL");
            continue;
        }
        match elements.data_type() {
            // A nested array is written bare: its braces delimit it.
            DataType::List(_) | DataType::LargeList(_) => {
                write_array(&list_value(elements.as_ref(), i), out)?
            }
            _ => push_element(&texts.value(i), out),
        }
    }
    out.push('}');
    Ok(())
}

/// An element's text, double-quoted when PostgreSQL's reader would otherwise misread it.
fn push_element(text: &str, out: &mut String) {
    let needs_quotes = text.is_empty()
        || text.eq_ignore_ascii_case("null")
        || text
            .chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
    if !needs_quotes {
        out.push_str(text);
        return;
    }
    push_quoted(text, out);
}

/// `text` as a quoted array element: in double quotes, with `"` and `\` escaped.
pub(crate) fn push_quoted(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The text of each element as PostgreSQL's output function for its type writes it.
enum ElementTexts<'a> {
    Strings(&'a dyn Array),
    Booleans(&'a dyn Array),
    Float4(&'a dyn Array),
    Float8(&'a dyn Array),
    Timestamps(ArrayRef, Option<&'static str>),
    Nested,
    Other(ArrayFormatter<'a>),
}

impl<'a> ElementTexts<'a> {
    fn new(elements: &'a ArrayRef) -> Result<Self> {
        Ok(match elements.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                ElementTexts::Strings(elements.as_ref())
            }
            DataType::Boolean => ElementTexts::Booleans(elements.as_ref()),
            DataType::Float32 => ElementTexts::Float4(elements.as_ref()),
            DataType::Float64 => ElementTexts::Float8(elements.as_ref()),
            DataType::Timestamp(_, zone) => ElementTexts::Timestamps(
                datafusion::arrow::compute::cast(
                    elements,
                    &DataType::Timestamp(TimeUnit::Microsecond, None),
                )?,
                zone.as_ref().map(|_| "+00"),
            ),
            DataType::List(_) | DataType::LargeList(_) => ElementTexts::Nested,
            _ => ElementTexts::Other(ArrayFormatter::try_new(
                elements.as_ref(),
                &FormatOptions::default(),
            )?),
        })
    }

    fn value(&self, i: usize) -> String {
        use datafusion::arrow::datatypes::{Float32Type, Float64Type, TimestampMicrosecondType};
        match self {
            ElementTexts::Strings(array) => string_value(*array, i),
            ElementTexts::Booleans(array) => if array.as_boolean().value(i) {
                "t"
            } else {
                "f"
            }
            .to_owned(),
            ElementTexts::Float4(array) => {
                crate::model::float_text::float4_text(array.as_primitive::<Float32Type>().value(i))
            }
            ElementTexts::Float8(array) => {
                crate::model::float_text::float8_text(array.as_primitive::<Float64Type>().value(i))
            }
            ElementTexts::Timestamps(micros, zone) => micros
                .as_primitive::<TimestampMicrosecondType>()
                .value_as_datetime(i)
                .map(|at| super::text_casts::postgres_timestamp(at, *zone))
                .unwrap_or_default(),
            ElementTexts::Nested => String::new(),
            ElementTexts::Other(formatter) => formatter.value(i).to_string(),
        }
    }
}

fn string_value(array: &dyn Array, i: usize) -> String {
    match array.data_type() {
        DataType::LargeUtf8 => array.as_string::<i64>().value(i).to_owned(),
        DataType::Utf8View => array.as_string_view().value(i).to_owned(),
        _ => array.as_string::<i32>().value(i).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_dimensional_literals_read_as_rows() {
        let text = |s: &str| Some(s.to_owned());
        assert_eq!(
            parse_text_array_2d(r#"{{a,1},{"b c",NULL}}"#),
            Some(TextArray::Rows(vec![
                vec![text("a"), text("1")],
                vec![text("b c"), None]
            ]))
        );
        assert_eq!(
            parse_text_array_2d("{a,b}"),
            Some(TextArray::Flat(vec![text("a"), text("b")]))
        );
        assert_eq!(parse_text_array_2d("{{{a}}}"), Some(TextArray::Deeper));
        assert_eq!(parse_text_array_2d("{{a,b},{c}}"), None);
        assert_eq!(
            parse_text_array_2d(r#"{{"}",a}}"#),
            Some(TextArray::Rows(vec![vec![text("}"), text("a")]]))
        );
    }
    use datafusion::arrow::array::{
        BooleanBuilder, Int32Builder, ListBuilder, StringBuilder as Strings,
    };

    #[test]
    fn arrays_are_written_as_postgresql_writes_them() {
        let mut texts = ListBuilder::new(Strings::new());
        for item in [
            Some("a"),
            Some("b c"),
            None,
            Some(""),
            Some("NULL"),
            Some("q\"\\"),
        ] {
            texts.values().append_option(item);
        }
        texts.append(true);
        texts.append(false);
        let texts: ArrayRef = Arc::new(texts.finish());
        let written = array_literals(&texts).unwrap();
        let written = written.as_string::<i32>();
        assert_eq!(written.value(0), r#"{a,"b c",NULL,"","NULL","q\"\\"}"#);
        assert!(written.is_null(1));

        let mut flags = ListBuilder::new(BooleanBuilder::new());
        flags.values().append_value(true);
        flags.values().append_value(false);
        flags.append(true);
        let flags: ArrayRef = Arc::new(flags.finish());
        assert_eq!(
            array_literals(&flags).unwrap().as_string::<i32>().value(0),
            "{t,f}"
        );

        let mut nested = ListBuilder::new(ListBuilder::new(Int32Builder::new()));
        for row in [[1, 2], [3, 4]] {
            for v in row {
                nested.values().values().append_value(v);
            }
            nested.values().append(true);
        }
        nested.append(true);
        let nested: ArrayRef = Arc::new(nested.finish());
        assert_eq!(
            array_literals(&nested).unwrap().as_string::<i32>().value(0),
            "{{1,2},{3,4}}"
        );
    }

    #[test]
    fn written_arrays_read_back_as_the_same_elements() {
        let literal = r#"{a,"b c",NULL,"","NULL","q\"\\"}"#;
        let items = parse_text_array(literal).unwrap();
        assert_eq!(
            items,
            [
                Some("a".to_owned()),
                Some("b c".to_owned()),
                None,
                Some(String::new()),
                Some("NULL".to_owned()),
                Some("q\"\\".to_owned())
            ]
        );
    }
}
