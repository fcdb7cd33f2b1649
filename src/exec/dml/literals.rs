//! `INSERT ... VALUES` made only of constants, the form drivers and ORMs send most: its rows are
//! built as Arrow arrays directly, with the types DataFusion would give the same literals, so
//! that the rest of the insert path treats them exactly as planned rows.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::sql::sqlparser::ast::{self, Expr, SetExpr};

/// A constant in VALUES, typed as DataFusion types a SQL literal.
enum Literal {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

fn literal_of(expr: &Expr) -> Option<Literal> {
    match expr {
        Expr::Value(v) => match &v.value {
            ast::Value::Null => Some(Literal::Null),
            ast::Value::Boolean(b) => Some(Literal::Bool(*b)),
            ast::Value::SingleQuotedString(s) => Some(Literal::Text(s.clone())),
            ast::Value::Number(n, _) => number(n, false),
            _ => None,
        },
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => number(n, true),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn number(text: &str, negative: bool) -> Option<Literal> {
    let sign = if negative { "-" } else { "" };
    let signed = format!("{sign}{text}");
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Out of i64 range DataFusion types it differently: leave it to the general path.
        signed.parse().ok().map(Literal::Int)
    } else {
        signed.parse().ok().map(Literal::Float)
    }
}

/// The rows of `INSERT ... VALUES` when every value (and every default filled in) is a plain
/// literal: built directly instead of planning a SELECT, with the types DataFusion would give
/// the same literals, so `conform` treats them identically. `None` means "plan it".
pub(super) fn literal_values(
    source: &ast::Query,
    targets: &[usize],
    defaults: &[Option<Expr>],
    column_count: usize,
) -> Option<RecordBatch> {
    let SetExpr::Values(values) = source.body.as_ref() else {
        return None;
    };
    if source.with.is_some()
        || source.order_by.is_some()
        || source.limit_clause.is_some()
        || source.fetch.is_some()
    {
        return None;
    }
    let null = Expr::value(ast::Value::Null);
    let mut fields = Vec::with_capacity(column_count);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(column_count);
    for (column, default) in defaults.iter().enumerate().take(column_count) {
        let position = targets.iter().position(|&t| t == column);
        let literals: Vec<Literal> = values
            .rows
            .iter()
            .map(|row| {
                let expr = match position {
                    Some(p) => &row[p],
                    None => default.as_ref().unwrap_or(&null),
                };
                literal_of(expr)
            })
            .collect::<Option<_>>()?;
        let array: ArrayRef = if literals.iter().all(|l| matches!(l, Literal::Null)) {
            Arc::new(datafusion::arrow::array::NullArray::new(literals.len()))
        } else if literals
            .iter()
            .all(|l| matches!(l, Literal::Null | Literal::Int(_)))
        {
            Arc::new(datafusion::arrow::array::Int64Array::from_iter(
                literals.iter().map(|l| match l {
                    Literal::Int(i) => Some(*i),
                    _ => None,
                }),
            ))
        } else if literals
            .iter()
            .all(|l| matches!(l, Literal::Null | Literal::Int(_) | Literal::Float(_)))
        {
            Arc::new(datafusion::arrow::array::Float64Array::from_iter(
                literals.iter().map(|l| match l {
                    Literal::Int(i) => Some(*i as f64),
                    Literal::Float(f) => Some(*f),
                    _ => None,
                }),
            ))
        } else if literals
            .iter()
            .all(|l| matches!(l, Literal::Null | Literal::Text(_)))
        {
            Arc::new(StringArray::from_iter(literals.iter().map(|l| match l {
                Literal::Text(s) => Some(s.as_str()),
                _ => None,
            })))
        } else if literals
            .iter()
            .all(|l| matches!(l, Literal::Null | Literal::Bool(_)))
        {
            Arc::new(datafusion::arrow::array::BooleanArray::from_iter(
                literals.iter().map(|l| match l {
                    Literal::Bool(b) => Some(*b),
                    _ => None,
                }),
            ))
        } else {
            return None;
        };
        fields.push(Field::new(
            format!("c{column}"),
            array.data_type().clone(),
            true,
        ));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).ok()
}
