//! Index DDL: `CREATE [UNIQUE] INDEX` and `DROP INDEX`. An index on a table with rows is built
//! by a job (its progress in `system.jobs`) that CREATE INDEX waits for, as PostgreSQL's
//! statement does; writes to the table go on meanwhile.

use std::sync::Arc;

use super::outcome::Outcome;
use super::{Engine, ExecError, ExecResult, Session, now_micros};
use crate::jobs::IndexBuildJob;
use crate::model::TableKind;
use crate::sql::{TableName, UniqueSpec};
use crate::storage::{
    Command, Conflict, IndexRecord, IndexState, JobStatus, StorageError, TableRecord,
};

impl Session {
    pub(super) async fn create_index(
        &self,
        name: Option<&str>,
        table: &TableName,
        columns: &[String],
        (unique, if_not_exists): (bool, bool),
        pattern_ops: &[(String, String)],
    ) -> ExecResult<Outcome> {
        let record = self.resolve_table(table)?;
        for (column, class) in pattern_ops {
            let column = record.columns.iter().find(|c| &c.name == column);
            if let Some(column) = column.filter(|c| !c.sql_type.is_text()) {
                return Err(ExecError::DatatypeMismatch(format!(
                    "operator class \"{class}\" does not accept data type {}",
                    column.sql_type.sql_name()
                )));
            }
        }
        let index = self.new_index(&record, name, columns, unique, None)?;
        self.add_index(&record, index, if_not_exists).await?;
        Ok(Outcome::Done {
            tag: "CREATE INDEX",
        })
    }

    /// `ALTER TABLE t ADD [CONSTRAINT name] UNIQUE (columns)`: a unique index that enforces
    /// the constraint, built over (and so checking) the rows the table has.
    pub(super) async fn add_unique(
        &self,
        table: &TableName,
        unique: &UniqueSpec,
    ) -> ExecResult<Outcome> {
        let record = self.resolve_table(table)?;
        let index = self.unique_constraint_index(&record, unique, &[])?;
        self.add_index(&record, index, false).await?;
        Ok(Outcome::Done { tag: "ALTER TABLE" })
    }

    /// `ALTER TABLE t DROP CONSTRAINT name`: a CHECK constraint, or the index a UNIQUE
    /// constraint owns.
    pub(super) fn drop_constraint(
        &self,
        table: &TableName,
        name: &str,
        if_exists: bool,
    ) -> ExecResult<Outcome> {
        let record = self.resolve_table(table)?;
        if self
            .catalog()
            .foreign_keys_of(record.table_id)?
            .iter()
            .any(|fk| fk.name == name)
        {
            self.apply_ddl(Command::DropForeignKey {
                table_id: record.table_id,
                name: name.to_owned(),
            })?;
            return Ok(Outcome::Done { tag: "ALTER TABLE" });
        }
        let index = self
            .catalog()
            .indexes_of(record.table_id)?
            .into_iter()
            .find(|i| i.constraint.as_deref() == Some(name));
        if let Some(at) = record.checks.iter().position(|c| c.name == name) {
            let mut record = record;
            record.checks.remove(at);
            self.apply_ddl(Command::AlterTable(record))?;
            return Ok(Outcome::Done { tag: "ALTER TABLE" });
        }
        match index {
            Some(index) => {
                self.apply_ddl(Command::DropIndex {
                    namespace: index.namespace,
                    name: index.name,
                })?;
            }
            None if name == format!("{}_pkey", record.name) && !record.primary_key.is_empty() => {
                return Err(ExecError::Sql(crate::sql::SqlError::Unsupported(
                    "dropping a primary key is not supported".into(),
                )));
            }
            None if if_exists => {}
            None => {
                return Err(ExecError::UndefinedObject(format!(
                    "constraint \"{name}\" of relation \"{}\" does not exist",
                    record.name
                )));
            }
        }
        Ok(Outcome::Done { tag: "ALTER TABLE" })
    }

    /// The index that enforces UNIQUE constraint `unique` on `record`: named as given, or as
    /// PostgreSQL names it (`<table>_<columns>_key`, numbered past relations that exist and
    /// past `taken`, names the same statement already chose).
    pub(super) fn unique_constraint_index(
        &self,
        record: &TableRecord,
        unique: &UniqueSpec,
        taken: &[String],
    ) -> ExecResult<IndexRecord> {
        let name = match &unique.name {
            Some(name) => name.clone(),
            None => {
                let base = self.free_relation_name(
                    &record.namespace,
                    &record.name,
                    &unique.columns,
                    "key",
                )?;
                numbered_past(base, taken)
            }
        };
        self.new_index(
            record,
            Some(&name),
            &unique.columns,
            true,
            Some(name.clone()),
        )
    }

    /// The definition of a new index on `record` (its name chosen as PostgreSQL would when
    /// none is given).
    pub(super) fn new_index(
        &self,
        record: &TableRecord,
        name: Option<&str>,
        columns: &[String],
        unique: bool,
        constraint: Option<String>,
    ) -> ExecResult<IndexRecord> {
        if let TableKind::Stream { .. } = record.kind {
            return Err(ExecError::WrongObjectType(format!(
                "cannot create index on stream table \"{}\"",
                record.name
            )));
        }
        let mut positions = Vec::with_capacity(columns.len());
        for column in columns {
            let position = record
                .columns
                .iter()
                .position(|c| &c.name == column)
                .ok_or_else(|| {
                    ExecError::UndefinedColumn(format!("column \"{column}\" does not exist"))
                })?;
            positions.push(position);
        }
        let name = match name {
            Some(name) => name.to_owned(),
            None => self.free_relation_name(&record.namespace, &record.name, columns, "idx")?,
        };
        Ok(IndexRecord {
            index_id: self.relation_id()?,
            namespace: record.namespace.clone(),
            name,
            table_id: record.table_id,
            columns: positions,
            unique,
            constraint,
            state: IndexState::Building,
            layout: Vec::new(),
            created_at: now_micros(),
        })
    }

