//! Why a statement failed to plan, in PostgreSQL's words, when no function or operator takes
//! the argument types it was given. DataFusion words those failures in Arrow's type names and
//! lists candidate signatures; PostgreSQL says `function lower(integer) does not exist` or
//! `operator does not exist: text * integer` (42883) and hints at a cast.
//!
//! Such a failure surfaces in one of two places, and only a statement that failed is diagnosed,
//! so a statement that plans pays nothing for it:
//! - while the SQL is turned into a plan (a select list's types are computed there): the
//!   statement is planned again with every scalar function wrapped in a check that notes the
//!   first call whose argument types no signature of the function accepts, and with an
//!   expression planner, after all the real ones, that notes the first operator whose operand
//!   types do not combine. Its integer literals are cast to `integer` first when they fit, so
//!   the types named are PostgreSQL's (`integer_literals` types them so once a statement plans);
//! - in type coercion, which runs DataFusion's rule and, when it fails, looks through the plan
//!   it was given for the first call or operator whose argument types do not match (a WHERE
//!   clause's types are first computed there).

use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{
    DFSchema, DataFusionError, Result, TableReference, config::ConfigOptions, internal_err,
    plan_err,
};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::planner::{
    ContextProvider, ExprPlanner, PlannerResult, RawBinaryExpr, RelationPlanner, TypePlanner,
};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::type_coercion::functions::{UDFCoercionExt, fields_with_udf};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, ExprSchemable,
    HigherOrderUDF, LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TableSource, Volatility, WindowUDF,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::optimizer::analyzer::type_coercion::TypeCoercion;
use datafusion::sql::planner::SqlToRel;
use datafusion::sql::sqlparser::ast::{self, BinaryOperator, VisitMut, VisitorMut};

use super::ExecError;
use super::functions::postgres_type_name;
use super::planner::StatementPlanner;

/// The first call or operator planning found no match for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mismatch {
    Function {
        name: String,
        args: Vec<DataType>,
    },
    Operator {
        left: DataType,
        op: String,
        right: DataType,
    },
}

impl Mismatch {
    fn into_error(self) -> ExecError {
        match self {
            Mismatch::Function { name, args } => {
                let args: Vec<String> = args.iter().map(postgres_type_name).collect();
                ExecError::NoMatchingSignature {
                    message: format!("function {name}({}) does not exist", args.join(", ")),
                    hint: "No function matches the given name and argument types. You might need to add explicit type casts.",
                }
            }
            Mismatch::Operator { left, op, right } => ExecError::NoMatchingSignature {
                message: format!(
                    "operator does not exist: {} {op} {}",
                    postgres_type_name(&left),
                    postgres_type_name(&right)
                ),
                hint: "No operator matches the given name and argument types. You might need to add explicit type casts.",
            },
        }
    }
}

/// Plans `statement` (one that failed to plan) again to find a call or operator no signature
/// accepts; `None` when it finds none, and the original error stands.
pub(super) fn diagnose(
    planner: &StatementPlanner,
    mut statement: ast::Statement,
) -> Option<ExecError> {
    let _ = VisitMut::visit(&mut statement, &mut Int4Literals);
    let found = Arc::new(OnceLock::new());
    let mut expr_planners = planner.get_expr_planners().to_vec();
    expr_planners.push(Arc::new(OperatorCheck {
        found: found.clone(),
    }));
    let diagnosing = Diagnosing {
        planner,
        found: found.clone(),
        expr_planners,
    };
    // The plan is thrown away: only what the checks noted matters. Planning need not type
    // every call's arguments (a projection's), so a plan that was made is checked throughout.
    let planned = SqlToRel::new_with_options(&diagnosing, planner.parser_options())
        .sql_statement_to_plan(statement);
    let found = found
        .get()
        .cloned()
        .or_else(|| planned.ok().and_then(|plan| first_mismatch(&plan)));
    found.map(Mismatch::into_error)
}

/// DataFusion's type coercion, with a refusal of argument types reported as PostgreSQL
/// reports it.
#[derive(Debug, Default)]
pub(super) struct PostgresTypeCoercion {
    coercion: TypeCoercion,
}

impl AnalyzerRule for PostgresTypeCoercion {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        // Nodes hold their inputs behind `Arc`s: the copy is the top node alone.
        let given = plan.clone();
        self.coercion
            .analyze(plan, config)
            .map_err(|err| match first_mismatch(&given) {
                Some(mismatch) => DataFusionError::External(Box::new(mismatch.into_error())),
                None => err,
            })
    }

    fn name(&self) -> &str {
        self.coercion.name()
    }
}

