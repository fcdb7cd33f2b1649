//! A session: one authenticated user's statements, settings and transaction state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::Notify;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;

use super::settings::Settings;
use super::{DATABASE_NAME, Engine, ExecError, ExecResult, functions};
use crate::sql::{self, Caller, SetValue, Statement};
use crate::storage::Role;

/// What running a statement produced.
pub enum Outcome {
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    /// A statement without a result set, with the command tag to report (`SET`, `CREATE USER`).
    Done {
        tag: &'static str,
    },
    Begin,
    Commit,
    /// `ROLLBACK`, or `COMMIT` of a failed transaction (PostgreSQL reports that as ROLLBACK).
    Rollback,
}

/// A statement prepared through the extended protocol, with what Describe must report.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    pub statement: Statement,
    plan: Option<LogicalPlan>,
    /// Parameter types as far as planning could infer them; `None` where it could not.
    pub param_types: Vec<Option<DataType>>,
    /// `None` for statements that return no rows.
    pub result_schema: Option<SchemaRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransactionState {
    Idle,
    InBlock,
    Failed,
}

pub struct Session {
    engine: Arc<Engine>,
    caller: Caller,
    settings: Mutex<Settings>,
    transaction: Arc<Mutex<TransactionState>>,
    cancel: Arc<CancelFlag>,
    ctx: SessionContext,
}

/// Set by a cancel request; the running statement's result stream stops at its next batch.
#[derive(Default)]
struct CancelFlag {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelFlag {
    async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.cancelled.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
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
        // now() and friends are timestamptz, as in PostgreSQL.
        config.options_mut().execution.time_zone = Some("UTC".into());
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_catalog_list(self.catalogs.clone())
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        functions::register(&ctx, user_id);
        Session {
            engine: self.clone(),
            caller: Caller {
                user_id: user_id.to_owned(),
                role,
            },
            settings: Mutex::new(settings),
            transaction: Arc::new(Mutex::new(TransactionState::Idle)),
            cancel: Arc::default(),
            ctx,
        }
    }
}

impl Session {
    pub fn user_id(&self) -> &str {
        &self.caller.user_id
    }

    /// Cancels the statement running now, if any (a protocol-level cancel request).
    pub fn cancel_running_statement(&self) {
        self.cancel.cancelled.store(true, Ordering::SeqCst);
        self.cancel.notify.notify_waiters();
    }

    pub fn setting(&self, name: &str) -> ExecResult<String> {
        self.settings.lock().expect("settings lock").get(name)
    }

    /// Runs a statement from the simple protocol.
    pub async fn execute(&self, statement: Statement) -> ExecResult<Outcome> {
        let prepared = self.prepare(statement).await?;
        self.execute_prepared(&prepared, Vec::new()).await
    }

    /// Plans a statement for the extended protocol without running it.
    pub async fn prepare(&self, statement: Statement) -> ExecResult<PreparedStatement> {
        self.authorize(&statement)?;
        match &statement {
            Statement::Query(ast) => {
                let plan = self
                    .ctx
                    .state()
                    .statement_to_plan(datafusion::sql::parser::Statement::Statement(ast.clone()))
                    .await?;
                SQLOptions::new()
                    .with_allow_ddl(false)
                    .with_allow_dml(false)
                    .with_allow_statements(false)
                    .verify_plan(&plan)?;
                let param_types = ordered_parameter_types(&plan)?;
                let result_schema = Some(Arc::new(plan.schema().as_arrow().clone()));
                Ok(PreparedStatement {
                    statement,
                    plan: Some(plan),
                    param_types,
                    result_schema,
                })
            }
            Statement::Show { name } => Ok(PreparedStatement {
                result_schema: Some(show_schema(name)),
                statement,
                plan: None,
                param_types: Vec::new(),
            }),
            _ => Ok(PreparedStatement {
                statement,
                plan: None,
                param_types: Vec::new(),
                result_schema: None,
            }),
        }
    }

    /// Runs a prepared statement with bound parameter values.
    pub async fn execute_prepared(
        &self,
        prepared: &PreparedStatement,
        params: Vec<ScalarValue>,
    ) -> ExecResult<Outcome> {
        // A cancel request applies to the statement running when it arrives, not later ones.
        self.cancel.cancelled.store(false, Ordering::SeqCst);
        let state = *self.transaction.lock().expect("transaction lock");
        let result = match (&prepared.statement, state) {
            (Statement::Rollback, _) => self.end_transaction(Outcome::Rollback),
            (Statement::Commit, TransactionState::Failed) => {
                self.end_transaction(Outcome::Rollback)
            }
            (_, TransactionState::Failed) => Err(ExecError::InFailedTransaction),
            _ => self.run(prepared, params).await,
        };
        if result.is_err() && state == TransactionState::InBlock {
            *self.transaction.lock().expect("transaction lock") = TransactionState::Failed;
        }
        result
    }

    fn end_transaction(&self, outcome: Outcome) -> ExecResult<Outcome> {
        *self.transaction.lock().expect("transaction lock") = TransactionState::Idle;
        Ok(outcome)
    }

