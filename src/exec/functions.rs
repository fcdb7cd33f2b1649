//! SQL functions whose answers depend on the server or the session (version(), current_user,
//! current_setting), and the ones PostgreSQL has that DataFusion lacks.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, SimpleScalarUDF,
    TypeSignature, Volatility, create_udf,
};
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

/// A function computed over its arguments as arrays; when every argument is a scalar the
/// answer is a scalar too.
pub(super) fn vectorized(
    name: &str,
    signature: Signature,
    returns: DataType,
    compute: impl Fn(&[ArrayRef]) -> Result<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    ScalarUDF::new_from_impl(SimpleScalarUDF::new_with_signature(
        name,
        signature,
        returns,
        Arc::new(move |args| per_call(args, &compute)),
    ))
}

/// A function's result over its arguments as arrays: one value when every argument is one
/// value (a constant call), an array otherwise.
pub(super) fn per_call(
    args: &[ColumnarValue],
    compute: impl FnOnce(&[ArrayRef]) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let out = compute(&arrays)?;
    Ok(
        if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        },
    )
}

/// `to_regtype('name')`: the OID of a type KalamDB knows by that name, or NULL (drivers probe
/// for optional types such as hstore this way).
fn to_regtype() -> ScalarUDF {
    fn oid(name: &str) -> Option<i32> {
        let name = name.trim();
        let name = name.strip_prefix("pg_catalog.").unwrap_or(name);
        crate::sql::sql_type_named(name).ok().map(|t| t.pg_oid())
    }
    vectorized(
        "to_regtype",
        Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        DataType::Int32,
        |args| {
            let oids: Int32Array = args[0]
                .as_string::<i32>()
                .iter()
                .map(|n| n.and_then(oid))
                .collect();
            Ok(Arc::new(oids))
        },
    )
}

