//! Reading a table's Parquet segments: one Parquet scan per segment, minus the keys that are
//! no longer live there (dead in that segment, or shadowed by a hot row or tombstone); and one
//! row read at the position the cold index records for its key.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, PlanProperties, ReplaceChildrenOptions,
};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

use super::catalog::storage_error;
use crate::storage::rows::RowDecoder;
use crate::storage::{ColdEntry, OwnedView, ReadView, SegmentRecord, Store, TableRecord};

/// The hot rows that hide their keys' flushed copies from a segment scan.
#[derive(Default)]
pub struct Shadowed {
    /// Keys hidden outright, sorted: hot keys (listed while planning) and the session's
    /// uncommitted keys that have flushed copies.
    pub keys: Arc<Vec<Vec<u8>>>,
    /// Set when the table has too many hot rows to list while planning: a flushed row whose
    /// key lies within the hot keys' bounds is looked up among them as the scan meets it.
    pub lookup: Option<Arc<HotLookup>>,
}

/// Looks flushed rows' keys up among the hot rows of the scan's snapshot.
#[derive(Debug)]
pub struct HotLookup {
    pub view: Arc<OwnedView>,
    /// The first and last hot key: no key outside them is hot.
    pub low: Vec<u8>,
    pub high: Vec<u8>,
}

impl HotLookup {
    /// Clears `keep[i]` for each row whose key has a hot row (or deletion marker).
    fn hide_hot(
        &self,
        keys: &datafusion::arrow::array::BinaryArray,
        keep: &mut [bool],
    ) -> Result<()> {
        let candidates: Vec<(usize, &[u8])> = keys
            .iter()
            .enumerate()
            .filter_map(|(i, key)| key.map(|k| (i, k)))
            .filter(|&(i, key)| {
                keep[i] && key >= self.low.as_slice() && key <= self.high.as_slice()
            })
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let probe: Vec<&[u8]> = candidates.iter().map(|&(_, key)| key).collect();
        let present = self
            .view
            .view()
            .hot_rows_present(&probe)
            .map_err(storage_error)?;
        for ((i, _), hot) in candidates.into_iter().zip(present) {
            if hot {
                keep[i] = false;
            }
        }
        Ok(())
    }
}

/// Builds the plan that reads `segments` of `record`, producing `output` (the table's projected
/// schema, hidden key/version columns included when requested): `projection` indexes into the
/// table columns followed by key and version.
pub fn scan_segments(
    store: &Store,
    view: &ReadView<'_>,
    record: &TableRecord,
    segments: &[SegmentRecord],
    shadowed: &Shadowed,
    projection: &[usize],
    output: SchemaRef,
) -> Result<Vec<Arc<dyn ExecutionPlan>>> {
    let columns = record.columns.len();
    let mut plans = Vec::with_capacity(segments.len());
    for segment in segments {
        // The file holds columns by id, then key and version; only the table's are scanned.
        let (file_schema, held) = segment.scan_schema(&record.columns);
        // A NOT NULL column the file lacks and that has no missing value was retyped after
        // the segment was written: that rewrote every row hot (under new keys, for a key
        // column), so no row of this segment is live, and none could be read as NOT NULL.
        let retyped_since = record
            .columns
            .iter()
            .zip(&held)
            .any(|(c, at)| at.is_none() && !c.nullable && c.missing_value.is_none());
        if retyped_since {
            continue;
        }
        let key_index = file_schema.fields().len() - 2;
        let source = Arc::new(ParquetSource::new(file_schema.clone()));
        let path = store.segment_path(segment);
        let location = path.to_string_lossy().trim_start_matches('/').to_owned();
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source)
            .with_file(PartitionedFile::new(location, segment.bytes))
            .build();
        let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        let dead = view.dead_keys(segment.segment_id).map_err(storage_error)?;
        let filtered = !dead.is_empty() || !shadowed.keys.is_empty() || shadowed.lookup.is_some();
        let in_file = |index: usize| file_column(&held, key_index, columns, index);
        // Only the file columns needed are read (the key too when rows are to be dropped by
        // it): a projection right above the scan, which DataFusion folds into it.
        let mut read: Vec<usize> = projection.iter().filter_map(|&i| in_file(i)).collect();
        if filtered {
            read.push(key_index);
        }
        read.sort_unstable();
        read.dedup();
        let read_exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = read
            .iter()
            .map(|&i| {
                let name = file_schema.field(i).name().clone();
                (
                    Arc::new(Column::new(&name, i)) as Arc<dyn PhysicalExpr>,
                    name,
                )
            })
            .collect();
        let mut plan: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(read_exprs, scan)?);
        let position = |file_index: usize| read.binary_search(&file_index).expect("column is read");
        if filtered {
            let mut dead: Vec<Vec<u8>> = dead.into_iter().collect();
            dead.sort_unstable();
            plan = Arc::new(WithoutKeys {
                input: plan,
                key_column: position(key_index),
                dead: Arc::new(dead),
                shadowed: shadowed.keys.clone(),
                lookup: shadowed.lookup.clone(),
            });
        }
        let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::with_capacity(projection.len());
        for (out, &index) in projection.iter().enumerate() {
            let name = output.field(out).name().clone();
            let expr: Arc<dyn PhysicalExpr> = match in_file(index) {
                Some(at) => Arc::new(Column::new(file_schema.field(at).name(), position(at))),
                None => Arc::new(Literal::new(missing_value(record, index)?)),
            };
            exprs.push((expr, name));
        }
        plans.push(Arc::new(ProjectionExec::try_new(exprs, plan)?) as Arc<dyn ExecutionPlan>);
    }
    Ok(plans)
}

