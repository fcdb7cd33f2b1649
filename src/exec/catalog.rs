//! The DataFusion view of KalamDB's catalog: one schema per namespace, one provider per table.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};

use super::system_tables::SystemSchema;
use super::table::UserTable;
use crate::sql::SYSTEM_SCHEMA;
use crate::storage::{Store, TableRecord};

#[derive(Debug)]
pub struct KalamCatalog {
    store: Arc<Store>,
    system: Arc<SystemSchema>,
    /// Schemas registered by libraries (`pg_catalog`), not stored namespaces.
    registered: std::sync::RwLock<std::collections::HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl KalamCatalog {
    pub fn new(
        store: Arc<Store>,
        schedules: Arc<[crate::backup::Schedule]>,
        cluster: Option<Arc<crate::cluster::replica::Replica>>,
    ) -> Self {
        KalamCatalog {
            system: Arc::new(SystemSchema::new(store.clone(), schedules, cluster)),
            store,
            registered: Default::default(),
        }
    }
}

/// A storage error inside DataFusion, already in the execution layer's terms.
pub(super) fn storage_error(e: crate::storage::StorageError) -> DataFusionError {
    DataFusionError::External(Box::new(super::ExecError::from(e)))
}

impl CatalogProvider for KalamCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .store
            .namespaces()
            .map(|all| all.into_iter().map(|ns| ns.name).collect())
            .unwrap_or_default();
        names.push(SYSTEM_SCHEMA.to_owned());
        names.extend(
            self.registered
                .read()
                .expect("registered schemas")
                .keys()
                .cloned(),
        );
        names
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        Ok(self.registered.write().expect("registered schemas").insert(
            name.to_owned(),
            match name {
                "pg_catalog" => {
                    super::pg_catalog::PgCatalogSchema::wrap(schema, self.store.clone())
                }
                _ => schema,
            },
        ))
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SYSTEM_SCHEMA {
            return Some(self.system.clone());
        }
        if let Some(schema) = self
            .registered
            .read()
            .expect("registered schemas")
            .get(name)
        {
            return Some(schema.clone());
        }
        match self.store.namespace(name) {
            Ok(Some(_)) => Some(Arc::new(NamespaceSchema {
                store: self.store.clone(),
                namespace: name.to_owned(),
            })),
            _ => None,
        }
    }
}

/// The provider that reads a table of either kind.
pub(super) fn table_provider(store: &Arc<Store>, record: TableRecord) -> Arc<dyn TableProvider> {
    match record.kind {
        crate::model::TableKind::Stream { .. } => Arc::new(super::stream_table::StreamTable::new(
            store.clone(),
            Arc::new(record),
        )),
        crate::model::TableKind::Regular => {
            Arc::new(UserTable::new(store.clone(), Arc::new(record), false))
        }
    }
}

#[derive(Debug)]
struct NamespaceSchema {
    store: Arc<Store>,
    namespace: String,
}

#[async_trait]
impl SchemaProvider for NamespaceSchema {
    fn table_names(&self) -> Vec<String> {
        let tables = self.store.tables_in(&self.namespace).unwrap_or_default();
        let views = self
            .store
            .view_definitions_in(&self.namespace)
            .unwrap_or_default();
        tables
            .into_iter()
            .map(|t| t.name)
            .chain(views.into_iter().map(|v| v.name))
            .collect()
    }

    /// A table, or else a view.
    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let table = self
            .store
            .table(&self.namespace, name)
            .map_err(storage_error)?;
        if table.is_none() {
            return Ok(self
                .store
                .view_definition(&self.namespace, name)
                .map_err(storage_error)?
                .map(|view| Arc::new(super::view_table::StoredView::new(view)) as _));
        }
        Ok(table.map(|record| table_provider(&self.store, record)))
    }

    fn table_exist(&self, name: &str) -> bool {
        matches!(self.store.table(&self.namespace, name), Ok(Some(_)))
            || matches!(
                self.store.view_definition(&self.namespace, name),
                Ok(Some(_))
            )
    }
}
