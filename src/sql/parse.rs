//! Statement parsing: KalamDB statements by leading keywords, the rest through sqlparser.

use datafusion::sql::sqlparser::ast::{self, Expr, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::ddl::{self, TableName};
use super::{ArchivePath, ClusterChange, SetValue, SqlError, Statement};
use crate::model::TableKind;

impl From<ParserError> for SqlError {
    fn from(err: ParserError) -> Self {
        SqlError::Syntax(match err {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
            ParserError::RecursionLimitExceeded => "statement is nested too deeply".into(),
        })
    }
}

/// Parses one SQL expression (a DEFAULT, a literal, a rewritten call).
pub fn parse_expr(sql: &str) -> Result<Expr, SqlError> {
    let dialect = PostgreSqlDialect {};
    Ok(Parser::new(&dialect)
        .with_tokens_with_locations(checked_tokens(&dialect, sql)?)
        .parse_expr()?)
}

/// A relation named in text, as `'name'::regclass` reads it: `ns.name` or `name`, each part
/// folded to lower case unless quoted.
pub fn relation_name(text: &str) -> Result<TableName, SqlError> {
    let dialect = PostgreSqlDialect {};
    let mut parser =
        Parser::new(&dialect).with_tokens_with_locations(checked_tokens(&dialect, text)?);
    let name = parser.parse_object_name(false)?;
    if parser.peek_token().token != Token::EOF {
        return Err(SqlError::Syntax(format!("invalid name syntax: {text}")));
    }
    TableName::from_object_name(&name)
}

/// The statement's tokens, once they are known to stay within [`super::limits`].
fn checked_tokens(dialect: &PostgreSqlDialect, sql: &str) -> Result<Vec<TokenWithSpan>, SqlError> {
    let tokens = Tokenizer::new(dialect, sql)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(ParserError::from)?;
    super::limits::check_tokens(&tokens)?;
    Ok(tokens)
}

/// Parses every statement in `sql` (a simple-protocol Query may carry several).
pub fn parse(sql: &str) -> Result<Vec<Statement>, SqlError> {
    let dialect = PostgreSqlDialect {};
    let tokens = checked_tokens(&dialect, sql)?;
    let unwrapped = super::sequences::without_regclass_arguments(sql);
    let (sql, tokens) = match &unwrapped {
        Some(text) => (text.as_str(), checked_tokens(&dialect, text)?),
        None => (sql, tokens),
    };
    if super::catalog_queries::mentions_catalog(sql)
        && let Some(statements) = super::catalog_queries::parse(sql)
    {
        return statements.into_iter().map(from_standard).collect();
    }
    let tokens = super::interval_literals::frame_offsets_as_literals(tokens);
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token().token == Token::EOF {
            break;
        }
        statements.push(parse_one(&mut parser)?);
        if !parser.consume_token(&Token::SemiColon) && parser.peek_token().token != Token::EOF {
            let found = parser.peek_token();
            return Err(SqlError::Syntax(format!(
                "syntax error at or near \"{}\"",
                found.token
            )));
        }
    }
    Ok(statements)
}

