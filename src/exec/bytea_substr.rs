//! `substr`/`substring` of `bytea` as PostgreSQL has them (`substring(b FROM 2 FOR 3)`): the
//! bytes from a 1-based start, a start before the first byte counting toward the length, and
//! a negative length refused (22011). Text keeps DataFusion's function, which this one wraps.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::types::{
    NativeType, logical_binary, logical_int32, logical_int64, logical_string,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, TypeSignatureClass, Volatility,
};
use datafusion::scalar::ScalarValue;

use super::ExecError;

#[derive(Debug, PartialEq, Eq, Hash)]
struct Substr {
    signature: Signature,
    text: Arc<ScalarUDF>,
    aliases: Vec<String>,
}

/// The planner of `SUBSTRING(x FROM a FOR b)` and `substr(x, a, b)`, which DataFusion plans
/// with its own text-only function rather than the one registered under the name.
pub fn planner() -> Arc<dyn ExprPlanner> {
    Arc::new(SubstringPlanner(Arc::new(substr())))
}

#[derive(Debug)]
struct SubstringPlanner(Arc<ScalarUDF>);

impl ExprPlanner for SubstringPlanner {
    fn plan_substring(&self, args: Vec<Expr>) -> Result<PlannerResult<Vec<Expr>>> {
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.0.clone(), args),
        )))
    }
}

/// `substr` for text and `bytea`, registered in place of DataFusion's.
pub fn substr() -> ScalarUDF {
    let int64 = Coercion::new_implicit(
        TypeSignatureClass::Native(logical_int64()),
        vec![TypeSignatureClass::Native(logical_int32())],
        NativeType::Int64,
    );
    let mut variants = Vec::new();
    // Text first: an untyped parameter (`substr($1, 2)`) is text, as in PostgreSQL.
    for first in [logical_string(), logical_binary()] {
        let first = Coercion::new_exact(TypeSignatureClass::Native(first));
        variants.push(TypeSignature::Coercible(vec![first.clone(), int64.clone()]));
        variants.push(TypeSignature::Coercible(vec![
            first,
            int64.clone(),
            int64.clone(),
        ]));
    }
    ScalarUDF::new_from_impl(Substr {
        signature: Signature::one_of(variants, Volatility::Immutable),
        text: datafusion::functions::unicode::substr(),
        aliases: vec!["substring".to_owned()],
    })
}

impl ScalarUDFImpl for Substr {
    fn name(&self) -> &str {
        "substr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let negative_length = match args.args.get(2) {
            Some(ColumnarValue::Scalar(ScalarValue::Int64(Some(length)))) => *length < 0,
            Some(ColumnarValue::Array(lengths)) => lengths
                .as_primitive::<Int64Type>()
                .iter()
                .any(|l| l.is_some_and(|l| l < 0)),
            _ => false,
        };
        if negative_length {
            return Err(negative_length_error());
        }
        if !matches!(args.args[0].data_type(), DataType::Binary) {
            return self.text.invoke_with_args(args);
        }
        super::functions::per_call(&args.args, bytes_between)
    }
}

fn negative_length_error() -> DataFusionError {
    DataFusionError::External(Box::new(ExecError::SubstringError(
        "negative substring length not allowed".into(),
    )))
}

fn bytes_between(args: &[ArrayRef]) -> Result<ArrayRef> {
    let bytes = args[0].as_binary::<i32>();
    let starts = args[1].as_primitive::<Int64Type>();
    let lengths = args.get(2).map(|l| l.as_primitive::<Int64Type>());
    let mut out = BinaryBuilder::with_capacity(bytes.len(), 0);
    for row in 0..bytes.len() {
        let length = match lengths {
            Some(lengths) if lengths.is_null(row) => None,
            Some(lengths) => Some(Some(lengths.value(row))),
            None => Some(None),
        };
        let (Some(length), false, false) = (length, bytes.is_null(row), starts.is_null(row)) else {
            out.append_null();
            continue;
        };
        let value = bytes.value(row);
        let start = starts.value(row);
        let end = match length {
            Some(length) if length < 0 => return Err(negative_length_error()),
            Some(length) => start.saturating_add(length),
            None => i64::MAX,
        };
        let clamp = |position: i64| (position.max(1) - 1).min(value.len() as i64) as usize;
        let (from, to) = (clamp(start), clamp(end));
        out.append_value(&value[from..to.max(from)]);
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BinaryArray, Int64Array};

    fn cut(start: i64, length: Option<i64>) -> Result<Vec<u8>> {
        let mut args: Vec<ArrayRef> = vec![
            Arc::new(BinaryArray::from(vec![&b"1234567890"[..]])),
            Arc::new(Int64Array::from(vec![start])),
        ];
        if let Some(length) = length {
            args.push(Arc::new(Int64Array::from(vec![length])));
        }
        let out = bytes_between(&args)?;
        Ok(out.as_binary::<i32>().value(0).to_vec())
    }

    #[test]
    fn bytes_are_cut_from_a_one_based_start() {
        assert_eq!(cut(3, None).unwrap(), b"34567890");
        assert_eq!(cut(4, Some(3)).unwrap(), b"456");
        assert_eq!(cut(-10, Some(2_147_483_646)).unwrap(), b"1234567890");
        assert_eq!(cut(0, Some(2)).unwrap(), b"1");
        assert_eq!(cut(20, Some(2)).unwrap(), b"");
        assert!(cut(1, Some(-1)).is_err());
    }
}
