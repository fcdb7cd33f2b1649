//! A session's transaction block: whether one is open (or failed), the writes it holds until
//! COMMIT applies them as one command, its savepoints, and the same writes by key, which the
//! session's own reads see through the table providers.

use std::sync::{Arc, Mutex, MutexGuard};

use super::outcome::Outcome;
use super::{ExecError, ExecResult, Session};
use crate::storage::{Command, Conflict, Expect, RowWrite, StorageError, TableRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum BlockState {
    #[default]
    Idle,
    InBlock,
    /// A statement failed inside the block: everything but ROLLBACK is refused until it ends.
    Failed,
}

/// Everything a transaction block holds, behind one lock.
#[derive(Debug, Default)]
pub(super) struct Transaction {
    pub state: BlockState,
    /// Writes of the open block, applied as one command at COMMIT.
    commands: Vec<Command>,
    /// Savepoints of the open block: name and how many commands existed then.
    savepoints: Vec<(String, usize)>,
}

/// Shared with a running query's result stream, which marks the block failed when it errors.
pub(super) type SharedTransaction = Arc<Mutex<Transaction>>;

impl Transaction {
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    pub fn push(&mut self, command: Command) {
        self.commands.push(command);
    }
}

/// A statement that must be one atomic write although it makes several (CREATE TABLE AS),
/// run outside a block: a block of its own, committed by [`ImplicitBlock::commit`] and
/// rolled back if dropped first (an error, a cancel, a timeout).
pub(super) struct ImplicitBlock<'s> {
    session: &'s Session,
    open: bool,
}

impl<'s> ImplicitBlock<'s> {
    pub fn begin(session: &'s Session) -> Self {
        session.transaction().state = BlockState::InBlock;
        ImplicitBlock {
            session,
            open: true,
        }
    }

    pub fn commit(mut self) -> ExecResult<()> {
        self.open = false;
        self.session.commit().map(|_| ())
    }
}

impl Drop for ImplicitBlock<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.session.end_transaction(Outcome::Rollback);
        }
    }
}

/// Marks an open block failed (a statement or its result stream errored).
pub(super) fn mark_failed(transaction: &Mutex<Transaction>) {
    let mut transaction = transaction.lock().expect("transaction lock");
    if transaction.state == BlockState::InBlock {
        transaction.state = BlockState::Failed;
    }
}

