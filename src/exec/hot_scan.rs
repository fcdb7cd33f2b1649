//! Reading a table's hot rows (RocksDB) merged with the session's uncommitted ones, in key
//! order, a bounded batch at a time: the scan plan that streams them from a snapshot taken at
//! planning, and the batch builder the point reads share.
//!
//! A full scan must not hold the table in memory: it reads `BATCH_ROWS` rows, hands them on,
//! and resumes after the last key it gave, always in the snapshot its plan was made with. Each
//! batch is read on a blocking thread while the consumer works on the one before, so decoding
//! rows and whatever consumes them (a COPY TO's encoder, an aggregate) use both cores.

use std::ops::Bound;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Int64Builder, RecordBatch, RecordBatchOptions,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use super::catalog::storage_error;
use super::table::{CommittedRows, PendingRows};
use crate::model::ColumnDef;
use crate::storage::rows::{self, RowDecoder};
use crate::storage::{OwnedView, ReadView, StorageResult, TableRecord, is_tombstone};

/// Rows per batch a scan hands on: DataFusion's own batch size.
pub(super) const BATCH_ROWS: usize = 8192;

/// Builds one batch of a table's rows, `projection` of its scan schema: the table's columns,
/// then (for a DML scan) each row's key and stored version.
pub(super) struct RowBatchBuilder {
    schema: SchemaRef,
    table_columns: usize,
    projection: Vec<usize>,
    columns: Arc<Vec<ColumnDef>>,
    decoder: RowDecoder,
    keys: Option<BinaryBuilder>,
    versions: Option<Int64Builder>,
}

impl RowBatchBuilder {
    /// `scan_schema`: the table's columns plus the hidden key and version columns when the
    /// scan has them; `projection` indexes it.
    pub fn new(
        record: &TableRecord,
        scan_schema: &SchemaRef,
        projection: &[usize],
    ) -> Result<Self> {
        let table_columns = record.columns.len();
        let data: Vec<usize> = projection
            .iter()
            .copied()
            .filter(|&i| i < table_columns)
            .collect();
        let wants = |column: usize| projection.contains(&column);
        let columns = Arc::new(record.columns.clone());
        Ok(RowBatchBuilder {
            schema: Arc::new(scan_schema.project(projection)?),
            table_columns,
            projection: projection.to_vec(),
            decoder: RowDecoder::new(columns.clone(), Some(&data)),
            columns,
            keys: wants(table_columns).then(BinaryBuilder::new),
            versions: wants(table_columns + 1).then(Int64Builder::new),
        })
    }

    /// Adds a row: its key, its stored version (`None` for the session's own row) and its
    /// encoded columns, re-encoded from `stored_layout` first when that is given.
    pub fn push(
        &mut self,
        key: &[u8],
        version: Option<u64>,
        row: &[u8],
        stored_layout: Option<&[ColumnDef]>,
    ) -> StorageResult<()> {
        match (version, stored_layout) {
            (Some(_), Some(stored)) => {
                self.decoder
                    .push(&rows::relayout(stored, &self.columns, row)?)?
            }
            _ => self.decoder.push(row)?,
        }
        if let Some(keys) = &mut self.keys {
            keys.append_value(key);
        }
        if let Some(versions) = &mut self.versions {
            versions.append_option(version.map(|v| v as i64));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.decoder.len()
    }

    pub fn finish(self) -> Result<RecordBatch> {
        let rows = self.decoder.len();
        let mut data = self.decoder.finish().into_iter();
        let mut keys = self.keys.map(|mut b| Arc::new(b.finish()) as ArrayRef);
        let mut versions = self.versions.map(|mut b| Arc::new(b.finish()) as ArrayRef);
        let arrays: Vec<ArrayRef> = self
            .projection
            .iter()
            .map(|&i| {
                if i < self.table_columns {
                    data.next().expect("one array per projected column")
                } else if i == self.table_columns {
                    keys.take().expect("key column once")
                } else {
                    versions.take().expect("version column once")
                }
            })
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.schema,
            arrays,
            &options,
        )?)
    }
}

/// What a range read takes rows from.
pub(super) struct RowSource<'a> {
    pub record: &'a TableRecord,
    pub scan_schema: &'a SchemaRef,
    pub committed: &'a CommittedRows,
    pub pending: Option<&'a PendingRows>,
}

