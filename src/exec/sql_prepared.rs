//! SQL-level prepared statements (`PREPARE`, `EXECUTE`, `DEALLOCATE`) and `DISCARD`, which
//! puts a session back as a new connection finds it. A statement PREPARE makes is planned once,
//! as a Parse message's is, and lives until DEALLOCATE, DISCARD ALL or the session's end; it
//! is not transactional (a rollback keeps it), as in PostgreSQL. The front end keeps the
//! protocol's named statements in the same namespace (see `Outcome::Deallocate`).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast;
use futures::TryStreamExt;

use super::outcome::Outcome;
use super::prepare::PreparedStatement;
use super::session::Session;
use super::transaction::BlockState;
use super::{ExecError, ExecResult};
use crate::sql::{self, Discarded, Preparation, Statement};

/// A statement PREPARE made.
#[derive(Debug)]
pub(super) struct SqlPrepared {
    pub(super) prepared: PreparedStatement,
    /// The parameter types PREPARE declared, as written; EXECUTE casts its values to them.
    declared: Vec<String>,
    /// The catalog the plan was made on: once another DDL has committed, EXECUTE plans the
    /// statement again (a table dropped and created under the same name is a new table).
    catalog_epoch: u64,
}

impl SqlPrepared {
    /// Declared parameters, and inferred ones past them.
    fn parameter_count(&self) -> usize {
        self.declared.len().max(self.prepared.param_types.len())
    }
}

/// A session's SQL-level prepared statements by name.
pub(super) type SqlPreparedStatements = HashMap<String, Arc<SqlPrepared>>;

