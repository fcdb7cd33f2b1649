//! A session: one authenticated user's state (settings, transaction block, cursors, advisory
//! locks) and each statement's life around its execution: the read fence, the role check,
//! `statement_timeout`, and the guard on its result stream. [`super::dispatch`] holds the
//! table from a statement to the function that runs it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use futures::StreamExt;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::planner::TypePlanner;

use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;

use super::activity::{Backend, BackendParts, CancelFlag, StatementActivity, Termination, Viewer};
use super::outcome::Outcome;
use super::prepare::PreparedStatement;
use super::settings::Settings;
use super::table::PendingWrites;
use super::transaction::{BlockState, SharedTransaction};
use super::{DATABASE_NAME, Engine, ExecError, ExecResult, functions};
use crate::model::Role;
use crate::sql::{self, Caller, Statement};

pub struct Session {
    pub(super) engine: Arc<Engine>,
    pub(super) caller: Caller,
    /// Shared with the session's `current_setting` function.
    pub(super) settings: Arc<Mutex<Settings>>,
    pub(super) transaction: SharedTransaction,
    /// The same writes by table and key, which this session's reads see.
    pub(super) pending: Arc<PendingWrites>,
    cancel: Arc<CancelFlag>,
    /// This session in the server's registry of backends, once its login completed.
    backend: Arc<OnceLock<Arc<Backend>>>,
    /// When the running statement must stop (`statement_timeout`); its result stream checks too.
    deadline: Mutex<Option<tokio::time::Instant>>,
    pub(super) ctx: SessionContext,
    /// pg_catalog's planner for PostgreSQL type names (`regtype`, ...); SessionState keeps it
    /// without a getter, and statement planning needs it.
    pub(super) type_planner: Option<Arc<dyn TypePlanner>>,
    /// This session's advisory locks; they end with it.
    pub(super) advisory_locks: Arc<super::advisory_locks::SessionLocks>,
    /// This session's SQL cursors (DECLARE ... CURSOR).
    pub(super) cursors: Mutex<super::cursors::Cursors>,
    /// The statements PREPARE made in this session.
    pub(super) sql_prepared: Mutex<super::sql_prepared::SqlPreparedStatements>,
    /// What currval and lastval answer, which DISCARD forgets.
    pub(super) sequence_memory: super::sequence_functions::SequenceMemory,
}

/// Shared by every session: the rule holds the checked operators' and text casts' function
/// definitions.
static POSTGRES_EXPRESSIONS: std::sync::LazyLock<Arc<super::plan_rewrite::PostgresExpressions>> =
    std::sync::LazyLock::new(Arc::default);

impl Session {
    /// A prepared query's plan with its parameters bound, started.
    pub(super) async fn execute_plan(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        params: &[ScalarValue],
    ) -> ExecResult<SendableRecordBatchStream> {
        let plan = if params.is_empty() {
            plan
        } else {
            plan.with_param_values(params.to_vec())?
        };
        let ctx = self.ctx.clone();
        let start = async move { ctx.execute_logical_plan(plan).await?.execute_stream().await };
        Ok(super::compute::stream_on(self.engine.compute.as_ref(), start).await?)
    }
}

