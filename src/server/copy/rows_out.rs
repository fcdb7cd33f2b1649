//! COPY TO's rows: each result batch encoded straight from its Arrow columns into the COPY
//! format (text, CSV or binary) with the result encoder's cell encoder, the batch's rows
//! written into one buffer that each row's CopyData then shares.
//!
//! PostgreSQL sends one CopyData per row and clients (psycopg's `rows()`, pgJDBC's
//! `readFromCopy`) read a row per message, so rows stay separate messages; what is saved is
//! an allocation per row and the detour through a DataRow.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::RecordBatch;
use pgwire::api::results::FieldInfo;
use pgwire::error::PgWireResult;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};

use super::text_writer::TextWriter;
use crate::server::encode::{CellSink, encode_cell};

/// Encodes result batches as COPY rows.
pub struct RowsOut {
    fields: Arc<Vec<FieldInfo>>,
    /// The text or CSV writer; `None` for the binary format.
    text: Option<TextWriter>,
}

/// The rows of one batch, each a CopyData payload, and the error that stopped the batch early
/// (the rows before it are still sent, as PostgreSQL sends the rows before a failing one).
pub struct EncodedBatch {
    pub rows: Vec<Bytes>,
    pub error: Option<pgwire::error::PgWireError>,
}

impl RowsOut {
    pub fn new(fields: Arc<Vec<FieldInfo>>, text: Option<TextWriter>) -> Self {
        RowsOut { fields, text }
    }

    pub fn batch(&self, batch: &RecordBatch) -> EncodedBatch {
        // A guess of the batch's encoded size (the buffer grows past it when needed).
        let guess = batch.num_rows() * batch.num_columns() * 12;
        let mut out = BytesMut::with_capacity(guess.clamp(1024, 16 << 20));
        let mut scratch = BytesMut::new();
        let mut ends = Vec::with_capacity(batch.num_rows());
        let mut error = None;
        for row in 0..batch.num_rows() {
            let start = out.len();
            if let Err(e) = self.row(batch, row, &mut out, &mut scratch) {
                out.truncate(start);
                error = Some(e);
                break;
            }
            ends.push(out.len());
        }
        let all = out.freeze();
        let mut start = 0;
        let rows = ends
            .into_iter()
            .map(|end| {
                let row = all.slice(start..end);
                start = end;
                row
            })
            .collect();
        EncodedBatch { rows, error }
    }

    fn row(
        &self,
        batch: &RecordBatch,
        row: usize,
        out: &mut BytesMut,
        scratch: &mut BytesMut,
    ) -> PgWireResult<()> {
        if self.text.is_none() {
            out.put_i16(batch.num_columns() as i16);
        }
        let mut sink = RowSink {
            text: self.text.as_ref(),
            out,
            scratch,
            column: 0,
        };
        for (column, field) in batch.columns().iter().zip(self.fields.iter()) {
            encode_cell(&mut sink, column.as_ref(), row, field)?;
        }
        if let Some(text) = &self.text {
            text.end_row(sink.out);
        }
        Ok(())
    }
}

/// Writes a row's values in the COPY format as the cell encoder hands them over.
struct RowSink<'a> {
    text: Option<&'a TextWriter>,
    out: &'a mut BytesMut,
    /// A value's text output before it is escaped or quoted into `out`.
    scratch: &'a mut BytesMut,
    column: usize,
}

impl CellSink for RowSink<'_> {
    fn put<T>(&mut self, value: Option<T>, field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText,
    {
        let column = self.column;
        self.column += 1;
        match self.text {
            Some(writer) => {
                self.scratch.clear();
                let is_null =
                    value.to_sql_text(field.datatype(), self.scratch, field.format_options())?;
                let text = matches!(is_null, IsNull::No).then_some(&self.scratch[..]);
                writer.field(column, text, self.out);
            }
            // A field is its length, or -1 for NULL, and the value's send form.
            None => {
                let at = self.out.len();
                self.out.put_i32(-1);
                if let IsNull::No = value.to_sql(field.datatype(), self.out)? {
                    let length = (self.out.len() - at - 4) as i32;
                    self.out[at..at + 4].copy_from_slice(&length.to_be_bytes());
                }
            }
        }
        Ok(())
    }
}
