//! A view's query as PostgreSQL's `pg_get_viewdef` prints it back, rather than as written:
//! one select item per line, FROM, WHERE, GROUP BY, HAVING, ORDER BY, OFFSET and LIMIT at
//! PostgreSQL's indents, each column qualified by its relation, and the plain form's
//! parentheses around every operator. PostgreSQL prints its stored parse tree; KalamDB
//! keeps the query text, so this reads it back with the catalog's column types. A query
//! using anything the printer does not know (subqueries, set operations, CASE, window
//! functions, most functions) has no such text, and `pg_get_viewdef` shows it as stored.

mod constants;
mod exprs;
mod scope;
mod types;

use datafusion::sql::sqlparser::ast::{
    self, Expr, GroupByExpr, JoinConstraint, JoinOperator, LimitClause, OrderByKind, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, TableFactor, TableWithJoins, Value,
};

use exprs::{Kind, Mode, Node, Printer};
use scope::{Relation, Scope};
pub use types::Ty;

use crate::exec::format::quote_ident;
use crate::sql::fold;
use crate::storage::ViewRecord;

/// What the printer needs of the catalog.
pub(super) trait Relations {
    /// A table's or view's columns and their types.
    fn columns(&self, namespace: &str, name: &str) -> Option<Vec<(String, Ty)>>;
    /// Whether a relation in `namespace` is named without it, as on the search path.
    fn visible(&self, namespace: &str) -> bool;
}

/// `pg_get_viewdef(oid)` and `pg_get_viewdef(oid, true)`.
pub(super) struct Definitions {
    pub plain: String,
    pub pretty: String,
}

pub(super) fn definitions(view: &ViewRecord, relations: &dyn Relations) -> Option<Definitions> {
    let query = crate::sql::parse_view_query(&view.query).ok()?;
    let names: Vec<&str> = view.columns.iter().map(|c| c.name.as_str()).collect();
    Some(Definitions {
        plain: print(&query, &names, relations, Mode::Plain)?,
        pretty: print(&query, &names, relations, Mode::Pretty)?,
    })
}

fn print(
    query: &ast::Query,
    names: &[&str],
    relations: &dyn Relations,
    mode: Mode,
) -> Option<String> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain_query = query.with.is_none()
        && query.fetch.is_none()
        && query.locks.is_empty()
        && query.for_clause.is_none()
        && query.settings.is_none()
        && query.format_clause.is_none()
        && query.pipe_operators.is_empty();
    let plain_select = select.top.is_none()
        && select.into.is_none()
        && select.lateral_views.is_empty()
        && select.prewhere.is_none()
        && select.cluster_by.is_empty()
        && select.distribute_by.is_empty()
        && select.sort_by.is_empty()
        && select.named_window.is_empty()
        && select.qualify.is_none()
        && select.connect_by.is_empty()
        && select.value_table_mode.is_none()
        && select.exclude.is_none();
    if !plain_query || !plain_select {
        return None;
    }
    let mut scope = Scope::default();
    for table in &select.from {
        add_relations(table, relations, &mut scope)?;
    }
    let printer = Printer {
        mode,
        scope: &scope,
    };

    let mut out = String::from(" SELECT");
    match &select.distinct {
        None => {}
        Some(ast::Distinct::Distinct) => out.push_str(" DISTINCT"),
        Some(_) => return None,
    }
    let items = select_items(&printer, &select.projection, &select.from)?;
    if items.len() != names.len() {
        return None;
    }
    for (i, (item, name)) in items.iter().zip(names).enumerate() {
        out.push_str(if i == 0 { " " } else { ",\n    " });
        out.push_str(&item.text);
        if item.column.as_deref() != Some(name) {
            out.push_str(" AS ");
            out.push_str(&quote_ident(name));
        }
    }
    for (i, table) in select.from.iter().enumerate() {
        out.push_str(if i == 0 { "\n   FROM " } else { ",\n    " });
        out.push_str(&from_item(&printer, table, relations)?);
    }
    if let Some(condition) = &select.selection {
        out.push_str("\n  WHERE ");
        out.push_str(&condition_text(&printer, condition)?);
    }
    match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => {
            if !exprs.is_empty() {
                let mut keys = Vec::with_capacity(exprs.len());
                for expr in exprs {
                    let node = match position(expr) {
                        Some(n) => items.get(n.checked_sub(1)?)?.clone(),
                        None => match printer.expr(expr) {
                            Some(node) => node,
                            None => output_item(expr, &items, names)?,
                        },
                    };
                    keys.push(sort_key(&node, mode)?);
                }
                out.push_str("\n  GROUP BY ");
                out.push_str(&keys.join(", "));
            }
        }
        _ => return None,
    }
    if let Some(condition) = &select.having {
        out.push_str("\n HAVING ");
        out.push_str(&condition_text(&printer, condition)?);
    }
    if let Some(order_by) = &query.order_by {
        let OrderByKind::Expressions(exprs) = &order_by.kind else {
            return None;
        };
        if order_by.interpolate.is_some() {
            return None;
        }
        let mut keys = Vec::with_capacity(exprs.len());
        for order in exprs {
            if order.with_fill.is_some() {
                return None;
            }
            // ORDER BY reads an output column's name before an input column's.
            let node = match position(&order.expr) {
                Some(n) => items.get(n.checked_sub(1)?)?.clone(),
                None => match output_item(&order.expr, &items, names) {
                    Some(node) => node,
                    None => printer.expr(&order.expr)?,
                },
            };
            let mut key = sort_key(&node, mode)?;
            let descending = order.options.asc == Some(false);
            if descending {
                key.push_str(" DESC");
            }
            match (order.options.nulls_first, descending) {
                (Some(true), false) => key.push_str(" NULLS FIRST"),
                (Some(false), true) => key.push_str(" NULLS LAST"),
                _ => {}
            }
            keys.push(key);
        }
        out.push_str("\n  ORDER BY ");
        out.push_str(&keys.join(", "));
    }
    match &query.limit_clause {
        None => {}
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) if limit_by.is_empty() => {
            if let Some(offset) = offset {
                if offset.rows != ast::OffsetRows::None {
                    return None;
                }
                out.push_str("\n OFFSET ");
                out.push_str(&count(&offset.value)?);
            }
            if let Some(limit) = limit {
                out.push_str("\n LIMIT ");
                out.push_str(&count(limit)?);
            }
        }
        Some(_) => return None,
    }
    out.push(';');
    Some(out)
}

