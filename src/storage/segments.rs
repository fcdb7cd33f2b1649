//! Cold storage: immutable Parquet segments under `storage/<namespace>/<table>/`, their manifest,
//! the primary-key index of cold rows, and the keys a newer version made dead.
//!
//! A segment holds a table's columns plus its row key and version, sorted by key. A key is live
//! in at most one place: the hot rows (a row or a tombstone) shadow every segment, and when a
//! newer version of a key is flushed the older segment's copy is recorded as dead. Segments are
//! written to a temporary file, fsynced and renamed before the command that publishes them, so a
//! crash leaves at most an unreferenced file, which the next start deletes.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, BinaryArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use datafusion::parquet::arrow::{ArrowWriter, ProjectionMask};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use super::{StorageError, StorageResult};
use crate::model::types::ColumnDef;

/// Rows per data page, and the largest dictionary page, of a segment column.
const PAGE_ROWS: usize = 1024;
const DICTIONARY_BYTES: usize = 64 * 1024;

/// Columns every segment carries after the table's own.
pub const SEGMENT_KEY_COLUMN: &str = "__kalamdb_key";
pub const SEGMENT_VERSION_COLUMN: &str = "__kalamdb_version";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub segment_id: u64,
    pub table_id: u64,
    /// Relative to the data directory's `storage/`.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    /// How many columns the table had when the segment was written (later ones read as their
    /// missing value).
    pub columns: usize,
    pub created_at: i64,
    /// The names of those columns as written in the file. Files are matched to the table by
    /// position, so a later RENAME COLUMN reads them under the new name. Empty in segments
    /// written before renames existed (their names are the table's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_names: Vec<String>,
    /// Columns of the file that the table has dropped since: their position in the file and
    /// their definition (to read the file), in the order they were dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<DroppedColumn>,
    /// The table definition's version the segment was written under: a flush published under
    /// another one (a column dropped meanwhile) would mislabel its columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u64>,
}

/// A column a segment's file holds that its table no longer has, or (`replaced`) has under
/// another type: the file's values are not the table's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedColumn {
    pub file_position: usize,
    pub column: ColumnDef,
    /// The table still has the column at this place, retyped; every row was rewritten hot
    /// when it was, so the file's copies are shadowed and read as NULL.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replaced: bool,
}

impl SegmentRecord {
    /// Where the table's columns are in the file, in table order: every file column but
    /// dropped ones, `None` for a retyped one. A table column past these was added after the
    /// segment was written.
    pub fn table_positions(&self) -> Vec<Option<usize>> {
        (0..self.columns)
            .filter_map(
                |p| match self.dropped.iter().rfind(|d| d.file_position == p) {
                    None => Some(Some(p)),
                    Some(d) if d.replaced => Some(None),
                    Some(_) => None,
                },
            )
            .collect()
    }

    /// Where table column `column` is in the file, if the segment has it in the table's type.
    pub fn file_position(&self, column: usize) -> Option<usize> {
        self.table_positions().get(column).copied().flatten()
    }

    /// Whether the file holds table column `column` at all (in its type or an older one).
    pub fn holds(&self, column: usize) -> Option<usize> {
        let mut table_column = 0;
        for p in 0..self.columns {
            match self.dropped.iter().rfind(|d| d.file_position == p) {
                Some(d) if !d.replaced => continue,
                _ if table_column == column => return Some(p),
                _ => table_column += 1,
            }
        }
        None
    }

    /// The Arrow schema of this segment's file, for a table with `columns` now.
    pub fn file_schema(&self, columns: &[ColumnDef]) -> SchemaRef {
        let mut table_columns = columns.iter();
        let mut written = Vec::with_capacity(self.columns);
        for position in 0..self.columns {
            // The first entry for a position holds the type the file was written with; the
            // last says whether the table still has the column (retyped) or not (dropped).
            let first = self.dropped.iter().find(|d| d.file_position == position);
            let last = self.dropped.iter().rfind(|d| d.file_position == position);
            match (first, last) {
                (Some(first), Some(last)) => {
                    written.push(first.column.clone());
                    if last.replaced {
                        table_columns.next();
                    }
                }
                _ => match table_columns.next() {
                    Some(column) => written.push(column.clone()),
                    None => break,
                },
            }
        }
        if self.column_names.len() == written.len() {
            for (column, name) in written.iter_mut().zip(&self.column_names) {
                column.name = name.clone();
            }
        }
        segment_schema(&written)
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
    // columns still fit their dictionary; unique ones (the key) skip it.
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("level 1 is valid"),
        ))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_dictionary_page_size_limit(DICTIONARY_BYTES)
        .set_column_dictionary_enabled(ColumnPath::from(SEGMENT_KEY_COLUMN), false)
        .set_column_dictionary_enabled(ColumnPath::from(SEGMENT_VERSION_COLUMN), false)
        .build();
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

pub fn sync_dir(dir: &Path) -> StorageResult<()> {
    crate::durable::fsync_dir(dir)
        .map_err(|e| StorageError::io(format!("syncing directory {}", dir.display()), e))
}

/// Appends key and version columns to a batch of table columns.
pub fn with_identity(
    columns: Vec<ArrayRef>,
    keys: Vec<Vec<u8>>,
    versions: Vec<i64>,
    schema: SchemaRef,
) -> StorageResult<RecordBatch> {
    let mut arrays = columns;
    arrays.push(Arc::new(BinaryArray::from_iter_values(keys)));
    arrays.push(Arc::new(Int64Array::from(versions)));
    RecordBatch::try_new(schema, arrays).map_err(|e| StorageError::Corrupt {
        cf: "segments",
        message: e.to_string(),
    })
}

