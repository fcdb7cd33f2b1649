//! KalamDB's user statements: `CREATE USER name WITH PASSWORD '...' [ROLE role]` and
//! `ALTER USER name [WITH] {PASSWORD '...' | ROLE role} ...`.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::parse::parse_name;
use super::{SqlError, Statement};
use crate::model::Role;

pub(super) fn parse_create_user(parser: &mut Parser) -> Result<Statement, SqlError> {
    let user_id = parse_name(parser)?;
    let options = parse_user_options(parser)?;
    let password = options.password.ok_or_else(|| {
        SqlError::Syntax("CREATE USER needs WITH PASSWORD '...': users log in with SCRAM".into())
    })?;
    Ok(Statement::CreateUser {
        user_id,
        password,
        role: options.role.unwrap_or(Role::User),
    })
}

pub(super) fn parse_alter_user(parser: &mut Parser) -> Result<Statement, SqlError> {
    let user_id = parse_name(parser)?;
    let options = parse_user_options(parser)?;
    if options.password.is_none() && options.role.is_none() {
        return Err(SqlError::Syntax(
            "ALTER USER needs WITH PASSWORD '...' or ROLE <role>".into(),
        ));
    }
    Ok(Statement::AlterUser {
        user_id,
        password: options.password,
        role: options.role,
    })
}

#[derive(Default)]
struct UserOptions {
    password: Option<String>,
    role: Option<Role>,
}

/// `[WITH] { PASSWORD 'secret' | ROLE name } ...` in any order.
fn parse_user_options(parser: &mut Parser) -> Result<UserOptions, SqlError> {
    let mut options = UserOptions::default();
    let _optional_with = parser.parse_keyword(Keyword::WITH);
    loop {
        if parser.parse_keyword(Keyword::PASSWORD) {
            let token = parser.next_token();
            let Token::SingleQuotedString(password) = token.token else {
                return Err(SqlError::Syntax(format!(
                    "PASSWORD must be a single-quoted string, found {}",
                    token.token
                )));
            };
            if password.is_empty() {
                return Err(SqlError::Syntax("PASSWORD must not be empty".into()));
            }
            options.password = Some(password);
        } else if parser.parse_keyword(Keyword::ROLE) {
            let token = parser.next_token();
            let name = match token.token {
                Token::Word(word) => word.value,
                Token::SingleQuotedString(name) => name,
                other => {
                    return Err(SqlError::Syntax(format!(
                        "ROLE expects a role name, found {other}"
                    )));
                }
            };
            options.role = Some(Role::parse(&name).ok_or_else(|| {
                SqlError::Syntax(format!(
                    "unknown role \"{name}\": expected user, service, dba or system"
                ))
            })?);
        } else {
            return Ok(options);
        }
    }
}
