//! CREATE INDEX and DROP INDEX as KalamDB statements: the index name, the table and the plain
//! columns it indexes. Forms whose meaning KalamDB's indexes do not have (expressions, partial
//! indexes, INCLUDE, descending order) are refused, never silently ignored.

use datafusion::sql::sqlparser::ast;

use super::ddl::TableName;
use super::parse::fold_ident;
use super::{SqlError, Statement};

/// Operator classes that compare text bytewise.
const PATTERN_OPS: [&str; 3] = [
    "text_pattern_ops",
    "varchar_pattern_ops",
    "bpchar_pattern_ops",
];

pub(super) fn create_index(create: &ast::CreateIndex) -> Result<Statement, SqlError> {
    let unsupported = |what: &str| Err(SqlError::Unsupported(format!("{what} is not supported")));
    if create.predicate.is_some() {
        return unsupported("a partial index (CREATE INDEX ... WHERE)");
    }
    if !create.include.is_empty() {
        return unsupported("CREATE INDEX ... INCLUDE");
    }
    if !create.with.is_empty() || !create.index_options.is_empty() {
        return unsupported("an index storage parameter");
    }
    if create.nulls_distinct == Some(false) {
        return unsupported("NULLS NOT DISTINCT");
    }
    match &create.using {
        None => {}
        Some(ast::IndexType::BTree | ast::IndexType::Hash) => {}
        Some(other) => {
            return Err(SqlError::Unsupported(format!(
                "access method \"{}\" is not supported",
                other.to_string().to_lowercase()
            )));
        }
    }
    let mut columns = Vec::with_capacity(create.columns.len());
    let mut pattern_ops = Vec::new();
    for column in &create.columns {
        let ast::Expr::Identifier(ident) = &column.column.expr else {
            return unsupported("an index on an expression");
        };
        if let Some(class) = &column.operator_class {
            let class = class.to_string().to_ascii_lowercase();
            let class = class.strip_prefix("pg_catalog.").unwrap_or(&class);
            // Pattern classes order text bytewise, the order every KalamDB index keeps: an
            // index with one serves LIKE 'prefix%' as PostgreSQL's does (Django creates them).
            if !PATTERN_OPS.contains(&class) {
                return unsupported(&format!("the index operator class {class}"));
            }
            pattern_ops.push((fold_ident(ident), class.to_owned()));
        }
        if column.column.options.asc == Some(false)
            || column.column.options.nulls_first == Some(true)
        {
            return unsupported("DESC and NULLS FIRST in an index");
        }
        columns.push(fold_ident(ident));
    }
    let name = match &create.name {
        None => None,
        Some(name) => {
            let name = TableName::from_object_name(name)?;
            if name.namespace.is_some() {
                return Err(SqlError::Syntax(
                    "an index is created in its table's schema: its name cannot be qualified"
                        .into(),
                ));
            }
            Some(name.name)
        }
    };
    Ok(Statement::CreateIndex {
        name,
        table: TableName::from_object_name(&create.table_name)?,
        columns,
        unique: create.unique,
        if_not_exists: create.if_not_exists,
        pattern_ops,
    })
}
