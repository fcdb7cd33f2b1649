//! Correlated subqueries over `pg_sequence`, or over a relation's storage options, answered
//! NULL without reading them.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, VisitorMut};

use crate::sql::subqueries::subquery_select;

/// `pg_catalog` tables whose scalar subqueries are answered NULL (0 for a count) (KalamDB has no triggers and
/// no row security policies; psql's `\dp` lists each table's policies).
pub(super) const EMPTY_CATALOG_TABLES: [&str; 3] = ["pg_sequence", "pg_trigger", "pg_policy"];

/// A scalar subquery reading only `pg_sequence` is NULL, whatever it selects or correlates
/// on. SQLAlchemy's column reflection reads an identity column's options that way, through
/// `pg_get_serial_sequence(attrelid::regclass::text, ...)`, which DataFusion cannot
/// decorrelate; the inspector then reports the identity without its options. `pg_sequence`
/// itself lists every sequence.
pub(super) struct EmptyCatalogSubqueries;

impl VisitorMut for EmptyCatalogSubqueries {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Some(select) = subquery_select(expr) else {
            return ControlFlow::Continue(());
        };
        let reads_only_empty = match select.from.as_slice() {
            [only] if only.joins.is_empty() => match &only.relation {
                // `unnest(c.reloptions)`, as psql's `\d+` reads a TOAST table's options:
                // KalamDB relations have no storage options (`reloptions` is always NULL), so
                // there is nothing to unnest.
                ast::TableFactor::UNNEST { array_exprs, .. } => {
                    matches!(array_exprs.as_slice(), [array] if names_storage_options(array))
                }
                ast::TableFactor::Table {
                    name,
                    args: Some(args),
                    ..
                } => {
                    let function = name.0.last().and_then(|p| p.as_ident());
                    function.is_some_and(|f| f.value.eq_ignore_ascii_case("unnest"))
                        && matches!(args.args.as_slice(),
                            [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(array))]
                                if names_storage_options(array))
                }
                ast::TableFactor::Table { name, .. } => {
                    let parts: Vec<String> = name
                        .0
                        .iter()
                        .filter_map(|p| p.as_ident())
                        .map(|i| i.value.to_ascii_lowercase())
                        .collect();
                    match parts.as_slice() {
                        [table] | [_, table] if parts.len() == 1 || parts[0] == "pg_catalog" => {
                            EMPTY_CATALOG_TABLES.contains(&table.as_str())
                        }
                        _ => false,
                    }
                }
                _ => false,
            },
            _ => false,
        };
        if reads_only_empty {
            // `ARRAY(SELECT ...)` (an `array_agg` subquery by now) of no rows is an empty array.
            let aggregates_an_array = matches!(select.projection.as_slice(),
                [ast::SelectItem::UnnamedExpr(Expr::Function(f))
                    | ast::SelectItem::ExprWithAlias { expr: Expr::Function(f), .. }]
                    if crate::sql::subqueries::function_name(f).as_deref() == Some("array_agg"));
            // An ungrouped count of no rows is 0 (pgAdmin counts a table's triggers so).
            let counts = matches!(select.projection.as_slice(),
                [ast::SelectItem::UnnamedExpr(Expr::Function(f))
                    | ast::SelectItem::ExprWithAlias { expr: Expr::Function(f), .. }]
                    if crate::sql::subqueries::function_name(f).as_deref() == Some("count"))
                && matches!(&select.group_by,
                    ast::GroupByExpr::Expressions(keys, _) if keys.is_empty());
            if counts && let Ok(zero) = crate::sql::parse_expr("CAST(0 AS BIGINT)") {
                *expr = zero;
                return ControlFlow::Continue(());
            }
            *expr = if aggregates_an_array {
                Expr::Cast {
                    kind: ast::CastKind::Cast,
                    expr: Box::new(Expr::Array(ast::Array {
                        elem: vec![],
                        named: true,
                    })),
                    data_type: ast::DataType::Array(ast::ArrayElemTypeDef::SquareBracket(
                        Box::new(ast::DataType::Text),
                        None,
                    )),
                    array: false,
                    format: None,
                }
            } else {
                Expr::Value(ast::Value::Null.into())
            };
        }
        ControlFlow::Continue(())
    }
}

/// `reloptions` or `x.reloptions`.
fn names_storage_options(expr: &Expr) -> bool {
    let last = match expr {
        Expr::Identifier(ident) => Some(ident),
        Expr::CompoundIdentifier(parts) => parts.last(),
        _ => None,
    };
    last.is_some_and(|ident| ident.value.eq_ignore_ascii_case("reloptions"))
}
