//! `kalamdb_lateral_key(x)`: `x` itself, as a computed column. The SQL layer carries a lateral
//! call's arguments through it (see `sql::lateral_calls`): a computed column has no uniqueness
//! for DataFusion to carry across the call's unnest, which made it plan the join as a semi
//! join and drop the call's repeated rows.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

pub fn function() -> ScalarUDF {
    ScalarUDF::new_from_impl(LateralKey {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct LateralKey {
    signature: Signature,
}

impl ScalarUDFImpl for LateralKey {
    fn name(&self) -> &str {
        crate::sql::LATERAL_CARRY_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    /// The argument's field, metadata included (a `jsonb` stays `jsonb`).
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(args.arg_fields[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}
