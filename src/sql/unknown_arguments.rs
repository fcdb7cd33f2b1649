//! Quoted literals as function arguments, typed as PostgreSQL types them. A literal such as
//! `'2'` has type `unknown` there and takes the type of the parameter it is passed to
//! (`left('hello', '2')`, `round(x, '2')`, `substr(s, '2')`); DataFusion reads it as text and
//! refuses the call or, for `substr`, answers wrongly. Each literal passed where the
//! PostgreSQL function of that name and arity has one parameter type is cast to that type,
//! and where PostgreSQL chooses among numeric overloads, to the type it chooses: the kind of
//! a number literal beside it, else its preferred `double precision`. A call spelled as a
//! type name (`int4('5')`, `float8(x)`) is PostgreSQL's function-style cast.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
    VisitMut, VisitorMut,
};

/// What an unknown literal at a position becomes.
#[derive(Clone, Copy)]
enum Param {
    /// Left as it is: text, or a position PostgreSQL resolves by other means.
    Keep,
    /// This type, whatever the other arguments.
    Of(&'static str),
    /// `numeric` beside a decimal literal (PostgreSQL's overload of that type matches it
    /// exactly), else this type: the overload it prefers for integers and unknowns.
    Numeric(&'static str),
}

use Param::{Keep, Numeric, Of};

/// `power`'s literals: `numeric` beside a decimal, else `double precision`.
const POWER: Param = Numeric("DOUBLE PRECISION");
/// `gcd`'s and `lcm`'s: `numeric` beside a decimal, else `integer`.
const WHOLE: Param = Numeric("INT");

const INT: Param = Of("INT");
const FLOAT: Param = Of("DOUBLE PRECISION");
const DECIMAL: Param = Of("NUMERIC");

/// PostgreSQL functions by name and arity, with the type each position gives a literal.
const FUNCTIONS: &[(&str, &[Param])] = &[
    ("left", &[Keep, INT]),
    ("right", &[Keep, INT]),
    ("repeat", &[Keep, INT]),
    ("lpad", &[Keep, INT]),
    ("lpad", &[Keep, INT, Keep]),
    ("rpad", &[Keep, INT]),
    ("rpad", &[Keep, INT, Keep]),
    ("split_part", &[Keep, Keep, INT]),
    ("chr", &[INT]),
    ("round", &[FLOAT]),
    ("round", &[DECIMAL, INT]),
    ("trunc", &[FLOAT]),
    ("trunc", &[DECIMAL, INT]),
    ("power", &[POWER, POWER]),
    ("pow", &[POWER, POWER]),
    ("log", &[FLOAT]),
    ("log", &[DECIMAL, DECIMAL]),
    ("div", &[DECIMAL, DECIMAL]),
    ("gcd", &[WHOLE, WHOLE]),
    ("lcm", &[WHOLE, WHOLE]),
    ("abs", &[FLOAT]),
    ("sqrt", &[FLOAT]),
    ("cbrt", &[FLOAT]),
    ("exp", &[FLOAT]),
    ("ln", &[FLOAT]),
    ("log10", &[FLOAT]),
    ("ceil", &[FLOAT]),
    ("ceiling", &[FLOAT]),
    ("floor", &[FLOAT]),
    ("sign", &[FLOAT]),
    ("degrees", &[FLOAT]),
    ("radians", &[FLOAT]),
    ("sin", &[FLOAT]),
    ("cos", &[FLOAT]),
    ("tan", &[FLOAT]),
    ("asin", &[FLOAT]),
    ("acos", &[FLOAT]),
    ("atan", &[FLOAT]),
    ("atan2", &[FLOAT, FLOAT]),
    ("factorial", &[Of("BIGINT")]),
    ("setseed", &[FLOAT]),
    ("pg_sleep", &[FLOAT]),
    ("to_timestamp", &[FLOAT]),
    ("make_date", &[INT, INT, INT]),
    ("array_fill", &[Keep, Of("INT[]")]),
];

/// Type names PostgreSQL also has as one-argument functions that convert to the type.
const CAST_FUNCTIONS: [&str; 9] = [
    "int2", "int4", "int8", "float4", "float8", "numeric", "text", "bool", "varchar",
];

/// Types the quoted literals among the arguments of every such call of the statement.
pub fn type_literal_arguments(statement: &mut ast::Statement) {
    let _ = VisitMut::visit(statement, &mut Arguments);
}

struct Arguments;

impl VisitorMut for Arguments {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(function) => {
                if let Some(cast) = function_style_cast(function) {
                    *expr = cast;
                } else {
                    type_arguments(function);
                }
            }
            // `substr(s, '2')` has integer positions; `substring(s FROM '2')` and
            // `substring(s, '2')` stay text, as PostgreSQL reads them as patterns.
            Expr::Substring {
                substring_from,
                substring_for,
                shorthand: true,
                ..
            } => {
                for position in [substring_from, substring_for].into_iter().flatten() {
                    cast_unknown(position, "INT");
                }
            }
            Expr::Overlay {
                overlay_from,
                overlay_for,
                ..
            } => {
                cast_unknown(overlay_from, "INT");
                if let Some(length) = overlay_for {
                    cast_unknown(length, "INT");
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The positional argument expressions of a plain call (no names, DISTINCT or ORDER BY).
fn positional(function: &mut ast::Function) -> Option<Vec<&mut Expr>> {
    let FunctionArguments::List(list) = &mut function.args else {
        return None;
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    list.args
        .iter_mut()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

fn type_arguments(function: &mut ast::Function) {
    if function.over.is_some() {
        return;
    }
    let Some(name) = super::postgres_spellings::builtin_name(function) else {
        return;
    };
    let Some(mut args) = positional(function) else {
        return;
    };
    let Some((_, params)) = FUNCTIONS
        .iter()
        .find(|(n, params)| *n == name && params.len() == args.len())
    else {
        return;
    };
    let beside_decimal = args.iter().any(|arg| is_decimal_literal(arg));
    for (arg, param) in args.iter_mut().zip(params.iter()) {
        match param {
            Keep => {}
            Of(type_name) => cast_unknown(arg, type_name),
            Numeric(_) if beside_decimal => cast_unknown(arg, "NUMERIC"),
            Numeric(otherwise) => cast_unknown(arg, otherwise),
        }
    }
}

/// `int4('5')` as `CAST('5' AS int4)`.
fn function_style_cast(function: &mut ast::Function) -> Option<Expr> {
    if function.over.is_some() || function.filter.is_some() {
        return None;
    }
    let name = super::postgres_spellings::builtin_name(function)?;
    if !CAST_FUNCTIONS.contains(&name.as_str()) {
        return None;
    }
    let mut args = positional(function)?;
    let [arg] = args.as_mut_slice() else {
        return None;
    };
    let data_type = parse_type(&name)?;
    Some(Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new((**arg).clone()),
        data_type,
        array: false,
        format: None,
    })
}

/// A number literal PostgreSQL reads as `numeric`: with a point or an exponent.
fn is_decimal_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if matches!(&v.value, Value::Number(text, _) if text.contains(['.', 'e', 'E'])))
}

/// Casts `expr` to `type_name` when it is a quoted literal, whose type PostgreSQL leaves
/// unknown until its use decides it.
fn cast_unknown(expr: &mut Expr, type_name: &str) {
    let Expr::Value(value) = expr else {
        return;
    };
    if !matches!(
        value.value,
        Value::SingleQuotedString(_) | Value::EscapedStringLiteral(_)
    ) {
        return;
    }
    let Some(data_type) = parse_type(type_name) else {
        return;
    };
    *expr = Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr.clone()),
        data_type,
        array: false,
        format: None,
    };
}

fn parse_type(name: &str) -> Option<DataType> {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(name)
        .and_then(|mut parser| parser.parse_data_type())
        .ok()
}

#[cfg(test)]
mod tests {
    fn rewritten(sql: &str) -> String {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let mut statement = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql)
            .unwrap()
            .remove(0);
        super::type_literal_arguments(&mut statement);
        statement.to_string()
    }

    #[test]
    fn quoted_literals_take_the_parameter_type_of_the_function() {
        assert_eq!(
            rewritten("SELECT left('hello', '2'), round(x, '1')"),
            "SELECT left('hello', CAST('2' AS INT)), round(x, CAST('1' AS INT))"
        );
        assert_eq!(
            rewritten("SELECT substr('hello', '2'), substring('hello', '2')"),
            "SELECT SUBSTR('hello', CAST('2' AS INT)), SUBSTRING('hello', '2')"
        );
        assert_eq!(
            rewritten("SELECT overlay('hello' PLACING 'X' FROM '2' FOR '3')"),
            "SELECT OVERLAY('hello' PLACING 'X' FROM CAST('2' AS INT) FOR CAST('3' AS INT))"
        );
    }

    #[test]
    fn numeric_overloads_follow_a_number_beside_else_double_precision() {
        assert_eq!(
            rewritten("SELECT power(2, '3'), power(2.5, '3'), power(x, '3')"),
            "SELECT power(2, CAST('3' AS DOUBLE PRECISION)), power(2.5, CAST('3' AS NUMERIC)), \
             power(x, CAST('3' AS DOUBLE PRECISION))"
        );
    }

    #[test]
    fn type_names_called_as_functions_are_casts() {
        assert_eq!(
            rewritten("SELECT int4('5'), float8(x), int4(1, 2)"),
            "SELECT CAST('5' AS INT4), CAST(x AS FLOAT8), int4(1, 2)"
        );
    }
}
