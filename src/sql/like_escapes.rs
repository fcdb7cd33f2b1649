//! `LIKE ... ESCAPE` and backslash escapes in patterns, with PostgreSQL's meaning: the
//! escape character may be any one character, or none (`ESCAPE ''`), where DataFusion's LIKE
//! knows only the backslash.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, VisitorMut};

/// Name of the function that turns a LIKE pattern with another escape character into one
/// escaped with backslashes (the only escape DataFusion's LIKE knows).
pub const LIKE_PATTERN_FUNCTION: &str = "kalamdb_like_pattern";

/// Rewrites every `x LIKE p ESCAPE '/'` (SQLAlchemy's `autoescape`, its schema listing) of
/// the statement into `x LIKE kalamdb_like_pattern(p, '/')`.
pub(super) fn backslash_escaped_patterns(
    statement: &mut ast::Statement,
) -> Result<(), super::SqlError> {
    match ast::VisitMut::visit(statement, &mut LikeEscapes) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct LikeEscapes;

impl VisitorMut for LikeEscapes {
    type Break = super::SqlError;
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<super::SqlError> {
        let (Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        }) = expr
        else {
            return ControlFlow::Continue(());
        };
        let escape = match escape_char.as_ref().map(|v| &v.value) {
            Some(ast::Value::SingleQuotedString(e)) if e.chars().count() > 1 => {
                return ControlFlow::Break(super::SqlError::InvalidEscapeString);
            }
            Some(ast::Value::SingleQuotedString(e)) if e != "\\" => e.clone(),
            _ => return ControlFlow::Continue(()),
        };
        let call = format!(
            "{LIKE_PATTERN_FUNCTION}({pattern}, '{}')",
            escape.replace('\'', "''")
        );
        if let Ok(rewritten) = crate::sql::parse_expr(&call) {
            **pattern = rewritten;
            *escape_char = None;
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites a LIKE pattern escaped with `escape` into the backslash-escaped form.
pub fn backslash_like_pattern(pattern: &str, escape: &str) -> String {
    let escape = escape.chars().next();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next @ ('%' | '_')) => {
                    out.push('\\');
                    out.push(next);
                }
                Some('\\') => out.push_str("\\\\"),
                Some(next) => out.push(next),
                None => {}
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::backslash_like_pattern;

    #[test]
    fn like_patterns_with_another_escape_become_backslash_escaped() {
        assert_eq!(backslash_like_pattern("pg/_%", "/"), "pg\\_%");
        assert_eq!(backslash_like_pattern("a//b", "/"), "a/b");
        assert_eq!(backslash_like_pattern("a\\b/%", "/"), "a\\\\b\\%");
        assert_eq!(backslash_like_pattern("a\\_", ""), "a\\\\_");
    }
}
