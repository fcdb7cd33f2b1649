//! ORDER BY keys holding a subquery (`ORDER BY CASE WHEN x IN (SELECT ...) THEN 0 END`, as
//! Grafana sorts the tables of its search path first). PostgreSQL sorts by any expression;
//! DataFusion plans subqueries only in projections, filters, joins and aggregates. Such a
//! query's sort keys become hidden columns of the SELECT, and an outer query sorts by them and
//! returns the original columns under their original names.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, Ident, OrderByKind, SelectItem, SetExpr, TableFactor,
};

use super::output_names::{REPEAT_ALIAS_PREFIX, output_name};

/// The alias of the derived table the original query becomes.
const SORTED_ALIAS: &str = "__kalamdb_sorted";
/// The prefix of the hidden sort-key columns.
const SORT_KEY_PREFIX: &str = "__kalamdb_sort_";

/// Rewrites the statement's top-level query when one of its ORDER BY keys holds a subquery.
pub fn sort_keys_with_subqueries_as_columns(statement: &mut ast::Statement) {
    if let ast::Statement::Query(query) = statement {
        rewrite(query);
    }
}

fn rewrite(query: &mut Box<ast::Query>) {
    let Some(OrderByKind::Expressions(keys)) = query.order_by.as_ref().map(|o| &o.kind) else {
        return;
    };
    if !keys.iter().any(|key| holds_subquery(&key.expr)) {
        return;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    // DISTINCT would also compare the hidden keys, and PostgreSQL requires a DISTINCT query's
    // keys to be among its columns anyway.
    if select.distinct.is_some() || select.projection.is_empty() {
        return;
    }
    let all_single_columns = select.projection.iter().all(|item| {
        matches!(
            item,
            SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
        )
    });
    if !all_single_columns {
        return;
    }
    let output_names: Vec<String> = select
        .projection
        .iter_mut()
        .enumerate()
        .map(|(position, item)| name_item(item, position))
        .collect();

    let Some(order_by) = query.order_by.as_mut() else {
        return;
    };
    let OrderByKind::Expressions(keys) = &mut order_by.kind else {
        return;
    };
    let mut hidden = Vec::new();
    for key in keys.iter_mut() {
        if is_output_reference(&key.expr, &output_names) {
            continue;
        }
        let alias = Ident::new(format!("{SORT_KEY_PREFIX}{}", hidden.len()));
        let expr = std::mem::replace(&mut key.expr, Expr::Identifier(alias.clone()));
        hidden.push(SelectItem::ExprWithAlias { expr, alias });
    }
    select.projection.extend(hidden);

    let outer_items = select
        .projection
        .iter()
        .take(output_names.len())
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(SelectItem::ExprWithAlias {
                expr: Expr::CompoundIdentifier(vec![Ident::new(SORTED_ALIAS), alias.clone()]),
                alias: alias.clone(),
            }),
            _ => None,
        })
        .collect();
    let Some(mut outer) = skeleton() else {
        return;
    };
    outer.order_by = query.order_by.take();
    outer.limit_clause = query.limit_clause.take();
    outer.fetch = query.fetch.take();
    outer.locks = std::mem::take(&mut query.locks);
    if let SetExpr::Select(outer_select) = outer.body.as_mut() {
        outer_select.projection = outer_items;
    }
    let inner = std::mem::replace(query, outer);
    if let SetExpr::Select(outer_select) = query.body.as_mut()
        && let Some(TableFactor::Derived { subquery, .. }) = outer_select
            .from
            .first_mut()
            .map(|table| &mut table.relation)
    {
        *subquery = inner;
    }
}

/// Gives the item an alias the outer query can name it by, and returns its output name. An
/// unnamed item gets a repeat alias, which the executor reads as the name PostgreSQL gives it.
fn name_item(item: &mut SelectItem, position: usize) -> String {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => {
            match super::output_names::repeated_name(alias) {
                Some(name) => name,
                None => super::fold(alias),
            }
        }
        SelectItem::UnnamedExpr(expr) => {
            let name = output_name(expr);
            let alias = Ident::new(format!("{REPEAT_ALIAS_PREFIX}{position}_{name}"));
            *item = SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias,
            };
            name
        }
        _ => String::new(),
    }
}

/// A position (`ORDER BY 1`) or an output column's name, which the outer query resolves.
fn is_output_reference(expr: &Expr, output_names: &[String]) -> bool {
    match expr {
        Expr::Value(value) => matches!(value.value, ast::Value::Number(..)),
        Expr::Identifier(ident) => output_names.contains(&super::fold(ident)),
        _ => false,
    }
}

fn holds_subquery(expr: &Expr) -> bool {
    ast::visit_expressions(expr, |e| match e {
        Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// `SELECT 1 FROM (SELECT 1) AS __kalamdb_sorted`, whose projection and derived table are
/// then replaced.
fn skeleton() -> Option<Box<ast::Query>> {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let sql = format!("SELECT 1 FROM (SELECT 1) AS {SORTED_ALIAS}");
    match datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, &sql)
        .ok()?
        .pop()?
    {
        ast::Statement::Query(query) => Some(query),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        crate::sql::rewritten_by(sql, sort_keys_with_subqueries_as_columns)
    }

    #[test]
    fn a_key_with_a_subquery_becomes_a_hidden_column_sorted_outside() {
        assert_eq!(
            rewritten(
                "SELECT a AS x, b + 1 FROM t ORDER BY a IN (SELECT c FROM u) DESC, 1 LIMIT 3"
            ),
            "SELECT __kalamdb_sorted.x AS x, __kalamdb_sorted.__kalamdb_repeat_1_?column? \
             AS __kalamdb_repeat_1_?column? FROM (SELECT a AS x, b + 1 AS \
             __kalamdb_repeat_1_?column?, a IN (SELECT c FROM u) AS __kalamdb_sort_0 FROM t) \
             AS __kalamdb_sorted ORDER BY __kalamdb_sort_0 DESC, 1 LIMIT 3"
        );
    }

    #[test]
    fn queries_without_such_keys_or_with_wildcards_are_left_alone() {
        for sql in [
            "SELECT a FROM t ORDER BY a",
            "SELECT * FROM t ORDER BY (SELECT 1)",
            "SELECT DISTINCT a FROM t ORDER BY (SELECT 1)",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }
}