fn parse_one(parser: &mut Parser) -> Result<Statement, SqlError> {
    if let Some(fetch) = super::cursors::parse_fetch_or_move(parser)? {
        return Ok(fetch);
    }
    if parser.parse_keywords(&[Keyword::CREATE, Keyword::USER]) {
        return super::users::parse_create_user(parser);
    }
    if parser.parse_keywords(&[Keyword::ALTER, Keyword::USER]) {
        return super::users::parse_alter_user(parser);
    }
    if parser.parse_keywords(&[Keyword::DROP, Keyword::USER]) {
        let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let user_id = parse_name(parser)?;
        return Ok(Statement::DropUser { user_id, if_exists });
    }
    if parser.parse_keywords(&[Keyword::CREATE, Keyword::SEQUENCE]) {
        return super::sequences::parse_create(parser);
    }
    if parser.parse_keywords(&[Keyword::ALTER, Keyword::SEQUENCE]) {
        return super::sequences::parse_alter(parser);
    }
    if parser.parse_keywords(&[Keyword::ALTER, Keyword::CLUSTER]) {
        return parse_alter_cluster(parser);
    }
    if parser.parse_keyword(Keyword::CREATE) {
        if parse_word(parser, "STREAM") {
            parser.expect_keyword(Keyword::TABLE)?;
            let create = parser.parse_create_table(false, false, None, false)?;
            let kind = TableKind::Stream {
                ttl_seconds: ddl::stream_ttl(&create)?,
            };
            return Ok(Statement::CreateTable(ddl::create_table(&create, kind)?));
        }
        if parse_word(parser, "NAMESPACE") {
            let if_not_exists =
                parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = parse_name(parser)?;
            return Ok(Statement::CreateNamespace {
                name,
                if_not_exists,
            });
        }
        parser.prev_token();
    }
    if parser.parse_keyword(Keyword::DROP) {
        if parse_word(parser, "NAMESPACE") {
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = parse_name(parser)?;
            let cascade = parser.parse_keyword(Keyword::CASCADE);
            let _restrict = !cascade && parser.parse_keyword(Keyword::RESTRICT);
            return Ok(Statement::DropNamespace {
                name,
                if_exists,
                cascade,
            });
        }
        parser.prev_token();
    }
    if parser.parse_keyword(Keyword::SHOW) {
        if parse_word(parser, "NAMESPACES") || parser.parse_keyword(Keyword::SCHEMAS) {
            return Ok(Statement::ShowNamespaces);
        }
        if parser.parse_keyword(Keyword::TABLES) {
            let namespace = if parser
                .parse_one_of_keywords(&[Keyword::IN, Keyword::FROM])
                .is_some()
            {
                Some(parse_name(parser)?)
            } else {
                None
            };
            return Ok(Statement::ShowTables { namespace });
        }
        if parse_word(parser, "BACKUP") {
            let archive = parse_path(parser);
            return Ok(Statement::ShowBackup { archive });
        }
        parser.prev_token();
    }
    if let Some(statement) = parse_vacuum(parser)? {
        return Ok(statement);
    }
    if parser.parse_keywords(&[Keyword::FLUSH, Keyword::TABLE]) {
        let table = TableName::from_object_name(&parser.parse_object_name(false)?)?;
        return Ok(Statement::FlushTable { table });
    }
    if parser.parse_keyword(Keyword::KILL) {
        if parse_word(parser, "JOB") {
            let token = parser.next_token();
            let job_id = match token.token {
                Token::SingleQuotedString(id) | Token::DoubleQuotedString(id) => id,
                other => {
                    return Err(SqlError::Syntax(format!(
                        "KILL JOB expects a quoted job id, found {other}"
                    )));
                }
            };
            return Ok(Statement::KillJob { job_id });
        }
        parser.prev_token();
    }
    // sqlparser has no ALTER TABLE ... SET SCHEMA.
    if let Some((table, if_exists, namespace)) = parser.maybe_parse(|p| {
        p.expect_keywords(&[Keyword::ALTER, Keyword::TABLE])?;
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let _only = p.parse_keyword(Keyword::ONLY);
        let table = p.parse_object_name(false)?;
        p.expect_keywords(&[Keyword::SET, Keyword::SCHEMA])?;
        Ok((table, if_exists, p.parse_identifier()?))
    })? {
        return Ok(Statement::SetSchema {
            table: TableName::from_object_name(&table)?,
            if_exists,
            namespace: fold_ident(&namespace),
        });
    }
    if parser.parse_keyword(Keyword::SET) {
        if parse_word(parser, "CONSTRAINTS") {
            return parse_set_constraints(parser);
        }
        parser.prev_token();
    }
    if parse_word(parser, "BACKUP") {
        parser.expect_keyword(Keyword::DATABASE)?;
        parser.expect_keyword(Keyword::TO)?;
        let target = parse_path(parser);
        let base = if target.quoted && parse_word(parser, "INCREMENTAL") {
            parser.expect_keyword(Keyword::FROM)?;
            Some(parse_path(parser))
        } else {
            None
        };
        return Ok(Statement::BackupDatabase { target, base });
    }
    if parse_word(parser, "RESTORE") {
        parser.expect_keyword(Keyword::DATABASE)?;
        parser.expect_keyword(Keyword::FROM)?;
        let source = parse_path(parser);
        let backup_to = if source.quoted && parser.parse_keyword(Keyword::WITH) {
            if !parse_word(parser, "BACKUP") {
                return Err(SqlError::Syntax(format!(
                    "syntax error at or near \"{}\": RESTORE DATABASE FROM '<path>' takes WITH BACKUP TO '<path>'",
                    parser.peek_token().token
                )));
            }
            parser.expect_keyword(Keyword::TO)?;
            Some(parse_path(parser))
        } else {
            None
        };
        return Ok(Statement::RestoreDatabase { source, backup_to });
    }
    if parse_word(parser, "VERIFY") {
        if parse_word(parser, "BACKUP") {
            let archive = parse_path(parser);
            return Ok(Statement::VerifyBackup { archive });
        }
        parser.prev_token();
    }
    if parse_word(parser, "CLUSTER") {
        if parse_word(parser, "SNAPSHOT") {
            return Ok(Statement::ClusterSnapshot);
        }
        parser.prev_token();
    }
    if parser
        .parse_one_of_keywords(&[Keyword::DESCRIBE, Keyword::DESC])
        .is_some()
    {
        let _optional_table = parser.parse_keyword(Keyword::TABLE);
        let table = TableName::from_object_name(&parser.parse_object_name(false)?)?;
        return Ok(Statement::Describe { table });
    }
    from_standard(parser.parse_statement()?)
}

