//! Statements that start or stop background jobs (FLUSH TABLE, BACKUP DATABASE, RESTORE
//! DATABASE, VERIFY BACKUP, KILL JOB), SHOW BACKUP and CLUSTER SNAPSHOT.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::outcome::Outcome;
use super::{Engine, ExecError, ExecResult, Session};
use crate::backup::{self, ArchiveLocation, BackupJob, PathPolicy, PathUse, RestoreJob, VerifyJob};
use crate::config::Config;
use crate::jobs::FlushJob;
use crate::model::TableKind;
use crate::sql::{ArchivePath, SqlError, TableName};

impl Engine {
    /// A BACKUP job to `target` under the server's `[backup]` settings. The path rules are
    /// checked here, so a job resumed after a restart is held to the rules of the server it
    /// resumes on.
    pub(super) fn backup_job(
        &self,
        target: &ArchivePath,
        base: Option<&ArchivePath>,
    ) -> ExecResult<BackupJob> {
        let config = self.config();
        let target = self.checked_location(target, PathUse::BackupTarget)?;
        if let Some(base) = base
            && (target.local().is_none() || backup::is_remote_url(&base.raw))
        {
            return Err(ExecError::Sql(crate::sql::SqlError::Unsupported(format!(
                "INCREMENTAL FROM '{}' to '{target}': incremental chains are kept in local files; back up to a file and copy the chain",
                base.raw
            ))));
        }
        Ok(BackupJob {
            target,
            config_path: config.source_path.clone(),
            compression_level: config.backup.compression_level,
            compression_threads: config.backup.threads(),
            max_bytes_per_second: config.backup.max_bytes_per_second,
            signing_key: signing_key(config),
            schedule: None,
            base: base
                .map(|base| self.checked_path(base, PathUse::RestoreSource))
                .transpose()?,
        })
    }

    /// A RESTORE job from `source`, after a backup to `backup_to` when one is named; the path
    /// rules are checked as for [`Engine::backup_job`].
    pub(super) fn restore_job(
        &self,
        source: &ArchivePath,
        backup_to: Option<&ArchivePath>,
    ) -> ExecResult<RestoreJob> {
        if self.cluster.is_some() {
            // The swap at the next start would put a single node's history under a Raft log.
            return Err(SqlError::Unsupported(
                "RESTORE DATABASE on a cluster node: restore the archive onto a single node (no [cluster] section) first"
                    .into(),
            )
            .into());
        }
        let config = self.config();
        Ok(RestoreJob {
            source: self.checked_location(source, PathUse::RestoreSource)?,
            signing_key: signing_key(config),
            min_free_bytes: config.backup.min_free_bytes,
            allowed_dirs: config.backup.allowed_dirs.clone(),
            backup_first: backup_to
                .map(|target| self.backup_job(target, None))
                .transpose()?,
        })
    }

    /// A VERIFY BACKUP job reading `archive`.
    pub(super) fn verify_job(&self, archive: &ArchivePath) -> ExecResult<VerifyJob> {
        Ok(VerifyJob {
            source: self.checked_location(archive, PathUse::Inspected)?,
            signing_key: signing_key(self.config()),
            allowed_dirs: self.config().backup.allowed_dirs.clone(),
        })
    }

    /// The archive a statement names: an `s3://` URL `[backup.remote]` allows, or a file under
    /// the path rules.
    fn checked_location(&self, path: &ArchivePath, usage: PathUse) -> ExecResult<ArchiveLocation> {
        if path.quoted && backup::is_remote_url(&path.raw) {
            let remote = self.config().backup.remote.as_ref();
            // The object's client runs on the engine's runtime: the job using it outlives the
            // connection's lane, and must not load it.
            let _on_engine_runtime = self.compute.as_ref().map(|runtime| runtime.enter());
            return Ok(ArchiveLocation::Remote(backup::resolve_remote(
                &path.raw, usage, remote,
            )?));
        }
        Ok(ArchiveLocation::Local(self.checked_path(path, usage)?))
    }

