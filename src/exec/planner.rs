//! Turns a statement's SQL into DataFusion logical plans over the session's own state: whole
//! queries, and the pieces of a DML statement (its source query, SET values, WHERE, RETURNING,
//! column defaults).
//!
//! Names are resolved here, before planning, so that a missing relation or function becomes a
//! typed error rather than DataFusion's planning text. Rows the statement holds itself, such as an upsert's proposed rows or the rows RETURNING
//! reads, are scanned as in-memory relations that exist only inside the plan: nothing is
//! registered in a catalog, so no other session (and no catalog query) can ever see them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, FieldRef, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::catalog::cte_worktable::CteWorkTable;
use datafusion::common::{DFSchema, ResolvedTableReference, TableReference, config::ConfigOptions};
use datafusion::datasource::ViewTable;
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::planner::{ContextProvider, ExprPlanner};
use datafusion::logical_expr::planner::{RelationPlanner, TypePlanner};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{
    AggregateUDF, Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, TableSource, WindowUDF,
};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::planner::{ParserOptions, PlannerContext, SqlToRel};
use datafusion::sql::sqlparser::ast;

use super::view_table::StoredView;
use super::{ExecError, ExecResult, Session};
use crate::storage::ViewRecord;

/// Plans one statement's expressions and queries; built once per statement.
pub(in crate::exec) struct StatementPlanner {
    state: SessionState,
    /// Every table the statement names, resolved when the statement starts.
    tables: HashMap<ResolvedTableReference, Arc<dyn TableSource>>,
    /// The unqualified names among `tables` that were found in `pg_catalog`.
    found_in_catalog: HashSet<ResolvedTableReference>,
    type_planner: Option<Arc<dyn TypePlanner>>,
    /// Where plans run (see `exec::compute`).
    compute: Option<tokio::runtime::Handle>,
    /// The first function name planning asked for that no function registry knows: when
    /// planning then fails, this is why.
    unknown_function: OnceLock<String>,
}

impl StatementPlanner {
    /// Resolves the tables `statement` refers to (subqueries included) in the session's catalog.
    pub async fn new(session: &Session, statement: &ast::Statement) -> ExecResult<Self> {
        Self::inside_views(session, statement, 0).await
    }

    /// A planner for `statement` read through `depth` views: each view it names is planned
    /// (one level deeper) and inlined.
    async fn inside_views(
        session: &Session,
        statement: &ast::Statement,
        depth: usize,
    ) -> ExecResult<Self> {
        let state = session.ctx.state();
        let normalize = state.config_options().sql_parser.enable_ident_normalization;
        let (references, _) = datafusion::sql::resolve::resolve_table_references(
            &DFStatement::Statement(Box::new(statement.clone())),
            normalize,
        )?;
        let mut planner = StatementPlanner {
            state,
            tables: HashMap::with_capacity(references.len()),
            found_in_catalog: HashSet::new(),
            type_planner: session.type_planner.clone(),
            compute: session.engine.compute.clone(),
            unknown_function: OnceLock::new(),
        };
        for reference in references {
            let resolved = planner.resolve(reference.clone());
            if planner.tables.contains_key(&resolved) {
                continue;
            }
            let replaced = super::information_schema::replacement(&resolved);
            let found = match block_relation(session, &resolved)? {
                _ if replaced.is_some() => replaced,
                Some(BlockRelation::Table(table)) => Some(table),
                Some(BlockRelation::View(view)) => {
                    Some(expand_view(session, &view, depth + 1).await?)
                }
                Some(BlockRelation::Absent) => None,
                None => match planner.state.schema_for_ref(resolved.clone()) {
                    Ok(schema) => match schema.table(&resolved.table).await? {
                        Some(table) => match (table.as_ref() as &dyn std::any::Any)
                            .downcast_ref::<StoredView>()
                        {
                            Some(view) => {
                                Some(expand_view(session, view.record(), depth + 1).await?)
                            }
                            None => Some(table),
                        },
                        None => None,
                    },
                    Err(_) => None,
                },
            };
            if let Some(table) = found {
                planner.tables.insert(resolved, provider_as_source(table));
            } else if let Some(table) = planner.catalog_relation(&reference).await? {
                planner.found_in_catalog.insert(resolved.clone());
                planner.tables.insert(resolved, provider_as_source(table));
            } else if !planner
                .state
                .table_functions()
                .contains_key(resolved.table.as_ref())
            {
                // `FROM f(...)` is reported as a relation named `f` too; planning resolves it
                // as a table function.
                return Err(undefined_relation(&reference));
            }
        }
        Ok(planner)
    }

