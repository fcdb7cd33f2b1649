//! A transaction block's catalog before its COMMIT: the records its DDL would write, found by
//! dry-running that DDL, and reads of the catalog that see them over the committed records.
//!
//! The dry run checks each DDL statement when it runs, as PostgreSQL does; COMMIT applies the
//! block's commands for real, against whatever committed meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;

use rocksdb::WriteBatch;

use super::command::{ApplyContext, Command};
use super::foreign_keys::ForeignKeyRecord;
use super::indexes::IndexRecord;
use super::keys::{CF_CATALOG, catalog_keys};
use super::view_ddl::ViewRecord;
use super::{NamespaceRecord, SequenceRecord, StorageResult, Store, TableRecord, cf, records};

/// Catalog records (by key) a block has written or deleted and not committed.
#[derive(Debug, Clone, Default)]
pub struct CatalogChanges {
    records: super::apply_context::PendingKeys,
}

impl CatalogChanges {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl Store {
    /// Dry-runs `commands` (a block's DDL, in order) without writing anything: the catalog
    /// records they would leave, or the error the first failing one gives.
    pub fn preview_catalog<'c>(
        &self,
        commands: impl IntoIterator<Item = &'c Command>,
    ) -> StorageResult<CatalogChanges> {
        let mut ctx = ApplyContext::new(&self.db, 0, &self.streams_root, false);
        ctx.catalog_preview = true;
        let mut batch = WriteBatch::default();
        for command in commands {
            command.write_all_into(&mut ctx, &mut batch)?;
        }
        Ok(CatalogChanges {
            records: ctx.take_pending(CF_CATALOG),
        })
    }

    /// The catalog as a block with `changes` sees it.
    pub fn catalog(&self, changes: Arc<CatalogChanges>) -> CatalogRead<'_> {
        CatalogRead {
            store: self,
            changes,
        }
    }
}

/// Catalog reads through a block's uncommitted changes.
pub struct CatalogRead<'a> {
    store: &'a Store,
    changes: Arc<CatalogChanges>,
}

impl CatalogRead<'_> {
    fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> StorageResult<Option<T>> {
        match self.changes.records.get(key) {
            Some(Some(bytes)) => Ok(Some(records::decode(CF_CATALOG, bytes)?)),
            Some(None) => Ok(None),
            None => self.store.get_record(CF_CATALOG, key),
        }
    }

    fn scan<T: serde::de::DeserializeOwned>(&self, prefix: &[u8]) -> StorageResult<Vec<T>> {
        if self.changes.is_empty() {
            return self.store.scan_records(CF_CATALOG, prefix);
        }
        let db = &self.store.db;
        let mut found: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for item in db.prefix_iterator_cf(cf(db, CF_CATALOG), prefix) {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            found.insert(key.to_vec(), value.to_vec());
        }
        for (key, value) in &self.changes.records {
            if key.starts_with(prefix) {
                match value {
                    Some(value) => found.insert(key.clone(), value.clone()),
                    None => found.remove(key),
                };
            }
        }
        found
            .values()
            .map(|bytes| records::decode(CF_CATALOG, bytes))
            .collect()
    }

    pub fn namespace(&self, name: &str) -> StorageResult<Option<NamespaceRecord>> {
        self.get(&catalog_keys::namespace(name))
    }

    pub fn table(&self, namespace: &str, name: &str) -> StorageResult<Option<TableRecord>> {
        self.get(&catalog_keys::table(namespace, name))
    }

    pub fn tables_in(&self, namespace: &str) -> StorageResult<Vec<TableRecord>> {
        self.scan(&catalog_keys::tables_of(namespace))
    }

    pub fn tables(&self) -> StorageResult<Vec<TableRecord>> {
        self.scan(&catalog_keys::tables())
    }

    pub fn sequence(&self, namespace: &str, name: &str) -> StorageResult<Option<SequenceRecord>> {
        self.get(&catalog_keys::sequence(namespace, name))
    }

    pub fn sequences(&self) -> StorageResult<Vec<SequenceRecord>> {
        self.scan(&catalog_keys::sequences())
    }

    pub fn view_definition(
        &self,
        namespace: &str,
        name: &str,
    ) -> StorageResult<Option<ViewRecord>> {
        self.get(&catalog_keys::view(namespace, name))
    }

    pub fn indexes_of(&self, table_id: u64) -> StorageResult<Vec<IndexRecord>> {
        self.scan(&catalog_keys::indexes_of(table_id))
    }

    pub fn all_indexes(&self) -> StorageResult<Vec<IndexRecord>> {
        self.scan(&catalog_keys::indexes())
    }

    /// The foreign keys of a table (it is the referencing side).
    pub fn foreign_keys_of(&self, table_id: u64) -> StorageResult<Vec<ForeignKeyRecord>> {
        self.scan(&catalog_keys::foreign_keys_of(table_id))
    }

    pub fn all_foreign_keys(&self) -> StorageResult<Vec<ForeignKeyRecord>> {
        self.scan(&catalog_keys::foreign_keys())
    }

    /// The index named `name` in `namespace`.
    pub fn index(&self, namespace: &str, name: &str) -> StorageResult<Option<IndexRecord>> {
        let key = catalog_keys::index_name(namespace, name);
        let table_id = match self.changes.records.get(&key) {
            Some(Some(bytes)) => Some(bytes.clone()),
            Some(None) => None,
            None => {
                let db = &self.store.db;
                db.get_cf(cf(db, CF_CATALOG), &key)?
            }
        };
        match table_id {
            Some(bytes) => {
                let table_id = super::decode_u64(CF_CATALOG, &bytes)?;
                self.get(&catalog_keys::index(table_id, name))
            }
            None => Ok(None),
        }
    }

    /// Whether the block's DDL changed anything.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    pub fn view_definitions(&self) -> StorageResult<Vec<ViewRecord>> {
        self.scan(&catalog_keys::views())
    }
}
