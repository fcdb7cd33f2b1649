//! Which function runs each kind of statement: the one table from a parsed [`Statement`] to
//! the session method that carries it out, once the statement is fenced, authorized and timed.

use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::scalar::ScalarValue;

use super::outcome::Outcome;
use super::prepare::{FastPath, PreparedStatement};
use super::session::Session;
use super::transaction::BlockState;
use super::{ExecError, ExecResult};
use crate::sql::{SetValue, Statement};

/// Whether planning failed because a table's rows were re-encoded since the plan was made.
fn is_cached_plan_changed(err: &ExecError) -> bool {
    let stale = |e: &ExecError| matches!(e, ExecError::CachedPlanChanged);
    match err {
        ExecError::DataFusion(e) => match e.find_root() {
            DataFusionError::External(inner) => {
                inner.downcast_ref::<ExecError>().is_some_and(stale)
            }
            _ => false,
        },
        other => stale(other),
    }
}

impl Session {
    /// Runs `prepared` with `params` bound.
    pub(super) async fn run(
        &self,
        prepared: &PreparedStatement,
        params: Vec<ScalarValue>,
    ) -> ExecResult<Outcome> {
        // Roles can change between Parse and Execute; check again with the current role.
        self.authorize(&prepared.statement)?;
        match &prepared.statement {
            Statement::Query(_) => {
                if let (Some(FastPath::Read(point)), Some(schema)) =
                    (&prepared.fast_path, &prepared.result_schema)
                    && let Some(batch) =
                        point.execute(&self.engine.store, &self.pending, &params, schema)
                {
                    return Ok(Outcome::rows(schema.clone(), vec![batch]));
                }
                let plan = prepared
                    .plan
                    .clone()
                    .ok_or_else(|| ExecError::Internal("query prepared without a plan".into()))?;
                let schema = prepared
                    .result_schema
                    .clone()
                    .unwrap_or_else(|| Arc::new(plan.schema().as_arrow().clone()));
                let stream = match self.execute_plan(plan, &params).await {
                    // A table's rows were re-encoded since Parse: plan again, as PostgreSQL
                    // does, unless that changes the result columns the client was told of.
                    Err(e) if is_cached_plan_changed(&e) => {
                        let fresh =
                            Box::pin(self.plan_statement(prepared.statement.clone())).await?;
                        let same_columns = fresh.result_schema.as_ref().is_some_and(|fresh| {
                            fresh.fields().len() == schema.fields().len()
                                && fresh.fields().iter().zip(schema.fields()).all(|(a, b)| {
                                    a.name() == b.name() && a.data_type() == b.data_type()
                                })
                        });
                        let plan = fresh.plan.filter(|_| same_columns);
                        let plan = plan.ok_or(ExecError::CachedPlanChanged)?;
                        self.execute_plan(plan, &params).await?
                    }
                    other => other?,
                };
                Ok(Outcome::Rows {
                    schema: schema.clone(),
                    stream: self.guard(schema, stream),
                })
            }
            Statement::Copy(copy) if copy.to_client => self.copy_out(copy).await,
            Statement::Copy(copy) => Ok(Outcome::CopyIn(Box::new(self.begin_copy_in(copy)?))),
            Statement::Set { name, value } => {
                let value = match value {
                    SetValue::Value(v) => Some(v.as_str()),
                    SetValue::Default => None,
                };
                self.settings
                    .lock()
                    .expect("settings lock")
                    .set(name, value)?;
                if name == "search_path" || name == "all" {
                    self.follow_search_path()?;
                }
                Ok(Outcome::Done { tag: "SET" })
            }
            Statement::Show { name } => self.show(name),
            Statement::Begin => {
                let mut transaction = self.transaction();
                if transaction.state == BlockState::Idle {
                    transaction.state = BlockState::InBlock;
                }
                Ok(Outcome::Begin)
            }
            Statement::SetConstraints { names, deferred } => {
                self.set_constraints(names.as_deref(), *deferred)
            }
            Statement::Commit => self.end_transaction(Outcome::Commit),
            Statement::Rollback => self.end_transaction(Outcome::Rollback),
            Statement::Savepoint { name } => self.savepoint(name),
            Statement::Deallocate { name } => Ok(self.deallocate_named(name.as_deref())),
            Statement::Prepare(preparation) => self.prepare_named(preparation).await,
            // `execute_fenced` binds EXECUTE and runs the statement it names.
            Statement::Execute { .. } => Err(ExecError::Internal(
                "EXECUTE reached the statement table unbound".into(),
            )),
            Statement::Discard(discarded) => self.discard(*discarded),
            Statement::DeclareCursor(declared) => self.declare_cursor(declared, params).await,
            Statement::FetchCursor {
                name,
                motion,
                move_only,
            } => self.fetch_cursor(name, *motion, *move_only).await,
            Statement::CloseCursor { name } => self.close_cursor(name.as_deref()),
            Statement::ReleaseSavepoint { name } => self.release_savepoint(name),
            Statement::RollbackToSavepoint { name } => self.rollback_to_savepoint(name),
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
            Statement::CreateNamespace {
                name,
                if_not_exists,
            } => self.create_namespace(name, *if_not_exists),
            Statement::DropNamespace {
                name,
                if_exists,
                cascade,
            } => self.drop_namespace(name, *if_exists, *cascade),
            Statement::ShowNamespaces => self.show_namespaces(),
            Statement::ShowTables { namespace } => self.show_tables(namespace.as_deref()),
            Statement::Describe { table } => self.describe(table),
            Statement::CreateTable(create) => self.create_table(create).await,
            Statement::DropTable {
                tables,
                if_exists,
                cascade,
            } => self.drop_tables(tables, *if_exists, *cascade),
            Statement::CreateView {
                name,
                or_replace,
                columns,
                query,
            } => self.create_view(name, *or_replace, columns, query).await,
            Statement::CreateIndex {
                name,
                table,
                columns,
                unique,
                if_not_exists,
                pattern_ops,
            } => {
                self.create_index(
                    name.as_deref(),
                    table,
                    columns,
                    (*unique, *if_not_exists),
                    pattern_ops,
                )
                .await
            }
            Statement::DropIndex { names, if_exists } => self.drop_indexes(names, *if_exists),
            Statement::AddUnique { table, unique } => self.add_unique(table, unique).await,
            Statement::AddCheck { table, check } => self.add_check(table, check).await,
            Statement::DropColumn {
                table,
                column,
                if_exists,
                cascade,
            } => self.drop_column(table, column, *if_exists, *cascade),
            Statement::SetSchema {
                table,
                if_exists,
                namespace,
            } => self.set_schema(table, *if_exists, namespace),
            Statement::AddForeignKey { table, foreign_key } => {
                self.add_foreign_key(table, foreign_key).await
            }
            Statement::DropConstraint {
                table,
                name,
                if_exists,
            } => self.drop_constraint(table, name, *if_exists),
            Statement::DropView {
                names,
                if_exists,
                cascade,
            } => self.drop_views(names, *if_exists, *cascade),
            Statement::AddColumn {
                table,
                column,
                if_not_exists,
            } => self.add_column(table, column, *if_not_exists).await,
            Statement::CreateSequence {
                name,
                if_not_exists,
                options,
            } => self.create_sequence(name, *if_not_exists, options),
            Statement::AlterSequence {
                name,
                if_exists,
                options,
            } => self.alter_sequence(name, *if_exists, options),
            Statement::DropSequence {
                names,
                if_exists,
                cascade,
            } => self.drop_sequences(names, *if_exists, *cascade),
            Statement::Truncate {
                tables,
                restart_identity,
                cascade,
            } => self.truncate(tables, *restart_identity, *cascade),
            Statement::RenameTable { table, new_name } => self.rename_table(table, new_name),
            Statement::Comment {
                table,
                column,
                comment,
            } => self.comment_on(table, column.as_deref(), comment.clone()),
            Statement::RenameColumn {
                table,
                column,
                new_name,
            } => self.rename_column(table, column, new_name),
            Statement::AlterColumn {
                table,
                column,
                change,
            } => self.alter_column(table, column, change).await,
            Statement::Vacuum {
                analyze_only,
                tables,
            } => self.vacuum(*analyze_only, tables),
            Statement::FlushTable { table } => self.flush_table(table),
            Statement::KillJob { job_id } => self.kill_job(job_id),
            Statement::BackupDatabase { target, base } => {
                // Whatever follower_reads says: the archive must hold every write the cluster
                // acknowledged before BACKUP returns.
                self.engine.cluster_barrier().await?;
                self.backup_database(target, base.as_ref())
            }
            Statement::RestoreDatabase { source, backup_to } => {
                self.restore_database(source, backup_to.as_ref())
            }
            Statement::VerifyBackup { archive } => self.verify_backup(archive),
            Statement::ShowBackup { archive } => self.show_backup(archive).await,
            Statement::ClusterSnapshot => self.cluster_snapshot().await,
            Statement::AlterCluster(change) => self.alter_cluster(change).await,
            Statement::Insert(ast) | Statement::Update(ast) | Statement::Delete(ast) => {
                let fast = match &prepared.fast_path {
                    Some(FastPath::Write(write)) => self.point_write(write, &params).await?,
                    Some(FastPath::Insert(insert)) => {
                        self.point_insert(insert, ast, &params).await?
                    }
                    _ => None,
                };
                if let Some(outcome) = fast {
                    return Ok(outcome);
                }
                let bound = if params.is_empty() {
                    ast.as_ref().clone()
                } else {
                    super::params::bind(ast, &params)?
                };
                match &prepared.statement {
                    Statement::Insert(_) => self.insert(&bound).await,
                    Statement::Update(_) => self.update(&bound).await,
                    _ => self.delete(&bound).await,
                }
            }
        }
    }
}