    /// An unqualified name that no namespace of the path holds, found in `pg_catalog`, which
    /// PostgreSQL searches before the path (`SELECT * FROM pg_sequences`).
    async fn catalog_relation(
        &self,
        reference: &TableReference,
    ) -> ExecResult<Option<Arc<dyn TableProvider>>> {
        let TableReference::Bare { table } = reference else {
            return Ok(None);
        };
        let in_catalog = TableReference::partial("pg_catalog", table.as_ref());
        let resolved = self.resolve(in_catalog);
        match self.state.schema_for_ref(resolved.clone()) {
            Ok(schema) => Ok(schema.table(&resolved.table).await?),
            Err(_) => Ok(None),
        }
    }

    /// A planner for expressions that name no table (column defaults).
    pub fn without_tables(session: &Session) -> Self {
        StatementPlanner {
            state: session.ctx.state(),
            tables: HashMap::new(),
            found_in_catalog: HashSet::new(),
            type_planner: session.type_planner.clone(),
            compute: session.engine.compute.clone(),
            unknown_function: OnceLock::new(),
        }
    }

    /// The namespace an unqualified relation name of the statement resolved to, if it named
    /// a relation (not a CTE or a table function).
    pub fn namespace_of(&self, name: &str) -> Option<String> {
        let resolved = self.resolve(TableReference::bare(name));
        if self.found_in_catalog.contains(&resolved) {
            Some("pg_catalog".to_owned())
        } else {
            self.tables
                .contains_key(&resolved)
                .then(|| resolved.schema.to_string())
        }
    }

    /// Every relation the statement names, as (namespace, name).
    pub fn relations(&self) -> Vec<(String, String)> {
        self.tables
            .keys()
            .filter(|r| !self.found_in_catalog.contains(*r))
            .map(|r| (r.schema.to_string(), r.table.to_string()))
            .collect()
    }

    /// The columns `plan` reads of each table it scans, once optimized (views inlined,
    /// projections pushed into the scans), as (namespace, table) to column names.
    pub fn scanned_columns(
        &self,
        plan: &LogicalPlan,
    ) -> ExecResult<HashMap<(String, String), Vec<String>>> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        let optimized = self.state.optimize(plan)?;
        let mut scanned: HashMap<(String, String), Vec<String>> = HashMap::new();
        optimized.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let table = self.resolve(scan.table_name.clone());
                let columns = scanned
                    .entry((table.schema.to_string(), table.table.to_string()))
                    .or_default();
                for field in scan.projected_schema.fields() {
                    if !columns.contains(field.name()) {
                        columns.push(field.name().clone());
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(scanned)
    }

    fn resolve(&self, reference: TableReference) -> ResolvedTableReference {
        let catalog = &self.state.config_options().catalog;
        reference.resolve(&catalog.default_catalog, &catalog.default_schema)
    }

    pub(super) fn is_known_function(&self, name: &str) -> bool {
        self.state.scalar_functions().contains_key(name)
            || self.state.aggregate_functions().contains_key(name)
            || self.state.window_functions().contains_key(name)
            || self.state.higher_order_functions().contains_key(name)
            || self.state.table_functions().contains_key(name)
    }

    /// DataFusion reports an unknown function as a planning error like any other; the name
    /// planning could not find says which it was.
    fn planning_error(&self, err: DataFusionError) -> ExecError {
        match (err.find_root(), self.unknown_function.get()) {
            (DataFusionError::Plan(_), Some(name)) => undefined_function(name),
            _ => err.into(),
        }
    }

    /// A planning error, or when DataFusion refused some argument types, which call or
    /// operator it was, as PostgreSQL reports it.
    fn planning_error_diagnosed(
        &self,
        err: DataFusionError,
        statement: ast::Statement,
    ) -> ExecError {
        let refused_types = matches!(
            err.find_root(),
            DataFusionError::Plan(_) | DataFusionError::Internal(_)
        );
        if refused_types && let Some(mismatch) = super::type_mismatch::diagnose(self, statement) {
            return mismatch;
        }
        self.planning_error(err)
    }

    fn sql(&self) -> SqlToRel<'_, Self> {
        SqlToRel::new_with_options(self, self.parser_options())
    }

