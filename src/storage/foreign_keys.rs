//! Foreign keys: their definitions, kept under the referencing table and (as a pointer) under
//! the referenced one, and applying their DDL: adding one, dropping one, and keeping them in
//! step with the tables they join. Enforcing them is `referential`'s.
//!
//! A foreign key names the referencing columns of its table, the referenced columns of its
//! parent (its primary key or the columns of a unique index), and an index on the referencing
//! table whose leading columns are the referencing ones: that index finds the rows referring
//! to a parent row when the parent row is deleted or its key changes.

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::apply_context::ApplyContext;
use super::indexes::{IndexRecord, IndexState};
use super::keys::CF_CATALOG;
use super::{Conflict, StorageResult, TableRecord, catalog_keys, datums, records};
use crate::model::ReferentialAction;
use crate::model::types::ColumnDef;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKeyRecord {
    pub name: String,
    /// From the relation id counter when applied (the constraint's OID derives from it).
    #[serde(default)]
    pub constraint_id: u64,
    /// The referencing table's namespace.
    pub namespace: String,
    /// The referencing table; 0 until applied when the same command creates it.
    pub table_id: u64,
    /// Referencing columns (positions in the table), paired with `parent_columns`.
    pub columns: Vec<usize>,
    /// The referencing table's columns up to the last referencing one.
    #[serde(default)]
    pub layout: Vec<ColumnDef>,
    /// The index on the referencing table that finds referring rows.
    pub index: String,
    #[serde(default)]
    pub index_id: u64,
    /// Whether the index was created for this constraint (and goes with it).
    pub owns_index: bool,
    /// The referenced table; 0 when it is the referencing table itself and the same command
    /// creates it.
    pub parent_id: u64,
    pub parent_columns: Vec<usize>,
    #[serde(default)]
    pub parent_layout: Vec<ColumnDef>,
    /// The unique index whose columns are the referenced ones; `None`: the primary key.
    pub parent_index: Option<String>,
    #[serde(default)]
    pub parent_index_id: u64,
    pub on_delete: ReferentialAction,
    pub on_update: ReferentialAction,
    /// For ON DELETE/UPDATE SET DEFAULT: each referencing column's default, encoded.
    #[serde(default)]
    pub defaults: Vec<Vec<u8>>,
    pub deferrable: bool,
    /// Checked at COMMIT rather than at the end of each statement.
    pub initially_deferred: bool,
    pub created_at: i64,
    /// The order the statement named the columns in, as indexes into `columns` (which
    /// follow the referenced key's order); empty when they were named in that order.
    /// Catalogs and `pg_get_constraintdef` list them so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared_order: Vec<usize>,
}

impl ForeignKeyRecord {
    /// Indexes into `columns` (and `parent_columns`) in the order the statement named them.
    pub fn in_declared_order(&self) -> Vec<usize> {
        if self.declared_order.len() == self.columns.len() {
            self.declared_order.clone()
        } else {
            (0..self.columns.len()).collect()
        }
    }

    pub fn references_primary_key(&self) -> bool {
        self.parent_index.is_none()
    }
}

/// The foreign keys a table has and the ones that refer to it, as one command sees them.
#[derive(Debug, Default, Clone)]
pub(super) struct Links {
    /// Constraints of the table (it is the referencing side).
    pub outgoing: Vec<ForeignKeyRecord>,
    /// Constraints of other tables (or itself) that refer to it.
    pub incoming: Vec<ForeignKeyRecord>,
}

impl Links {
    pub fn is_empty(&self) -> bool {
        self.outgoing.is_empty() && self.incoming.is_empty()
    }
}

pub(super) fn links_of(ctx: &ApplyContext, table_id: u64) -> StorageResult<Links> {
    let outgoing: Vec<ForeignKeyRecord> =
        ctx.records_in(&catalog_keys::foreign_keys_of(table_id))?;
    let mut incoming = Vec::new();
    for (child_id, name) in referencing_keys(ctx, table_id)? {
        if let Some(fk) = ctx.record(&catalog_keys::foreign_key(child_id, &name))? {
            incoming.push(fk);
        }
    }
    Ok(Links { outgoing, incoming })
}

