//! PostgreSQL functions and operators that DataFusion has under another spelling, rewritten
//! to it before anything else reads the statement: `mod(a, b)` is `a % b`, the aggregate
//! `every` is `bool_and`, `array_remove` removes every equal element (DataFusion's removes the
//! first), the prefix operators `|/`, `||/` and `@` are `sqrt`, `cbrt` and `abs`,
//! `num_nulls`/`num_nonnulls` count their NULL and non-NULL arguments, and `make_interval`'s
//! arguments, positional or named (`make_interval(days => 3)`), are spelled out with their
//! defaults of zero (DataFusion has no parameter defaults).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName,
    UnaryOperator, VisitMut,
};

use super::subqueries::function_name;

/// Rewrites every such call and operator of the statement.
pub fn as_datafusion_spells_them(statement: &mut ast::Statement) {
    let _ = VisitMut::visit(statement, &mut Spellings);
}

struct Spellings;

impl ast::VisitorMut for Spellings {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(rewritten) = respelled(expr) {
            *expr = rewritten;
        }
        ControlFlow::Continue(())
    }
}

fn respelled(expr: &mut Expr) -> Option<Expr> {
    match expr {
        Expr::UnaryOp { op, expr: operand } => {
            let function = match op {
                UnaryOperator::PGSquareRoot => "sqrt",
                UnaryOperator::PGCubeRoot => "cbrt",
                UnaryOperator::PGAbs => "abs",
                _ => return None,
            };
            super::parse_expr(&format!("{function}({operand})")).ok()
        }
        Expr::Function(function) => {
            let name = builtin_name(function)?;
            if let Some(renamed) = match name.as_str() {
                "every" => Some("bool_and"),
                "array_remove" => Some("array_remove_all"),
                _ => None,
            } {
                function.name = ObjectName::from(vec![Ident::new(renamed)]);
                return None;
            }
            if function.over.is_some() || function.filter.is_some() {
                return None;
            }
            if name == "make_interval" {
                return make_interval_in_full(&function.args);
            }
            let args = plain_arguments(&function.args)?;
            match (name.as_str(), args.as_slice()) {
                ("mod", [dividend, divisor]) => Some(Expr::Nested(Box::new(Expr::BinaryOp {
                    left: Box::new(nested(dividend)),
                    op: BinaryOperator::Modulo,
                    right: Box::new(nested(divisor)),
                }))),
                ("array_fill", [value, dimensions]) => filled_array(value, dimensions),
                ("array_fill", [value, dimensions, Expr::Array(lower_bounds)])
                    if lower_bounds
                        .elem
                        .iter()
                        .all(|bound| bound.to_string() == "1") =>
                {
                    filled_array(value, dimensions)
                }
                ("num_nulls" | "num_nonnulls", [_, ..]) => {
                    let test = if name == "num_nulls" {
                        "IS NULL"
                    } else {
                        "IS NOT NULL"
                    };
                    let counts: Vec<String> = args
                        .iter()
                        .map(|a| format!("CASE WHEN ({a}) {test} THEN 1 ELSE 0 END"))
                        .collect();
                    super::parse_expr(&format!("({})", counts.join(" + "))).ok()
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// `array_fill(value, ARRAY[d1, d2, ...])`: `value` repeated `dn` times, that array repeated
/// `dn-1` times, and so on out to `d1`. PostgreSQL's lower bounds other than 1 have no
/// counterpart in KalamDB's arrays, so such a call is left to fail as an unknown function.
fn filled_array(value: &Expr, dimensions: &Expr) -> Option<Expr> {
    let Expr::Array(dimensions) = dimensions else {
        return None;
    };
    if dimensions.elem.is_empty() {
        return None;
    }
    let mut filled = value.to_string();
    for length in dimensions.elem.iter().rev() {
        filled = format!("array_repeat({filled}, greatest({length}, 0))");
    }
    super::parse_expr(&filled).ok()
}

/// `make_interval`'s parameters in order, each defaulting to zero.
const MAKE_INTERVAL_PARAMETERS: [&str; 7] =
    ["years", "months", "weeks", "days", "hours", "mins", "secs"];

/// The call `make_interval(...)` with all seven arguments, or `None` when an argument names
/// no parameter (or one twice), which the executor's function then refuses.
fn make_interval_in_full(args: &FunctionArguments) -> Option<Expr> {
    let FunctionArguments::List(list) = args else {
        return None;
    };
    let mut values: [Option<String>; 7] = Default::default();
    for (position, arg) in list.args.iter().enumerate() {
        let (slot, value) = match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(value)) => (position, value),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(value),
                ..
            }
            | FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                arg: FunctionArgExpr::Expr(value),
                ..
            } => (
                MAKE_INTERVAL_PARAMETERS
                    .iter()
                    .position(|p| name.value.eq_ignore_ascii_case(p))?,
                value,
            ),
            _ => return None,
        };
        if slot >= values.len() || values[slot].is_some() {
            return None;
        }
        values[slot] = Some(value.to_string());
    }
    let values: Vec<String> = values
        .into_iter()
        .enumerate()
        .map(|(slot, value)| value.unwrap_or_else(|| if slot == 6 { "0.0" } else { "0" }.into()))
        .collect();
    super::parse_expr(&format!("make_interval({})", values.join(", "))).ok()
}

/// The function's name when it is unqualified or qualified by `pg_catalog`.
pub(super) fn builtin_name(function: &ast::Function) -> Option<String> {
    let qualified_by_catalog = match function.name.0.as_slice() {
        [_] => true,
        [schema, _] => schema
            .as_ident()
            .is_some_and(|s| s.value.eq_ignore_ascii_case("pg_catalog")),
        _ => false,
    };
    qualified_by_catalog
        .then(|| function_name(function))
        .flatten()
}

/// The arguments of a call that has only positional expressions (no `VARIADIC`, names,
/// `ORDER BY` or `DISTINCT`).
fn plain_arguments(args: &FunctionArguments) -> Option<Vec<&Expr>> {
    let FunctionArguments::List(list) = args else {
        return None;
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr),
            _ => None,
        })
        .collect()
}

