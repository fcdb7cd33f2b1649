//! ALTER TABLE ... DROP COLUMN and ALTER COLUMN ... TYPE, applied. A dropped column leaves the
//! definition and every hot row is rewritten without it; flushed segments are left as they are,
//! since their files name columns by id and the table no longer has that id. Indexes and
//! foreign keys on it go, the ones after it are renumbered. A retyped column's rows are all
//! rewritten hot by the statement (which evaluated USING), and the column gets a new id, so the
//! files' copies of the old type (all shadowed) are never read as the new one; every foreign
//! key using it is validated again over the rewritten values.

use rocksdb::WriteBatch;

use super::apply_context::ApplyContext;
use super::command::RewrittenRow;
use super::keys::CF_ROWS;
use super::row_writes::{TOMBSTONE, live_version, read_at};
use super::{
    Conflict, StorageResult, TableRecord, datums, foreign_keys, index_ddl, indexes, referential,
    rows, sequences, table_ddl, view_ddl,
};

/// Column positions after `dropped` move down by one.
pub(super) fn shifted(columns: &[usize], dropped: usize) -> Vec<usize> {
    columns
        .iter()
        .map(|&c| if c > dropped { c - 1 } else { c })
        .collect()
}

/// Drops column `position` of the table `table` redefines (the same table, at the version the
/// statement read, without that column). `cascade` also drops other tables' foreign keys that
/// refer to the column; without, they stop the drop.
pub(super) fn drop_column(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &TableRecord,
    position: usize,
    cascade: bool,
) -> StorageResult<()> {
    let old = match ctx.table(&table.namespace, &table.name)? {
        Some(old)
            if old.table_id == table.table_id
                && old.version == table.version
                && old.columns.len() == table.columns.len() + 1
                && position < old.columns.len() =>
        {
            old
        }
        _ => return Err(Conflict::TableChanged(table.name.clone()).into()),
    };
    let column = old.columns[position].clone();
    view_ddl::check_column_unused(ctx, &old.namespace, &old.name, &column.name)?;
    foreign_keys::follow_dropped_column(ctx, batch, &old, table, position, cascade)?;
    for mut index in indexes::of_table(ctx, old.table_id)? {
        if index.columns.contains(&position) {
            indexes::drop_record(ctx, batch, &index);
            continue;
        }
        index.columns = shifted(&index.columns, position);
        let last = index.columns.iter().copied().max().unwrap_or(0);
        index.layout = table.columns[..=last].to_vec();
        index_ddl::put(ctx, batch, &index);
    }
    for (key, stored) in ctx.hot_rows(old.table_id)? {
        let payload = rows::stored_payload(&stored);
        if payload == TOMBSTONE {
            continue;
        }
        let row = datums::without_datum(&old.columns, payload, position)?;
        ctx.relaid_from
            .insert(key.clone(), rows::stored_version(&stored)?);
        ctx.put(batch, CF_ROWS, key, rows::stored_row(ctx.seq, &row));
    }
    for sequence in sequences::owned_by(ctx, &old.namespace, &old.name)? {
        if sequence
            .owned_by
            .as_ref()
            .is_some_and(|owner| owner.column == column.name)
        {
            sequences::drop(ctx, batch, &old.namespace, &sequence.name)?;
        }
    }
    table_ddl::put(ctx, batch, table);
    table_ddl::put_layout_generation(ctx, batch, table);
    Ok(())
}

