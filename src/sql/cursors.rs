//! SQL-level cursors: `DECLARE ... CURSOR`, `FETCH`, `MOVE` and `CLOSE`, as psql's
//! `FETCH_COUNT`, psycopg's named cursors (Django's `QuerySet.iterator()`, SQLAlchemy's
//! `yield_per`) and ODBC's declare/fetch mode send them.
//!
//! sqlparser reads DECLARE and CLOSE; its FETCH wants a count and FROM, which PostgreSQL does
//! not (`FETCH c`, `FETCH FORWARD FROM c`), and it has no MOVE, so both are read here.

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::{SqlError, Statement};

/// Where a FETCH or MOVE takes the cursor, in PostgreSQL's terms: a cursor stands before its
/// first row (position 0), on row n, or after its last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorMotion {
    /// The next `n` rows (`None`: all the rest); `NEXT` is one, `FETCH 5` five.
    Forward(Option<u64>),
    /// The `n` rows before the current one, nearest first (`None`: all of them).
    Backward(Option<u64>),
    /// Row `n` (from the end when negative; 0 is before the first row).
    Absolute(i64),
    /// The row `n` rows away (0: the current row again).
    Relative(i64),
}

/// `DECLARE name [BINARY] [INSENSITIVE] [[NO] SCROLL] CURSOR [{WITH | WITHOUT} HOLD] FOR query`.
#[derive(Debug, Clone)]
pub struct CursorDeclaration {
    pub name: String,
    /// The query, as a planned statement sees it.
    pub query: Box<ast::Statement>,
    /// Declared SCROLL: it may move backward.
    pub scroll: bool,
    /// Declared WITH HOLD: it outlives the transaction that declared it.
    pub hold: bool,
}

/// A DECLARE as sqlparser read it, as a [`Statement::DeclareCursor`] whose query went through
/// `standard` (the rewrites every query gets).
pub(super) fn declaration(
    mut stmts: Vec<ast::Declare>,
    standard: impl FnOnce(ast::Statement) -> Result<Statement, SqlError>,
) -> Result<Statement, SqlError> {
    let declare = match (stmts.pop(), stmts.is_empty()) {
        (Some(declare), true) => declare,
        _ => return Err(SqlError::Syntax("DECLARE declares one cursor".into())),
    };
    if declare.declare_type != Some(ast::DeclareType::Cursor) || declare.names.len() != 1 {
        return Err(SqlError::Unsupported(
            "DECLARE declares only cursors: DECLARE name CURSOR FOR query".into(),
        ));
    }
    if declare.binary == Some(true) {
        return Err(SqlError::Unsupported(
            "BINARY cursors are not supported; fetch in binary through the extended protocol"
                .into(),
        ));
    }
    let Some(query) = declare.for_query else {
        return Err(SqlError::Syntax("DECLARE CURSOR needs FOR query".into()));
    };
    let query = match standard(ast::Statement::Query(query))? {
        Statement::Query(query) => query,
        _ => return Err(SqlError::Syntax("DECLARE CURSOR needs a query".into())),
    };
    Ok(Statement::DeclareCursor(Box::new(CursorDeclaration {
        name: super::fold(&declare.names[0]),
        query,
        scroll: declare.scroll == Some(true),
        hold: declare.hold == Some(true),
    })))
}

/// `CLOSE name` or `CLOSE ALL`.
pub(super) fn close(cursor: ast::CloseCursor) -> Statement {
    Statement::CloseCursor {
        name: match cursor {
            ast::CloseCursor::All => None,
            ast::CloseCursor::Specific { name } => Some(super::fold(&name)),
        },
    }
}

/// `FETCH [direction] [FROM | IN] name` or the same with MOVE, when the statement starts so.
pub(super) fn parse_fetch_or_move(parser: &mut Parser) -> Result<Option<Statement>, SqlError> {
    let move_only = if parser.parse_keyword(Keyword::FETCH) {
        false
    } else if super::parse::parse_word(parser, "MOVE") {
        true
    } else {
        return Ok(None);
    };
    let motion = parse_motion(parser)?;
    let _from = parser.parse_one_of_keywords(&[Keyword::FROM, Keyword::IN]);
    let name = super::fold(&parser.parse_identifier()?);
    Ok(Some(Statement::FetchCursor {
        name,
        motion,
        move_only,
    }))
}

