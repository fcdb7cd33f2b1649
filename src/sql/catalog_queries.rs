//! Catalog queries from PostgreSQL tools (psql's `\d`, drivers' type lookups): rewritten by
//! datafusion-pg-catalog's parser, which matches psql's exact text, into forms DataFusion plans.

use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArguments, SelectItem, SetExpr, VisitMut, VisitorMut,
};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use super::subqueries::{SINGLE_ROW_FUNCTION, function_name, subquery_select};

static COMPATIBILITY: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// True when `text` reads PostgreSQL's catalogs or uses its catalog casts.
pub fn mentions_catalog(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("pg_catalog")
        || lower.contains("pg_class")
        || lower.contains("pg_type")
        || lower.contains("pg_namespace")
        || lower.contains("pg_roles")
        || lower.contains("::reg")
        || lower.contains("information_schema")
        || lower.contains("_size(")
}

/// The rewritten statements, when every statement in `text` is a query.
pub fn parse(text: &str) -> Option<Vec<ast::Statement>> {
    let rewritten = jdbc_primary_keys(text).or_else(|| keep_correlated_subqueries(text));
    let text = rewritten.as_deref().unwrap_or(text);
    let mut statements = COMPATIBILITY.parse(text).ok()?;
    if statements.is_empty()
        || !statements
            .iter()
            .all(|s| matches!(s, ast::Statement::Query(_)))
    {
        return None;
    }
    for statement in &mut statements {
        let _ = VisitMut::visit(statement, &mut ArraySubqueries);
        let _ = VisitMut::visit(statement, &mut LikeEscapes);
        let _ = VisitMut::visit(statement, &mut GenerateSubscripts);
        let _ = VisitMut::visit(statement, &mut ExistsInSelectLists);
        let _ = VisitMut::visit(statement, &mut DefinitionFunctions);
        let _ = VisitMut::visit(statement, &mut EmptyCatalogSubqueries);
        let _ = VisitMut::visit(statement, &mut OuterOnlyConditions);
    }
    Some(statements)
}

