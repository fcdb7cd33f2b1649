//! Enforcing foreign keys inside the command that writes rows. Commands apply one at a time
//! against everything committed before them, so a check made here cannot race another
//! writer: a referencing row and the deletion of its referenced row, sent concurrently, are
//! applied in some order, and the second one sees the first.
//!
//! Writes to a table with foreign keys (on either side) go row by row. A row written to a
//! referencing table queues a check that its key exists in the referenced table; a
//! referenced row deleted or re-keyed either queues a check that nothing refers to its old
//! key (NO ACTION, RESTRICT) or changes the referring rows now (CASCADE, SET NULL, SET
//! DEFAULT), which may cascade further. The checks run once the statement's rows are all
//! written, as PostgreSQL's do, or with the whole command (a transaction block's COMMIT) for
//! constraints declared `INITIALLY DEFERRED`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rocksdb::WriteBatch;

use super::apply_context::ApplyContext;
use super::command::{Expect, RewrittenRow, RowWrite};
use super::foreign_keys::{ForeignKeyRecord, Links, links_of};
use super::indexes::{self, IndexRecord};
use super::keys::CF_INDEX_ENTRIES;
use super::row_checks::RewrittenRows;
use super::row_writes::{live_version, write_row};
use super::{Conflict, StorageResult, datums, rows};
use crate::model::ReferentialAction;
use crate::model::types::{ColumnDef, SqlType};

/// A foreign-key condition to verify once the writes that raised it are all applied.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    /// The row under `row_key` was written referring to `values` (its referencing columns):
    /// the referenced table must have that key, unless the row has changed again since.
    Referenced {
        fk: Arc<ForeignKeyRecord>,
        row_key: Vec<u8>,
        values: Vec<Vec<u8>>,
    },
    /// A referenced row with key `values` was deleted or re-keyed: no row may still refer to
    /// it, unless (NO ACTION) a row with that key exists again.
    Unreferenced {
        fk: Arc<ForeignKeyRecord>,
        values: Vec<Vec<u8>>,
        restrict: bool,
    },
}

impl Check {
    fn constraint(&self) -> &ForeignKeyRecord {
        match self {
            Check::Referenced { fk, .. } | Check::Unreferenced { fk, .. } => fk,
        }
    }

    pub(super) fn verify(&self, ctx: &ApplyContext) -> StorageResult<()> {
        match self {
            Check::Referenced {
                fk,
                row_key,
                values,
            } => {
                let Some(row) = ctx.live_row(fk.table_id, row_key, fk.layout.len())? else {
                    return Ok(());
                };
                if datums_of(&fk.layout, &fk.columns, &row)? != *values {
                    return Ok(());
                }
                let present = match converted(fk, values, Side::ToParent) {
                    Some(parent_values) => parent_has_key(ctx, fk, &parent_values)?,
                    None => false,
                };
                if present {
                    return Ok(());
                }
                let (table, parent) = (table_name(ctx, fk.table_id), table_name(ctx, fk.parent_id));
                Err(Conflict::ForeignKeyViolation {
                    message: format!(
                        "insert or update on table \"{table}\" violates foreign key constraint \"{}\"",
                        fk.name
                    ),
                    detail: format!(
                        "{} is not present in table \"{parent}\".",
                        describe(&fk.layout, &fk.columns, values)
                    ),
                }
                .into())
            }
            Check::Unreferenced {
                fk,
                values,
                restrict,
            } => {
                if !restrict && parent_has_key(ctx, fk, values)? {
                    return Ok(());
                }
                if referring_rows(ctx, fk, values, 1)?.is_empty() {
                    return Ok(());
                }
                let (table, parent) = (table_name(ctx, fk.table_id), table_name(ctx, fk.parent_id));
                Err(Conflict::ForeignKeyViolation {
                    message: format!(
                        "update or delete on table \"{parent}\" violates foreign key constraint \"{}\" on table \"{table}\"",
                        fk.name
                    ),
                    detail: format!(
                        "{} is still referenced from table \"{table}\".",
                        describe(&fk.parent_layout, &fk.parent_columns, values)
                    ),
                }
                .into())
            }
        }
    }
}

/// Verifies the checks deferred to the end of the command.
pub(super) fn verify_deferred(ctx: &mut ApplyContext) -> StorageResult<()> {
    verify_deferred_of(ctx, None)
}

/// Verifies the deferred checks of the constraints named (of all when `None`) now, as
/// `SET CONSTRAINTS ... IMMEDIATE` does; the others stay deferred.
pub(super) fn verify_deferred_of(
    ctx: &mut ApplyContext,
    names: Option<&[String]>,
) -> StorageResult<()> {
    let (due, later): (Vec<Check>, Vec<Check>) = std::mem::take(&mut ctx.deferred_checks)
        .into_iter()
        .partition(|check| names.is_none_or(|names| names.contains(&check.constraint().name)));
    ctx.deferred_checks = later;
    for check in &due {
        check.verify(ctx)?;
    }
    Ok(())
}

