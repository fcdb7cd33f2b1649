//! A session's SQL cursors (`DECLARE`, `FETCH`, `MOVE`, `CLOSE`): each holds its query's
//! running result stream and where the client stands in it, in PostgreSQL's terms (before the
//! first row, on row n, or after the last).
//!
//! A cursor reads its query lazily, as FETCH asks for rows, and forgets the rows it moved past
//! unless it was declared SCROLL, which may move backward; PostgreSQL also lets many cursors
//! declared without SCROLL move backward, which this one refuses with PostgreSQL's error for
//! cursors that cannot. A WITH HOLD cursor outlives its transaction: it reads its whole result
//! when declared, as PostgreSQL does at the declaring transaction's commit, so later writes
//! (the session's own included) never show in it. Rows a cursor holds are counted against the
//! query memory limit.

use std::collections::{HashMap, VecDeque};

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use futures::StreamExt;

use super::outcome::Outcome;
use super::session::Session;
use super::{ExecError, ExecResult};
use crate::sql::{CursorDeclaration, CursorMotion, Statement};

/// The open cursors of one session, by name.
#[derive(Default)]
pub(super) struct Cursors {
    open: HashMap<String, Cursor>,
}

struct Cursor {
    schema: SchemaRef,
    /// The rows not yet read; `None` once the query has returned its last row.
    unread: Option<SendableRecordBatchStream>,
    /// Rows read and still reachable, in order: every row read for a SCROLL cursor, the rows
    /// past the position for one that only moves forward.
    kept: VecDeque<RecordBatch>,
    /// The number of the first row in `kept` (rows count from 1).
    kept_from: u64,
    kept_rows: u64,
    /// 0 before the first row, n on row n, one past the last row after it.
    position: u64,
    scroll: bool,
    hold: bool,
    /// Survives a ROLLBACK: declared WITH HOLD in a transaction that has committed since.
    committed: bool,
    /// How many savepoints were set when it was declared: rolling back to one of them, or
    /// one set before, closes it.
    savepoints: usize,
    /// A FETCH or MOVE failed on it: like PostgreSQL's failed portal, it cannot run again.
    failed: bool,
    memory: MemoryReservation,
}

impl Cursor {
    fn last_read(&self) -> u64 {
        self.kept_from + self.kept_rows - 1
    }

    /// Reads the query until row `row` is read or the result ends.
    async fn read_through(&mut self, row: u64) -> ExecResult<()> {
        while self.last_read() < row {
            let Some(unread) = self.unread.as_mut() else {
                return Ok(());
            };
            match unread.next().await {
                Some(batch) => {
                    let batch = batch?;
                    self.memory.try_grow(batch.get_array_memory_size())?;
                    self.kept_rows += batch.num_rows() as u64;
                    self.kept.push_back(batch);
                }
                None => self.unread = None,
            }
        }
        Ok(())
    }

    /// Rows `from..=to` in order (all of them read and kept).
    fn rows(&self, from: u64, to: u64) -> Vec<RecordBatch> {
        let mut rows = Vec::new();
        let mut first = self.kept_from;
        for batch in &self.kept {
            let last = first + batch.num_rows() as u64;
            let (start, end) = (from.max(first), (to + 1).min(last));
            if start < end {
                rows.push(batch.slice((start - first) as usize, (end - start) as usize));
            }
            first = last;
        }
        rows
    }

    /// Rows `from..=to` nearest `to` first, as a backward fetch returns them.
    fn rows_backward(&self, from: u64, to: u64) -> ExecResult<Vec<RecordBatch>> {
        let arrow = |e: datafusion::arrow::error::ArrowError| ExecError::DataFusion(e.into());
        let forward = concat_batches(&self.schema, &self.rows(from, to)).map_err(arrow)?;
        let reversed = UInt32Array::from_iter_values((0..forward.num_rows() as u32).rev());
        Ok(vec![take_record_batch(&forward, &reversed).map_err(arrow)?])
    }

    /// A cursor that cannot move backward lets go of the rows at or before its position.
    fn forget_passed(&mut self) {
        if self.scroll {
            return;
        }
        while let Some(batch) = self.kept.front() {
            let rows = batch.num_rows() as u64;
            if self.kept_from + rows > self.position + 1 {
                break;
            }
            self.memory.shrink(batch.get_array_memory_size());
            self.kept.pop_front();
            self.kept_from += rows;
            self.kept_rows -= rows;
        }
    }

    fn backward_scan_needed(&self) -> ExecResult<()> {
        if self.scroll {
            Ok(())
        } else {
            Err(ExecError::ForwardOnlyCursor)
        }
    }