    fn checked_path(&self, path: &ArchivePath, usage: PathUse) -> ExecResult<PathBuf> {
        let policy = PathPolicy {
            data_dir: self.store().dir().root(),
            allowed_dirs: &self.config().backup.allowed_dirs,
        };
        Ok(backup::check_path(&path.raw, path.quoted, usage, &policy)?)
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

/// The rows SHOW BACKUP returns: the manifest's summary on every row, one row per area.
pub(super) fn show_backup_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("archive", DataType::Utf8, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("kalamdb_version", DataType::Utf8, false),
        Field::new("backup_job_id", DataType::Utf8, false),
        Field::new("applied_seq", DataType::Int64, false),
        Field::new("signature", DataType::Utf8, false),
        // The base archive's path when the backup is incremental.
        Field::new("base", DataType::Utf8, true),
        Field::new("area", DataType::Utf8, false),
        // Every file of the database in the area...
        Field::new("files", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        // ...and those this archive holds (fewer in an incremental).
        Field::new("stored_files", DataType::Int64, false),
        Field::new("stored_bytes", DataType::Int64, false),
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
    pub(super) fn backup_database(
        &self,
        target: &ArchivePath,
        base: Option<&ArchivePath>,
    ) -> ExecResult<Outcome> {
        let job = self.engine.backup_job(target, base)?;
        let message = match &job.base {
            Some(base) => format!(
                "Incremental database backup started to '{}' on '{}'.",
                job.target,
                base.display()
            ),
            None => format!("Database backup started to '{}'.", job.target),
        };
        let job_id = self.engine.jobs().submit(Arc::new(job), self.user_id())?;
        job_started(&job_id, format!("{message} Job ID: {job_id}"))
    }

    pub(super) fn restore_database(
        &self,
        source: &ArchivePath,
        backup_to: Option<&ArchivePath>,
    ) -> ExecResult<Outcome> {
        let job = self.engine.restore_job(source, backup_to)?;
        let message = match &job.backup_first {
            Some(backup) => format!(
                "Database restore started from '{}', after a backup to '{}'.",
                job.source, backup.target
            ),
            None => format!("Database restore started from '{}'.", job.source),
        };
        let job_id = self.engine.jobs().submit(Arc::new(job), self.user_id())?;
        job_started(&job_id, format!("{message} Job ID: {job_id}"))
    }

    pub(super) fn verify_backup(&self, archive: &ArchivePath) -> ExecResult<Outcome> {
        let job = self.engine.verify_job(archive)?;
        let message = format!("Verification of '{}' started.", job.source);
        let job_id = self.engine.jobs().submit(Arc::new(job), self.user_id())?;
        job_started(&job_id, format!("{message} Job ID: {job_id}"))
    }

    /// Reads the archive's sealed manifest (from its last gzip member; an archive without one
    /// is read and checked whole), then returns one row per area of the data directory it
    /// holds. VERIFY BACKUP is what checks the data.
    pub(super) async fn show_backup(&self, archive: &ArchivePath) -> ExecResult<Outcome> {
        let path = self.engine.checked_location(archive, PathUse::Inspected)?;
        let key = signing_key(self.engine.config());
        let read_path = path.clone();
        let (manifest, signature) =
            tokio::task::spawn_blocking(move || backup::read_manifest(&read_path, key.as_ref()))
                .await
                .map_err(|e| ExecError::Internal(format!("reading the archive: {e}")))??;
        let manifest = &manifest;
        let areas = manifest.areas();
        let created_at = chrono::DateTime::parse_from_rfc3339(&manifest.created_at)
            .ok()
            .map(|t| t.timestamp_micros());
        let each = |value: &str| Arc::new(StringArray::from(vec![value; areas.len()])) as ArrayRef;
        let schema = show_backup_schema();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                each(&path.to_string()),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![created_at; areas.len()])
                        .with_timezone("UTC"),
                ),
                each(&manifest.kalamdb_version),
                each(&manifest.job_id),
                Arc::new(Int64Array::from(vec![
                    manifest.applied_seq as i64;
                    areas.len()
                ])),
                each(signature.as_str()),
                Arc::new(StringArray::from(vec![
                    manifest
                        .base
                        .as_ref()
                        .map(|b| b.path.as_str());
                    areas.len()
                ])),
                Arc::new(StringArray::from_iter_values(
                    areas.iter().map(|a| a.area.as_str()),
                )),
                Arc::new(Int64Array::from_iter_values(
                    areas.iter().map(|a| a.files as i64),
                )),
                Arc::new(Int64Array::from_iter_values(
                    areas.iter().map(|a| a.bytes as i64),
                )),
                Arc::new(Int64Array::from_iter_values(
                    areas.iter().map(|a| a.stored_files as i64),
                )),
                Arc::new(Int64Array::from_iter_values(
                    areas.iter().map(|a| a.stored_bytes as i64),
                )),
            ],
        )
        .map_err(|e| ExecError::Internal(e.to_string()))?;
        Ok(Outcome::rows(schema, vec![batch]))
    }

    pub(super) async fn cluster_snapshot(&self) -> ExecResult<Outcome> {
        if let Some(replica) = self.engine.cluster() {
            return self.snapshot_every_node(replica).await;
        }
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