    /// Creates `index`, and outside a block waits for the build it needs, if any.
    pub(super) async fn add_index(
        &self,
        record: &TableRecord,
        index: IndexRecord,
        if_not_exists: bool,
    ) -> ExecResult<()> {
        let command = Command::CreateIndex {
            table: record.name.clone(),
            index,
        };
        let applied = match self.apply_ddl(command) {
            Ok(applied) => applied,
            Err(StorageError::Conflict(Conflict::TableExists(..))) if if_not_exists => {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        for (job_id, job) in self
            .engine
            .start_index_builds(&applied.indexes_to_build, self.user_id())?
        {
            self.engine.wait_for_build(&job_id, &job).await?;
        }
        Ok(())
    }

    /// PostgreSQL's name for an unnamed index or constraint: table, columns and `suffix`
    /// joined by underscores, numbered when that relation name is taken.
    pub(super) fn free_relation_name(
        &self,
        namespace: &str,
        table: &str,
        columns: &[String],
        suffix: &str,
    ) -> ExecResult<String> {
        let base = format!("{table}_{}", columns.join("_"));
        for n in 0.. {
            let candidate = match n {
                0 => format!("{base}_{suffix}"),
                n => format!("{base}_{suffix}{n}"),
            };
            if !self.relation_name_taken(namespace, &candidate)? {
                return Ok(candidate);
            }
        }
        unreachable!("some numbered name is free")
    }

    /// Whether a table, sequence, view or index of `namespace` has the name.
    pub(super) fn relation_name_taken(&self, namespace: &str, name: &str) -> ExecResult<bool> {
        let catalog = self.catalog();
        Ok(catalog.table(namespace, name)?.is_some()
            || catalog.sequence(namespace, name)?.is_some()
            || catalog.view_definition(namespace, name)?.is_some()
            || catalog.index(namespace, name)?.is_some())
    }

    pub(super) fn drop_indexes(&self, names: &[TableName], if_exists: bool) -> ExecResult<Outcome> {
        let mut commands = Vec::new();
        for name in names {
            let found = super::names::first_in_path(self.candidate_namespaces(name)?, |ns| {
                self.catalog().index(ns, &name.name)
            })?;
            match found {
                Some(index) => {
                    if let Some(constraint) = &index.constraint {
                        return Err(ExecError::DependentObjectsStillExist(format!(
                            "cannot drop index {} because constraint {constraint} requires it",
                            index.name
                        )));
                    }
                    commands.push(Command::DropIndex {
                        namespace: index.namespace,
                        name: index.name,
                    });
                }
                None if if_exists => {}
                None => {
                    return Err(ExecError::UndefinedObject(format!(
                        "index \"{name}\" does not exist"
                    )));
                }
            }
        }
        if !commands.is_empty() {
            self.apply_ddl(Command::Batch(commands))?;
        }
        Ok(Outcome::Done { tag: "DROP INDEX" })
    }
}

impl Engine {
    /// Starts a build job for each index a command left building.
    pub(crate) fn start_index_builds(
        &self,
        to_build: &[(u64, String)],
        created_by: &str,
    ) -> ExecResult<Vec<(String, Arc<IndexBuildJob>)>> {
        let mut started = Vec::new();
        for (table_id, name) in to_build {
            let Some(index) = self
                .store
                .indexes_of(*table_id)?
                .into_iter()
                .find(|i| &i.name == name)
            else {
                continue;
            };
            let job = Arc::new(IndexBuildJob::new(
                *table_id,
                index.namespace,
                index.name,
                index.index_id,
            ));
            let job_id = self.jobs().submit(job.clone(), created_by)?;
            started.push((job_id, job));
        }
        Ok(started)
    }

    /// Waits for a build; a failed one is the statement's error (a duplicate value for a unique
    /// index keeps its SQLSTATE).
    pub(crate) async fn wait_for_build(&self, job_id: &str, job: &IndexBuildJob) -> ExecResult<()> {
        let finished = self.jobs().wait(job_id).await?;
        match finished.status {
            JobStatus::Completed => Ok(()),
            _ => match job.conflict() {
                Some(conflict) => Err(StorageError::Conflict(conflict).into()),
                None => Err(ExecError::JobFailed(format!(
                    "index build {job_id} {}: {}",
                    finished.status.as_str().to_lowercase(),
                    finished.message.unwrap_or_default()
                ))),
            },
        }
    }

    /// Starts again the builds a crash interrupted.
    pub(super) fn resume_index_builds(&self) -> ExecResult<()> {
        let building: Vec<(u64, String)> = self
            .store
            .all_indexes()?
            .into_iter()
            .filter(|i| i.state == IndexState::Building)
            .map(|i| (i.table_id, i.name))
            .collect();
        for (job_id, _) in self.start_index_builds(&building, "system")? {
            tracing::info!(job_id, "restarting an interrupted index build");
        }
        Ok(())
    }
}

/// `base`, or `base` numbered from 1 until it is none of `taken` (PostgreSQL's choice of a
/// constraint name already in use).
pub(super) fn numbered_past(base: String, taken: &[String]) -> String {
    let mut name = base.clone();
    let mut n = 0;
    while taken.contains(&name) {
        n += 1;
        name = format!("{base}{n}");
    }
    name
}
