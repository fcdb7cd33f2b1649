//! The options of CREATE and ALTER SEQUENCE and of identity columns, in any order as PostgreSQL
//! takes them; what they mean for a sequence is decided when it is created or altered.

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::ddl::{TableName, sql_type};
use super::parse::fold_ident;
use super::{SqlError, Statement};
use crate::model::types::SqlType;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequenceOptions {
    /// `AS smallint | integer | bigint`.
    pub data_type: Option<SqlType>,
    pub increment: Option<i64>,
    /// `Some(None)` is `NO MINVALUE`: the default for the type and direction.
    pub min_value: Option<Option<i64>>,
    pub max_value: Option<Option<i64>>,
    pub start: Option<i64>,
    /// ALTER SEQUENCE only; `Some(None)` restarts at the start value.
    pub restart: Option<Option<i64>>,
    pub cache: Option<i64>,
    pub cycle: Option<bool>,
    /// `OWNED BY table.column`; `Some(None)` is `OWNED BY NONE`.
    pub owned_by: Option<Option<(TableName, String)>>,
}

/// After `CREATE SEQUENCE`.
pub(super) fn parse_create(parser: &mut Parser) -> Result<Statement, SqlError> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = TableName::from_object_name(&parser.parse_object_name(false)?)?;
    let options = parse_options(parser, false)?;
    Ok(Statement::CreateSequence {
        name,
        if_not_exists,
        options,
    })
}

/// After `ALTER SEQUENCE`.
pub(super) fn parse_alter(parser: &mut Parser) -> Result<Statement, SqlError> {
    let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = TableName::from_object_name(&parser.parse_object_name(false)?)?;
    let options = parse_options(parser, true)?;
    if options == SequenceOptions::default() {
        return Err(SqlError::Syntax(
            "ALTER SEQUENCE needs at least one option".into(),
        ));
    }
    Ok(Statement::AlterSequence {
        name,
        if_exists,
        options,
    })
}

fn redundant() -> SqlError {
    SqlError::Syntax("conflicting or redundant options".into())
}

fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), SqlError> {
    if slot.is_some() {
        return Err(redundant());
    }
    *slot = Some(value);
    Ok(())
}

fn parse_options(parser: &mut Parser, alter: bool) -> Result<SequenceOptions, SqlError> {
    let mut options = SequenceOptions::default();
    loop {
        if parser.parse_keyword(Keyword::AS) {
            let data_type = parser.parse_data_type()?;
            set(&mut options.data_type, sequence_type(&data_type)?)?;
        } else if parser.parse_keyword(Keyword::INCREMENT) {
            let _ = parser.parse_keyword(Keyword::BY);
            set(&mut options.increment, parse_integer(parser)?)?;
        } else if parser.parse_keyword(Keyword::MINVALUE) {
            set(&mut options.min_value, Some(parse_integer(parser)?))?;
        } else if parser.parse_keyword(Keyword::MAXVALUE) {
            set(&mut options.max_value, Some(parse_integer(parser)?))?;
        } else if parser.parse_keywords(&[Keyword::NO, Keyword::MINVALUE]) {
            set(&mut options.min_value, None)?;
        } else if parser.parse_keywords(&[Keyword::NO, Keyword::MAXVALUE]) {
            set(&mut options.max_value, None)?;
        } else if parser.parse_keywords(&[Keyword::NO, Keyword::CYCLE]) {
            set(&mut options.cycle, false)?;
        } else if parser.parse_keyword(Keyword::CYCLE) {
            set(&mut options.cycle, true)?;
        } else if parser.parse_keyword(Keyword::START) {
            let _ = parser.parse_keyword(Keyword::WITH);
            set(&mut options.start, parse_integer(parser)?)?;
        } else if alter && parser.parse_keyword(Keyword::RESTART) {
            let with = parser.parse_keyword(Keyword::WITH);
            let value = if with || starts_number(parser) {
                Some(parse_integer(parser)?)
            } else {
                None
            };
            set(&mut options.restart, value)?;
        } else if parser.parse_keyword(Keyword::CACHE) {
            set(&mut options.cache, parse_integer(parser)?)?;
        } else if parser.parse_keywords(&[Keyword::OWNED, Keyword::BY]) {
            let owner = if parser.parse_keyword(Keyword::NONE) {
                None
            } else {
                Some(owned_by(&parser.parse_object_name(false)?)?)
            };
            set(&mut options.owned_by, owner)?;
        } else {
            break;
        }
    }
    Ok(options)
}

fn starts_number(parser: &Parser) -> bool {
    matches!(
        parser.peek_token().token,
        Token::Number(..) | Token::Minus | Token::Plus
    )
}

