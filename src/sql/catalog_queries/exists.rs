//! `EXISTS` in a select list, as an aggregated scalar subquery DataFusion decorrelates.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, SelectItem, SetExpr, VisitorMut};

use super::*;

/// `EXISTS (SELECT ... FROM t WHERE c)` in a select list (psql's `\d` of an index) becomes
/// `((SELECT count(*) FROM t WHERE c) > 0)`, and `NOT EXISTS` `= 0`: the same truth, as an
/// aggregated scalar subquery, which DataFusion decorrelates there (it plans EXISTS only in
/// WHERE).
pub(super) struct ExistsInSelectLists;

impl VisitorMut for ExistsInSelectLists {
    type Break = ();
    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        for expr in select_item_exprs(query) {
            let _ = ast::visit_expressions_mut(expr, |e| {
                if let Expr::Exists { subquery, negated } = e
                    && let Some(counted) = counted_exists(subquery, *negated)
                {
                    *e = counted;
                }
                ControlFlow::<()>::Continue(())
            });
        }
        ControlFlow::Continue(())
    }
}

/// `(SELECT count(*) FROM ... WHERE ...) > 0` (`= 0` when `negated`) for a plain subquery.
pub(super) fn counted_exists(subquery: &ast::Query, negated: bool) -> Option<Expr> {
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return None;
    };
    let grouped = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
        ast::GroupByExpr::All(_) => true,
    };
    if grouped
        || select.having.is_some()
        || subquery.limit_clause.is_some()
        || subquery.fetch.is_some()
        || subquery.with.is_some()
    {
        return None;
    }
    let mut counted = select.as_ref().clone();
    counted.projection = vec![SelectItem::UnnamedExpr(
        crate::sql::parse_expr("count(*)").ok()?,
    )];
    counted.distinct = None;
    let comparison = if negated { "= 0" } else { "> 0" };
    crate::sql::parse_expr(&format!("(({counted}) {comparison})")).ok()
}