/// `pg_typeof(value)`: the name of the value's type, as `format_type` writes it without
/// modifiers (`integer`, `numeric`, `text[]`, `unknown` for an untyped NULL).
fn pg_typeof() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgTypeof {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// `pg_typeof(x)`: the PostgreSQL name of the argument's type, which its field says (Arrow's
/// type alone cannot tell `json` from `text`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

impl PgTypeof {
    fn type_name(field: &Field) -> String {
        use crate::model::types::{PG_TYPE_METADATA, REGPROC_TAG, REGPROCEDURE_TAG, SqlType};
        if let Some(tag @ (REGPROC_TAG | REGPROCEDURE_TAG)) =
            field.metadata().get(PG_TYPE_METADATA).map(String::as_str)
        {
            return tag.to_owned();
        }
        match field.data_type() {
            DataType::Null => "unknown".into(),
            DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
            DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric".into(),
            DataType::Time32(_) | DataType::Time64(_) => "time without time zone".into(),
            // `integer[]` whatever the dimensions, as PostgreSQL names its array types.
            DataType::List(item) | DataType::LargeList(item)
                if matches!(item.data_type(), DataType::List(_) | DataType::LargeList(_)) =>
            {
                Self::type_name(item)
            }
            DataType::List(item) | DataType::LargeList(item) => {
                format!("{}[]", Self::type_name(item))
            }
            other => match crate::model::types::storable_type(field) {
                Some(SqlType::Varchar { .. }) => "character varying".into(),
                Some(SqlType::Char { .. }) => "character".into(),
                Some(sql_type) => sql_type.sql_name(),
                None => other.to_string().to_lowercase(),
            },
        }
    }
}

/// PostgreSQL's name for a value of `data_type` (`integer`, `text`, `double precision`).
pub(super) fn postgres_type_name(data_type: &DataType) -> String {
    PgTypeof::type_name(&Field::new("value", data_type.clone(), true))
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = Self::type_name(&args.arg_fields[0]);
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

/// `kalamdb_format_types('23 25')` is `integer, text`: each OID of an `oidvector` (as a list,
/// or as the text it prints as) named as `format_type` names it (what
/// `pg_get_function_arguments` lists, see `sql::catalog_queries`).
fn format_types() -> ScalarUDF {
    let format_type = datafusion_pg_catalog::pg_catalog::format_type::create_format_type_udf();
    vectorized(
        crate::sql::FORMAT_TYPES_FUNCTION,
        Signature::any(1, Volatility::Immutable),
        DataType::Utf8,
        move |args| {
            let texts = match args[0].as_list_opt::<i32>() {
                Some(lists) => {
                    let vectors: StringArray = (0..lists.len())
                        .map(|row| {
                            lists.is_valid(row).then(|| {
                                let oids = lists.value(row);
                                let oids = cast(&oids, &DataType::Utf8)?;
                                Ok::<_, DataFusionError>(
                                    oids.as_string::<i32>()
                                        .iter()
                                        .flatten()
                                        .collect::<Vec<_>>()
                                        .join(" "),
                                )
                            })
                        })
                        .map(Option::transpose)
                        .collect::<Result<_>>()?;
                    Arc::new(vectors) as ArrayRef
                }
                None => cast(&args[0], &DataType::Utf8)?,
            };
            let mut out = StringBuilder::new();
            for text in texts.as_string::<i32>().iter() {
                let Some(text) = text else {
                    out.append_null();
                    continue;
                };
                let oids: datafusion::arrow::array::Int32Array =
                    text.split_whitespace().map(|t| t.parse().ok()).collect();
                let rows = oids.len();
                let int4 = || Arc::new(Field::new("oid", DataType::Int32, true));
                let names = format_type
                    .invoke_with_args(ScalarFunctionArgs {
                        args: vec![
                            ColumnarValue::Array(Arc::new(oids)),
                            ColumnarValue::Scalar(ScalarValue::Int32(None)),
                        ],
                        arg_fields: vec![int4(), int4()],
                        number_rows: rows,
                        return_field: Arc::new(Field::new("name", DataType::Utf8, true)),
                        config_options: Arc::new(Default::default()),
                    })?
                    .to_array(rows)?;
                let names = cast(&names, &DataType::Utf8)?;
                let names: Vec<&str> = names
                    .as_string::<i32>()
                    .iter()
                    .zip(text.split_whitespace())
                    .map(|(name, oid)| {
                        oid.parse()
                            .ok()
                            .and_then(pseudo_type_name)
                            .or(name)
                            .unwrap_or("-")
                    })
                    .collect();
                out.append_value(names.join(", "));
            }
            Ok(Arc::new(out.finish()))
        },
    )
}

/// PostgreSQL's pseudo-types by OID, which datafusion-pg-catalog's `format_type` does not name.
fn pseudo_type_name(oid: i32) -> Option<&'static str> {
    Some(match oid {
        32 => "pg_ddl_command",
        269 => "table_am_handler",
        325 => "index_am_handler",
        705 => "unknown",
        2249 => "record",
        2275 => "cstring",
        2276 => "\"any\"",
        2277 => "anyarray",
        2278 => "void",
        2279 => "trigger",
        2280 => "language_handler",
        2281 => "internal",
        2283 => "anyelement",
        2776 => "anynonarray",
        3115 => "fdw_handler",
        3310 => "tsm_handler",
        3500 => "anyenum",
        3831 => "anyrange",
        3838 => "event_trigger",
        4537 => "anymultirange",
        4538 => "anycompatiblemultirange",
        5077 => "anycompatible",
        5078 => "anycompatiblearray",
        5079 => "anycompatiblenonarray",
        5080 => "anycompatiblerange",
        _ => return None,
    })
}

/// PostgreSQL's encoding names by number (`pg_enc2name_tbl`).
const ENCODINGS: [&str; 42] = [
    "SQL_ASCII",
    "EUC_JP",
    "EUC_CN",
    "EUC_KR",
    "EUC_TW",
    "EUC_JIS_2004",
    "UTF8",
    "MULE_INTERNAL",
    "LATIN1",
    "LATIN2",
    "LATIN3",
    "LATIN4",
    "LATIN5",
    "LATIN6",
    "LATIN7",
    "LATIN8",
    "LATIN9",
    "LATIN10",
    "WIN1256",
    "WIN1258",
    "WIN866",
    "WIN874",
    "KOI8R",
    "WIN1251",
    "WIN1252",
    "ISO_8859_5",
    "ISO_8859_6",
    "ISO_8859_7",
    "ISO_8859_8",
    "WIN1250",
    "WIN1253",
    "WIN1254",
    "WIN1255",
    "WIN1257",
    "KOI8U",
    "SJIS",
    "BIG5",
    "GBK",
    "UHC",
    "GB18030",
    "JOHAB",
    "SHIFT_JIS_2004",
];

/// `pg_encoding_to_char(n)`: the encoding's name, empty for a number that names none. Takes
/// any integer (an integer literal is a bigint here; datafusion-pg-catalog's takes only
/// `integer`, and answers `UTF-8` where PostgreSQL says `UTF8`).
fn pg_encoding_to_char() -> ScalarUDF {
    vectorized(
        "pg_encoding_to_char",
        Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Int64]),
                TypeSignature::Exact(vec![DataType::Int32]),
            ],
            Volatility::Immutable,
        ),
        DataType::Utf8,
        |args| {
            let numbers = cast(&args[0], &DataType::Int64)?;
            let names: StringArray = numbers
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .iter()
                .map(|n| {
                    n.map(|n| {
                        usize::try_from(n)
                            .ok()
                            .and_then(|i| ENCODINGS.get(i))
                            .copied()
                            .unwrap_or("")
                    })
                })
                .collect();
            Ok(Arc::new(names))
        },
    )
}

