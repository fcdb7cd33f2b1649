//! JSON documents as PostgreSQL prints them: the parsed tree (each value remembers where it
//! stood in the text, so a `json` value's parts print as they were written), `jsonb`'s
//! canonical form (keys unique and ordered by length then bytes, numbers as `numeric` prints
//! them), and the navigation, containment and existence tests the operators use.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write;
use std::ops::Range;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    /// Where the value stood in the text it was parsed from (empty for built values).
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's text: as written in `json`, as `numeric` prints it in `jsonb`.
    Number(String),
    String(String),
    Array(Vec<Node>),
    /// Members in order; `json` keeps duplicates, `jsonb` has each key once.
    Object(Vec<(String, Node)>),
}

impl Node {
    pub fn built(value: Value) -> Node {
        Node { value, span: 0..0 }
    }

    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

/// A number `jsonb` cannot hold: more digits before or after the point than `numeric` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumericOverflow;

/// `numeric`'s limits: digits before and after the decimal point.
const NUMERIC_MAX_INTEGER_DIGITS: i64 = 131_072;
const NUMERIC_MAX_SCALE: i64 = 16_383;

/// `jsonb`'s form of a parsed document: each object's keys once (the last wins), ordered by
/// length and then bytes, and numbers as `numeric` prints them.
pub fn canonical(node: Node) -> Result<Node, NumericOverflow> {
    let value = match node.value {
        Value::Number(text) => Value::Number(numeric_text(&text).ok_or(NumericOverflow)?),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(canonical).collect::<Result<_, _>>()?)
        }
        Value::Object(members) => {
            let mut unique: Vec<(String, Node)> = Vec::with_capacity(members.len());
            let mut position: HashMap<String, usize> = HashMap::with_capacity(members.len());
            for (key, member) in members {
                let member = canonical(member)?;
                match position.get(&key) {
                    Some(&at) => unique[at].1 = member,
                    None => {
                        position.insert(key.clone(), unique.len());
                        unique.push((key, member));
                    }
                }
            }
            unique.sort_by(|(a, _), (b, _)| key_order(a, b));
            Value::Object(unique)
        }
        other => other,
    };
    Ok(Node::built(value))
}

fn key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// A JSON number as PostgreSQL's `numeric` prints it: no exponent, no sign on zero. None when
/// `numeric` cannot hold it (`1e999999`), which also bounds the digits written out.
pub fn numeric_text(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let significant_int = int_part.trim_start_matches('0').len() as i64;
    if significant_int.saturating_add(exponent) > NUMERIC_MAX_INTEGER_DIGITS
        || (frac_part.len() as i64).saturating_sub(exponent) > NUMERIC_MAX_SCALE
    {
        return None;
    }
    let mut digits: String = format!("{int_part}{frac_part}");
    let mut scale = frac_part.len() as i64 - exponent;
    if scale < 0 {
        digits.extend(std::iter::repeat_n('0', (-scale) as usize));
        scale = 0;
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        digits = format!("{}{digits}", "0".repeat(scale + 1 - digits.len()));
    }
    let (int_digits, frac_digits) = digits.split_at(digits.len() - scale);
    let int_digits = int_digits.trim_start_matches('0');
    let int_digits = if int_digits.is_empty() {
        "0"
    } else {
        int_digits
    };
    let is_zero = int_digits == "0" && frac_digits.bytes().all(|b| b == b'0');
    let mut out = String::new();
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(int_digits);
    if !frac_digits.is_empty() {
        out.push('.');
        out.push_str(frac_digits);
    }
    Some(out)
}

/// Two numbers' values are equal (`1.0` and `1` are, as `numeric` compares them).
fn same_number(a: &str, b: &str) -> bool {
    fn significant(text: &str) -> String {
        let canonical = numeric_text(text).unwrap_or_else(|| text.to_owned());
        match canonical.split_once('.') {
            Some((int, frac)) => {
                let frac = frac.trim_end_matches('0');
                if frac.is_empty() {
                    int.to_owned()
                } else {
                    format!("{int}.{frac}")
                }
            }
            None => canonical,
        }
    }
    significant(a) == significant(b)
}

