//! Casts to text that write values as PostgreSQL's output functions do. DataFusion writes a
//! timestamp as `2024-01-01T00:00:00`; PostgreSQL (and KalamDB on the wire) as
//! `2024-01-01 00:00:00`, with `+00` for `timestamptz` in the UTC session zone. The rule runs
//! after type coercion, so implicit casts (`'at ' || ts`) are written the same way.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    Expr, ExprSchemable, LogicalPlan, ScalarUDF, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule; see the module documentation.
#[derive(Debug)]
pub struct PostgresTextCasts {
    timestamp: Arc<ScalarUDF>,
    timestamptz: Arc<ScalarUDF>,
}

impl Default for PostgresTextCasts {
    fn default() -> Self {
        PostgresTextCasts {
            timestamp: Arc::new(timestamp_text("timestamp_out", None)),
            timestamptz: Arc::new(timestamp_text("timestamptz_out", Some("+00"))),
        }
    }
}

fn timestamp_text(name: &str, zone_suffix: Option<&'static str>) -> ScalarUDF {
    let input = DataType::Timestamp(TimeUnit::Microsecond, zone_suffix.map(|_| Arc::from("UTC")));
    super::functions::vectorized(
        name,
        Signature::exact(vec![input], Volatility::Immutable),
        DataType::Utf8,
        move |args| {
            let micros = args[0]
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal(format!(
                        "timestamp text of {}",
                        args[0].data_type()
                    ))
                })?;
            let mut out = StringBuilder::with_capacity(micros.len(), micros.len() * 26);
            for value in micros.iter() {
                match value.and_then(chrono::DateTime::from_timestamp_micros) {
                    Some(at) => out.append_value(postgres_timestamp(at.naive_utc(), zone_suffix)),
                    None => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        },
    )
}

/// `YYYY-MM-DD HH:MM:SS`, then the fraction without trailing zeros, then the zone.
pub(super) fn postgres_timestamp(at: chrono::NaiveDateTime, zone_suffix: Option<&str>) -> String {
    use chrono::Timelike;
    let mut text = at.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = at.nanosecond() / 1_000;
    if micros > 0 {
        let fraction = format!("{micros:06}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    if let Some(zone) = zone_suffix {
        text.push_str(zone);
    }
    text
}

impl PostgresTextCasts {
    fn rewrite(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        use datafusion::common::tree_node::TreeNode;
        expr.transform_up(|expr| {
            let Expr::Cast(cast) = &expr else {
                return Ok(Transformed::no(expr));
            };
            if !matches!(
                cast.field.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                return Ok(Transformed::no(expr));
            }
            let (function, zone) = match cast.expr.get_type(schema) {
                Ok(DataType::Timestamp(_, None)) => (&self.timestamp, None),
                Ok(DataType::Timestamp(_, Some(_))) => (&self.timestamptz, Some(Arc::from("UTC"))),
                _ => return Ok(Transformed::no(expr)),
            };
            let micros = Expr::Cast(datafusion::logical_expr::Cast::new(
                cast.expr.clone(),
                DataType::Timestamp(TimeUnit::Microsecond, zone),
            ));
            let text =
                Expr::ScalarFunction(ScalarFunction::new_udf(function.clone(), vec![micros]));
            Ok(Transformed::yes(match cast.field.data_type() {
                DataType::Utf8 => text,
                other => text.cast_to(other, schema)?,
            }))
        })
    }
}

impl AnalyzerRule for PostgresTextCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::plan_rewrite::rewrite_expressions(plan, |expr, schema| self.rewrite(expr, schema))
    }

    fn name(&self) -> &str {
        "postgres_text_casts"
    }
}