/// A signed whole number within bigint.
fn parse_integer(parser: &mut Parser) -> Result<i64, SqlError> {
    let negative = if parser.consume_token(&Token::Minus) {
        true
    } else {
        let _ = parser.consume_token(&Token::Plus);
        false
    };
    let token = parser.next_token();
    let Token::Number(digits, _) = &token.token else {
        return Err(SqlError::Syntax(format!(
            "syntax error at or near \"{}\"",
            token.token
        )));
    };
    let text = if negative {
        format!("-{digits}")
    } else {
        digits.clone()
    };
    text.parse::<i64>().map_err(|_| {
        SqlError::Syntax(format!(
            "sequence option value {text} is not an integer within bigint"
        ))
    })
}

fn owned_by(name: &ast::ObjectName) -> Result<(TableName, String), SqlError> {
    let mut parts: Vec<ast::ObjectNamePart> = name.0.clone();
    let column = match parts.pop().as_ref().and_then(|p| p.as_ident()) {
        Some(ident) if !parts.is_empty() => fold_ident(ident),
        _ => {
            return Err(SqlError::Syntax(
                "invalid OWNED BY option: specify OWNED BY table.column or OWNED BY NONE".into(),
            ));
        }
    };
    Ok((
        TableName::from_object_name(&ast::ObjectName(parts))?,
        column,
    ))
}

/// `nextval('s'::regclass)` is how PostgreSQL (and its dumps and ORMs) name a sequence; the
/// sequence functions here take the name as text, so the cast of a literal is dropped.
pub(super) fn unwrap_regclass_arguments(statement: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(statement, |expr| {
        if let ast::Expr::Function(function) = expr
            && let Some(name) = function.name.0.last().and_then(|p| p.as_ident())
            && ["nextval", "currval", "setval"].contains(&name.value.to_lowercase().as_str())
            && let ast::FunctionArguments::List(list) = &mut function.args
            && let Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))) =
                list.args.first_mut()
            && let ast::Expr::Cast {
                expr: inner,
                data_type: ast::DataType::Regclass,
                ..
            } = arg
            && matches!(inner.as_ref(), ast::Expr::Value(_))
        {
            *arg = inner.as_ref().clone();
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// The statements of `sql` with [`unwrap_regclass_arguments`] applied, when it changed any: a
/// `::regclass` would otherwise send the query down the catalog-query path, whose rewrite looks
/// the name up among tables.
pub(super) fn without_regclass_arguments(sql: &str) -> Option<String> {
    // Every statement comes through here: most have no cast at all, and skip the lowering.
    if !sql.contains("::") {
        return None;
    }
    let lower = sql.to_ascii_lowercase();
    if !lower.contains("regclass") || !lower.contains("val(") {
        return None;
    }
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let statements = Parser::parse_sql(&dialect, sql).ok()?;
    let mut changed = false;
    let rewritten: Vec<String> = statements
        .into_iter()
        .map(|mut statement| {
            let before = statement.clone();
            unwrap_regclass_arguments(&mut statement);
            changed |= statement != before;
            statement.to_string()
        })
        .collect();
    changed.then(|| rewritten.join("; "))
}

/// The type of a sequence or an identity column: only the three integer types.
pub fn sequence_type(data_type: &ast::DataType) -> Result<SqlType, SqlError> {
    match sql_type(data_type)? {
        t @ (SqlType::SmallInt | SqlType::Integer | SqlType::BigInt) => Ok(t),
        _ => Err(SqlError::InvalidParameter(
            "sequence type must be smallint, integer, or bigint".into(),
        )),
    }
}

/// The options an identity column gives in parentheses, as sqlparser reads them.
pub fn from_identity_options(
    options: &[ast::SequenceOptions],
) -> Result<SequenceOptions, SqlError> {
    let number = |expr: &ast::Expr| -> Result<i64, SqlError> {
        expr.to_string().parse::<i64>().map_err(|_| {
            SqlError::Syntax(format!(
                "sequence option value {expr} is not an integer within bigint"
            ))
        })
    };
    let mut out = SequenceOptions::default();
    for option in options {
        match option {
            ast::SequenceOptions::IncrementBy(v, _) => set(&mut out.increment, number(v)?)?,
            ast::SequenceOptions::MinValue(v) => {
                set(&mut out.min_value, v.as_ref().map(number).transpose()?)?
            }
            ast::SequenceOptions::MaxValue(v) => {
                set(&mut out.max_value, v.as_ref().map(number).transpose()?)?
            }
            ast::SequenceOptions::StartWith(v, _) => set(&mut out.start, number(v)?)?,
            ast::SequenceOptions::Cache(v) => set(&mut out.cache, number(v)?)?,
            // sqlparser's flag says `NO CYCLE`.
            ast::SequenceOptions::Cycle(no) => set(&mut out.cycle, !no)?,
        }
    }
    Ok(out)
}