/// `jsonb`'s text output: `{"a": 1, "b": [1, 2]}`.
pub fn print_jsonb(node: &Node) -> String {
    let mut out = String::new();
    write_value(&mut out, node, &Style::Jsonb);
    out
}

/// How a value built by a `json` function prints: `json_build_object`'s `{"a" : 1}` and
/// the `[1, 2]` of arrays.
pub fn print_json_built(node: &Node) -> String {
    let mut out = String::new();
    write_value(&mut out, node, &Style::JsonBuilt);
    out
}

/// A part of a `json` document as it was written in `source`.
pub fn print_json_part<'a>(node: &Node, source: &'a str) -> std::borrow::Cow<'a, str> {
    match source.get(node.span.clone()) {
        Some(text) if !node.span.is_empty() => std::borrow::Cow::Borrowed(text),
        _ => std::borrow::Cow::Owned(print_json_built(node)),
    }
}

/// `jsonb_pretty`'s layout: four spaces per level, one member per line, and empty arrays
/// and objects over two lines too.
pub fn print_pretty(node: &Node) -> String {
    let mut out = String::new();
    write_pretty(&mut out, node, 0);
    out
}

enum Style {
    Jsonb,
    JsonBuilt,
}

fn write_value(out: &mut String, node: &Node, style: &Style) {
    match &node.value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, style);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, key);
                out.push_str(match style {
                    Style::Jsonb => ": ",
                    Style::JsonBuilt => " : ",
                });
                write_value(out, member, style);
            }
            out.push('}');
        }
    }
}

fn write_pretty(out: &mut String, node: &Node, level: usize) {
    let indent = |out: &mut String, level: usize| out.push_str(&"    ".repeat(level));
    match &node.value {
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(out, level + 1);
                write_pretty(out, item, level + 1);
            }
            if !items.is_empty() {
                out.push('\n');
            }
            indent(out, level);
            out.push(']');
        }
        Value::Object(members) => {
            out.push_str("{\n");
            for (i, (key, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(out, level + 1);
                write_string(out, key);
                out.push_str(": ");
                write_pretty(out, member, level + 1);
            }
            if !members.is_empty() {
                out.push('\n');
            }
            indent(out, level);
            out.push('}');
        }
        _ => write_value(out, node, &Style::Jsonb),
    }
}

/// A JSON string literal as PostgreSQL escapes it.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The member `key` of an object (the last of that name, as PostgreSQL reads `json`).
pub fn field<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.value {
        Value::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

/// Element `index` of an array; a negative index counts from the end.
pub fn element(node: &Node, index: i64) -> Option<&Node> {
    match &node.value {
        Value::Array(items) => {
            let at = if index < 0 {
                items.len().checked_sub(index.unsigned_abs() as usize)?
            } else {
                usize::try_from(index).ok()?
            };
            items.get(at)
        }
        _ => None,
    }
}

/// The value at `path` (`#>`): object keys, and array indexes written as integers.
pub fn at_path<'n>(node: &'n Node, path: &[Option<String>]) -> Option<&'n Node> {
    path.iter().try_fold(node, |current, step| {
        let step = step.as_deref()?;
        match &current.value {
            Value::Object(_) => field(current, step),
            Value::Array(_) => element(current, step.trim().parse().ok()?),
            _ => None,
        }
    })
}

/// A value as `->>` and `#>>` give it: strings unquoted, JSON null as SQL NULL, anything else
/// as its text.
pub fn as_text(node: &Node, print: impl Fn(&Node) -> String) -> Option<String> {
    match &node.value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        _ => Some(print(node)),
    }
}

/// `@>`: whether `container` contains `contained`, as PostgreSQL defines it for `jsonb`.
pub fn contains(container: &Node, contained: &Node) -> bool {
    contains_at(container, contained, true)
}

