//! Subqueries used as values that DataFusion cannot join as written: `EXISTS` and `x IN
//! (SELECT ...)` in a select list (DataFusion joins them only as filters), and a scalar
//! subquery limited to one row (`ORDER BY ... LIMIT 1`). Where the subquery's shape allows,
//! each becomes an aggregated scalar subquery, which DataFusion joins, with PostgreSQL's
//! meaning: `IN` is true when a row matches, false when none can, and NULL when a NULL makes
//! it unknown. The others the executor answers once per outer row, which is slower on large
//! tables but takes any shape.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArguments, Ident, LimitClause, OrderByKind, SelectItem, SetExpr, VisitMut,
    VisitorMut,
};

use super::output_names::{REPEAT_ALIAS_PREFIX, output_name};
use super::parse_expr;
use super::subqueries::aggregates;

/// Rewrites the subqueries of `statement` described in the module comment.
pub fn subqueries_as_aggregated_values(statement: &mut ast::Statement) {
    let _ = VisitMut::visit(statement, &mut SelectLists);
    let _ = VisitMut::visit(statement, &mut FirstRow);
}

/// Visits every query's select list, rewriting `EXISTS` and `IN` there but not inside the
/// subqueries they contain (those are visited as queries of their own).
struct SelectLists;

impl VisitorMut for SelectLists {
    type Break = ();
    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        for (position, item) in select.projection.iter_mut().enumerate() {
            let unnamed = matches!(item, SelectItem::UnnamedExpr(_));
            let (SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) = item
            else {
                continue;
            };
            // The column keeps the name PostgreSQL gives the expression as written.
            let name = unnamed.then(|| output_name(expr));
            let mut level = OwnLevel {
                depth: 0,
                rewrote: false,
            };
            let _ = VisitMut::visit(expr, &mut level);
            if level.rewrote
                && let Some(name) = name
            {
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::new(format!("{REPEAT_ALIAS_PREFIX}{position}_{name}")),
                };
            }
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites predicate subqueries of one expression, outside any nested query.
struct OwnLevel {
    depth: usize,
    /// Whether a subquery of the expression was rewritten.
    rewrote: bool,
}

impl VisitorMut for OwnLevel {
    type Break = ();
    fn pre_visit_query(&mut self, _query: &mut ast::Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _query: &mut ast::Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        let rewritten = match expr {
            Expr::Exists { subquery, negated } => counted(subquery, None)
                .map(|count| format!("(({count}) {})", if *negated { "= 0" } else { "> 0" })),
            Expr::InSubquery {
                expr: needle,
                subquery,
                negated,
            } => membership(needle, subquery, *negated),
            _ => None,
        };
        if let Some(text) = rewritten
            && let Ok(value) = parse_expr(&text)
        {
            *expr = value;
            self.rewrote = true;
        }
        ControlFlow::Continue(())
    }
}

/// `x IN (q)` with PostgreSQL's three-valued answer, as counts of q's rows. Inside the
/// subquery's FROM an unqualified column of the needle could name one of the subquery's own
/// columns; such an `IN` is left to the executor, which answers it per outer row.
fn membership(needle: &Expr, subquery: &ast::Query, negated: bool) -> Option<String> {
    if reads_unqualified_column(needle) {
        return None;
    }
    let matching = counted(subquery, Some(&|value| format!("({value}) = ({needle})")))?;
    let any = counted(subquery, None)?;
    let nulls = counted(subquery, Some(&|value| format!("({value}) IS NULL")))?;
    let answer = format!(
        "CASE WHEN ({matching}) > 0 THEN true WHEN ({any}) = 0 THEN false \
         WHEN ({needle}) IS NULL OR ({nulls}) > 0 THEN NULL ELSE false END"
    );
    Some(if negated {
        format!("(NOT ({answer}))")
    } else {
        format!("({answer})")
    })
}

/// `SELECT count(*)` over the rows of `subquery` (those whose value meets `condition`), when
/// it is a plain SELECT: it keeps its FROM and WHERE, so a correlation in its WHERE is
/// decorrelated as usual. Any other query is left to the executor, which runs it per outer
/// row (a derived table to count over could not read the outer row).
fn counted(subquery: &ast::Query, condition: Option<&dyn Fn(&Expr) -> String>) -> Option<String> {
    let select = plain_select(subquery)?;
    let value = single_value(&select.projection)?;
    if aggregates(value) {
        return None;
    }
    let mut counted = select.clone();
    counted.projection = vec![SelectItem::UnnamedExpr(parse_expr("count(*)").ok()?)];
    if let Some(condition) = condition {
        let condition = parse_expr(&condition(value)).ok()?;
        counted.selection = Some(match counted.selection.take() {
            Some(filter) => parse_expr(&format!("({filter}) AND ({condition})")).ok()?,
            None => condition,
        });
    }
    Some(counted.to_string())
}

fn reads_unqualified_column(expr: &Expr) -> bool {
    ast::visit_expressions(expr, |e| match e {
        Expr::Identifier(_) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// The SELECT of a query without grouping, DISTINCT, ordering, limits or a WITH clause.
fn plain_select(query: &ast::Query) -> Option<&ast::Select> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let grouped = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
        ast::GroupByExpr::All(_) => true,
    };
    let shaped = grouped
        || select.having.is_some()
        || select.distinct.is_some()
        || query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some();
    (!shaped).then_some(select.as_ref())
}

fn single_value(items: &[SelectItem]) -> Option<&Expr> {
    match items {
        [SelectItem::UnnamedExpr(expr)] | [SelectItem::ExprWithAlias { expr, .. }] => Some(expr),
        _ => None,
    }
}

/// A scalar subquery limited to its first row (`LIMIT 1`, or `FETCH FIRST 1 ROW`): an
/// aggregate answers in one row already, so the limit goes; otherwise the value becomes
/// `first_value(value ORDER BY keys)`, which is the first row's value, NULL without rows.
struct FirstRow;

impl VisitorMut for FirstRow {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Subquery(query) = expr {
            limit_to_aggregate(query);
        }
        ControlFlow::Continue(())
    }
}

fn limit_to_aggregate(query: &mut ast::Query) {
    let one_row = match (&query.limit_clause, &query.fetch) {
        (
            Some(LimitClause::LimitOffset {
                limit: Some(limit),
                offset: None,
                limit_by,
            }),
            None,
        ) => limit_by.is_empty() && limit.to_string() == "1",
        (None, Some(fetch)) => {
            !fetch.percent && fetch.quantity.as_ref().is_none_or(|q| q.to_string() == "1")
        }
        _ => false,
    };
    if !one_row || query.with.is_some() {
        return;
    }
    let keys = match query.order_by.as_ref().map(|o| &o.kind) {
        None => Vec::new(),
        Some(OrderByKind::Expressions(keys)) => keys.clone(),
        Some(OrderByKind::All(_)) => return,
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let grouped = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
        ast::GroupByExpr::All(_) => true,
    };
    if grouped || select.having.is_some() || select.distinct.is_some() {
        return;
    }
    let (value, alias) = match select.projection.as_mut_slice() {
        [SelectItem::UnnamedExpr(value)] => (value, None),
        [SelectItem::ExprWithAlias { expr, alias }] => (expr, Some(super::fold(alias))),
        _ => return,
    };
    if !aggregates(value) {
        // The keys may name the output column, by name or position.
        let keys: Vec<String> = keys
            .iter()
            .filter_map(|key| {
                let by_output = match &key.expr {
                    Expr::Identifier(ident) => alias.as_deref() == Some(&super::fold(ident)),
                    Expr::Value(v) => v.value.to_string() == "1",
                    _ => false,
                };
                let mut key = key.clone();
                if by_output {
                    key.expr = value.clone();
                }
                // A constant orders nothing (and DataFusion would read a number as a position).
                let constant = matches!(&key.expr, Expr::Value(v) if matches!(v.value, ast::Value::Number(..)));
                (!constant).then(|| key.to_string())
            })
            .collect();
        let ordered = if keys.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", keys.join(", "))
        };
        let Ok(first) = parse_expr(&format!("first_value({value}{ordered})")) else {
            return;
        };
        // The column keeps the name PostgreSQL gives the value as written.
        let name = alias.is_none().then(|| output_name(value));
        *value = first;
        if let Some(name) = name
            && let [item @ SelectItem::UnnamedExpr(_)] = select.projection.as_mut_slice()
            && let SelectItem::UnnamedExpr(expr) = item.clone()
        {
            *item = SelectItem::ExprWithAlias {
                expr,
                alias: Ident::with_quote('"', name),
            };
        }
    }
    query.order_by = None;
    query.limit_clause = None;
    query.fetch = None;
}