impl Engine {
    /// Opens a session for an authenticated user. `startup` holds the parameters the client sent.
    pub fn open_session<'a>(
        self: &Arc<Self>,
        user_id: &str,
        role: Role,
        startup: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Session {
        let mut settings = Settings::new(user_id, role >= Role::Dba);
        for (name, value) in startup {
            settings.apply_startup(name, value);
        }
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(DATABASE_NAME, "public")
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        postgres_sql(&mut config);
        let pending = Arc::new(PendingWrites::default());
        let config = config
            .with_extension(pending.clone())
            .with_extension(Arc::new(Viewer {
                backends: self.backends.clone(),
                user: user_id.to_owned(),
                role,
            }));
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_catalog_list(self.catalogs.clone())
            .with_runtime_env(self.runtime.clone())
            .with_default_features()
            .with_query_planner(Arc::new(super::query_planner::PostgresQueryPlanner));
        // Before DataFusion's planners, whose `@>` is for arrays and whose `/` truncates
        // decimals.
        let planners = builder.expr_planners().get_or_insert_with(Vec::new);
        for (at, planner) in [
            super::unknown_operands::operator(),
            super::json::operators(),
            super::interval_arithmetic::operators(),
            super::array_overlap::operator(),
            super::numeric_division::operator(),
            super::bytea_substr::planner(),
        ]
        .into_iter()
        .enumerate()
        {
            planners.insert(at, planner);
        }
        // DataFusion's rules, with its type coercion reporting refused argument types as
        // PostgreSQL does.
        builder = builder.with_analyzer_rules(vec![
            Arc::new(datafusion::optimizer::analyzer::resolve_grouping_function::ResolveGroupingFunction::new()),
            Arc::new(super::type_mismatch::PostgresTypeCoercion::default()),
        ]);
        let state = builder.build();
        let ctx = SessionContext::new_with_state(state);
        ctx.add_analyzer_rule(POSTGRES_EXPRESSIONS.clone());
        // Last, so it sees subqueries as the checks after the analyzer will.
        ctx.add_analyzer_rule(Arc::new(super::subplan::DeferUnplannableSubqueries));
        if let Err(e) = super::pg_catalog::install(&ctx, self.store.clone()) {
            tracing::warn!("pg_catalog unavailable for this session: {e}");
        }
        let type_planner = SessionStateBuilder::new_from_existing(ctx.state())
            .type_planner()
            .clone();
        let settings = Arc::new(Mutex::new(settings));
        // After pg_catalog, whose session functions answer for a fixed user.
        functions::register(&ctx, user_id, settings.clone());
        let cancel = Arc::new(CancelFlag::default());
        let backend = Arc::new(OnceLock::new());
        super::activity::register(
            &ctx,
            self.backends.clone(),
            (user_id, role),
            backend.clone(),
        );
        super::json::register(&ctx);
        super::interval_arithmetic::register(&ctx);
        super::age::register(&ctx);
        ctx.register_udf(super::width_bucket::function());
        ctx.register_udf(super::lateral_key::function());
        super::sleep::register(&ctx);
        let advisory_locks = self.advisory_locks.open_session();
        super::advisory_locks::register(&ctx, &advisory_locks);
        super::search_path::register(&ctx, self.store.clone(), settings.clone());
        let sequence_memory = super::sequence_functions::register(
            &ctx,
            self.store.clone(),
            settings.clone(),
            pending.clone(),
        );
        Session {
            engine: self.clone(),
            caller: Caller {
                user_id: user_id.to_owned(),
                role,
            },
            settings,
            transaction: SharedTransaction::default(),
            pending,
            cancel,
            backend,
            deadline: Mutex::default(),
            ctx,
            type_planner,
            advisory_locks,
            cursors: Mutex::default(),
            sql_prepared: Mutex::default(),
            sequence_memory,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(backend) = self.backend.get() {
            self.engine.backends.leave(backend.pid());
        }
    }
}

impl Session {
    pub fn user_id(&self) -> &str {
        &self.caller.user_id
    }

    /// Cancels the statement running now, if any (a protocol-level cancel request).
    pub fn cancel_running_statement(&self) {
        self.cancel.raise();
    }

    /// Enters this session into the server's registry of backends (`pg_stat_activity`) as
    /// process `pid`, connected from `client`; `termination` is what `pg_terminate_backend`
    /// raises for its connection.
    pub fn enter_backends(
        &self,
        pid: i32,
        client: Option<std::net::SocketAddr>,
        termination: Arc<Termination>,
    ) {
        let parts = BackendParts {
            user: self.caller.user_id.clone(),
            role: self.caller.role,
            settings: self.settings.clone(),
            transaction: self.transaction.clone(),
            cancel: self.cancel.clone(),
        };
        let backend = Backend::enter(&self.engine.backends, pid, client, termination, parts);
        if let Err(backend) = self.backend.set(backend) {
            self.engine.backends.leave(backend.pid());
        }
    }

    /// Shows this session running `query` until the returned guard is dropped.
    pub fn statement_started(&self, query: &Arc<str>) -> StatementActivity {
        match self.backend.get() {
            Some(backend) => backend.statement_started(query),
            None => StatementActivity::untracked(),
        }
    }

    pub fn setting(&self, name: &str) -> ExecResult<String> {
        self.settings.lock().expect("settings lock").get(name)
    }

    /// Runs a statement from the simple protocol.
    pub async fn execute(&self, statement: Statement) -> ExecResult<Outcome> {
        self.read_fence(&statement)
            .await
            .map_err(|e| self.failed_before_running(e))?;
        let prepared = self
            .plan_statement(statement)
            .await
            .map_err(|e| self.failed_before_running(e))?;
        self.execute_fenced(&prepared, Vec::new()).await
    }