    /// Moves as `motion` says; returns the rows passed on the way, in the order a FETCH returns
    /// them, and how many.
    async fn travel(
        &mut self,
        motion: CursorMotion,
        move_only: bool,
    ) -> ExecResult<(Vec<RecordBatch>, u64)> {
        let at = self.position;
        if motion == CursorMotion::Relative(0) {
            return self.stay(move_only);
        }
        let moved = match motion {
            CursorMotion::Forward(count) => {
                let wanted = count.unwrap_or(u64::MAX);
                let to = at.saturating_add(wanted);
                self.read_through(to).await?;
                let last = to.min(self.last_read());
                let rows = if at < last {
                    self.rows(at + 1, last)
                } else {
                    Vec::new()
                };
                let count = last.saturating_sub(at);
                self.position = if count == wanted { to } else { last + 1 };
                (rows, count)
            }
            CursorMotion::Backward(count) => {
                self.backward_scan_needed()?;
                let wanted = count.unwrap_or(u64::MAX);
                // From after the end, the last row is the first one back.
                let first = at.saturating_sub(wanted).max(1);
                if at <= 1 {
                    self.position = 0;
                    (Vec::new(), 0)
                } else {
                    let rows = self.rows_backward(first, at - 1)?;
                    let count = at - first;
                    self.position = if count == wanted { first } else { 0 };
                    (rows, count)
                }
            }
            CursorMotion::Absolute(row) if row > 0 => self.go_to(row.unsigned_abs()).await?,
            CursorMotion::Absolute(0) => {
                if at > 0 {
                    self.backward_scan_needed()?;
                }
                self.position = 0;
                (Vec::new(), 0)
            }
            CursorMotion::Absolute(from_end) => {
                self.backward_scan_needed()?;
                self.read_through(u64::MAX).await?;
                let total = self.last_read();
                match (total + 1).checked_sub(from_end.unsigned_abs()) {
                    Some(row) if row >= 1 => self.go_to(row).await?,
                    _ => {
                        self.position = 0;
                        (Vec::new(), 0)
                    }
                }
            }
            CursorMotion::Relative(by) => {
                if by < 0 {
                    self.backward_scan_needed()?;
                }
                match at.checked_add_signed(by) {
                    Some(row) if row >= 1 => self.go_to(row).await?,
                    _ => {
                        self.position = 0;
                        (Vec::new(), 0)
                    }
                }
            }
        };
        self.forget_passed();
        Ok(moved)
    }

    /// FETCH 0 or RELATIVE 0: the current row again, which only a cursor that can move back
    /// rereads; MOVE 0 says whether there is one, and off a row there is nothing to reread.
    fn stay(&mut self, move_only: bool) -> ExecResult<(Vec<RecordBatch>, u64)> {
        let on_row = self.position >= 1 && self.position <= self.last_read();
        if !on_row {
            return Ok((Vec::new(), 0));
        }
        if move_only {
            return Ok((Vec::new(), 1));
        }
        self.backward_scan_needed()?;
        Ok((self.rows(self.position, self.position), 1))
    }

    /// Moves onto row `row` and returns it, or after the last row when there is no such row.
    async fn go_to(&mut self, row: u64) -> ExecResult<(Vec<RecordBatch>, u64)> {
        if row <= self.position {
            self.backward_scan_needed()?;
        }
        self.read_through(row).await?;
        if row <= self.last_read() {
            self.position = row;
            Ok((self.rows(row, row), 1))
        } else {
            self.position = self.last_read() + 1;
            Ok((Vec::new(), 0))
        }
    }
}

/// A cursor taken out of the session's map while a FETCH moves it. The FETCH's future may be
/// dropped mid-read (statement_timeout, a closing connection): the cursor then goes back
/// failed rather than vanish, as PostgreSQL's portal stays, failed, until CLOSE or the end of
/// its transaction.
struct CheckedOut<'a> {
    session: &'a Session,
    name: &'a str,
    cursor: Option<Cursor>,
}

impl CheckedOut<'_> {
    fn give_back(&mut self) {
        if let Some(cursor) = self.cursor.take() {
            self.session
                .cursors()
                .open
                .insert(self.name.to_owned(), cursor);
        }
    }
}

impl Drop for CheckedOut<'_> {
    fn drop(&mut self) {
        if let Some(cursor) = self.cursor.as_mut() {
            cursor.failed = true;
        }
        self.give_back();
    }
}

impl Cursors {
    /// The result columns of cursor `name`, if it is open.
    pub(super) fn schema(&self, name: &str) -> Option<SchemaRef> {
        self.open.get(name).map(|cursor| cursor.schema.clone())
    }

    /// Savepoints above `depth` were released (`rolled_back`: rolled back): the cursors
    /// declared since end with them, or now belong to the savepoint that remains.
    pub(super) fn savepoint_ended(&mut self, depth: usize, rolled_back: bool) {
        if rolled_back {
            self.open
                .retain(|_, cursor| cursor.committed || cursor.savepoints < depth);
        }
        for cursor in self.open.values_mut() {
            cursor.savepoints = cursor.savepoints.min(depth);
        }
    }

