//! PostgreSQL's regular expression functions: `regexp_matches`, `regexp_split_to_array` and
//! `regexp_split_to_table`, `regexp_substr`, `regexp_instr`, `regexp_count` and `regexp_like`,
//! with PostgreSQL's arguments (a start position, the Nth match, a subexpression) and flags.
//!
//! Patterns compile with Rust's `regex`, whose syntax covers the common part of PostgreSQL's
//! advanced regular expressions. The flags are PostgreSQL's: `.` matches a newline unless `n`
//! (newline-sensitive) or `p` is given, `i` ignores case, `x` allows spaces and comments, `q`
//! takes the pattern literally, and `g` (for `regexp_matches` only) returns every match.
//! DataFusion's functions of some of these names take Rust's flags and another argument list.
//! Matching follows PostgreSQL's `setup_regexp_matches`: after an empty match the search moves
//! one character on, and a split ignores empty matches at either end of the string or right
//! after another match.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, ListBuilder, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type};
use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use regex::{Regex, RegexBuilder};

use super::ExecError;

mod replace;

/// The functions, registered over DataFusion's of the same names.
pub fn register(ctx: &SessionContext) {
    for kind in [
        Kind::Matches,
        Kind::SplitToArray,
        Kind::SplitToTable,
        Kind::Substr,
        Kind::Instr,
        Kind::Count,
        Kind::Like,
        Kind::Replace,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(RegexpFunction {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Matches,
    SplitToArray,
    /// The set-returning form: an array the planner spreads into rows (`sql::set_returning`).
    SplitToTable,
    Substr,
    Instr,
    Count,
    Like,
    Replace,
}

/// What an argument is, by position.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    Text,
    Integer,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Matches => "regexp_matches",
            Kind::SplitToArray => "regexp_split_to_array",
            Kind::SplitToTable => "regexp_split_to_table",
            Kind::Substr => "regexp_substr",
            Kind::Instr => "regexp_instr",
            Kind::Count => "regexp_count",
            Kind::Like => "regexp_like",
            Kind::Replace => "regexp_replace",
        }
    }

    /// The arguments of the longest form a call with a `fourth` argument of that type takes
    /// (`regexp_replace` has two: flags fourth, or a start position, N, then flags); a call may
    /// leave trailing ones out, down to two (three for `regexp_replace`).
    fn arguments(self, fourth: Option<&DataType>) -> &'static [Arg] {
        use Arg::{Integer as I, Text as T};
        match self {
            Kind::Matches | Kind::SplitToArray | Kind::SplitToTable | Kind::Like => &[T, T, T],
            Kind::Substr => &[T, T, I, I, T, I],
            Kind::Instr => &[T, T, I, I, I, T, I],
            Kind::Count => &[T, T, I, T],
            Kind::Replace if fourth.is_some_and(|t| t.is_integer()) => &[T, T, T, I, I, T],
            Kind::Replace => &[T, T, T, T],
        }
    }

    /// Where the flags are among `arguments`.
    fn flags_at(self, arguments: &[Arg]) -> usize {
        match self {
            Kind::Matches | Kind::SplitToArray | Kind::SplitToTable | Kind::Like => 2,
            Kind::Substr => 4,
            Kind::Instr => 5,
            Kind::Count => 3,
            Kind::Replace => arguments.len() - 1,
        }
    }

    fn fewest_arguments(self) -> usize {
        if self == Kind::Replace { 3 } else { 2 }
    }

    fn return_type(self) -> DataType {
        let text_list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
        match self {
            Kind::Matches => DataType::List(Arc::new(Field::new_list_field(text_list, true))),
            Kind::SplitToArray | Kind::SplitToTable => text_list,
            Kind::Substr | Kind::Replace => DataType::Utf8,
            Kind::Instr | Kind::Count => DataType::Int32,
            Kind::Like => DataType::Boolean,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpFunction {
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for RegexpFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let arguments = self.kind.arguments(arg_types.get(3));
        let fewest = self.kind.fewest_arguments();
        if arg_types.len() < fewest || arg_types.len() > arguments.len() {
            return plan_err!(
                "function {} takes {fewest} to {} arguments",
                self.name(),
                arguments.len()
            );
        }
        arg_types
            .iter()
            .zip(arguments)
            .map(|(given, wanted)| match (wanted, given) {
                (Arg::Text, t) if is_text(t) => Ok(DataType::Utf8),
                (Arg::Integer, t) if t.is_integer() || *t == DataType::Null => Ok(DataType::Int64),
                _ => plan_err!("function {} does not accept {given}", self.name()),
            })
            .collect()
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.kind.return_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        super::functions::per_call(&args.args, |arrays| evaluate(self.kind, arrays))
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

/// One row's arguments, read by position; None where the call left one out.
struct Row<'a> {
    texts: Vec<Option<&'a str>>,
    integers: Vec<Option<i64>>,
}

fn evaluate(kind: Kind, arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let arguments = kind.arguments(arrays.get(3).map(|a| a.data_type()));
    let mut columns = Vec::with_capacity(arrays.len());
    for (array, arg) in arrays.iter().zip(arguments) {
        columns.push(match arg {
            Arg::Text => cast(array, &DataType::Utf8)?,
            Arg::Integer => cast(array, &DataType::Int64)?,
        });
    }
    let rows = arrays.first().map_or(0, |a| a.len());
    let mut patterns = PatternCache::default();
    let mut out = Output::new(kind, rows);
    for row in 0..rows {
        let mut args = Row {
            texts: vec![None; arguments.len()],
            integers: vec![None; arguments.len()],
        };
        let mut null = false;
        for (i, column) in columns.iter().enumerate() {
            if column.is_null(row) {
                null = true;
                continue;
            }
            match arguments[i] {
                Arg::Text => args.texts[i] = Some(column.as_string::<i32>().value(row)),
                Arg::Integer => {
                    args.integers[i] = Some(column.as_primitive::<Int64Type>().value(row))
                }
            }
        }
        // PostgreSQL's functions are strict: any NULL argument makes a NULL result.
        if null {
            out.null();
            continue;
        }
        let (Some(text), Some(pattern)) = (args.texts[0], args.texts[1]) else {
            out.null();
            continue;
        };
        let flags = args.texts[kind.flags_at(arguments)].unwrap_or("");
        let compiled = patterns.get(pattern, flags, kind)?;
        out.push(kind, text, compiled, &args)?;
    }
    Ok(out.finish())
}

/// A compiled pattern and whether its flags asked for every match.
struct Pattern {
    regex: Regex,
    global: bool,
}

#[derive(Default)]
struct PatternCache {
    compiled: HashMap<(String, String), Pattern>,
}

impl PatternCache {
    fn get(&mut self, pattern: &str, flags: &str, kind: Kind) -> Result<&Pattern> {
        let key = (pattern.to_owned(), flags.to_owned());
        if !self.compiled.contains_key(&key) {
            let compiled = compile(pattern, flags, kind)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            self.compiled.insert(key.clone(), compiled);
        }
        Ok(&self.compiled[&key])
    }
}

/// `pattern` under PostgreSQL's `flags`.
fn compile(pattern: &str, flags: &str, kind: Kind) -> Result<Pattern, ExecError> {
    let mut case_insensitive = false;
    let mut dot_matches_newline = true;
    let mut multi_line = false;
    let mut expanded = false;
    let mut literal = false;
    let mut global = false;
    for flag in flags.chars() {
        match flag {
            'g' if matches!(kind, Kind::Matches | Kind::Replace) => global = true,
            'g' => {
                return Err(ExecError::InvalidParameterValue(format!(
                    "{}() does not support the \"global\" option",
                    kind.name()
                )));
            }
            'i' => case_insensitive = true,
            'c' => case_insensitive = false,
            'n' | 'm' => (dot_matches_newline, multi_line) = (false, true),
            's' => (dot_matches_newline, multi_line) = (true, false),
            'p' => (dot_matches_newline, multi_line) = (false, false),
            'w' => (dot_matches_newline, multi_line) = (true, true),
            'x' => expanded = true,
            't' => expanded = false,
            'q' => literal = true,
            'e' => {}
            other => {
                return Err(ExecError::InvalidParameterValue(format!(
                    "invalid regular expression option: \"{other}\""
                )));
            }
        }
    }
    let source = if literal {
        regex::escape(pattern)
    } else {
        pattern.to_owned()
    };
    let regex = RegexBuilder::new(&source)
        .case_insensitive(case_insensitive)
        .dot_matches_new_line(dot_matches_newline)
        .multi_line(multi_line)
        .ignore_whitespace(expanded)
        .build()
        .map_err(|e| {
            let reason = match e {
                regex::Error::Syntax(text) => text.lines().last().unwrap_or_default().to_owned(),
                other => other.to_string(),
            };
            ExecError::InvalidRegularExpression(format!("invalid regular expression: {reason}"))
        })?;
    Ok(Pattern { regex, global })
}

/// The matches of `regex` in `text` from byte `start` on, as PostgreSQL finds them: after an
/// empty match the search resumes one character later. With `skip_degenerate`, empty matches
/// at either end of the text or right after the previous match are left out (as a split does).
fn matches_from<'t>(
    regex: &'t Regex,
    text: &'t str,
    start: usize,
    skip_degenerate: bool,
) -> impl Iterator<Item = regex::Captures<'t>> + 't {
    let mut search = Some(start);
    let mut previous_end = start;
    std::iter::from_fn(move || {
        loop {
            let at = search?;
            let Some(captures) = regex.captures_at(text, at) else {
                search = None;
                return None;
            };
            let whole = captures.get(0).expect("group 0 is the match");
            search = if whole.is_empty() {
                text[whole.end()..]
                    .chars()
                    .next()
                    .map(|c| whole.end() + c.len_utf8())
            } else {
                Some(whole.end())
            };
            let degenerate = whole.start() >= text.len() || whole.end() <= previous_end;
            previous_end = whole.end();
            if skip_degenerate && degenerate {
                continue;
            }
            return Some(captures);
        }
    })
}

/// The byte offset of 1-based character position `start`; None when it is past the end.
fn byte_offset(text: &str, start: i64) -> Option<usize> {
    let index = usize::try_from(start.checked_sub(1)?).ok()?;
    text.char_indices()
        .map(|(offset, _)| offset)
        .chain(std::iter::once(text.len()))
        .nth(index)
}

fn character_position(text: &str, byte: usize) -> i32 {
    i32::try_from(text[..byte].chars().count() + 1).unwrap_or(i32::MAX)
}

fn invalid(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(ExecError::InvalidParameterValue(message)))
}

