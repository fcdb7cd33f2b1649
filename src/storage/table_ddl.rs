//! Applying table DDL: create, alter, rename, truncate and drop, with what each does to the
//! rows, segments and sequences a table has.

use rocksdb::WriteBatch;

use super::command::ApplyContext;
use super::records::{self, TableRecord};
use super::segments::SegmentRecord;
use super::sequences;
use super::view_ddl;
use super::{
    CF_CATALOG, CF_COLD_INDEX, CF_DEAD_KEYS, CF_ROWS, Conflict, StorageResult, catalog_keys, cf,
    rows,
};
use super::{foreign_keys, index_ddl, indexes};

/// Creates a table; its id comes from the counter sequences share.
pub(super) fn create(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &TableRecord,
) -> StorageResult<()> {
    sequences::check_new_relation(ctx, &table.namespace, &table.name)?;
    let mut table = table.clone();
    // A table a transaction block creates had its id reserved when the block created it.
    if table.table_id == 0 {
        table.table_id = ctx.next_relation_id(batch)?;
    }
    ctx.applied.table_ids.push(table.table_id);
    put(ctx, batch, &table);
    Ok(())
}

/// Writes a table's definition as its next version, numbering the columns it adds.
pub(super) fn put(ctx: &mut ApplyContext, batch: &mut WriteBatch, table: &TableRecord) {
    let mut table = table.clone();
    table.number_columns();
    table.version += 1;
    ctx.put(
        batch,
        CF_CATALOG,
        catalog_keys::table(&table.namespace, &table.name),
        records::encode(&table),
    );
}

/// Fails with `TableChanged` unless rows encoded for `generation` of table `table_id`'s
/// layout are still encoded as the table stores them.
pub(super) fn check_layout_generation(
    ctx: &ApplyContext,
    table_id: u64,
    generation: u64,
) -> StorageResult<()> {
    let current = layout_generation(ctx, table_id)?;
    expect_layout_generation(ctx, table_id, current, generation)
}

/// A table's layout generation as `ctx`'s command sees it.
pub(super) fn layout_generation(ctx: &ApplyContext, table_id: u64) -> StorageResult<u64> {
    let stored = ctx.get(CF_CATALOG, &catalog_keys::layout_generation(table_id))?;
    records::layout_generation(table_id, stored.as_deref())
}

/// Fails the command when the writer encoded its rows for another layout than `current`.
pub(super) fn expect_layout_generation(
    ctx: &ApplyContext,
    table_id: u64,
    current: u64,
    generation: u64,
) -> StorageResult<()> {
    if current == generation {
        return Ok(());
    }
    let name = ctx
        .table_by_id(table_id)?
        .map_or_else(|| format!("#{table_id}"), |t| t.name);
    Err(Conflict::TableChanged(name).into())
}

/// Records a table's layout generation for `check_layout_generation`.
pub(super) fn put_layout_generation(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &TableRecord,
) {
    ctx.put(
        batch,
        CF_CATALOG,
        catalog_keys::layout_generation(table.table_id),
        table.layout_generation.to_be_bytes().to_vec(),
    );
}

/// The table as it is now, if it is still the one with `table_id`.
pub(super) fn current(
    ctx: &ApplyContext,
    namespace: &str,
    name: &str,
    table_id: u64,
) -> StorageResult<TableRecord> {
    match ctx.table(namespace, name)? {
        Some(table) if table.table_id == table_id => Ok(table),
        Some(_) => Err(Conflict::TableChanged(name.to_owned()).into()),
        None => Err(Conflict::NoSuchTable(namespace.to_owned(), name.to_owned()).into()),
    }
}

/// Replaces a table's definition (ALTER TABLE); the table must still have the same id.
pub(super) fn alter(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &TableRecord,
) -> StorageResult<()> {
    match ctx.table(&table.namespace, &table.name)? {
        // A column keeps its id and type (RetypeColumn gives one a new type and id); a new
        // column has an id the table never had.
        Some(current)
            if current.table_id == table.table_id
                && current.version == table.version
                && table.columns.iter().all(|c| {
                    c.id >= current.next_free_column_id()
                        || current
                            .column_by_id(c.id)
                            .is_some_and(|(_, was)| was.sql_type == c.sql_type)
                }) => {}
        _ => return Err(Conflict::TableChanged(table.name.clone()).into()),
    }
    put(ctx, batch, table);
    // Foreign keys carry their columns' definitions (nullability, for SET NULL).
    foreign_keys::follow_table(ctx, batch, table)
}