    pub(super) fn parser_options(&self) -> ParserOptions {
        let options = &self.state.config_options().sql_parser;
        ParserOptions {
            parse_float_as_decimal: options.parse_float_as_decimal,
            enable_ident_normalization: options.enable_ident_normalization,
            support_varchar_with_length: options.support_varchar_with_length,
            enable_options_value_normalization: options.enable_options_value_normalization,
            collect_spans: options.collect_spans,
            map_string_types_to_utf8view: options.map_string_types_to_utf8view,
            default_null_ordering: options.default_null_ordering.as_str().into(),
        }
    }

    /// Plans `expr` over the columns of `schema`; subqueries may refer to them.
    pub fn expr(&self, expr: &ast::Expr, schema: &DFSchema) -> ExecResult<Expr> {
        let mut expr = expr.clone();
        super::json::rewrite_casts_in(&mut expr);
        self.sql()
            .sql_to_expr(expr, schema, &mut PlannerContext::new())
            .map_err(|e| self.planning_error(e))
    }

    /// Plans a query (a SELECT, VALUES, a set operation).
    pub fn query(&self, query: &ast::Query) -> ExecResult<LogicalPlan> {
        let statement = || ast::Statement::Query(Box::new(query.clone()));
        self.plan(statement(), statement)
    }

    /// Plans a whole statement DataFusion can plan (a query, EXPLAIN).
    pub fn statement(&self, statement: &ast::Statement) -> ExecResult<LogicalPlan> {
        self.plan(statement.clone(), || statement.clone())
    }

    /// Plans `statement`; `again` gives another copy of it, asked for only when planning fails
    /// and the failure is diagnosed by planning it again.
    fn plan(
        &self,
        mut statement: ast::Statement,
        again: impl FnOnce() -> ast::Statement,
    ) -> ExecResult<LogicalPlan> {
        super::json::rewrite_casts(&mut statement);
        // Typing literals as PostgreSQL does can be what makes a call's arguments fit no
        // signature (`substr(1, 2)` plans with bigints and fails once they are integers).
        let planned = self
            .sql()
            .sql_statement_to_plan(statement)
            .and_then(super::integer_literals::type_as_postgres);
        planned.map_err(|e| {
            let mut diagnosable = again();
            super::json::rewrite_casts(&mut diagnosable);
            self.planning_error_diagnosed(e, diagnosable)
        })
    }

    /// The columns `plan` returns once analyzed, the types its rows are sent as: type coercion
    /// settles what planning leaves open (a CASE whose branches differ is typed by its first
    /// branch until then). The planned columns when analysis fails: running it will fail too.
    pub fn analyzed_schema(&self, plan: &LogicalPlan) -> SchemaRef {
        self.state
            .analyzer()
            .execute_and_check(plan.clone(), self.state.config_options(), |_, _| {})
            .map_or_else(
                |_| Arc::new(plan.schema().as_arrow().clone()),
                |analyzed| Arc::new(analyzed.schema().as_arrow().clone()),
            )
    }

    /// Runs `plan` to completion.
    pub async fn collect(&self, plan: LogicalPlan) -> ExecResult<Vec<RecordBatch>> {
        let frame = DataFrame::new(self.state.clone(), plan);
        Ok(super::compute::run_on(self.compute.as_ref(), frame.collect()).await?)
    }
}

