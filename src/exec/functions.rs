//! SQL functions whose answers depend on the server or the session (version(), current_user).

use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::settings::Settings;
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

/// `to_regtype('name')`: the OID of a type KalamDB knows by that name, or NULL (drivers probe
/// for optional types such as hstore this way).
fn to_regtype() -> ScalarUDF {
    fn oid(name: &str) -> Option<i32> {
        let name = name
            .trim()
            .trim_start_matches("pg_catalog.")
            .to_ascii_lowercase();
        Some(match name.as_str() {
            "bool" | "boolean" => 16,
            "bytea" => 17,
            "int8" | "bigint" => 20,
            "int2" | "smallint" => 21,
            "int4" | "integer" | "int" => 23,
            "text" => 25,
            "json" => 114,
            "float4" | "real" => 700,
            "float8" | "double precision" => 701,
            "varchar" | "character varying" => 1043,
            "date" => 1082,
            "timestamp" | "timestamp without time zone" => 1114,
            "timestamptz" | "timestamp with time zone" => 1184,
            "numeric" | "decimal" => 1700,
            "uuid" => 2950,
            "jsonb" => 3802,
            _ => return None,
        })
    }
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(|args| {
            let array = match &args[0] {
                ColumnarValue::Scalar(s) => s.to_array()?,
                ColumnarValue::Array(a) => a.clone(),
            };
            let names = datafusion::arrow::array::AsArray::as_string::<i32>(array.as_ref());
            let oids: datafusion::arrow::array::Int32Array =
                names.iter().map(|n| n.and_then(oid)).collect();
            Ok(match &args[0] {
                ColumnarValue::Scalar(_) => {
                    ColumnarValue::Scalar(ScalarValue::try_from_array(&oids, 0)?)
                }
                ColumnarValue::Array(_) => ColumnarValue::Array(Arc::new(oids)),
            })
        }),
    )
}

/// Registers the functions that identify the server and the session's user, and read its
/// settings.
pub fn register(ctx: &SessionContext, user: &str, settings: Arc<Mutex<Settings>>) {
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSetting::new(settings)));
    ctx.register_udf(constant_text("version", version_string()));
    ctx.register_udf(to_regtype());
    ctx.register_udf(ScalarUDF::new_from_impl(JsonBuildObject::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(PgGetExpr::new()));
    // One database, no per-schema collations: every collation is visible.
    ctx.register_udf(create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    ));
    ctx.register_udf(create_udf(
        crate::sql::LIKE_PATTERN_FUNCTION,
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let patterns = datafusion::arrow::array::AsArray::as_string::<i32>(arrays[0].as_ref());
            let escapes = datafusion::arrow::array::AsArray::as_string::<i32>(arrays[1].as_ref());
            let out: datafusion::arrow::array::StringArray = patterns
                .iter()
                .zip(escapes.iter())
                .map(|(p, e)| Some(crate::sql::backslash_like_pattern(p?, e?)))
                .collect();
            let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            Ok(if scalar {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
            } else {
                ColumnarValue::Array(Arc::new(out))
            })
        }),
    ));
    // KalamDB has no sequences, so no column owns one.
    ctx.register_udf(create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ));
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

/// `json_build_object(k1, v1, k2, v2, ...)`: a JSON object as text, per row.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuildObject {
    signature: datafusion::logical_expr::Signature,
}

impl Default for JsonBuildObject {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonBuildObject {
    pub fn new() -> Self {
        JsonBuildObject {
            signature: datafusion::logical_expr::Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return datafusion::common::exec_err!("json_build_object needs key/value pairs");
        }
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let mut out = datafusion::arrow::array::StringBuilder::new();
        for row in 0..rows {
            let mut object = serde_json::Map::new();
            for pair in arrays.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], row)?.to_string();
                let value = ScalarValue::try_from_array(&pair[1], row)?;
                object.insert(key, json_value(&value));
            }
            out.append_value(serde_json::Value::Object(object).to_string());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `current_setting(name [, missing_ok])`: a session setting's value, as `SHOW name`
/// gives it; an unknown name is an error unless `missing_ok`, which answers NULL.
#[derive(Debug)]
struct CurrentSetting {
    signature: datafusion::logical_expr::Signature,
    settings: Arc<Mutex<Settings>>,
}

impl CurrentSetting {
    fn new(settings: Arc<Mutex<Settings>>) -> Self {
        use datafusion::logical_expr::{Signature, TypeSignature};
        CurrentSetting {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
                ],
                Volatility::Stable,
            ),
            settings,
        }
    }
}

// One function object per session: equal only to itself.
impl PartialEq for CurrentSetting {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.settings, &other.settings)
    }
}

impl Eq for CurrentSetting {}

impl std::hash::Hash for CurrentSetting {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.settings).hash(state)
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray};
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let names = arrays[0].as_string::<i32>();
        let missing_ok = arrays.get(1).map(|a| a.as_boolean());
        let settings = self.settings.lock().expect("settings lock");
        let mut out = datafusion::arrow::array::StringBuilder::new();
        for row in 0..rows {
            if names.is_null(row) {
                out.append_null();
                continue;
            }
            match settings.get(names.value(row)) {
                Ok(value) => out.append_value(value),
                Err(_) if missing_ok.is_some_and(|m| m.is_valid(row) && m.value(row)) => {
                    out.append_null()
                }
                Err(e) => return Err(datafusion::error::DataFusionError::External(Box::new(e))),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `pg_get_expr(expr, relation [, pretty])`: KalamDB keeps expressions (column defaults) as
/// SQL text, so the text is its own rendering.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgGetExpr {
    signature: datafusion::logical_expr::Signature,
}

impl PgGetExpr {
    fn new() -> Self {
        use datafusion::logical_expr::{Signature, TypeSignature};
        PgGetExpr {
            signature: Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Stable,
            ),
        }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for PgGetExpr {
    fn name(&self) -> &str {
        "pg_get_expr"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        args.args[0].cast_to(&DataType::Utf8, None)
    }
}

fn json_value(value: &ScalarValue) -> serde_json::Value {
    if value.is_null() {
        return serde_json::Value::Null;
    }
    match value {
        ScalarValue::Boolean(Some(b)) => serde_json::Value::Bool(*b),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Float32(_)
        | ScalarValue::Float64(_) => {
            serde_json::from_str(&value.to_string()).unwrap_or(serde_json::Value::Null)
        }
        other => serde_json::Value::String(other.to_string()),
    }
}