/// After `ALTER CLUSTER`: `ADD NODE <id> '<address>'` or `REMOVE NODE <id>`.
fn parse_alter_cluster(parser: &mut Parser) -> Result<Statement, SqlError> {
    let adding = parser.parse_keyword(Keyword::ADD);
    if !(adding || parser.parse_keyword(Keyword::REMOVE)) || !parse_word(parser, "NODE") {
        return Err(SqlError::Syntax(format!(
            "syntax error at or near \"{}\": ALTER CLUSTER takes ADD NODE <id> '<address>' or REMOVE NODE <id>",
            parser.peek_token().token
        )));
    }
    let node_id = parser.parse_literal_uint()?;
    let change = if adding {
        ClusterChange::AddNode {
            node_id,
            address: parser.parse_literal_string()?,
        }
    } else {
        ClusterChange::RemoveNode { node_id }
    };
    Ok(Statement::AlterCluster(change))
}

/// After `SET CONSTRAINTS`: `ALL` or constraint names, then `DEFERRED` or `IMMEDIATE`.
fn parse_set_constraints(parser: &mut Parser) -> Result<Statement, SqlError> {
    let names = if parser.parse_keyword(Keyword::ALL) {
        None
    } else {
        let names = parser.parse_comma_separated(|p| p.parse_object_name(false))?;
        Some(
            names
                .iter()
                .map(TableName::from_object_name)
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let deferred = match parser.parse_one_of_keywords(&[Keyword::DEFERRED, Keyword::IMMEDIATE]) {
        Some(Keyword::DEFERRED) => true,
        Some(_) => false,
        None => {
            return Err(SqlError::Syntax(format!(
                "syntax error at or near \"{}\": SET CONSTRAINTS ends with DEFERRED or IMMEDIATE",
                parser.peek_token().token
            )));
        }
    };
    Ok(Statement::SetConstraints { names, deferred })
}

/// The path operand of BACKUP/RESTORE: a quoted string, or (to be refused with the path rules
/// rather than as a syntax error) the bare tokens up to the end of the statement.
fn parse_path(parser: &mut Parser) -> ArchivePath {
    let quoted = |raw: String| ArchivePath { raw, quoted: true };
    match parser.peek_token().token {
        Token::SingleQuotedString(path)
        | Token::DoubleQuotedString(path)
        | Token::EscapedStringLiteral(path) => {
            parser.next_token();
            quoted(path)
        }
        // PostgreSQL's dialect reads "..." as a quoted identifier; the spec accepts it as a path.
        Token::Word(word) if word.quote_style == Some('"') => {
            parser.next_token();
            quoted(word.value)
        }
        _ => {
            let mut bare = String::new();
            loop {
                let token = parser.peek_token().token;
                if matches!(token, Token::EOF | Token::SemiColon) {
                    break;
                }
                bare.push_str(&parser.next_token().token.to_string());
            }
            ArchivePath {
                raw: bare,
                quoted: false,
            }
        }
    }
}

/// Consumes the next token if it is the (non-keyword) word `word`, case-insensitively.
/// PostgreSQL's `VACUUM [(options)] [FULL] [FREEZE] [VERBOSE] [ANALYZE] [tables]` and
/// `ANALYZE [(options)] [VERBOSE] [tables]`, where each table may list columns.
fn parse_vacuum(parser: &mut Parser) -> Result<Option<Statement>, SqlError> {
    let analyze_only = if parse_word(parser, "VACUUM") {
        false
    } else if parse_word(parser, "ANALYZE") || parse_word(parser, "ANALYSE") {
        true
    } else {
        return Ok(None);
    };
    if parser.consume_token(&Token::LParen) {
        // Options (`VERBOSE`, `SKIP_LOCKED false`, `PARALLEL 2`, ...) change how the work is
        // done, not what it is; their list is read and passed over.
        let mut depth = 1;
        while depth > 0 {
            match parser.next_token().token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::EOF => return Err(SqlError::Syntax("syntax error at end of input".into())),
                _ => {}
            }
        }
    }
    let flags: &[&str] = if analyze_only {
        &["VERBOSE"]
    } else {
        &["FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"]
    };
    for flag in flags {
        parse_word(parser, flag);
    }
    let mut tables = Vec::new();
    while !matches!(parser.peek_token().token, Token::EOF | Token::SemiColon) {
        let table = TableName::from_object_name(&parser.parse_object_name(false)?)?;
        let mut columns = Vec::new();
        if parser.consume_token(&Token::LParen) {
            loop {
                columns.push(parse_name(parser)?);
                if !parser.consume_token(&Token::Comma) {
                    break;
                }
            }
            parser.expect_token(&Token::RParen)?;
        }
        tables.push((table, columns));
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    Ok(Some(Statement::Vacuum {
        analyze_only,
        tables,
    }))
}

pub(super) fn parse_word(parser: &mut Parser, word: &str) -> bool {
    match parser.peek_token().token {
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) => {
            parser.next_token();
            true
        }
        _ => false,
    }
}

/// The relations a DROP names.
fn relation_names(names: &[ast::ObjectName]) -> Result<Vec<TableName>, SqlError> {
    names.iter().map(TableName::from_object_name).collect()
}

/// An identifier folded to lower case unless quoted, as PostgreSQL does.
pub(super) fn parse_name(parser: &mut Parser) -> Result<String, SqlError> {
    let ident = parser.parse_identifier()?;
    Ok(fold_ident(&ident))
}

pub fn fold_ident(ident: &ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

fn from_standard(statement: ast::Statement) -> Result<Statement, SqlError> {
    use ast::Statement as S;
    // The cursor's query gets the rewrites below once, as a query of its own.
    let mut statement = match statement {
        S::Declare { stmts } => return super::cursors::declaration(stmts, from_standard),
        S::Close { cursor } => return Ok(super::cursors::close(cursor)),
        S::Prepare {
            name,
            data_types,
            statement,
        } => return super::prepared::preparation(&name, &data_types, *statement, from_standard),
        // The values are converted when they are evaluated, as a query of their own.
        execute @ S::Execute { .. } => return super::prepared::execution(execute),
        S::Discard { object_type } => return Ok(super::prepared::discard(object_type)),
        other => other,
    };
    super::postgres_spellings::as_datafusion_spells_them(&mut statement);
    super::function_casts::casts_to_function_references(&mut statement);
    super::interval_literals::read_interval_literals(&mut statement)?;
    super::limits::check_target_lists(&statement)?;
    super::subqueries::check_expression_subqueries(&statement)?;
    super::output_names::check_order_by_names(&statement)?;
    super::output_names::order_by_output_casts(&mut statement);
    super::subquery_values::array_subqueries_as_aggregates(&mut statement);
    super::subqueries::hold_to_single_row(&mut statement);
    super::values_types::type_values_columns(&mut statement);
    super::unknown_arguments::type_literal_arguments(&mut statement);
    super::like_escapes::backslash_escaped_patterns(&mut statement)?;
    super::json_records::check_column_definitions(&statement)?;
    super::set_returning::spread_set_returning_functions(&mut statement);
    super::output_names::alias_repeated_columns(&mut statement);
    super::sort_subqueries::sort_keys_with_subqueries_as_columns(&mut statement);
    super::subquery_values::subqueries_as_aggregated_values(&mut statement);
    super::regex_substring::pattern_substrings_as_matches(&mut statement);
    super::sequences::unwrap_regclass_arguments(&mut statement);
    Ok(match statement {
        S::Query(_) | S::Explain { .. } => Statement::Query(Box::new(statement)),
        S::Set(set) => from_set(set)?,
        S::ShowVariable { variable } => Statement::Show {
            name: variable
                .iter()
                .map(fold_ident)
                .collect::<Vec<_>>()
                .join(" "),
        },
        S::Reset(reset) => Statement::Set {
            name: match reset.reset {
                ast::Reset::ALL => "all".into(),
                ast::Reset::ConfigurationParameter(name) => object_name(&name),
            },
            value: SetValue::Default,
        },
        S::CreateTable(create) => {
            Statement::CreateTable(ddl::create_table(&create, TableKind::Regular)?)
        }
        S::CreateView(create) => super::views::create_view(create)?,
        S::CreateIndex(create) => super::indexes::create_index(&create)?,
        S::CreateSchema {
            schema_name,
            if_not_exists,
            ..
        } => Statement::CreateNamespace {
            name: match schema_name {
                ast::SchemaName::Simple(name) => object_name(&name),
                other => {
                    return Err(SqlError::Unsupported(format!(
                        "CREATE SCHEMA {other} is not supported"
                    )));
                }
            },
            if_not_exists,
        },
        S::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => match object_type {
            ast::ObjectType::Table => Statement::DropTable {
                tables: relation_names(&names)?,
                if_exists,
                cascade,
            },
            ast::ObjectType::View => Statement::DropView {
                names: relation_names(&names)?,
                if_exists,
                cascade,
            },
            ast::ObjectType::Index => Statement::DropIndex {
                names: relation_names(&names)?,
                if_exists,
            },
            ast::ObjectType::Sequence => Statement::DropSequence {
                names: relation_names(&names)?,
                if_exists,
                cascade,
            },
            ast::ObjectType::Schema if names.len() == 1 => Statement::DropNamespace {
                name: object_name(&names[0]),
                if_exists,
                cascade,
            },
            other => {
                return Err(SqlError::Unsupported(format!(
                    "DROP {other} is not supported"
                )));
            }
        },
        S::AlterTable(alter) => super::alter::from_alter_table(&alter)?,
        S::Comment {
            object_type,
            object_name,
            comment,
            ..
        } => match object_type {
            ast::CommentObject::Table => Statement::Comment {
                table: TableName::from_object_name(&object_name)?,
                column: None,
                comment,
            },
            ast::CommentObject::Column => {
                let mut parts = object_name.0.clone();
                let column = match parts.pop().as_ref().and_then(|p| p.as_ident()) {
                    Some(ident) if !parts.is_empty() => fold_ident(ident),
                    _ => {
                        return Err(SqlError::Syntax(
                            "column name must be qualified: COMMENT ON COLUMN table.column".into(),
                        ));
                    }
                };
                Statement::Comment {
                    table: TableName::from_object_name(&ast::ObjectName(parts))?,
                    column: Some(column),
                    comment,
                }
            }
            other => {
                return Err(SqlError::Unsupported(format!(
                    "COMMENT ON {other} is not supported"
                )));
            }
        },
        S::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            values,
        } => super::copy::copy(source, to, target, &options, &legacy_options, &values)?,
        S::Truncate(truncate) => Statement::Truncate {
            tables: truncate
                .table_names
                .iter()
                .map(|t| TableName::from_object_name(&t.name))
                .collect::<Result<_, _>>()?,
            restart_identity: matches!(
                truncate.identity,
                Some(ast::TruncateIdentityOption::Restart)
            ),
            cascade: matches!(truncate.cascade, Some(ast::CascadeOption::Cascade)),
        },
        S::Insert(_) => Statement::Insert(Box::new(statement)),
        S::Update(_) => Statement::Update(Box::new(statement)),
        S::Delete(_) => Statement::Delete(Box::new(statement)),
        S::StartTransaction { .. } => Statement::Begin,
        S::Commit { .. } => Statement::Commit,
        S::Rollback {
            savepoint: None, ..
        } => Statement::Rollback,
        S::Rollback {
            savepoint: Some(name),
            ..
        } => Statement::RollbackToSavepoint {
            name: fold_ident(&name),
        },
        S::Deallocate { name, .. } => Statement::Deallocate {
            name: (!name.value.eq_ignore_ascii_case("all") || name.quote_style.is_some())
                .then(|| fold_ident(&name)),
        },
        S::Savepoint { name } => Statement::Savepoint {
            name: fold_ident(&name),
        },
        S::ReleaseSavepoint { name } => Statement::ReleaseSavepoint {
            name: fold_ident(&name),
        },
        other => {
            return Err(SqlError::Unsupported(format!(
                "statement not supported: {}",
                first_words(&other.to_string())
            )));
        }
    })
}

fn from_set(set: ast::Set) -> Result<Statement, SqlError> {
    match set {
        ast::Set::SingleAssignment {
            variable, values, ..
        } => {
            let name = object_name(&variable);
            // A list of names keeps the quotes a name needs (`"$user", public`).
            let quotes_names = name == "search_path";
            Ok(Statement::Set {
                value: set_value(&values, quotes_names),
                name,
            })
        }
        ast::Set::SetTimeZone { value, .. } => Ok(Statement::Set {
            name: "timezone".into(),
            value: set_value(std::slice::from_ref(&value), false),
        }),
        // `SET ROLE name` / `SET ROLE NONE`: the `role` parameter, as PostgreSQL keeps it.
        ast::Set::SetRole { role_name, .. } => Ok(Statement::Set {
            name: "role".into(),
            value: SetValue::Value(role_name.map_or_else(|| "none".into(), |r| fold_ident(&r))),
        }),
        ast::Set::SetNames { charset_name, .. } => Ok(Statement::Set {
            name: "client_encoding".into(),
            value: SetValue::Value(charset_name.value),
        }),
        other => Err(SqlError::Unsupported(format!(
            "statement not supported: {}",
            first_words(&other.to_string())
        ))),
    }
}

fn object_name(name: &ast::ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|part| part.as_ident())
        .map(fold_ident)
        .collect::<Vec<_>>()
        .join(".")
}