    /// At the end of a transaction block: cursors declared without HOLD close, and so do
    /// those WITH HOLD that the block declared when it rolls back.
    pub(super) fn transaction_ended(&mut self, committed: bool) {
        self.open
            .retain(|_, cursor| cursor.hold && (committed || cursor.committed));
        if committed {
            for cursor in self.open.values_mut() {
                cursor.committed = true;
            }
        }
    }
}

impl Session {
    /// DECLARE: starts the query (and for WITH HOLD reads it whole) and names its result.
    pub(super) async fn declare_cursor(
        &self,
        declared: &CursorDeclaration,
        params: Vec<datafusion::scalar::ScalarValue>,
    ) -> ExecResult<Outcome> {
        let in_block = self.in_transaction_block();
        if !declared.hold && !in_block {
            return Err(ExecError::NoActiveTransaction(
                "DECLARE CURSOR can only be used in transaction blocks".into(),
            ));
        }
        if self.cursors().open.contains_key(&declared.name) {
            return Err(ExecError::DuplicateCursor(declared.name.clone()));
        }
        let query = self
            .plan_statement(Statement::Query(declared.query.clone()))
            .await?;
        // DECLARE itself stays bounded by statement_timeout (the caller times the whole of it);
        // the rows FETCH reads later are bounded by that FETCH's own.
        self.release_statement_deadline();
        let (schema, stream) = match Box::pin(self.run(&query, params)).await? {
            Outcome::Rows { schema, stream } => (schema, stream),
            _ => {
                return Err(ExecError::Internal(
                    "a cursor's query returned no rows".into(),
                ));
            }
        };
        let pool = self.ctx.runtime_env().memory_pool.clone();
        let mut cursor = Cursor {
            schema,
            unread: Some(stream),
            kept: VecDeque::new(),
            kept_from: 1,
            kept_rows: 0,
            position: 0,
            scroll: declared.scroll,
            hold: declared.hold,
            committed: !in_block,
            savepoints: self.savepoint_depth(),
            failed: false,
            memory: MemoryConsumer::new(format!("cursor {}", declared.name)).register(&pool),
        };
        if declared.hold {
            cursor.read_through(u64::MAX).await?;
        }
        // Another statement of this session cannot have declared the name meanwhile.
        self.cursors().open.insert(declared.name.clone(), cursor);
        Ok(Outcome::Done {
            tag: "DECLARE CURSOR",
        })
    }

    /// FETCH or MOVE. A cursor on which one fails (its query, or a move it cannot make, or a
    /// cancel or timeout that cut it short) fails for good, as PostgreSQL's portal does.
    pub(super) async fn fetch_cursor(
        &self,
        name: &str,
        motion: CursorMotion,
        move_only: bool,
    ) -> ExecResult<Outcome> {
        let Some(cursor) = self.cursors().open.remove(name) else {
            return Err(ExecError::UndefinedCursor(name.to_owned()));
        };
        let mut out = CheckedOut {
            session: self,
            name,
            cursor: Some(cursor),
        };
        let cursor = out.cursor.as_mut().expect("checked out");
        let travelled = if cursor.failed {
            Err(ExecError::ObjectNotInPrerequisiteState(format!(
                "portal \"{name}\" cannot be run"
            )))
        } else {
            cursor.travel(motion, move_only).await
        };
        cursor.failed = travelled.is_err();
        let schema = cursor.schema.clone();
        out.give_back();
        let (rows, count) = travelled?;
        Ok(if move_only {
            Outcome::Affected {
                tag: "MOVE",
                rows: usize::try_from(count).unwrap_or(usize::MAX),
            }
        } else {
            Outcome::Fetched {
                stream: super::outcome::stream_of(schema.clone(), rows),
                schema,
            }
        })
    }

    pub(super) fn close_cursor(&self, name: Option<&str>) -> ExecResult<Outcome> {
        let mut cursors = self.cursors();
        match name {
            None => cursors.open.clear(),
            Some(name) => {
                if cursors.open.remove(name).is_none() {
                    return Err(ExecError::UndefinedCursor(name.to_owned()));
                }
            }
        }
        Ok(Outcome::Done {
            tag: "CLOSE CURSOR",
        })
    }

    fn cursors(&self) -> std::sync::MutexGuard<'_, Cursors> {
        self.cursors.lock().expect("cursors lock")
    }

    /// The result columns of this session's SQL cursor `name`, if it is open.
    pub fn cursor_schema(&self, name: &str) -> Option<SchemaRef> {
        self.cursors().schema(name)
    }

    pub(super) fn cursors_at_transaction_end(&self, committed: bool) {
        self.cursors().transaction_ended(committed);
    }

    pub(super) fn cursors_at_savepoint_end(&self, depth: usize, rolled_back: bool) {
        self.cursors().savepoint_ended(depth, rolled_back);
    }
}
