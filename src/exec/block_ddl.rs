//! DDL inside a transaction block: checked when it runs against the block's own catalog, kept
//! with the block's writes, and applied with them at COMMIT, so ROLLBACK leaves no trace.
//!
//! Each DDL statement in a block dry-runs the block's DDL so far plus itself
//! (`Store::preview_catalog`); the records that leaves are the catalog the block's later
//! statements resolve names in. Relations the block creates get their ids at once, so rows the
//! block writes to them carry the ids they will keep; a sequence it creates gets its position
//! at once too, so nextval works before COMMIT (values handed out stay handed out, as
//! nextval's always do).
//!
//! DDL that changes how rows are encoded (DROP COLUMN, ALTER COLUMN TYPE) also re-encodes the
//! block's own rows for the new definition; a retype makes every row of the table the block's
//! own, in the new type. The block reads committed rows of such a table re-encoded by column
//! id (`CommittedRows::Relayout`).

use std::collections::HashMap;
use std::sync::Arc;

use super::table::PendingRows;
use super::transaction::Transaction;
use super::{ExecResult, Session};
use crate::model::ColumnDef;
use crate::storage::{Applied, CatalogRead, Command, RewrittenRow, StorageError, TableRecord};

impl Session {
    /// The catalog as this session sees it: the committed records under its block's DDL.
    pub(super) fn catalog(&self) -> CatalogRead<'_> {
        self.engine.store.catalog(self.pending.catalog_changes())
    }

    /// The id for a relation a statement creates: 0 (assigned when applied) outside a block,
    /// reserved now inside one.
    pub(super) fn relation_id(&self) -> ExecResult<u64> {
        if !self.in_transaction_block() {
            return Ok(0);
        }
        let applied = self
            .engine
            .apply(&Command::ReserveRelationIds { count: 1 })?;
        Ok(applied.table_ids.first().copied().unwrap_or(0))
    }

    /// Applies a DDL command now, or inside a block checks it against the block's catalog and
    /// keeps it for COMMIT (the returned `Applied` is then empty).
    pub(super) fn apply_ddl(&self, command: Command) -> Result<Applied, StorageError> {
        if !self.in_transaction_block() {
            return self.engine.apply(&command);
        }
        let mut transaction = self.transaction();
        let changes = self.engine.store.preview_catalog(
            transaction
                .commands()
                .iter()
                .filter(|c| c.changes_catalog())
                .chain(std::iter::once(&command)),
        )?;
        for sequence in created_sequences(&command) {
            self.engine
                .apply(&Command::StartSequence(sequence.clone()))?;
        }
        // The preview left out the block's rows; a statement rewriting them is checked with
        // them now (foreign keys over the new values, rows another session changed), as
        // PostgreSQL reports such errors at the statement.
        let rewrites_rows = matches!(
            command,
            Command::RetypeColumn { .. } | Command::DropColumn { .. }
        );
        transaction.push(command);
        if rewrites_rows
            && transaction
                .commands()
                .iter()
                .any(|c| matches!(c, Command::WriteRows { .. }))
        {
            self.engine.store.dry_run(transaction.commands())?;
        }
        self.refresh_block_state(&transaction, changes);
        Ok(Applied::default())
    }

    /// The catalog and truncated tables the block's commands now leave (after a statement, or
    /// a ROLLBACK TO that dropped some).
    pub(super) fn refresh_block_state(
        &self,
        transaction: &Transaction,
        changes: crate::storage::CatalogChanges,
    ) {
        *self.pending.catalog.lock().expect("pending catalog") = Arc::new(changes);
        let mut truncated = self.pending.truncated.lock().expect("pending truncations");
        truncated.clear();
        for command in transaction.commands() {
            collect_truncated(command, &mut truncated);
        }
    }

    /// The block's own rows per table as `commands` leave them, each encoded for the block's
    /// latest definition of its table: what ROLLBACK TO keeps.
    pub(super) fn block_rows(&self, commands: &[Command]) -> ExecResult<HeldTables> {
        let mut held = HeldTables::new();
        // The columns each table's held rows are encoded for, once a command defined them.
        let mut layouts: HashMap<u64, Vec<ColumnDef>> = HashMap::new();
        let mut queue: Vec<&Command> = commands.iter().rev().collect();
        while let Some(command) = queue.pop() {
            match command {
                Command::Batch(inner) => queue.extend(inner.iter().rev()),
                Command::WriteRows {
                    table_id, writes, ..
                } => {
                    let rows = held.entry(*table_id).or_default();
                    for write in writes {
                        rows.insert(write.key.clone(), write.value.clone());
                    }
                }
                Command::DropColumn { table, .. } => {
                    let before = match layouts.remove(&table.table_id) {
                        Some(columns) => columns,
                        None => self.committed_columns(table.table_id)?,
                    };
                    relayout_held(&mut held, table.table_id, &before, &table.columns)?;
                    layouts.insert(table.table_id, table.columns.clone());
                }
                Command::RetypeColumn {
                    table,
                    position,
                    rows,
                } => {
                    hold_retyped(&mut held, table, *position, rows.clone())?;
                    layouts.insert(table.table_id, table.columns.clone());
                }
                Command::CreateTable(table)
                | Command::AlterTable(table)
                | Command::SetSchema { table, .. } => {
                    layouts.insert(table.table_id, table.columns.clone());
                }
                _ => {}
            }
        }
        Ok(held)
    }

    fn committed_columns(&self, table_id: u64) -> ExecResult<Vec<ColumnDef>> {
        self.engine
            .store
            .table_by_id(table_id)?
            .map(|t| t.columns)
            .ok_or_else(|| {
                super::ExecError::Internal(format!("table {table_id} has no committed definition"))
            })
    }

    /// The block's catalog after a ROLLBACK TO removed commands.
    pub(super) fn recompute_block_catalog(&self, transaction: &Transaction) -> ExecResult<()> {
        let changes = self.engine.store.preview_catalog(
            transaction
                .commands()
                .iter()
                .filter(|c| c.changes_catalog()),
        )?;
        self.refresh_block_state(transaction, changes);
        Ok(())
    }
}