/// `ARRAY(SELECT e FROM ... ORDER BY ...)` becomes
/// `array_concat((SELECT array_agg(e ORDER BY ...) FROM ...), make_array())`, which DataFusion
/// plans, correlated references included; the concatenation makes the NULL that `array_agg`
/// gives over no rows PostgreSQL's empty array, of the element's type.
pub fn array_subqueries_as_aggregates(statement: &mut ast::Statement) {
    let _ = VisitMut::visit(statement, &mut PlainSelectsOfSubqueries);
    let _ = VisitMut::visit(statement, &mut ArrayColumnNames);
    let _ = VisitMut::visit(statement, &mut ArraySubqueries);
}

/// `expr` without the parentheses around it.
fn peeled(mut expr: &Expr) -> &Expr {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

fn is_array_subquery(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(function)
        if matches!(function.args, FunctionArguments::Subquery(_))
            && super::subqueries::function_name(function).as_deref() == Some("array"))
}

/// `(SELECT ARRAY(SELECT ...))` and `(SELECT (SELECT ...))`, a FROM-less one-row SELECT of
/// a subquery, is that subquery: DataFusion's decorrelation of the nested form lost the inner
/// subquery's empty result (`{}`) to NULL (pgAdmin's inherited-tables column).
struct PlainSelectsOfSubqueries;

