//! The COPY sub-protocol: CopyInResponse and the CopyData that follows it for COPY FROM STDIN,
//! CopyOutResponse and one CopyData per row for COPY TO STDOUT.
//!
//! The front end owns the data formats (text, CSV, binary): it turns CopyData into rows of
//! values for the executor in chunks, and the executor's result rows into CopyData. A COPY FROM
//! whose data turns out bad keeps reading (and discarding) until the client's CopyDone or
//! CopyFail, then reports the error once, as the protocol expects; nothing is written.

mod binary;
mod rows_out;
mod text;
mod text_writer;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::messages::response::CommandComplete;

use super::sqlstate::user_error;
use super::{Connection, encode, sqlstate};
use crate::exec::{CopyIn, Outcome, Session};
use crate::sql::{CopyFormat, CopyOptions};

/// Rows handed to the executor at a time: enough to amortise planning defaults and checks,
/// few enough that a chunk's text stays small.
const CHUNK_ROWS: usize = 8192;

/// What is wrong with the data itself (before any value is typed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatFault {
    /// Rows or fields that do not follow the format (22P04).
    BadFormat,
    /// Bytes that are not UTF-8 (22021).
    Encoding,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CopyDataError {
    pub fault: FormatFault,
    pub message: String,
    /// The line (text, CSV) or row (binary) where the fault is, from 1.
    pub line: u64,
}

/// Decodes one COPY FROM's data in its format.
enum Reader {
    Text(text::TextReader),
    Binary(binary::BinaryReader),
}

/// A COPY FROM STDIN between its CopyInResponse and the client's CopyDone or CopyFail.
pub struct ActiveCopy {
    session: Arc<Session>,
    copy: Box<CopyIn>,
    reader: Reader,
    /// The first error: later data is discarded, and CopyDone reports it.
    failed: Option<PgWireError>,
}

impl ActiveCopy {
    pub fn new(session: Arc<Session>, copy: Box<CopyIn>) -> Self {
        let names: Vec<String> = copy.columns().iter().map(|c| c.name.clone()).collect();
        let reader = match copy.options.format {
            CopyFormat::Binary => Reader::Binary(binary::BinaryReader::new(
                copy.columns().iter().map(|c| c.sql_type).collect(),
            )),
            _ => Reader::Text(text::TextReader::new(
                &copy.options,
                names,
                copy.force_not_null.clone(),
                copy.force_null.clone(),
            )),
        };
        ActiveCopy {
            session,
            copy,
            reader,
            failed: None,
        }
    }

    /// CopyInResponse: the overall format and one format code per column.
    pub fn response(&self) -> Response {
        let format = i8::from(self.copy.options.format == CopyFormat::Binary);
        Response::CopyIn(CopyResponse::new(
            format,
            self.copy.columns().len(),
            futures::stream::empty(),
        ))
    }

    fn data_error(&self, e: CopyDataError) -> PgWireError {
        let code = match e.fault {
            FormatFault::BadFormat => sqlstate::BAD_COPY_FILE_FORMAT,
            FormatFault::Encoding => sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
        };
        let mut info = sqlstate::error(code, e.message);
        info.where_context = Some(format!("COPY {}, line {}", self.copy.table_name(), e.line));
        user_error(info)
    }

    fn rows_ready(&self) -> usize {
        match &self.reader {
            Reader::Text(reader) => reader.rows.len(),
            Reader::Binary(reader) => reader.rows_ready(),
        }
    }

    /// Hands the rows decoded so far to the executor.
    async fn flush_rows(&mut self) -> Result<(), PgWireError> {
        let (values, lines) = match &mut self.reader {
            Reader::Text(reader) => reader.rows.take(),
            Reader::Binary(reader) => reader.take().map_err(|e| self.data_error(e))?,
        };
        self.session
            .copy_in_rows(&mut self.copy, values, &lines)
            .await
            .map_err(|e| user_error(sqlstate::exec_error(&e)))
    }

    async fn feed(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let read = match &mut self.reader {
            Reader::Text(reader) => reader.feed(data),
            Reader::Binary(reader) => reader.feed(data),
        };
        let result = match read {
            Err(e) => Err(self.data_error(e)),
            Ok(()) if self.rows_ready() >= CHUNK_ROWS => self.flush_rows().await,
            Ok(()) => Ok(()),
        };
        if let Err(e) = result {
            self.session.fail_block();
            self.failed = Some(e);
        }
    }

    /// The data is complete: the last rows, then the write. The CommandComplete tag.
    async fn finish(mut self) -> PgWireResult<Tag> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let ended = match &mut self.reader {
            Reader::Text(reader) => reader.finish(),
            Reader::Binary(reader) => reader.finish(),
        };
        if let Err(e) = ended {
            self.session.fail_block();
            return Err(self.data_error(e));
        }
        self.flush_rows().await?;
        match self.session.finish_copy_in(*self.copy) {
            Ok(Outcome::Affected { rows, .. }) => Ok(Tag::new("COPY").with_rows(rows)),
            Ok(_) => Err(PgWireError::ApiError(
                "COPY ended without a row count".into(),
            )),
            Err(e) => Err(user_error(sqlstate::exec_error(&e))),
        }
    }
}

impl Connection {
    fn take_copy(&self) -> Option<ActiveCopy> {
        self.copy_in.lock().expect("copy state").take()
    }