fn nested(expr: &Expr) -> Expr {
    Expr::Nested(Box::new(expr.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        crate::sql::rewritten_by(sql, as_datafusion_spells_them)
    }

    #[test]
    fn postgres_spellings_become_datafusion_ones() {
        assert_eq!(
            rewritten("SELECT mod(a + 1, 3), |/ 16, ||/ 27, @ -5 FROM t"),
            "SELECT ((a + 1) % (3)), sqrt(16), cbrt(27), abs(-5) FROM t"
        );
        assert_eq!(
            rewritten("SELECT every(x > 0), array_remove(a, 1) FROM t GROUP BY a"),
            "SELECT bool_and(x > 0), array_remove_all(a, 1) FROM t GROUP BY a"
        );
        assert_eq!(
            rewritten("SELECT num_nulls(a, NULL), num_nonnulls(a)"),
            "SELECT (CASE WHEN (a) IS NULL THEN 1 ELSE 0 END + CASE WHEN (NULL) IS NULL THEN 1 ELSE 0 END), \
             (CASE WHEN (a) IS NOT NULL THEN 1 ELSE 0 END)"
        );
    }

    #[test]
    fn make_interval_is_called_with_every_argument() {
        assert_eq!(
            rewritten(
                "SELECT make_interval(days => 3), make_interval(1, 2), make_interval(secs => 1.5, years => $1)"
            ),
            "SELECT make_interval(0, 0, 0, 3, 0, 0, 0.0), make_interval(1, 2, 0, 0, 0, 0, 0.0), \
             make_interval($1, 0, 0, 0, 0, 0, 1.5)"
        );
        assert_eq!(
            rewritten("SELECT make_interval(fortnights => 1)"),
            "SELECT make_interval(fortnights => 1)"
        );
    }

    #[test]
    fn calls_these_rewrites_cannot_express_stay() {
        for sql in [
            "SELECT mod(a) FROM t",
            "SELECT num_nulls()",
            "SELECT mod(DISTINCT a, 2) FROM t",
            "SELECT t.mod(1, 2)",
        ] {
            let kept = rewritten(sql);
            assert!(!kept.contains('%') && !kept.contains("CASE"), "{kept}");
        }
    }
}
