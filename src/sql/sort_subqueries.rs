//! ORDER BY keys holding a subquery (`ORDER BY CASE WHEN x IN (SELECT ...) THEN 0 END`, as
//! Grafana sorts the tables of its search path first), and `DISTINCT ON` over a select list
//! holding a correlated subquery (pgAdmin's index list). PostgreSQL sorts and picks rows by any
//! expression; DataFusion plans subqueries only in projections, filters, joins and aggregates,
//! and plans DISTINCT ON as an aggregate over the select list. Such a query's sort and
//! DISTINCT ON keys become hidden columns of the SELECT, and an outer query picks and sorts by
//! them and returns the original columns under their original names.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, Ident, OrderByKind, SelectItem, SetExpr, TableFactor,
};

use super::output_names::{REPEAT_ALIAS_PREFIX, output_name};

/// The alias of the derived table the original query becomes.
const SORTED_ALIAS: &str = "__kalamdb_sorted";
/// The prefix of the hidden sort-key columns.
const SORT_KEY_PREFIX: &str = "__kalamdb_sort_";
/// The prefix of the hidden DISTINCT ON key columns.
const DISTINCT_KEY_PREFIX: &str = "__kalamdb_distinct_";

/// Rewrites the statement's top-level query when one of its ORDER BY keys holds a subquery,
/// or when it is a DISTINCT ON query whose select list holds one.
pub fn sort_keys_with_subqueries_as_columns(statement: &mut ast::Statement) {
    if let ast::Statement::Query(query) = statement {
        rewrite(query);
    }
}

fn rewrite(query: &mut Box<ast::Query>) {
    let sorts_by_subquery = match query.order_by.as_ref().map(|o| &o.kind) {
        Some(OrderByKind::Expressions(keys)) => keys.iter().any(|key| holds_subquery(&key.expr)),
        _ => false,
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let picks_over_subquery = matches!(select.distinct, Some(ast::Distinct::On(_)))
        && select.projection.iter().any(|item| match item {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                holds_subquery(expr)
            }
            _ => false,
        });
    if !sorts_by_subquery && !picks_over_subquery {
        return;
    }
    // DISTINCT would also compare the hidden keys, and PostgreSQL requires a DISTINCT query's
    // keys to be among its columns anyway.
    if matches!(select.distinct, Some(ast::Distinct::Distinct)) || select.projection.is_empty() {
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
    // Each output name with the alias the outer query knows the column by.
    let outputs: Vec<(String, Ident)> = output_names
        .iter()
        .zip(&select.projection)
        .filter_map(|(name, item)| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some((name.clone(), alias.clone())),
            _ => None,
        })
        .collect();

    let mut hidden = Vec::new();
    // DISTINCT ON keys: the outer query picks by hidden columns holding them.
    let mut picked_by: Vec<(Expr, Ident)> = Vec::new();
    let outer_distinct = match select.distinct.take() {
        Some(ast::Distinct::On(keys)) => Some(ast::Distinct::On(
            keys.into_iter()
                .map(|key| {
                    if let Some(reference) = output_reference(&key, &outputs) {
                        return reference;
                    }
                    let alias = Ident::new(format!("{DISTINCT_KEY_PREFIX}{}", picked_by.len()));
                    hidden.push(SelectItem::ExprWithAlias {
                        expr: key.clone(),
                        alias: alias.clone(),
                    });
                    picked_by.push((key, alias.clone()));
                    Expr::Identifier(alias)
                })
                .collect(),
        )),
        other => other,
    };
    if let Some(order_by) = query.order_by.as_mut()
        && let OrderByKind::Expressions(keys) = &mut order_by.kind
    {
        let mut sort_keys = 0;
        for key in keys.iter_mut() {
            if let Some(reference) = output_reference(&key.expr, &outputs) {
                key.expr = reference;
                continue;
            }
            // A DISTINCT ON key must stay the same expression as the sort key it leads.
            if let Some((_, alias)) = picked_by.iter().find(|(picked, _)| *picked == key.expr) {
                key.expr = Expr::Identifier(alias.clone());
                continue;
            }
            let alias = Ident::new(format!("{SORT_KEY_PREFIX}{sort_keys}"));
            sort_keys += 1;
            let expr = std::mem::replace(&mut key.expr, Expr::Identifier(alias.clone()));
            hidden.push(SelectItem::ExprWithAlias { expr, alias });
        }
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
        outer_select.distinct = outer_distinct;
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

/// A position (`ORDER BY 1`) or an output column's name, as the outer query names it.
fn output_reference(expr: &Expr, outputs: &[(String, Ident)]) -> Option<Expr> {
    match expr {
        Expr::Value(value) if matches!(value.value, ast::Value::Number(..)) => Some(expr.clone()),
        Expr::Identifier(ident) => {
            let name = super::fold(ident);
            outputs
                .iter()
                .find(|(output, _)| *output == name)
                .map(|(_, alias)| Expr::Identifier(alias.clone()))
        }
        _ => None,
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
    fn distinct_on_over_a_subquery_picks_by_hidden_columns_outside() {
        assert_eq!(
            rewritten(
                "SELECT DISTINCT ON (c.relname) c.oid, (SELECT count(*) FROM i WHERE i.r = c.oid) \
                 AS n FROM c ORDER BY c.relname, c.oid DESC"
            ),
            "SELECT DISTINCT ON (__kalamdb_distinct_0) __kalamdb_sorted.__kalamdb_repeat_0_oid \
             AS __kalamdb_repeat_0_oid, __kalamdb_sorted.n AS n FROM (SELECT c.oid AS \
             __kalamdb_repeat_0_oid, (SELECT count(*) FROM i WHERE i.r = c.oid) AS n, c.relname \
             AS __kalamdb_distinct_0, c.oid AS __kalamdb_sort_0 FROM c) AS __kalamdb_sorted \
             ORDER BY __kalamdb_distinct_0, __kalamdb_sort_0 DESC"
        );
    }

    #[test]
    fn output_names_in_the_keys_name_the_outer_columns() {
        assert_eq!(
            rewritten(
                "SELECT DISTINCT ON (dept) dept, (SELECT 1) AS one FROM e ORDER BY dept, one"
            ),
            "SELECT DISTINCT ON (__kalamdb_repeat_0_dept) __kalamdb_sorted.__kalamdb_repeat_0_dept \
             AS __kalamdb_repeat_0_dept, __kalamdb_sorted.one AS one FROM (SELECT dept AS \
             __kalamdb_repeat_0_dept, (SELECT 1) AS one FROM e) AS __kalamdb_sorted ORDER BY \
             __kalamdb_repeat_0_dept, one"
        );
    }

    #[test]
    fn queries_without_such_keys_or_with_wildcards_are_left_alone() {
        for sql in [
            "SELECT a FROM t ORDER BY a",
            "SELECT * FROM t ORDER BY (SELECT 1)",
            "SELECT DISTINCT a FROM t ORDER BY (SELECT 1)",
            "SELECT DISTINCT ON (a) a, b FROM t ORDER BY a",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }
}
