//! PostgreSQL's `json` and `jsonb`: casts to them, their operators (`-> ->> #> #>> @> <@ ?
//! ?| ?&`), functions and aggregates. Values are JSON text; a field tagged `json` holds the
//! text as written, anything else read as JSON is `jsonb`, kept in canonical form.

mod access;
mod aggregates;
mod build;
mod edit;
mod functions;
mod parser;
mod records;
mod value;

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::DFSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable, ScalarUDF};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, VisitMut, VisitorMut};

use super::ExecError;
use crate::model::types::PG_TYPE_METADATA;

pub use parser::{ParseError, parse};
pub use value::{canonical, print_jsonb};

/// Which of PostgreSQL's two JSON types a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The text as written: whitespace, key order and duplicate keys kept.
    Json,
    /// Canonical: keys unique and ordered, numbers normalised.
    Jsonb,
}

impl Kind {
    /// The kind a field is tagged with, if any.
    fn tagged(field: &Field) -> Option<Kind> {
        match field.metadata().get(PG_TYPE_METADATA).map(String::as_str) {
            Some("json") => Some(Kind::Json),
            Some("jsonb") => Some(Kind::Jsonb),
            _ => None,
        }
    }

    /// The kind an argument read as JSON is: `json` when tagged so, else `jsonb`.
    fn of(field: &Field) -> Kind {
        Kind::tagged(field).unwrap_or(Kind::Jsonb)
    }

    fn field(self, name: &str) -> Field {
        let tag = match self {
            Kind::Json => "json",
            Kind::Jsonb => "jsonb",
        };
        Field::new(name, DataType::Utf8, true).with_metadata(
            [(PG_TYPE_METADATA.to_owned(), tag.to_owned())]
                .into_iter()
                .collect(),
        )
    }

    fn read(self, text: &str) -> Result<value::Node> {
        let node = parser::parse(text).map_err(invalid_json)?;
        Ok(match self {
            Kind::Json => node,
            Kind::Jsonb => value::canonical(node).map_err(|_| numeric_overflow())?,
        })
    }

    /// A part of a document read from `source`, as this kind prints it.
    fn print(self, node: &value::Node, source: &str) -> String {
        match self {
            Kind::Json => value::print_json_part(node, source).into_owned(),
            Kind::Jsonb => value::print_jsonb(node),
        }
    }

    /// A value a function built, as this kind prints it.
    fn print_built(self, node: value::Node) -> Result<String> {
        Ok(match self {
            Kind::Json => value::print_json_built(&node),
            Kind::Jsonb => {
                value::print_jsonb(&value::canonical(node).map_err(|_| numeric_overflow())?)
            }
        })
    }
}

fn invalid_json(e: ParseError) -> DataFusionError {
    DataFusionError::External(Box::new(ExecError::InvalidJson { detail: e.0 }))
}

/// A number in a `jsonb` value that `numeric` cannot hold (22003, PostgreSQL's message).
fn numeric_overflow() -> DataFusionError {
    DataFusionError::External(Box::new(ExecError::NumericOutOfRange(
        "value overflows numeric format".into(),
    )))
}

fn invalid_parameter(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(ExecError::InvalidParameterValue(message)))
}

/// Text written to a `jsonb` column, in canonical form; an error for text that is not JSON or
/// holds a number `numeric` cannot.
pub fn canonical_jsonb(text: &str) -> std::result::Result<String, ExecError> {
    let node = parse(text).map_err(|e| ExecError::InvalidJson { detail: e.0 })?;
    let node = canonical(node)
        .map_err(|_| ExecError::NumericOutOfRange("value overflows numeric format".into()))?;
    Ok(print_jsonb(&node))
}

/// Registers the functions, aggregates and operators with a session.
pub fn register(ctx: &SessionContext) {
    for function in functions::all() {
        ctx.register_udf(function);
    }
    aggregates::register(ctx);
}

/// The planner for the JSON operators, to run before DataFusion's own (whose `@>` and `<@`
/// are for arrays).
pub fn operators() -> Arc<dyn ExprPlanner> {
    let functions = functions::all()
        .into_iter()
        .map(|f| (f.name().to_owned(), Arc::new(f)))
        .collect();
    Arc::new(JsonOperators { functions })
}

#[derive(Debug)]
struct JsonOperators {
    functions: std::collections::HashMap<String, Arc<ScalarUDF>>,
}

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        if matches!(
            expr.op,
            BinaryOperator::StringConcat | BinaryOperator::Minus | BinaryOperator::HashMinus
        ) {
            return self.plan_jsonb_edit(expr, schema);
        }
        // `d->-1`: the lexer takes `->-` for one operator, where PostgreSQL's reads `->` and a
        // negative index.
        let (function, negated) = match &expr.op {
            BinaryOperator::Custom(op) if op == "->-" => (functions::GET, true),
            BinaryOperator::Custom(op) if op == "->>-" => (functions::GET_TEXT, true),
            _ => (functions::GET, false),
        };
        let function = match expr.op {
            _ if negated => function,
            BinaryOperator::Arrow => functions::GET,
            BinaryOperator::LongArrow => functions::GET_TEXT,
            BinaryOperator::HashArrow => functions::PATH,
            BinaryOperator::HashLongArrow => functions::PATH_TEXT,
            BinaryOperator::AtArrow => "jsonb_contains",
            BinaryOperator::ArrowAt => "jsonb_contained",
            BinaryOperator::Question => "jsonb_exists",
            BinaryOperator::QuestionPipe => "jsonb_exists_any",
            BinaryOperator::QuestionAnd => "jsonb_exists_all",
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let Some(udf) = self.functions.get(function).cloned() else {
            return Ok(PlannerResult::Original(expr));
        };
        let left_type = expr.left.get_type(schema)?;
        let expr = if negated {
            RawBinaryExpr {
                right: Expr::Negative(Box::new(expr.right)),
                ..expr
            }
        } else {
            expr
        };
        if !matches!(
            left_type,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
        ) {
            return Ok(PlannerResult::Original(expr));
        }
        let expr = match text_array_literal(&expr.right) {
            Some(right) => RawBinaryExpr { right, ..expr },
            None => expr,
        };
        let right = match (function, expr.right.get_type(schema)?) {
            // An array index: any integer, as int8.
            (functions::GET | functions::GET_TEXT, t) if t.is_integer() => {
                expr.right.cast_to(&DataType::Int64, schema)?
            }
            (_, DataType::List(_)) => expr.right,
            (_, DataType::Utf8) => expr.right,
            _ => expr.right.cast_to(&DataType::Utf8, schema)?,
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf, vec![expr.left, right]),
        )))
    }
}

