//! Bounds on what one statement's text may ask of the server, checked on its tokens before any
//! syntax tree exists.
//!
//! sqlparser builds `a + b + c + ...` and `x AND y AND ...` iteratively, as left-deep trees, so
//! its own recursion limit never sees them; every later pass over the tree (planning, rewriting,
//! evaluation, even dropping it) recurses once per operator and can overflow a thread's stack,
//! which aborts the whole process. PostgreSQL answers such statements with 54001 once they pass
//! `max_stack_depth`. Here a conservative estimate of the tree's depth is taken from the tokens
//! (every operator counts as one level, brackets nest) and statements beyond
//! [`MAX_EXPRESSION_DEPTH`] are refused before they are parsed. Placeholder numbers are checked
//! on the same pass, because they size per-statement vectors.
//!
//! Select lists are bounded after parsing, at PostgreSQL's 1,664 entries (54011): DataFusion's
//! planner compares each new item's name with every earlier one, so planning time grows with
//! the square of the list (8,000 items took 8 s; `SELECT $1, ..., $65535` would take minutes).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, SetExpr, Visit, Visitor};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use super::SqlError;

/// Stack of every thread that plans or runs statements (runtime workers, connection lanes and
/// blocking pools alike): [`MAX_EXPRESSION_DEPTH`] is sized for it, not the 2 MiB default.
/// Untouched stack pages cost no memory.
pub const THREAD_STACK_BYTES: usize = 64 * 1024 * 1024;

/// The deepest expression (in operators and brackets) a statement may contain. Test suites run
/// the server's debug build, whose stack frames are the largest; this depth is planned and
/// evaluated there with room to spare (see `tests/hostile_sql.rs`).
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;

/// The highest `$n` a statement may use: the protocol counts parameters in 16 bits.
pub const MAX_PARAMETER_NUMBER: u64 = 65_535;

/// PostgreSQL's `MaxTupleAttributeNumber`: the most entries a select list may have.
pub const MAX_TARGET_LIST: usize = 1_664;

