//! `pg_sleep(seconds)`: waits as an async function, so a sleeping statement holds no worker
//! thread, and ends early when the statement is cancelled or passes `statement_timeout` (the
//! result stream that awaits it is dropped). Like PostgreSQL's, it sleeps once per row and
//! returns `void`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::error::Result;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use crate::model::types::{PG_TYPE_METADATA, VOID_TAG};

pub fn register(ctx: &SessionContext) {
    ctx.register_udf(pg_sleep());
}

fn pg_sleep() -> ScalarUDF {
    AsyncScalarUDF::new(Arc::new(PgSleep {
        signature: Signature::exact(vec![DataType::Float64], Volatility::Volatile),
    }))
    .into_scalar_udf()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgSleep {
    signature: Signature,
}

impl ScalarUDFImpl for PgSleep {
    fn name(&self) -> &str {
        "pg_sleep"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(
            Field::new(self.name(), DataType::Utf8, true).with_metadata(
                [(PG_TYPE_METADATA.to_owned(), VOID_TAG.to_owned())]
                    .into_iter()
                    .collect(),
            ),
        ))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        datafusion::common::internal_err!("pg_sleep runs only as an async function")
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for PgSleep {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let seconds = cast(&args.args[0].to_array(rows)?, &DataType::Float64)?;
        for seconds in seconds.as_primitive::<Float64Type>().iter() {
            sleep(seconds.unwrap_or(0.0)).await;
        }
        // `void` prints as an empty string; a NULL argument gives NULL (the function is
        // strict).
        let nulls = seconds.logical_nulls();
        let out: StringArray = (0..rows)
            .map(|row| match &nulls {
                Some(nulls) if nulls.is_null(row) => None,
                _ => Some(""),
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Sleeps `seconds` (nothing for zero, negative or NaN; until cancelled for a time too long
/// to represent, as PostgreSQL's loop would).
async fn sleep(seconds: f64) {
    if seconds.is_nan() || seconds <= 0.0 {
        return;
    }
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) => tokio::time::sleep(duration).await,
        Err(_) => std::future::pending().await,
    }
}