/// How many segment footers `SegmentFooters` keeps.
const FOOTERS_KEPT: usize = 1024;

/// Parsed footers (schema, row groups, page indexes) of segments read by position. A segment
/// never changes once published, so a footer read once stays right for the segment's life.
#[derive(Default)]
pub struct SegmentFooters {
    by_segment: Mutex<HashMap<u64, ArrowReaderMetadata>>,
}

impl SegmentFooters {
    fn get(&self, segment_id: u64, file: &File) -> StorageResult<ArrowReaderMetadata> {
        if let Some(footer) = self.by_segment.lock().expect("footers").get(&segment_id) {
            return Ok(footer.clone());
        }
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let footer = ArrowReaderMetadata::load(file, options).map_err(parquet_error)?;
        let mut cached = self.by_segment.lock().expect("footers");
        if cached.len() >= FOOTERS_KEPT {
            cached.clear();
        }
        cached.insert(segment_id, footer.clone());
        Ok(footer)
    }
}

fn parquet_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        cf: "segments",
        message: e.to_string(),
    }
}

/// Reads row `row` of a segment file, `columns` (indexes into its schema, ascending) only.
/// With the page index, only the pages holding that row are read.
pub fn read_segment_row(
    path: &Path,
    footers: &SegmentFooters,
    segment_id: u64,
    row: u64,
    columns: &[usize],
) -> StorageResult<RecordBatch> {
    let file = File::open(path)
        .map_err(|e| StorageError::io(format!("opening segment {}", path.display()), e))?;
    let footer = footers.get(segment_id, &file)?;
    let mut first_row = 0u64;
    let mut found = None;
    for (index, group) in footer.metadata().row_groups().iter().enumerate() {
        let rows = group.num_rows() as u64;
        if row < first_row + rows {
            found = Some((index, row - first_row));
            break;
        }
        first_row += rows;
    }
    let Some((group, offset)) = found else {
        return Err(parquet_error(format!(
            "segment {} has no row {row}",
            path.display()
        )));
    };
    let mask = ProjectionMask::roots(
        footer.metadata().file_metadata().schema_descr(),
        columns.to_vec(),
    );
    let selection = RowSelection::from(vec![
        RowSelector::skip(offset as usize),
        RowSelector::select(1),
    ]);
    let mut reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, footer)
        .with_row_groups(vec![group])
        .with_projection(mask)
        .with_row_selection(selection)
        .with_batch_size(1)
        .build()
        .map_err(parquet_error)?;
    match reader.next() {
        Some(batch) => batch.map_err(parquet_error),
        None => Err(parquet_error(format!(
            "segment {} has no row {row}",
            path.display()
        ))),
    }
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

    fn column(name: &str, sql_type: crate::model::SqlType) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            sql_type,
            nullable: true,
            default: None,
            missing_value: None,
            identity: None,
            comment: None,
        }
    }

    #[test]
    fn dropped_and_retyped_columns_map_table_columns_to_file_columns() {
        use crate::model::SqlType::{BigInt, Integer, Text};
        // Written with (a int, b int, c text, d int).
        let mut segment = SegmentRecord {
            segment_id: 1,
            table_id: 1,
            file: "s.parquet".into(),
            rows: 0,
            bytes: 0,
            columns: 4,
            created_at: 0,
            column_names: Vec::new(),
            dropped: Vec::new(),
            schema_version: None,
        };
        let dropped = |position: usize, def: ColumnDef, replaced: bool| DroppedColumn {
            file_position: position,
            column: def,
            replaced,
        };
        // b retyped to bigint: still the table's second column, but not readable from the file.
        segment.dropped.push(dropped(1, column("b", Integer), true));
        assert_eq!(segment.table_positions(), [Some(0), None, Some(2), Some(3)]);
        assert_eq!(segment.holds(1), Some(1));
        // Then a dropped: the table is (b bigint, c text, d int).
        segment
            .dropped
            .push(dropped(0, column("a", Integer), false));
        assert_eq!(segment.table_positions(), [None, Some(2), Some(3)]);
        assert_eq!(segment.file_position(2), Some(3));
        // Then b dropped too: the table is (c text, d int, e int added later).
        segment.dropped.push(dropped(1, column("b", BigInt), false));
        assert_eq!(segment.table_positions(), [Some(2), Some(3)]);
        assert_eq!(
            segment.file_position(2),
            None,
            "e was added after the segment"
        );
        let table = [
            column("c", Text),
            column("d", Integer),
            column("e", Integer),
        ];
        let schema = segment.file_schema(&table);
        let fields: Vec<(&str, &DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        // The file's own columns and types, then the row key and version.
        assert_eq!(
            fields[..4],
            [
                ("a", &DataType::Int32),
                ("b", &DataType::Int32),
                ("c", &DataType::Utf8),
                ("d", &DataType::Int32)
            ]
        );
        assert_eq!(fields.len(), 6);
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
        let footers = SegmentFooters::default();
        for row in [0u64, 9, 10, 17, 34] {
            let read = read_segment_row(&path, &footers, 7, row, &[1]).unwrap();
            assert_eq!(read.num_rows(), 1);
            assert_eq!(
                read.column(0).as_primitive::<Int64Type>().value(0),
                row as i64 * 10
            );
        }
        let both = read_segment_row(&path, &footers, 7, 21, &[0, 1]).unwrap();
        assert_eq!(both.column(0).as_primitive::<Int64Type>().value(0), 21);
        assert!(read_segment_row(&path, &footers, 7, 35, &[0]).is_err());
    }
}