/// Refuses a statement with a select list (at any depth) longer than [`MAX_TARGET_LIST`].
pub fn check_target_lists(statement: &ast::Statement) -> Result<(), SqlError> {
    struct Lists;
    impl Visitor for Lists {
        type Break = usize;
        fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<usize> {
            match longest_list(query.body.as_ref()) {
                entries if entries > MAX_TARGET_LIST => ControlFlow::Break(entries),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    /// The longest select list among a query body's set operands.
    fn longest_list(body: &SetExpr) -> usize {
        match body {
            SetExpr::Select(select) => select.projection.len(),
            SetExpr::SetOperation { left, right, .. } => {
                longest_list(left).max(longest_list(right))
            }
            _ => 0,
        }
    }
    match statement.visit(&mut Lists) {
        ControlFlow::Break(entries) => Err(SqlError::TooManyColumns(format!(
            "target lists can have at most {MAX_TARGET_LIST} entries (this one has {entries})"
        ))),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Refuses a token stream whose expressions would nest deeper than [`MAX_EXPRESSION_DEPTH`] or
/// that names a parameter outside `$1..=$65535`.
pub fn check_tokens(tokens: &[TokenWithSpan]) -> Result<(), SqlError> {
    // One entry per open bracket (parenthesis, square bracket, CASE ... END): operators chained
    // at that level since its last separator, and set operations (UNION ...) at that level.
    let mut levels: Vec<Level> = vec![Level::default()];
    let mut depth = 0usize;
    for token in tokens {
        match &token.token {
            Token::Placeholder(name) => check_placeholder(name)?,
            Token::LParen | Token::LBracket => open(&mut levels, &mut depth),
            Token::RParen | Token::RBracket => close(&mut levels, &mut depth),
            Token::Comma => reset(&mut levels, &mut depth),
            Token::SemiColon => {
                levels.truncate(1);
                levels[0] = Level::default();
                depth = 0;
            }
            Token::Word(word) => match word.keyword {
                Keyword::CASE => open(&mut levels, &mut depth),
                Keyword::END => close(&mut levels, &mut depth),
                // Siblings in the tree: what follows is no operand of what came before.
                Keyword::WHEN
                | Keyword::THEN
                | Keyword::ELSE
                | Keyword::SELECT
                | Keyword::FROM
                | Keyword::WHERE
                | Keyword::HAVING
                | Keyword::GROUP
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::OFFSET
                | Keyword::VALUES
                | Keyword::SET
                | Keyword::RETURNING
                | Keyword::ON
                | Keyword::USING => reset(&mut levels, &mut depth),
                Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT => {
                    deepen(&mut levels, &mut depth, true)?
                }
                Keyword::AND
                | Keyword::OR
                | Keyword::NOT
                | Keyword::IS
                | Keyword::IN
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::BETWEEN
                | Keyword::COLLATE
                | Keyword::AT
                | Keyword::OPERATOR => deepen(&mut levels, &mut depth, false)?,
                _ => {}
            },
            Token::Whitespace(_)
            | Token::EOF
            | Token::Period
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_) => {}
            // Every other token is an operator of some kind; counting one too many is harmless.
            _ => deepen(&mut levels, &mut depth, false)?,
        }
    }
    Ok(())
}

#[derive(Default)]
struct Level {
    chain: usize,
    set_operations: usize,
}

fn open(levels: &mut Vec<Level>, depth: &mut usize) {
    levels.push(Level::default());
    *depth += 1;
}

fn close(levels: &mut Vec<Level>, depth: &mut usize) {
    // An unbalanced closer is the parser's to report; the estimate only has to stay sane.
    if levels.len() > 1
        && let Some(level) = levels.pop()
    {
        *depth -= level.chain + level.set_operations + 1;
    }
}

fn reset(levels: &mut [Level], depth: &mut usize) {
    if let Some(level) = levels.last_mut() {
        *depth -= level.chain;
        level.chain = 0;
    }
}

fn deepen(levels: &mut [Level], depth: &mut usize, set_operation: bool) -> Result<(), SqlError> {
    if let Some(level) = levels.last_mut() {
        if set_operation {
            level.set_operations += 1;
        } else {
            level.chain += 1;
        }
        *depth += 1;
    }
    if *depth > MAX_EXPRESSION_DEPTH {
        return Err(SqlError::StackDepth(format!(
            "stack depth limit exceeded: the statement nests more than {MAX_EXPRESSION_DEPTH} operators"
        )));
    }
    Ok(())
}

fn check_placeholder(name: &str) -> Result<(), SqlError> {
    let Some(digits) = name.strip_prefix('$') else {
        return Ok(());
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    match digits.parse::<u64>() {
        Ok(n) if (1..=MAX_PARAMETER_NUMBER).contains(&n) => Ok(()),
        _ => Err(SqlError::UndefinedParameter(format!(
            "there is no parameter ${digits}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;

    use super::*;

    #[test]
    fn select_lists_beyond_1664_entries_are_refused() {
        let list = |n: usize| {
            (1..=n)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert!(crate::sql::parse(&format!("SELECT {}", list(1664))).is_ok());
        for sql in [
            format!("SELECT {}", list(1665)),
            format!("SELECT 1 UNION ALL SELECT {}", list(65535)),
            format!("SELECT * FROM (SELECT {}) s", list(2000)),
        ] {
            match crate::sql::parse(&sql) {
                Err(SqlError::TooManyColumns(message)) => {
                    assert!(message.starts_with("target lists can have at most 1664 entries"))
                }
                other => panic!("{:?}", other.map(|_| ())),
            }
        }
    }

    fn check(sql: &str) -> Result<(), SqlError> {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize_with_location()
            .unwrap();
        check_tokens(&tokens)
    }

    fn chain(op: &str, terms: usize) -> String {
        vec!["1"; terms].join(op)
    }

    #[test]
    fn long_flat_operator_chains_are_refused_as_stack_depth() {
        let sql = format!("SELECT {}", chain("+", MAX_EXPRESSION_DEPTH + 2));
        assert!(matches!(check(&sql), Err(SqlError::StackDepth(_))));
        let sql = format!(
            "SELECT 1 WHERE {}",
            chain(" AND ", MAX_EXPRESSION_DEPTH + 2)
        );
        assert!(matches!(check(&sql), Err(SqlError::StackDepth(_))));
    }

    #[test]
    fn chains_within_the_limit_pass() {
        check(&format!("SELECT {}", chain("+", MAX_EXPRESSION_DEPTH))).unwrap();
    }

    #[test]
    fn wide_lists_are_not_deep() {
        let values = (0..50_000)
            .map(|i| format!("({i}, 'v{i}' || 'x')"))
            .collect::<Vec<_>>()
            .join(", ");
        check(&format!("INSERT INTO t VALUES {values}")).unwrap();
        let list = (0..50_000).map(|i| i.to_string()).collect::<Vec<_>>();
        check(&format!("SELECT 1 WHERE x IN ({})", list.join(","))).unwrap();
        let branches = (0..10_000)
            .map(|i| format!("WHEN x = {i} THEN {i} + 1"))
            .collect::<String>();
        check(&format!("SELECT CASE {branches} END")).unwrap();
    }

    #[test]
    fn nesting_adds_the_chains_of_every_level() {
        let half = chain("+", MAX_EXPRESSION_DEPTH / 2 + 1);
        check(&format!("SELECT {half} + ({half})")).unwrap_err();
        check(&format!("SELECT ({half}), ({half})")).unwrap();
    }

    #[test]
    fn placeholders_beyond_65535_are_undefined_parameters() {
        check("SELECT $1, $65535").unwrap();
        for bad in [
            "$0",
            "$65536",
            "$100000000000000000",
            "$99999999999999999999999",
        ] {
            assert!(
                matches!(
                    check(&format!("SELECT 1 WHERE 1 = {bad}")),
                    Err(SqlError::UndefinedParameter(_))
                ),
                "{bad}"
            );
        }
    }
}
