//! `regexp_replace`: which matches a call replaces, and PostgreSQL's escapes in the
//! replacement text.

use datafusion::common::Result;

use super::{Pattern, Row, byte_offset, invalid, matches_from, start_of};

/// `regexp_replace`: the first match replaced (every match with the `g` flag, only the Nth
/// when N is given, every one when N is 0, the flag then ignored), searching from the start
/// position.
pub(super) fn replaced(text: &str, pattern: &Pattern, args: &Row) -> Result<String> {
    let Some(replacement) = args.texts[2] else {
        return Ok(text.to_owned());
    };
    let start = start_of(args, 3)?;
    let which = match args.integers.get(4).copied().flatten() {
        Some(n) if n < 0 => {
            return Err(invalid(format!("invalid value for parameter \"n\": {n}")));
        }
        Some(0) => None,
        Some(n) => Some(n),
        None if pattern.global => None,
        None => Some(1),
    };
    let Some(from) = byte_offset(text, start) else {
        return Ok(text.to_owned());
    };
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (index, captures) in matches_from(&pattern.regex, text, from, false).enumerate() {
        let nth = index as i64 + 1;
        if which.is_some_and(|n| nth < n) {
            continue;
        }
        let whole = captures.get(0).expect("group 0 is the match");
        out.push_str(&text[copied..whole.start()]);
        substitute(replacement, &captures, &mut out);
        copied = whole.end();
        if which.is_some() {
            break;
        }
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

/// The replacement text with PostgreSQL's escapes: `\1` to `\9` a group's text, `\&` the
/// whole match, `\\` a backslash; any other backslash stays as written.
fn substitute(replacement: &str, captures: &regex::Captures, out: &mut String) {
    let mut chars = replacement.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(d @ '1'..='9') => {
                let group = d.to_digit(10).unwrap_or(0) as usize;
                out.push_str(captures.get(group).map_or("", |m| m.as_str()));
            }
            Some('&') => out.push_str(captures.get(0).map_or("", |m| m.as_str())),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
}