impl JsonOperators {
    /// `||`, `-` and `#-` with a `jsonb` operand. `||` concatenates `jsonb` when both sides are
    /// `jsonb` or one is an untyped literal (PostgreSQL resolves `unknown` to the other side's
    /// type); with `text` it stays text concatenation, as PostgreSQL's `anynonarray || text`.
    fn plan_jsonb_edit(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let jsonb = |e: &Expr| -> Result<bool> {
            Ok(Kind::tagged(&e.to_field(schema)?.1) == Some(Kind::Jsonb))
        };
        let untyped = |e: &Expr| matches!(e, Expr::Literal(ScalarValue::Utf8(_), _));
        let (left, right) = (jsonb(&expr.left)?, jsonb(&expr.right)?);
        let function = match expr.op {
            BinaryOperator::StringConcat
                if (left && (right || untyped(&expr.right))) || (right && untyped(&expr.left)) =>
            {
                functions::CONCAT
            }
            BinaryOperator::Minus if left => functions::DELETE,
            BinaryOperator::HashMinus if left => functions::DELETE_PATH,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let Some(udf) = self.functions.get(function).cloned() else {
            return Ok(PlannerResult::Original(expr));
        };
        let right = text_array_literal(&expr.right).unwrap_or(expr.right);
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf, vec![expr.left, right]),
        )))
    }
}

/// `'{a,b}'::text[]` read as PostgreSQL reads an array literal. DataFusion's cast from text
/// to a list makes a one-element list of the whole text, which would make `d - '{a,b}'::text[]`
/// look for the key `{a,b}`.
fn text_array_literal(expr: &Expr) -> Option<Expr> {
    let Expr::Cast(datafusion::logical_expr::Cast { expr: inner, field }) = expr else {
        return None;
    };
    if !matches!(field.data_type(), DataType::List(_)) {
        return None;
    }
    let (Expr::Literal(ScalarValue::Utf8(Some(text)), _)
    | Expr::Literal(ScalarValue::Utf8View(Some(text)), _)) = inner.as_ref()
    else {
        return None;
    };
    let items: Vec<ScalarValue> = crate::exec::array_text::parse_text_array(text)?
        .into_iter()
        .map(ScalarValue::Utf8)
        .collect();
    Some(Expr::Literal(
        ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Utf8)),
        None,
    ))
}

/// Rewrites casts to `json` and `jsonb` (`x::jsonb`, `CAST(x AS json)`, `jsonb '...'`) into
/// the functions that read the text as that type. Runs on the statement as planned, after
/// result columns were named, so a cast still names its column after the type.
pub fn rewrite_casts(statement: &mut ast::Statement) {
    let _ = VisitMut::visit(statement, &mut JsonCasts);
}

/// The same rewrite for one expression.
pub fn rewrite_casts_in(expr: &mut ast::Expr) {
    let _ = VisitMut::visit(expr, &mut JsonCasts);
}

struct JsonCasts;

fn json_kind(data_type: &ast::DataType) -> Option<Kind> {
    match data_type {
        ast::DataType::JSON => Some(Kind::Json),
        ast::DataType::JSONB => Some(Kind::Jsonb),
        ast::DataType::Custom(name, modifiers) if modifiers.is_empty() => {
            match name.to_string().to_lowercase().as_str() {
                "json" | "pg_catalog.json" => Some(Kind::Json),
                "jsonb" | "pg_catalog.jsonb" => Some(Kind::Jsonb),
                _ => None,
            }
        }
        _ => None,
    }
}

fn reader(kind: Kind, arg: ast::Expr) -> ast::Expr {
    let name = match kind {
        Kind::Json => functions::JSON_IN,
        Kind::Jsonb => functions::JSONB_IN,
    };
    ast::Expr::Function(ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: ast::FunctionArguments::None,
        args: ast::FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
                // The text of whatever is cast, as PostgreSQL's input function reads it.
                ast::Expr::Cast {
                    kind: ast::CastKind::Cast,
                    expr: Box::new(arg),
                    data_type: ast::DataType::Text,
                    array: false,
                    format: None,
                },
            ))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

impl VisitorMut for JsonCasts {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut ast::Expr) -> ControlFlow<()> {
        match expr {
            ast::Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => {
                if let Some(kind) = json_kind(data_type) {
                    let inner =
                        std::mem::replace(inner.as_mut(), ast::Expr::value(ast::Value::Null));
                    *expr = reader(kind, inner);
                }
            }
            ast::Expr::TypedString(typed) => {
                if let Some(kind) = json_kind(&typed.data_type) {
                    let literal = ast::Expr::Value(typed.value.clone());
                    *expr = reader(kind, literal);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
