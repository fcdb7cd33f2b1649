//! Secondary indexes: their definitions, the entries they keep in the `index_entries` column
//! family, and keeping those entries in step with a table's rows inside the command that
//! writes the rows.
//!
//! An entry's key is the index id, then each indexed value in a memcomparable form (NULLs
//! after every value, PostgreSQL's ascending order), then the row key, which keeps entries of
//! equal values apart. A unique index's entry with no NULL is keyed by its values alone, so a
//! second row with the same values finds it with one read, one that sees everything the
//! command wrote before. Every entry's value is its row key. Entries do not move when rows are
//! flushed: they name rows by key, and a key finds its row hot or cold.

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::apply_context::ApplyContext;
use super::keys::{CF_CATALOG, CF_INDEX_ENTRIES};
use super::{Conflict, StorageResult, catalog_keys, cf, rows};
use crate::model::types::ColumnDef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexState {
    /// Row writes keep its entries while a build job adds entries for the rows the table had
    /// when it was created; queries do not read it yet.
    Building,
    Ready,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRecord {
    /// A relation id (from the counter tables and sequences share); 0 until applied.
    pub index_id: u64,
    pub namespace: String,
    pub name: String,
    pub table_id: u64,
    /// Positions of the indexed columns in the table, in index order.
    pub columns: Vec<usize>,
    pub unique: bool,
    /// The name of the UNIQUE or PRIMARY KEY constraint the index enforces, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    pub state: IndexState,
    /// The table's columns up to the last indexed one, as rows encode them: enough to find the
    /// indexed values in a stored row without reading the table's definition.
    pub layout: Vec<ColumnDef>,
    pub created_at: i64,
}

impl IndexRecord {
    /// The constraint name when the index enforces one, else the index name (what a unique
    /// violation names, as PostgreSQL does).
    pub fn constraint_name(&self) -> &str {
        self.constraint.as_deref().unwrap_or(&self.name)
    }

    /// The entry `row` (an encoded row stored under `row_key`) has in this index, and whether
    /// it is a unique entry (keyed by its values alone).
    pub(super) fn entry_of(&self, row: &[u8], row_key: &[u8]) -> StorageResult<(Vec<u8>, bool)> {
        let datums = rows::split_datums(&self.layout, row)?;
        let mut key = self.index_id.to_be_bytes().to_vec();
        let mut has_null = false;
        for &column in &self.columns {
            let datum = datums[column];
            has_null |= datum.first() != Some(&1);
            rows::datum_key(self.layout[column].sql_type, datum, &mut key)?;
        }
        let unique_entry = self.unique && !has_null;
        if !unique_entry {
            key.extend_from_slice(row_key);
        }
        Ok((key, unique_entry))
    }

    /// The entry `row` (an encoded row) has in this unique index, keyed by its values alone;
    /// `None` when the index is not unique or the row has a NULL in it (conflicting with none).
    pub fn unique_entry(&self, row: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        let (entry, unique) = self.entry_of(row, &[])?;
        Ok(unique.then_some(entry))
    }

    /// `Key (a, b)=(1, x)`, for messages about `row`.
    pub fn describe_key(&self, row: &[u8]) -> String {
        let Ok(datums) = rows::split_datums(&self.layout, row) else {
            return "Key".into();
        };
        rows::describe_key(&self.layout, &self.columns, &datums)
    }
}

/// The range of keys holding an index's entries.
pub(super) fn entry_range(index_id: u64) -> (Vec<u8>, Vec<u8>) {
    (
        index_id.to_be_bytes().to_vec(),
        (index_id + 1).to_be_bytes().to_vec(),
    )
}

/// The indexes of a table, as this command sees them.
pub(super) fn of_table(ctx: &ApplyContext, table_id: u64) -> StorageResult<Vec<IndexRecord>> {
    ctx.records_in(&catalog_keys::indexes_of(table_id))
}

/// How a write's index entries are recorded for the rest of its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Visibility {
    /// Unique entries only: enough for uniqueness checks (a bulk load of new rows).
    UniqueOnly,
    /// Every entry, so that a foreign key later in the command finds referring rows.
    All,
}

/// Changes the entries of `indexes` for one row: from what `old` gave (the row as it was, if
/// it was live) to what `new` gives (the row as written, if not deleted). A unique entry that
/// another row holds fails the command.
pub(super) fn update_entries(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    indexes: &[IndexRecord],
    row_key: &[u8],
    (old, new): (Option<&[u8]>, Option<&[u8]>),
    visibility: Visibility,
) -> StorageResult<()> {
    for index in indexes {
        let old_entry = old.map(|row| index.entry_of(row, row_key)).transpose()?;
        let new_entry = new.map(|row| index.entry_of(row, row_key)).transpose()?;
        if old_entry == new_entry {
            continue;
        }
        if let Some((entry, unique)) = old_entry {
            if unique || visibility == Visibility::All {
                ctx.delete(batch, CF_INDEX_ENTRIES, entry);
            } else {
                batch.delete_cf(cf(ctx.db, CF_INDEX_ENTRIES), entry);
            }
        }
        if let (Some((entry, unique)), Some(row)) = (new_entry, new) {
            put_entry(ctx, batch, index, (entry, unique), row_key, row, visibility)?;
        }
    }
    Ok(())
}