pub(super) fn drop(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    name: &str,
    expect: Option<(u64, u64)>,
    cascade: bool,
) -> StorageResult<()> {
    let table = ctx
        .table(namespace, name)?
        .ok_or_else(|| Conflict::NoSuchTable(namespace.to_owned(), name.to_owned()))?;
    if expect.is_some_and(|expected| expected != (table.table_id, table.version)) {
        return Err(Conflict::TableChanged(name.to_owned()).into());
    }
    drop_record(ctx, batch, &table, cascade)
}

/// Drops a table with its data and the sequences its columns own; with `cascade` the views
/// that depend on it too.
pub(super) fn drop_record(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &TableRecord,
    cascade: bool,
) -> StorageResult<()> {
    view_ddl::release(ctx, batch, &table.namespace, &table.name, cascade)?;
    foreign_keys::release_table(ctx, batch, table, cascade)?;
    clear_data(ctx, batch, table)?;
    ctx.delete(
        batch,
        CF_CATALOG,
        catalog_keys::layout_generation(table.table_id),
    );
    indexes::drop_all_of_table(ctx, batch, table.table_id)?;
    sequences::drop_owned_by(ctx, batch, &table.namespace, &table.name)?;
    ctx.delete(
        batch,
        CF_CATALOG,
        catalog_keys::table(&table.namespace, &table.name),
    );
    Ok(())
}

pub(super) fn truncate(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    name: &str,
    table_id: u64,
    restart_identity: bool,
) -> StorageResult<()> {
    let table = current(ctx, namespace, name, table_id)?;
    clear_data(ctx, batch, &table)?;
    if restart_identity {
        sequences::restart_owned_by(ctx, batch, namespace, name)?;
    }
    Ok(())
}

/// ALTER TABLE ... RENAME TO: the record moves to its new name, with the sequences its columns
/// own. Segment and log files keep their paths (the catalog records them).
pub(super) fn rename(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    name: &str,
    table_id: u64,
    new_name: &str,
) -> StorageResult<()> {
    let mut table = current(ctx, namespace, name, table_id)?;
    if sequences::relation_exists(ctx, namespace, new_name)? {
        return Err(Conflict::TableExists(namespace.to_owned(), new_name.to_owned()).into());
    }
    ctx.delete(batch, CF_CATALOG, catalog_keys::table(namespace, name));
    table.name = new_name.to_owned();
    put(ctx, batch, &table);
    reown_sequences(ctx, batch, namespace, name, |owner| {
        owner.table = new_name.to_owned();
    })
}

/// ALTER TABLE ... SET SCHEMA: the table's record, its indexes' names and the sequences its
/// columns own move to `table.namespace`; every one of those names must be free there. Rows,
/// segments and index entries are keyed by ids and stay.
pub(super) fn set_schema(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    table: &TableRecord,
) -> StorageResult<()> {
    let old = current(ctx, namespace, &table.name, table.table_id)?;
    if old.version != table.version {
        return Err(Conflict::TableChanged(table.name.clone()).into());
    }
    let target = &table.namespace;
    if ctx
        .get(CF_CATALOG, &catalog_keys::namespace(target))?
        .is_none()
    {
        return Err(Conflict::NoSuchNamespace(target.clone()).into());
    }
    let table_indexes = indexes::of_table(ctx, old.table_id)?;
    let owned = sequences::owned_by(ctx, namespace, &old.name)?;
    let names = std::iter::once(&old.name)
        .chain(table_indexes.iter().map(|i| &i.name))
        .chain(owned.iter().map(|s| &s.name));
    for name in names {
        if sequences::relation_exists(ctx, target, name)? {
            return Err(Conflict::TableExists(target.clone(), name.clone()).into());
        }
    }
    ctx.delete(batch, CF_CATALOG, catalog_keys::table(namespace, &old.name));
    put(ctx, batch, table);
    for mut index in table_indexes {
        ctx.delete(
            batch,
            CF_CATALOG,
            catalog_keys::index_name(namespace, &index.name),
        );
        index.namespace = target.clone();
        index_ddl::put(ctx, batch, &index);
        ctx.put(
            batch,
            CF_CATALOG,
            catalog_keys::index_name(target, &index.name),
            index.table_id.to_be_bytes().to_vec(),
        );
    }
    for mut sequence in owned {
        ctx.delete(
            batch,
            CF_CATALOG,
            catalog_keys::sequence(namespace, &sequence.name),
        );
        sequence.namespace = target.clone();
        ctx.put(
            batch,
            CF_CATALOG,
            catalog_keys::sequence(target, &sequence.name),
            records::encode(&sequence),
        );
    }
    foreign_keys::follow_table(ctx, batch, table)
}

