//! Repeated result columns. PostgreSQL lets a SELECT list produce the same column twice
//! (`SELECT 1, 1`, `SELECT id, id`, two unnamed scalar subqueries); DataFusion needs unique
//! names. A repeat gets a reserved alias; the result's names are PostgreSQL's all the same
//! (the executor names every column as PostgreSQL would, seeing through these aliases).

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{self, Expr, Ident, SelectItem, SetExpr};

/// The prefix of the aliases given to repeated select items.
pub const REPEAT_ALIAS_PREFIX: &str = "__kalamdb_repeat_";

/// Gives every repeated unnamed item of the statement's top-level SELECT lists a unique alias.
pub fn alias_repeated_columns(statement: &mut ast::Statement) {
    if let ast::Statement::Query(query) = statement {
        alias_in(query.body.as_mut());
    }
}

fn alias_in(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => alias_items(&mut select.projection),
        SetExpr::Query(query) => alias_in(query.body.as_mut()),
        SetExpr::SetOperation { left, right, .. } => {
            alias_in(left);
            alias_in(right);
        }
        _ => {}
    }
}

fn alias_items(items: &mut [SelectItem]) {
    let mut seen = HashSet::new();
    for (position, item) in items.iter_mut().enumerate() {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        // DataFusion names every scalar subquery alike.
        let key = match &*expr {
            Expr::Subquery(_) => "(subquery)".to_owned(),
            other => other.to_string(),
        };
        if seen.insert(key) {
            continue;
        }
        *item = SelectItem::ExprWithAlias {
            expr: expr.clone(),
            alias: Ident::new(format!("{REPEAT_ALIAS_PREFIX}{position}")),
        };
    }
}
