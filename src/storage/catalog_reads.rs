//! Reads of the catalog the store keeps in RocksDB: namespaces, tables, users, jobs and stream
//! log states, each as the latest committed record.

use super::keys::{CF_CATALOG, CF_JOBS, CF_USERS, catalog_keys};
use super::{
    JobRecord, NamespaceRecord, ReadView, StorageResult, Store, TableRecord, UserRecord, cf,
    records, streams,
};

impl Store {
    /// A stream table's committed commit-log files.
    pub fn stream_state(&self, table_id: u64) -> StorageResult<streams::StreamState> {
        Ok(self
            .get_record(CF_CATALOG, &catalog_keys::stream(table_id))?
            .unwrap_or_default())
    }

    pub fn job(&self, job_id: &str) -> StorageResult<Option<JobRecord>> {
        self.get_record(CF_JOBS, job_id.as_bytes())
    }

    pub fn jobs(&self) -> StorageResult<Vec<JobRecord>> {
        self.scan_records(CF_JOBS, b"")
    }

    pub fn namespace(&self, name: &str) -> StorageResult<Option<NamespaceRecord>> {
        self.get_record(CF_CATALOG, &catalog_keys::namespace(name))
    }

    pub fn namespaces(&self) -> StorageResult<Vec<NamespaceRecord>> {
        self.scan_records(CF_CATALOG, &catalog_keys::namespaces())
    }

    pub fn table(&self, namespace: &str, name: &str) -> StorageResult<Option<TableRecord>> {
        self.get_record(CF_CATALOG, &catalog_keys::table(namespace, name))
    }

    /// The layout generation rows of `table_id` are stored under (see
    /// `TableRecord::layout_generation`).
    pub fn layout_generation(&self, table_id: u64) -> StorageResult<u64> {
        let key = catalog_keys::layout_generation(table_id);
        let stored = self.db.get_cf(cf(&self.db, CF_CATALOG), key)?;
        records::layout_generation(table_id, stored.as_deref())
    }

    /// The committed definition of table `table_id`, whatever its name (a scan of the tables).
    pub fn table_by_id(&self, table_id: u64) -> StorageResult<Option<TableRecord>> {
        Ok(self.tables()?.into_iter().find(|t| t.table_id == table_id))
    }

    pub fn tables_in(&self, namespace: &str) -> StorageResult<Vec<TableRecord>> {
        self.scan_records(CF_CATALOG, &catalog_keys::tables_of(namespace))
    }

    pub fn all_foreign_keys(&self) -> StorageResult<Vec<super::ForeignKeyRecord>> {
        self.scan_records(CF_CATALOG, &catalog_keys::foreign_keys())
    }

    pub fn tables(&self) -> StorageResult<Vec<TableRecord>> {
        self.scan_records(CF_CATALOG, &catalog_keys::tables())
    }

    pub(super) fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        cf_name: &'static str,
        key: &[u8],
    ) -> StorageResult<Option<T>> {
        self.db
            .get_cf(cf(&self.db, cf_name), key)?
            .map(|bytes| records::decode(cf_name, &bytes))
            .transpose()
    }

    pub(super) fn scan_records<T: serde::de::DeserializeOwned>(
        &self,
        cf_name: &'static str,
        prefix: &[u8],
    ) -> StorageResult<Vec<T>> {
        ReadView::latest(self).scan_records(cf_name, prefix)
    }

    pub fn user(&self, user_id: &str) -> StorageResult<Option<UserRecord>> {
        self.db
            .get_cf(cf(&self.db, CF_USERS), user_id.as_bytes())?
            .map(|bytes| records::decode(CF_USERS, &bytes))
            .transpose()
    }

    pub fn users(&self) -> StorageResult<Vec<UserRecord>> {
        self.db
            .iterator_cf(cf(&self.db, CF_USERS), rocksdb::IteratorMode::Start)
            .map(|item| {
                let (_, value) = item?;
                records::decode(CF_USERS, &value)
            })
            .collect()
    }
}
