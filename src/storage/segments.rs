//! Cold storage: immutable Parquet segments under `storage/<namespace>/<table>/`, their manifest,
//! the primary-key index of cold rows, and the keys a newer version made dead.
//!
//! A segment holds a table's columns plus its row key and version, sorted by key. A key is live
//! in at most one place: the hot rows (a row or a tombstone) shadow every segment, and when a
//! newer version of a key is flushed the older segment's copy is recorded as dead. Segments are
//! written to a temporary file, fsynced and renamed before the command that publishes them, so a
//! crash leaves at most an unreferenced file, which the next start deletes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use datafusion::parquet::basic::{Compression, Encoding};
use datafusion::parquet::file::metadata::RowGroupMetaData;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use super::segment_cache::SegmentCache;
use super::{StorageError, StorageResult};
use crate::model::types::ColumnDef;

/// Rows per data page, and the largest dictionary page, of a segment column.
const PAGE_ROWS: usize = 1024;
const DICTIONARY_BYTES: usize = 64 * 1024;

/// Columns every segment carries after the table's own.
pub const SEGMENT_KEY_COLUMN: &str = "__kalamdb_key";
pub const SEGMENT_VERSION_COLUMN: &str = "__kalamdb_version";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredSegmentRecord")]
pub struct SegmentRecord {
    pub segment_id: u64,
    pub table_id: u64,
    /// Relative to the data directory's `storage/`.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    /// How many table columns the file holds; its row key and version follow them.
    pub columns: usize,
    pub created_at: i64,
    /// The id of each of those columns, in file order. A file column is the table's column
    /// with its id, whatever that column is called or wherever it sits now; one whose id the
    /// table no longer has was dropped or retyped since, and is not read.
    pub column_ids: Vec<u32>,
    /// The names of those columns as written in the file, which a scan asks the file for.
    /// Empty in segments written before renames existed (their names are the table's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_names: Vec<String>,
}

/// A segment record as stored, including those written before column ids.
#[derive(Deserialize)]
struct StoredSegmentRecord {
    segment_id: u64,
    table_id: u64,
    file: String,
    rows: u64,
    bytes: u64,
    columns: usize,
    created_at: i64,
    #[serde(default)]
    column_ids: Vec<u32>,
    #[serde(default)]
    column_names: Vec<String>,
    /// Before ids: the columns dropped or (`replaced`) retyped since, by place in the file.
    #[serde(default)]
    dropped: Vec<LegacyDroppedColumn>,
}

#[derive(Deserialize)]
struct LegacyDroppedColumn {
    file_position: usize,
    #[serde(default)]
    replaced: bool,
}

/// The id a legacy segment's dropped or retyped-away column reads as: no column has it.
const RETIRED_COLUMN_ID: u32 = u32::MAX - 1;

impl From<StoredSegmentRecord> for SegmentRecord {
    fn from(stored: StoredSegmentRecord) -> Self {
        let mut column_ids = stored.column_ids;
        if column_ids.is_empty() {
            // Before ids, a file's columns were the table's columns in order (a table's ids
            // were then given by position), less the ones recorded as dropped or retyped.
            let mut table_column = 0u32;
            for position in 0..stored.columns {
                match stored.dropped.iter().rfind(|d| d.file_position == position) {
                    Some(dropped) => {
                        column_ids.push(RETIRED_COLUMN_ID);
                        if dropped.replaced {
                            table_column += 1;
                        }
                    }
                    None => {
                        column_ids.push(table_column);
                        table_column += 1;
                    }
                }
            }
        }
        SegmentRecord {
            segment_id: stored.segment_id,
            table_id: stored.table_id,
            file: stored.file,
            rows: stored.rows,
            bytes: stored.bytes,
            columns: stored.columns,
            created_at: stored.created_at,
            column_ids,
            column_names: stored.column_names,
        }
    }
}

/// How a table's columns are found in one segment's file, by column id.
pub struct SegmentLayout {
    /// For each table column, its position in the file; `None` when the file does not hold
    /// it (added or retyped after the segment was written: it reads as its missing value).
    pub positions: Vec<Option<usize>>,
    /// Where the row key is in the file (the version follows it).
    pub key_position: usize,
}

