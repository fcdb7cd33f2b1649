//! `character(n)` where PostgreSQL ignores its trailing blanks. Values are stored padded to
//! the column's length and printed so; but a comparison (`c = 'a '` matches `'a   '`), a
//! string function or operator (`||`, `length`, `upper`) and a cast to text see the value
//! without them, while LIKE, `concat` and `octet_length` see the padding, as PostgreSQL's bpchar comparison and its cast to text do. A column selected,
//! grouped or sorted on its own keeps its padding: every value of a column has the same
//! length, so grouping and ordering the padded values agree with the unpadded ones.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, lit};

use crate::model::types::{BPCHAR_TAG, PG_TYPE_METADATA};

/// The rewrite; see the module documentation. Run by `plan_rewrite::PostgresExpressions`.
pub(super) fn strip_blanks_where_ignored(
    expr: Expr,
    schema: &DFSchema,
) -> Result<Transformed<Expr>> {
    expr.transform_up(|node| {
        let stripped = |e: Box<Expr>| -> Result<(Box<Expr>, bool)> {
            if is_bpchar(&e, schema) {
                Ok((Box::new(rtrim(*e)), true))
            } else {
                Ok((e, false))
            }
        };
        Ok(match node {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (left, l) = stripped(left)?;
                let (right, r) = stripped(right)?;
                // A literal compared with a `character(n)` is read as one: its trailing
                // blanks do not count either.
                let (left, right) = match (l, r) {
                    (true, false) => (left, Box::new(trimmed_literal(*right))),
                    (false, true) => (Box::new(trimmed_literal(*left)), right),
                    _ => (left, right),
                };
                let node = Expr::BinaryExpr(BinaryExpr { left, op, right });
                if l || r {
                    Transformed::yes(node)
                } else {
                    Transformed::no(node)
                }
            }
            // Functions of "any" type print the padded value (`concat`, `format`), and
            // `octet_length` counts the blanks; the string functions take it as text.
            Expr::ScalarFunction(ScalarFunction { func, args })
                if !KEEP_PADDING.contains(&func.name()) =>
            {
                let mut changed = false;
                let args = args
                    .into_iter()
                    .map(|arg| {
                        if is_bpchar(&arg, schema) {
                            changed = true;
                            rtrim(arg)
                        } else {
                            arg
                        }
                    })
                    .collect();
                let node = Expr::ScalarFunction(ScalarFunction { func, args });
                if changed {
                    Transformed::yes(node)
                } else {
                    Transformed::no(node)
                }
            }
            Expr::Cast(Cast { expr, field }) if is_bpchar(&expr, schema) => {
                Transformed::yes(Expr::Cast(Cast {
                    expr: Box::new(rtrim(*expr)),
                    field,
                }))
            }
            Expr::InList(mut list) if is_bpchar(&list.expr, schema) => {
                list.expr = Box::new(rtrim(*list.expr));
                list.list = list.list.into_iter().map(trimmed_literal).collect();
                Transformed::yes(Expr::InList(list))
            }
            other => Transformed::no(other),
        })
    })
}

fn is_bpchar(expr: &Expr, schema: &DFSchema) -> bool {
    matches!(expr, Expr::Column(_))
        && expr.to_field(schema).is_ok_and(|(_, field)| {
            field.metadata().get(PG_TYPE_METADATA).map(String::as_str) == Some(BPCHAR_TAG)
        })
}

fn rtrim(expr: Expr) -> Expr {
    datafusion::functions::string::expr_fn::rtrim(vec![expr, lit(" ")])
}

/// Functions that see a `character(n)` value with its padding, as PostgreSQL's do.
const KEEP_PADDING: &[&str] = &["concat", "concat_ws", "octet_length", "pg_typeof", "format"];

fn trimmed_literal(expr: Expr) -> Expr {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(text)), metadata) => Expr::Literal(
            ScalarValue::Utf8(Some(text.trim_end_matches(' ').to_owned())),
            metadata,
        ),
        Expr::Literal(ScalarValue::Utf8View(Some(text)), metadata) => Expr::Literal(
            ScalarValue::Utf8View(Some(text.trim_end_matches(' ').to_owned())),
            metadata,
        ),
        other => other,
    }
}