/// Up to `max_rows` live rows after `after` (from the first when `None`), in key order: the
/// session's version of a key wins over the committed one. Returns them with the key to resume
/// after, or `None` when no rows are left.
pub(super) fn read_chunk(
    view: &ReadView<'_>,
    source: &RowSource<'_>,
    projection: &[usize],
    after: Option<&[u8]>,
    max_rows: usize,
) -> Result<(RecordBatch, Option<Vec<u8>>)> {
    let mut batch = RowBatchBuilder::new(source.record, source.scan_schema, projection)?;
    let stored_layout = match source.committed {
        CommittedRows::Relayout(columns) => Some(columns.as_slice()),
        _ => None,
    };
    let empty = PendingRows::new();
    let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut overlay = source
        .pending
        .unwrap_or(&empty)
        .range::<[u8], _>((lower, Bound::Unbounded))
        .peekable();
    // The key of the row that filled the batch: the next batch starts after it.
    let mut filled_at: Option<Vec<u8>> = None;
    let mut visit = |key: &[u8], stored: &[u8]| -> StorageResult<bool> {
        // The session's own rows that sort before this stored one come first.
        while let Some((pending_key, row)) = overlay.next_if(|(k, _)| k.as_slice() < key) {
            if let Some(row) = row {
                batch.push(pending_key, None, row, None)?;
                if batch.len() >= max_rows {
                    filled_at = Some(pending_key.clone());
                    return Ok(false);
                }
            }
        }
        if let Some((_, row)) = overlay.next_if(|(k, _)| k.as_slice() == key) {
            if let Some(row) = row {
                batch.push(key, None, row, None)?;
            }
        } else if !is_tombstone(stored) {
            let version = rows::stored_version(stored)?;
            batch.push(
                key,
                Some(version),
                rows::stored_payload(stored),
                stored_layout,
            )?;
        }
        if batch.len() >= max_rows {
            filled_at = Some(key.to_vec());
            return Ok(false);
        }
        Ok(true)
    };
    // A table the block truncated has only the block's rows.
    if !matches!(source.committed, CommittedRows::Hidden) {
        let table_id = source.record.table_id;
        match after {
            Some(after) => view.scan_rows_after(table_id, after, &mut visit),
            None => view.scan_rows(table_id, &mut visit),
        }
        .map_err(storage_error)?;
    }
    if filled_at.is_none() {
        for (key, row) in overlay {
            if let Some(row) = row {
                batch.push(key, None, row, None).map_err(storage_error)?;
                if batch.len() >= max_rows {
                    filled_at = Some(key.clone());
                    break;
                }
            }
        }
    }
    Ok((batch.finish()?, filled_at))
}

/// A full scan of a table's hot rows as the plan's snapshot shows them, streamed in batches.
#[derive(Debug)]
pub struct HotScanExec {
    source: Arc<HotSource>,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
}

/// What a streaming scan reads: everything a chunk read needs, shared with each blocking read.
#[derive(Debug)]
pub(super) struct HotSource {
    pub view: Arc<OwnedView>,
    pub record: Arc<TableRecord>,
    pub scan_schema: SchemaRef,
    pub committed: CommittedRows,
    /// A copy of the session's uncommitted rows of the table, if it has any.
    pub pending: Option<Arc<PendingRows>>,
    /// Indexes into `scan_schema`.
    pub projection: Vec<usize>,
}

impl HotSource {
    fn read(
        &self,
        after: Option<&[u8]>,
        max_rows: usize,
    ) -> Result<(RecordBatch, Option<Vec<u8>>)> {
        let source = RowSource {
            record: &self.record,
            scan_schema: &self.scan_schema,
            committed: &self.committed,
            pending: self.pending.as_deref(),
        };
        read_chunk(self.view.view(), &source, &self.projection, after, max_rows)
    }
}

impl HotScanExec {
    pub(super) fn new(source: HotSource, limit: Option<usize>) -> Result<Self> {
        let output = Arc::new(source.scan_schema.project(&source.projection)?);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(output),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(HotScanExec {
            source: Arc::new(source),
            limit,
            properties,
        })
    }

    /// Sends the rows batch by batch until none are left, the limit is reached or the
    /// consumer goes away. Each batch is read on a blocking thread that is given back before
    /// waiting for the consumer: a client that leaves a portal half-read holds no thread.
    fn produce(
        &self,
        tx: tokio::sync::mpsc::Sender<Result<RecordBatch>>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let source = self.source.clone();
        let mut remaining = self.limit.unwrap_or(usize::MAX);
        async move {
            let mut after: Option<Vec<u8>> = None;
            while remaining > 0 {
                let want = remaining.min(BATCH_ROWS);
                let (reader, from) = (source.clone(), after.take());
                let read = tokio::task::spawn_blocking(move || reader.read(from.as_deref(), want))
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                let (batch, resume) = match read {
                    Ok(read) => read,
                    Err(error) => {
                        let _ = tx.send(Err(error)).await;
                        return Ok(());
                    }
                };
                remaining -= batch.num_rows();
                if batch.num_rows() > 0 && tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
                match resume {
                    Some(key) => after = Some(key),
                    None => break,
                }
            }
            Ok(())
        }
    }
}

impl DisplayAs for HotScanExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "HotScanExec: table={}", self.source.record.table_id)
    }
}

impl ExecutionPlan for HotScanExec {
    fn name(&self) -> &'static str {
        "HotScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        // One batch read ahead: the reader stays a batch in front of its consumer.
        let mut builder = RecordBatchReceiverStream::builder(self.schema(), 1);
        builder.spawn(self.produce(builder.tx()));
        Ok(builder.build())
    }
}
