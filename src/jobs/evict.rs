//! TTL eviction: drops a stream table's commit-log files once every row in them has expired.

use serde_json::json;

use super::{JobContext, JobError, JobResult, JobWork};
use crate::model::TableKind;
use crate::storage::{Command, now_micros};

pub struct StreamEvictJob {
    pub table_id: u64,
    pub namespace: String,
    pub table: String,
}

/// Log files of a stream table whose newest row is past the TTL: (number, path, bytes).
pub fn expired_files(
    store: &crate::storage::Store,
    table_id: u64,
    ttl_seconds: u64,
) -> JobResult<Vec<(u64, std::path::PathBuf, u64)>> {
    let cutoff = now_micros() - ttl_seconds as i64 * 1_000_000;
    let state = store.stream_state(table_id)?;
    let last = state.files.last().map(|f| f.number);
    Ok(state
        .files
        .iter()
        // The file being appended to is kept even when idle, so appends never lose their place.
        .filter(|f| f.last_appended_at < cutoff && Some(f.number) != last)
        .map(|f| (f.number, store.streams_root().join(&f.file), f.len))
        .collect())
}

#[async_trait::async_trait]
impl JobWork for StreamEvictJob {
    fn job_type(&self) -> &'static str {
        "ttl_evict"
    }

    fn id_prefix(&self) -> &'static str {
        "EV"
    }

    fn parameters(&self) -> serde_json::Value {
        json!({ "namespace": self.namespace, "table": self.table, "table_id": self.table_id })
    }

    async fn run(&self, ctx: JobContext) -> JobResult<String> {
        let store = &ctx.store;
        let ttl = match store.table(&self.namespace, &self.table)? {
            Some(t) if t.table_id == self.table_id => match t.kind {
                TableKind::Stream { ttl_seconds } => ttl_seconds,
                TableKind::Regular => return Err(JobError::Failed("not a stream table".into())),
            },
            _ => {
                return Err(JobError::Failed(format!(
                    "table {}.{} no longer exists",
                    self.namespace, self.table
                )));
            }
        };
        let expired = expired_files(store, self.table_id, ttl)?;
        let numbers: Vec<u64> = expired.iter().map(|(n, _, _)| *n).collect();
        store.apply(&Command::EvictStreamFiles {
            table_id: self.table_id,
            numbers,
        })?;
        let mut bytes = 0;
        for (_, path, len) in &expired {
            // Unreferenced from here on; a crash before removal leaves it to the start-up sweep.
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(file = %path.display(), "removing an evicted stream log: {e}");
            }
            bytes += len;
        }
        Ok(format!(
            "Evicted {} expired log file(s) ({bytes} bytes) of {}.{}",
            expired.len(),
            self.namespace,
            self.table
        ))
    }
}