/// Registers the functions that identify the server and the session's user, and read its
/// settings.
pub fn register(ctx: &SessionContext, user: &str, settings: Arc<Mutex<Settings>>) {
    ctx.register_udaf(datafusion::logical_expr::AggregateUDF::new_from_impl(
        SingleRow {
            signature: Signature::any(1, Volatility::Immutable),
        },
    ));
    ctx.register_udf(constant_text("version", version_string()));
    ctx.register_udf(super::bytea_substr::substr());
    ctx.register_udf(create_udf(
        "pg_is_in_recovery",
        vec![],
        DataType::Boolean,
        Volatility::Volatile,
        // A KalamDB node is never a standby replaying another's log.
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(false))))),
    ));
    // KalamDB has no partitioned tables and no rewrite rules (pg_rewrite is empty), and
    // PostgreSQL answers NULL for a relation that is not partitioned and for an OID no rule
    // has (datafusion-pg-catalog's partition key is an empty string; it has no ruledef).
    for (name, arities) in [
        ("pg_get_partkeydef", vec![1]),
        ("pg_get_ruledef", vec![1, 2]),
    ] {
        let forms = arities.into_iter().map(TypeSignature::Any).collect();
        ctx.register_udf(vectorized(
            name,
            Signature::one_of(forms, Volatility::Stable),
            DataType::Utf8,
            |args| {
                Ok(datafusion::arrow::array::new_null_array(
                    &DataType::Utf8,
                    args[0].len(),
                ))
            },
        ));
    }
    ctx.register_udf(create_udf(
        "pg_is_wal_replay_paused",
        vec![],
        DataType::Boolean,
        Volatility::Volatile,
        Arc::new(|_| {
            Err(DataFusionError::External(Box::new(
                super::ExecError::ObjectNotInPrerequisiteState(
                    "recovery is not in progress".into(),
                ),
            )))
        }),
    ));
    super::int4_results::register(ctx);
    super::function_names::register(ctx);
    super::ordered_set_aggregates::register(ctx);
    ctx.register_udf(to_regtype());
    ctx.register_udf(pg_typeof());
    ctx.register_udf(pg_encoding_to_char());
    ctx.register_udf(format_types());
    ctx.register_udf(super::to_char::to_char());
    ctx.register_udf(super::format::format_function());
    for (name, quote) in [
        (
            "quote_ident",
            super::format::quote_ident as fn(&str) -> String,
        ),
        ("quote_literal", super::format::quote_literal),
    ] {
        ctx.register_udf(vectorized(
            name,
            Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
            DataType::Utf8,
            move |args| {
                let quoted: StringArray = args[0]
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(quote))
                    .collect();
                Ok(Arc::new(quoted))
            },
        ));
    }
    if let Some(uuid) = ctx.state().scalar_functions().get("uuid") {
        ctx.register_udf(uuid.as_ref().clone().with_aliases(["gen_random_uuid"]));
    }
    ctx.register_udf(set_config(settings.clone()));
    // `current_setting(name [, missing_ok])`: a setting's value as `SHOW name` gives it; an
    // unknown name is an error unless `missing_ok`, which answers NULL.
    ctx.register_udf(vectorized(
        "current_setting",
        Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
        DataType::Utf8,
        move |args| {
            let settings = settings.lock().expect("settings lock");
            let missing_ok = args.get(1).map(|a| a.as_boolean());
            let mut out = StringBuilder::new();
            for (row, name) in args[0].as_string::<i32>().iter().enumerate() {
                let Some(name) = name else {
                    out.append_null();
                    continue;
                };
                match settings.get(name) {
                    Ok(value) => out.append_value(value),
                    Err(_) if missing_ok.is_some_and(|m| m.is_valid(row) && m.value(row)) => {
                        out.append_null()
                    }
                    Err(e) => return Err(DataFusionError::External(Box::new(e))),
                }
            }
            Ok(Arc::new(out.finish()))
        },
    ));
    // `pg_get_expr(expr, relation [, pretty])`: KalamDB keeps expressions (column defaults)
    // as SQL text, so the text is its own rendering.
    ctx.register_udf(vectorized(
        "pg_get_expr",
        Signature::one_of(
            vec![TypeSignature::Any(2), TypeSignature::Any(3)],
            Volatility::Stable,
        ),
        DataType::Utf8,
        |args| Ok(cast(&args[0], &DataType::Utf8)?),
    ));
    ctx.register_udf(vectorized(
        "pg_size_pretty",
        Signature::uniform(1, vec![DataType::Int64], Volatility::Immutable),
        DataType::Utf8,
        |args| {
            let sizes = args[0].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let out: StringArray = sizes.iter().map(|s| s.map(pretty_size)).collect();
            Ok(Arc::new(out))
        },
    ));
    // Statements calling obj_description or col_description take the catalog-query path,
    // which answers them from pg_description (see `sql::catalog_queries`); these answer the
    // calls it cannot rewrite. Shared objects (the database, roles) have no comments.
    for (name, arguments) in [
        ("obj_description", vec![1, 2]),
        ("col_description", vec![2]),
        ("shobj_description", vec![2]),
    ] {
        ctx.register_udf(vectorized(
            name,
            Signature::one_of(
                arguments.into_iter().map(TypeSignature::Any).collect(),
                Volatility::Stable,
            ),
            DataType::Utf8,
            |args| Ok(Arc::new(StringArray::new_null(args[0].len()))),
        ));
    }
    // Every function, type, operator, conversion and operator class lives in pg_catalog, which
    // every search path reaches first, so each is visible. There are no tablespaces beyond the
    // data directory.
    for name in [
        "pg_function_is_visible",
        "pg_type_is_visible",
        "pg_operator_is_visible",
        "pg_conversion_is_visible",
        "pg_opclass_is_visible",
        "pg_opfamily_is_visible",
        "pg_collation_is_visible",
    ] {
        ctx.register_udf(create_udf(
            name,
            vec![DataType::Int32],
            DataType::Boolean,
            Volatility::Stable,
            Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
        ));
    }
    ctx.register_udf(create_udf(
        "pg_tablespace_location",
        vec![DataType::Int32],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                Some(String::new()),
            )))
        }),
    ));
    // One database, no per-schema collations: every collation is visible.
    ctx.register_udf(create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    ));
    ctx.register_udf(vectorized(
        crate::sql::LIKE_PATTERN_FUNCTION,
        Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
        DataType::Utf8,
        |args| {
            let patterns = args[0].as_string::<i32>();
            let escapes = args[1].as_string::<i32>();
            let out: StringArray = patterns
                .iter()
                .zip(escapes.iter())
                .map(|(p, e)| Some(crate::sql::backslash_like_pattern(p?, e?)))
                .collect();
            Ok(Arc::new(out))
        },
    ));
    ctx.register_udf(constant_text("current_database", DATABASE_NAME.into()));
    ctx.register_udf(constant_text("current_catalog", DATABASE_NAME.into()));
    for name in ["current_user", "session_user", "user", "current_role"] {
        ctx.register_udf(constant_text(name, user.into()));
    }
    // KalamDB objects have no per-user owners; they belong to the bootstrap user.
    ctx.register_udf(vectorized(
        "pg_get_userbyid",
        Signature::exact(vec![DataType::Int32], Volatility::Stable),
        DataType::Utf8,
        |args| Ok(Arc::new(StringArray::from(vec!["root"; args[0].len()]))),
    ));
    super::numeric_aggregates::register(ctx);
    ctx.register_udf(super::numeric_division::integer_quotient());
    super::regexp::register(ctx);
    // `string_to_table` is `string_to_array` spread into rows (`sql::set_returning`).
    ctx.register_udf(
        datafusion::functions_nested::string::string_to_array_udf()
            .as_ref()
            .clone()
            .with_aliases(["string_to_table"]),
    );
}