/// The start position argument, checked as PostgreSQL checks it (1 or more).
fn start_of(args: &Row, at: usize) -> Result<i64> {
    match args.integers.get(at).copied().flatten() {
        None => Ok(1),
        Some(start) if start >= 1 => Ok(start),
        Some(start) => Err(invalid(format!(
            "invalid value for parameter \"start\": {start}"
        ))),
    }
}

/// A positive count argument (`N`), checked as PostgreSQL checks it.
fn positive(args: &Row, at: usize, name: &str) -> Result<i64> {
    match args.integers.get(at).copied().flatten() {
        None => Ok(1),
        Some(n) if n >= 1 => Ok(n),
        Some(n) => Err(invalid(format!(
            "invalid value for parameter \"{name}\": {n}"
        ))),
    }
}

fn subexpression(args: &Row, at: usize) -> Result<usize> {
    match args.integers.get(at).copied().flatten() {
        None => Ok(0),
        Some(n) => usize::try_from(n)
            .map_err(|_| invalid(format!("invalid value for parameter \"subexpr\": {n}"))),
    }
}

enum Output {
    Matches(ListBuilder<ListBuilder<StringBuilder>>),
    Pieces(ListBuilder<StringBuilder>),
    Text(StringBuilder),
    Integer(Int32Builder),
    Boolean(BooleanBuilder),
}