/// After column `position` of table `table_id` was retyped (`rows`: every row of the table,
/// as the batch now holds them): every row that refers through a foreign key using the column,
/// on either side, must still find its referenced key. PostgreSQL validates such a constraint
/// again after the rewrite, and reports a failure as a write's violation.
pub(super) fn verify_retyped_column(
    ctx: &ApplyContext,
    table_id: u64,
    position: usize,
    rows: &[RewrittenRow],
) -> StorageResult<()> {
    let links = links_of(ctx, table_id)?;
    for fk in links.outgoing {
        if !fk.columns.contains(&position) {
            continue;
        }
        let fk = Arc::new(fk);
        for (row_key, _, row) in rows {
            verify_referring_row(ctx, &fk, row_key, row)?;
        }
    }
    for fk in links.incoming {
        if !fk.parent_columns.contains(&position) {
            continue;
        }
        let fk = Arc::new(fk);
        let index_prefix = fk.index_id.to_be_bytes();
        for (_, row_key) in ctx.index_entries(&index_prefix, usize::MAX)? {
            if let Some(row) = ctx.live_row(fk.table_id, &row_key, fk.layout.len())? {
                verify_referring_row(ctx, &fk, &row_key, &row)?;
            }
        }
    }
    Ok(())
}

fn verify_referring_row(
    ctx: &ApplyContext,
    fk: &Arc<ForeignKeyRecord>,
    row_key: &[u8],
    row: &[u8],
) -> StorageResult<()> {
    let values = datums_of(&fk.layout, &fk.columns, row)?;
    // MATCH SIMPLE: a key with a NULL refers to nothing.
    if values.iter().any(|v| datums::datum_is_null(v)) {
        return Ok(());
    }
    Check::Referenced {
        fk: fk.clone(),
        row_key: row_key.to_vec(),
        values,
    }
    .verify(ctx)
}

/// Writes one statement's rows to a table that has foreign keys or is referenced by some.
pub(super) fn write_rows(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
    writes: &[RowWrite],
    links: Links,
) -> StorageResult<()> {
    // The rows an UPDATE that changes primary keys moves, by their new key.
    let moved: HashMap<&[u8], &[u8]> = writes
        .iter()
        .filter(|w| w.expect == Expect::Absent)
        .filter_map(|w| Some((w.key.as_slice(), w.value.as_deref()?)))
        .collect();
    let mut writer = Writer::default();
    let indexes = indexes::of_table(ctx, table_id)?;
    writer
        .tables
        .insert(table_id, Arc::new(TableLinks::new(indexes, links)));
    // Rows the cascades rewrote: no statement checked them against their CHECK constraints.
    let mut rewritten = RewrittenRows::default();
    for write in writes {
        let moved_row = write
            .moved_to
            .as_deref()
            .and_then(|key| moved.get(key).copied());
        writer.write(ctx, batch, table_id, write, moved_row, false)?;
        while let Some((table_id, write)) = writer.cascades.pop_front() {
            // SET DEFAULT may write the key a row already had: its referenced row must still
            // exist, so a cascaded write is always checked.
            writer.write(ctx, batch, table_id, &write, None, true)?;
            if write.value.is_some() {
                rewritten.push(table_id, write.key);
            }
        }
    }
    rewritten.verify(ctx)?;
    for check in writer.checks {
        if ctx.defers(check.constraint()) {
            ctx.deferred_checks.push(check);
        } else {
            check.verify(ctx)?;
        }
    }
    Ok(())
}

struct TableLinks {
    indexes: Vec<IndexRecord>,
    outgoing: Vec<Arc<ForeignKeyRecord>>,
    incoming: Vec<Arc<ForeignKeyRecord>>,
    /// How many leading columns of a replaced row the constraints read.
    old_columns: usize,
}

impl TableLinks {
    fn new(indexes: Vec<IndexRecord>, links: Links) -> TableLinks {
        let old_columns = links
            .outgoing
            .iter()
            .map(|fk| fk.layout.len())
            .chain(links.incoming.iter().map(|fk| fk.parent_layout.len()))
            .max()
            .unwrap_or(0);
        TableLinks {
            indexes,
            outgoing: links.outgoing.into_iter().map(Arc::new).collect(),
            incoming: links.incoming.into_iter().map(Arc::new).collect(),
            old_columns,
        }
    }
}

