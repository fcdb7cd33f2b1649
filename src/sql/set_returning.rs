//! Set-returning functions with PostgreSQL's shape. In a SELECT list `generate_series(...)`
//! yields a row per element, where DataFusion's function of that name returns one array: the
//! call is spread with `unnest` and keeps PostgreSQL's column name. In FROM, a one-column
//! function named only by a table alias names its column after the alias (`FROM
//! generate_series(1, 3) g` has column `g`), and without an alias after the function.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, Ident, SelectItem, SetExpr, TableAlias, TableAliasColumnDef, TableFactor, VisitMut,
    VisitorMut,
};

use super::subqueries::function_name;

/// Functions returning one column that DataFusion computes as an array per call.
const ARRAY_BACKED: [&str; 10] = [
    "generate_series",
    "regexp_matches",
    "regexp_split_to_table",
    "string_to_table",
    "jsonb_array_elements",
    "json_array_elements",
    "jsonb_array_elements_text",
    "json_array_elements_text",
    "jsonb_object_keys",
    "json_object_keys",
];

/// Functions usable in FROM that return one column.
const ONE_COLUMN_SOURCES: [&str; 2] = ["generate_series", "unnest"];

/// The functions DataFusion itself plans as table sources; any other function in FROM is a
/// scalar (or array-backed set-returning) one, made a one-row derived table.
const TABLE_FUNCTIONS: [&str; 3] = ["generate_series", "range", "unnest"];

pub fn spread_set_returning_functions(statement: &mut ast::Statement) {
    let _ = VisitMut::visit(statement, &mut Spread);
}

struct Spread;

impl VisitorMut for Spread {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        in_body(query.body.as_mut());
        ControlFlow::Continue(())
    }
}

fn in_body(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                match item {
                    SelectItem::UnnamedExpr(expr) if array_backed(expr).is_some() => {
                        let name = Ident::new(array_backed(expr).unwrap_or_default());
                        *item = SelectItem::ExprWithAlias {
                            expr: spread(expr.clone()),
                            alias: name,
                        };
                    }
                    SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                        spread_within(expr)
                    }
                    _ => {}
                }
            }
            for table in &mut select.from {
                name_single_column(&mut table.relation);
                call_as_derived_table(&mut table.relation);
                for join in &mut table.joins {
                    name_single_column(&mut join.relation);
                    call_as_derived_table(&mut join.relation);
                }
            }
            super::lateral_calls::join_lateral_calls(select);
        }
        SetExpr::SetOperation { left, right, .. } => {
            in_body(left);
            in_body(right);
        }
        _ => {}
    }
}

/// The function's name when `expr` calls an array-backed set-returning function.
fn array_backed(expr: &Expr) -> Option<String> {
    let Expr::Function(function) = expr else {
        return None;
    };
    function_name(function).filter(|name| ARRAY_BACKED.contains(&name.as_str()))
}

/// Whether `expr` calls an array-backed set-returning function where a SELECT list spreads
/// it (itself, or inside operators and casts).
pub(super) fn yields_rows(expr: &Expr) -> bool {
    if array_backed(expr).is_some() {
        return true;
    }
    match expr {
        Expr::BinaryOp { left, right, .. } => yields_rows(left) || yields_rows(right),
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => {
            yields_rows(expr)
        }
        _ => false,
    }
}

fn spread(mut call: Expr) -> Expr {
    if let Expr::Function(function) = &mut call {
        type_untyped_bounds(function);
    }
    super::parse_expr(&format!("unnest({call})")).unwrap_or(call)
}

/// Spreads calls inside operators and casts (`generate_series(1, 3) * 2`); subqueries are
/// queries of their own and are visited as such.
fn spread_within(expr: &mut Expr) {
    if array_backed(expr).is_some() {
        *expr = spread(expr.clone());
        return;
    }
    match expr {
        Expr::BinaryOp { left, right, .. } => {
            spread_within(left);
            spread_within(right);
        }
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => {
            spread_within(expr)
        }
        _ => {}
    }
}

/// `generate_series(TIMESTAMP '...', '...', '1 day')`: PostgreSQL types the quoted bounds
/// and step from the first bound; DataFusion needs them typed.
fn type_untyped_bounds(function: &mut ast::Function) {
    let ast::FunctionArguments::List(list) = &mut function.args else {
        return;
    };
    let [start, stop, step] = list.args.as_mut_slice() else {
        return;
    };
    let bound_type = match start {
        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Cast { data_type, .. }))
        | ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::TypedString(
            ast::TypedString { data_type, .. },
        ))) => data_type.clone(),
        _ => return,
    };
    let cast = |arg: &mut ast::FunctionArg, data_type: ast::DataType| {
        if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(value)) = arg
            && matches!(value, Expr::Value(v) if matches!(v.value, ast::Value::SingleQuotedString(_)))
        {
            *value = Expr::Cast {
                kind: ast::CastKind::Cast,
                expr: Box::new(value.clone()),
                data_type,
                array: false,
                format: None,
            };
        }
    };
    cast(stop, bound_type);
    cast(
        step,
        ast::DataType::Interval {
            fields: None,
            precision: None,
        },
    );
}