/// Where column `index` of a table with `table_columns` columns (then its hidden key and
/// version, as projections number them) is among a segment's columns, given where its table
/// columns are (`held`) and its key (the version follows it); `None` for a column the file
/// does not hold (added or retyped since it was written).
fn file_column(
    held: &[Option<usize>],
    key: usize,
    table_columns: usize,
    index: usize,
) -> Option<usize> {
    match index.cmp(&table_columns) {
        std::cmp::Ordering::Less => held.get(index).copied().flatten(),
        std::cmp::Ordering::Equal => Some(key),
        std::cmp::Ordering::Greater => Some(key + 1),
    }
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
    let layout = segment.layout(&record.columns);
    let in_file =
        |index: usize| file_column(&layout.positions, layout.key_position, columns, index);
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

/// Drops the rows whose key is dead in the segment, shadowed by a hot row or tombstone, or
/// found hot by `lookup`. The two key lists are sorted and a segment's rows come in key order,
/// so a cursor walks each list alongside them:
/// about one comparison per row, and no pruning predicate built from the keys, whose number
/// grows with every update of a flushed row (as an IN list, 100,000 of them made a 1-million-
/// row GROUP BY 20x slower).
#[derive(Debug)]
struct WithoutKeys {
    input: Arc<dyn ExecutionPlan>,
    key_column: usize,
    /// Keys dead in this segment.
    dead: Arc<Vec<Vec<u8>>>,
    /// Keys shadowed in every segment of the scan (one list, shared).
    shadowed: Arc<Vec<Vec<u8>>>,
    lookup: Option<Arc<HotLookup>>,
}

/// Walks a sorted key list alongside ascending keys; a key below the previous one (rows out
/// of key order) restarts the walk with a binary search, so any order is answered right.
struct HiddenCursor {
    hidden: Arc<Vec<Vec<u8>>>,
    next: usize,
    /// The last key asked about (its buffer reused, so a row costs no allocation).
    previous: Vec<u8>,
}

impl HiddenCursor {
    fn new(hidden: Arc<Vec<Vec<u8>>>) -> Self {
        HiddenCursor {
            hidden,
            next: 0,
            previous: Vec::new(),
        }
    }

    fn hides(&mut self, key: &[u8]) -> bool {
        if key < self.previous.as_slice() {
            self.next = self.hidden.partition_point(|h| h.as_slice() < key);
        }
        while self.next < self.hidden.len() && self.hidden[self.next].as_slice() < key {
            self.next += 1;
        }
        self.previous.clear();
        self.previous.extend_from_slice(key);
        self.hidden.get(self.next).is_some_and(|h| h == key)
    }
}

impl DisplayAs for WithoutKeys {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "WithoutKeys: {} dead, {} shadowed keys",
            self.dead.len(),
            self.shadowed.len()
        )
    }
}

impl ExecutionPlan for WithoutKeys {
    fn name(&self) -> &'static str {
        "WithoutKeys"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(WithoutKeys {
            input: children.swap_remove(0),
            key_column: self.key_column,
            dead: self.dead.clone(),
            shadowed: self.shadowed.clone(),
            lookup: self.lookup.clone(),
        }))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let key_column = self.key_column;
        let mut dead = HiddenCursor::new(self.dead.clone());
        let mut shadowed = HiddenCursor::new(self.shadowed.clone());
        let lookup = self.lookup.clone();
        let kept = input.map(move |batch| {
            let batch = batch?;
            let keys = batch.column(key_column).as_binary::<i32>();
            let mut keep: Vec<bool> = keys
                .iter()
                .map(|key| key.is_none_or(|k| !dead.hides(k) && !shadowed.hides(k)))
                .collect();
            if let Some(lookup) = &lookup {
                lookup.hide_hot(keys, &mut keep)?;
            }
            Ok(filter_record_batch(&batch, &BooleanArray::from(keep))?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), kept)))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_hides_exactly_the_listed_keys_in_any_order() {
        let hidden: Vec<Vec<u8>> = [2u8, 5, 6, 9].iter().map(|k| vec![*k]).collect();
        let mut cursor = HiddenCursor::new(Arc::new(hidden));
        let ascending: Vec<bool> = (0u8..12).map(|k| cursor.hides(&[k])).collect();
        let expected: Vec<bool> = (0u8..12).map(|k| [2, 5, 6, 9].contains(&k)).collect();
        assert_eq!(ascending, expected);
        for k in [6u8, 1, 9, 2, 2, 0, 11, 5] {
            assert_eq!(cursor.hides(&[k]), [2, 5, 6, 9].contains(&k), "key {k}");
        }
    }
}