/// Writes one entry; a unique entry must not belong to another row.
fn put_entry(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    index: &IndexRecord,
    (entry, unique): (Vec<u8>, bool),
    row_key: &[u8],
    row: &[u8],
    visibility: Visibility,
) -> StorageResult<()> {
    if !unique {
        match visibility {
            Visibility::All => ctx.put(batch, CF_INDEX_ENTRIES, entry, row_key.to_vec()),
            Visibility::UniqueOnly => batch.put_cf(cf(ctx.db, CF_INDEX_ENTRIES), entry, row_key),
        }
        return Ok(());
    }
    if let Some(holder) = ctx.get(CF_INDEX_ENTRIES, &entry)?
        && holder != row_key
    {
        return Err(Conflict::UniqueViolation {
            constraint: index.constraint_name().to_owned(),
            detail: format!("{} already exists.", index.describe_key(row)),
        }
        .into());
    }
    ctx.put(batch, CF_INDEX_ENTRIES, entry, row_key.to_vec());
    Ok(())
}

/// A row a build job read: its key, the version it read, and the row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexedRow {
    pub key: Vec<u8>,
    pub version: u64,
    pub row: Vec<u8>,
}

/// Adds entries for rows a build job read, each only if the row is still the version read: a
/// row written since was indexed by its write (the index already existed then).
pub(super) fn add_built_entries(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
    index_name: &str,
    rows: &[IndexedRow],
) -> StorageResult<()> {
    let index: IndexRecord = ctx
        .record(&catalog_keys::index(table_id, index_name))?
        .ok_or_else(|| Conflict::NoSuchIndex(index_name.to_owned()))?;
    for read in rows {
        if super::row_writes::live_version(ctx, &read.key)? != Some(read.version) {
            continue;
        }
        let entry = index.entry_of(&read.row, &read.key)?;
        put_entry(
            ctx,
            batch,
            &index,
            entry,
            &read.key,
            &read.row,
            Visibility::All,
        )
        .map_err(|e| duplicated(e, &index, &read.row))?;
    }
    Ok(())
}

/// Replaces every entry of `index` with the entries of `rows`: every live row of its table,
/// rewritten by ALTER COLUMN TYPE of an indexed column (the values' encoding changed with
/// their type). Values the new type makes equal fail a unique index as CREATE UNIQUE INDEX
/// would.
pub(super) fn rebuild_entries(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    index: &IndexRecord,
    rows: &[super::command::RewrittenRow],
) -> StorageResult<()> {
    let (start, end) = entry_range(index.index_id);
    ctx.delete_range(batch, CF_INDEX_ENTRIES, start, end);
    for (key, _, row) in rows {
        let entry = index.entry_of(row, key)?;
        put_entry(ctx, batch, index, entry, key, row, Visibility::All)
            .map_err(|e| duplicated(e, index, row))?;
    }
    Ok(())
}

/// A unique violation found while building an index is reported as PostgreSQL's CREATE
/// UNIQUE INDEX reports it.
fn duplicated(err: super::StorageError, index: &IndexRecord, row: &[u8]) -> super::StorageError {
    match err {
        super::StorageError::Conflict(Conflict::UniqueViolation { .. }) => {
            Conflict::UniqueBuildFailed {
                index: index.name.clone(),
                detail: format!("{} is duplicated.", index.describe_key(row)),
            }
            .into()
        }
        other => other,
    }
}

/// Removes every entry of a table's indexes (TRUNCATE), keeping the definitions.
pub(super) fn clear_entries(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
) -> StorageResult<()> {
    for index in of_table(ctx, table_id)? {
        let (start, end) = entry_range(index.index_id);
        ctx.delete_range(batch, CF_INDEX_ENTRIES, start, end);
    }
    Ok(())
}

/// Drops a table's indexes with their entries (DROP TABLE).
pub(super) fn drop_all_of_table(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
) -> StorageResult<()> {
    for index in of_table(ctx, table_id)? {
        drop_record(ctx, batch, &index);
    }
    Ok(())
}

pub(super) fn drop_record(ctx: &mut ApplyContext, batch: &mut WriteBatch, index: &IndexRecord) {
    let (start, end) = entry_range(index.index_id);
    ctx.delete_range(batch, CF_INDEX_ENTRIES, start, end);
    ctx.delete(
        batch,
        CF_CATALOG,
        catalog_keys::index(index.table_id, &index.name),
    );
    ctx.delete(
        batch,
        CF_CATALOG,
        catalog_keys::index_name(&index.namespace, &index.name),
    );
}
