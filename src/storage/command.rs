//! Commands: the only way durable state changes, and their preconditions.

use std::collections::HashMap;

use rocksdb::{DB, WriteBatch};
use serde::{Deserialize, Serialize};

use super::records::{self, NamespaceRecord, TableRecord, UserRecord};
use super::{
    CF_CATALOG, CF_META, CF_ROWS, CF_USERS, Conflict, StorageResult, catalog_keys, cf, rows,
};

/// One atomic change to the database. Commands are serialisable so that a replicated log can
/// carry them; applying the same sequence of commands to the same state gives the same state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Creates or replaces a user.
    PutUser(UserRecord),
    DropUser {
        user_id: String,
    },
    CreateNamespace(NamespaceRecord),
    /// Drops a namespace; with `cascade` its tables and their rows too.
    DropNamespace {
        name: String,
        cascade: bool,
    },
    /// Creates a table; its `table_id` is assigned when the command is applied.
    CreateTable(TableRecord),
    /// Replaces a table's definition (ALTER TABLE); the table must still have the same id.
    AlterTable(TableRecord),
    DropTable {
        namespace: String,
        name: String,
    },
    WriteRows {
        table_id: u64,
        writes: Vec<RowWrite>,
        /// The highest hidden row id used by `writes`, for tables without a declared key.
        row_id_high_water: Option<u64>,
    },
    /// Several commands applied as one (a transaction block's writes).
    Batch(Vec<Command>),
}

/// One row change. `expect` is checked against the row's current state when applied, so a
/// write computed from a row read earlier fails instead of overwriting a newer version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowWrite {
    /// The full row key (table prefix and encoded primary key or hidden row id).
    pub key: Vec<u8>,
    /// The encoded row, or `None` to delete.
    pub value: Option<Vec<u8>>,
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    Anything,
    /// No live row with this key (INSERT).
    Absent,
    /// The row is still the version that was read.
    Version(u64),
}

/// What applying a command produced.
#[derive(Debug, Default)]
pub struct Applied {
    pub seq: u64,
    /// Ids assigned to tables created by the command, in order.
    pub table_ids: Vec<u64>,
}

/// State visible while one command is being turned into a write batch: the database plus the
/// command's own earlier writes, so that later parts of a batch see earlier ones.
pub(super) struct ApplyContext<'a> {
    pub db: &'a DB,
    pub seq: u64,
    pending: HashMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
    pub applied: Applied,
}

impl<'a> ApplyContext<'a> {
    pub fn new(db: &'a DB, seq: u64) -> Self {
        ApplyContext {
            db,
            seq,
            pending: HashMap::new(),
            applied: Applied {
                seq,
                table_ids: Vec::new(),
            },
        }
    }

    fn get(&self, cf_name: &'static str, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        if let Some(value) = self.pending.get(&(cf_name, key.to_vec())) {
            return Ok(value.clone());
        }
        Ok(self.db.get_cf(cf(self.db, cf_name), key)?)
    }

    fn put(&mut self, batch: &mut WriteBatch, cf_name: &'static str, key: Vec<u8>, value: Vec<u8>) {
        batch.put_cf(cf(self.db, cf_name), &key, &value);
        self.pending.insert((cf_name, key), Some(value));
    }

    fn delete(&mut self, batch: &mut WriteBatch, cf_name: &'static str, key: Vec<u8>) {
        batch.delete_cf(cf(self.db, cf_name), &key);
        self.pending.insert((cf_name, key), None);
    }

    fn counter(&self, name: &[u8]) -> StorageResult<u64> {
        self.get(CF_META, name)?
            .map(|bytes| super::decode_u64(CF_META, &bytes))
            .transpose()
            .map(|v| v.unwrap_or(0))
    }

    fn next_counter(&mut self, batch: &mut WriteBatch, name: Vec<u8>) -> StorageResult<u64> {
        let next = self.counter(&name)? + 1;
        self.put(batch, CF_META, name, next.to_be_bytes().to_vec());
        Ok(next)
    }

    fn table(&self, namespace: &str, name: &str) -> StorageResult<Option<TableRecord>> {
        self.get(CF_CATALOG, &catalog_keys::table(namespace, name))?
            .map(|b| records::decode(CF_CATALOG, &b))
            .transpose()
    }

    fn tables_in(&self, namespace: &str) -> StorageResult<Vec<TableRecord>> {
        let prefix = catalog_keys::tables_of(namespace);
        let mut found: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        for item in self.db.prefix_iterator_cf(cf(self.db, CF_CATALOG), &prefix) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            found.insert(key.to_vec(), Some(value.to_vec()));
        }
        for ((cf_name, key), value) in &self.pending {
            if *cf_name == CF_CATALOG && key.starts_with(&prefix) {
                found.insert(key.clone(), value.clone());
            }
        }
        found
            .into_values()
            .flatten()
            .map(|b| records::decode(CF_CATALOG, &b))
            .collect()
    }
}