impl VisitorMut for PlainSelectsOfSubqueries {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Subquery(query) = expr
            && let Some(inner) = selected_subquery(query)
        {
            *expr = Expr::Nested(Box::new(inner));
        }
        ControlFlow::Continue(())
    }
}

/// The subquery a FROM-less, one-row `SELECT` selects (`SELECT ARRAY(SELECT ...)`,
/// `SELECT (SELECT ...)`), which the query is equivalent to.
pub(super) fn selected_subquery(query: &ast::Query) -> Option<Expr> {
    let plain_query = query.with.is_none()
        && query.order_by.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none();
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain_select = select.from.is_empty()
        && select.selection.is_none()
        && select.having.is_none()
        && select.distinct.is_none()
        && matches!(&select.group_by, ast::GroupByExpr::Expressions(keys, _) if keys.is_empty());
    let inner = match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(inner)] | [SelectItem::ExprWithAlias { expr: inner, .. }] => inner,
        _ => return None,
    };
    (plain_query
        && plain_select
        && (matches!(inner, Expr::Subquery(_)) || is_array_subquery(inner)))
    .then(|| inner.clone())
}

/// Names an unnamed `ARRAY(SELECT ...)` select item `array`, as PostgreSQL does, before it is
/// rewritten into a function of another name.
struct ArrayColumnNames;

impl VisitorMut for ArrayColumnNames {
    type Break = ();
    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(expr) = item
                    && is_array_subquery(peeled(expr))
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::new("array"),
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }
}

struct ArraySubqueries;

/// The column (and, pluralised, the derived table) an `ARRAY(SELECT ...)` whose element yields
/// rows of its own aggregates.
const ARRAY_ELEMENT: &str = "__kalamdb_array_element";

