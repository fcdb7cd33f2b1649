//! `generate_subscripts` and expanded arrays, as psql and drivers write them, in forms
//! DataFusion plans.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, FunctionArguments, VisitorMut};

use crate::sql::subqueries::function_name;

/// `generate_subscripts(a, d)`, a set-returning function zipped with `unnest(a)` in
/// SQLAlchemy's key-column queries, becomes
/// `unnest(generate_series(1, CASE WHEN d = 1 THEN cardinality(a) ELSE 0 END))`, which
/// DataFusion zips the same way. Every KalamDB array has one dimension, so any other `d`
/// has no subscripts.
pub(super) struct GenerateSubscripts;

impl VisitorMut for GenerateSubscripts {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(function) = expr else {
            return ControlFlow::Continue(());
        };
        if function_name(function).as_deref() != Some("generate_subscripts") {
            return ControlFlow::Continue(());
        }
        let FunctionArguments::List(list) = &function.args else {
            return ControlFlow::Continue(());
        };
        let [array, dimension] = list.args.as_slice() else {
            return ControlFlow::Continue(());
        };
        if let Ok(rewritten) = crate::sql::parse_expr(&format!(
            "unnest(generate_series(1, \
             CAST(CASE WHEN {dimension} = 1 THEN cardinality({array}) ELSE 0 END AS BIGINT)))"
        )) {
            *expr = rewritten;
        }
        ControlFlow::Continue(())
    }
}

/// `(information_schema._pg_expandarray(a)).x` and `.n`, the element and its subscript (as
/// pgJDBC and Metabase list an index's key columns), become `unnest(a)` and
/// `unnest(generate_series(1, cardinality(a)))`, which DataFusion zips row by row as
/// PostgreSQL expands the function's rows.
pub(super) struct ExpandedArrays;

impl VisitorMut for ExpandedArrays {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::CompoundFieldAccess { root, access_chain } = expr else {
            return ControlFlow::Continue(());
        };
        let [ast::AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() else {
            return ControlFlow::Continue(());
        };
        let mut function = root.as_ref();
        while let Expr::Nested(inner) = function {
            function = inner;
        }
        let Expr::Function(function) = function else {
            return ControlFlow::Continue(());
        };
        if function_name(function).as_deref() != Some("_pg_expandarray") {
            return ControlFlow::Continue(());
        }
        let FunctionArguments::List(list) = &function.args else {
            return ControlFlow::Continue(());
        };
        let [array] = list.args.as_slice() else {
            return ControlFlow::Continue(());
        };
        let rewritten = match field.value.to_ascii_lowercase().as_str() {
            "x" => format!("unnest({array})"),
            "n" => format!("unnest(generate_series(1, CAST(cardinality({array}) AS BIGINT)))"),
            _ => return ControlFlow::Continue(()),
        };
        if let Ok(rewritten) = crate::sql::parse_expr(&rewritten) {
            *expr = rewritten;
        }
        ControlFlow::Continue(())
    }
}