/// PostgreSQL's `pg_size_pretty`: bytes below 10 kB, then kB, MB, GB, TB and PB, each up
/// to 20 units less one, halves rounded away from zero.
fn pretty_size(bytes: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    let half_rounded = |v: i64| (v + if v < 0 { -1 } else { 1 }) / 2;
    if bytes.abs() < LIMIT {
        return format!("{bytes} bytes");
    }
    // One extra bit is kept for the rounding.
    let mut size = bytes >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.abs() < LIMIT2 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} PB", half_rounded(size))
}

/// The aggregate a scalar subquery's select item is wrapped in (see
/// `sql::SINGLE_ROW_FUNCTION`): the value of the only row, NULL for none, and PostgreSQL's
/// error for more than one.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleRow {
    signature: Signature,
}

impl datafusion::logical_expr::AggregateUDFImpl for SingleRow {
    fn name(&self) -> &str {
        crate::sql::SINGLE_ROW_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    // No rows is NULL whatever the select item's own nullability.
    fn is_nullable(&self) -> bool {
        true
    }

    fn accumulator(
        &self,
        args: datafusion::logical_expr::function::AccumulatorArgs,
    ) -> Result<Box<dyn datafusion::logical_expr::Accumulator>> {
        Ok(Box::new(SingleRowAccumulator {
            value: ScalarValue::try_from(args.return_field.data_type())?,
            rows: 0,
        }))
    }

    fn state_fields(
        &self,
        args: datafusion::logical_expr::function::StateFieldsArgs,
    ) -> Result<Vec<datafusion::arrow::datatypes::FieldRef>> {
        use datafusion::arrow::datatypes::Field;
        Ok(vec![
            Arc::new(Field::new(
                format!("{}_value", args.name),
                args.return_field.data_type().clone(),
                true,
            )),
            Arc::new(Field::new(
                format!("{}_rows", args.name),
                DataType::UInt64,
                false,
            )),
        ])
    }
}

#[derive(Debug)]
struct SingleRowAccumulator {
    value: ScalarValue,
    rows: u64,
}

impl SingleRowAccumulator {
    fn add(&mut self, rows: u64, value: impl FnOnce() -> Result<ScalarValue>) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        self.rows += rows;
        if self.rows > 1 {
            return Err(DataFusionError::External(Box::new(
                super::ExecError::CardinalityViolation(
                    "more than one row returned by a subquery used as an expression".into(),
                ),
            )));
        }
        self.value = value()?;
        Ok(())
    }
}