/// The relations of one FROM item, joins included, in the order they are written.
fn add_relations(
    table: &TableWithJoins,
    relations: &dyn Relations,
    scope: &mut Scope,
) -> Option<()> {
    for factor in std::iter::once(&table.relation).chain(table.joins.iter().map(|j| &j.relation)) {
        let (namespace, name, alias) = table_name(factor)?;
        let columns = relations.columns(&namespace, &name)?;
        scope.relations.push(Relation {
            qualifier: alias.clone().unwrap_or_else(|| name.clone()),
            aliased: alias.is_some(),
            namespace,
            name,
            columns,
        });
    }
    Some(())
}

/// A stored relation's namespace, name and alias (stored queries name relations qualified).
fn table_name(factor: &TableFactor) -> Option<(String, String, Option<String>)> {
    let TableFactor::Table {
        name,
        alias,
        args: None,
        with_hints,
        version: None,
        with_ordinality: false,
        partitions,
        json_path: None,
        sample: None,
        index_hints,
    } = factor
    else {
        return None;
    };
    if !with_hints.is_empty() || !partitions.is_empty() || !index_hints.is_empty() {
        return None;
    }
    let parts: Option<Vec<String>> = name
        .0
        .iter()
        .map(|part| part.as_ident().map(fold))
        .collect();
    let [namespace, name] = <[String; 2]>::try_from(parts?).ok()?;
    let alias = match alias {
        None => None,
        Some(alias) if alias.columns.is_empty() => Some(fold(&alias.name)),
        Some(_) => return None,
    };
    Some((namespace, name, alias))
}

fn select_items(
    printer: &Printer<'_>,
    projection: &[SelectItem],
    from: &[TableWithJoins],
) -> Option<Vec<Node>> {
    let columns_of = |relation: &Relation| -> Vec<Node> {
        relation
            .columns
            .iter()
            .map(|(name, ty)| Node {
                text: format!("{}.{}", quote_ident(&relation.qualifier), quote_ident(name)),
                ty: *ty,
                kind: Kind::Column,
                column: Some(name.clone()),
            })
            .collect()
    };
    let mut items = Vec::new();
    for item in projection {
        match item {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                items.push(printer.expr(expr)?)
            }
            SelectItem::Wildcard(options) => {
                // A USING join shows its merged columns once, which `*` would need to follow.
                let merged = from.iter().flat_map(|t| &t.joins).any(|j| {
                    matches!(
                        join_parts(&j.join_operator),
                        Some((_, JoinConstraint::Using(_)))
                    )
                });
                if merged || !wildcard_is_plain(options) {
                    return None;
                }
                for relation in &printer.scope.relations {
                    items.extend(columns_of(relation));
                }
            }
            SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(name),
                options,
            ) => {
                if !wildcard_is_plain(options) {
                    return None;
                }
                let parts: Option<Vec<String>> = name
                    .0
                    .iter()
                    .map(|part| part.as_ident().map(fold))
                    .collect();
                let relation = match parts?.as_slice() {
                    [relation] => printer.scope.named(None, relation)?,
                    [namespace, relation] => printer.scope.named(Some(namespace), relation)?,
                    _ => return None,
                };
                items.extend(columns_of(relation));
            }
            SelectItem::QualifiedWildcard(..) | SelectItem::ExprWithAliases { .. } => return None,
        }
    }
    Some(items)
}

fn wildcard_is_plain(options: &ast::WildcardAdditionalOptions) -> bool {
    options.opt_ilike.is_none()
        && options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_rename.is_none()
}

