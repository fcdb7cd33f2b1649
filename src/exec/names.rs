//! Name resolution for a session: `search_path`, which namespace an unqualified table name
//! means, and where an unqualified CREATE TABLE puts its table.

use super::{ExecError, ExecResult, Session};
use crate::sql::TableName;
use crate::storage::{CatalogRead, StorageResult, TableRecord};

/// 42P01, naming the relation as the statement did.
pub(super) fn undefined_relation(name: impl std::fmt::Display) -> ExecError {
    ExecError::UndefinedTable(format!("relation \"{name}\" does not exist"))
}

/// The namespaces a `search_path` value names, in order and each once; `$user` is the
/// namespace named after the session's user.
pub(super) fn path_entries(path: &str, user: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for entry in path.split(',') {
        let name = match entry.trim().trim_matches('"') {
            "$user" => user,
            name => name,
        };
        if !name.is_empty() && !entries.iter().any(|n| n == name) {
            entries.push(name.to_owned());
        }
    }
    entries
}

/// The namespaces a `search_path` value names that exist, in order.
pub(super) fn namespaces_on_path(
    catalog: &CatalogRead,
    path: &str,
    user: &str,
) -> ExecResult<Vec<String>> {
    let mut namespaces = Vec::new();
    for name in path_entries(path, user) {
        if catalog.namespace(&name)?.is_some() {
            namespaces.push(name);
        }
    }
    Ok(namespaces)
}

/// The relation `lookup` finds in the first of `namespaces` that holds one.
pub(super) fn first_in_path<T>(
    namespaces: Vec<String>,
    mut lookup: impl FnMut(&str) -> StorageResult<Option<T>>,
) -> StorageResult<Option<T>> {
    for namespace in namespaces {
        if let Some(found) = lookup(&namespace)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

impl Session {
    /// Where to look for a relation: its own namespace, or those of `search_path`.
    pub(super) fn candidate_namespaces(&self, name: &TableName) -> ExecResult<Vec<String>> {
        match &name.namespace {
            Some(namespace) => Ok(vec![namespace.clone()]),
            None => self.search_path(),
        }
    }

    /// The namespaces of `search_path` that exist, in order.
    pub(super) fn search_path(&self) -> ExecResult<Vec<String>> {
        namespaces_on_path(
            &self.catalog(),
            &self.setting("search_path")?,
            self.user_id(),
        )
    }

    /// Finds a table by qualified name, or along `search_path` (42P01 when there is none).
    /// A view of that name is 42809, as PostgreSQL answers a table statement on a view.
    pub(super) fn resolve_table(&self, name: &TableName) -> ExecResult<TableRecord> {
        let namespaces = self.candidate_namespaces(name)?;
        if let Some(table) = first_in_path(namespaces.clone(), |namespace| {
            self.catalog().table(namespace, &name.name)
        })? {
            return Ok(table);
        }
        match first_in_path(namespaces, |namespace| {
            self.catalog().view_definition(namespace, &name.name)
        })? {
            Some(_) => Err(ExecError::WrongObjectType(format!(
                "\"{}\" is not a table",
                name.name
            ))),
            None => Err(undefined_relation(name)),
        }
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