/// (referencing table id, constraint name) of each foreign key referring to `parent_id`.
fn referencing_keys(ctx: &ApplyContext, parent_id: u64) -> StorageResult<Vec<(u64, String)>> {
    let prefix = catalog_keys::referencing_of(parent_id);
    let mut found = Vec::new();
    for key in ctx.keys_in(&prefix)? {
        let rest = &key[prefix.len()..];
        let Some((id, name)) = rest.split_first_chunk::<8>() else {
            continue;
        };
        found.push((
            u64::from_be_bytes(*id),
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    Ok(found)
}

fn put(ctx: &mut ApplyContext, batch: &mut WriteBatch, fk: &ForeignKeyRecord) {
    ctx.put(
        batch,
        CF_CATALOG,
        catalog_keys::foreign_key(fk.table_id, &fk.name),
        records::encode(fk),
    );
    ctx.put(
        batch,
        CF_CATALOG,
        catalog_keys::referencing(fk.parent_id, fk.table_id, &fk.name),
        Vec::new(),
    );
}

fn remove(ctx: &mut ApplyContext, batch: &mut WriteBatch, fk: &ForeignKeyRecord) {
    ctx.delete(
        batch,
        CF_CATALOG,
        catalog_keys::foreign_key(fk.table_id, &fk.name),
    );
    ctx.delete(
        batch,
        CF_CATALOG,
        catalog_keys::referencing(fk.parent_id, fk.table_id, &fk.name),
    );
}

/// A table as the command sees it, if it is still the one with `table_id` (0: whichever
/// table has the name, one the same command created).
fn resolve(
    ctx: &ApplyContext,
    namespace: &str,
    name: &str,
    table_id: u64,
) -> StorageResult<TableRecord> {
    if table_id != 0 {
        return super::table_ddl::current(ctx, namespace, name, table_id);
    }
    ctx.table(namespace, name)?
        .ok_or_else(|| Conflict::NoSuchTable(namespace.to_owned(), name.to_owned()).into())
}

fn columns_up_to(table: &TableRecord, columns: &[usize]) -> StorageResult<Vec<ColumnDef>> {
    let last = columns.iter().copied().max().unwrap_or(0);
    if last >= table.columns.len() {
        return Err(Conflict::TableChanged(table.name.clone()).into());
    }
    Ok(table.columns[..=last].to_vec())
}

/// Adds a foreign key to table `table` referencing `parent` (namespace, name). The executor
/// chose the columns, the index and the referenced key; this checks they still exist as
/// chosen and records them.
pub(super) fn add(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &str,
    parent: (&str, &str),
    fk: &ForeignKeyRecord,
) -> StorageResult<()> {
    let child = resolve(ctx, &fk.namespace, table, fk.table_id)?;
    let referenced = if parent == (fk.namespace.as_str(), table) {
        child.clone()
    } else {
        resolve(ctx, parent.0, parent.1, fk.parent_id)?
    };
    if ctx
        .get(
            CF_CATALOG,
            &catalog_keys::foreign_key(child.table_id, &fk.name),
        )?
        .is_some()
    {
        return Err(Conflict::ConstraintExists {
            name: fk.name.clone(),
            table: child.name.clone(),
        }
        .into());
    }
    let mut fk = fk.clone();
    fk.constraint_id = ctx.next_relation_id(batch)?;
    fk.table_id = child.table_id;
    fk.parent_id = referenced.table_id;
    fk.layout = columns_up_to(&child, &fk.columns)?;
    fk.parent_layout = columns_up_to(&referenced, &fk.parent_columns)?;
    let index: IndexRecord = ctx
        .record(&catalog_keys::index(child.table_id, &fk.index))?
        .ok_or_else(|| Conflict::NoSuchIndex(fk.index.clone()))?;
    if !index.columns.starts_with(&fk.columns) {
        return Err(Conflict::TableChanged(child.name.clone()).into());
    }
    fk.index_id = index.index_id;
    match &fk.parent_index {
        None if referenced.primary_key == fk.parent_columns => {}
        None => return Err(Conflict::TableChanged(referenced.name.clone()).into()),
        Some(name) => {
            let index: IndexRecord = ctx
                .record(&catalog_keys::index(referenced.table_id, name))?
                .ok_or_else(|| Conflict::NoSuchIndex(name.clone()))?;
            if !index.unique
                || index.columns != fk.parent_columns
                || index.state != IndexState::Ready
            {
                return Err(Conflict::TableChanged(referenced.name.clone()).into());
            }
            fk.parent_index_id = index.index_id;
        }
    }
    put(ctx, batch, &fk);
    Ok(())
}

/// Drops the foreign key `name` of table `table_id`, and the index it owns.
pub(super) fn drop(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
    name: &str,
) -> StorageResult<()> {
    let fk: ForeignKeyRecord = ctx
        .record(&catalog_keys::foreign_key(table_id, name))?
        .ok_or_else(|| Conflict::NoSuchConstraint(name.to_owned()))?;
    remove(ctx, batch, &fk);
    if fk.owns_index
        && let Some(index) = ctx.record(&catalog_keys::index(table_id, &fk.index))?
    {
        super::indexes::drop_record(ctx, batch, &index);
    }
    Ok(())
}

/// Sets the encoded defaults an ON ... SET DEFAULT constraint writes (the columns' defaults
/// changed).
pub(super) fn set_defaults(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
    name: &str,
    defaults: &[Vec<u8>],
) -> StorageResult<()> {
    let mut fk: ForeignKeyRecord = ctx
        .record(&catalog_keys::foreign_key(table_id, name))?
        .ok_or_else(|| Conflict::NoSuchConstraint(name.to_owned()))?;
    fk.defaults = defaults.to_vec();
    put(ctx, batch, &fk);
    Ok(())
}

/// A table is being dropped: its own foreign keys go with it. Foreign keys of other tables
/// that refer to it go too with `cascade`; without, they stop the drop.
pub(super) fn release_table(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &TableRecord,
    cascade: bool,
) -> StorageResult<()> {
    let links = links_of(ctx, table.table_id)?;
    let foreign: Vec<&ForeignKeyRecord> = links
        .incoming
        .iter()
        .filter(|fk| fk.table_id != table.table_id)
        .collect();
    if !foreign.is_empty() && !cascade {
        let mut dependents = Vec::new();
        for fk in &foreign {
            let child = ctx.table_by_id(fk.table_id)?;
            let child = child.map_or_else(|| format!("#{}", fk.table_id), |t| t.name);
            dependents.push(format!("constraint {} on table {child}", fk.name));
        }
        dependents.sort();
        return Err(Conflict::HasDependents {
            object: format!("table {}", table.name),
            dependents,
        }
        .into());
    }
    for fk in links.outgoing.iter().chain(foreign) {
        remove(ctx, batch, fk);
    }
    Ok(())
}

/// Takes a table's changed definition (renamed columns, another namespace) into the foreign
/// keys on both sides.
pub(super) fn follow_table(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table: &TableRecord,
) -> StorageResult<()> {
    let links = links_of(ctx, table.table_id)?;
    for mut fk in links.outgoing {
        fk.namespace = table.namespace.clone();
        fk.layout = table.columns[..fk.layout.len()].to_vec();
        if fk.parent_id == table.table_id {
            fk.parent_layout = table.columns[..fk.parent_layout.len()].to_vec();
        }
        put(ctx, batch, &fk);
    }
    for mut fk in links.incoming {
        if fk.table_id == table.table_id {
            continue;
        }
        fk.parent_layout = table.columns[..fk.parent_layout.len()].to_vec();
        put(ctx, batch, &fk);
    }
    Ok(())
}

/// Column `position` of table `table_id` changed type from `from` to `to`, keeping every
/// value: the SET DEFAULT values its foreign keys write are re-encoded in the new type.
pub(super) fn follow_retyped_column(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
    position: usize,
    (from, to): (crate::model::SqlType, crate::model::SqlType),
) -> StorageResult<()> {
    for mut fk in links_of(ctx, table_id)?.outgoing {
        if fk.defaults.len() != fk.columns.len() || !fk.columns.contains(&position) {
            continue;
        }
        for (column, default) in fk.columns.iter().zip(fk.defaults.iter_mut()) {
            if *column == position {
                *default = datums::convert_datum(from, to, default).ok_or_else(|| {
                    Conflict::OutOfRange(format!(
                        "the default foreign key \"{}\" sets is out of range for type {}",
                        fk.name,
                        to.sql_name()
                    ))
                })?;
            }
        }
        put(ctx, batch, &fk);
    }
    Ok(())
}

/// Column `position` of `old` is dropped (`new` is the table without it): foreign keys on the
/// column go, the rest are renumbered. Other tables' keys referring to the column go only
/// with `cascade`.
pub(super) fn follow_dropped_column(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    old: &TableRecord,
    new: &TableRecord,
    position: usize,
    cascade: bool,
) -> StorageResult<()> {
    use super::column_ddl::shifted;
    let links = links_of(ctx, old.table_id)?;
    let referring: Vec<&ForeignKeyRecord> = links
        .incoming
        .iter()
        .filter(|fk| fk.table_id != old.table_id && fk.parent_columns.contains(&position))
        .collect();
    if !referring.is_empty() && !cascade {
        let mut dependents = Vec::new();
        for fk in referring {
            let child = ctx.table_by_id(fk.table_id)?;
            let child = child.map_or_else(|| format!("#{}", fk.table_id), |t| t.name);
            dependents.push(format!("constraint {} on table {child}", fk.name));
        }
        return Err(Conflict::HasDependents {
            object: format!(
                "column {} of table {}",
                old.columns[position].name, old.name
            ),
            dependents,
        }
        .into());
    }
    let layout = |columns: &[usize]| {
        let last = columns.iter().copied().max().unwrap_or(0);
        new.columns[..=last].to_vec()
    };
    for mut fk in links.outgoing {
        let itself = fk.parent_id == old.table_id;
        if fk.columns.contains(&position) || (itself && fk.parent_columns.contains(&position)) {
            remove(ctx, batch, &fk);
            continue;
        }
        fk.columns = shifted(&fk.columns, position);
        fk.layout = layout(&fk.columns);
        if itself {
            fk.parent_columns = shifted(&fk.parent_columns, position);
            fk.parent_layout = layout(&fk.parent_columns);
        }
        put(ctx, batch, &fk);
    }
    for mut fk in links.incoming {
        if fk.table_id == old.table_id {
            continue;
        }
        if fk.parent_columns.contains(&position) {
            remove(ctx, batch, &fk);
            continue;
        }
        fk.parent_columns = shifted(&fk.parent_columns, position);
        fk.parent_layout = layout(&fk.parent_columns);
        put(ctx, batch, &fk);
    }
    Ok(())
}

/// The foreign key that needs index `index` (on its referencing or referenced side), if any:
/// such an index cannot be dropped on its own.
pub(super) fn needing_index(
    ctx: &ApplyContext,
    index: &IndexRecord,
) -> StorageResult<Option<ForeignKeyRecord>> {
    let links = links_of(ctx, index.table_id)?;
    Ok(links
        .outgoing
        .into_iter()
        .find(|fk| fk.index_id == index.index_id)
        .or_else(|| {
            links
                .incoming
                .into_iter()
                .find(|fk| fk.parent_index_id == index.index_id)
        }))
}