/// A relation as a transaction block with DDL sees it.
enum BlockRelation {
    Table(Arc<dyn TableProvider>),
    View(ViewRecord),
    /// The namespace exists for the block and holds no such relation (it may have dropped it).
    Absent,
}

/// Inside a block that ran DDL, a relation of a namespace is read from the block's catalog
/// (the shared catalog holds committed relations only). `None`: look where everyone looks.
fn block_relation(
    session: &Session,
    reference: &ResolvedTableReference,
) -> ExecResult<Option<BlockRelation>> {
    if session.pending.catalog_changes().is_empty() {
        return Ok(None);
    }
    let catalog = session.catalog();
    let (namespace, name) = (reference.schema.as_ref(), reference.table.as_ref());
    if catalog.namespace(namespace)?.is_none() {
        // `pg_catalog`, `system`, `information_schema`: not the block's to change.
        return Ok(None);
    }
    if let Some(table) = catalog.table(namespace, name)? {
        return Ok(Some(BlockRelation::Table(super::catalog::table_provider(
            &session.engine.store,
            table,
        ))));
    }
    Ok(Some(match catalog.view_definition(namespace, name)? {
        Some(view) => BlockRelation::View(view),
        None => BlockRelation::Absent,
    }))
}

/// Views inside views deeper than this are taken for a cycle (two views redefined to read
/// each other).
const MAX_VIEW_DEPTH: usize = 32;

/// Planning that recurses (a view inside a view) and so must be boxed.
type BoxedPlanning<'a, T> = Pin<Box<dyn Future<Output = ExecResult<T>> + Send + 'a>>;

/// A view's query planned and wrapped as a relation DataFusion inlines into the plan that
/// reads it, its columns named and limited as the view defines them.
fn expand_view<'a>(
    session: &'a Session,
    view: &'a ViewRecord,
    depth: usize,
) -> BoxedPlanning<'a, Arc<dyn TableProvider>> {
    Box::pin(async move {
        if depth > MAX_VIEW_DEPTH {
            return Err(ExecError::InvalidObjectDefinition(format!(
                "infinite recursion detected in rules for relation \"{}\"",
                view.name
            )));
        }
        let query = crate::sql::parse_view_query(&view.query)?;
        let statement = ast::Statement::Query(Box::new(query.clone()));
        let planner = StatementPlanner::inside_views(session, &statement, depth).await?;
        let plan = with_view_columns(planner.query(&query)?, view)?;
        Ok(Arc::new(ViewTable::new(plan, Some(view.query.clone()))) as Arc<dyn TableProvider>)
    })
}

/// `plan` with the view's column names, and only its columns: a view keeps the columns it
/// had when created (a `*` does not grow with its table).
pub(in crate::exec) fn with_view_columns(
    plan: LogicalPlan,
    view: &ViewRecord,
) -> datafusion::error::Result<LogicalPlan> {
    let schema = plan.schema().clone();
    if schema.fields().len() < view.columns.len() {
        return datafusion::common::plan_err!(
            "view \"{}\" reads fewer columns than it defines",
            view.name
        );
    }
    let columns = view.columns.iter().enumerate().map(|(i, column)| {
        let (qualifier, field) = schema.qualified_field(i);
        Expr::Column(datafusion::common::Column::new(
            qualifier.cloned(),
            field.name(),
        ))
        .alias(&column.name)
    });
    LogicalPlanBuilder::from(plan).project(columns)?.build()
}

/// A statement's planner, built the first time part of the statement needs planning, so that
/// an INSERT of constants without RETURNING (what drivers send most) resolves no tables.
pub(in crate::exec) struct LazyPlanner<'s> {
    session: &'s Session,
    statement: &'s ast::Statement,
    planner: tokio::sync::OnceCell<StatementPlanner>,
}

impl<'s> LazyPlanner<'s> {
    pub fn new(session: &'s Session, statement: &'s ast::Statement) -> Self {
        LazyPlanner {
            session,
            statement,
            planner: tokio::sync::OnceCell::new(),
        }
    }

