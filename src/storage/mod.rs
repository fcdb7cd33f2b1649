//! Storage: the data directory, its lock, RocksDB, and the one function that applies writes.
//!
//! Every change to durable state is a [`Command`]. [`Store::apply`] turns a command into a single
//! RocksDB write batch that also records the command's sequence number, so a command is either
//! wholly applied or not at all, and the applied sequence number names a well-defined point in
//! the database's history (the point a backup captures, and the seam where a replicated log will
//! feed commands in later).

mod command;
mod datadir;
mod records;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};

pub use command::Command;
pub use datadir::DataDir;
pub use records::{Role, ScramVerifier, UserRecord};

/// Column families. `meta` holds store-wide values such as the applied sequence number.
const CF_META: &str = "meta";
const CF_USERS: &str = "users";
const COLUMN_FAMILIES: [&str; 2] = [CF_META, CF_USERS];

const APPLIED_SEQ_KEY: &[u8] = b"applied_seq";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(
        "the data directory {0} is in use by another KalamDB server (lock file {1} is held); stop that server or choose another [storage] data_path"
    )]
    Locked(PathBuf, PathBuf),
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record in {cf}: {message}")]
    Corrupt { cf: &'static str, message: String },
}

impl StorageError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// Durability knobs for RocksDB writes.
#[derive(Debug, Clone, Copy)]
pub struct Durability {
    pub sync_writes: bool,
    pub wal_enabled: bool,
}

/// The opened data directory: RocksDB plus the file-based areas beside it.
pub struct Store {
    dir: DataDir,
    db: DB,
    write_options: WriteOptions,
    /// Serialises `apply` so sequence numbers are assigned in commit order.
    apply_lock: Mutex<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir.root())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Creates the data directory layout if needed, takes its lock and opens RocksDB.
    pub fn open(data_path: &Path, durability: Durability) -> StorageResult<Store> {
        let dir = DataDir::create_and_lock(data_path)?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&options, dir.rocksdb(), descriptors)?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(durability.sync_writes);
        write_options.disable_wal(!durability.wal_enabled);
        let applied = db
            .get_cf(cf(&db, CF_META), APPLIED_SEQ_KEY)?
            .map(|bytes| decode_seq(&bytes))
            .transpose()?
            .unwrap_or(0);
        Ok(Store {
            dir,
            db,
            write_options,
            apply_lock: Mutex::new(applied),
        })
    }

    pub fn dir(&self) -> &DataDir {
        &self.dir
    }

    /// The sequence number of the last applied command (0 for a new store).
    pub fn applied_seq(&self) -> u64 {
        *self.apply_lock.lock().expect("apply lock poisoned")
    }

    /// Applies one command atomically and returns its sequence number.
    pub fn apply(&self, command: &Command) -> StorageResult<u64> {
        let mut applied = self.apply_lock.lock().expect("apply lock poisoned");
        let seq = *applied + 1;
        let mut batch = WriteBatch::default();
        command.write_into(&self.db, &mut batch)?;
        batch.put_cf(cf(&self.db, CF_META), APPLIED_SEQ_KEY, seq.to_be_bytes());
        self.db.write_opt(batch, &self.write_options)?;
        *applied = seq;
        Ok(seq)
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

    /// Flushes memtables and the WAL so a clean shutdown leaves nothing to replay.
    pub fn flush(&self) -> StorageResult<()> {
        self.db.flush_wal(true)?;
        for name in COLUMN_FAMILIES {
            self.db.flush_cf(cf(&self.db, name))?;
        }
        Ok(())
    }
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is opened with the database"))
}

fn decode_seq(bytes: &[u8]) -> StorageResult<u64> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StorageError::Corrupt {
        cf: CF_META,
        message: "applied_seq is not 8 bytes".into(),
    })?;
    Ok(u64::from_be_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn durability() -> Durability {
        Durability {
            sync_writes: false,
            wal_enabled: true,
        }
    }

    #[test]
    fn applied_sequence_survives_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let user = UserRecord::new_for_test("alice", Role::User);
        {
            let store = Store::open(tmp.path(), durability()).unwrap();
            assert_eq!(store.applied_seq(), 0);
            assert_eq!(store.apply(&Command::PutUser(user.clone())).unwrap(), 1);
            assert_eq!(store.apply(&Command::PutUser(user)).unwrap(), 2);
        }
        let store = Store::open(tmp.path(), durability()).unwrap();
        assert_eq!(store.applied_seq(), 2);
        assert_eq!(store.user("alice").unwrap().unwrap().role, Role::User);
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = Store::open(tmp.path(), durability()).unwrap();
        let err = Store::open(tmp.path(), durability()).err().unwrap();
        assert!(matches!(err, StorageError::Locked(..)), "{err}");
    }

    #[test]
    fn the_layout_directories_are_created() {
        let tmp = tempfile::tempdir().unwrap();
        let _store = Store::open(tmp.path(), durability()).unwrap();
        for sub in ["rocksdb", "storage", "snapshots", "streams"] {
            assert!(tmp.path().join(sub).is_dir(), "{sub}");
        }
    }
}