impl Command {
    pub(super) fn write_into(
        &self,
        ctx: &mut ApplyContext,
        batch: &mut WriteBatch,
    ) -> StorageResult<()> {
        match self {
            Command::PutUser(user) => {
                ctx.put(
                    batch,
                    CF_USERS,
                    user.user_id.clone().into_bytes(),
                    records::encode(user),
                );
            }
            Command::DropUser { user_id } => {
                ctx.delete(batch, CF_USERS, user_id.clone().into_bytes());
            }
            Command::CreateNamespace(ns) => {
                let key = catalog_keys::namespace(&ns.name);
                if ctx.get(CF_CATALOG, &key)?.is_some() {
                    return Err(Conflict::NamespaceExists(ns.name.clone()).into());
                }
                ctx.put(batch, CF_CATALOG, key, records::encode(ns));
            }
            Command::DropNamespace { name, cascade } => {
                let key = catalog_keys::namespace(name);
                if ctx.get(CF_CATALOG, &key)?.is_none() {
                    return Err(Conflict::NoSuchNamespace(name.clone()).into());
                }
                let tables = ctx.tables_in(name)?;
                if !tables.is_empty() && !cascade {
                    return Err(Conflict::NamespaceNotEmpty(name.clone()).into());
                }
                for table in tables {
                    drop_table(ctx, batch, &table);
                }
                ctx.delete(batch, CF_CATALOG, key);
            }
            Command::CreateTable(table) => {
                if ctx
                    .get(CF_CATALOG, &catalog_keys::namespace(&table.namespace))?
                    .is_none()
                {
                    return Err(Conflict::NoSuchNamespace(table.namespace.clone()).into());
                }
                if ctx.table(&table.namespace, &table.name)?.is_some() {
                    return Err(
                        Conflict::TableExists(table.namespace.clone(), table.name.clone()).into(),
                    );
                }
                let mut table = table.clone();
                table.table_id = ctx.next_counter(batch, b"next_table_id".to_vec())?;
                ctx.applied.table_ids.push(table.table_id);
                ctx.put(
                    batch,
                    CF_CATALOG,
                    catalog_keys::table(&table.namespace, &table.name),
                    records::encode(&table),
                );
            }
            Command::AlterTable(table) => {
                match ctx.table(&table.namespace, &table.name)? {
                    Some(current) if current.table_id == table.table_id => {}
                    _ => return Err(Conflict::TableChanged(table.name.clone()).into()),
                }
                ctx.put(
                    batch,
                    CF_CATALOG,
                    catalog_keys::table(&table.namespace, &table.name),
                    records::encode(table),
                );
            }
            Command::DropTable { namespace, name } => {
                let table = ctx
                    .table(namespace, name)?
                    .ok_or_else(|| Conflict::NoSuchTable(namespace.clone(), name.clone()))?;
                drop_table(ctx, batch, &table);
            }
            Command::WriteRows {
                table_id,
                writes,
                row_id_high_water,
            } => {
                for write in writes {
                    write_row(ctx, batch, *table_id, write)?;
                }
                if let Some(high) = row_id_high_water {
                    let name = super::row_id_counter(*table_id);
                    let current = ctx.counter(&name)?;
                    if *high > current {
                        ctx.put(batch, CF_META, name, high.to_be_bytes().to_vec());
                    }
                }
            }
            Command::Batch(commands) => {
                for command in commands {
                    command.write_into(ctx, batch)?;
                }
            }
        }
        Ok(())
    }
}

fn drop_table(ctx: &mut ApplyContext, batch: &mut WriteBatch, table: &TableRecord) {
    let start = rows::table_prefix(table.table_id);
    let end = rows::table_prefix(table.table_id + 1);
    batch.delete_range_cf(cf(ctx.db, CF_ROWS), start, end);
    ctx.delete(
        batch,
        CF_CATALOG,
        catalog_keys::table(&table.namespace, &table.name),
    );
}

fn write_row(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
    write: &RowWrite,
) -> StorageResult<()> {
    let key = write.key.clone();
    let current = ctx
        .get(CF_ROWS, &key)?
        .map(|stored| rows::stored_version(&stored))
        .transpose()?;
    match (write.expect, current) {
        (Expect::Anything, _) | (Expect::Absent, None) => {}
        (Expect::Version(v), Some(current)) if v == current => {}
        (Expect::Absent, Some(_)) => {
            return Err(Conflict::DuplicateKey { table_id, key }.into());
        }
        (Expect::Version(_), _) => return Err(Conflict::RowChanged { table_id }.into()),
    }
    match &write.value {
        Some(value) => {
            let stored = rows::stored_row(ctx.seq, value);
            ctx.put(batch, CF_ROWS, key, stored);
        }
        None => ctx.delete(batch, CF_ROWS, key),
    }
    Ok(())
}
