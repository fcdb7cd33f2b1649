//! `pg_partition_ancestors(rel)`, which psql's `\d` calls for tables with foreign keys or
//! triggers. KalamDB has no partitioned tables, so a relation's only ancestor is itself, at
//! depth 1.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, VisitorMut};

/// In an expression, `pg_partition_ancestors(rel)` becomes `rel` as an OID; as a FROM item
/// `pg_partition_ancestors(rel) [WITH ORDINALITY] AS a(relid, depth)` goes, with `a.relid`
/// replaced by `rel` and `a.depth` by 1 in its query.
pub(super) struct PartitionAncestors;

fn is_ancestors(name: &ast::ObjectName) -> bool {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .is_some_and(|i| i.value.eq_ignore_ascii_case("pg_partition_ancestors"))
}

fn only_argument(args: &[ast::FunctionArg]) -> Option<Expr> {
    match args {
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))] => Some(arg.clone()),
        _ => None,
    }
}

impl VisitorMut for PartitionAncestors {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        let ast::SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let mut replaced: Vec<(String, Expr)> = Vec::new();
        select.from.retain(|item| {
            let ast::TableFactor::Table {
                name,
                args: Some(args),
                alias: Some(alias),
                ..
            } = &item.relation
            else {
                return true;
            };
            match only_argument(&args.args) {
                Some(arg) if is_ancestors(name) && item.joins.is_empty() => {
                    replaced.push((alias.name.value.to_ascii_lowercase(), arg));
                    false
                }
                _ => true,
            }
        });
        if replaced.is_empty() {
            return ControlFlow::Continue(());
        }
        let substitute = |e: &mut Expr| {
            if let Expr::CompoundIdentifier(parts) = e
                && let [table, column] = parts.as_slice()
                && let Some((_, relation)) = replaced
                    .iter()
                    .find(|(alias, _)| table.value.eq_ignore_ascii_case(alias))
            {
                *e = match column.value.to_ascii_lowercase().as_str() {
                    "depth" => Expr::value(ast::Value::Number("1".into(), false)),
                    _ => relation.clone(),
                };
            }
            ControlFlow::<()>::Continue(())
        };
        let _ = ast::visit_expressions_mut(select.as_mut(), substitute);
        if let Some(order_by) = query.order_by.as_mut() {
            let _ = ast::visit_expressions_mut(order_by, substitute);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr
            && is_ancestors(&function.name)
            && let ast::FunctionArguments::List(list) = &function.args
            && let Some(arg) = only_argument(&list.args)
            && let Ok(cast) = crate::sql::parse_expr(&format!("CAST({arg} AS BIGINT)"))
        {
            *expr = cast;
        }
        ControlFlow::Continue(())
    }
}