impl Session {
    pub(super) fn transaction(&self) -> MutexGuard<'_, Transaction> {
        self.transaction.lock().expect("transaction lock")
    }

    /// A statement that failed before it ran (while it was parsed or planned) fails its
    /// transaction block as one failing while it runs does, so that the block's COMMIT rolls
    /// back; in a block that had already failed, the error is that one (25P02).
    pub(super) fn failed_before_running(&self, error: ExecError) -> ExecError {
        let state = self.transaction().state;
        match state {
            BlockState::Failed => ExecError::InFailedTransaction,
            BlockState::InBlock => {
                mark_failed(&self.transaction);
                error
            }
            BlockState::Idle => error,
        }
    }

    /// Ends the block, discarding its uncommitted writes.
    pub(super) fn end_transaction(&self, outcome: Outcome) -> ExecResult<Outcome> {
        *self.transaction() = Transaction::default();
        self.cursors_at_transaction_end(matches!(outcome, Outcome::Commit));
        self.advisory_locks.release_transaction_locks();
        self.pending.tables.lock().expect("pending writes").clear();
        *self.pending.catalog.lock().expect("pending catalog") = Default::default();
        self.pending
            .truncated
            .lock()
            .expect("pending truncations")
            .clear();
        Ok(outcome)
    }

    pub(super) fn savepoint(&self, name: &str) -> ExecResult<Outcome> {
        if !self.in_transaction_block() {
            return Err(ExecError::NoActiveTransaction(
                "SAVEPOINT can only be used in transaction blocks".into(),
            ));
        }
        let mut transaction = self.transaction();
        let depth = transaction.commands.len();
        transaction.savepoints.push((name.to_owned(), depth));
        Ok(Outcome::Done { tag: "SAVEPOINT" })
    }

    /// Drops the savepoints above `name` (and `name` itself unless `keep`); returns the number
    /// of pending commands the block had when `name` was set.
    fn unwind_savepoints(&self, name: &str, keep: bool) -> ExecResult<usize> {
        let mut transaction = self.transaction();
        let savepoints = &mut transaction.savepoints;
        let at = savepoints
            .iter()
            .rposition(|(n, _)| n == name)
            .ok_or_else(|| {
                ExecError::InvalidSavepoint(format!("savepoint \"{name}\" does not exist"))
            })?;
        let depth = savepoints[at].1;
        savepoints.truncate(if keep { at + 1 } else { at });
        Ok(depth)
    }

    pub(super) fn release_savepoint(&self, name: &str) -> ExecResult<Outcome> {
        self.unwind_savepoints(name, false)?;
        let depth = self.transaction().savepoints.len();
        self.cursors_at_savepoint_end(depth, false);
        Ok(Outcome::Done { tag: "RELEASE" })
    }

    /// Undoes the block's writes since the savepoint and leaves a failed block usable again.
    pub(super) fn rollback_to_savepoint(&self, name: &str) -> ExecResult<Outcome> {
        let depth = self.unwind_savepoints(name, true)?;
        let mut transaction = self.transaction();
        self.cursors_at_savepoint_end(transaction.savepoints.len(), true);
        transaction.commands.truncate(depth);
        *self.pending.tables.lock().expect("pending writes") =
            self.block_rows(&transaction.commands)?;
        self.recompute_block_catalog(&transaction)?;
        transaction.state = BlockState::InBlock;
        Ok(Outcome::Done { tag: "ROLLBACK" })
    }

    /// COMMIT: the block's writes become one command, applied atomically or not at all.
    pub(super) fn commit(&self) -> ExecResult<Outcome> {
        let commands = std::mem::take(&mut self.transaction().commands);
        let written: Vec<(u64, usize)> = commands
            .iter()
            .filter_map(|c| match c {
                Command::WriteRows {
                    table_id, writes, ..
                } => Some((*table_id, writes.len())),
                _ => None,
            })
            .collect();
        let has_ddl = commands.iter().any(Command::changes_catalog);
        let result = if commands.is_empty() {
            Ok(())
        } else {
            self.engine
                .apply(&Command::Batch(commands))
                .map(|applied| {
                    self.remove_segment_files(&applied);
                    // Indexes the block created on tables with rows build after COMMIT (the
                    // block's writes are in them already); queries use them once built.
                    if let Err(e) = self
                        .engine
                        .start_index_builds(&applied.indexes_to_build, self.user_id())
                    {
                        tracing::warn!("starting the index builds of a committed block: {e}");
                    }
                })
                .map_err(|e| match e {
                    // The block's DDL was checked against the catalog as it was; another
                    // session's DDL committed since conflicts with it.
                    StorageError::Conflict(conflict) if has_ddl && conflict.is_catalog() => {
                        ExecError::ConcurrentUpdate(format!(
                            "could not serialize access due to concurrent DDL: {conflict}"
                        ))
                    }
                    other => self.write_error(other),
                })
        };
        if result.is_ok() {
            for (table_id, rows) in written {
                self.engine.note_writes(table_id, rows);
            }
        }
        // A COMMIT that failed rolled back: WITH HOLD cursors the block declared end too.
        self.end_transaction(if result.is_ok() {
            Outcome::Commit
        } else {
            Outcome::Rollback
        })?;
        result.map(|()| Outcome::Commit)
    }

    /// Marks an open transaction block failed, as a statement's error does (a COPY's data can
    /// fail after its statement started).
    pub fn fail_block(&self) {
        mark_failed(&self.transaction);
    }

    /// How many savepoints the open block has set and not released.
    pub(super) fn savepoint_depth(&self) -> usize {
        self.transaction().savepoints.len()
    }

    pub(super) fn in_transaction_block(&self) -> bool {
        self.transaction().state != BlockState::Idle
    }

    /// This session's uncommitted version of a row: `Some(None)` if it deleted it.
    pub(super) fn pending_row(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let table_id = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
        self.pending
            .tables
            .lock()
            .expect("pending writes")
            .get(&table_id)?
            .get(key)
            .cloned()
    }

    /// Writes rows now (autocommit) or into the open block, checking `Expect::Absent` either way.
    /// An autocommit write waits for its fsync without holding a thread (`apply_durably`).
    pub(super) async fn commit_rows(
        &self,
        record: &TableRecord,
        writes: Vec<RowWrite>,
        row_id_high_water: Option<u64>,
    ) -> ExecResult<()> {
        if writes.is_empty() || self.in_transaction_block() {
            return self
                .commit_rows_or_return(record, writes, row_id_high_water)
                .map_err(|(error, _)| error);
        }
        let rows = writes.len();
        let command = write_rows(record, writes, row_id_high_water);
        self.engine
            .apply_durably(&command)
            .await
            .map_err(|e| self.write_error(e))?;
        self.engine.note_writes(record.table_id, rows);
        Ok(())
    }

    /// As [`Self::commit_rows`], handing the writes back with an error (COPY finds the row a
    /// duplicate key came from in them).
    pub(super) fn commit_rows_or_return(
        &self,
        record: &TableRecord,
        writes: Vec<RowWrite>,
        row_id_high_water: Option<u64>,
    ) -> Result<(), (ExecError, Vec<RowWrite>)> {
        if writes.is_empty() {
            return Ok(());
        }
        if !self.in_transaction_block() {
            let rows = writes.len();
            let command = write_rows(record, writes, row_id_high_water);
            if let Err(e) = self.engine.apply(&command) {
                let writes = match command {
                    Command::WriteRows { writes, .. } => writes,
                    _ => Vec::new(),
                };
                return Err((self.write_error(e), writes));
            }
            self.engine.note_writes(record.table_id, rows);
            return Ok(());
        }
        // Inside a block: check inserts against committed rows and the block's own writes now,
        // as PostgreSQL does, and again at COMMIT against whatever committed meanwhile.
        let truncated = self.pending.truncated(record.table_id);
        let mut tables = self.pending.tables.lock().expect("pending writes");
        let overlay = tables.entry(record.table_id).or_default();
        for write in &writes {
            if write.expect == Expect::Absent {
                let live = match overlay.get(&write.key) {
                    Some(pending) => pending.is_some(),
                    None if truncated => false,
                    None => match self.engine.store.live_version(&write.key) {
                        Ok(version) => version.is_some(),
                        Err(e) => return Err((e.into(), Vec::new())),
                    },
                };
                if live {
                    let error = self.write_error(StorageError::Conflict(Conflict::DuplicateKey {
                        table_id: record.table_id,
                        key: write.key.clone(),
                    }));
                    drop(tables);
                    return Err((error, writes));
                }
            }
        }
        for write in &writes {
            overlay.insert(write.key.clone(), write.value.clone());
        }
        drop(tables);
        self.transaction()
            .commands
            .push(write_rows(record, writes, row_id_high_water));
        Ok(())
    }

    /// Appends rows to a stream table now, or at COMMIT inside a block.
    pub(super) fn append_stream(&self, record: &TableRecord, rows: Vec<Vec<u8>>) -> ExecResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let command = Command::AppendStream {
            table_id: record.table_id,
            appended_at: crate::storage::now_micros(),
            rows,
        };
        let mut transaction = self.transaction();
        if transaction.state != BlockState::Idle {
            transaction.commands.push(command);
            return Ok(());
        }
        drop(transaction);
        self.engine.apply(&command)?;
        Ok(())
    }

    /// Gives storage conflicts the names a user knows (the table, not its id).
    pub(in crate::exec) fn write_error(&self, err: StorageError) -> ExecError {
        match err {
            StorageError::Conflict(Conflict::DuplicateKey { table_id, key }) => {
                let table = self
                    .engine
                    .store
                    .table_by_id(table_id)
                    .ok()
                    .flatten()
                    .map_or_else(|| format!("table {table_id}"), |t| t.name);
                ExecError::DuplicateKey {
                    message: format!(
                        "duplicate key value violates unique constraint \"{table}_pkey\""
                    ),
                    key,
                }
            }
            other => other.into(),
        }
    }
}

/// The command that writes `writes` into `record`'s table as the statement saw its definition.
fn write_rows(
    record: &TableRecord,
    writes: Vec<RowWrite>,
    row_id_high_water: Option<u64>,
) -> Command {
    Command::WriteRows {
        table_id: record.table_id,
        writes,
        row_id_high_water,
        layout_generation: record.layout_generation,
    }
}