/// datafusion-pg-catalog answers a correlated scalar subquery that is a whole select item
/// with NULL (psql's `\d` would show no defaults). Such an item, when DataFusion can
/// decorrelate it once the passes below have run, becomes
/// `CASE WHEN true THEN (subquery) END`, which the crate leaves alone and DataFusion
/// simplifies back. `None` when the text has no such item (its exact text is kept: the
/// crate's replacements of known psql queries match on it).
fn keep_correlated_subqueries(text: &str) -> Option<String> {
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
                if !joinable_correlated(subquery) {
                    continue;
                }
                if let Ok(wrapped) = super::parse_expr(&format!("CASE WHEN true THEN {expr} END")) {
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
fn select_item_exprs(query: &mut ast::Query) -> impl Iterator<Item = &mut Expr> {
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
fn reads_outer_column<V: ast::Visit>(node: &V, bound: &[String]) -> bool {
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
fn joinable_correlated(query: &ast::Query) -> bool {
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

/// `ARRAY(SELECT e FROM ... ORDER BY ...)` becomes `(SELECT array_agg(e ORDER BY ...) FROM ...)`,
/// which DataFusion plans, correlated references included.
struct ArraySubqueries;

impl VisitorMut for ArraySubqueries {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(function) = expr else {
            return ControlFlow::Continue(());
        };
        let is_array = function_name(function).as_deref() == Some("array");
        let FunctionArguments::Subquery(query) = &function.args else {
            return ControlFlow::Continue(());
        };
        if !is_array {
            return ControlFlow::Continue(());
        }
        let mut query = query.as_ref().clone();
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let element = match select.projection.as_slice() {
            [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => e.clone(),
            _ => return ControlFlow::Continue(()),
        };
        let order = match query.order_by.take() {
            Some(order_by) => match &order_by.kind {
                ast::OrderByKind::Expressions(items) if !items.is_empty() => {
                    let keys: Vec<String> = items
                        .iter()
                        .map(|item| match &item.expr {
                            // `ORDER BY 1` names the (only) select item.
                            Expr::Value(_) => element.to_string(),
                            other => other.to_string(),
                        })
                        .collect();
                    format!(" ORDER BY {}", keys.join(", "))
                }
                _ => String::new(),
            },
            None => String::new(),
        };
        let Ok(aggregate) = super::parse_expr(&format!("array_agg({element}{order})")) else {
            return ControlFlow::Continue(());
        };
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
        *expr = Expr::Subquery(Box::new(query));
        ControlFlow::Continue(())
    }
}

/// `generate_subscripts(a, d)`, a set-returning function zipped with `unnest(a)` in
/// SQLAlchemy's key-column queries, becomes
/// `unnest(generate_series(1, CASE WHEN d = 1 THEN cardinality(a) ELSE 0 END))`, which
/// DataFusion zips the same way. Every KalamDB array has one dimension, so any other `d`
/// has no subscripts.
struct GenerateSubscripts;

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
        if let Ok(rewritten) = super::parse_expr(&format!(
            "unnest(generate_series(1, \
             CAST(CASE WHEN {dimension} = 1 THEN cardinality({array}) ELSE 0 END AS BIGINT)))"
        )) {
            *expr = rewritten;
        }
        ControlFlow::Continue(())
    }
}

/// `(objid, column_no, definition)` in `pg_catalog`: what `pg_get_indexdef(objid, column_no)`
/// and `pg_get_constraintdef(objid)` return (column 0 is the whole definition).
pub const DEFINITIONS_TABLE: &str = "kalamdb_definitions";

/// `EXISTS (SELECT ... FROM t WHERE c)` in a select list (psql's `\d` of an index) becomes
/// `((SELECT count(*) FROM t WHERE c) > 0)`, and `NOT EXISTS` `= 0`: the same truth, as an
/// aggregated scalar subquery, which DataFusion decorrelates there (it plans EXISTS only in
/// WHERE).
struct ExistsInSelectLists;

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
fn counted_exists(subquery: &ast::Query, negated: bool) -> Option<Expr> {
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
    counted.projection = vec![SelectItem::UnnamedExpr(super::parse_expr("count(*)").ok()?)];
    counted.distinct = None;
    let comparison = if negated { "= 0" } else { "> 0" };
    super::parse_expr(&format!("(({counted}) {comparison})")).ok()
}

/// `(oid, bytes)` in `pg_catalog`: the size of each KalamDB table, by its `pg_class` OID.
pub const RELATION_SIZES_TABLE: &str = "kalamdb_relation_sizes";

/// Functions PostgreSQL answers from its catalogs become lookups in catalog tables KalamDB
/// derives from its own (a function cannot see the OIDs the session's catalog tables hand
/// out): `pg_get_indexdef(oid [, column, pretty])` and `pg_get_constraintdef(oid [, pretty])`
/// read `kalamdb_definitions`; `pg_table_size`, `pg_total_relation_size` and
/// `pg_relation_size` read `kalamdb_relation_sizes`, and `pg_database_size` sums it.
struct DefinitionFunctions;

/// The functions `DefinitionFunctions` answers.
const DEFINITION_FUNCTIONS: [&str; 6] = [
    "pg_get_indexdef",
    "pg_get_constraintdef",
    "pg_table_size",
    "pg_total_relation_size",
    "pg_relation_size",
    "pg_database_size",
];

/// The lookup replacing a call of `name` with `args`, if it is one `DefinitionFunctions`
/// answers.
fn catalog_lookup(name: &str, args: &[ast::FunctionArg]) -> Option<String> {
    let definition = |object: &ast::FunctionArg, column: &str| {
        format!(
            "(SELECT {SINGLE_ROW_FUNCTION}(kalamdb_def.definition) \
             FROM pg_catalog.{DEFINITIONS_TABLE} kalamdb_def \
             WHERE kalamdb_def.objid = {object} AND kalamdb_def.column_no = {column})"
        )
    };
    Some(match (name, args) {
        ("pg_get_indexdef", [object]) | ("pg_get_constraintdef", [object] | [object, _]) => {
            definition(object, "0")
        }
        ("pg_get_indexdef", [object, column, _]) => definition(object, &column.to_string()),
        (
            "pg_table_size" | "pg_total_relation_size" | "pg_relation_size",
            [object] | [object, _],
        ) => format!(
            "(SELECT {SINGLE_ROW_FUNCTION}(kalamdb_size.bytes) \
             FROM pg_catalog.{RELATION_SIZES_TABLE} kalamdb_size WHERE kalamdb_size.oid = {object})"
        ),
        // One database: its size is its tables'.
        ("pg_database_size", [_]) => format!(
            "(SELECT CAST(COALESCE(sum(kalamdb_size.bytes), 0) AS BIGINT) \
             FROM pg_catalog.{RELATION_SIZES_TABLE} kalamdb_size)"
        ),
        _ => return None,
    })
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
        let mut used = std::collections::HashSet::new();
        for (position, item) in select.projection.iter_mut().enumerate() {
            if let SelectItem::UnnamedExpr(Expr::Function(function)) = item
                && let Some(name) = function_name(function)
                && DEFINITION_FUNCTIONS.contains(&name.as_str())
            {
                let name = if used.insert(name.clone()) {
                    name
                } else {
                    format!("{}{position}", super::REPEAT_ALIAS_PREFIX)
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
            .and_then(|sql| super::parse_expr(&sql).ok())
        else {
            return ControlFlow::Continue(());
        };
        *expr = lookup;
        ControlFlow::Continue(())
    }
}

/// `pg_catalog` tables that are empty in KalamDB: it has no sequences.
const EMPTY_CATALOG_TABLES: [&str; 1] = ["pg_sequence"];

/// A scalar subquery reading only a catalog table KalamDB keeps empty is NULL, whatever it
/// selects or correlates on (SQLAlchemy's identity options read `pg_sequence` through
/// `pg_get_serial_sequence(attrelid::regclass::text, ...)`, which DataFusion cannot
/// decorrelate).
struct EmptyCatalogSubqueries;

impl VisitorMut for EmptyCatalogSubqueries {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Some(select) = subquery_select(expr) else {
            return ControlFlow::Continue(());
        };
        let reads_only_empty = match select.from.as_slice() {
            [only] if only.joins.is_empty() => match &only.relation {
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
            *expr = Expr::Value(ast::Value::Null.into());
        }
        ControlFlow::Continue(())
    }
}

/// In a correlated scalar subquery, WHERE conditions that read only the outer query's
/// columns move out as a guard: `(SELECT e FROM t WHERE outer.c AND t.k = outer.k)` becomes
/// `CASE WHEN outer.c THEN (SELECT e FROM t WHERE t.k = outer.k) END`. Both are NULL when
/// the guard does not hold; DataFusion decorrelates only the second. A condition counts as
/// outer when every column in it is qualified by a name the subquery's FROM does not bind.
struct OuterOnlyConditions;

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
        match super::parse_expr(&format!(
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
fn conjunction(conditions: impl IntoIterator<Item = Expr>) -> Option<Expr> {
    conditions.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    })
}

/// The lower-cased names a FROM clause binds (aliases, or tables' last names), or `None`
/// when it holds something other than plain tables and aliased subqueries.
fn bound_relation_names(from: &[ast::TableWithJoins]) -> Option<Vec<String>> {
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

fn conjuncts(expr: Expr) -> Vec<Expr> {
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
fn reads_only_outer(condition: &Expr, bound: &[String]) -> bool {
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

/// Name of the function that turns a LIKE pattern with another escape character into one
/// escaped with backslashes (the only escape DataFusion's LIKE knows).
pub const LIKE_PATTERN_FUNCTION: &str = "kalamdb_like_pattern";

/// `x LIKE p ESCAPE '/'` (SQLAlchemy's schema listing) becomes
/// `x LIKE kalamdb_like_pattern(p, '/')`.
struct LikeEscapes;

impl VisitorMut for LikeEscapes {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let (Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        }) = expr
        else {
            return ControlFlow::Continue(());
        };
        let escape = match escape_char.as_ref().map(|v| &v.value) {
            Some(ast::Value::SingleQuotedString(e)) if e != "\\" => e.clone(),
            _ => return ControlFlow::Continue(()),
        };
        let call = format!(
            "{LIKE_PATTERN_FUNCTION}({pattern}, '{}')",
            escape.replace('\'', "''")
        );
        if let Ok(rewritten) = super::parse_expr(&call) {
            **pattern = rewritten;
            *escape_char = None;
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites a LIKE pattern escaped with `escape` into the backslash-escaped form.
pub fn backslash_like_pattern(pattern: &str, escape: &str) -> String {
    let escape = escape.chars().next();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next @ ('%' | '_')) => {
                    out.push('\\');
                    out.push(next);
                }
                Some('\\') => out.push_str("\\\\"),
                Some(next) => out.push(next),
                None => {}
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

/// The table in `pg_catalog` listing every primary-key column.
pub const PRIMARY_KEYS_TABLE: &str = "kalamdb_primary_keys";

/// pgJDBC's `DatabaseMetaData.getPrimaryKeys` expands `pg_index.indkey` with
/// `information_schema._pg_expandarray` and reads fields of the composite it returns, which
/// DataFusion cannot plan. The query is recognised by those parts and answered from
/// `pg_catalog.kalamdb_primary_keys` with the same columns, filters and order.
fn jdbc_primary_keys(text: &str) -> Option<String> {
    if !(text.contains("_pg_expandarray(i.indkey)") && text.contains("indisprimary")) {
        return None;
    }
    let mut conditions = Vec::new();
    for (marker, column) in [
        ("n.nspname = ", "namespace"),
        ("ct.relname = ", "table_name"),
    ] {
        if let Some(value) = text
            .find(marker)
            .and_then(|at| quoted_literal(&text[at + marker.len()..]))
        {
            conditions.push(format!("{column} = '{}'", value.replace('\'', "''")));
        }
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    Some(format!(
        "SELECT CAST(NULL AS TEXT) AS table_cat, namespace AS table_schem, table_name, \
         column_name, key_seq, pk_name FROM pg_catalog.{PRIMARY_KEYS_TABLE}{filter} \
         ORDER BY table_name, pk_name, key_seq"
    ))
}

/// The value of a string literal at the start of `text` (`'x'` or `E'x'`, with `''` inside).
fn quoted_literal(text: &str) -> Option<String> {
    let rest = text.strip_prefix('E').unwrap_or(text).strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                value.push('\'');
            }
            '\'' => return Some(value),
            '\\' => value.push(chars.next()?),
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let statements = parse(sql).expect("a catalog query");
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn conditions_on_outer_columns_only_become_a_guard_around_the_subquery() {
        let sql = rewritten(
            "SELECT CASE WHEN a.atthasdef THEN (SELECT d.adbin FROM pg_catalog.pg_attrdef d \
             WHERE a.atthasdef AND d.adrelid = a.attrelid) END FROM pg_catalog.pg_attribute a",
        );
        assert!(
            sql.contains("CASE WHEN (a.atthasdef) THEN (SELECT d.adbin"),
            "{sql}"
        );
        assert!(sql.contains("WHERE d.adrelid = a.attrelid)"), "{sql}");
    }

    #[test]
    fn conditions_reading_the_subquerys_own_tables_stay_inside() {
        let sql = rewritten(
            "SELECT (SELECT max(d.adnum) FROM pg_catalog.pg_attrdef d \
             WHERE d.adnum > 0 AND d.adrelid = a.attrelid) FROM pg_catalog.pg_attribute a",
        );
        assert!(
            sql.contains("WHERE d.adnum > 0 AND d.adrelid = a.attrelid"),
            "{sql}"
        );
        assert!(!sql.contains("CASE WHEN (d."), "{sql}");
    }

    #[test]
    fn a_subquery_over_an_always_empty_catalog_is_null() {
        let sql = rewritten(
            "SELECT a.attname, (SELECT s.seqstart FROM pg_catalog.pg_sequence s \
             WHERE s.seqrelid = a.attrelid) AS seq FROM pg_catalog.pg_attribute a",
        );
        assert!(sql.contains("THEN NULL END AS seq"), "{sql}");
        assert!(!sql.contains("pg_sequence"), "{sql}");
    }

    #[test]
    fn generate_subscripts_zips_with_unnest() {
        let sql = rewritten(
            "SELECT unnest(i.indkey) AS attnum, generate_subscripts(i.indkey, 1) AS ord \
             FROM pg_catalog.pg_index i",
        );
        assert!(
            sql.contains(
                "unnest(generate_series(1, CAST(CASE WHEN 1 = 1 THEN cardinality(i.indkey) ELSE 0 END AS BIGINT))) AS ord"
            ),
            "{sql}"
        );
    }

    #[test]
    fn index_and_constraint_definitions_are_looked_up_and_keep_their_names() {
        let sql = rewritten(
            "SELECT pg_catalog.pg_get_indexdef(i.indexrelid, 0, true), \
             pg_catalog.pg_get_constraintdef(c.oid, true) FROM pg_catalog.pg_index i, \
             pg_catalog.pg_constraint c",
        );
        assert!(
            sql.contains(
                "kalamdb_def.objid = i.indexrelid AND kalamdb_def.column_no = 0) AS pg_get_indexdef"
            ),
            "{sql}"
        );
        assert!(
            sql.contains(
                "kalamdb_def.objid = c.oid AND kalamdb_def.column_no = 0) AS pg_get_constraintdef"
            ),
            "{sql}"
        );
    }

    #[test]
    fn exists_in_a_select_list_becomes_a_count() {
        let sql = rewritten(
            "SELECT i.indisunique, EXISTS (SELECT 1 FROM pg_catalog.pg_constraint \
             WHERE conindid = i.indexrelid), NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
             WHERE c.oid = i.indrelid) FROM pg_catalog.pg_index i \
             WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c2 WHERE c2.oid = i.indrelid)",
        );
        assert!(
            sql.contains(
                "((SELECT count(*) FROM pg_catalog.pg_constraint WHERE conindid = i.indexrelid) > 0)"
            ),
            "{sql}"
        );
        assert!(
            sql.contains(
                "((SELECT count(*) FROM pg_catalog.pg_class c WHERE c.oid = i.indrelid) = 0)"
            ),
            "{sql}"
        );
        // EXISTS in WHERE, which DataFusion plans, stays.
        assert!(
            sql.contains("WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class"),
            "{sql}"
        );
    }

    #[test]
    fn correlated_select_items_are_kept_only_when_datafusion_can_join_them() {
        let joinable = "SELECT (SELECT d.adbin FROM pg_catalog.pg_attrdef d \
                        WHERE d.adrelid = a.attrelid AND a.atthasdef) FROM pg_catalog.pg_attribute a";
        let kept = keep_correlated_subqueries(joinable).expect("wrapped");
        assert!(
            kept.contains("CASE WHEN true THEN (SELECT d.adbin"),
            "{kept}"
        );
        let unequal = "SELECT (SELECT c.collname FROM pg_catalog.pg_collation c \
                       WHERE c.oid = a.attcollation AND a.attcollation <> c.collencoding) \
                       FROM pg_catalog.pg_attribute a";
        assert_eq!(keep_correlated_subqueries(unequal), None);
        let uncorrelated = "SELECT (SELECT count(*) FROM pg_catalog.pg_class c)";
        assert_eq!(keep_correlated_subqueries(uncorrelated), None);
    }

    #[test]
    fn like_patterns_with_another_escape_become_backslash_escaped() {
        assert_eq!(backslash_like_pattern("pg/_%", "/"), "pg\\_%");
        assert_eq!(backslash_like_pattern("a//b", "/"), "a/b");
        assert_eq!(backslash_like_pattern("a\\b/%", "/"), "a\\\\b\\%");
    }
}
