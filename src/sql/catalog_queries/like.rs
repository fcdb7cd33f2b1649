//! `LIKE ... ESCAPE` and backslash escapes in patterns, with PostgreSQL's meaning.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, VisitorMut};

/// Name of the function that turns a LIKE pattern with another escape character into one
/// escaped with backslashes (the only escape DataFusion's LIKE knows).
pub const LIKE_PATTERN_FUNCTION: &str = "kalamdb_like_pattern";

/// `x LIKE p ESCAPE '/'` (SQLAlchemy's schema listing) becomes
/// `x LIKE kalamdb_like_pattern(p, '/')`.
pub(super) struct LikeEscapes;

impl VisitorMut for LikeEscapes {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
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