/// The keyword PostgreSQL prints for a join, and its condition.
fn join_parts(operator: &JoinOperator) -> Option<(&'static str, &JoinConstraint)> {
    Some(match operator {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => ("JOIN", c),
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => ("LEFT JOIN", c),
        JoinOperator::Right(c) | JoinOperator::RightOuter(c) => ("RIGHT JOIN", c),
        JoinOperator::FullOuter(c) => ("FULL JOIN", c),
        JoinOperator::CrossJoin(c) => ("CROSS JOIN", c),
        _ => return None,
    })
}

/// One FROM item: a relation and the joins after it, each join on its own line (and, in
/// the plain form, in parentheses).
fn from_item(
    printer: &Printer<'_>,
    table: &TableWithJoins,
    relations: &dyn Relations,
) -> Option<String> {
    let relation_text = |factor: &TableFactor| -> Option<String> {
        let (namespace, name, alias) = table_name(factor)?;
        let mut text = if relations.visible(&namespace) {
            quote_ident(&name)
        } else {
            format!("{}.{}", quote_ident(&namespace), quote_ident(&name))
        };
        if let Some(alias) = alias {
            text.push(' ');
            text.push_str(&quote_ident(&alias));
        }
        Some(text)
    };
    let mut text = relation_text(&table.relation)?;
    for join in &table.joins {
        if join.global {
            return None;
        }
        let (keyword, constraint) = join_parts(&join.join_operator)?;
        text = format!("{text}\n     {keyword} {}", relation_text(&join.relation)?);
        match (keyword, constraint) {
            ("CROSS JOIN", JoinConstraint::None) => {}
            ("CROSS JOIN", _) => return None,
            (_, JoinConstraint::On(condition)) => {
                let condition = condition_text(printer, condition)?;
                match printer.mode {
                    Mode::Pretty => text.push_str(&format!(" ON {condition}")),
                    Mode::Plain => text.push_str(&format!(" ON ({condition})")),
                }
            }
            (_, JoinConstraint::Using(columns)) => {
                let names: Option<Vec<String>> = columns
                    .iter()
                    .map(|c| c.0.last()?.as_ident().map(|i| quote_ident(&fold(i))))
                    .collect();
                text.push_str(&format!(" USING ({})", names?.join(", ")));
            }
            _ => return None,
        }
        if printer.mode == Mode::Plain {
            text = format!("({text})");
        }
    }
    Some(text)
}

fn condition_text(printer: &Printer<'_>, condition: &Expr) -> Option<String> {
    let node = printer.expr(condition)?;
    (node.ty == Ty::Bool).then_some(node.text)
}

/// A GROUP BY or ORDER BY key: PostgreSQL's `get_rule_sortgroupclause` parenthesizes any
/// key but a column in the pretty form, and calls in the plain one.
fn sort_key(node: &Node, mode: Mode) -> Option<String> {
    Some(match (&node.kind, mode) {
        (Kind::Column, _) => node.text.clone(),
        // A constant key prints with a forced type label; casts print by their kind.
        (Kind::Constant | Kind::Cast(_), _) => return None,
        (_, Mode::Pretty) | (Kind::Call, Mode::Plain) => format!("({})", node.text),
        (_, Mode::Plain) => node.text.clone(),
    })
}

/// `ORDER BY 2`: the position of a select item.
fn position(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(digits, false) => digits.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The select item an output name names.
fn output_item(expr: &Expr, items: &[Node], names: &[&str]) -> Option<Node> {
    let Expr::Identifier(ident) = expr else {
        return None;
    };
    let name = fold(ident);
    let index = names.iter().position(|n| *n == name)?;
    items.get(index).cloned()
}

/// A LIMIT or OFFSET count written as a number.
fn count(expr: &Expr) -> Option<String> {
    let n = position(expr)?;
    Some(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Catalog;

    impl Relations for Catalog {
        fn columns(&self, namespace: &str, name: &str) -> Option<Vec<(String, Ty)>> {
            (namespace == "public" && name == "t").then(|| {
                vec![
                    ("id".to_owned(), Ty::Int4),
                    ("name".to_owned(), Ty::Varchar),
                ]
            })
        }

        fn visible(&self, namespace: &str) -> bool {
            namespace == "public"
        }
    }

    fn pretty(query: &str, names: &[&str]) -> Option<String> {
        let query = crate::sql::parse_view_query(query).unwrap();
        print(&query, names, &Catalog, Mode::Pretty)
    }

    #[test]
    fn columns_are_qualified_and_clauses_indented() {
        assert_eq!(
            pretty(
                "SELECT id, name AS n FROM \"public\".t WHERE name = 'x'",
                &["id", "n"]
            )
            .as_deref(),
            Some(" SELECT t.id,\n    t.name AS n\n   FROM t\n  WHERE t.name::text = 'x'::text;")
        );
    }

    #[test]
    fn unknown_constructs_have_no_text() {
        assert_eq!(pretty("SELECT (SELECT 1) FROM \"public\".t", &["x"]), None);
        assert_eq!(pretty("SELECT id FROM \"public\".missing", &["id"]), None);
    }
}
