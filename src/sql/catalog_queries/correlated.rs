//! Scalar subqueries that read the outer query: kept as select items DataFusion can decorrelate,
//! and conditions on the outer query alone moved out of them.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, SelectItem, SetExpr, VisitMut, VisitorMut};

use crate::sql::subqueries::subquery_select;

/// datafusion-pg-catalog answers a correlated scalar subquery that is a whole select item
/// with NULL (psql's `\d` would show no defaults). Such an item, when DataFusion can
/// decorrelate it once the passes below have run, becomes
/// `CASE WHEN true THEN (subquery) END`, which the crate leaves alone and DataFusion
/// simplifies back. `None` when the text has no such item (its exact text is kept: the
/// crate's replacements of known psql queries match on it).
pub(super) fn keep_correlated_subqueries(text: &str) -> Option<String> {
    struct Wrap {
        changed: bool,
    }
    impl VisitorMut for Wrap {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
            for expr in select_item_exprs(query) {
                let Expr::Subquery(subquery) = expr else {
                    continue;
                };
                // `(SELECT ARRAY(SELECT ...))` is the ARRAY(...) it selects, which the crate
                // leaves alone (pgAdmin's inherited tables).
                if let Some(inner) = crate::sql::subquery_values::selected_subquery(subquery) {
                    *expr = Expr::Nested(Box::new(inner));
                    self.changed = true;
                    continue;
                }
                if !joinable_correlated(subquery) {
                    continue;
                }
                if let Ok(wrapped) =
                    crate::sql::parse_expr(&format!("CASE WHEN true THEN {expr} END"))
                {
                    *expr = wrapped;
                    self.changed = true;
                }
            }
            ControlFlow::Continue(())
        }
    }
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let mut statements =
        datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, text).ok()?;
    let mut wrap = Wrap { changed: false };
    for statement in &mut statements {
        let _ = VisitMut::visit(statement, &mut wrap);
    }
    wrap.changed.then(|| {
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The expressions of a query's select list (none for a set operation or VALUES).
pub(super) fn select_item_exprs(query: &mut ast::Query) -> impl Iterator<Item = &mut Expr> {
    let items = match query.body.as_mut() {
        SetExpr::Select(select) => select.projection.as_mut_slice(),
        _ => &mut [],
    };
    items.iter_mut().filter_map(|item| match item {
        SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => Some(expr),
        _ => None,
    })
}

/// True when `node` reads a column qualified by a relation outside `bound`.
pub(super) fn reads_outer_column<V: ast::Visit>(node: &V, bound: &[String]) -> bool {
    ast::visit_expressions(node, |e| match e {
        Expr::CompoundIdentifier(parts)
            if parts.len() >= 2
                && !bound.contains(&parts[parts.len() - 2].value.to_ascii_lowercase()) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// True when the query is correlated and DataFusion can turn it into a join once the
/// passes below have run: every condition relating it to the outer query is an equality
/// between an inner and an outer expression or reads only outer columns (moved out by
/// `OuterOnlyConditions`), and its select list reads no outer column.
pub(super) fn joinable_correlated(query: &ast::Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let Some(bound) = bound_relation_names(&select.from) else {
        return false;
    };
    let outer = |e: &Expr| reads_outer_column(e, &bound);
    let projection_is_inner = select.projection.iter().all(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => !outer(e),
        _ => true,
    });
    let conditions_fit = select.selection.clone().is_none_or(|selection| {
        conjuncts(selection).iter().all(|c| {
            !outer(c)
                || reads_only_outer(c, &bound)
                || matches!(c, Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right }
                    if outer(left) != outer(right)
                        && (reads_only_outer(left, &bound) || reads_only_outer(right, &bound)))
        })
    });
    reads_outer_column(select, &bound) && projection_is_inner && conditions_fit
}

/// In a correlated scalar subquery, WHERE conditions that read only the outer query's
/// columns move out as a guard: `(SELECT e FROM t WHERE outer.c AND t.k = outer.k)` becomes
/// `CASE WHEN outer.c THEN (SELECT e FROM t WHERE t.k = outer.k) END`. Both are NULL when
/// the guard does not hold; DataFusion decorrelates only the second. A condition counts as
/// outer when every column in it is qualified by a name the subquery's FROM does not bind.
pub(super) struct OuterOnlyConditions;

impl VisitorMut for OuterOnlyConditions {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Some(select) = subquery_select(expr) else {
            return ControlFlow::Continue(());
        };
        let Some(bound) = bound_relation_names(&select.from) else {
            return ControlFlow::Continue(());
        };
        let Some(selection) = select.selection.take() else {
            return ControlFlow::Continue(());
        };
        let (outer, inner): (Vec<Expr>, Vec<Expr>) = conjuncts(selection)
            .into_iter()
            .partition(|c| reads_only_outer(c, &bound));
        select.selection = conjunction(inner);
        if outer.is_empty() {
            return ControlFlow::Continue(());
        }
        let guard: Vec<String> = outer.iter().map(|c| format!("({c})")).collect();
        match crate::sql::parse_expr(&format!(
            "CASE WHEN {} THEN {expr} END",
            guard.join(" AND ")
        )) {
            Ok(guarded) => *expr = guarded,
            Err(_) => {
                // Put the conditions back: the statement must mean what it said.
                if let Some(select) = subquery_select(expr) {
                    select.selection =
                        conjunction(outer.into_iter().chain(select.selection.take()));
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// `a AND b AND ...`, or `None` for no conditions.
pub(super) fn conjunction(conditions: impl IntoIterator<Item = Expr>) -> Option<Expr> {
    conditions.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    })
}

/// The lower-cased names a FROM clause binds (aliases, or tables' last names), or `None`
/// when it holds something other than plain tables and aliased subqueries.
pub(super) fn bound_relation_names(from: &[ast::TableWithJoins]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for table in from {
        for factor in
            std::iter::once(&table.relation).chain(table.joins.iter().map(|j| &j.relation))
        {
            match factor {
                ast::TableFactor::Table {
                    alias: Some(alias), ..
                }
                | ast::TableFactor::Derived {
                    alias: Some(alias), ..
                } => names.push(alias.name.value.to_ascii_lowercase()),
                ast::TableFactor::Table {
                    name, alias: None, ..
                } => names.push(
                    name.0
                        .last()
                        .and_then(|p| p.as_ident())?
                        .value
                        .to_ascii_lowercase(),
                ),
                _ => return None,
            }
        }
    }
    Some(names)
}

pub(super) fn conjuncts(expr: Expr) -> Vec<Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            let mut all = conjuncts(*left);
            all.extend(conjuncts(*right));
            all
        }
        Expr::Nested(inner)
            if matches!(
                *inner,
                Expr::BinaryOp {
                    op: ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            conjuncts(*inner)
        }
        other => vec![other],
    }
}

/// True when `condition` reads at least one column, every column it reads is qualified by a
/// relation outside `bound`, and it holds no subquery.
pub(super) fn reads_only_outer(condition: &Expr, bound: &[String]) -> bool {
    let mut outer_columns = 0;
    let verdict = ast::visit_expressions(condition, |e| match e {
        Expr::Identifier(_) | Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
            ControlFlow::Break(())
        }
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let relation = parts[parts.len() - 2].value.to_ascii_lowercase();
            if bound.contains(&relation) {
                ControlFlow::Break(())
            } else {
                outer_columns += 1;
                ControlFlow::Continue(())
            }
        }
        _ => ControlFlow::Continue(()),
    });
    verdict.is_continue() && outer_columns > 0
}