fn set_value(values: &[Expr], quotes_names: bool) -> SetValue {
    if let [Expr::Identifier(ident)] = values
        && ident.quote_style.is_none()
        && ident.value.eq_ignore_ascii_case("default")
    {
        return SetValue::Default;
    }
    SetValue::Value(
        values
            .iter()
            .map(|expr| match expr {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                },
                Expr::Identifier(ident)
                    if quotes_names
                        && ident.quote_style.is_some()
                        && !ident.value.chars().enumerate().all(|(i, c)| {
                            c.is_ascii_lowercase() || c == '_' || (i > 0 && c.is_ascii_digit())
                        }) =>
                {
                    format!("\"{}\"", ident.value.replace('"', "\"\""))
                }
                Expr::Identifier(ident) => ident.value.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The first two words of a statement, for "not supported" messages.
fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    #[test]
    fn several_statements_and_stray_semicolons() {
        let statements = parse(";SELECT 1;; BEGIN; COMMIT").unwrap();
        assert_eq!(statements.len(), 3);
        assert!(matches!(statements[1], Statement::Begin));
    }

    #[test]
    fn create_user_with_role_and_case_folding() {
        let statements = parse("CREATE USER Alice WITH PASSWORD 's3cret' ROLE dba").unwrap();
        match &statements[0] {
            Statement::CreateUser {
                user_id,
                password,
                role,
            } => {
                assert_eq!(user_id, "alice");
                assert_eq!(password, "s3cret");
                assert_eq!(*role, Role::Dba);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_role_and_missing_password_are_syntax_errors() {
        assert!(matches!(
            parse("CREATE USER a WITH PASSWORD 'x' ROLE king"),
            Err(SqlError::Syntax(_))
        ));
        assert!(matches!(parse("CREATE USER a"), Err(SqlError::Syntax(_))));
        assert!(matches!(
            parse("CREATE USER a WITH PASSWORD bare"),
            Err(SqlError::Syntax(_))
        ));
    }

    #[test]
    fn set_forms_used_by_drivers() {
        for (sql, name, value) in [
            ("SET extra_float_digits = 3", "extra_float_digits", "3"),
            ("SET application_name TO 'psql'", "application_name", "psql"),
            ("SET SESSION search_path = public", "search_path", "public"),
            ("SET TIME ZONE 'UTC'", "timezone", "UTC"),
        ] {
            match &parse(sql).unwrap()[0] {
                Statement::Set { name: n, value: v } => {
                    assert_eq!(n, name, "{sql}");
                    assert_eq!(*v, SetValue::Value(value.into()), "{sql}");
                }
                other => panic!("{sql}: {other:?}"),
            }
        }
    }

    #[test]
    fn unsupported_statements_say_so() {
        assert!(matches!(
            parse("CREATE INDEX i ON t ((a + 1))"),
            Err(SqlError::Unsupported(_))
        ));
    }
}
