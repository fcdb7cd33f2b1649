//! Views: their stored definitions, and the dependencies that keep a view's relations (and the
//! columns it reads) from being dropped under it.
//!
//! A view is a query kept as SQL text whose relation names were qualified when it was
//! created, so the search path of whoever reads it later does not change what it reads. Each
//! view records the relations it names and the columns it reads of each; dropping one of those
//! needs CASCADE, which drops the dependent views (and theirs) in the same write batch.

use std::collections::HashSet;

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::command::ApplyContext;
use super::{CF_CATALOG, Conflict, StorageResult, Store, catalog_keys, records, sequences};
use crate::model::types::SqlType;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// Assigned when the view is first created, from the counter tables use, and kept by
    /// CREATE OR REPLACE.
    pub view_id: u64,
    pub namespace: String,
    pub name: String,
    pub columns: Vec<ViewColumn>,
    /// The SELECT, with every relation name qualified by its namespace.
    pub query: String,
    pub depends_on: Vec<Dependency>,
    pub created_at: i64,
}

/// One output column: its name, and the declared type catalogs show for it (`None` for a
/// result type no column can be declared with, such as an interval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewColumn {
    pub name: String,
    pub sql_type: Option<SqlType>,
}

/// A relation a view names, and the columns of it the view reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub namespace: String,
    pub name: String,
    pub columns: Vec<String>,
}

impl ViewRecord {
    fn reads(&self, namespace: &str, name: &str) -> Option<&Dependency> {
        self.depends_on
            .iter()
            .find(|d| d.namespace == namespace && d.name == name)
    }
}

impl Store {
    pub fn view_definition(
        &self,
        namespace: &str,
        name: &str,
    ) -> StorageResult<Option<ViewRecord>> {
        self.get_record(CF_CATALOG, &catalog_keys::view(namespace, name))
    }

    pub fn view_definitions(&self) -> StorageResult<Vec<ViewRecord>> {
        self.scan_records(CF_CATALOG, &catalog_keys::views())
    }

    pub fn view_definitions_in(&self, namespace: &str) -> StorageResult<Vec<ViewRecord>> {
        self.scan_records(CF_CATALOG, &catalog_keys::views_of(namespace))
    }
}

fn current(ctx: &ApplyContext, namespace: &str, name: &str) -> StorageResult<Option<ViewRecord>> {
    ctx.record(&catalog_keys::view(namespace, name))
}

/// Creates a view, or with `replace` gives an existing one a new definition (the caller has
/// checked that its columns only grew, as PostgreSQL requires).
pub(super) fn create(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    view: &ViewRecord,
    replace: bool,
) -> StorageResult<()> {
    let namespace = &view.namespace;
    sequences::require_namespace(ctx, namespace)?;
    let mut view = view.clone();
    match current(ctx, namespace, &view.name)? {
        Some(existing) if replace => view.view_id = existing.view_id,
        Some(_) => return Err(Conflict::TableExists(namespace.clone(), view.name.clone()).into()),
        None if sequences::relation_exists(ctx, namespace, &view.name)? => {
            return Err(Conflict::TableExists(namespace.clone(), view.name.clone()).into());
        }
        None if view.view_id != 0 => {}
        None => view.view_id = ctx.next_relation_id(batch)?,
    }
    for dependency in &view.depends_on {
        let (ns, name) = (&dependency.namespace, &dependency.name);
        let exists = match ctx.table(ns, name)? {
            Some(table) => dependency
                .columns
                .iter()
                .all(|c| table.columns.iter().any(|t| &t.name == c)),
            None => current(ctx, ns, name)?.is_some(),
        };
        if !exists {
            // Changed between planning the view and applying it.
            return Err(Conflict::TableChanged(name.clone()).into());
        }
    }
    ctx.put(
        batch,
        CF_CATALOG,
        catalog_keys::view(namespace, &view.name),
        records::encode(&view),
    );
    Ok(())
}

/// DROP VIEW: the view, and with `cascade` the views that depend on it.
pub(super) fn drop(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    name: &str,
    cascade: bool,
) -> StorageResult<()> {
    if current(ctx, namespace, name)?.is_none() {
        return Err(Conflict::NoSuchTable(namespace.to_owned(), name.to_owned()).into());
    }
    release(ctx, batch, namespace, name, cascade)?;
    remove(ctx, batch, namespace, name);
    Ok(())
}

fn remove(ctx: &mut ApplyContext, batch: &mut WriteBatch, namespace: &str, name: &str) {
    ctx.delete(batch, CF_CATALOG, catalog_keys::view(namespace, name));
}

/// Makes way for dropping relation `namespace.name`: with `cascade` the views depending on it
/// (directly or through other views) go too; without, any such view is an error.
pub(super) fn release(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    name: &str,
    cascade: bool,
) -> StorageResult<()> {
    let mut views: Vec<ViewRecord> = ctx.records_in(&catalog_keys::views())?;
    views.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut doomed: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    let mut pending = vec![(namespace.to_owned(), name.to_owned())];
    while let Some((ns, relation)) = pending.pop() {
        for view in &views {
            if view.reads(&ns, &relation).is_some()
                && seen.insert((view.namespace.clone(), view.name.clone()))
            {
                doomed.push((view.namespace.clone(), view.name.clone()));
                pending.push((view.namespace.clone(), view.name.clone()));
            }
        }
    }
    if doomed.is_empty() {
        return Ok(());
    }
    if !cascade {
        let mut dependents: Vec<String> = doomed
            .into_iter()
            .map(|(_, view)| format!("view {view}"))
            .collect();
        dependents.sort();
        return Err(Conflict::HasDependents {
            object: name.to_owned(),
            dependents,
        }
        .into());
    }
    for (ns, view) in doomed {
        remove(ctx, batch, &ns, &view);
    }
    Ok(())
}

/// Refuses to change column `column` of table `namespace.table` (drop, rename, new type) while
/// a view reads it.
pub(super) fn check_column_unused(
    ctx: &ApplyContext,
    namespace: &str,
    table: &str,
    column: &str,
) -> StorageResult<()> {
    let views: Vec<ViewRecord> = ctx.records_in(&catalog_keys::views())?;
    let mut dependents: Vec<String> = views
        .iter()
        .filter(|v| {
            v.reads(namespace, table)
                .is_some_and(|d| d.columns.iter().any(|c| c == column))
        })
        .map(|v| v.name.clone())
        .collect();
    dependents.sort();
    if dependents.is_empty() {
        Ok(())
    } else {
        Err(Conflict::ColumnHasDependents {
            table: table.to_owned(),
            column: column.to_owned(),
            dependents,
        }
        .into())
    }
}
