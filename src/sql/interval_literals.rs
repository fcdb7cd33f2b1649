//! Interval literals read as PostgreSQL reads them. DataFusion's reader takes only number and
//! unit pairs, so `INTERVAL '1 day 02:00:00'`, `'-1 days +01:00:00'::interval` or ISO 8601's
//! `'PT1H'`, which KalamDB itself prints or clients send, failed. Each literal is read here
//! (`model::interval_text`) and handed on as the three parts DataFusion reads unambiguously
//! (`14 months 3 days 14706000000 microseconds`); text that is no interval is refused with
//! PostgreSQL's error. A field qualifier (`INTERVAL '1 2' DAY TO HOUR`) is read as PostgreSQL
//! reads it (`model::interval_fields`).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, DataType, Expr, Value, VisitMut};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use super::SqlError;
use crate::model::interval_fields::{IntervalField, parse_qualified_interval};
use crate::model::interval_text::{IntervalInputError, parse_interval};

/// Rewrites the statement's interval literals, or says why one is not an interval.
pub fn read_interval_literals(statement: &mut ast::Statement) -> Result<(), SqlError> {
    match VisitMut::visit(statement, &mut Literals) {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Literals;

impl ast::VisitorMut for Literals {
    type Break = SqlError;

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<SqlError> {
        let mut qualifier = None;
        let text = match expr {
            Expr::Interval(ast::Interval {
                value,
                leading_field: Some(leading),
                leading_precision,
                last_field,
                fractional_seconds_precision,
            }) => {
                let (Some(lead), Some(last)) = (
                    field(leading),
                    last_field.as_ref().map_or(field(leading), field),
                ) else {
                    return ControlFlow::Continue(());
                };
                let precision = match last_field {
                    Some(_) => *fractional_seconds_precision,
                    None => *leading_precision,
                };
                qualifier = Some((lead, last, precision.and_then(|p| u32::try_from(p).ok())));
                quoted(value)
            }
            Expr::Interval(ast::Interval {
                value,
                leading_field: None,
                leading_precision: None,
                last_field: None,
                fractional_seconds_precision: None,
            }) => quoted(value),
            Expr::Cast {
                expr: value,
                data_type:
                    DataType::Interval {
                        fields: None,
                        precision: None,
                    },
                format: None,
                array: false,
                ..
            } => quoted(value),
            Expr::TypedString(ast::TypedString {
                data_type:
                    DataType::Interval {
                        fields: None,
                        precision: None,
                    },
                value,
                ..
            }) => quoted_text(&value.value),
            _ => None,
        };
        let Some(text) = text else {
            return ControlFlow::Continue(());
        };
        let read = match qualifier {
            Some((leading, last, precision)) => {
                parse_qualified_interval(&text, leading, last, precision)
            }
            None => parse_interval(&text),
        };
        match read {
            Ok(parts) => {
                let canonical = format!(
                    "{} months {} days {} microseconds",
                    parts.months, parts.days, parts.micros
                );
                *expr = Expr::Interval(ast::Interval {
                    value: Box::new(Expr::Value(Value::SingleQuotedString(canonical).into())),
                    leading_field: None,
                    leading_precision: None,
                    last_field: None,
                    fractional_seconds_precision: None,
                });
                ControlFlow::Continue(())
            }
            Err(IntervalInputError::Syntax) => ControlFlow::Break(SqlError::InvalidDatetimeFormat(
                format!("invalid input syntax for type interval: \"{text}\""),
            )),
            Err(IntervalInputError::OutOfRange) => {
                ControlFlow::Break(SqlError::DatetimeFieldOverflow(format!(
                    "interval field value out of range: \"{text}\""
                )))
            }
        }
    }
}

/// A window frame offset written as a cast (`'1 year'::interval PRECEDING`), which sqlparser
/// does not read in a frame, as the interval literal it means (`INTERVAL '1 year' PRECEDING`).
pub(super) fn frame_offsets_as_literals(mut tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let is_word = |token: &Token, words: &[&str]| {
        matches!(token, Token::Word(w) if w.quote_style.is_none()
            && words.iter().any(|word| w.value.eq_ignore_ascii_case(word)))
    };
    let mut at = 0;
    while at + 2 < tokens.len() {
        let offset = matches!(tokens[at].token, Token::SingleQuotedString(_))
            && tokens[at + 1].token == Token::DoubleColon
            && is_word(&tokens[at + 2].token, &["interval"])
            && tokens[at + 3..]
                .iter()
                .find(|t| !matches!(t.token, Token::Whitespace(_)))
                .is_some_and(|next| is_word(&next.token, &["preceding", "following"]));
        if offset {
            let literal = tokens[at].clone();
            let span = tokens[at].span;
            tokens[at] = TokenWithSpan::new(Token::make_keyword("INTERVAL"), span);
            tokens[at + 1] = TokenWithSpan::new(
                Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space),
                span,
            );
            tokens[at + 2] = literal;
            at += 3;
        } else {
            at += 1;
        }
    }
    tokens
}

/// The qualifier field KalamDB reads (`YEAR` to `SECOND`); others are left to DataFusion.
fn field(field: &ast::DateTimeField) -> Option<IntervalField> {
    Some(match field {
        ast::DateTimeField::Year => IntervalField::Year,
        ast::DateTimeField::Month => IntervalField::Month,
        ast::DateTimeField::Day => IntervalField::Day,
        ast::DateTimeField::Hour => IntervalField::Hour,
        ast::DateTimeField::Minute => IntervalField::Minute,
        ast::DateTimeField::Second => IntervalField::Second,
        _ => return None,
    })
}

fn quoted(value: &Expr) -> Option<String> {
    match value {
        Expr::Value(v) => quoted_text(&v.value),
        _ => None,
    }
}

fn quoted_text(value: &Value) -> Option<String> {
    match value {
        Value::SingleQuotedString(text) => Some(text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> Result<String, SqlError> {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let mut statement = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql)
            .unwrap()
            .remove(0);
        read_interval_literals(&mut statement)?;
        Ok(statement.to_string())
    }

    #[test]
    fn literals_in_postgresql_forms_reach_datafusion_as_their_parts() {
        assert_eq!(
            rewritten("SELECT INTERVAL '1 day 02:00:00', '-1 days +01:00:00'::interval, CAST('PT1M' AS INTERVAL)")
                .unwrap(),
            "SELECT INTERVAL '0 months 1 days 7200000000 microseconds', \
             INTERVAL '0 months -1 days 3600000000 microseconds', \
             INTERVAL '0 months 0 days 60000000 microseconds'"
        );
        // A field qualifier is read with the literal; a column cast is not a literal.
        assert_eq!(
            rewritten("SELECT INTERVAL '1' DAY, INTERVAL '1 2:03' HOUR TO MINUTE, CAST(t.x AS INTERVAL) FROM t").unwrap(),
            "SELECT INTERVAL '0 months 1 days 0 microseconds', \
             INTERVAL '0 months 1 days 7380000000 microseconds', CAST(t.x AS INTERVAL) FROM t"
        );
    }

    #[test]
    fn text_that_is_no_interval_is_refused_as_postgresql_refuses_it() {
        assert!(matches!(
            rewritten("SELECT INTERVAL 'soon'"),
            Err(SqlError::InvalidDatetimeFormat(m)) if m == "invalid input syntax for type interval: \"soon\""
        ));
        assert!(matches!(
            rewritten("SELECT '9999999999 days'::interval"),
            Err(SqlError::DatetimeFieldOverflow(_))
        ));
    }
}