#[derive(Default)]
struct Writer {
    tables: HashMap<u64, Arc<TableLinks>>,
    /// Writes to referring rows that referenced rows' changes caused, not yet applied.
    cascades: VecDeque<(u64, RowWrite)>,
    checks: Vec<Check>,
}

impl Writer {
    fn table(&mut self, ctx: &ApplyContext, table_id: u64) -> StorageResult<Arc<TableLinks>> {
        if let Some(links) = self.tables.get(&table_id) {
            return Ok(links.clone());
        }
        let links = Arc::new(TableLinks::new(
            indexes::of_table(ctx, table_id)?,
            links_of(ctx, table_id)?,
        ));
        self.tables.insert(table_id, links.clone());
        Ok(links)
    }

    fn write(
        &mut self,
        ctx: &mut ApplyContext,
        batch: &mut WriteBatch,
        table_id: u64,
        write: &RowWrite,
        moved_row: Option<&[u8]>,
        cascaded: bool,
    ) -> StorageResult<()> {
        let table = self.table(ctx, table_id)?;
        let old = write_row(
            ctx,
            batch,
            table_id,
            write,
            &table.indexes,
            table.old_columns,
        )?;
        if let Some(new) = write.value.as_deref() {
            for fk in &table.outgoing {
                let values = datums_of(&fk.layout, &fk.columns, new)?;
                // MATCH SIMPLE: a key with a NULL refers to nothing.
                if values.iter().any(|v| datums::datum_is_null(v)) {
                    continue;
                }
                if !cascaded
                    && let Some(old) = &old
                    && datums_of(&fk.layout, &fk.columns, old)? == values
                {
                    continue;
                }
                self.checks.push(Check::Referenced {
                    fk: fk.clone(),
                    row_key: write.key.clone(),
                    values,
                });
            }
        }
        let Some(old) = old else {
            return Ok(());
        };
        for fk in &table.incoming {
            let old_values = datums_of(&fk.parent_layout, &fk.parent_columns, &old)?;
            if old_values.iter().any(|v| datums::datum_is_null(v)) {
                continue;
            }
            // A row an UPDATE moves to another primary key is updated, not deleted.
            let new_values = write
                .value
                .as_deref()
                .or(moved_row)
                .map(|new| datums_of(&fk.parent_layout, &fk.parent_columns, new))
                .transpose()?;
            if new_values.as_ref() == Some(&old_values) {
                continue;
            }
            let action = match new_values {
                Some(_) => fk.on_update,
                None => fk.on_delete,
            };
            match action {
                ReferentialAction::NoAction | ReferentialAction::Restrict => {
                    self.checks.push(Check::Unreferenced {
                        fk: fk.clone(),
                        values: old_values,
                        restrict: action == ReferentialAction::Restrict,
                    });
                }
                _ => self.act(ctx, fk, action, &old_values, new_values.as_deref())?,
            }
        }
        Ok(())
    }

    /// Queues the changes CASCADE, SET NULL or SET DEFAULT make to the rows referring to a
    /// referenced row whose key was `old_values` and is now `new_values` (`None`: deleted).
    fn act(
        &mut self,
        ctx: &ApplyContext,
        fk: &Arc<ForeignKeyRecord>,
        action: ReferentialAction,
        old_values: &[Vec<u8>],
        new_values: Option<&[Vec<u8>]>,
    ) -> StorageResult<()> {
        let replacement: Option<Vec<Vec<u8>>> = match (action, new_values) {
            (ReferentialAction::Cascade, None) => None,
            (ReferentialAction::Cascade, Some(values)) => {
                Some(converted(fk, values, Side::ToChild).ok_or_else(|| {
                    Conflict::OutOfRange(format!(
                        "a new key of table \"{}\" does not fit the columns of foreign key \"{}\"",
                        table_name(ctx, fk.parent_id),
                        fk.name
                    ))
                })?)
            }
            (ReferentialAction::SetNull, _) => {
                Some(vec![datums::NULL_DATUM.to_vec(); fk.columns.len()])
            }
            (ReferentialAction::SetDefault, _) => Some(fk.defaults.clone()),
            (ReferentialAction::NoAction | ReferentialAction::Restrict, _) => return Ok(()),
        };
        if let Some(values) = &replacement {
            for (&column, value) in fk.columns.iter().zip(values) {
                if datums::datum_is_null(value) && !fk.layout[column].nullable {
                    return Err(Conflict::NotNull {
                        table: table_name(ctx, fk.table_id),
                        column: fk.layout[column].name.clone(),
                    }
                    .into());
                }
            }
        }
        if action == ReferentialAction::SetDefault {
            // A default equal to the old key leaves the rows referring to it, as PostgreSQL
            // reports: checked before the rows' own check of the key they now have.
            self.checks.push(Check::Unreferenced {
                fk: fk.clone(),
                values: old_values.to_vec(),
                restrict: false,
            });
        }
        for row_key in referring_rows(ctx, fk, old_values, usize::MAX)? {
            let write = match &replacement {
                None => RowWrite {
                    key: row_key,
                    value: None,
                    expect: Expect::Anything,
                    moved_to: None,
                },
                Some(values) => {
                    let Some(row) = ctx.live_row(fk.table_id, &row_key, usize::MAX)? else {
                        continue;
                    };
                    let changes: Vec<(usize, Vec<u8>)> = fk
                        .columns
                        .iter()
                        .copied()
                        .zip(values.iter().cloned())
                        .collect();
                    RowWrite {
                        value: Some(datums::replace_datums(&fk.layout, &row, &changes)?),
                        key: row_key,
                        expect: Expect::Anything,
                        moved_to: None,
                    }
                }
            };
            self.cascades.push_back((fk.table_id, write));
        }
        Ok(())
    }
}

