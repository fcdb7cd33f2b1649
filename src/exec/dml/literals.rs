//! `INSERT ... VALUES` made only of constants, the form drivers and ORMs send most: its rows are
//! built as Arrow arrays directly, with the types DataFusion would give the same literals, so
//! that the rest of the insert path treats them exactly as planned rows.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Decimal128Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DECIMAL128_MAX_PRECISION, Field, Schema};
use datafusion::sql::sqlparser::ast::{self, Expr, SetExpr};

/// A constant in VALUES, typed as DataFusion types a SQL literal.
enum Literal {
    Null,
    Int(i64),
    /// A number with a point or an exponent: exact, as `numeric` is.
    Decimal {
        unscaled: i128,
        scale: i8,
    },
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

/// A constant as DataFusion types it: NULL, a bigint, text or a boolean. Numbers with a
/// point or an exponent answer `None`: their type depends on the expression around them.
pub(super) fn literal_scalar(expr: &Expr) -> Option<datafusion::common::ScalarValue> {
    use datafusion::common::ScalarValue;
    match literal_of(expr)? {
        Literal::Null => Some(ScalarValue::Null),
        Literal::Int(i) => Some(ScalarValue::Int64(Some(i))),
        Literal::Text(s) => Some(ScalarValue::Utf8(Some(s))),
        Literal::Bool(b) => Some(ScalarValue::Boolean(Some(b))),
        Literal::Decimal { .. } => None,
    }
}

fn number(text: &str, negative: bool) -> Option<Literal> {
    let sign = if negative { "-" } else { "" };
    let signed = format!("{sign}{text}");
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Out of i64 range DataFusion types it differently: leave it to the general path.
        return signed.parse().ok().map(Literal::Int);
    }
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{integer}{fraction}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = i32::try_from(fraction.len()).ok()?.checked_sub(exponent)?;
    // A negative scale is written out as zeros: numeric has none.
    let zeros = u32::try_from(scale.min(0).checked_neg()?).ok()?;
    let mut unscaled: i128 = digits.parse().ok()?;
    unscaled = unscaled.checked_mul(10i128.checked_pow(zeros)?)?;
    let scale = i8::try_from(scale.max(0)).ok()?;
    Some(Literal::Decimal {
        unscaled: if negative { -unscaled } else { unscaled },
        scale,
    })
}

/// Decimal literals and integers as one decimal column at the largest scale among them; None
/// when a value does not fit in 38 digits there.
fn decimal_array(literals: &[Literal]) -> Option<ArrayRef> {
    let scale = literals
        .iter()
        .filter_map(|l| match l {
            Literal::Decimal { scale, .. } => Some(*scale),
            _ => None,
        })
        .max()?;
    let values = literals
        .iter()
        .map(|l| {
            let (unscaled, own) = match l {
                Literal::Int(i) => (i128::from(*i), 0),
                Literal::Decimal { unscaled, scale } => (*unscaled, *scale),
                _ => return Some(None),
            };
            let factor = 10i128.checked_pow(u32::try_from(scale - own).ok()?)?;
            unscaled.checked_mul(factor).map(Some)
        })
        .collect::<Option<Vec<Option<i128>>>>()?;
    Decimal128Array::from(values)
        .with_precision_and_scale(DECIMAL128_MAX_PRECISION, scale)
        .ok()
        .map(|array| Arc::new(array) as ArrayRef)
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
            .all(|l| matches!(l, Literal::Null | Literal::Int(_) | Literal::Decimal { .. }))
        {
            decimal_array(&literals)?
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(text: &str, negative: bool) -> Option<(i128, i8)> {
        match number(text, negative)? {
            Literal::Decimal { unscaled, scale } => Some((unscaled, scale)),
            _ => None,
        }
    }

    #[test]
    fn decimal_literals_are_exact_with_their_written_scale() {
        assert_eq!(decimal("1.5", false), Some((15, 1)));
        assert_eq!(decimal("0.10", true), Some((-10, 2)));
        assert_eq!(decimal("1e5", false), Some((100000, 0)));
        assert_eq!(decimal("1.25E-1", false), Some((125, 3)));
        assert_eq!(decimal(".5", false), Some((5, 1)));
        assert_eq!(
            decimal("12345678901234567.123", false),
            Some((12345678901234567123, 3))
        );
        assert!(matches!(number("42", true), Some(Literal::Int(-42))));
        // Exponents past what a scale can hold are left to the general path, not overflowed.
        assert!(number("1e-2147483648", false).is_none());
        assert!(number("1e2147483647", false).is_none());
    }
}