impl SegmentRecord {
    /// Where the columns of a table defined as `columns` are in this segment's file.
    pub fn layout(&self, columns: &[ColumnDef]) -> SegmentLayout {
        SegmentLayout {
            positions: columns
                .iter()
                .map(|column| self.column_ids.iter().position(|&id| id == column.id))
                .collect(),
            key_position: self.columns,
        }
    }

    /// The schema to scan this segment's file with, for a table defined as `columns`: the
    /// table columns the file holds, under the names the file gives them, then the row key and
    /// version; and each table column's index in it. Other file columns are left unread.
    pub fn scan_schema(&self, columns: &[ColumnDef]) -> (SchemaRef, Vec<Option<usize>>) {
        let layout = self.layout(columns);
        let mut held: Vec<(usize, usize)> = layout
            .positions
            .iter()
            .enumerate()
            .filter_map(|(column, position)| position.map(|p| (p, column)))
            .collect();
        held.sort_unstable();
        let mut indexes = vec![None; columns.len()];
        let mut fields = Vec::with_capacity(held.len() + 2);
        for (index, &(position, column)) in held.iter().enumerate() {
            let def = &columns[column];
            let name = self.column_names.get(position).unwrap_or(&def.name);
            fields.push(def.sql_type.field(name, def.nullable));
            indexes[column] = Some(index);
        }
        fields.push(Field::new(SEGMENT_KEY_COLUMN, DataType::Binary, false));
        fields.push(Field::new(SEGMENT_VERSION_COLUMN, DataType::Int64, false));
        (Arc::new(Schema::new(fields)), indexes)
    }
}

/// The Arrow schema of a segment written for `columns`.
pub fn segment_schema(columns: &[ColumnDef]) -> SchemaRef {
    let mut fields: Vec<Field> = columns.iter().map(ColumnDef::field).collect();
    fields.push(Field::new(SEGMENT_KEY_COLUMN, DataType::Binary, false));
    fields.push(Field::new(SEGMENT_VERSION_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// Writes `batches` (already in segment schema) to `final_path` durably: a temporary file,
/// fsync, rename, fsync of the directory. Returns the file size.
pub fn write_segment(
    final_path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> StorageResult<u64> {
    let dir = final_path.parent().expect("segment paths have a directory");
    std::fs::create_dir_all(dir)
        .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
    let tmp = final_path.with_extension("parquet.tmp");
    let io =
        |what: &str, e: std::io::Error| StorageError::io(format!("{what} {}", tmp.display()), e);
    let file = File::create(&tmp).map_err(|e| io("creating", e))?;
    // Small pages and a small dictionary: a point read decompresses one page per column it
    // reads (and that column's dictionary), so both bound what one lookup costs. Low-cardinality
    // columns still fit their dictionary; unique ones (the key) skip it. LZ4: a point read of a
    // zstd segment spent a fifth of its time creating zstd contexts (the parquet codec makes
    // them per column chunk read) and a fifth decompressing.
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_dictionary_page_size_limit(DICTIONARY_BYTES)
        .set_column_dictionary_enabled(ColumnPath::from(SEGMENT_KEY_COLUMN), false)
        .set_column_dictionary_enabled(ColumnPath::from(SEGMENT_VERSION_COLUMN), false);
    // Integers that outgrow their dictionary are delta-encoded rather than written plain: ids,
    // counters, timestamps and row versions shrink to a few bits each, and a scan then
    // decompresses a fraction of the bytes (plain pages of such columns hardly compress, and
    // decompressing them took a third of a 10-million-row GROUP BY).
    for field in schema.fields() {
        if is_delta_encoded(field.data_type()) {
            properties = properties.set_column_encoding(
                ColumnPath::from(field.name().as_str()),
                Encoding::DELTA_BINARY_PACKED,
            );
        }
    }
    let properties = properties.build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(properties)).map_err(|e| {
        StorageError::Corrupt {
            cf: "segments",
            message: e.to_string(),
        }
    })?;
    for batch in batches {
        writer.write(batch).map_err(|e| StorageError::Corrupt {
            cf: "segments",
            message: e.to_string(),
        })?;
    }
    let file = writer.into_inner().map_err(|e| StorageError::Corrupt {
        cf: "segments",
        message: e.to_string(),
    })?;
    let bytes = file.metadata().map_err(|e| io("reading", e))?.len();
    drop(file);
    crate::durable::publish_file(&tmp, final_path, crate::durable::Publish::Replace)
        .map_err(|e| io("publishing", e))?;
    Ok(bytes)
}

/// Whether a column of this type is stored as Parquet's 32- or 64-bit integers, the types
/// delta encoding takes.
fn is_delta_encoded(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Date32
                | DataType::Date64
                | DataType::Time32(_)
                | DataType::Time64(_)
                | DataType::Timestamp(..)
                | DataType::Duration(_)
        )
}

pub fn sync_dir(dir: &Path) -> StorageResult<()> {
    crate::durable::fsync_dir(dir)
        .map_err(|e| StorageError::io(format!("syncing directory {}", dir.display()), e))
}

/// Appends key and version columns to a batch of table columns.
pub fn with_identity(
    columns: Vec<ArrayRef>,
    keys: BinaryArray,
    versions: Vec<i64>,
    schema: SchemaRef,
) -> StorageResult<RecordBatch> {
    let mut arrays = columns;
    arrays.push(Arc::new(keys));
    arrays.push(Arc::new(Int64Array::from(versions)));
    RecordBatch::try_new(schema, arrays).map_err(|e| StorageError::Corrupt {
        cf: "segments",
        message: e.to_string(),
    })
}

pub(super) fn parquet_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        cf: "segments",
        message: e.to_string(),
    }
}