    pub async fn get(&self) -> ExecResult<&StatementPlanner> {
        self.planner
            .get_or_try_init(|| StatementPlanner::new(self.session, self.statement))
            .await
    }
}

/// A scan of `table` that the statement's expressions call `alias`.
pub(in crate::exec) fn scan(
    alias: &str,
    table: Arc<dyn TableProvider>,
) -> ExecResult<LogicalPlanBuilder> {
    Ok(LogicalPlanBuilder::scan(
        TableReference::bare(alias),
        provider_as_source(table),
        None,
    )?)
}

/// A scan of rows the statement holds in memory, called `alias` inside this plan only.
pub(in crate::exec) fn rows_relation(
    alias: &str,
    rows: RecordBatch,
) -> ExecResult<LogicalPlanBuilder> {
    let table = MemTable::try_new(rows.schema(), vec![vec![rows]])?;
    scan(alias, Arc::new(table))
}

/// PostgreSQL names the relation as the statement wrote it.
fn undefined_relation(reference: &TableReference) -> ExecError {
    let name = match reference.schema() {
        Some(schema) => format!("{schema}.{}", reference.table()),
        None => reference.table().to_owned(),
    };
    super::names::undefined_relation(name)
}

fn undefined_function(name: &str) -> ExecError {
    ExecError::UndefinedFunction(format!("function {name} does not exist"))
}

impl ContextProvider for StatementPlanner {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion::error::Result<Arc<dyn TableSource>> {
        let resolved = self.resolve(name.clone());
        self.tables
            .get(&resolved)
            .cloned()
            .ok_or_else(|| DataFusionError::External(Box::new(undefined_relation(&name))))
    }

    fn get_table_function_source(
        &self,
        name: &str,
        args: Vec<Expr>,
    ) -> datafusion::error::Result<Arc<dyn TableSource>> {
        let function = self
            .state
            .table_functions()
            .get(name)
            .ok_or_else(|| DataFusionError::External(Box::new(undefined_function(name))))?;
        // Arguments such as `generate_series(1, 2 + 1)` reach the function as constants.
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_config_options(Arc::clone(self.state.config_options()))
                .with_query_execution_start_time(
                    self.state.execution_props().query_execution_start_time,
                )
                .build(),
        );
        let empty = DFSchema::empty();
        let args = args
            .into_iter()
            .map(|arg| {
                simplifier
                    .coerce(arg, &empty)
                    .and_then(|e| simplifier.simplify(e))
            })
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let args = datafusion::catalog::TableFunctionArgs::new(&args, &self.state);
        Ok(provider_as_source(
            function.create_table_provider_with_args(args)?,
        ))
    }

    fn create_cte_work_table(
        &self,
        name: &str,
        schema: SchemaRef,
    ) -> datafusion::error::Result<Arc<dyn TableSource>> {
        Ok(provider_as_source(Arc::new(CteWorkTable::new(
            name, schema,
        ))))
    }

    fn get_relation_planners(&self) -> &[Arc<dyn RelationPlanner>] {
        self.state.relation_planners()
    }

    fn get_type_planner(&self) -> Option<Arc<dyn TypePlanner>> {
        self.type_planner.clone()
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        self.state.expr_planners()
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        let function = self.state.scalar_functions().get(name).cloned();
        if function.is_none() && !self.is_known_function(name) {
            // Only the first is kept: it is the one planning stopped at.
            let _ = self.unknown_function.set(name.to_owned());
        }
        function
    }

    fn get_higher_order_meta(
        &self,
        name: &str,
    ) -> Option<Arc<datafusion::logical_expr::HigherOrderUDF>> {
        self.state.higher_order_functions().get(name).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.state.aggregate_functions().get(name).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.state.window_functions().get(name).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn get_variable_field(&self, _variable_names: &[String]) -> Option<FieldRef> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        self.state.config_options()
    }

    fn udf_names(&self) -> Vec<String> {
        self.state.scalar_functions().keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.state
            .higher_order_functions()
            .keys()
            .cloned()
            .collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.state.aggregate_functions().keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.state.window_functions().keys().cloned().collect()
    }
}
