//! Array functions that count in `integer`, as PostgreSQL's do. DataFusion's `array_length`,
//! `cardinality`, `array_ndims`, `array_position` and `array_positions` answer in unsigned
//! 64-bit integers, which no PostgreSQL type matches: `COALESCE(array_length(a, 1), 0)` became
//! numeric and `generate_series(1, array_length(a, 1))` found no signature. Each is registered
//! again under its own name, computing what DataFusion's computes and answering in int4.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

const COUNTING_FUNCTIONS: [&str; 5] = [
    "array_length",
    "cardinality",
    "array_ndims",
    "array_position",
    "array_positions",
];

pub fn register(ctx: &SessionContext) {
    for name in COUNTING_FUNCTIONS {
        if let Some(inner) = ctx.state().scalar_functions().get(name).cloned() {
            ctx.register_udf(ScalarUDF::new_from_impl(Int4Counts { inner }));
        }
    }
}

/// `unsigned` as PostgreSQL counts: int4, or an array of int4.
fn as_int4(unsigned: &DataType) -> DataType {
    match unsigned {
        DataType::UInt64 | DataType::UInt32 => DataType::Int32,
        DataType::List(item) => DataType::List(Arc::new(
            item.as_ref()
                .clone()
                .with_data_type(as_int4(item.data_type())),
        )),
        other => other.clone(),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Int4Counts {
    inner: Arc<ScalarUDF>,
}

impl ScalarUDFImpl for Int4Counts {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(as_int4(&self.inner.return_type(arg_types)?))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = self.inner.return_field_from_args(args)?;
        let counted = as_int4(field.data_type());
        Ok(Arc::new(field.as_ref().clone().with_data_type(counted)))
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let no_constants = vec![None; args.arg_fields.len()];
        let unsigned = self.inner.return_field_from_args(ReturnFieldArgs {
            arg_fields: &args.arg_fields,
            scalar_arguments: &no_constants,
        })?;
        let wanted = args.return_field.data_type().clone();
        args.return_field = unsigned;
        self.inner.invoke_with_args(args)?.cast_to(&wanted, None)
    }
}
