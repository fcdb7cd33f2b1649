//! Catalog queries from PostgreSQL tools (psql's `\d`, drivers' type lookups): rewritten by
//! datafusion-pg-catalog's parser, which matches psql's exact text, into forms DataFusion plans.

use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArguments, SelectItem, SetExpr, VisitMut, VisitorMut,
};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

static COMPATIBILITY: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// True when `text` reads PostgreSQL's catalogs or uses its catalog casts.
pub fn mentions_catalog(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("pg_catalog")
        || lower.contains("pg_class")
        || lower.contains("pg_type")
        || lower.contains("pg_namespace")
        || lower.contains("pg_roles")
        || lower.contains("::reg")
        || lower.contains("information_schema")
}

/// The rewritten statements, when every statement in `text` is a query.
pub fn parse(text: &str) -> Option<Vec<ast::Statement>> {
    let rewritten = jdbc_primary_keys(text);
    let text = rewritten.as_deref().unwrap_or(text);
    let mut statements = COMPATIBILITY.parse(text).ok()?;
    if statements.is_empty()
        || !statements
            .iter()
            .all(|s| matches!(s, ast::Statement::Query(_)))
    {
        return None;
    }
    for statement in &mut statements {
        let _ = VisitMut::visit(statement, &mut ArraySubqueries);
        let _ = VisitMut::visit(statement, &mut LikeEscapes);
        let _ = VisitMut::visit(statement, &mut ScalarSubqueries);
    }
    Some(statements)
}

/// `ARRAY(SELECT e FROM ... ORDER BY ...)` becomes `(SELECT array_agg(e ORDER BY ...) FROM ...)`,
/// which DataFusion plans, correlated references included.
struct ArraySubqueries;

impl VisitorMut for ArraySubqueries {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(function) = expr else {
            return ControlFlow::Continue(());
        };
        let is_array = function
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| i.value.eq_ignore_ascii_case("array"));
        let FunctionArguments::Subquery(query) = &function.args else {
            return ControlFlow::Continue(());
        };
        if !is_array {
            return ControlFlow::Continue(());
        }
        let mut query = query.as_ref().clone();
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let element = match select.projection.as_slice() {
            [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => e.clone(),
            _ => return ControlFlow::Continue(()),
        };
        let order = match query.order_by.take() {
            Some(order_by) => match &order_by.kind {
                ast::OrderByKind::Expressions(items) if !items.is_empty() => {
                    let keys: Vec<String> = items
                        .iter()
                        .map(|item| match &item.expr {
                            // `ORDER BY 1` names the (only) select item.
                            Expr::Value(_) => element.to_string(),
                            other => other.to_string(),
                        })
                        .collect();
                    format!(" ORDER BY {}", keys.join(", "))
                }
                _ => String::new(),
            },
            None => String::new(),
        };
        let Ok(aggregate) = super::parse_expr(&format!("array_agg({element}{order})")) else {
            return ControlFlow::Continue(());
        };
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
        *expr = Expr::Subquery(Box::new(query));
        ControlFlow::Continue(())
    }
}

/// Aggregates a query may already use in its only select item.
const AGGREGATES: [&str; 10] = [
    "array_agg",
    "count",
    "max",
    "min",
    "sum",
    "avg",
    "bool_and",
    "bool_or",
    "string_agg",
    "first_value",
];

/// A scalar subquery `(SELECT e FROM ... WHERE <correlated>)` becomes
/// `(SELECT first_value(e) FROM ...)`: DataFusion only decorrelates aggregated scalar
/// subqueries, and catalog lookups (SQLAlchemy's column defaults, identity options) return at
/// most one row anyway.
struct ScalarSubqueries;

impl VisitorMut for ScalarSubqueries {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Subquery(query) = expr else {
            return ControlFlow::Continue(());
        };
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let no_grouping = match &select.group_by {
            ast::GroupByExpr::Expressions(exprs, _) => exprs.is_empty(),
            ast::GroupByExpr::All(_) => false,
        };
        if !no_grouping || select.having.is_some() || select.distinct.is_some() {
            return ControlFlow::Continue(());
        }
        let item = match select.projection.as_mut_slice() {
            [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => e,
            _ => return ControlFlow::Continue(()),
        };
        let aggregated = matches!(item, Expr::Function(f) if f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| AGGREGATES.contains(&i.value.to_ascii_lowercase().as_str())));
        if aggregated || matches!(item, Expr::Value(_)) {
            return ControlFlow::Continue(());
        }
        if let Ok(wrapped) = super::parse_expr(&format!("first_value({item})")) {
            *item = wrapped;
        }
        ControlFlow::Continue(())
    }
}

/// Name of the function that turns a LIKE pattern with another escape character into one
/// escaped with backslashes (the only escape DataFusion's LIKE knows).
pub const LIKE_PATTERN_FUNCTION: &str = "kalamdb_like_pattern";

/// `x LIKE p ESCAPE '/'` (SQLAlchemy's schema listing) becomes
/// `x LIKE kalamdb_like_pattern(p, '/')`.
struct LikeEscapes;

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
        if let Ok(rewritten) = super::parse_expr(&call) {
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

/// The table in `pg_catalog` listing every primary-key column.
pub const PRIMARY_KEYS_TABLE: &str = "kalamdb_primary_keys";

/// pgJDBC's `DatabaseMetaData.getPrimaryKeys` expands `pg_index.indkey` with
/// `information_schema._pg_expandarray` and reads fields of the composite it returns, which
/// DataFusion cannot plan. The query is recognised by those parts and answered from
/// `pg_catalog.kalamdb_primary_keys` with the same columns, filters and order.
fn jdbc_primary_keys(text: &str) -> Option<String> {
    if !(text.contains("_pg_expandarray(i.indkey)") && text.contains("indisprimary")) {
        return None;
    }
    let mut conditions = Vec::new();
    for (marker, column) in [
        ("n.nspname = ", "namespace"),
        ("ct.relname = ", "table_name"),
    ] {
        if let Some(value) = text
            .find(marker)
            .and_then(|at| quoted_literal(&text[at + marker.len()..]))
        {
            conditions.push(format!("{column} = '{}'", value.replace('\'', "''")));
        }
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    Some(format!(
        "SELECT CAST(NULL AS TEXT) AS table_cat, namespace AS table_schem, table_name, \
         column_name, key_seq, pk_name FROM pg_catalog.{PRIMARY_KEYS_TABLE}{filter} \
         ORDER BY table_name, pk_name, key_seq"
    ))
}

/// The value of a string literal at the start of `text` (`'x'` or `E'x'`, with `''` inside).
fn quoted_literal(text: &str) -> Option<String> {
    let rest = text.strip_prefix('E').unwrap_or(text).strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                value.push('\'');
            }
            '\'' => return Some(value),
            '\\' => value.push(chars.next()?),
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_with_another_escape_become_backslash_escaped() {
        assert_eq!(backslash_like_pattern("pg/_%", "/"), "pg\\_%");
        assert_eq!(backslash_like_pattern("a//b", "/"), "a/b");
        assert_eq!(backslash_like_pattern("a\\b/%", "/"), "a\\\\b\\%");
    }
}