    async fn run(
        &self,
        prepared: &PreparedStatement,
        params: Vec<ScalarValue>,
    ) -> ExecResult<Outcome> {
        // Roles can change between Parse and Execute; check again with the current role.
        self.authorize(&prepared.statement)?;
        match &prepared.statement {
            Statement::Query(_) => {
                let plan = prepared
                    .plan
                    .clone()
                    .ok_or_else(|| ExecError::Internal("query prepared without a plan".into()))?;
                let plan = if params.is_empty() {
                    plan
                } else {
                    plan.with_param_values(params)?
                };
                let schema = Arc::new(plan.schema().as_arrow().clone());
                let stream = self
                    .ctx
                    .execute_logical_plan(plan)
                    .await?
                    .execute_stream()
                    .await?;
                Ok(Outcome::Rows {
                    schema: schema.clone(),
                    stream: self.guard(schema, stream),
                })
            }
            Statement::Set { name, value } => {
                let value = match value {
                    SetValue::Value(v) => Some(v.as_str()),
                    SetValue::Default => None,
                };
                self.settings
                    .lock()
                    .expect("settings lock")
                    .set(name, value)?;
                Ok(Outcome::Done { tag: "SET" })
            }
            Statement::Show { name } => self.show(name),
            Statement::Begin => {
                let mut transaction = self.transaction.lock().expect("transaction lock");
                if *transaction == TransactionState::Idle {
                    *transaction = TransactionState::InBlock;
                }
                Ok(Outcome::Begin)
            }
            Statement::Commit => self.end_transaction(Outcome::Commit),
            Statement::Rollback => self.end_transaction(Outcome::Rollback),
            Statement::CreateUser {
                user_id,
                password,
                role,
            } => {
                self.engine.create_user(user_id, password, *role)?;
                Ok(Outcome::Done { tag: "CREATE ROLE" })
            }
            Statement::AlterUser {
                user_id,
                password,
                role,
            } => {
                self.engine
                    .alter_user(user_id, password.as_deref(), *role)?;
                Ok(Outcome::Done { tag: "ALTER ROLE" })
            }
            Statement::DropUser { user_id, if_exists } => {
                self.engine
                    .drop_user(user_id, *if_exists, &self.caller.user_id)?;
                Ok(Outcome::Done { tag: "DROP ROLE" })
            }
        }
    }

    /// Results are computed while the client reads them, so the stream itself must stop on a
    /// cancel request and mark an open transaction block failed when execution errors.
    fn guard(
        &self,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    ) -> SendableRecordBatchStream {
        let cancel = self.cancel.clone();
        let transaction = self.transaction.clone();
        let guarded = futures::stream::unfold(Some(stream), move |stream| {
            let cancel = cancel.clone();
            let transaction = transaction.clone();
            async move {
                let mut stream = stream?;
                let item = tokio::select! {
                    biased;
                    () = cancel.cancelled() => Some(Err(DataFusionError::External(Box::new(
                        ExecError::QueryCanceled,
                    )))),
                    item = stream.next() => item,
                };
                match item {
                    Some(Err(e)) => {
                        let mut state = transaction.lock().expect("transaction lock");
                        if *state == TransactionState::InBlock {
                            *state = TransactionState::Failed;
                        }
                        Some((Err(e), None))
                    }
                    Some(Ok(batch)) => Some((Ok(batch), Some(stream))),
                    None => None,
                }
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, guarded))
    }

    fn authorize(&self, statement: &Statement) -> ExecResult<()> {
        // The caller's role is re-read so that ALTER USER ... ROLE takes effect at once.
        let caller = Caller {
            user_id: self.caller.user_id.clone(),
            role: self
                .engine
                .role_of(&self.caller.user_id)
                .unwrap_or(Role::User),
        };
        sql::authorize(statement, &caller, |user| self.engine.role_of(user))?;
        Ok(())
    }

    fn show(&self, name: &str) -> ExecResult<Outcome> {
        let settings = self.settings.lock().expect("settings lock");
        let schema = show_schema(name);
        let batch = if name == "all" {
            let all = settings.all();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(all.iter().map(|s| s.0))),
                    Arc::new(StringArray::from_iter_values(
                        all.iter().map(|s| s.1.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(all.iter().map(|s| s.2))),
                ],
            )
        } else {
            let value = settings.get(name)?;
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(vec![value]))],
            )
        }
        .map_err(|e| ExecError::Internal(e.to_string()))?;
        let stream =
            RecordBatchStreamAdapter::new(schema.clone(), futures::stream::iter(vec![Ok(batch)]));
        Ok(Outcome::Rows {
            schema,
            stream: Box::pin(stream),
        })
    }
}

fn show_schema(name: &str) -> SchemaRef {
    if name == "all" {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, false),
        ]))
    } else {
        let column = match name {
            "transaction isolation level" => "transaction_isolation",
            "time zone" => "TimeZone",
            other => other,
        };
        Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]))
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
    Ok(types)
}
