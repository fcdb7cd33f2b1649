//! CREATE INDEX on a table with rows: adds the entries of the rows the table had, a chunk per
//! command, while writes go on (they keep the building index's entries themselves), then
//! marks the index ready. A build that fails or is cancelled drops its index, so nothing is
//! left half built; one a crash interrupted is started again when the server starts.

use std::sync::Mutex;

use super::{JobContext, JobError, JobResult, JobWork};
use crate::storage::{Command, Conflict, IndexState, StorageError};

/// Rows per `AddIndexEntries` command: large enough to amortise a command, small enough not to
/// hold up other writers for long.
const CHUNK_ROWS: usize = 5000;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct IndexBuildJob {
    pub table_id: u64,
    pub namespace: String,
    pub index: String,
    pub index_id: u64,
    /// Why the build failed, when it was a conflict (a duplicate value for a unique index), so
    /// that CREATE INDEX can report it with its SQLSTATE.
    #[serde(skip)]
    pub conflict: Mutex<Option<Conflict>>,
}

impl IndexBuildJob {
    pub const JOB_TYPE: &'static str = "index_build";

    pub fn new(table_id: u64, namespace: String, index: String, index_id: u64) -> Self {
        IndexBuildJob {
            table_id,
            namespace,
            index,
            index_id,
            conflict: Mutex::new(None),
        }
    }

    pub fn conflict(&self) -> Option<Conflict> {
        self.conflict.lock().expect("build conflict").clone()
    }
}

#[async_trait::async_trait]
impl JobWork for IndexBuildJob {
    fn job_type(&self) -> &'static str {
        Self::JOB_TYPE
    }

    fn id_prefix(&self) -> &'static str {
        "IX"
    }

    fn serialized_on(&self) -> Option<String> {
        Some(format!("index {}", self.index_id))
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("index build parameters serialize")
    }

    async fn run(&self, ctx: JobContext) -> JobResult<String> {
        let (table_id, index, index_id) = (self.table_id, self.index.clone(), self.index_id);
        let store = ctx.store.clone();
        let outcome = super::background::run_below_clients(
            "index-build",
            super::background::JobPriority::Low,
            move || build(&ctx, table_id, &index, index_id),
        )
        .await
        .and_then(|built| built);
        if outcome.is_err() {
            if let Err(JobError::Storage(StorageError::Conflict(conflict))) = &outcome {
                *self.conflict.lock().expect("build conflict") = Some(conflict.clone());
            }
            let drop = Command::DropIndex {
                namespace: self.namespace.clone(),
                name: self.index.clone(),
            };
            let ours = store
                .indexes_of(table_id)?
                .iter()
                .any(|i| i.name == self.index && i.index_id == index_id);
            if ours && let Err(e) = store.apply(&drop) {
                tracing::warn!(
                    index = self.index,
                    "dropping an index whose build failed: {e}"
                );
            }
        }
        outcome
    }
}

fn build(ctx: &JobContext, table_id: u64, name: &str, index_id: u64) -> JobResult<String> {
    let store = &ctx.store;
    let gone = || JobError::Failed(format!("index \"{name}\" no longer exists"));
    let index = store
        .indexes_of(table_id)?
        .into_iter()
        .find(|i| i.name == name && i.index_id == index_id)
        .ok_or_else(gone)?;
    if index.state == IndexState::Ready {
        return Ok(format!("index \"{name}\" was already built"));
    }
    let table = store.table_by_id(table_id)?.ok_or_else(gone)?;
    // Every row written from here on is indexed by its own write; the rows read below are
    // those the table had, each added only while it is still the version read.
    let view = store.view();
    let mut total = view.segments(table_id)?.iter().map(|s| s.rows).sum::<u64>();
    view.scan_rows(table_id, |_, _| {
        total += 1;
        Ok(true)
    })?;
    ctx.progress(0, Some(total))?;
    let mut done = 0u64;
    let mut cancelled = false;
    store.rows_to_index(&view, &table, CHUNK_ROWS, |rows| {
        if ctx.is_cancelled() {
            cancelled = true;
            return Ok(false);
        }
        done += rows.len() as u64;
        store.apply(&Command::AddIndexEntries {
            table_id,
            index: name.to_owned(),
            rows,
        })?;
        crate::fault::crash_point("index_build_chunk");
        if let Err(e) = ctx.progress(done, Some(total.max(done))) {
            tracing::warn!("recording index build progress: {e}");
        }
        Ok(true)
    })?;
    if cancelled {
        return Err(JobError::Cancelled);
    }
    store.apply(&Command::IndexReady {
        table_id,
        name: name.to_owned(),
        index_id,
    })?;
    Ok(format!(
        "Built index {}.{name} over {done} rows of {}",
        index.namespace, table.name
    ))
}
