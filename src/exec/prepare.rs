//! Preparing statements for the extended protocol: the plan a query runs with, the parameter
//! types Describe reports, and the result columns, worked out once at Parse.

use datafusion::common::tree_node::TreeNode;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast;

use super::planner::StatementPlanner;
use super::{ExecError, ExecResult, Session};
use crate::sql::{self, Statement};

/// A statement prepared through the extended protocol, with what Describe must report.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    pub statement: Statement,
    pub(super) plan: Option<LogicalPlan>,
    /// Set when a fast path can run the statement without DataFusion.
    pub(super) fast_path: Option<FastPath>,
    /// Parameter types as far as planning could infer them; `None` where it could not.
    pub param_types: Vec<Option<DataType>>,
    /// `None` for statements that return no rows.
    pub result_schema: Option<SchemaRef>,
}

/// A statement shape answered without planning (each falls back to the plan when it cannot).
#[derive(Debug, Clone)]
pub(super) enum FastPath {
    /// A point read by primary key or index.
    Read(super::point_query::PointQuery),
    /// An UPDATE or DELETE of the one row a primary key names.
    Write(super::dml::PointWrite),
    /// A single-row INSERT of parameters and constants.
    Insert(super::dml::PointInsert),
}

impl Session {
    /// Plans a statement for the extended protocol without running it. In cluster mode the
    /// plan reads a catalog that holds every change acknowledged before (see `read_fence`).
    pub async fn prepare(&self, statement: Statement) -> ExecResult<PreparedStatement> {
        self.read_fence(&statement)
            .await
            .map_err(|e| self.failed_before_running(e))?;
        self.plan_statement(statement)
            .await
            .map_err(|e| self.failed_before_running(e))
    }

    /// [`Self::prepare`] on this node's state as it is.
    pub(super) async fn plan_statement(
        &self,
        statement: Statement,
    ) -> ExecResult<PreparedStatement> {
        self.authorize(&statement)?;
        match &statement {
            Statement::Query(ast) => {
                let planner = StatementPlanner::new(self, ast).await?;
                let plan = planner.statement(ast)?;
                SQLOptions::new()
                    .with_allow_ddl(false)
                    .with_allow_dml(false)
                    .with_allow_statements(false)
                    .verify_plan(&plan)?;
                let param_types = ordered_parameter_types(&plan)?;
                let result_schema = Some(super::naming::postgres_names(
                    ast,
                    planner.analyzed_schema(&plan),
                ));
                Ok(PreparedStatement {
                    statement,
                    fast_path: super::point_query::PointQuery::recognize(&plan).map(FastPath::Read),
                    plan: Some(plan),
                    param_types,
                    result_schema,
                })
            }
            // The cursor's query is planned again when DECLARE runs; here it types the parameters.
            Statement::DeclareCursor(declared) => {
                let query = Statement::Query(declared.query.clone());
                let param_types = Box::pin(self.plan_statement(query)).await?.param_types;
                Ok(PreparedStatement {
                    statement,
                    plan: None,
                    fast_path: None,
                    param_types,
                    result_schema: None,
                })
            }
            // As PostgreSQL describes it: the cursor's columns if it is open by now.
            Statement::FetchCursor {
                name,
                move_only: false,
                ..
            } => Ok(PreparedStatement {
                result_schema: self.cursor_schema(name),
                statement,
                plan: None,
                fast_path: None,
                param_types: Vec::new(),
            }),
            // As PostgreSQL describes it: the prepared statement's result columns.
            Statement::Execute { name, .. } => Ok(PreparedStatement {
                result_schema: self.prepared_named(name)?.prepared.result_schema.clone(),
                statement,
                plan: None,
                fast_path: None,
                param_types: Vec::new(),
            }),
            Statement::Show { name } => Ok(PreparedStatement {
                result_schema: Some(super::settings::show_schema(name)),
                statement,
                plan: None,
                fast_path: None,
                param_types: Vec::new(),
            }),
            Statement::Insert(ast) | Statement::Update(ast) | Statement::Delete(ast) => {
                let result_schema = self.returning_schema(ast).await?;
                let target = self.dml_table(ast)?;
                let mut param_types = match &target {
                    Some((record, _, _)) => super::params::parameter_types(ast, record),
                    None => Vec::new(),
                };
                self.type_from_context(ast, &mut param_types).await;
                let fast_path = target.and_then(|(record, alias, _)| match ast.as_ref() {
                    ast::Statement::Insert(_) => {
                        super::dml::PointInsert::recognize(ast, &record).map(FastPath::Insert)
                    }
                    _ => {
                        super::dml::PointWrite::recognize(ast, &record, &alias).map(FastPath::Write)
                    }
                });
                Ok(PreparedStatement {
                    statement,
                    plan: None,
                    fast_path,
                    param_types,
                    result_schema,
                })
            }
            Statement::FlushTable { .. }
            | Statement::BackupDatabase { .. }
            | Statement::RestoreDatabase { .. }
            | Statement::VerifyBackup { .. } => Ok(PreparedStatement {
                result_schema: Some(super::maintenance::job_started_schema()),
                statement,
                plan: None,
                fast_path: None,
                param_types: Vec::new(),
            }),
            Statement::ShowBackup { .. } => Ok(PreparedStatement {
                result_schema: Some(super::maintenance::show_backup_schema()),
                statement,
                plan: None,
                fast_path: None,
                param_types: Vec::new(),
            }),
            Statement::ClusterSnapshot => Ok(PreparedStatement {
                result_schema: Some(match self.engine.cluster() {
                    Some(_) => super::cluster_nodes::snapshot_schema(),
                    None => super::maintenance::cluster_snapshot_schema(),
                }),
                statement,
                plan: None,
                fast_path: None,
                param_types: Vec::new(),
            }),
            other if super::ddl::listing_schema(other).is_some() => Ok(PreparedStatement {
                result_schema: super::ddl::listing_schema(other),
                statement,
                plan: None,
                fast_path: None,
                param_types: Vec::new(),
            }),
            _ => Ok(PreparedStatement {
                statement,
                plan: None,
                fast_path: None,
                param_types: Vec::new(),
                result_schema: None,
            }),
        }
    }
}