    /// Keeps a COPY FROM's state for the CopyData to come; returns its CopyInResponse.
    pub(super) fn start_copy_in(&self, session: Arc<Session>, copy: Box<CopyIn>) -> Response {
        let active = ActiveCopy::new(session, copy);
        let response = active.response();
        *self.copy_in.lock().expect("copy state") = Some(active);
        response
    }
}

#[async_trait]
impl pgwire::api::copy::CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(mut active) = self.take_copy() else {
            return Err(user_error(sqlstate::error(
                sqlstate::PROTOCOL_VIOLATION,
                "CopyData outside of a COPY",
            )));
        };
        active.feed(&copy_data.data).await;
        *self.copy_in.lock().expect("copy state") = Some(active);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(active) = self.take_copy() else {
            return Err(user_error(sqlstate::error(
                sqlstate::PROTOCOL_VIOLATION,
                "CopyDone outside of a COPY",
            )));
        };
        let _busy = super::InFlightGuard::enter(&self.shared);
        let tag = active.finish().await?;
        client
            .send(PgWireBackendMessage::CommandComplete(
                CommandComplete::from(tag),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(active) = self.take_copy() {
            active.session.fail_block();
        }
        user_error(sqlstate::error(
            sqlstate::QUERY_CANCELED,
            format!("COPY from stdin failed: {}", fail.message),
        ))
    }
}

/// The column names and whether each is force-quoted, for COPY TO's header and CSV quoting.
fn force_quote_flags(options: &CopyOptions, names: &[String]) -> Vec<bool> {
    names
        .iter()
        .map(|n| options.force_quote.contains(n))
        .collect()
}

/// A COPY TO's data: what comes before the rows (the binary signature, or a header line),
/// and each row encoded in the COPY format.
fn copy_out_rows(
    options: CopyOptions,
    schema: datafusion::arrow::datatypes::SchemaRef,
    stream: SendableRecordBatchStream,
) -> (
    Vec<u8>,
    impl futures::Stream<Item = PgWireResult<Bytes>> + Send,
) {
    let binary = options.format == CopyFormat::Binary;
    let format = if binary {
        Format::UnifiedBinary
    } else {
        Format::UnifiedText
    };
    let fields = Arc::new(encode::field_infos(&schema, &format));
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut header = Vec::new();
    let text = if binary {
        binary::write_header(&mut header);
        None
    } else {
        let writer = text_writer::TextWriter::new(&options, force_quote_flags(&options, &names));
        if options.header {
            let names: Vec<Option<&[u8]>> = names.iter().map(|n| Some(n.as_bytes())).collect();
            writer.row(&names, &mut header);
        }
        Some(writer)
    };
    let encoder = rows_out::RowsOut::new(fields, text);
    let rows = encode::encoded_rows(stream, move |batch| {
        let encoded = encoder.batch(batch);
        let error = encoded.error.map(Err);
        encoded.rows.into_iter().map(Ok).chain(error).collect()
    });
    (header, rows)
}

/// A COPY TO's response for pgwire's extended-protocol execution, which counts CopyData
/// messages as rows: the header rides with the first row (alone, and counted, only when there
/// are no rows), and pgwire appends the binary trailer.
pub(super) fn copy_out_response(
    options: CopyOptions,
    schema: datafusion::arrow::datatypes::SchemaRef,
    stream: SendableRecordBatchStream,
) -> Response {
    let format = i8::from(options.format == CopyFormat::Binary);
    let columns = schema.fields().len();
    let (header, rows) = copy_out_rows(options, schema, stream);
    let header = Arc::new(std::sync::Mutex::new(
        (!header.is_empty()).then_some(header),
    ));
    let unsent = header.clone();
    let take = move |slot: &std::sync::Mutex<Option<Vec<u8>>>| slot.lock().expect("header").take();
    let rows = rows.map(move |row| {
        let row = row?;
        let out = match take(&header) {
            Some(mut first) => {
                first.extend_from_slice(&row);
                Bytes::from(first)
            }
            None => row,
        };
        Ok(CopyData::new(out))
    });
    let rest = futures::stream::once(async move { take(&unsent) })
        .filter_map(|header| async move { header.map(|h| Ok(CopyData::new(Bytes::from(h)))) });
    Response::CopyOut(CopyResponse::new(format, columns, rows.chain(rest)))
}

/// Sends a COPY TO in the simple protocol: CopyOutResponse, the header, a CopyData per row,
/// CopyDone and `COPY n`.
pub(super) async fn send_copy_out<C>(
    client: &mut C,
    options: CopyOptions,
    schema: datafusion::arrow::datatypes::SchemaRef,
    stream: SendableRecordBatchStream,
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let binary = options.format == CopyFormat::Binary;
    let columns = schema.fields().len();
    client
        .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            i8::from(binary),
            columns as i16,
            vec![i16::from(binary); columns],
        )))
        .await?;
    let (header, rows) = copy_out_rows(options, schema, stream);
    if !header.is_empty() {
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(Bytes::from(
                header,
            ))))
            .await?;
    }
    let mut rows = Box::pin(rows);
    let mut count = 0usize;
    while let Some(row) = rows.next().await {
        count += 1;
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(row?)))
            .await?;
    }
    if binary {
        let mut trailer = Vec::new();
        binary::write_trailer(&mut trailer);
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(Bytes::from(
                trailer,
            ))))
            .await?;
    }
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    client
        .feed(PgWireBackendMessage::CommandComplete(
            Tag::new("COPY").with_rows(count).into(),
        ))
        .await?;
    Ok(())
}