/// A block's own rows: per table, key to row (`None`: deleted).
pub(super) type HeldTables = HashMap<u64, PendingRows>;

/// Re-encodes the block's own rows of a table for its columns after the block dropped one
/// (storage rewrites them the same way at COMMIT).
pub(super) fn relayout_held(
    held: &mut HeldTables,
    table_id: u64,
    from: &[ColumnDef],
    to: &[ColumnDef],
) -> ExecResult<()> {
    if let Some(rows) = held.get_mut(&table_id) {
        for row in rows.values_mut().flatten() {
            *row = crate::storage::rows::relayout(from, to, row)?;
        }
    }
    Ok(())
}

/// After the block retyped column `position` of `retyped`: every live row of the table, as
/// `rows` has them in the new definition, is the block's own from then on, so its reads never
/// decode a committed row of the old type. A retyped key column moves each row to the key its
/// new value encodes, as storage does at COMMIT.
pub(super) fn hold_retyped(
    held: &mut HeldTables,
    retyped: &TableRecord,
    position: usize,
    rows: Vec<RewrittenRow>,
) -> ExecResult<()> {
    let table = held.entry(retyped.table_id).or_default();
    let rows = if retyped.primary_key.contains(&position) {
        let moved = crate::storage::rekeyed(retyped, &rows)?;
        for (key, _, _) in rows {
            table.insert(key, None);
        }
        moved
    } else {
        rows
    };
    for (key, _, row) in rows {
        table.insert(key, Some(row));
    }
    Ok(())
}

fn created_sequences(command: &Command) -> Vec<&crate::storage::SequenceRecord> {
    match command {
        Command::CreateSequence(sequence) => vec![sequence],
        Command::Batch(commands) => commands.iter().flat_map(created_sequences).collect(),
        _ => Vec::new(),
    }
}

fn collect_truncated(command: &Command, truncated: &mut std::collections::HashSet<u64>) {
    match command {
        Command::TruncateTable { table_id, .. } => {
            truncated.insert(*table_id);
        }
        Command::Batch(commands) => {
            for command in commands {
                collect_truncated(command, truncated);
            }
        }
        _ => {}
    }
}
