//! What running a statement produces, for the front end to answer with: rows as a stream, a
//! command tag with or without a row count, transaction control, or the COPY sub-protocol.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use crate::sql;

/// What running a statement produced.
pub enum Outcome {
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    /// A statement without a result set, with the command tag to report (`SET`, `CREATE USER`).
    Done {
        tag: &'static str,
    },
    /// INSERT, UPDATE or DELETE without RETURNING: the tag and the number of rows.
    Affected {
        tag: &'static str,
        rows: usize,
    },
    Begin,
    Commit,
    /// `ROLLBACK`, or `COMMIT` of a failed transaction (PostgreSQL reports that as ROLLBACK).
    Rollback,
    /// FETCH: the rows a cursor returned, reported with a FETCH tag.
    Fetched {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    /// Prepared statements were dropped (DEALLOCATE, DISCARD ALL): the front end drops the
    /// protocol's named statements of that name too (`None`: all). `dropped_here` says whether
    /// a SQL-level statement of that name was dropped; a name that names neither is an error.
    Deallocate {
        name: Option<String>,
        dropped_here: bool,
        tag: &'static str,
    },
    /// COPY FROM STDIN is ready for its data, which the front end decodes and hands to
    /// [`Session::copy_in_rows`], then [`Session::finish_copy_in`].
    CopyIn(Box<super::CopyIn>),
    /// COPY TO STDOUT: rows the front end writes in the COPY format of `options`.
    CopyOut {
        options: sql::CopyOptions,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
}

impl Outcome {
    /// A result already computed in memory.
    pub fn rows(schema: SchemaRef, batches: Vec<RecordBatch>) -> Outcome {
        Outcome::Rows {
            stream: stream_of(schema.clone(), batches),
            schema,
        }
    }
}

/// Batches already in memory, as a result stream.
pub(super) fn stream_of(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(batches.into_iter().map(Ok)),
    ))
}