    /// Runs a prepared statement with bound parameter values.
    pub async fn execute_prepared(
        &self,
        prepared: &PreparedStatement,
        params: Vec<ScalarValue>,
    ) -> ExecResult<Outcome> {
        self.read_fence(&prepared.statement)
            .await
            .map_err(|e| self.failed_before_running(e))?;
        self.execute_fenced(prepared, params).await
    }

    /// In cluster mode, waits until this node has applied every write acknowledged anywhere
    /// before now, unless `[cluster] follower_reads` allows reading this node's state as it is.
    /// Statements that read no data (transaction control, SET, SHOW) do not wait.
    pub(super) async fn read_fence(&self, statement: &Statement) -> ExecResult<()> {
        let reads_nothing = matches!(
            statement,
            Statement::Begin
                | Statement::Commit
                | Statement::Rollback
                | Statement::Savepoint { .. }
                | Statement::ReleaseSavepoint { .. }
                | Statement::RollbackToSavepoint { .. }
                | Statement::Set { .. }
                | Statement::Show { .. }
                | Statement::Deallocate { .. }
                | Statement::Discard(_)
                | Statement::SetConstraints { .. }
                // A cursor's rows were fenced when it was declared.
                | Statement::FetchCursor { .. }
                | Statement::CloseCursor { .. }
        );
        if reads_nothing {
            return Ok(());
        }
        self.engine.read_barrier().await
    }

    async fn execute_fenced(
        &self,
        prepared: &PreparedStatement,
        params: Vec<ScalarValue>,
    ) -> ExecResult<Outcome> {
        // A cancel request applies to the statement running when it arrives, not later ones.
        self.cancel.cancelled.store(false, Ordering::SeqCst);
        let state = self.transaction().state;
        // EXECUTE runs the statement PREPARE made as if it had been sent itself, after its
        // values are evaluated (under the same cancel, and statement_timeout).
        if let Statement::Execute {
            name,
            params: values,
        } = &prepared.statement
            && state != BlockState::Failed
        {
            return match self.bind_execute(name, values).await {
                Ok((statement, params)) => self.execute_in_block(&statement.prepared, params).await,
                Err(e) => {
                    if state == BlockState::InBlock {
                        super::transaction::mark_failed(&self.transaction);
                        return Err(e);
                    }
                    self.end_statement_transaction(prepared, Err(e))
                }
            };
        }
        self.execute_in_block(prepared, params).await
    }

    /// Runs a statement as the transaction block's state allows, and ends the statement's own
    /// transaction outside a block.
    async fn execute_in_block(
        &self,
        prepared: &PreparedStatement,
        params: Vec<ScalarValue>,
    ) -> ExecResult<Outcome> {
        let state = self.transaction().state;
        let result = match (&prepared.statement, state) {
            (Statement::Rollback, _) => self.end_transaction(Outcome::Rollback),
            (Statement::Commit, BlockState::Failed) => self.end_transaction(Outcome::Rollback),
            (Statement::Commit, BlockState::InBlock) => self.commit(),
            (Statement::RollbackToSavepoint { name }, _) => self.rollback_to_savepoint(name),
            (_, BlockState::Failed) => Err(ExecError::InFailedTransaction),
            (
                Statement::Query(_) | Statement::DeclareCursor(_) | Statement::FetchCursor { .. },
                _,
            ) => self.run_with_timeout(prepared, params).await,
            _ => self.run(prepared, params).await,
        };
        if result.is_err() && state == BlockState::InBlock {
            super::transaction::mark_failed(&self.transaction);
        }
        if state == BlockState::Idle && self.transaction().state == BlockState::Idle {
            return self.end_statement_transaction(prepared, result);
        }
        result
    }

    /// Outside a transaction block a statement is its own transaction: the advisory locks it
    /// took for its transaction end with it, for a query once its rows have been read.
    fn end_statement_transaction(
        &self,
        prepared: &PreparedStatement,
        result: ExecResult<Outcome>,
    ) -> ExecResult<Outcome> {
        let locks = &self.advisory_locks;
        match result {
            // A fast path reads rows without calling functions.
            Ok(Outcome::Rows { schema, stream }) if prepared.fast_path.is_none() => {
                Ok(Outcome::Rows {
                    stream: super::advisory_locks::release_after(schema.clone(), stream, locks),
                    schema,
                })
            }
            Ok(Outcome::CopyOut {
                options,
                schema,
                stream,
            }) => Ok(Outcome::CopyOut {
                options,
                stream: super::advisory_locks::release_after(schema.clone(), stream, locks),
                schema,
            }),
            other => {
                locks.release_transaction_locks();
                other
            }
        }
    }