impl datafusion::logical_expr::Accumulator for SingleRowAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let column = &values[0];
        self.add(column.len() as u64, || {
            ScalarValue::try_from_array(column, 0)
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states[1].as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
        for (i, count) in rows.iter().enumerate() {
            self.add(count.unwrap_or(0), || {
                ScalarValue::try_from_array(&states[0], i)
            })?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.value.clone(),
            ScalarValue::UInt64(Some(self.rows)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() - std::mem::size_of_val(&self.value)
    }
}

/// `set_config(name, value, is_local)`: `SET name = value` as a function, answering the new
/// value. A transaction-local setting (`is_local` true) and `search_path`, which the planner
/// must follow as the statement runs, are refused: use `SET [LOCAL]`.
fn set_config(settings: Arc<Mutex<Settings>>) -> ScalarUDF {
    vectorized(
        "set_config",
        Signature::exact(
            vec![DataType::Utf8, DataType::Utf8, DataType::Boolean],
            Volatility::Volatile,
        ),
        DataType::Utf8,
        move |args| {
            let refuse = |message: String| {
                DataFusionError::External(Box::new(super::ExecError::Sql(
                    crate::sql::SqlError::Unsupported(message),
                )))
            };
            let mut settings = settings.lock().expect("settings lock");
            let (names, values) = (args[0].as_string::<i32>(), args[1].as_string::<i32>());
            let local = args[2].as_boolean();
            let mut out = StringBuilder::new();
            for row in 0..names.len() {
                if names.is_null(row) {
                    return Err(DataFusionError::External(Box::new(
                        super::ExecError::NullValueNotAllowed("SET requires parameter name".into()),
                    )));
                }
                let name = names.value(row);
                if local.is_valid(row) && local.value(row) {
                    return Err(refuse(format!(
                        "set_config with is_local = true is not supported: use SET LOCAL {name}"
                    )));
                }
                if name.eq_ignore_ascii_case("search_path") {
                    return Err(refuse(
                        "set_config cannot change search_path: use SET search_path".into(),
                    ));
                }
                let value = (!values.is_null(row)).then(|| values.value(row));
                settings
                    .set(name, value)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                out.append_value(
                    settings
                        .get(name)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?,
                );
            }
            Ok(Arc::new(out.finish()))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::pretty_size;

    #[test]
    fn to_regtype_knows_the_declarable_types_by_any_of_their_names() {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_udf(super::to_regtype());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let batches = runtime
            .block_on(async {
                ctx.sql(
                    "SELECT to_regtype('int4'), to_regtype('pg_catalog.varchar'), \
                     to_regtype('character varying'), to_regtype('timestamptz'), \
                     to_regtype('hstore')",
                )
                .await?
                .collect()
                .await
            })
            .unwrap();
        let row: Vec<String> = (0..5)
            .map(|i| {
                datafusion::scalar::ScalarValue::try_from_array(batches[0].column(i), 0)
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(row, ["23", "1043", "1043", "1184", "NULL"]);
    }

    #[test]
    fn sizes_print_as_postgresql_prints_them() {
        for (bytes, printed) in [
            (0, "0 bytes"),
            (10_239, "10239 bytes"),
            (10_240, "10 kB"),
            (20_479, "20 kB"),
            (1_048_576, "1024 kB"),
            (20_971_520, "20 MB"),
            (5_368_709_120, "5120 MB"),
            (-10_240, "-10 kB"),
        ] {
            assert_eq!(pretty_size(bytes), printed, "{bytes}");
        }
    }
}