impl Session {
    fn sql_prepared(&self) -> std::sync::MutexGuard<'_, SqlPreparedStatements> {
        self.sql_prepared.lock().expect("prepared statements lock")
    }

    /// Whether PREPARE made a statement of this name (the front end refuses the name to a
    /// Parse message then).
    pub fn has_sql_prepared(&self, name: &str) -> bool {
        self.sql_prepared().contains_key(name)
    }

    /// `PREPARE`: plans the statement and keeps it under its name.
    pub(super) async fn prepare_named(&self, preparation: &Preparation) -> ExecResult<Outcome> {
        if self.has_sql_prepared(&preparation.name) {
            return Err(ExecError::DuplicatePreparedStatement(
                preparation.name.clone(),
            ));
        }
        // As the protocol's named statements are, so that a client preparing under ever-new
        // names cannot grow the server without bound.
        let cap = self.engine.config().server.max_prepared_statements;
        if self.sql_prepared().len() >= cap {
            return Err(ExecError::TooManyPreparedStatements(cap));
        }
        let catalog_epoch = self.engine.store.catalog_epoch();
        let prepared = Box::pin(self.plan_statement((*preparation.statement).clone())).await?;
        let statement = SqlPrepared {
            prepared,
            declared: preparation.param_types.clone(),
            catalog_epoch,
        };
        self.sql_prepared()
            .insert(preparation.name.clone(), Arc::new(statement));
        Ok(Outcome::Done { tag: "PREPARE" })
    }

    /// The statement PREPARE made under `name`.
    pub(super) fn prepared_named(&self, name: &str) -> ExecResult<Arc<SqlPrepared>> {
        self.sql_prepared()
            .get(name)
            .cloned()
            .ok_or_else(|| ExecError::UndefinedPreparedStatement(name.to_owned()))
    }

    /// The statement PREPARE made under `name`, planned again if DDL committed since.
    async fn current_plan(&self, name: &str) -> ExecResult<Arc<SqlPrepared>> {
        let statement = self.prepared_named(name)?;
        let catalog_epoch = self.engine.store.catalog_epoch();
        if statement.catalog_epoch == catalog_epoch {
            return Ok(statement);
        }
        let prepared = Box::pin(self.plan_statement(statement.prepared.statement.clone())).await?;
        let fresh = Arc::new(SqlPrepared {
            prepared,
            declared: statement.declared.clone(),
            catalog_epoch,
        });
        self.sql_prepared().insert(name.to_owned(), fresh.clone());
        Ok(fresh)
    }

    /// `EXECUTE name (values)`: the statement, and its values evaluated and cast to its
    /// parameters' types.
    pub(super) async fn bind_execute(
        &self,
        name: &str,
        values: &[ast::Expr],
    ) -> ExecResult<(Arc<SqlPrepared>, Vec<ScalarValue>)> {
        let statement = self.current_plan(name).await?;
        let expected = statement.parameter_count();
        if values.len() != expected {
            return Err(ExecError::WrongParameterCount {
                name: name.to_owned(),
                expected,
                given: values.len(),
            });
        }
        if values.is_empty() {
            return Ok((statement, Vec::new()));
        }
        let evaluated = self.evaluate_values(values, &statement.declared).await?;
        let params = evaluated
            .into_iter()
            .enumerate()
            .map(|(i, value)| match statement.prepared.param_types.get(i) {
                Some(Some(planned)) if value.data_type() != *planned => {
                    value.cast_to(planned).map_err(|e| {
                        ExecError::InvalidText(format!(
                            "parameter ${}: {}",
                            i + 1,
                            e.strip_backtrace()
                        ))
                    })
                }
                // Text as the statements' paths bind it, whatever form the cast produced.
                _ if matches!(value.data_type(), DataType::Utf8View | DataType::LargeUtf8) => {
                    Ok(value.cast_to(&DataType::Utf8)?)
                }
                _ => Ok(value),
            })
            .collect::<ExecResult<Vec<_>>>()?;
        Ok((statement, params))
    }

    /// EXECUTE's values, as one row of a query that casts each to its declared type.
    async fn evaluate_values(
        &self,
        values: &[ast::Expr],
        declared: &[String],
    ) -> ExecResult<Vec<ScalarValue>> {
        let query = sql::execute_values_query(values, declared);
        let statement = match sql::parse(&query)?.as_slice() {
            [query @ Statement::Query(_)] => query.clone(),
            _ => {
                return Err(ExecError::Internal(
                    "EXECUTE's values did not read as one query".into(),
                ));
            }
        };
        let prepared = Box::pin(self.plan_statement(statement)).await?;
        let Outcome::Rows { stream, .. } = self.run_with_timeout(&prepared, Vec::new()).await?
        else {
            return Err(ExecError::Internal("EXECUTE's values gave no rows".into()));
        };
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        let row = batches
            .iter()
            .find(|batch| batch.num_rows() > 0)
            .ok_or_else(|| ExecError::Internal("EXECUTE's values gave no row".into()))?;
        row.columns()
            .iter()
            .map(|column| Ok(ScalarValue::try_from_array(column, 0)?))
            .collect()
    }

    /// `DEALLOCATE name` / `DEALLOCATE ALL` (`None`) of this session's SQL-level statements;
    /// the front end drops the protocol's statements of that name too.
    pub(super) fn deallocate_named(&self, name: Option<&str>) -> Outcome {
        Outcome::Deallocate {
            name: name.map(str::to_owned),
            dropped_here: self.drop_sql_prepared(name),
            // pgJDBC and PgBouncer read this tag to forget every statement they prepared.
            tag: if name.is_none() {
                "DEALLOCATE ALL"
            } else {
                "DEALLOCATE"
            },
        }
    }

    /// Whether a statement of that name (`None`: all) was there to drop.
    fn drop_sql_prepared(&self, name: Option<&str>) -> bool {
        let mut statements = self.sql_prepared();
        match name {
            Some(name) => statements.remove(name).is_some(),
            None => {
                statements.clear();
                true
            }
        }
    }

    /// `DISCARD`. Plans have no cache apart from prepared statements, which are planned again
    /// when a table they read changes, so `DISCARD PLANS` has nothing to drop; nor has
    /// `DISCARD TEMP`, as there are no temporary tables.
    pub(super) fn discard(&self, discarded: Discarded) -> ExecResult<Outcome> {
        let tag = discarded.tag();
        match discarded {
            Discarded::Plans | Discarded::Temporary => Ok(Outcome::Done { tag }),
            Discarded::Sequences => {
                self.sequence_memory.forget();
                Ok(Outcome::Done { tag })
            }
            Discarded::All => {
                if self.transaction().state != BlockState::Idle {
                    return Err(ExecError::ActiveSqlTransaction(
                        "DISCARD ALL cannot run inside a transaction block".into(),
                    ));
                }
                self.close_cursor(None)?;
                self.settings
                    .lock()
                    .expect("settings lock")
                    .set("all", None)?;
                self.follow_search_path()?;
                self.advisory_locks.release_all();
                self.sequence_memory.forget();
                Ok(Outcome::Deallocate {
                    name: None,
                    dropped_here: self.drop_sql_prepared(None),
                    tag,
                })
            }
        }
    }
}