fn parse_motion(parser: &mut Parser) -> Result<CursorMotion, SqlError> {
    use CursorMotion::{Absolute, Backward, Forward, Relative};
    let keyword = match parser.peek_token().token {
        Token::Word(w) if w.quote_style.is_none() => w.keyword,
        Token::Number(..) | Token::Minus | Token::Plus => {
            return Ok(forward_by(signed_count(parser)?));
        }
        _ => return Ok(Forward(Some(1))),
    };
    let motion = match keyword {
        Keyword::NEXT => Forward(Some(1)),
        Keyword::PRIOR => Backward(Some(1)),
        Keyword::FIRST => Absolute(1),
        Keyword::LAST => Absolute(-1),
        Keyword::ALL => Forward(None),
        Keyword::ABSOLUTE => {
            parser.next_token();
            return Ok(Absolute(signed_count(parser)?));
        }
        Keyword::RELATIVE => {
            parser.next_token();
            return Ok(Relative(signed_count(parser)?));
        }
        Keyword::FORWARD | Keyword::BACKWARD => {
            parser.next_token();
            let by = if parser.parse_keyword(Keyword::ALL) {
                None
            } else if matches!(
                parser.peek_token().token,
                Token::Number(..) | Token::Minus | Token::Plus
            ) {
                Some(signed_count(parser)?)
            } else {
                Some(1)
            };
            return Ok(match (keyword == Keyword::FORWARD, by) {
                (true, None) => Forward(None),
                (false, None) => Backward(None),
                (true, Some(n)) => forward_by(n),
                (false, Some(n)) => forward_by(n.checked_neg().unwrap_or(i64::MAX)),
            });
        }
        // No direction: the word is the cursor's name.
        _ => return Ok(Forward(Some(1))),
    };
    parser.next_token();
    Ok(motion)
}

/// `FETCH n` / `FORWARD n`: a negative count goes backward; 0 fetches the current row again.
fn forward_by(n: i64) -> CursorMotion {
    match n {
        0 => CursorMotion::Relative(0),
        n if n > 0 => CursorMotion::Forward(Some(n.unsigned_abs())),
        n => CursorMotion::Backward(Some(n.unsigned_abs())),
    }
}

fn signed_count(parser: &mut Parser) -> Result<i64, SqlError> {
    let negative = match parser.peek_token().token {
        Token::Minus => {
            parser.next_token();
            true
        }
        Token::Plus => {
            parser.next_token();
            false
        }
        _ => false,
    };
    let token = parser.next_token();
    let Token::Number(digits, _) = &token.token else {
        return Err(SqlError::Syntax(format!(
            "syntax error at or near \"{}\"",
            token.token
        )));
    };
    let count: i64 = digits
        .parse()
        .map_err(|_| SqlError::Syntax(format!("FETCH count {digits} is not a bigint")))?;
    Ok(if negative { -count } else { count })
}

#[cfg(test)]
mod tests {
    use super::CursorMotion::{self, Absolute, Backward, Forward, Relative};
    use crate::sql::{Statement, parse};

    fn motion(sql: &str) -> (String, CursorMotion, bool) {
        match parse(sql).unwrap().pop().unwrap() {
            Statement::FetchCursor {
                name,
                motion,
                move_only,
            } => (name, motion, move_only),
            other => panic!("{sql} parsed as {other:?}"),
        }
    }

    #[test]
    fn every_fetch_direction_postgresql_accepts_reads_as_its_motion() {
        let cases = [
            ("FETCH c", Forward(Some(1))),
            ("FETCH NEXT FROM c", Forward(Some(1))),
            ("FETCH PRIOR IN c", Backward(Some(1))),
            ("FETCH FIRST c", Absolute(1)),
            ("FETCH LAST c", Absolute(-1)),
            ("FETCH ABSOLUTE -2 c", Absolute(-2)),
            ("FETCH RELATIVE 0 c", Relative(0)),
            ("FETCH 5 FROM c", Forward(Some(5))),
            ("FETCH -3 FROM c", Backward(Some(3))),
            ("FETCH 0 c", Relative(0)),
            ("FETCH ALL FROM c", Forward(None)),
            ("FETCH FORWARD FROM c", Forward(Some(1))),
            ("FETCH FORWARD 2000 FROM \"c\"", Forward(Some(2000))),
            ("FETCH FORWARD ALL FROM c", Forward(None)),
            ("FETCH BACKWARD 2 FROM c", Backward(Some(2))),
            ("FETCH BACKWARD -2 FROM c", Forward(Some(2))),
            ("FETCH BACKWARD ALL c", Backward(None)),
        ];
        for (sql, expected) in cases {
            assert_eq!(motion(sql), ("c".into(), expected, false), "{sql}");
        }
        assert_eq!(motion("MOVE 3 IN C"), ("c".into(), Forward(Some(3)), true));
    }

    #[test]
    fn a_fetch_without_a_cursor_name_is_a_syntax_error() {
        assert!(parse("FETCH 5").is_err());
        assert!(parse("FETCH FORWARD x y").is_err());
    }

    #[test]
    fn declare_reads_its_options_and_refuses_binary_cursors() {
        let declared = parse("DECLARE C SCROLL CURSOR WITH HOLD FOR SELECT 1")
            .unwrap()
            .pop();
        match declared {
            Some(Statement::DeclareCursor(d)) => {
                assert_eq!(d.name, "c");
                assert!(d.scroll && d.hold);
            }
            other => panic!("{other:?}"),
        }
        match parse("DECLARE c NO SCROLL CURSOR FOR SELECT 1")
            .unwrap()
            .pop()
        {
            Some(Statement::DeclareCursor(d)) => assert!(!d.scroll && !d.hold),
            other => panic!("{other:?}"),
        }
        assert!(parse("DECLARE c BINARY CURSOR FOR SELECT 1").is_err());
    }
}