fn name_single_column(relation: &mut TableFactor) {
    let (function, alias) = match relation {
        TableFactor::Table {
            name,
            args: Some(_),
            alias,
            ..
        } => (
            name.0
                .last()
                .and_then(|p| p.as_ident())
                .map(super::fold)
                .unwrap_or_default(),
            alias,
        ),
        TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } if array_exprs.len() == 1 => ("unnest".to_owned(), alias),
        _ => return,
    };
    if !ONE_COLUMN_SOURCES.contains(&function.as_str()) {
        return;
    }
    match alias {
        Some(alias) if alias.columns.is_empty() => {
            alias.columns = vec![TableAliasColumnDef {
                name: alias.name.clone(),
                data_type: None,
            }]
        }
        Some(_) => {}
        None => {
            *alias = Some(TableAlias {
                explicit: true,
                name: Ident::new(&function),
                columns: vec![TableAliasColumnDef::from_name(&function)],
                at: None,
            })
        }
    }
}

/// `FROM f(args) AS s`, with `f` a function DataFusion has no table source for: PostgreSQL
/// makes one row of its result (one row per element for a set-returning function), in a
/// column named by the alias's column list, else by the alias, else by the function. Here it
/// becomes the derived table `(SELECT f(args) AS column) AS s`, which the select-list rules
/// spread when `f` returns a set.
fn call_as_derived_table(relation: &mut TableFactor) {
    let (name, args, alias, ordinality) = match relation {
        TableFactor::Table {
            name,
            args: Some(args),
            alias,
            with_ordinality,
            ..
        } => (name, args.args.as_slice(), alias, *with_ordinality),
        // `LATERAL f(args)`: every call in FROM may read the items before it.
        TableFactor::Function {
            name,
            args,
            alias,
            with_ordinality,
            ..
        } => (name, args.as_slice(), alias, *with_ordinality),
        TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality,
            ..
        } if array_exprs.len() == 1 && (*with_ordinality || reads_columns(&array_exprs[0])) => {
            let Some((column, ordinality)) = output_columns(alias, "unnest", *with_ordinality)
            else {
                return;
            };
            let array = &array_exprs[0];
            let mut sql = format!("SELECT unnest({array}) AS {column}");
            if let Some(ordinality) = ordinality {
                sql.push_str(&format!(
                    ", generate_series(1, cardinality({array})) AS {ordinality}"
                ));
            }
            let name = alias
                .as_ref()
                .map_or_else(|| Ident::new("unnest"), |a| a.name.clone());
            if let Some(derived) = derived_table(&sql, name) {
                *relation = derived;
            }
            return;
        }
        _ => return,
    };
    let Some(function) = name.0.last().and_then(|p| p.as_ident()).map(super::fold) else {
        return;
    };
    // DataFusion's own table functions take constant arguments and no ordinality; one reading
    // the items before it, or numbering its rows, is spread in a derived table like any other.
    if TABLE_FUNCTIONS.contains(&function.as_str())
        && !ordinality
        && !args.iter().any(reads_columns)
    {
        return;
    }
    if let Some(records) = super::json_records::as_derived_table(&function, args, alias) {
        *relation = records;
        return;
    }
    if let Some(each) = super::json_each::as_derived_table(&function, args, alias, ordinality) {
        *relation = each;
        return;
    }
    let Some((column, ordinality)) = output_columns(alias, &function, ordinality) else {
        return;
    };
    let arguments: Vec<String> = args.iter().map(ToString::to_string).collect();
    let call = format!("{name}({})", arguments.join(", "));
    // `pg_show_all_settings()` is the function behind the `pg_settings` view: read the view.
    let mut sql = if function == "pg_show_all_settings" && args.is_empty() {
        "SELECT * FROM pg_catalog.pg_settings".to_owned()
    } else {
        format!("SELECT {call} AS {column}")
    };
    // Row numbers beside the rows: a set-returning call has as many as its array has
    // elements, a scalar one has one row.
    if let Some(ordinality) = ordinality {
        let numbers = if ARRAY_BACKED.contains(&function.as_str()) {
            format!("generate_series(1, cardinality({call}))")
        } else {
            "1".to_owned()
        };
        sql.push_str(&format!(", {numbers} AS {ordinality}"));
    }
    let name = alias
        .as_ref()
        .map_or_else(|| Ident::new(&function), |a| a.name.clone());
    if let Some(derived) = derived_table(&sql, name) {
        *relation = derived;
    }
}

/// The column a one-column function in FROM names, and with ORDINALITY the column of row
/// numbers: from the alias's column list, else the alias, else the function; `ordinality`
/// unless the list names it. `None` when the list has more names than columns.
fn output_columns(
    alias: &Option<TableAlias>,
    function: &str,
    ordinality: bool,
) -> Option<(Ident, Option<Ident>)> {
    let default_ordinality = || ordinality.then(|| Ident::new("ordinality"));
    Some(match alias {
        Some(alias) if alias.columns.is_empty() => (alias.name.clone(), default_ordinality()),
        Some(alias) if alias.columns.len() == 1 => {
            (alias.columns[0].name.clone(), default_ordinality())
        }
        Some(alias) if alias.columns.len() == 2 && ordinality => (
            alias.columns[0].name.clone(),
            Some(alias.columns[1].name.clone()),
        ),
        Some(_) => return None,
        None => (Ident::new(function), default_ordinality()),
    })
}

/// `(sql) AS name`.
pub(super) fn derived_table(sql: &str, name: Ident) -> Option<TableFactor> {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let subquery = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_query())
        .ok()?;
    Some(TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(TableAlias {
            explicit: true,
            name,
            columns: Vec::new(),
            at: None,
        }),
        sample: None,
    })
}

/// Whether `node` names a column anywhere.
fn reads_columns<V: ast::Visit>(node: &V) -> bool {
    ast::visit_expressions(node, |expr| match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}