/// The decoded bytes a cached block of rows aims at: a block of wide rows holds fewer of them.
const BLOCK_BYTES: u64 = 256 * 1024;

/// Rows per cached block in a row group: a data page's worth (`PAGE_ROWS`), or as many rows as
/// fit `BLOCK_BYTES` going by the group's uncompressed size, at least one.
fn block_rows(group: &RowGroupMetaData) -> u64 {
    let rows = group.num_rows().max(1) as u64;
    let row_bytes = (group.total_byte_size().max(0) as u64 / rows).max(1);
    (BLOCK_BYTES / row_bytes).clamp(1, PAGE_ROWS as u64)
}

/// Reads row `row` of a segment file, `columns` (indexes into its schema, ascending) only. The
/// block of rows holding it is decoded once (with the page index, only its pages are read) and
/// kept in `cache` for the reads of its other rows.
pub fn read_segment_row(
    path: &Path,
    cache: &SegmentCache,
    segment_id: u64,
    row: u64,
    columns: &[usize],
) -> StorageResult<RecordBatch> {
    let missing = || parquet_error(format!("segment {} has no row {row}", path.display()));
    let footer = cache.footer(segment_id, path)?;
    let mut group_start = 0u64;
    let mut found = None;
    for (index, group) in footer.metadata().row_groups().iter().enumerate() {
        let rows = group.num_rows() as u64;
        if row < group_start + rows {
            found = Some((index, group));
            break;
        }
        group_start += rows;
    }
    let (index, group) = found.ok_or_else(missing)?;
    let size = block_rows(group);
    let first = group_start + (row - group_start) / size * size;
    let block = match cache.block(segment_id, first) {
        Some(block) => block,
        None => {
            let end = (first + size).min(group_start + group.num_rows() as u64);
            let selection = RowSelection::from(vec![
                RowSelector::skip((first - group_start) as usize),
                RowSelector::select((end - first) as usize),
            ]);
            let file = File::open(path)
                .map_err(|e| StorageError::io(format!("opening segment {}", path.display()), e))?;
            let mut reader =
                ParquetRecordBatchReaderBuilder::new_with_metadata(file, footer.clone())
                    .with_row_groups(vec![index])
                    .with_row_selection(selection)
                    .with_batch_size((end - first) as usize)
                    .build()
                    .map_err(parquet_error)?;
            let block = reader.next().ok_or_else(missing)?.map_err(parquet_error)?;
            cache.keep(segment_id, first, block.clone());
            block
        }
    };
    if row - first >= block.num_rows() as u64 {
        return Err(missing());
    }
    block
        .slice((row - first) as usize, 1)
        .project(columns)
        .map_err(parquet_error)
}

