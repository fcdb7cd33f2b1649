//! Statements that start or stop background jobs (FLUSH TABLE, BACKUP DATABASE, RESTORE
//! DATABASE, KILL JOB) and CLUSTER SNAPSHOT.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::session::Outcome;
use super::{Engine, ExecError, ExecResult, Session};
use crate::backup::{self, BackupJob, PathPolicy, PathUse, RestoreJob};
use crate::config::Config;
use crate::jobs::FlushJob;
use crate::model::TableKind;
use crate::sql::TableName;

impl Engine {
    /// A BACKUP job to `raw` under the server's `[backup]` settings. The path rules are checked
    /// here, so a job resumed after a restart is held to the rules of the server it resumes on.
    pub(super) fn backup_job(&self, raw: &str, quoted: bool) -> ExecResult<BackupJob> {
        let config = self.config();
        Ok(BackupJob {
            target: self.checked_path(raw, quoted, PathUse::BackupTarget)?,
            config_path: config.source_path.clone(),
            compression_level: config.backup.compression_level,
            compression_threads: config.backup.threads(),
            signing_key: signing_key(config),
        })
    }

    /// A RESTORE job from `raw`; the path rules are checked as for [`Engine::backup_job`].
    pub(super) fn restore_job(&self, raw: &str, quoted: bool) -> ExecResult<RestoreJob> {
        let config = self.config();
        Ok(RestoreJob {
            source: self.checked_path(raw, quoted, PathUse::RestoreSource)?,
            signing_key: signing_key(config),
            min_free_bytes: config.backup.min_free_bytes,
        })
    }

    fn checked_path(&self, raw: &str, quoted: bool, usage: PathUse) -> ExecResult<PathBuf> {
        let policy = PathPolicy {
            data_dir: self.store().dir().root(),
            allowed_dirs: &self.config().backup.allowed_dirs,
        };
        Ok(backup::check_path(raw, quoted, usage, &policy)?)
    }
}

fn signing_key(config: &Config) -> Option<backup::SigningKey> {
    let key = config.backup.signing_key.as_ref()?;
    Some(backup::SigningKey::new(key.as_bytes()))
}

/// The row a statement that queues a job returns.
pub(super) fn job_started_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("job_id", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ]))
}

/// The row CLUSTER SNAPSHOT returns.
pub(super) fn cluster_snapshot_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("snapshot_id", DataType::Utf8, false),
        Field::new("applied_seq", DataType::Int64, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("tables", DataType::Int64, false),
        Field::new("users", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
    ]))
}

pub(super) fn job_started(job_id: &str, message: String) -> ExecResult<Outcome> {
    let schema = job_started_schema();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![job_id])),
            Arc::new(StringArray::from(vec!["Queued"])),
            Arc::new(StringArray::from(vec![message])),
        ],
    )
    .map_err(|e| ExecError::Internal(e.to_string()))?;
    Ok(Outcome::rows(schema, vec![batch]))
}

impl Session {
    /// VACUUM compacts each table's range of hot rows, so the space that deleted and
    /// rewritten rows hold is given back (RocksDB drops versions and deletion markers no
    /// reader needs). ANALYZE checks the tables and columns and has nothing to collect:
    /// queries plan from the row counts and Parquet statistics read when a table is scanned.
    /// With no table named, every table of the database is vacuumed.
    pub(super) fn vacuum(
        &self,
        analyze_only: bool,
        tables: &[(TableName, Vec<String>)],
    ) -> ExecResult<Outcome> {
        if !analyze_only && self.in_transaction_block() {
            return Err(ExecError::ActiveSqlTransaction(
                "VACUUM cannot run inside a transaction block".into(),
            ));
        }
        let mut records = Vec::with_capacity(tables.len());
        for (table, columns) in tables {
            let record = self.resolve_table(table)?;
            for column in columns {
                if !record.columns.iter().any(|c| c.name == *column) {
                    return Err(ExecError::UndefinedColumn(format!(
                        "column \"{column}\" of relation \"{}\" does not exist",
                        record.name
                    )));
                }
            }
            records.push(record);
        }
        let tag = if analyze_only { "ANALYZE" } else { "VACUUM" };
        if analyze_only {
            return Ok(Outcome::Done { tag });
        }
        if tables.is_empty() {
            records = self.engine.store().tables()?;
        }
        for record in records {
            if !matches!(record.kind, TableKind::Stream { .. }) {
                self.engine.store().compact_rows(record.table_id)?;
            }
        }
        Ok(Outcome::Done { tag })
    }

    pub(super) fn flush_table(&self, table: &TableName) -> ExecResult<Outcome> {
        let record = self.resolve_table(table)?;
        if let TableKind::Stream { .. } = record.kind {
            return Err(ExecError::WrongObjectType(format!(
                "\"{}\" is a stream table: its commit log is not flushed",
                record.name
            )));
        }
        let qualified = format!("{}.{}", record.namespace, record.name);
        let job_id = self.engine.jobs().submit(
            Arc::new(FlushJob {
                table_id: record.table_id,
                namespace: record.namespace,
                table: record.name,
                segment_rows: self.engine.config().flush.segment_rows,
            }),
            self.user_id(),
        )?;
        job_started(
            &job_id,
            format!("Flush of {qualified} started. Job ID: {job_id}"),
        )
    }

    /// Checks the path rules, then queues the backup; the row comes back at once.
    pub(super) fn backup_database(&self, raw: &str, quoted: bool) -> ExecResult<Outcome> {
        let job = self.engine.backup_job(raw, quoted)?;
        let target = job.target.clone();
        let job_id = self.engine.jobs().submit(Arc::new(job), self.user_id())?;
        job_started(
            &job_id,
            format!(
                "Database backup started to '{}'. Job ID: {job_id}",
                target.display()
            ),
        )
    }

    pub(super) fn restore_database(&self, raw: &str, quoted: bool) -> ExecResult<Outcome> {
        let job = self.engine.restore_job(raw, quoted)?;
        let source = job.source.clone();
        let job_id = self.engine.jobs().submit(Arc::new(job), self.user_id())?;
        job_started(
            &job_id,
            format!(
                "Database restore started from '{}'. Job ID: {job_id}",
                source.display()
            ),
        )
    }

    pub(super) async fn cluster_snapshot(&self) -> ExecResult<Outcome> {
        let store = self.engine.store().clone();
        let keep = self.engine.config().backup.snapshots_keep;
        let info = tokio::task::spawn_blocking(move || backup::take_cluster_snapshot(&store, keep))
            .await
            .map_err(|e| ExecError::Internal(format!("snapshot task failed: {e}")))??;
        let schema = cluster_snapshot_schema();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![info.snapshot_id])),
                Arc::new(Int64Array::from(vec![info.applied_seq as i64])),
                Arc::new(StringArray::from(vec![info.path.display().to_string()])),
                Arc::new(Int64Array::from(vec![info.tables as i64])),
                Arc::new(Int64Array::from(vec![info.users as i64])),
                Arc::new(Int64Array::from(vec![info.bytes as i64])),
            ],
        )
        .map_err(|e| ExecError::Internal(e.to_string()))?;
        Ok(Outcome::rows(schema, vec![batch]))
    }

    pub(super) fn kill_job(&self, job_id: &str) -> ExecResult<Outcome> {
        self.engine.jobs().cancel(job_id)?;
        Ok(Outcome::Done { tag: "KILL JOB" })
    }
}