/// ALTER TABLE ... RENAME COLUMN: rows are stored by position, so only the definition (and
/// the sequences the column owns) change.
pub(super) fn rename_column(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    table_name: &str,
    table_id: u64,
    column: &str,
    new_name: &str,
) -> StorageResult<()> {
    let mut table = current(ctx, namespace, table_name, table_id)?;
    let Some(index) = table.columns.iter().position(|c| c.name == column) else {
        return Err(Conflict::TableChanged(table_name.to_owned()).into());
    };
    if table.columns.iter().any(|c| c.name == new_name) {
        return Err(Conflict::TableChanged(table_name.to_owned()).into());
    }
    view_ddl::check_column_unused(ctx, namespace, table_name, column)?;
    table.columns[index].name = new_name.to_owned();
    put(ctx, batch, &table);
    index_ddl::follow_table(ctx, batch, &table)?;
    foreign_keys::follow_table(ctx, batch, &table)?;
    reown_sequences(ctx, batch, namespace, table_name, |owner| {
        if owner.column == column {
            owner.column = new_name.to_owned();
        }
    })
}

/// Rewrites the owner of each sequence a table's columns own.
fn reown_sequences(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    table: &str,
    change: impl Fn(&mut super::OwnedBy),
) -> StorageResult<()> {
    for mut sequence in sequences::owned_by(ctx, namespace, table)? {
        if let Some(owner) = sequence.owned_by.as_mut() {
            change(owner);
        }
        ctx.put(
            batch,
            CF_CATALOG,
            catalog_keys::sequence(namespace, &sequence.name),
            records::encode(&sequence),
        );
    }
    Ok(())
}

/// Removes a table's hot rows, cold index, segments and stream log from the catalog. The
/// segment files become unreferenced: the executor deletes them once this is applied (the
/// start-up sweep after a crash).
fn clear_data(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &TableRecord,
) -> StorageResult<()> {
    let start = rows::table_prefix(table.table_id);
    let end = rows::table_prefix(table.table_id + 1);
    ctx.delete_range(batch, CF_ROWS, start.to_vec(), end.to_vec());
    ctx.delete_range(batch, CF_COLD_INDEX, start.to_vec(), end.to_vec());
    let prefix = catalog_keys::segments_of(table.table_id);
    let mut manifest = Vec::new();
    for item in ctx.db.prefix_iterator_cf(cf(ctx.db, CF_CATALOG), &prefix) {
        let (key, value) = item?;
        if !key.starts_with(&prefix) {
            break;
        }
        let segment: SegmentRecord = records::decode(CF_CATALOG, &value)?;
        manifest.push((key.to_vec(), segment));
    }
    for (key, segment) in manifest {
        batch.delete_range_cf(
            cf(ctx.db, CF_DEAD_KEYS),
            segment.segment_id.to_be_bytes(),
            (segment.segment_id + 1).to_be_bytes(),
        );
        ctx.delete(batch, CF_CATALOG, key);
        ctx.applied.unreferenced_segments.push(segment);
    }
    ctx.delete(batch, CF_CATALOG, catalog_keys::stream(table.table_id));
    indexes::clear_entries(ctx, batch, table.table_id)
}
