//! CHECK constraints over the rows storage rewrites on its own: a foreign key's CASCADE, SET
//! NULL or SET DEFAULT changes referring rows inside the command, where no statement evaluated
//! their table's CHECK constraints. Storage does not evaluate SQL expressions; the executor,
//! which does, supplies a [`CheckEvaluator`] when it starts, and storage hands it the final
//! version of every row it rewrote, one batch per table.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;

use super::apply_context::ApplyContext;
use super::records::TableRecord;
use super::{Conflict, StorageResult, rows};

/// Evaluates a table's CHECK constraints over rows.
pub trait CheckEvaluator: Send + Sync {
    /// The first row of `columns` (one array per column of `table`, `rows` long) that makes
    /// one of the table's CHECK constraints false, with that constraint's name; checked in
    /// name order, as PostgreSQL does. `Err` says why a constraint could not be evaluated.
    fn first_violation(
        &self,
        table: &TableRecord,
        columns: &[ArrayRef],
        rows: usize,
    ) -> Result<Option<(String, usize)>, String>;
}

/// The rows (by key, per table) a command rewrote without a statement checking them.
#[derive(Default)]
pub(super) struct RewrittenRows {
    tables: BTreeMap<u64, Vec<Vec<u8>>>,
}

impl RewrittenRows {
    pub(super) fn push(&mut self, table_id: u64, key: Vec<u8>) {
        self.tables.entry(table_id).or_default().push(key);
    }

    /// Fails with 23514 when the live version of a rewritten row breaks one of its table's
    /// CHECK constraints.
    pub(super) fn verify(self, ctx: &ApplyContext) -> StorageResult<()> {
        for (table_id, mut keys) in self.tables {
            let Some(table) = ctx.table_by_id(table_id)? else {
                continue;
            };
            if table.checks.is_empty() {
                continue;
            }
            keys.sort_unstable();
            keys.dedup();
            let mut decoder = rows::RowDecoder::new(Arc::new(table.columns.clone()), None);
            let mut live = Vec::with_capacity(keys.len());
            for key in &keys {
                if let Some(row) = ctx.live_row(table_id, key, usize::MAX)? {
                    decoder.push(&row)?;
                    live.push(row);
                }
            }
            if live.is_empty() {
                continue;
            }
            let columns = decoder.finish();
            let failure = |message: String, row: &[u8]| -> StorageResult<()> {
                Err(Conflict::CheckViolation {
                    message,
                    detail: format!("Failing row contains ({}).", row_text(&table, row)?),
                }
                .into())
            };
            let Some(evaluator) = ctx.check_evaluator else {
                return failure(
                    format!(
                        "the check constraints of relation \"{}\" cannot be evaluated here",
                        table.name
                    ),
                    &live[0],
                );
            };
            match evaluator.first_violation(&table, &columns, live.len()) {
                Ok(None) => {}
                Ok(Some((constraint, row))) => {
                    return failure(
                        format!(
                            "new row for relation \"{}\" violates check constraint \"{constraint}\"",
                            table.name
                        ),
                        &live[row.min(live.len() - 1)],
                    );
                }
                Err(why) => {
                    return failure(
                        format!(
                            "the check constraints of relation \"{}\" failed to evaluate: {why}",
                            table.name
                        ),
                        &live[0],
                    );
                }
            }
        }
        Ok(())
    }
}

/// `1, null, x`: a row as PostgreSQL's "Failing row contains" shows it.
fn row_text(table: &TableRecord, row: &[u8]) -> StorageResult<String> {
    let datums = rows::split_datums(&table.columns, row)?;
    Ok(table
        .columns
        .iter()
        .zip(datums)
        .map(|(column, datum)| rows::datum_text(column.sql_type, datum))
        .collect::<Vec<_>>()
        .join(", "))
}
