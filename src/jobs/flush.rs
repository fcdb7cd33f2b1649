//! FLUSH TABLE: moves a table's hot rows from RocksDB into an immutable Parquet segment.

use std::sync::Arc;

use super::{JobContext, JobError, JobResult, JobWork};
use crate::storage::flushed_rows::FlushedRows;
use crate::storage::rows::{self, RowDecoder};
use crate::storage::segments::{self, SegmentRecord};
use crate::storage::{Command, is_tombstone};

/// A flush's parameters are the job itself: resuming it after a restart deserializes the row's
/// `parameters` back into this struct.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FlushJob {
    pub table_id: u64,
    pub namespace: String,
    pub table: String,
    /// Rows per segment (`[flush] segment_rows`); a larger backlog is flushed as several.
    #[serde(default = "crate::config::default_segment_rows")]
    pub segment_rows: usize,
}

impl FlushJob {
    pub const JOB_TYPE: &'static str = "flush";
}

#[async_trait::async_trait]
impl JobWork for FlushJob {
    fn job_type(&self) -> &'static str {
        Self::JOB_TYPE
    }

    fn id_prefix(&self) -> &'static str {
        "FL"
    }

    fn serialized_on(&self) -> Option<String> {
        Some(format!("table {}", self.table_id))
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("flush parameters serialize")
    }

    async fn run(&self, ctx: JobContext) -> JobResult<String> {
        let work = self.clone();
        // RocksDB reads and Parquet writes block; keep them off the async workers.
        super::background::run_below_clients(
            "flush",
            super::background::JobPriority::Low,
            move || flush(&ctx, &work),
        )
        .await?
    }
}

fn flush(ctx: &JobContext, work: &FlushJob) -> JobResult<String> {
    let (namespace, table, table_id) =
        (work.namespace.as_str(), work.table.as_str(), work.table_id);
    // Zero would never finish a segment.
    let segment_rows = work.segment_rows.max(1);
    let store = &ctx.store;
    let record = match store.table(namespace, table)? {
        Some(record) if record.table_id == table_id => record,
        _ => {
            return Err(JobError::Failed(format!(
                "table {namespace}.{table} no longer exists"
            )));
        }
    };
    let columns = Arc::new(record.columns.clone());
    let schema = segments::segment_schema(&record.columns);
    let (mut flushed_rows, mut flushed_deletes, mut files, mut bytes) =
        (0u64, 0u64, Vec::new(), 0u64);
    // Each segment's scan starts after the last key of the one before: the rows already
    // flushed are deletion markers until compacted, and stepping over them again would make a
    // large flush quadratic. A row written meanwhile below that key stays hot for the next flush.
    let mut resume_after: Option<Vec<u8>> = None;
    loop {
        ctx.check_cancelled()?;
        let mut decoder = RowDecoder::new(columns.clone(), None);
        let mut read = FlushedRows::default();
        store.scan_rows_after(table_id, resume_after.as_deref(), |key, stored| {
            let tombstone = is_tombstone(stored);
            if !tombstone {
                decoder.push(rows::stored_payload(stored))?;
            }
            read.push(key, rows::stored_version(stored)?, tombstone);
            Ok(read.len() < segment_rows)
        })?;
        if read.is_empty() {
            break;
        }
        let segment_id = store.allocate_segment_id();
        let file =
            segments::table_dir(namespace, table).join(format!("seg-{segment_id:012}.parquet"));
        let row_count = decoder.len() as u64;
        let batch = segments::with_identity(
            decoder.finish(),
            read.live_keys(),
            read.live_versions(),
            schema.clone(),
        )?;
        let path = store.dir().storage().join(&file);
        let size = segments::write_segment(&path, schema.clone(), &[batch])?;
        crate::fault::crash_point("flush_before_publish");
        let segment = SegmentRecord {
            segment_id,
            table_id,
            file: file.to_string_lossy().into_owned(),
            rows: row_count,
            bytes: size,
            columns: record.columns.len(),
            created_at: crate::storage::now_micros(),
            column_ids: record.columns.iter().map(|c| c.id).collect(),
            column_names: record.columns.iter().map(|c| c.name.clone()).collect(),
        };
        let done = read.len() < segment_rows;
        resume_after = read.last_key().map(<[u8]>::to_vec);
        let applied = store.apply(&Command::FlushSegment {
            segment,
            rows: read,
        })?;
        flushed_deletes += applied.flushed_deletions;
        if applied.unpublished_segments.contains(&segment_id) {
            // No row of the file is live: it held only deletion markers (applied all the
            // same), or the table was truncated or dropped meanwhile, and then the next scan
            // finds nothing.
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), "removing an unpublished segment: {e}");
            }
        } else {
            flushed_rows += row_count;
            bytes += size;
            files.push(file.to_string_lossy().into_owned());
            ctx.progress(bytes, None)?;
        }
        if done {
            break;
        }
    }
    if files.is_empty() && flushed_deletes == 0 {
        return Ok(format!("{namespace}.{table} had no hot rows to flush"));
    }
    // The flushed rows left deletion markers behind; compacting them away keeps scans of the
    // table's hot rows from stepping over every row ever flushed.
    store.compact_rows(table_id)?;
    Ok(format!(
        "Flushed {flushed_rows} rows and {flushed_deletes} deletions of {namespace}.{table} into {} segment(s) ({bytes} bytes)",
        files.len()
    ))
}
