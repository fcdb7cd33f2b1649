//! `'name'::regclass` along the search path. datafusion-pg-catalog turns the cast into a
//! subquery over `pg_class` that looks for an unqualified name only in `current_schema()`;
//! PostgreSQL looks in `pg_catalog` and then each namespace of `search_path`, taking the first
//! that has the relation (`'pg_class'::regclass` is 1259 whatever the path).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, Expr, SetExpr, TableFactor, VisitorMut};

/// Where the namespace stands on the session's path, NULL when it is not on it.
const PATH_POSITION: &str = "array_position(current_schemas(true), n.nspname)";

/// Rewrites the crate's regclass subqueries: the unqualified case matches any namespace on
/// the path, and the first on the path wins.
pub(super) struct RegclassAlongPath;

impl VisitorMut for RegclassAlongPath {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Subquery(query) = expr
            && is_regclass_lookup(query)
            && let SetExpr::Select(select) = query.body.as_mut()
            && let Some(selection) = select.selection.as_mut()
        {
            let position = crate::sql::parse_expr(PATH_POSITION);
            let mut replaced = false;
            let _ = ast::visit_expressions_mut(selection, |e| {
                if let Expr::BinaryOp {
                    left,
                    op: ast::BinaryOperator::Eq,
                    right,
                } = e
                    && is_nspname(left)
                    && is_current_schema(right)
                    && let Ok(position) = &position
                {
                    *e = Expr::IsNotNull(Box::new(position.clone()));
                    replaced = true;
                }
                ControlFlow::<()>::Continue(())
            });
            if replaced && let Ok(position) = position {
                query.order_by = Some(ast::OrderBy {
                    kind: ast::OrderByKind::Expressions(vec![ast::OrderByExpr {
                        expr: position,
                        options: ast::OrderByOptions {
                            asc: None,
                            nulls_first: None,
                        },
                        with_fill: None,
                    }]),
                    interpolate: None,
                });
                query.limit_clause = Some(ast::LimitClause::LimitOffset {
                    limit: Some(Expr::value(ast::Value::Number("1".into(), false))),
                    offset: None,
                    limit_by: vec![],
                });
            }
        }
        ControlFlow::Continue(())
    }
}

/// The crate's lookup: `SELECT c.oid FROM pg_catalog.pg_class c ... CROSS JOIN (SELECT
/// parse_ident(...) AS parts) WHERE ...`.
fn is_regclass_lookup(query: &ast::Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let [from] = select.from.as_slice() else {
        return false;
    };
    let reads_pg_class = matches!(&from.relation, TableFactor::Table { name, .. }
        if name.to_string().eq_ignore_ascii_case("pg_catalog.pg_class"));
    let parses_ident = from.joins.iter().any(|join| match &join.relation {
        TableFactor::Derived { subquery, .. } => match subquery.body.as_ref() {
            SetExpr::Select(inner) => inner.projection.iter().any(|item| {
                matches!(item, ast::SelectItem::ExprWithAlias { expr: Expr::Function(f), alias }
                    if alias.value == "parts" && f.name.to_string().eq_ignore_ascii_case("parse_ident"))
            }),
            _ => false,
        },
        _ => false,
    });
    reads_pg_class && parses_ident
}

fn is_nspname(expr: &Expr) -> bool {
    matches!(expr, Expr::CompoundIdentifier(parts)
        if parts.len() == 2 && parts[0].value == "n" && parts[1].value == "nspname")
}

fn is_current_schema(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(f)
        if f.name.to_string().eq_ignore_ascii_case("current_schema"))
}

/// `(text) -> oid`: the relation a computed name means, along the search path (42P01 when none).
pub const RELATION_OID_FUNCTION: &str = "kalamdb_relation_oid";

/// Casts of a computed name to `regclass` (Metabase's `CAST(format('%I.%I', schema, table) AS
/// regclass)`) become `kalamdb_relation_oid(name)`. datafusion-pg-catalog answers a cast of a
/// literal with a `pg_class` lookup, but reads any other cast as one to an integer (22P02).
/// Only names computed by a function or a concatenation are taken: a column cast to regclass
/// is psql's `attrelid::regclass`, an OID the crate keeps, in statements whose exact text the
/// crate matches. Runs before the crate's rewrites, so `rewrote` says whether this statement
/// needs them applied to the rewritten tree.
#[derive(Default)]
pub(super) struct ComputedRegclass {
    pub rewrote: bool,
}

impl VisitorMut for ComputedRegclass {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast {
            expr: name,
            data_type,
            ..
        } = expr
            && is_regclass(data_type)
            && is_computed_text(name)
        {
            let name = std::mem::replace(name.as_mut(), Expr::value(ast::Value::Null));
            *expr = call(RELATION_OID_FUNCTION, name);
            self.rewrote = true;
        }
        ControlFlow::Continue(())
    }
}

/// A name built by a function call or a string concatenation.
fn is_computed_text(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(inner) => is_computed_text(inner),
        Expr::Function(_) => true,
        Expr::BinaryOp {
            op: ast::BinaryOperator::StringConcat,
            ..
        } => true,
        _ => false,
    }
}

fn is_regclass(data_type: &ast::DataType) -> bool {
    match data_type {
        ast::DataType::Regclass => true,
        ast::DataType::Custom(name, _) => {
            let name = name.to_string().to_ascii_lowercase();
            name == "regclass" || name == "pg_catalog.regclass"
        }
        _ => false,
    }
}

fn call(function: &str, argument: Expr) -> Expr {
    Expr::Function(ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident::new(function)]),
        uses_odbc_syntax: false,
        parameters: ast::FunctionArguments::None,
        args: ast::FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
                argument,
            ))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}
