//! Applying index DDL: creating an index (ready at once on a table without rows, otherwise
//! building), marking a built index ready, dropping one, and keeping definitions in step with
//! column renames.

use rocksdb::WriteBatch;

use super::apply_context::ApplyContext;
use super::indexes::{self, IndexRecord, IndexState};
use super::keys::CF_CATALOG;
use super::{Conflict, StorageResult, TableRecord, catalog_keys, records, sequences};

/// Creates an index on `table` (which must still have the index's table id). Its id is
/// assigned here unless a transaction block reserved one; its layout is taken from the table
/// as it is now.
pub(super) fn create(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &str,
    index: &IndexRecord,
) -> StorageResult<()> {
    // Table id 0: the table the same command creates (its id is assigned as it is applied).
    let record = match ctx.table(&index.namespace, table)? {
        Some(record) if record.table_id == index.table_id || index.table_id == 0 => record,
        Some(_) => return Err(Conflict::TableChanged(table.to_owned()).into()),
        None => {
            return Err(Conflict::NoSuchTable(index.namespace.clone(), table.to_owned()).into());
        }
    };
    sequences::check_new_relation(ctx, &index.namespace, &index.name)?;
    let last = index.columns.iter().copied().max().unwrap_or(0);
    if last >= record.columns.len() {
        return Err(Conflict::TableChanged(table.to_owned()).into());
    }
    let mut index = index.clone();
    index.table_id = record.table_id;
    if index.index_id == 0 {
        index.index_id = ctx.next_relation_id(batch)?;
    }
    index.layout = record.columns[..=last].to_vec();
    index.state = if ctx.has_rows(record.table_id)? {
        ctx.applied
            .indexes_to_build
            .push((record.table_id, index.name.clone()));
        IndexState::Building
    } else {
        IndexState::Ready
    };
    put(ctx, batch, &index);
    ctx.put(
        batch,
        CF_CATALOG,
        catalog_keys::index_name(&index.namespace, &index.name),
        index.table_id.to_be_bytes().to_vec(),
    );
    Ok(())
}

pub(super) fn put(ctx: &mut ApplyContext, batch: &mut WriteBatch, index: &IndexRecord) {
    ctx.put(
        batch,
        CF_CATALOG,
        catalog_keys::index(index.table_id, &index.name),
        records::encode(index),
    );
}

/// The index named `name` in `namespace`, as this command sees it.
pub(super) fn find(
    ctx: &ApplyContext,
    namespace: &str,
    name: &str,
) -> StorageResult<Option<IndexRecord>> {
    let Some(table_id) = ctx.get(CF_CATALOG, &catalog_keys::index_name(namespace, name))? else {
        return Ok(None);
    };
    let table_id = super::decode_u64(CF_CATALOG, &table_id)?;
    ctx.record(&catalog_keys::index(table_id, name))
}

pub(super) fn drop(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    name: &str,
) -> StorageResult<()> {
    let index =
        find(ctx, namespace, name)?.ok_or_else(|| Conflict::NoSuchIndex(name.to_owned()))?;
    if let Some(fk) = super::foreign_keys::needing_index(ctx, &index)? {
        let table = ctx
            .table_by_id(fk.table_id)?
            .map_or_else(|| format!("#{}", fk.table_id), |t| t.name);
        return Err(Conflict::IndexRequired {
            index: index.name,
            constraint: fk.name,
            table,
        }
        .into());
    }
    indexes::drop_record(ctx, batch, &index);
    Ok(())
}

/// Marks a built index ready for queries; `index_id` guards against a namesake created since.
pub(super) fn mark_ready(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
    name: &str,
    index_id: u64,
) -> StorageResult<()> {
    let mut index: IndexRecord = ctx
        .record(&catalog_keys::index(table_id, name))?
        .filter(|i: &IndexRecord| i.index_id == index_id)
        .ok_or_else(|| Conflict::NoSuchIndex(name.to_owned()))?;
    index.state = IndexState::Ready;
    put(ctx, batch, &index);
    Ok(())
}

/// Takes a table's renamed columns into its indexes' layouts.
pub(super) fn follow_table(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &TableRecord,
) -> StorageResult<()> {
    for mut index in indexes::of_table(ctx, table.table_id)? {
        let len = index.layout.len();
        index.layout = table.columns[..len].to_vec();
        put(ctx, batch, &index);
    }
    Ok(())
}