impl VisitorMut for ArraySubqueries {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if !is_array_subquery(expr) {
            return ControlFlow::Continue(());
        }
        let Expr::Function(ast::Function {
            args: FunctionArguments::Subquery(query),
            ..
        }) = expr
        else {
            return ControlFlow::Continue(());
        };
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
                        .map(|item| {
                            let mut item = item.clone();
                            // `ORDER BY 1` names the (only) select item.
                            if matches!(item.expr, Expr::Value(_)) {
                                item.expr = element.clone();
                            }
                            // With its direction and NULLS placement.
                            item.to_string()
                        })
                        .collect();
                    format!(" ORDER BY {}", keys.join(", "))
                }
                _ => String::new(),
            },
            None => String::new(),
        };
        let aggregated = if super::set_returning::yields_rows(&element) {
            // The element yields rows of its own (`'arg' || generate_series(1, n)`): its rows
            // are a derived table for the aggregate, so the select list can spread them.
            let SetExpr::Select(select) = query.body.as_mut() else {
                return ControlFlow::Continue(());
            };
            if !order.is_empty() {
                return ControlFlow::Continue(());
            }
            select.projection = vec![SelectItem::ExprWithAlias {
                expr: element,
                alias: Ident::new(ARRAY_ELEMENT),
            }];
            format!("SELECT array_agg({ARRAY_ELEMENT}) FROM ({query}) AS {ARRAY_ELEMENT}s")
        } else {
            let Ok(aggregate) = parse_expr(&format!("array_agg({element}{order})")) else {
                return ControlFlow::Continue(());
            };
            let SetExpr::Select(select) = query.body.as_mut() else {
                return ControlFlow::Continue(());
            };
            select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
            query.to_string()
        };
        let Ok(never_null) = parse_expr(&format!("array_concat(({aggregated}), make_array())"))
        else {
            return ControlFlow::Continue(());
        };
        *expr = never_null;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        crate::sql::rewritten_by(sql, subqueries_as_aggregated_values)
    }

    #[test]
    fn a_from_less_select_of_an_array_subquery_is_that_subquery() {
        let sql = crate::sql::rewritten_by(
            "SELECT (SELECT ARRAY(SELECT b.x FROM b WHERE b.k = a.k)), (SELECT 1) FROM a",
            array_subqueries_as_aggregates,
        );
        assert!(
            sql.starts_with("SELECT (array_concat((SELECT array_agg(b.x) FROM b WHERE b.k = a.k), make_array())) AS array, (SELECT 1) FROM a"),
            "{sql}"
        );
    }

    #[test]
    fn exists_in_a_select_list_becomes_a_count_when_its_query_is_a_plain_select() {
        assert_eq!(
            rewritten(
                "SELECT EXISTS (SELECT 1 FROM b WHERE b.k = a.k), NOT EXISTS (SELECT 1 FROM b GROUP BY v) FROM a"
            ),
            "SELECT ((SELECT count(*) FROM b WHERE b.k = a.k) > 0) AS __kalamdb_repeat_0_exists, \
             NOT EXISTS (SELECT 1 FROM b GROUP BY v) FROM a"
        );
    }

    #[test]
    fn in_a_select_list_counts_matches_rows_and_nulls() {
        let sql = rewritten("SELECT a.x IN (SELECT b.y FROM b WHERE b.k = a.k) FROM a");
        assert!(
            sql.contains(
                "(SELECT count(*) FROM b WHERE (b.k = a.k) AND ((b.y) = (a.x))) > 0 THEN true"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("(SELECT count(*) FROM b WHERE b.k = a.k) = 0 THEN false"),
            "{sql}"
        );
        assert!(sql.contains("(a.x) IS NULL OR (SELECT count(*) FROM b WHERE (b.k = a.k) AND ((b.y) IS NULL)) > 0 THEN NULL"), "{sql}");
    }

    #[test]
    fn an_in_whose_needle_could_name_a_column_of_the_subquery_is_left_for_the_executor() {
        let sql = "SELECT dept IN (SELECT dept FROM emp WHERE salary < 75) FROM emp e";
        assert_eq!(rewritten(sql), sql);
    }

    #[test]
    fn filters_keep_their_subqueries() {
        for sql in [
            "SELECT a FROM t WHERE a IN (SELECT b FROM u)",
            "SELECT a FROM t WHERE EXISTS (SELECT b FROM u)",
            "SELECT (SELECT max(b) FROM u WHERE b IN (SELECT c FROM v)) FROM t",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }

    #[test]
    fn a_subquery_limited_to_one_row_takes_the_first_value() {
        assert_eq!(
            rewritten(
                "SELECT (SELECT b.v AS w FROM b WHERE b.k = a.k ORDER BY w DESC, b.t LIMIT 1) FROM a"
            ),
            "SELECT (SELECT first_value(b.v ORDER BY b.v DESC, b.t) AS w FROM b WHERE b.k = a.k) FROM a"
        );
        assert_eq!(
            rewritten("SELECT (SELECT b.v FROM b WHERE b.k = a.k ORDER BY b.t LIMIT 1) FROM a"),
            "SELECT (SELECT first_value(b.v ORDER BY b.t) AS \"v\" FROM b WHERE b.k = a.k) FROM a",
            "an unnamed value keeps its column name"
        );
        assert_eq!(
            rewritten("SELECT (SELECT count(1) FROM b WHERE b.k = a.k LIMIT 1) FROM a"),
            "SELECT (SELECT count(1) FROM b WHERE b.k = a.k) FROM a"
        );
        let offset = "SELECT (SELECT b.v FROM b ORDER BY b.v LIMIT 1 OFFSET 2) FROM a";
        assert_eq!(rewritten(offset), offset);
    }
}
