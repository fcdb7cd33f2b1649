//! A quoted literal beside a number in arithmetic takes the number's type, as PostgreSQL types
//! an `unknown` operand after the other one (`f1 ^ '2.0'`, `n / '3'`, `x % '2'`). DataFusion
//! reads the literal as text and finds no operator for a number and text. Likewise a quoted
//! literal compared with an `int2vector` or `oidvector` column (`proargtypes = '25 25'`) is
//! read as that vector: numbers separated by spaces.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::sql::sqlparser::ast::BinaryOperator;

/// The planner; it runs before the others, which then see typed operands.
pub fn operator() -> Arc<dyn ExprPlanner> {
    Arc::new(UnknownOperands)
}

#[derive(Debug)]
struct UnknownOperands;

impl ExprPlanner for UnknownOperands {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        match vector_operand(&expr, schema)? {
            Some((Side::Left, left)) => {
                return Ok(PlannerResult::Original(RawBinaryExpr { left, ..expr }));
            }
            Some((Side::Right, right)) => {
                return Ok(PlannerResult::Original(RawBinaryExpr { right, ..expr }));
            }
            None => {}
        }
        if !matches!(
            expr.op,
            BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide
                | BinaryOperator::Modulo
                | BinaryOperator::PGExp
        ) {
            return Ok(PlannerResult::Original(expr));
        }
        let typed = |literal: &Expr, other: &Expr| -> Result<Option<Expr>> {
            let Some(text) = quoted_literal(literal) else {
                return Ok(None);
            };
            let Ok(other_type) = other.get_type(schema) else {
                return Ok(None);
            };
            let target = match other_type {
                DataType::Decimal128(..) | DataType::Decimal256(..) => numeric_type_of(text),
                // An integer literal is planned as a bigint and typed `integer` later when
                // it fits (`integer_literals`); the quoted one takes that type now.
                DataType::Int64 if is_int4_literal(other) => DataType::Int32,
                t if t.is_numeric() => t,
                _ => return Ok(None),
            };
            Ok(Some(literal.clone().cast_to(&target, schema)?))
        };
        if let Some(left) = typed(&expr.left, &expr.right)? {
            return Ok(PlannerResult::Original(RawBinaryExpr { left, ..expr }));
        }
        if let Some(right) = typed(&expr.right, &expr.left)? {
            return Ok(PlannerResult::Original(RawBinaryExpr { right, ..expr }));
        }
        Ok(PlannerResult::Original(expr))
    }
}

enum Side {
    Left,
    Right,
}

/// `vector = '1 2'`: the literal operand, read as the vector's list of numbers; `None` when
/// the operation is no such comparison, and 22P02 for text that holds no such numbers.
fn vector_operand(expr: &RawBinaryExpr, schema: &DFSchema) -> Result<Option<(Side, Expr)>> {
    if !super::params::is_comparison(&expr.op) {
        return Ok(None);
    }
    let as_vector = |literal: &Expr, vector: &Expr| -> Result<Option<Expr>> {
        let Some(text) = quoted_literal(literal) else {
            return Ok(None);
        };
        let Ok((_, field)) = vector.to_field(schema) else {
            return Ok(None);
        };
        let tag = field.metadata().get(crate::model::types::PG_TYPE_METADATA);
        let (Some(tag), DataType::List(item)) = (tag, field.data_type()) else {
            return Ok(None);
        };
        if tag != "oidvector" && tag != "int2vector" {
            return Ok(None);
        }
        let numbers = text
            .split_whitespace()
            .map(|n| {
                ScalarValue::try_from_string(n.to_owned(), item.data_type()).map_err(|_| {
                    datafusion::error::DataFusionError::External(Box::new(
                        super::ExecError::InvalidText(format!(
                            "invalid input syntax for type {tag}: \"{text}\""
                        )),
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Expr::Literal(
            ScalarValue::List(ScalarValue::new_list_nullable(&numbers, item.data_type())),
            None,
        )))
    };
    if let Some(left) = as_vector(&expr.left, &expr.right)? {
        return Ok(Some((Side::Left, left)));
    }
    Ok(as_vector(&expr.right, &expr.left)?.map(|right| (Side::Right, right)))
}

fn is_int4_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Literal(ScalarValue::Int64(Some(v)), _) if i32::try_from(*v).is_ok())
}

fn quoted_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(text)), _) => Some(text),
        _ => None,
    }
}

/// `numeric` holding the literal's digits: its scale is the digits written after the point.
fn numeric_type_of(text: &str) -> DataType {
    let mantissa = text.trim().split(['e', 'E']).next().unwrap_or_default();
    let scale = mantissa
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len())
        .min(usize::from(
            datafusion::arrow::datatypes::DECIMAL128_MAX_SCALE.unsigned_abs(),
        ));
    DataType::Decimal128(
        datafusion::arrow::datatypes::DECIMAL128_MAX_PRECISION,
        scale as i8,
    )
}
