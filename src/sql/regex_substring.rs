//! `substring(text FROM 'pattern')`: with a text pattern PostgreSQL returns the part of the
//! text the POSIX pattern matches, or its first parenthesized part (pgAdmin reads a table's
//! `fillfactor=([0-9]*)` from its options so); DataFusion reads any FROM as a position. A
//! string-literal pattern becomes `(regexp_match(text, pattern))[1]`, which has that meaning:
//! the first group's text when the pattern has groups, the whole match when not, NULL when
//! nothing matches.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, VisitMut};

/// Rewrites every such `substring` of the statement.
pub fn pattern_substrings_as_matches(statement: &mut ast::Statement) {
    let _ = VisitMut::visit(statement, &mut Matches);
}

struct Matches;

impl ast::VisitorMut for Matches {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Substring {
            expr: text,
            substring_from: Some(from),
            substring_for: None,
            ..
        } = expr
            && let Expr::Value(value) = from.as_ref()
            && matches!(value.value, ast::Value::SingleQuotedString(_))
            && let Ok(matched) = super::parse_expr(&format!("(regexp_match({text}, {from}))[1]"))
        {
            *expr = matched;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        crate::sql::rewritten_by(sql, pattern_substrings_as_matches)
    }

    #[test]
    fn a_text_pattern_matches_and_a_position_stays() {
        assert_eq!(
            rewritten("SELECT substring(o FROM 'fillfactor=([0-9]*)'), substring(o FROM 2 FOR 3)"),
            "SELECT (regexp_match(o, 'fillfactor=([0-9]*)'))[1], SUBSTRING(o FROM 2 FOR 3)"
        );
    }
}