/// The datums of `columns` in a stored row.
fn datums_of(layout: &[ColumnDef], columns: &[usize], row: &[u8]) -> StorageResult<Vec<Vec<u8>>> {
    let datums = rows::split_datums(layout, row)?;
    Ok(columns.iter().map(|&c| datums[c].to_vec()).collect())
}

#[derive(Clone, Copy)]
enum Side {
    ToParent,
    ToChild,
}

/// Values of one side of a foreign key as the other side's column types store them; `None`
/// when one has no equal there (an integer out of range).
fn converted(fk: &ForeignKeyRecord, values: &[Vec<u8>], side: Side) -> Option<Vec<Vec<u8>>> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let child = fk.layout[fk.columns[i]].sql_type;
            let parent = fk.parent_layout[fk.parent_columns[i]].sql_type;
            match side {
                Side::ToParent => datums::convert_datum(child, parent, value),
                Side::ToChild => datums::convert_datum(parent, child, value),
            }
        })
        .collect()
}

fn types_of(layout: &[ColumnDef], columns: &[usize]) -> Vec<SqlType> {
    columns.iter().map(|&c| layout[c].sql_type).collect()
}

/// Whether the referenced table has a live row with key `values` (in its own types).
fn parent_has_key(
    ctx: &ApplyContext,
    fk: &ForeignKeyRecord,
    values: &[Vec<u8>],
) -> StorageResult<bool> {
    let types = types_of(&fk.parent_layout, &fk.parent_columns);
    if fk.references_primary_key() {
        let mut key = rows::table_prefix(fk.parent_id).to_vec();
        for (sql_type, value) in types.iter().zip(values) {
            let mut part = Vec::new();
            rows::datum_key(*sql_type, value, &mut part)?;
            // A primary key's encoding is the value's without the NULL-ordering marker.
            key.extend_from_slice(&part[1..]);
        }
        return Ok(live_version(ctx, &key)?.is_some());
    }
    let mut key = fk.parent_index_id.to_be_bytes().to_vec();
    for (sql_type, value) in types.iter().zip(values) {
        rows::datum_key(*sql_type, value, &mut key)?;
    }
    Ok(ctx.get(CF_INDEX_ENTRIES, &key)?.is_some())
}

/// Keys of (at most `limit`) rows referring to the referenced key `values`.
fn referring_rows(
    ctx: &ApplyContext,
    fk: &ForeignKeyRecord,
    values: &[Vec<u8>],
    limit: usize,
) -> StorageResult<Vec<Vec<u8>>> {
    let Some(values) = converted(fk, values, Side::ToChild) else {
        return Ok(Vec::new());
    };
    let mut prefix = fk.index_id.to_be_bytes().to_vec();
    for (sql_type, value) in types_of(&fk.layout, &fk.columns).iter().zip(&values) {
        rows::datum_key(*sql_type, value, &mut prefix)?;
    }
    Ok(ctx
        .index_entries(&prefix, limit)?
        .into_iter()
        .map(|(_, row_key)| row_key)
        .collect())
}

/// `Key (a, b)=(1, x)`.
fn describe(layout: &[ColumnDef], columns: &[usize], values: &[Vec<u8>]) -> String {
    let names: Vec<&str> = columns.iter().map(|&c| layout[c].name.as_str()).collect();
    let texts: Vec<String> = columns
        .iter()
        .zip(values)
        .map(|(&c, v)| rows::datum_text(layout[c].sql_type, v))
        .collect();
    format!("Key ({})=({})", names.join(", "), texts.join(", "))
}

fn table_name(ctx: &ApplyContext, table_id: u64) -> String {
    match ctx.table_by_id(table_id) {
        Ok(Some(table)) => table.name,
        _ => format!("#{table_id}"),
    }
}
