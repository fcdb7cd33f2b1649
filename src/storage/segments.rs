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
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::types::ColumnDef;
use super::{StorageError, StorageResult};

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
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("level 1 is valid"),
        ))
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
    file.sync_all().map_err(|e| io("syncing", e))?;
    let bytes = file.metadata().map_err(|e| io("reading", e))?.len();
    drop(file);
    std::fs::rename(&tmp, final_path).map_err(|e| io("renaming", e))?;
    sync_dir(dir)?;
    Ok(bytes)
}

pub fn sync_dir(dir: &Path) -> StorageResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
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

/// Where a table's segments live, relative to `storage/`.
pub fn table_dir(namespace: &str, table: &str) -> PathBuf {
    PathBuf::from(namespace).join(table)
}