impl Session {
    /// Types a DML statement's placeholders that no column pins from the expressions around
    /// them, by planning `params::typing_probe`'s query. A probe that does not plan leaves
    /// them untyped; the statement itself reports what is wrong when it runs.
    async fn type_from_context(
        &self,
        statement: &ast::Statement,
        types: &mut Vec<Option<DataType>>,
    ) {
        let Some(probe) = super::params::typing_probe(statement) else {
            return;
        };
        let Ok(Some(probe)) = sql::parse(&probe).map(|mut s| s.pop()) else {
            return;
        };
        let Statement::Query(probe) = probe else {
            return;
        };
        let Ok(planner) = StatementPlanner::new(self, &probe).await else {
            return;
        };
        let Ok(found) = planner
            .statement(&probe)
            .map_err(|_| ())
            .and_then(|plan| ordered_parameter_types(&plan).map_err(|_| ()))
        else {
            return;
        };
        if types.len() < found.len() {
            types.resize(found.len(), None);
        }
        for (slot, inferred) in types.iter_mut().zip(found) {
            if slot.is_none() {
                *slot = inferred;
            }
        }
    }
}

/// `$1..$n` in order; a gap (only `$2` used) still counts `$1`, as PostgreSQL does.
fn ordered_parameter_types(plan: &LogicalPlan) -> ExecResult<Vec<Option<DataType>>> {
    let found = plan.get_parameter_types()?;
    let mut types = Vec::new();
    for (name, data_type) in found {
        let index: usize = name
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                ExecError::Sql(sql::SqlError::Syntax(format!(
                    "parameter {name} is not of the form $1, $2, ..."
                )))
            })?;
        if types.len() < index {
            types.resize(index, None);
        }
        types[index - 1] = data_type;
    }
    // DataFusion leaves a LIMIT or OFFSET placeholder untyped; it counts rows, as PostgreSQL's
    // bigint does (Knex sends `LIMIT $2`).
    plan.apply(|node| {
        if let LogicalPlan::Limit(limit) = node {
            for count in [&limit.skip, &limit.fetch].into_iter().flatten() {
                if let datafusion::logical_expr::Expr::Placeholder(placeholder) = count.as_ref()
                    && let Some(index) = placeholder
                        .id
                        .strip_prefix('$')
                        .and_then(|n| n.parse::<usize>().ok())
                    && let Some(slot) = types.get_mut(index.wrapping_sub(1))
                    && slot.is_none()
                {
                    *slot = Some(DataType::Int64);
                }
            }
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    type_function_arguments(plan, &mut types)?;
    Ok(types)
}

/// Types an untyped placeholder passed to a function as PostgreSQL resolves an `unknown`
/// argument: text when the function takes a string there, otherwise the preferred type of
/// the category it takes (double precision for numbers, `abs($1)`), then the others.
fn type_function_arguments(plan: &LogicalPlan, types: &mut [Option<DataType>]) -> ExecResult<()> {
    use datafusion::arrow::datatypes::{Field, TimeUnit};
    use datafusion::logical_expr::expr::ScalarFunction;
    use datafusion::logical_expr::{Expr, ExprSchemable};
    const CANDIDATES: [DataType; 5] = [
        DataType::Utf8,
        DataType::Float64,
        DataType::Boolean,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Int64,
    ];
    // When no single argument's type fits alone: the narrower integer before the wider one.
    const ALIKE_CANDIDATES: [DataType; 6] = [
        DataType::Utf8,
        DataType::Float64,
        DataType::Boolean,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Int32,
        DataType::Int64,
    ];
    let untyped = |expr: &Expr| match expr {
        Expr::Placeholder(p) if p.field.is_none() => {
            p.id.strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
        }
        _ => None,
    };
    plan.apply(|node| {
        let inputs = node.inputs();
        let schema = match inputs.as_slice() {
            [input] => input.schema(),
            _ => node.schema(),
        };
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                let Expr::ScalarFunction(ScalarFunction { func, args }) = e else {
                    return Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue);
                };
                let Some((position, index)) = args
                    .iter()
                    .enumerate()
                    .find_map(|(i, a)| untyped(a).map(|n| (i, n)))
                else {
                    return Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue);
                };
                if types.get(index - 1).is_some_and(|t| t.is_none()) {
                    let mut fields = Vec::with_capacity(args.len());
                    for arg in args {
                        let data_type = match untyped(arg) {
                            Some(_) => DataType::Utf8,
                            None => match arg.get_type(schema) {
                                Ok(t) => t,
                                Err(_) => {
                                    return Ok(
                                        datafusion::common::tree_node::TreeNodeRecursion::Continue,
                                    );
                                }
                            },
                        };
                        fields.push(Arc::new(Field::new("a", data_type, true)));
                    }
                    let accepts = |fields: &[Arc<Field>]| {
                        datafusion::logical_expr::type_coercion::functions::fields_with_udf(
                            fields,
                            func.as_ref(),
                        )
                        .is_ok()
                    };
                    let accepted = CANDIDATES.into_iter().find(|candidate| {
                        fields[position] = Arc::new(Field::new("a", candidate.clone(), true));
                        accepts(&fields)
                    });
                    if accepted.is_some() {
                        types[index - 1] = accepted;
                        return Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue);
                    }
                    // A function taking several arguments of one type that is not text
                    // (`pg_advisory_lock($1, $2)`: integer) takes them all as that type.
                    let alike = ALIKE_CANDIDATES.into_iter().find(|candidate| {
                        for (arg, field) in args.iter().zip(fields.iter_mut()) {
                            if untyped(arg).is_some() {
                                *field = Arc::new(Field::new("a", candidate.clone(), true));
                            }
                        }
                        accepts(&fields)
                    });
                    for index in args.iter().filter_map(untyped) {
                        if let Some(slot @ None) = types.get_mut(index - 1) {
                            *slot = alike.clone();
                        }
                    }
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(())
}