    /// Runs a query under `statement_timeout`, which also bounds the reading of its rows. Writes
    /// are not cut short: a timeout must never leave the client unsure whether one committed.
    pub(super) async fn run_with_timeout(
        &self,
        prepared: &PreparedStatement,
        params: Vec<ScalarValue>,
    ) -> ExecResult<Outcome> {
        let timeout = self
            .settings
            .lock()
            .expect("settings lock")
            .timeout("statement_timeout");
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        *self.deadline.lock().expect("deadline lock") = deadline;
        let outcome = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, self.run(prepared, params))
                .await
                .unwrap_or(Err(ExecError::StatementTimeout)),
            None => self.run(prepared, params).await,
        };
        // A query answered without a result stream (the point-read path) leaves it unused;
        // no later statement's stream may inherit it.
        self.deadline.lock().expect("deadline lock").take();
        outcome
    }

    /// How long this session may sit idle inside a transaction block before it is ended
    /// (`idle_in_transaction_session_timeout`); `None` outside a block or when it is off.
    pub fn idle_in_transaction_timeout(&self) -> Option<std::time::Duration> {
        if self.transaction().state == BlockState::Idle {
            return None;
        }
        self.settings
            .lock()
            .expect("settings lock")
            .timeout("idle_in_transaction_session_timeout")
    }

    /// Results are computed while the client reads them, so the stream itself must stop on a
    /// cancel request or at the statement's deadline, and mark an open transaction block failed
    /// when execution errors.
    /// The running statement's deadline no longer applies to the result stream made next: a
    /// cursor's rows are read by later FETCHes, each under its own deadline.
    pub(super) fn release_statement_deadline(&self) {
        self.deadline.lock().expect("deadline lock").take();
    }

    pub(super) fn guard(
        &self,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    ) -> SendableRecordBatchStream {
        let cancel = self.cancel.clone();
        let transaction = self.transaction.clone();
        let deadline = self.deadline.lock().expect("deadline lock").take();
        let guarded = futures::stream::unfold(Some(stream), move |stream| {
            let cancel = cancel.clone();
            let transaction = transaction.clone();
            async move {
                let mut stream = stream?;
                let timeout = async {
                    match deadline {
                        Some(deadline) => tokio::time::sleep_until(deadline).await,
                        None => std::future::pending().await,
                    }
                };
                let item = tokio::select! {
                    biased;
                    () = cancel.cancelled() => Some(Err(DataFusionError::External(Box::new(
                        ExecError::QueryCanceled,
                    )))),
                    () = timeout => Some(Err(DataFusionError::External(Box::new(
                        ExecError::StatementTimeout,
                    )))),
                    item = stream.next() => item,
                };
                match item {
                    Some(Err(e)) => {
                        super::transaction::mark_failed(&transaction);
                        Some((Err(e), None))
                    }
                    Some(Ok(batch)) => Some((Ok(batch), Some(stream))),
                    None => None,
                }
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, guarded))
    }

    pub(super) fn authorize(&self, statement: &Statement) -> ExecResult<()> {
        // The caller's role is re-read so that ALTER USER ... ROLE and DROP USER take effect
        // at the session's next statement.
        let role = self
            .engine
            .role_of(&self.caller.user_id)
            .ok_or_else(|| ExecError::RoleDropped(self.caller.user_id.clone()))?;
        let caller = Caller {
            user_id: self.caller.user_id.clone(),
            role,
        };
        sql::authorize(statement, &caller, |user| self.engine.role_of(user))?;
        Ok(())
    }
}

/// Options every statement is planned with, the checks of CHECK constraints included: now()
/// and friends are timestamptz, and a literal with a decimal point or an exponent is an exact
/// `numeric` (DataFusion's default makes `0.1 + 0.2` a float8 `0.30000000000000004`).
pub(super) fn postgres_sql(config: &mut SessionConfig) {
    let options = config.options_mut();
    options.execution.time_zone = Some("UTC".into());
    options.sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    options.sql_parser.parse_float_as_decimal = true;
}
