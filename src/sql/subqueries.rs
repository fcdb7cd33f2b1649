//! Scalar subqueries with PostgreSQL's meaning. A scalar subquery's select item is wrapped in
//! an aggregate that yields the only row's value, NULL when there is none, and error 21000
//! when there are more. DataFusion then decorrelates it (it joins only aggregated correlated
//! subqueries) and types it nullable (it would otherwise take the item's nullability, and a
//! subquery over a NOT NULL column finding no row would fail).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::sql::sqlparser::ast::{self, Expr, SelectItem, SetExpr, VisitMut, VisitorMut};

/// The aggregate (registered by the executor) holding a scalar subquery to one row.
pub const SINGLE_ROW_FUNCTION: &str = "kalamdb_single_row";

/// Wraps the select item of every scalar subquery in `statement` that is not already
/// aggregated (see the module comment).
pub fn hold_to_single_row(statement: &mut ast::Statement) {
    let _ = VisitMut::visit(statement, &mut SingleRow);
}

/// Refuses an expression subquery (scalar, IN, ANY/ALL) whose select list is not one column,
/// as PostgreSQL does; DataFusion would index the missing column of an empty list.
pub fn check_expression_subqueries(statement: &ast::Statement) -> Result<(), super::SqlError> {
    let found = ast::visit_expressions(statement, |expr| {
        let query = match expr {
            Expr::Subquery(query) => query,
            Expr::InSubquery { subquery, .. } => subquery,
            Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } => match right.as_ref() {
                Expr::Subquery(query) => query,
                _ => return ControlFlow::Continue(()),
            },
            _ => return ControlFlow::Continue(()),
        };
        match query.body.as_ref() {
            SetExpr::Select(select)
                if select.projection.len() != 1
                    && !select.projection.iter().any(|item| {
                        matches!(
                            item,
                            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                        )
                    }) =>
            {
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        }
    });
    if found.is_break() {
        return Err(super::SqlError::Syntax(
            "subquery must return only one column".into(),
        ));
    }
    Ok(())
}

/// The SELECT of a scalar subquery expression.
pub fn subquery_select(expr: &mut Expr) -> Option<&mut ast::Select> {
    let Expr::Subquery(query) = expr else {
        return None;
    };
    match query.body.as_mut() {
        SetExpr::Select(select) => Some(select),
        _ => None,
    }
}

/// The alias (or else the name) of a SELECT's only relation.
pub fn single_relation(select: &ast::Select) -> Option<ast::Ident> {
    let [only] = select.from.as_slice() else {
        return None;
    };
    if !only.joins.is_empty() {
        return None;
    }
    match &only.relation {
        ast::TableFactor::Table {
            alias: Some(alias), ..
        }
        | ast::TableFactor::Derived {
            alias: Some(alias), ..
        } => Some(alias.name.clone()),
        ast::TableFactor::Table {
            name, alias: None, ..
        } => name.0.last().and_then(|part| part.as_ident()).cloned(),
        _ => None,
    }
}

/// The last name of a function call, lower-cased (`pg_catalog.unnest` is `unnest`).
pub fn function_name(function: &ast::Function) -> Option<String> {
    function
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
}

/// DataFusion's aggregate functions by every name they answer to, and ours.
static AGGREGATES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    datafusion::functions_aggregate::all_default_aggregate_functions()
        .iter()
        .flat_map(|f| std::iter::once(f.name().to_owned()).chain(f.aliases().iter().cloned()))
        .map(|name| name.to_ascii_lowercase())
        .chain([SINGLE_ROW_FUNCTION.to_owned()])
        .collect()
});

/// True when `expr` calls an aggregate or a window function anywhere (outside subqueries
/// too: a conservative answer only leaves the subquery as written).
pub(super) fn aggregates(expr: &Expr) -> bool {
    ast::visit_expressions(expr, |e| match e {
        Expr::Function(f)
            if f.over.is_some() || function_name(f).is_some_and(|n| AGGREGATES.contains(&n)) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

struct SingleRow;

impl VisitorMut for SingleRow {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // Row limits, ordering and grouping decide which rows the item sees: those subqueries
        // stay as written.
        let Expr::Subquery(query) = expr else {
            return ControlFlow::Continue(());
        };
        if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
            return ControlFlow::Continue(());
        }
        let Some(select) = subquery_select(expr) else {
            return ControlFlow::Continue(());
        };
        let grouped = match &select.group_by {
            ast::GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
            ast::GroupByExpr::All(_) => true,
        };
        if grouped || select.having.is_some() || select.distinct.is_some() {
            return ControlFlow::Continue(());
        }
        let item = match select.projection.as_mut_slice() {
            [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => e,
            _ => return ControlFlow::Continue(()),
        };
        if aggregates(item) {
            return ControlFlow::Continue(());
        }
        if let Ok(wrapped) = super::parse_expr(&format!("{SINGLE_ROW_FUNCTION}({item})")) {
            *item = wrapped;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(sql: &str) -> String {
        crate::sql::rewritten_by(sql, hold_to_single_row)
    }

    #[test]
    fn expression_subqueries_must_have_one_column() {
        for sql in [
            "SELECT (SELECT FROM t)",
            "SELECT 1 WHERE 1 IN (SELECT 1, 2 FROM t)",
            "SELECT 1 WHERE 1 = ANY (SELECT FROM t)",
        ] {
            let statement = crate::sql::parse(sql).map(drop);
            assert!(statement.is_err(), "{sql}");
        }
        for sql in [
            "SELECT (SELECT 1)",
            "SELECT 1 WHERE 1 IN (SELECT * FROM t)",
            "SELECT FROM t",
        ] {
            assert!(crate::sql::parse(sql).is_ok(), "{sql}");
        }
    }

    #[test]
    fn plain_scalar_subqueries_are_held_to_one_row() {
        assert_eq!(
            held("SELECT (SELECT b.v FROM b WHERE b.k = a.k) AS v FROM a"),
            "SELECT (SELECT kalamdb_single_row(b.v) FROM b WHERE b.k = a.k) AS v FROM a"
        );
        assert_eq!(
            held("INSERT INTO t VALUES ((SELECT x FROM u))"),
            "INSERT INTO t VALUES ((SELECT kalamdb_single_row(x) FROM u))"
        );
    }

    #[test]
    fn aggregated_limited_grouped_and_distinct_subqueries_stay_as_written() {
        for sql in [
            "SELECT (SELECT max(v) + 1 FROM b)",
            "SELECT (SELECT row_number() OVER () FROM b)",
            "SELECT (SELECT v FROM b ORDER BY v LIMIT 1)",
            "SELECT (SELECT v FROM b GROUP BY v)",
            "SELECT (SELECT DISTINCT v FROM b)",
            "SELECT * FROM a WHERE EXISTS (SELECT v FROM b)",
        ] {
            assert_eq!(held(sql), sql);
        }
    }
}
