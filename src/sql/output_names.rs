//! Repeated result columns. PostgreSQL lets a SELECT list produce the same column twice
//! (`SELECT 1, 1`, `SELECT id, id`, two unnamed scalar subqueries); DataFusion needs unique
//! names. A repeat gets a reserved alias; the result's names are PostgreSQL's all the same
//! (the executor names every column as PostgreSQL would, seeing through these aliases).

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{self, Expr, Ident, SelectItem, SetExpr};

/// The prefix of the aliases given to repeated select items.
pub const REPEAT_ALIAS_PREFIX: &str = "__kalamdb_repeat_";

/// Refuses, as PostgreSQL does (42702), an ORDER BY key naming two result columns that are
/// different expressions (`SELECT id, 7 AS id ... ORDER BY id`); the same expression twice
/// (`SELECT id, id`) is no ambiguity.
pub fn check_order_by_names(statement: &ast::Statement) -> Result<(), super::SqlError> {
    let mut ambiguous = None;
    let _ = ast::Visit::visit(statement, &mut OrderByNames(&mut ambiguous));
    match ambiguous {
        Some(name) => Err(super::SqlError::AmbiguousColumn(format!(
            "ORDER BY \"{name}\" is ambiguous"
        ))),
        None => Ok(()),
    }
}

/// `SELECT d::text ... ORDER BY d`: PostgreSQL orders by the output column named `d`, the cast
/// value. DataFusion ordered by the input column, adding it beside the cast, whose name is the
/// same, and refused the projection. Such a key becomes the output column's position.
pub fn order_by_output_casts(statement: &mut ast::Statement) {
    let _ = ast::VisitMut::visit(statement, &mut OrderByOutputCasts);
}

struct OrderByOutputCasts;