impl Output {
    fn new(kind: Kind, rows: usize) -> Output {
        match kind {
            Kind::Matches => Output::Matches(ListBuilder::with_capacity(
                ListBuilder::new(StringBuilder::new()),
                rows,
            )),
            Kind::SplitToArray | Kind::SplitToTable => {
                Output::Pieces(ListBuilder::with_capacity(StringBuilder::new(), rows))
            }
            Kind::Substr | Kind::Replace => {
                Output::Text(StringBuilder::with_capacity(rows, rows * 8))
            }
            Kind::Instr | Kind::Count => Output::Integer(Int32Builder::with_capacity(rows)),
            Kind::Like => Output::Boolean(BooleanBuilder::with_capacity(rows)),
        }
    }

    fn null(&mut self) {
        match self {
            Output::Matches(b) => b.append_null(),
            Output::Pieces(b) => b.append_null(),
            Output::Text(b) => b.append_null(),
            Output::Integer(b) => b.append_null(),
            Output::Boolean(b) => b.append_null(),
        }
    }

    fn push(&mut self, kind: Kind, text: &str, pattern: &Pattern, args: &Row) -> Result<()> {
        let regex = &pattern.regex;
        match self {
            Output::Matches(builder) => {
                let groups = regex.captures_len();
                let found = matches_from(regex, text, 0, false).take(if pattern.global {
                    usize::MAX
                } else {
                    1
                });
                for captures in found {
                    // With parenthesized parts, their texts; without, the whole match.
                    let parts = if groups > 1 { 1..groups } else { 0..1 };
                    let row = builder.values();
                    for group in parts {
                        row.values()
                            .append_option(captures.get(group).map(|m| m.as_str()));
                    }
                    row.append(true);
                }
                builder.append(true);
            }
            Output::Pieces(builder) => {
                let mut piece_start = 0;
                for captures in matches_from(regex, text, 0, true) {
                    let whole = captures.get(0).expect("group 0 is the match");
                    builder
                        .values()
                        .append_value(&text[piece_start..whole.start()]);
                    piece_start = whole.end();
                }
                builder.values().append_value(&text[piece_start..]);
                builder.append(true);
            }
            Output::Text(builder) if kind == Kind::Replace => {
                builder.append_value(replace::replaced(text, pattern, args)?);
            }
            Output::Text(builder) => {
                let start = start_of(args, 2)?;
                let n = positive(args, 3, "n")?;
                let group = subexpression(args, 5)?;
                let found = byte_offset(text, start)
                    .and_then(|from| nth_match(regex, text, from, n))
                    .and_then(|captures| captures.get(group).map(|m| m.as_str().to_owned()));
                builder.append_option(found);
            }
            Output::Integer(builder) if kind == Kind::Count => {
                let start = start_of(args, 2)?;
                let count = byte_offset(text, start)
                    .map_or(0, |from| matches_from(regex, text, from, false).count());
                builder.append_value(i32::try_from(count).unwrap_or(i32::MAX));
            }
            Output::Integer(builder) => {
                let start = start_of(args, 2)?;
                let n = positive(args, 3, "n")?;
                let end_option = match args.integers[4] {
                    None | Some(0) => false,
                    Some(1) => true,
                    Some(other) => {
                        return Err(invalid(format!(
                            "invalid value for parameter \"endoption\": {other}"
                        )));
                    }
                };
                let group = subexpression(args, 6)?;
                let position = byte_offset(text, start)
                    .and_then(|from| nth_match(regex, text, from, n))
                    .and_then(|captures| captures.get(group))
                    .map_or(0, |m| {
                        character_position(text, if end_option { m.end() } else { m.start() })
                    });
                builder.append_value(position);
            }
            Output::Boolean(builder) => builder.append_value(regex.is_match(text)),
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Output::Matches(mut b) => Arc::new(b.finish()),
            Output::Pieces(mut b) => Arc::new(b.finish()),
            Output::Text(mut b) => Arc::new(b.finish()),
            Output::Integer(mut b) => Arc::new(b.finish()),
            Output::Boolean(mut b) => Arc::new(b.finish()),
        }
    }
}

