//! PostgreSQL's `format(formatstr, args...)`: `%s` (the value as text, NULL as nothing), `%I`
//! (an identifier, quoted when it must be), `%L` (a literal, NULL as `NULL`) and `%%`, with
//! positions (`%2$s`), left-justification (`%-10s`) and widths from arguments (`%*s`,
//! `%*3$s`), and PostgreSQL's errors for what it refuses.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::ExecError;
use crate::model::float_text::{float4_text, float8_text};

pub fn format_function() -> ScalarUDF {
    ScalarUDF::new_from_impl(Format {
        signature: Signature::user_defined(Volatility::Stable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    /// The format is text; arguments become text by the casts PostgreSQL's output functions
    /// make (the plan's text-cast rule writes timestamps as PostgreSQL does), except booleans
    /// and floats, whose output here (`t`, `1e+20`) differs from what a cast to text gives.
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.is_empty() {
            return Err(DataFusionError::Plan(
                "function format() does not exist".into(),
            ));
        }
        Ok(args
            .iter()
            .enumerate()
            .map(|(i, t)| match t {
                DataType::Boolean | DataType::Float32 | DataType::Float64 if i > 0 => t.clone(),
                _ => DataType::Utf8,
            })
            .collect())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        super::functions::per_call(&args.args, |arrays| {
            let rows = arrays.first().map_or(0, |a| a.len());
            let mut out = StringBuilder::with_capacity(rows, rows * 16);
            for row in 0..rows {
                if arrays[0].is_null(row) {
                    out.append_null();
                    continue;
                }
                let template = arrays[0].as_string::<i32>().value(row);
                let values: Vec<Option<String>> =
                    arrays[1..].iter().map(|a| text_at(a, row)).collect();
                let formatted = render(template, &values)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                out.append_value(formatted);
            }
            Ok(std::sync::Arc::new(out.finish()) as ArrayRef)
        })
    }
}

/// An argument's text as PostgreSQL's output function writes it; `None` for NULL.
fn text_at(array: &ArrayRef, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Boolean => if array.as_boolean().value(row) {
            "t"
        } else {
            "f"
        }
        .into(),
        DataType::Float32 => float4_text(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => float8_text(array.as_primitive::<Float64Type>().value(row)),
        _ => array.as_string::<i32>().value(row).to_owned(),
    })
}

/// The widest field `format` pads to (PostgreSQL's longest declared character length).
const MAX_WIDTH: u64 = 10_485_760;

fn invalid(message: impl Into<String>) -> ExecError {
    ExecError::InvalidParameterValue(message.into())
}

fn unterminated() -> ExecError {
    invalid("unterminated format() type specifier")
}

/// `template` with its specifiers replaced by `args` (1-based in the template).
fn render(template: &str, args: &[Option<String>]) -> Result<String, ExecError> {
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::with_capacity(template.len());
    // The argument the next specifier without a position takes (0-based).
    let mut next = 0usize;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        if chars.get(i) == Some(&'%') {
            out.push('%');
            i += 1;
            continue;
        }
        // %[position$][-][width | * | *position$]type
        let mut position = None;
        if let Some((n, after)) = number(&chars, i)
            && chars.get(after) == Some(&'$')
        {
            position = Some(argument_index(n)?);
            i = after + 1;
        }
        let mut left = false;
        while chars.get(i) == Some(&'-') {
            left = true;
            i += 1;
        }
        let mut width: Option<i64> = None;
        if chars.get(i) == Some(&'*') {
            i += 1;
            let source = match number(&chars, i) {
                Some((n, after)) if chars.get(after) == Some(&'$') => {
                    i = after + 1;
                    argument_index(n)?
                }
                _ => {
                    let index = next;
                    next += 1;
                    index
                }
            };
            let value = args
                .get(source)
                .ok_or_else(|| invalid("too few arguments for format()"))?;
            width = Some(match value {
                None => 0,
                Some(text) => text.trim().parse().map_err(|_| {
                    invalid(format!("invalid input syntax for type integer: \"{text}\""))
                })?,
            });
        } else if let Some((n, after)) = number(&chars, i) {
            width = Some(n as i64);
            i = after;
        }
        let Some(&kind) = chars.get(i) else {
            return Err(unterminated());
        };
        i += 1;
        if !matches!(kind, 's' | 'I' | 'L') {
            return Err(invalid(format!(
                "unrecognized format() type specifier \"{kind}\""
            )));
        }
        let index = match position {
            Some(index) => index,
            None => next,
        };
        next = index + 1;
        let value = args
            .get(index)
            .ok_or_else(|| invalid("too few arguments for format()"))?;
        let text = match (kind, value) {
            ('s', None) => String::new(),
            ('s', Some(v)) => v.clone(),
            ('I', None) => {
                return Err(ExecError::NullValueNotAllowed(
                    "null values cannot be formatted as an SQL identifier".into(),
                ));
            }
            ('I', Some(v)) => quote_ident(v),
            (_, None) => "NULL".into(),
            (_, Some(v)) => quote_literal(v),
        };
        // A width from the template or an argument must not make one call allocate
        // without bound.
        if width.is_some_and(|w| w.unsigned_abs() > MAX_WIDTH) {
            return Err(invalid(format!(
                "format() field width cannot exceed {MAX_WIDTH}"
            )));
        }
        let (left, width) = match width {
            Some(w) if w < 0 => (true, w.unsigned_abs() as usize),
            Some(w) => (left, w as usize),
            None => (left, 0),
        };
        let pad = width.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&text);
        }
    }
    Ok(out)
}