fn contains_at(container: &Node, contained: &Node, top: bool) -> bool {
    match (&container.value, &contained.value) {
        (Value::Object(members), Value::Object(wanted)) => wanted.iter().all(|(key, value)| {
            members
                .iter()
                .find(|(k, _)| k == key)
                .is_some_and(|(_, have)| contains_at(have, value, false))
        }),
        (Value::Array(items), Value::Array(wanted)) => wanted.iter().all(|want| {
            items.iter().any(|have| match (&have.value, &want.value) {
                (Value::Array(_) | Value::Object(_), _) => contains_at(have, want, false),
                (_, Value::Array(_) | Value::Object(_)) => false,
                _ => scalar_equal(have, want),
            })
        }),
        // A top-level array contains a scalar it holds.
        (Value::Array(items), _) if top && !matches!(contained.value, Value::Object(_)) => {
            items.iter().any(|have| scalar_equal(have, contained))
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => scalar_equal(container, contained),
    }
}

fn scalar_equal(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Number(x), Value::Number(y)) => same_number(x, y),
        (x, y) => x == y,
    }
}

/// `?`: whether `key` is a key of the object, a string element of the array, or the string.
pub fn exists(node: &Node, key: &str) -> bool {
    match &node.value {
        Value::Object(members) => members.iter().any(|(k, _)| k == key),
        Value::Array(items) => items
            .iter()
            .any(|item| matches!(&item.value, Value::String(s) if s == key)),
        Value::String(s) => s == key,
        _ => false,
    }
}

/// Objects without their null-valued members, at every depth (`jsonb_strip_nulls`).
pub fn strip_nulls(node: Node) -> Node {
    let value = match node.value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .filter(|(_, v)| v.value != Value::Null)
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    };
    Node::built(value)
}