/// Reads a whole segment file, batch by batch: `visit` gets each batch (every column the file
/// has, key and version last) and returns false to stop.
pub fn read_segment(
    path: &Path,
    mut visit: impl FnMut(&RecordBatch) -> StorageResult<bool>,
) -> StorageResult<()> {
    let file = File::open(path)
        .map_err(|e| StorageError::io(format!("opening segment {}", path.display()), e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_error)?
        .with_batch_size(8192)
        .build()
        .map_err(parquet_error)?;
    for batch in reader {
        if !visit(&batch.map_err(parquet_error)?)? {
            break;
        }
    }
    Ok(())
}

/// Where a table's segments live, relative to `storage/`.
pub fn table_dir(namespace: &str, table: &str) -> PathBuf {
    PathBuf::from(namespace).join(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::Int64Type;

    fn column(id: u32, name: &str, sql_type: crate::model::SqlType) -> ColumnDef {
        ColumnDef {
            id,
            ..ColumnDef::new(name, sql_type)
        }
    }

    fn segment(column_ids: Vec<u32>, names: &[&str]) -> SegmentRecord {
        SegmentRecord {
            segment_id: 1,
            table_id: 1,
            file: "s.parquet".into(),
            rows: 0,
            bytes: 0,
            columns: names.len(),
            created_at: 0,
            column_ids,
            column_names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_file_column_is_the_table_column_with_its_id_whatever_its_name_or_place() {
        use crate::model::SqlType::{BigInt, Integer, Text};
        // Written with (a int, b int, c text, d int), ids 0 to 3.
        let segment = segment(vec![0, 1, 2, 3], &["a", "b", "c", "d"]);
        // Since: b retyped to bigint (a new id), a dropped, c renamed to k, e added.
        let table = [
            column(4, "b", BigInt),
            column(2, "k", Text),
            column(3, "d", Integer),
            column(5, "e", Integer),
        ];
        let layout = segment.layout(&table);
        assert_eq!(layout.positions, [None, Some(2), Some(3), None]);
        assert_eq!(layout.key_position, 4);
        let (schema, indexes) = segment.scan_schema(&table);
        let fields: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        // Only the columns the table still has, under the file's names, then key and version.
        assert_eq!(
            fields,
            [
                ("c", &DataType::Utf8),
                ("d", &DataType::Int32),
                (SEGMENT_KEY_COLUMN, &DataType::Binary),
                (SEGMENT_VERSION_COLUMN, &DataType::Int64)
            ]
        );
        assert_eq!(indexes, [None, Some(0), Some(1), None]);
    }

    #[test]
    fn a_segment_written_before_column_ids_reads_its_recorded_drops_as_ids() {
        // Written with (a, b, c, d); then b retyped, a dropped, b dropped (the old format
        // recorded each by file position). The table is (c, d, e), numbered 0 to 2 by position.
        let legacy = serde_json::json!({
            "segment_id": 1, "table_id": 1, "file": "s.parquet", "rows": 0, "bytes": 0,
            "columns": 4, "created_at": 0,
            "dropped": [
                {"file_position": 1, "column": {"name": "b"}, "replaced": true},
                {"file_position": 0, "column": {"name": "a"}},
                {"file_position": 1, "column": {"name": "b"}}
            ],
            "schema_version": 3
        });
        let segment: SegmentRecord = serde_json::from_value(legacy).unwrap();
        assert_eq!(
            segment.column_ids,
            [RETIRED_COLUMN_ID, RETIRED_COLUMN_ID, 0, 1]
        );
        use crate::model::SqlType::{Integer, Text};
        let table = [
            column(0, "c", Text),
            column(1, "d", Integer),
            column(2, "e", Integer),
        ];
        assert_eq!(segment.layout(&table).positions, [Some(2), Some(3), None]);
        // Written again, it says the same in ids.
        let reencoded = serde_json::to_vec(&segment).unwrap();
        assert_eq!(
            serde_json::from_slice::<SegmentRecord>(&reencoded).unwrap(),
            segment
        );
    }

    #[test]
    fn integer_columns_are_delta_encoded_and_read_back_exactly() {
        use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
        use datafusion::arrow::datatypes::TimeUnit;
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t/seg.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("name", DataType::Utf8, false),
            Field::new(SEGMENT_KEY_COLUMN, DataType::Binary, false),
            Field::new(SEGMENT_VERSION_COLUMN, DataType::Int64, false),
        ]));
        // More distinct values than a dictionary takes (the writer falls back to the column
        // encoding), the extremes (whose deltas overflow an i64) and NULLs.
        let rows = 20_000i64;
        let ids: Int64Array = (0..rows)
            .map(|i| match i % 1000 {
                7 => None,
                8 => Some(i64::MIN),
                9 => Some(i64::MAX),
                _ => Some(i * 7919 - 3_000_000),
            })
            .collect();
        let keys: Vec<Vec<u8>> = (0..rows).map(|i| i.to_be_bytes().to_vec()).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(ids.clone()),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    (0..rows).map(|i| 1_700_000_000_000_000 + i * 1_000_003),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("n{i}")),
                )),
                Arc::new(BinaryArray::from_iter_values(keys.iter())),
                Arc::new(Int64Array::from_iter_values(0..rows)),
            ],
        )
        .unwrap();
        write_segment(&path, schema, std::slice::from_ref(&batch)).unwrap();

        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let group = reader.metadata().row_group(0);
        let encodings = |column: usize| group.column(column).encodings().collect::<Vec<_>>();
        for column in [0, 1, 4] {
            assert!(
                encodings(column).contains(&Encoding::DELTA_BINARY_PACKED),
                "column {column}: {:?}",
                encodings(column)
            );
        }
        for column in [2, 3] {
            assert!(!encodings(column).contains(&Encoding::DELTA_BINARY_PACKED));
        }
        let mut read = Vec::new();
        read_segment(&path, |b| {
            read.push(b.clone());
            Ok(true)
        })
        .unwrap();
        let read = datafusion::arrow::compute::concat_batches(&batch.schema(), &read).unwrap();
        assert_eq!(read, batch);
        let cache = SegmentCache::default();
        for row in [0u64, 7, 8, 9, 1023, 1024, 19_007, 19_008, 19_999] {
            let one = read_segment_row(&path, &cache, 1, row, &[0]).unwrap();
            assert_eq!(
                one.column(0).as_primitive::<Int64Type>(),
                &ids.slice(row as usize, 1)
            );
        }
    }

    #[test]
    fn a_row_is_read_by_position_in_any_row_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..35)),
                Arc::new(Int64Array::from_iter_values((0..35).map(|v| v * 10))),
            ],
        )
        .unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(10))
            .set_data_page_row_count_limit(3)
            .build();
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let cache = SegmentCache::default();
        // Twice each: the second read of a row comes from its cached block (blocks never
        // span row groups, here of 10 rows).
        for _ in 0..2 {
            for row in [0u64, 9, 10, 17, 34, 12] {
                let read = read_segment_row(&path, &cache, 7, row, &[1]).unwrap();
                assert_eq!(read.num_rows(), 1);
                assert_eq!(
                    read.column(0).as_primitive::<Int64Type>().value(0),
                    row as i64 * 10
                );
            }
        }
        assert_eq!(
            cache.blocks_kept(),
            3,
            "one block per row group read of segment 7"
        );
        let both = read_segment_row(&path, &cache, 7, 21, &[0, 1]).unwrap();
        assert_eq!(both.column(0).as_primitive::<Int64Type>().value(0), 21);
        assert_eq!(both.column(1).as_primitive::<Int64Type>().value(0), 210);
        assert!(read_segment_row(&path, &cache, 7, 35, &[0]).is_err());
        // Another segment id is another file's block.
        assert_eq!(
            read_segment_row(&path, &cache, 8, 3, &[0])
                .unwrap()
                .column(0)
                .as_primitive::<Int64Type>()
                .value(0),
            3
        );
        assert_eq!(cache.blocks_kept(), 5);
    }
}