/// The decimal number starting at `at`, and where it ends.
fn number(chars: &[char], at: usize) -> Option<(usize, usize)> {
    let end = chars[at.min(chars.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count()
        + at;
    if end == at {
        return None;
    }
    let digits: String = chars[at..end].iter().collect();
    digits.parse().ok().map(|n| (n, end))
}

fn argument_index(n: usize) -> Result<usize, ExecError> {
    if n == 0 {
        return Err(invalid(
            "format specifies argument 0, but arguments are numbered from 1",
        ));
    }
    Ok(n - 1)
}

/// PostgreSQL's `quote_ident`: unquoted only when it reads back as the same name (a plain
/// lower-case name that is not a keyword PostgreSQL reserves).
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !RESERVED_KEYWORDS.contains(&name) {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// PostgreSQL's `quote_literal`: quotes doubled, and with backslashes the `E''` form.
pub(super) fn quote_literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// The keywords PostgreSQL 15 quotes as identifiers: its reserved ones, and the
/// non-reserved ones that cannot be function or type names (`ScanKeywords` categories other
/// than UNRESERVED_KEYWORD).
const RESERVED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn args(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_owned)).collect()
    }

    #[test]
    fn specifiers_take_arguments_in_turn_or_by_position() {
        assert_eq!(
            render("%2$s %1$s %s", &args(&[Some("a"), Some("b"), Some("c")])).unwrap(),
            "b a b"
        );
        assert_eq!(
            render(
                "%s|%I|%L|%L|%%",
                &args(&[Some("t"), Some("Foo bar"), Some("it's"), None])
            )
            .unwrap(),
            "t|\"Foo bar\"|'it''s'|NULL|%"
        );
        assert_eq!(render("%L", &args(&[Some("a\\b")])).unwrap(), "E'a\\\\b'");
        assert_eq!(
            render(
                "%I %I %I",
                &args(&[Some("select"), Some("abc_1"), Some("Ab")])
            )
            .unwrap(),
            "\"select\" abc_1 \"Ab\""
        );
    }

    #[test]
    fn widths_pad_and_negative_widths_justify_left() {
        assert_eq!(
            render(
                "%-5s|%5s|%*s",
                &args(&[Some("a"), Some("b"), Some("3"), Some("c")])
            )
            .unwrap(),
            "a    |    b|  c"
        );
        assert_eq!(
            render(
                "%*s|%-*s|",
                &args(&[Some("-4"), Some("x"), Some("2"), Some("y")])
            )
            .unwrap(),
            "x   |y |"
        );
    }

    #[test]
    fn malformed_templates_fail_as_postgresql_fails_them() {
        let message = |t: &str, a: &[Option<&str>]| render(t, &args(a)).unwrap_err().to_string();
        assert_eq!(message("%s", &[]), "too few arguments for format()");
        assert_eq!(
            message("%x", &[Some("1")]),
            "unrecognized format() type specifier \"x\""
        );
        assert_eq!(
            message("%", &[Some("1")]),
            "unterminated format() type specifier"
        );
        assert_eq!(
            message("%I", &[None]),
            "null values cannot be formatted as an SQL identifier"
        );
        assert_eq!(
            message("%*s", &[Some("-2000000000"), Some("x")]),
            "format() field width cannot exceed 10485760"
        );
        assert_eq!(
            message("%0$s", &[Some("1")]),
            "format specifies argument 0, but arguments are numbered from 1"
        );
    }
}
