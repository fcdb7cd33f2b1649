//! Functions PostgreSQL answers from its catalogs (`pg_get_indexdef`, `pg_get_constraintdef`, the
//! size functions), as lookups in catalog tables KalamDB derives.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArguments, SelectItem, SetExpr, VisitorMut,
};

use crate::sql::subqueries::{SINGLE_ROW_FUNCTION, function_name};

/// `(objid, column_no, definition)` in `pg_catalog`: what `pg_get_indexdef(objid, column_no)`
/// and `pg_get_constraintdef(objid)` return (column 0 is the whole definition).
pub const DEFINITIONS_TABLE: &str = "kalamdb_definitions";

/// The `column_no` of a view's pretty definition (`pg_get_viewdef(oid, true)`) in
/// `kalamdb_definitions`; column 0 holds the plain one.
pub const PRETTY_VIEW_COLUMN: i32 = -1;

/// `(oid, bytes)` in `pg_catalog`: the size of each KalamDB table, by its `pg_class` OID.
pub const RELATION_SIZES_TABLE: &str = "kalamdb_relation_sizes";

/// Functions PostgreSQL answers from its catalogs become lookups in catalog tables KalamDB
/// derives from its own (a function cannot see the OIDs the session's catalog tables hand
/// out): `pg_get_indexdef(oid [, column, pretty])`, `pg_get_constraintdef(oid [, pretty])`
/// and `pg_get_triggerdef(oid [, pretty])` read `kalamdb_definitions`; `pg_table_size`, `pg_total_relation_size` and
/// `pg_relation_size` read `kalamdb_relation_sizes`, and `pg_database_size` sums it.
pub(super) struct DefinitionFunctions;

/// `(oidvector text)`: the types' names as `format_type` gives them, comma-separated.
pub const FORMAT_TYPES_FUNCTION: &str = "kalamdb_format_types";

/// The functions `DefinitionFunctions` answers.
pub(super) const DEFINITION_FUNCTIONS: [&str; 13] = [
    "pg_get_function_result",
    "pg_get_function_arguments",
    "pg_get_function_identity_arguments",
    "pg_get_viewdef",
    "pg_get_triggerdef",
    "obj_description",
    "col_description",
    "pg_get_indexdef",
    "pg_get_constraintdef",
    "pg_table_size",
    "pg_total_relation_size",
    "pg_relation_size",
    "pg_database_size",
];

/// The lookup replacing a call of `name` with `args`, if it is one `DefinitionFunctions`
/// answers.
pub(super) fn catalog_lookup(name: &str, args: &[ast::FunctionArg]) -> Option<String> {
    let definition = |object: &dyn std::fmt::Display, column: &str| {
        format!(
            "(SELECT {SINGLE_ROW_FUNCTION}(kalamdb_def.definition) \
             FROM pg_catalog.{DEFINITIONS_TABLE} kalamdb_def \
             WHERE kalamdb_def.objid = {object} AND kalamdb_def.column_no = {column})"
        )
    };
    let description = |object: &ast::FunctionArg, column: &str| {
        format!(
            "(SELECT {SINGLE_ROW_FUNCTION}(kalamdb_desc.description) \
             FROM pg_catalog.pg_description kalamdb_desc \
             WHERE kalamdb_desc.objoid = {object} AND kalamdb_desc.objsubid = {column})"
        )
    };
    Some(match (name, args) {
        // KalamDB keeps descriptions of relations and their columns only.
        ("obj_description", [object] | [object, _]) => description(object, "0"),
        ("col_description", [object, column]) => description(object, &column.to_string()),
        ("pg_get_indexdef", [object])
        // KalamDB has no triggers: no definition has a trigger's OID.
        | ("pg_get_constraintdef" | "pg_get_triggerdef", [object] | [object, _])
        | ("pg_get_viewdef", [object]) => definition(&relation_argument(object), "0"),
        // The pretty form, also for a wrap column (which only shortens PostgreSQL's lines).
        ("pg_get_viewdef", [object, pretty]) => definition(
            &relation_argument(object),
            &format!("CASE WHEN CAST({pretty} AS BOOLEAN) THEN {PRETTY_VIEW_COLUMN} ELSE 0 END"),
        ),
        ("pg_get_indexdef", [object, column, _]) => definition(object, &column.to_string()),
        (
            "pg_table_size" | "pg_total_relation_size" | "pg_relation_size",
            [object] | [object, _],
        ) => format!(
            "(SELECT {SINGLE_ROW_FUNCTION}(kalamdb_size.bytes) \
             FROM pg_catalog.{RELATION_SIZES_TABLE} kalamdb_size WHERE kalamdb_size.oid = {})",
            relation_argument(object)
        ),
        // A function's result and argument types from `pg_proc`, named as `format_type` names
        // them (argument names and defaults are not listed).
        ("pg_get_function_result", [object]) => format!(
            "(SELECT {SINGLE_ROW_FUNCTION}(CASE WHEN kalamdb_proc.proretset THEN 'SETOF ' \
             ELSE '' END || {FORMAT_TYPES_FUNCTION}(CAST(kalamdb_proc.prorettype AS TEXT))) \
             FROM pg_catalog.pg_proc kalamdb_proc WHERE kalamdb_proc.oid = {object})"
        ),
        // With no argument names, defaults or OUT arguments listed, the arguments that
        // identify a function are all of them.
        ("pg_get_function_arguments" | "pg_get_function_identity_arguments", [object]) => format!(
            "(SELECT {SINGLE_ROW_FUNCTION}({FORMAT_TYPES_FUNCTION}(kalamdb_proc.proargtypes)) \
             FROM pg_catalog.pg_proc kalamdb_proc WHERE kalamdb_proc.oid = {object})"
        ),
        // One database: its size is its tables'.
        ("pg_database_size", [_]) => format!(
            "(SELECT CAST(COALESCE(sum(kalamdb_size.bytes), 0) AS BIGINT) \
             FROM pg_catalog.{RELATION_SIZES_TABLE} kalamdb_size)"
        ),
        _ => return None,
    })
}

