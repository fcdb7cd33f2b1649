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