impl ast::VisitorMut for OrderByOutputCasts {
    type Break = ();
    fn pre_visit_query(&mut self, query: &mut ast::Query) -> std::ops::ControlFlow<()> {
        let (SetExpr::Select(select), Some(order_by)) = (query.body.as_ref(), &mut query.order_by)
        else {
            return std::ops::ControlFlow::Continue(());
        };
        let ast::OrderByKind::Expressions(keys) = &mut order_by.kind else {
            return std::ops::ControlFlow::Continue(());
        };
        // A `*` makes written positions differ from output positions.
        if select.projection.iter().any(|item| {
            matches!(
                item,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }) {
            return std::ops::ControlFlow::Continue(());
        }
        for key in keys {
            let Expr::Identifier(ident) = &key.expr else {
                continue;
            };
            let name = super::fold(ident);
            let named: Vec<(usize, &Expr)> = select
                .projection
                .iter()
                .enumerate()
                .filter_map(|(at, item)| match item {
                    SelectItem::UnnamedExpr(expr) if output_name(expr) == name => Some((at, expr)),
                    SelectItem::ExprWithAlias { expr, alias } if super::fold(alias) == name => {
                        Some((at, expr))
                    }
                    _ => None,
                })
                .collect();
            if let [(at, Expr::Cast { .. })] = named.as_slice() {
                key.expr = Expr::value(ast::Value::Number((at + 1).to_string(), false));
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

struct OrderByNames<'a>(&'a mut Option<String>);

impl ast::Visitor for OrderByNames<'_> {
    type Break = ();
    fn pre_visit_query(&mut self, query: &ast::Query) -> std::ops::ControlFlow<()> {
        let (SetExpr::Select(select), Some(order_by)) = (query.body.as_ref(), &query.order_by)
        else {
            return std::ops::ControlFlow::Continue(());
        };
        let ast::OrderByKind::Expressions(keys) = &order_by.kind else {
            return std::ops::ControlFlow::Continue(());
        };
        for key in keys {
            let Expr::Identifier(ident) = &key.expr else {
                continue;
            };
            let name = super::fold(ident);
            let mut named: Vec<String> = select
                .projection
                .iter()
                .filter_map(|item| match item {
                    SelectItem::UnnamedExpr(expr) if output_name(expr) == name => {
                        Some(comparable(expr))
                    }
                    SelectItem::ExprWithAlias { expr, alias } if super::fold(alias) == name => {
                        Some(comparable(expr))
                    }
                    _ => None,
                })
                .collect();
            named.sort();
            named.dedup();
            if named.len() > 1 {
                *self.0 = Some(name);
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// `expr`'s text with names folded, qualifiers and parentheses dropped: two items that may be
/// the same expression compare equal (a query may then miss PostgreSQL's error, never get one
/// PostgreSQL would not give).
fn comparable(expr: &Expr) -> String {
    let mut expr = expr.clone();
    let _ = ast::visit_expressions_mut(&mut expr, |e| {
        match e {
            Expr::Identifier(ident) => *ident = Ident::new(super::fold(ident)),
            Expr::CompoundIdentifier(parts) => {
                let last = parts.last().map(super::fold).unwrap_or_default();
                *e = Expr::Identifier(Ident::new(last));
            }
            Expr::Function(function) => {
                let folded = function.name.to_string().to_lowercase();
                function.name = ast::ObjectName::from(vec![Ident::new(folded)]);
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    // Parentheses leave their mark only in the text.
    expr.to_string().replace(['(', ')'], "")
}

/// Gives every repeated unnamed item of the statement's top-level SELECT lists a unique alias.
pub fn alias_repeated_columns(statement: &mut ast::Statement) {
    if let ast::Statement::Query(query) = statement {
        alias_in(query.body.as_mut());
    }
}

fn alias_in(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => alias_items(&mut select.projection),
        SetExpr::Query(query) => alias_in(query.body.as_mut()),
        SetExpr::SetOperation { left, right, .. } => {
            alias_in(left);
            alias_in(right);
        }
        _ => {}
    }
}

fn alias_items(items: &mut [SelectItem]) {
    // Names DataFusion would give (an expression's text, a column's last part) and the names
    // PostgreSQL gives: a repeat of either is renamed.
    let mut seen = HashSet::new();
    let has_wildcard = items.iter().any(|i| {
        matches!(
            i,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    });
    for (position, item) in items.iter_mut().enumerate() {
        let (expr, keys, name, beside_wildcard) = match &*item {
            SelectItem::UnnamedExpr(expr) => {
                let datafusion_key = datafusion_name(expr);
                let name = output_name(expr);
                // A column beside a wildcard may repeat one of the wildcard's columns.
                let beside_wildcard = has_wildcard
                    && matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                (
                    expr.clone(),
                    vec![datafusion_key, name.clone()],
                    name,
                    beside_wildcard,
                )
            }
            SelectItem::ExprWithAlias { expr, alias } if !is_repeat_alias(alias) => {
                let name = super::fold(alias);
                (expr.clone(), vec![name.clone()], name, false)
            }
            _ => continue,
        };
        let repeated = beside_wildcard || keys.iter().any(|k| seen.contains(k));
        seen.extend(keys);
        if repeated {
            *item = SelectItem::ExprWithAlias {
                expr,
                alias: Ident::new(format!("{REPEAT_ALIAS_PREFIX}{position}_{name}")),
            };
        }
    }
}

/// What DataFusion's name for an unnamed item turns on: the expression's text, a column's
/// last part, one name for every scalar subquery, and a cast's operand alone (DataFusion
/// names `'1'::int` and `CAST('1' AS bigint)` alike, and `date '2020-01-01'` as its text).
fn datafusion_name(expr: &Expr) -> String {
    match expr {
        Expr::Subquery(_) => "(subquery)".to_owned(),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => output_name(expr),
        Expr::Cast { expr, .. } => datafusion_name(expr),
        Expr::TypedString(typed) => typed.value.to_string(),
        other => other.to_string(),
    }
}

/// datafusion-pg-catalog's rewrite of catalog queries renames a column repeated beside a
/// wildcard (`a.oid, a.*`) to `__alias_<name>`; it becomes a repeat alias like ours, so the
/// result still names the column as PostgreSQL does.
pub fn adopt_catalog_rewrite_aliases(statement: &mut ast::Statement) {
    const CATALOG_REWRITE_PREFIX: &str = "__alias_";
    fn adopt(body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                for (position, item) in select.projection.iter_mut().enumerate() {
                    if let SelectItem::ExprWithAlias { alias, .. } = item
                        && let Some(name) = alias.value.strip_prefix(CATALOG_REWRITE_PREFIX)
                    {
                        *alias = Ident::new(format!("{REPEAT_ALIAS_PREFIX}{position}_{name}"));
                    }
                }
            }
            SetExpr::Query(query) => adopt(query.body.as_mut()),
            SetExpr::SetOperation { left, right, .. } => {
                adopt(left);
                adopt(right);
            }
            _ => {}
        }
    }
    if let ast::Statement::Query(query) = statement {
        adopt(query.body.as_mut());
    }
}

/// Whether `alias` is one `alias_repeated_columns` gave.
pub fn is_repeat_alias(alias: &Ident) -> bool {
    alias.value.starts_with(REPEAT_ALIAS_PREFIX)
}

/// The result column name a repeat alias stands for (`None` for the older form without one).
pub fn repeated_name(alias: &Ident) -> Option<String> {
    let rest = alias.value.strip_prefix(REPEAT_ALIAS_PREFIX)?;
    let (_, name) = rest.split_once('_')?;
    Some(name.to_owned())
}

pub fn select_items(body: &SetExpr) -> Option<&[SelectItem]> {
    match body {
        SetExpr::Select(select) => Some(&select.projection),
        SetExpr::Query(query) => select_items(&query.body),
        // A set operation takes its column names from its first branch.
        SetExpr::SetOperation { left, .. } => select_items(left),
        _ => None,
    }
}

/// PostgreSQL's FigureColname, for the expressions it gives names to.
pub fn output_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(ident) => super::fold(ident),
        Expr::CompoundIdentifier(parts) => parts.last().map(super::fold).unwrap_or_default(),
        Expr::Function(function) => function
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_lowercase())
            .unwrap_or_else(unnamed),
        // A name a cast gives is weak: an outer cast renames it (`'1'::int::text` is `text`).
        Expr::Cast {
            expr, data_type, ..
        } => match output_name(expr) {
            name if name == unnamed() || weakly_named(expr) => type_name(data_type),
            name => name,
        },
        // `date '1999-01-08'` is a cast of a literal in PostgreSQL, named by its type.
        Expr::TypedString(typed) => type_name(&typed.data_type),
        Expr::Interval(_) => "interval".into(),
        Expr::Nested(inner) => output_name(inner),
        // A scalar subquery is named after its one column (seen through the single-row
        // aggregate KalamDB holds it with).
        Expr::Subquery(query) => match select_items(&query.body) {
            Some([SelectItem::ExprWithAlias { alias, .. }]) => super::fold(alias),
            Some([SelectItem::UnnamedExpr(Expr::Function(f))])
                if f.name.to_string() == super::SINGLE_ROW_FUNCTION =>
            {
                match &f.args {
                    ast::FunctionArguments::List(list) => match list.args.as_slice() {
                        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(inner))] => {
                            output_name(inner)
                        }
                        _ => unnamed(),
                    },
                    _ => unnamed(),
                }
            }
            Some([SelectItem::UnnamedExpr(inner)]) => output_name(inner),
            _ => unnamed(),
        },
        Expr::Case { .. } => "case".into(),
        // `NOT EXISTS` is an operator's result, unnamed.
        Expr::Exists { negated: false, .. } => "exists".into(),
        Expr::Array(_) => "array".into(),
        _ => unnamed(),
    }
}

/// Whether an expression's name is one a cast around it replaces: the name of a cast whose
/// own name came from its type, of a typed literal, or of `true`/`false` (constants that
/// PostgreSQL holds as casts).
fn weakly_named(expr: &Expr) -> bool {
    match expr {
        Expr::Cast { expr, .. } => output_name(expr) == unnamed() || weakly_named(expr),
        Expr::TypedString(_) | Expr::Interval(_) => true,
        Expr::Value(value) => matches!(value.value, ast::Value::Boolean(_)),
        _ => false,
    }
}

fn unnamed() -> String {
    "?column?".into()
}

/// PostgreSQL's internal type names, which it uses to name a cast literal's column.
fn type_name(data_type: &ast::DataType) -> String {
    match super::declared_type(data_type) {
        Ok(sql_type) => sql_type.internal_name().into(),
        Err(_) => data_type.to_string().to_lowercase(),
    }
}