/// Retypes column `position`: `table` is the definition with the new type, at the version the
/// statement read; `rows` is every live row (key, version read, row in the new definition).
/// A row written since the statement read the table fails the command (40001): its encoding
/// would be the old type's.
pub(super) fn retype_column(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &TableRecord,
    position: usize,
    rows: &[RewrittenRow],
) -> StorageResult<()> {
    let old = match ctx.table(&table.namespace, &table.name)? {
        Some(old)
            if old.table_id == table.table_id
                && old.version == table.version
                && old.columns.len() == table.columns.len()
                && position < old.columns.len() =>
        {
            old
        }
        _ => return Err(Conflict::TableChanged(table.name.clone()).into()),
    };
    let column = old.columns[position].clone();
    view_ddl::check_column_unused(ctx, &old.namespace, &old.name, &column.name)?;
    let changed = || Conflict::RowChanged {
        table_id: old.table_id,
    };
    if !ctx.catalog_preview {
        let mut rewritten = std::collections::HashSet::with_capacity(rows.len());
        for (key, version, _) in rows {
            let read = version.unwrap_or(ctx.seq);
            if !live_version(ctx, key)?.is_some_and(|current| read_at(ctx, key, read, current)) {
                return Err(changed().into());
            }
            rewritten.insert(key.as_slice());
        }
        for (key, stored) in ctx.hot_rows(old.table_id)? {
            if rows::stored_payload(&stored) != TOMBSTONE && !rewritten.contains(key.as_slice()) {
                return Err(changed().into());
            }
        }
    }
    // A key column's new type encodes every key anew: each row moves to its new key.
    let moved;
    let rows = if old.primary_key.contains(&position) {
        moved = rekeyed(table, rows)?;
        for (key, _, _) in rows {
            ctx.put(
                batch,
                CF_ROWS,
                key.clone(),
                rows::stored_row(ctx.seq, TOMBSTONE),
            );
        }
        &moved[..]
    } else {
        rows
    };
    for (key, version, row) in rows {
        if let Some(version) = version {
            ctx.relaid_from.insert(key.clone(), *version);
        }
        ctx.put(batch, CF_ROWS, key.clone(), rows::stored_row(ctx.seq, row));
    }
    let mut table = table.clone();
    if old
        .columns
        .iter()
        .any(|c| c.id == table.columns[position].id)
    {
        // The retyped column needs an id no file holds values of the old type under.
        table.columns[position].id = crate::model::UNASSIGNED_COLUMN_ID;
        table.number_columns();
    }
    table_ddl::put(ctx, batch, &table);
    table_ddl::put_layout_generation(ctx, batch, &table);
    index_ddl::follow_table(ctx, batch, &table)?;
    let rekeyed = old.primary_key.contains(&position);
    for index in indexes::of_table(ctx, table.table_id)? {
        // Every entry names its row's key: a new key means new entries in every index.
        if rekeyed || index.columns.contains(&position) {
            indexes::rebuild_entries(ctx, batch, &index, rows)?;
        }
    }
    foreign_keys::follow_table(ctx, batch, &table)?;
    let retyped = (column.sql_type, table.columns[position].sql_type);
    foreign_keys::follow_retyped_column(ctx, batch, table.table_id, position, retyped)?;
    if ctx.catalog_preview {
        return Ok(());
    }
    referential::verify_retyped_column(ctx, table.table_id, position, rows)
}

/// `rows` (every live row of `table`, rewritten in a key column's new type) under the keys
/// their new values encode. Two rows whose keys the new type makes equal fail the command,
/// as PostgreSQL fails rebuilding the primary key's index.
pub fn rekeyed(table: &TableRecord, rows: &[RewrittenRow]) -> StorageResult<Vec<RewrittenRow>> {
    let mut moved = Vec::with_capacity(rows.len());
    let mut keys = std::collections::HashSet::with_capacity(rows.len());
    for (_, version, row) in rows {
        let datums = rows::split_datums(&table.columns, row)?;
        let mut key = rows::table_prefix(table.table_id).to_vec();
        for &column in &table.primary_key {
            let mut encoded = Vec::new();
            rows::datum_key(table.columns[column].sql_type, datums[column], &mut encoded)?;
            // A key datum's marker byte says NULL or value; key columns are never NULL.
            if encoded.first() != Some(&1) {
                return Err(Conflict::NotNull {
                    table: table.name.clone(),
                    column: table.columns[column].name.clone(),
                }
                .into());
            }
            key.extend_from_slice(&encoded[1..]);
        }
        if !keys.insert(key.clone()) {
            return Err(Conflict::UniqueBuildFailed {
                index: format!("{}_pkey", table.name),
                detail: format!(
                    "{} is duplicated.",
                    rows::describe_key(&table.columns, &table.primary_key, &datums)
                ),
            }
            .into());
        }
        moved.push((key, *version, row.clone()));
    }
    Ok(moved)
}