/// A relation named by a quoted literal (`pg_get_viewdef('v')`, PostgreSQL's text variant;
/// `pg_total_relation_size('s.t')`, where PostgreSQL reads the literal as a regclass) is the
/// relation that name resolves to; any other argument is an OID already.
fn relation_argument(object: &ast::FunctionArg) -> String {
    match object {
        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Value(value)))
            if matches!(value.value, ast::Value::SingleQuotedString(_)) =>
        {
            format!("{}({object})", super::regclass::RELATION_OID_FUNCTION)
        }
        other => other.to_string(),
    }
}

/// Qualifies the bare column arguments of a call `DefinitionFunctions` answers.
fn qualify_arguments(expr: &mut Expr, relation: &ast::Ident) {
    let Expr::Function(function) = expr else {
        return;
    };
    if !function_name(function).is_some_and(|n| DEFINITION_FUNCTIONS.contains(&n.as_str())) {
        return;
    }
    let FunctionArguments::List(list) = &mut function.args else {
        return;
    };
    for arg in &mut list.args {
        if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Identifier(column))) = arg
        {
            *arg = ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::CompoundIdentifier(
                vec![relation.clone(), column.clone()],
            )));
        }
    }
}

impl VisitorMut for DefinitionFunctions {
    type Break = ();

    /// A select item calling one of them is named after the function, as PostgreSQL names
    /// it; the lookup replacing the call would otherwise be named like any other subquery.
    /// A second call of the same function in one list gets a repeat's alias instead.
    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        // A lookup's own relation would capture an unqualified argument (`oid` in
        // `pg_get_function_arguments(oid) FROM pg_proc`): it is qualified by the query's
        // relation.
        if let Some(relation) = crate::sql::subqueries::single_relation(select) {
            for item in &mut select.projection {
                let _ = ast::visit_expressions_mut(item, |e| {
                    qualify_arguments(e, &relation);
                    ControlFlow::<()>::Continue(())
                });
            }
        }
        let mut used = std::collections::HashSet::new();
        for (position, item) in select.projection.iter_mut().enumerate() {
            if let SelectItem::UnnamedExpr(Expr::Function(function)) = item
                && let Some(name) = function_name(function)
                && DEFINITION_FUNCTIONS.contains(&name.as_str())
            {
                let name = if used.insert(name.clone()) {
                    name
                } else {
                    format!("{}{position}", crate::sql::REPEAT_ALIAS_PREFIX)
                };
                let SelectItem::UnnamedExpr(expr) = std::mem::replace(
                    item,
                    SelectItem::Wildcard(ast::WildcardAdditionalOptions::default()),
                ) else {
                    unreachable!("matched above")
                };
                *item = SelectItem::ExprWithAlias {
                    expr,
                    alias: ast::Ident::new(name),
                };
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(function) = expr else {
            return ControlFlow::Continue(());
        };
        let FunctionArguments::List(list) = &function.args else {
            return ControlFlow::Continue(());
        };
        let Some(lookup) = function_name(function)
            .and_then(|name| catalog_lookup(&name, &list.args))
            .and_then(|sql| crate::sql::parse_expr(&sql).ok())
        else {
            return ControlFlow::Continue(());
        };
        *expr = lookup;
        ControlFlow::Continue(())
    }
}
