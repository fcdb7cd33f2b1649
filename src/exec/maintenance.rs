//! Statements that start or stop background jobs: FLUSH TABLE and KILL JOB.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::session::Outcome;
use super::{ExecError, ExecResult, Session};
use crate::jobs::FlushJob;
use crate::sql::TableName;
use crate::storage::TableKind;

/// The row a statement that queues a job returns.
pub(super) fn job_started_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("job_id", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
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
            }),
            self.user_id(),
        )?;
        job_started(
            &job_id,
            format!("Flush of {qualified} started. Job ID: {job_id}"),
        )
    }

    pub(super) fn kill_job(&self, job_id: &str) -> ExecResult<Outcome> {
        self.engine.jobs().cancel(job_id)?;
        Ok(Outcome::Done { tag: "KILL JOB" })
    }
}
