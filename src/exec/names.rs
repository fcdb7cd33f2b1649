//! Name resolution for a session: `search_path`, which namespace an unqualified table name
//! means, and where an unqualified CREATE TABLE puts its table.

use super::{ExecError, ExecResult, Session};
use crate::sql::TableName;
use crate::storage::{Store, TableRecord};

/// The namespaces a `search_path` value names that exist, in order.
pub(super) fn namespaces_on_path(store: &Store, path: &str) -> ExecResult<Vec<String>> {
    let mut namespaces = Vec::new();
    for entry in path.split(',') {
        let name = entry.trim().trim_matches('"');
        if name.is_empty() || name == "$user" {
            continue;
        }
        if store.namespace(name)?.is_some() {
            namespaces.push(name.to_owned());
        }
    }
    Ok(namespaces)
}

impl Session {
    /// The namespaces of `search_path` that exist, in order.
    pub(super) fn search_path(&self) -> ExecResult<Vec<String>> {
        namespaces_on_path(&self.engine.store, &self.setting("search_path")?)
    }

    /// Finds a table by qualified name, or along `search_path` (42P01 when there is none).
    pub(super) fn resolve_table(&self, name: &TableName) -> ExecResult<TableRecord> {
        let candidates = match &name.namespace {
            Some(ns) => vec![ns.clone()],
            None => self.search_path()?,
        };
        for namespace in candidates {
            if let Some(record) = self.engine.store.table(&namespace, &name.name)? {
                return Ok(record);
            }
        }
        Err(ExecError::UndefinedTable(format!(
            "relation \"{name}\" does not exist"
        )))
    }

    /// Where an unqualified CREATE TABLE puts the table: the first namespace of `search_path`.
    pub(super) fn creation_namespace(&self) -> ExecResult<String> {
        self.search_path()?.into_iter().next().ok_or_else(|| {
            ExecError::InvalidSchemaName(
                "no schema has been selected to create in: check search_path".into(),
            )
        })
    }

    /// Unqualified names in queries resolve in the first namespace of `search_path`.
    pub(super) fn follow_search_path(&self) -> ExecResult<()> {
        let first = self
            .search_path()?
            .into_iter()
            .next()
            .unwrap_or_else(|| crate::storage::PUBLIC_NAMESPACE.to_owned());
        self.ctx
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .catalog
            .default_schema = first;
        Ok(())
    }
}
