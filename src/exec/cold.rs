//! Reading a table's Parquet segments: one Parquet scan per segment, minus the keys that are
//! no longer live there (dead in that segment, or shadowed by a hot row or tombstone); and one
//! row read at the position the cold index records for its key.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal, in_list};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::scalar::ScalarValue;

use super::catalog::storage_error;
use crate::storage::rows::RowDecoder;
use crate::storage::segments::{SEGMENT_KEY_COLUMN, SEGMENT_VERSION_COLUMN, segment_schema};
use crate::storage::{ColdEntry, SegmentRecord, Store, TableRecord};

/// Builds the plan that reads `segments` of `record`, producing `output` (the table's projected
/// schema, hidden key/version columns included when requested): `projection` indexes into the
/// table columns followed by key and version.
pub fn scan_segments(
    store: &Store,
    record: &TableRecord,
    segments: &[SegmentRecord],
    shadowed: &HashSet<Vec<u8>>,
    projection: &[usize],
    output: SchemaRef,
) -> Result<Vec<Arc<dyn ExecutionPlan>>> {
    let columns = record.columns.len();
    let mut plans = Vec::with_capacity(segments.len());
    for segment in segments {
        // The file holds the columns the table had when it was written, then key and version.
        let file_schema = segment_schema(&record.columns[..segment.columns]);
        let key_index = segment.columns;
        let source = Arc::new(ParquetSource::new(file_schema.clone()));
        let path = store.segment_path(segment);
        let location = path.to_string_lossy().trim_start_matches('/').to_owned();
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source)
            .with_file(PartitionedFile::new(location, segment.bytes))
            .build();
        let mut plan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        let mut hidden = store.dead_keys(segment.segment_id).map_err(storage_error)?;
        hidden.extend(shadowed.iter().cloned());
        if !hidden.is_empty() {
            let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new(SEGMENT_KEY_COLUMN, key_index));
            let list: Vec<Arc<dyn PhysicalExpr>> = hidden
                .into_iter()
                .map(|k| {
                    Arc::new(Literal::new(ScalarValue::Binary(Some(k)))) as Arc<dyn PhysicalExpr>
                })
                .collect();
            let predicate = in_list(key, list, &true, file_schema.as_ref())?;
            plan = Arc::new(FilterExec::try_new(predicate, plan)?);
        }
        let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::with_capacity(projection.len());
        for (out, &index) in projection.iter().enumerate() {
            let name = output.field(out).name().clone();
            let expr: Arc<dyn PhysicalExpr> = if index < segment.columns {
                Arc::new(Column::new(file_schema.field(index).name(), index))
            } else if index < columns {
                Arc::new(Literal::new(missing_value(record, index)?))
            } else if index == columns {
                Arc::new(Column::new(SEGMENT_KEY_COLUMN, key_index))
            } else {
                Arc::new(Column::new(SEGMENT_VERSION_COLUMN, key_index + 1))
            };
            exprs.push((expr, name));
        }
        plans.push(Arc::new(ProjectionExec::try_new(exprs, plan)?) as Arc<dyn ExecutionPlan>);
    }
    Ok(plans)
}

/// The cold copy of one row, read at the position `entry` records, as `output` (`projection`
/// as in `scan_segments`). `None` when the entry has no position (written before positions
/// were kept) or names none of `segments`: the caller scans for the key instead.
pub fn read_cold_row(
    store: &Store,
    record: &TableRecord,
    segments: &[SegmentRecord],
    entry: ColdEntry,
    projection: &[usize],
    output: SchemaRef,
) -> Result<Option<RecordBatch>> {
    let Some(row) = entry.row else {
        return Ok(None);
    };
    let Some(segment) = segments.iter().find(|s| s.segment_id == entry.segment_id) else {
        return Ok(None);
    };
    let columns = record.columns.len();
    // Where each projected column is in the file; `None` for one added after the segment.
    let in_file = |index: usize| -> Option<usize> {
        if index < segment.columns {
            Some(index)
        } else if index == columns {
            Some(segment.columns)
        } else if index > columns {
            Some(segment.columns + 1)
        } else {
            None
        }
    };
    let mut wanted: Vec<usize> = projection.iter().filter_map(|&i| in_file(i)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let batch = store
        .read_segment_row(segment, row, &wanted)
        .map_err(storage_error)?;
    let arrays = projection
        .iter()
        .zip(output.fields())
        .map(|(&index, field)| {
            let array: ArrayRef = match in_file(index) {
                Some(at) => batch
                    .column(
                        wanted
                            .binary_search(&at)
                            .expect("every wanted column is read"),
                    )
                    .clone(),
                None => missing_value(record, index)?.to_array_of_size(1)?,
            };
            if array.data_type() == field.data_type() {
                Ok(array)
            } else {
                Ok(cast(&array, field.data_type())?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(1));
    Ok(Some(RecordBatch::try_new_with_options(
        output, arrays, &options,
    )?))
}

/// What a column added after a segment was written reads as in that segment.
fn missing_value(record: &TableRecord, index: usize) -> Result<ScalarValue> {
    let column = &record.columns[index];
    let mut decoder = RowDecoder::new(Arc::new(vec![column.clone()]), None);
    decoder
        .push(column.missing_value.as_deref().unwrap_or(&[0]))
        .map_err(storage_error)?;
    ScalarValue::try_from_array(&decoder.finish()[0], 0)
}