/// `jsonb_set`: `target` with the value at `path` replaced by `new` (added when the last
/// step is missing and `create_missing`). A path through a scalar or a missing member
/// changes nothing.
pub fn set_path(target: &mut Node, path: &[String], new: Node, create_missing: bool) {
    let Some((step, rest)) = path.split_first() else {
        return;
    };
    target.span = 0..0;
    match &mut target.value {
        Value::Object(members) => match members.iter_mut().find(|(k, _)| k == step) {
            Some((_, member)) if rest.is_empty() => *member = new,
            Some((_, member)) => set_path(member, rest, new, create_missing),
            None if rest.is_empty() && create_missing => {
                members.push((step.clone(), new));
                members.sort_by(|(a, _), (b, _)| key_order(a, b));
            }
            None => {}
        },
        Value::Array(items) => {
            let Ok(index) = step.trim().parse::<i64>() else {
                return;
            };
            let len = items.len() as i64;
            let at = if index < 0 { len + index } else { index };
            if (0..len).contains(&at) {
                let item = &mut items[at as usize];
                if rest.is_empty() {
                    *item = new;
                } else {
                    set_path(item, rest, new, create_missing);
                }
            } else if rest.is_empty() && create_missing {
                // Past either end, the new value is added at that end.
                if at < 0 {
                    items.insert(0, new);
                } else {
                    items.push(new);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::parser::{MAX_DEPTH, parse};
    use super::*;

    fn jsonb(text: &str) -> String {
        print_jsonb(&canonical(parse(text).unwrap()).unwrap())
    }

    #[test]
    fn jsonb_orders_keys_by_length_then_bytes_and_keeps_the_last_duplicate() {
        assert_eq!(
            jsonb(r#"{"bb": 1, "a": [1,2,{"z":null}], "c": true, "a": "x"}"#),
            r#"{"a": "x", "c": true, "bb": 1}"#
        );
        assert_eq!(jsonb("[ ]"), "[]");
        assert_eq!(jsonb(r#""\u00e9\n""#), r#""é\n""#);
    }

    #[test]
    fn jsonb_numbers_print_as_numeric() {
        for (input, expected) in [
            ("1e2", "100"),
            ("1.5e1", "15"),
            ("12.30e1", "123.0"),
            ("1E-2", "0.01"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("0.10", "0.10"),
            ("-12", "-12"),
        ] {
            assert_eq!(numeric_text(input).as_deref(), Some(expected), "{input}");
        }
    }

    #[test]
    fn numbers_numeric_cannot_hold_are_refused_without_writing_them_out() {
        assert_eq!(numeric_text("1e999999999"), None);
        assert_eq!(numeric_text("1e-999999999"), None);
        assert_eq!(numeric_text("1e99999999999999999999"), None);
        assert_eq!(
            canonical(parse("[1, 1e200000]").unwrap()),
            Err(NumericOverflow)
        );
        assert_eq!(numeric_text("1e1000").map(|t| t.len()), Some(1001));
    }

    #[test]
    fn an_object_with_many_keys_is_made_canonical_in_near_linear_time() {
        let keys: Vec<String> = (0..200_000).map(|i| format!("\"k{i}\": {i}")).collect();
        let text = format!("{{{}, \"k7\": \"last\"}}", keys.join(", "));
        let started = std::time::Instant::now();
        let doc = canonical(parse(&text).unwrap()).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert_eq!(
            field(&doc, "k7").map(|n| n.value.clone()),
            Some(Value::String("last".into()))
        );
    }

    #[test]
    fn bad_json_says_which_token() {
        assert_eq!(
            parse("{\"a\": tru}").unwrap_err().0,
            "Token \"tru\" is invalid."
        );
        assert_eq!(
            parse("[1, 2").unwrap_err().0,
            "The input string ended unexpectedly."
        );
        assert!(parse("01").is_err());
        assert!(parse("1 2").is_err());
    }

    #[test]
    fn nesting_past_the_limit_is_refused_on_a_server_sized_stack() {
        // Server threads have 64 MiB stacks (main.rs); the test thread's default is smaller.
        let deep = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(|| {
                let nested = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
                let doc = parse(&nested).map(|d| print_jsonb(&canonical(d).unwrap()));
                (doc, parse(&"[".repeat(MAX_DEPTH + 5)).is_err())
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(deep.0.is_ok_and(|text| text.len() == 2 * MAX_DEPTH + 1));
        assert!(deep.1);
    }

    #[test]
    fn json_parts_print_as_written() {
        let source = r#"{"a": [1,  2], "a": {"x" :1}}"#;
        let doc = parse(source).unwrap();
        assert_eq!(
            print_json_part(field(&doc, "a").unwrap(), source),
            r#"{"x" :1}"#
        );
        let array = parse("[1,  [2, 3]]").unwrap();
        assert_eq!(
            print_json_part(element(&array, -1).unwrap(), "[1,  [2, 3]]"),
            "[2, 3]"
        );
    }

    #[test]
    fn containment_follows_postgresql() {
        let c = |a: &str, b: &str| contains(&parse(a).unwrap(), &parse(b).unwrap());
        assert!(c(r#"{"a": 1, "b": {"c": [1, 2]}}"#, r#"{"b": {"c": [2]}}"#));
        assert!(!c(r#"{"a": 1}"#, r#"{"a": 2}"#));
        assert!(c("[1, 2, [3, 4]]", "[[3]]"));
        assert!(c("[1, 2]", "1"));
        assert!(!c("[[1, 2]]", "1"));
        assert!(c(r#"{"n": 1.0}"#, r#"{"n": 1}"#));
        assert!(!c("1", "[1]"));
    }

    #[test]
    fn set_path_replaces_adds_and_leaves_missing_paths_alone() {
        let mut doc = canonical(parse(r#"{"a": [1, 2], "b": {"c": 1}}"#).unwrap()).unwrap();
        set_path(
            &mut doc,
            &["b".into(), "d".into()],
            parse("5").unwrap(),
            true,
        );
        set_path(
            &mut doc,
            &["a".into(), "-1".into()],
            parse("9").unwrap(),
            true,
        );
        set_path(
            &mut doc,
            &["x".into(), "y".into()],
            parse("0").unwrap(),
            true,
        );
        assert_eq!(print_jsonb(&doc), r#"{"a": [1, 9], "b": {"c": 1, "d": 5}}"#);
    }
}
