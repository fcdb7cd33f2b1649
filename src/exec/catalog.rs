//! The DataFusion view of KalamDB's catalog: one schema per namespace, one provider per table.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};

use super::system_tables::SystemSchema;
use super::table::UserTable;
use crate::sql::SYSTEM_SCHEMA;
use crate::storage::Store;

/// The hidden schema holding per-statement scratch tables.
pub const SCRATCH_SCHEMA: &str = "__kalamdb_scratch";

#[derive(Debug)]
pub struct KalamCatalog {
    store: Arc<Store>,
    system: Arc<SystemSchema>,
    scratch: Arc<ScratchSchema>,
    /// Schemas registered by libraries (`pg_catalog`), not stored namespaces.
    registered: std::sync::RwLock<std::collections::HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl KalamCatalog {
    pub fn new(store: Arc<Store>, scratch: Arc<ScratchSchema>) -> Self {
        KalamCatalog {
            system: Arc::new(SystemSchema::new(store.clone())),
            store,
            scratch,
            registered: Default::default(),
        }
    }
}

/// In-memory tables that live for one statement; names are unique per statement.
#[derive(Debug, Default)]
pub struct ScratchSchema {
    tables: MemorySchemaProvider,
}

impl ScratchSchema {
    pub fn register(&self, name: &str, table: Arc<dyn TableProvider>) -> Result<()> {
        self.tables.register_table(name.to_owned(), table)?;
        Ok(())
    }

    pub fn deregister(&self, name: &str) {
        let _ = self.tables.deregister_table(name);
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
        if name == SCRATCH_SCHEMA {
            return Some(Arc::new(ScratchView(self.scratch.clone())));
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

#[derive(Debug)]
struct NamespaceSchema {
    store: Arc<Store>,
    namespace: String,
}

#[async_trait]
impl SchemaProvider for NamespaceSchema {
    fn table_names(&self) -> Vec<String> {
        self.store
            .tables_in(&self.namespace)
            .map(|tables| tables.into_iter().map(|t| t.name).collect())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        // `t$rowid` is `t` plus its hidden key and version columns, for UPDATE and DELETE.
        let (base, with_row_identity) = match name.strip_suffix(super::dml::ROW_IDENTITY_SUFFIX) {
            Some(base) => (base, true),
            None => (name, false),
        };
        Ok(self
            .store
            .table(&self.namespace, base)
            .map_err(storage_error)?
            .map(|record| match record.kind {
                crate::model::TableKind::Stream { .. } if !with_row_identity => Arc::new(
                    super::stream_table::StreamTable::new(self.store.clone(), Arc::new(record)),
                )
                    as Arc<dyn TableProvider>,
                _ => Arc::new(UserTable::new(
                    self.store.clone(),
                    Arc::new(record),
                    with_row_identity,
                )) as Arc<dyn TableProvider>,
            }))
    }

    fn table_exist(&self, name: &str) -> bool {
        matches!(self.store.table(&self.namespace, name), Ok(Some(_)))
    }
}

#[derive(Debug)]
struct ScratchView(Arc<ScratchSchema>);

#[async_trait]
impl SchemaProvider for ScratchView {
    fn table_names(&self) -> Vec<String> {
        self.0.tables.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.0.tables.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.0.tables.table_exist(name)
    }
}
