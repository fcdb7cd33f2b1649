//! DDL inside a transaction block: checked when it runs against the block's own catalog, kept
//! with the block's writes, and applied with them at COMMIT, so ROLLBACK leaves no trace.
//!
//! Each DDL statement in a block dry-runs the block's DDL so far plus itself
//! (`Store::preview_catalog`); the records that leaves are the catalog the block's later
//! statements resolve names in. Relations the block creates get their ids at once, so rows the
//! block writes to them carry the ids they will keep; a sequence it creates gets its position
//! at once too, so nextval works before COMMIT (values handed out stay handed out, as
//! nextval's always do).

use std::sync::Arc;

use super::transaction::Transaction;
use super::{ExecResult, Session};
use crate::storage::{Applied, CatalogRead, Command, StorageError};

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
        transaction.push(command);
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