fn nth_match<'t>(
    regex: &'t Regex,
    text: &'t str,
    from: usize,
    n: i64,
) -> Option<regex::Captures<'t>> {
    matches_from(regex, text, from, false).nth(usize::try_from(n - 1).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str, pattern: &str) -> Vec<String> {
        let compiled = compile(pattern, "", Kind::SplitToArray).unwrap();
        let mut out = Output::new(Kind::SplitToArray, 1);
        let args = Row {
            texts: vec![],
            integers: vec![],
        };
        out.push(Kind::SplitToArray, text, &compiled, &args)
            .unwrap();
        let array = out.finish();
        let list = array.as_list::<i32>().value(0);
        list.as_string::<i32>()
            .iter()
            .map(|s| s.unwrap().to_owned())
            .collect()
    }

    #[test]
    fn splits_ignore_empty_matches_at_the_ends_and_after_a_match() {
        assert_eq!(split("the quick  fox", r"\s+"), ["the", "quick", "fox"]);
        assert_eq!(split("abc", ""), ["a", "b", "c"]);
        assert_eq!(split("abc", "x*"), ["a", "b", "c"]);
        assert_eq!(split(",a,", ","), ["", "a", ""]);
        assert_eq!(split("", ","), [""]);
    }

    #[test]
    fn flags_are_postgresqls() {
        let dot = |flags| {
            compile("a.b", flags, Kind::Like)
                .unwrap()
                .regex
                .is_match("a\nb")
        };
        assert!(dot(""));
        assert!(!dot("n"));
        assert!(compile("A", "i", Kind::Like).unwrap().regex.is_match("a"));
        assert!(
            compile("a.b", "q", Kind::Like)
                .unwrap()
                .regex
                .is_match("xa.b")
        );
        assert!(
            !compile("a.b", "q", Kind::Like)
                .unwrap()
                .regex
                .is_match("axb")
        );
        assert!(compile("a", "z", Kind::Like).is_err());
        assert!(compile("a", "g", Kind::Substr).is_err());
        assert!(matches!(
            compile("(", "", Kind::Like),
            Err(ExecError::InvalidRegularExpression(_))
        ));
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(byte_offset("héllo", 3), Some(3));
        assert_eq!(byte_offset("abc", 4), Some(3));
        assert_eq!(byte_offset("abc", 5), None);
        assert_eq!(character_position("héllo", 3), 3);
    }
}