/// The first call or operator in `plan` whose argument types none of its signatures accepts.
/// Outer calls come first, and one whose argument types cannot be worked out is passed over,
/// so the innermost refused call is the one found.
fn first_mismatch(plan: &LogicalPlan) -> Option<Mismatch> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        let mut schema = merge_schema(&node.inputs());
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(source) =
                DFSchema::try_from_qualified_schema(scan.table_name.clone(), &scan.source.schema())
        {
            schema.merge(&source);
        }
        node.apply_expressions(|expr| {
            expr.apply(|expr| {
                found = refused(expr, &schema);
                Ok(if found.is_some() {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })?;
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// `expr`'s mismatch, when it is a call or an operator its argument types do not fit.
fn refused(expr: &Expr, schema: &DFSchema) -> Option<Mismatch> {
    match expr {
        Expr::ScalarFunction(call) => refused_call(call.func.as_ref(), &call.args, schema),
        Expr::AggregateFunction(call) => {
            refused_call(call.func.as_ref(), &call.params.args, schema)
        }
        Expr::BinaryExpr(binary) => {
            let left = binary.left.get_type(schema).ok()?;
            let right = binary.right.get_type(schema).ok()?;
            BinaryTypeCoercer::new(&left, &binary.op, &right)
                .get_result_type()
                .is_err()
                .then(|| Mismatch::Operator {
                    left,
                    op: match binary.op {
                        Operator::NotEq => "<>".to_owned(),
                        op => op.to_string(),
                    },
                    right,
                })
        }
        _ => None,
    }
}

/// A call of `function` whose argument types none of its signatures accepts.
fn refused_call(
    function: &impl UDFCoercionExt,
    args: &[Expr],
    schema: &DFSchema,
) -> Option<Mismatch> {
    let args: Vec<DataType> = args
        .iter()
        .map(|arg| arg.get_type(schema).ok())
        .collect::<Option<_>>()?;
    fields_with_udf(&argument_fields(&args), function)
        .is_err()
        .then(|| Mismatch::Function {
            name: function.name().to_owned(),
            args,
        })
}

fn argument_fields(types: &[DataType]) -> Vec<FieldRef> {
    types
        .iter()
        .map(|t| Arc::new(Field::new("arg", t.clone(), true)))
        .collect()
}

/// Casts each integer literal that fits in 32 bits and is a function's argument or an
/// operator's operand to `integer`, as PostgreSQL types it. Others stay: `GROUP BY 1` and
/// `ORDER BY 1` name a column by its position.
struct Int4Literals;

impl VisitorMut for Int4Literals {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut ast::Expr) -> ControlFlow<()> {
        match expr {
            ast::Expr::BinaryOp { left, right, .. } => {
                cast_if_int4(left);
                cast_if_int4(right);
            }
            ast::Expr::Function(function) => {
                if let ast::FunctionArguments::List(list) = &mut function.args {
                    for arg in &mut list.args {
                        if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))
                        | ast::FunctionArg::Named {
                            arg: ast::FunctionArgExpr::Expr(arg),
                            ..
                        } = arg
                        {
                            cast_if_int4(arg);
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn cast_if_int4(expr: &mut ast::Expr) {
    let digits = match &*expr {
        ast::Expr::Value(value) => match &value.value {
            ast::Value::Number(digits, _) => digits.clone(),
            _ => return,
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr: inner,
        } => match inner.as_ref() {
            ast::Expr::Value(value) => match &value.value {
                ast::Value::Number(digits, _) => format!("-{digits}"),
                _ => return,
            },
            _ => return,
        },
        _ => return,
    };
    if digits.parse::<i32>().is_ok() {
        let literal = std::mem::replace(expr, ast::Expr::value(ast::Value::Null));
        *expr = ast::Expr::Cast {
            kind: ast::CastKind::Cast,
            expr: Box::new(literal),
            data_type: ast::DataType::Int(None),
            array: false,
            format: None,
        };
    }
}

/// The statement's planner, with the checks in place.
struct Diagnosing<'p> {
    planner: &'p StatementPlanner,
    found: Arc<OnceLock<Mismatch>>,
    expr_planners: Vec<Arc<dyn ExprPlanner>>,
}

impl ContextProvider for Diagnosing<'_> {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        self.planner.get_table_source(name)
    }

    fn get_table_function_source(
        &self,
        name: &str,
        args: Vec<Expr>,
    ) -> Result<Arc<dyn TableSource>> {
        self.planner.get_table_function_source(name, args)
    }

    fn create_cte_work_table(&self, name: &str, schema: SchemaRef) -> Result<Arc<dyn TableSource>> {
        self.planner.create_cte_work_table(name, schema)
    }

    fn get_relation_planners(&self) -> &[Arc<dyn RelationPlanner>] {
        self.planner.get_relation_planners()
    }

    fn get_type_planner(&self) -> Option<Arc<dyn TypePlanner>> {
        self.planner.get_type_planner()
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.expr_planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        let function = self.planner.get_function_meta(name);
        // An unknown name is planned as a call that fails, so that its argument types are
        // known to the message; an aggregate's or window function's is left to them.
        if function.is_none() && self.planner.is_known_function(name) {
            return None;
        }
        let volatility = function
            .as_ref()
            .map_or(Volatility::Volatile, |f| f.signature().volatility);
        Some(Arc::new(ScalarUDF::new_from_impl(CheckedCall {
            name: name.to_owned(),
            signature: Signature::user_defined(volatility),
            function,
            found: self.found.clone(),
        })))
    }

    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        self.planner.get_higher_order_meta(name)
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        let function = self.planner.get_aggregate_meta(name)?;
        Some(Arc::new(AggregateUDF::new_from_impl(CheckedAggregate {
            signature: Signature::user_defined(function.signature().volatility),
            function,
            found: self.found.clone(),
        })))
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.planner.get_window_meta(name)
    }

    fn get_variable_type(&self, names: &[String]) -> Option<DataType> {
        self.planner.get_variable_type(names)
    }

    fn get_variable_field(&self, names: &[String]) -> Option<FieldRef> {
        self.planner.get_variable_field(names)
    }

    fn options(&self) -> &ConfigOptions {
        self.planner.options()
    }

    fn udf_names(&self) -> Vec<String> {
        self.planner.udf_names()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.planner.higher_order_function_names()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.planner.udaf_names()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.planner.udwf_names()
    }
}

/// A scalar function whose argument types are checked against the function's own signature,
/// noting the first call none of its signatures accepts (any call, for a function that does
/// not exist). It lives only in a diagnosing plan, which is never run.
#[derive(Debug)]
struct CheckedCall {
    name: String,
    function: Option<Arc<ScalarUDF>>,
    signature: Signature,
    found: Arc<OnceLock<Mismatch>>,
}

impl PartialEq for CheckedCall {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.function == other.function
    }
}

impl Eq for CheckedCall {}

impl std::hash::Hash for CheckedCall {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.function.hash(state);
    }
}

impl ScalarUDFImpl for CheckedCall {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let checked = match &self.function {
            Some(function) => fields_with_udf(&argument_fields(arg_types), function.as_ref()),
            None => plan_err!("function {} does not exist", self.name),
        };
        match checked {
            Ok(coerced) => Ok(coerced.iter().map(|f| f.data_type().clone()).collect()),
            Err(e) => {
                let _ = self.found.set(Mismatch::Function {
                    name: self.name.clone(),
                    args: arg_types.to_vec(),
                });
                Err(e)
            }
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match &self.function {
            Some(function) => function.return_type(arg_types),
            None => plan_err!("function {} does not exist", self.name),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match &self.function {
            Some(function) => function.return_field_from_args(args),
            None => plan_err!("function {} does not exist", self.name),
        }
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        internal_err!("a plan made to diagnose a planning error is never run")
    }
}

/// An aggregate function whose argument types are checked as `CheckedCall` checks a scalar
/// function's.
#[derive(Debug)]
struct CheckedAggregate {
    function: Arc<AggregateUDF>,
    signature: Signature,
    found: Arc<OnceLock<Mismatch>>,
}

impl PartialEq for CheckedAggregate {
    fn eq(&self, other: &Self) -> bool {
        self.function == other.function
    }
}

impl Eq for CheckedAggregate {}

impl std::hash::Hash for CheckedAggregate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.function.hash(state);
    }
}

impl AggregateUDFImpl for CheckedAggregate {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match fields_with_udf(&argument_fields(arg_types), self.function.as_ref()) {
            Ok(coerced) => Ok(coerced.iter().map(|f| f.data_type().clone()).collect()),
            Err(e) => {
                let _ = self.found.set(Mismatch::Function {
                    name: self.function.name().to_owned(),
                    args: arg_types.to_vec(),
                });
                Err(e)
            }
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.function.return_type(arg_types)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        internal_err!("a plan made to diagnose a planning error is never run")
    }
}

/// Notes the first operator whose operand types do not combine; plans nothing itself.
#[derive(Debug)]
struct OperatorCheck {
    found: Arc<OnceLock<Mismatch>>,
}

impl ExprPlanner for OperatorCheck {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        if let Some(op) = checked_operator(&expr.op)
            && let (Ok(left), Ok(right)) = (expr.left.get_type(schema), expr.right.get_type(schema))
            && BinaryTypeCoercer::new(&left, &op, &right)
                .get_result_type()
                .is_err()
        {
            let _ = self.found.set(Mismatch::Operator {
                left,
                op: expr.op.to_string(),
                right,
            });
        }
        Ok(PlannerResult::Original(expr))
    }
}

/// The operators whose operand types DataFusion's own coercion decides once no expression
/// planner took them.
fn checked_operator(op: &BinaryOperator) -> Option<Operator> {
    Some(match op {
        BinaryOperator::Plus => Operator::Plus,
        BinaryOperator::Minus => Operator::Minus,
        BinaryOperator::Multiply => Operator::Multiply,
        BinaryOperator::Divide => Operator::Divide,
        BinaryOperator::Modulo => Operator::Modulo,
        BinaryOperator::Eq => Operator::Eq,
        BinaryOperator::NotEq => Operator::NotEq,
        BinaryOperator::Lt => Operator::Lt,
        BinaryOperator::LtEq => Operator::LtEq,
        BinaryOperator::Gt => Operator::Gt,
        BinaryOperator::GtEq => Operator::GtEq,
        BinaryOperator::And => Operator::And,
        BinaryOperator::Or => Operator::Or,
        _ => return None,
    })
}
