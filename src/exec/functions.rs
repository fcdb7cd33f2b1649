//! SQL functions whose answers depend on the server or the session (version(), current_user).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::{DATABASE_NAME, PG_SERVER_VERSION};

/// The string `version()` returns. Drivers (SQLAlchemy, JDBC) parse the leading
/// `PostgreSQL <major>.<minor>`, so it comes first.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {PG_SERVER_VERSION} (KalamDB {}) on {}-{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

fn constant_text(name: &str, value: String) -> ScalarUDF {
    let value = ScalarValue::Utf8(Some(value));
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args| Ok(ColumnarValue::Scalar(value.clone()))),
    )
}

/// Registers the functions that identify the server and the session's user.
pub fn register(ctx: &SessionContext, user: &str) {
    ctx.register_udf(constant_text("version", version_string()));
    ctx.register_udf(constant_text("current_database", DATABASE_NAME.into()));
    ctx.register_udf(constant_text("current_catalog", DATABASE_NAME.into()));
    ctx.register_udf(constant_text("current_schema", "public".into()));
    for name in ["current_user", "session_user", "user", "current_role"] {
        ctx.register_udf(constant_text(name, user.into()));
    }
    // KalamDB objects have no per-user owners; they belong to the bootstrap user.
    ctx.register_udf(create_udf(
        "pg_get_userbyid",
        vec![DataType::Int32],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args| {
            Ok(match &args[0] {
                ColumnarValue::Scalar(_) => {
                    ColumnarValue::Scalar(ScalarValue::Utf8(Some("root".into())))
                }
                ColumnarValue::Array(a) => ColumnarValue::Array(Arc::new(
                    datafusion::arrow::array::StringArray::from(vec!["root"; a.len()]),
                )),
            })
        }),
    ));
}
