//! Storage: the data directory, its lock, RocksDB, and the one function that applies writes.
//!
//! Every change to durable state is a [`Command`]. [`Store::apply`] turns a command into a single
//! RocksDB write batch that also records the command's sequence number, so a command is either
//! wholly applied or not at all, and the applied sequence number names a well-defined point in
//! the database's history (the point a backup captures, and the seam where a replicated log will
//! feed commands in later).

mod apply;
mod apply_context;
mod bulk_load;
mod capture;
mod catalog_changes;
mod catalog_reads;
mod column_ddl;
mod command;
#[cfg(test)]
mod crashed_copy;
mod datadir;
pub mod datums;
mod error;
mod file_names;
pub mod flushed_rows;
mod foreign_keys;
mod index_ddl;
mod index_reads;
mod indexes;
mod keys;
mod raft_log;
mod records;
mod referential;
mod replicated;
mod replicator;
mod row_checks;
mod row_writes;
pub mod rows;
mod segment_cache;
mod segment_publish;
pub mod segments;
mod sequences;
pub mod streams;
mod table_ddl;
mod table_reads;
mod view;
mod view_ddl;
mod wal_sync;
mod write_shapes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteOptions};

pub use bulk_load::{LoadFailure, LoadFile, RowSorter};
pub use capture::{BackupPoint, CapturedFile, MetadataSnapshot, list_files};
pub use catalog_changes::{CatalogChanges, CatalogRead};
pub use column_ddl::rekeyed;
pub use command::{Applied, Command, Expect, RewrittenRow, RowWrite};
pub use replicator::{CommitFuture, Replicator};
pub use row_checks::CheckEvaluator;
pub use row_writes::ColdEntry;

/// Microseconds since the Unix epoch: how every timestamp in storage is kept.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Whether a stored hot row is a tombstone (a deleted cold row).
pub fn is_tombstone(stored: &[u8]) -> bool {
    rows::stored_payload(stored) == row_writes::TOMBSTONE
}
pub use datadir::{DataDir, LOCK_FILE};
pub use error::{Conflict, StorageError, StorageResult};
pub use file_names::verify_catalog_at;
pub use foreign_keys::ForeignKeyRecord;
pub use index_reads::IndexCheck;
pub use indexes::{IndexRecord, IndexState, IndexedRow};
use keys::{
    CF_CATALOG, CF_COLD_INDEX, CF_DEAD_KEYS, CF_JOBS, CF_META, CF_RAFT_LOG, CF_ROWS, CF_USERS,
    COLUMN_FAMILIES, catalog_keys,
};
pub use records::{
    CheckConstraint, JobRecord, JobStatus, NamespaceRecord, ScramVerifier, TableRecord, UserRecord,
};
pub use segments::SegmentRecord;
pub use sequences::{OwnedBy, SequencePosition, SequenceRecord};
pub use view::{OwnedView, ReadView, prefix_end};
pub use view_ddl::{Dependency, ViewColumn, ViewRecord};

/// Past this much write-ahead log, RocksDB flushes the column families that pin old logs.
const MAX_TOTAL_WAL_BYTES: u64 = 256 * 1024 * 1024;

/// What RocksDB's block cache and memtables hold together, for every column family: the
/// memtables are charged to the cache, so their memory and the cached blocks share one bound.
const ROCKSDB_MEMORY_BYTES: usize = 192 * 1024 * 1024;
/// The memtables' share of [`ROCKSDB_MEMORY_BYTES`]; past it RocksDB flushes the largest.
const MEMTABLE_BYTES: usize = 64 * 1024 * 1024;

/// The namespace every server has and that cannot be dropped.
pub const PUBLIC_NAMESPACE: &str = "public";

const APPLIED_SEQ_KEY: &[u8] = b"applied_seq";
/// The database's id (`Command::IdentifyDatabase`), as UTF-8.
const DATABASE_ID_KEY: &[u8] = b"database_id";

/// Residues of segment ids among a cluster's nodes: node ids that differ modulo this never
/// allocate the same segment id.
const SEGMENT_ID_STRIPES: u64 = 1024;

/// A cluster node's block of hidden row ids is 2^48 wide (see `Store::row_id_block`).
const ROW_ID_BLOCK_BITS: u32 = 48;

/// Durability knobs for RocksDB writes.
#[derive(Debug, Clone, Copy)]
pub struct Durability {
    pub sync_writes: bool,
    pub wal_enabled: bool,
}

/// A column family's options, and those of the table files a bulk load builds for one: bloom
/// filters, since point reads of rows, users and table definitions are the hot path, and one
/// block cache shared by every column family. Index and filter blocks stay beside the cache, as
/// RocksDB keeps them by default: about 1.5 MiB per million flushed rows (the cold-key index
/// holds a key per row). Moving them into the cache, partitioned, kept that flat but put cache
/// lookups on every point read: flushed point reads fell from 0.59x to 0.51x PostgreSQL's and
/// single-row INSERT from 1.06x to 0.96x in one run of each.
fn column_family_options(cache: Option<&rocksdb::Cache>) -> Options {
    let mut table_options = rocksdb::BlockBasedOptions::default();
    if let Some(cache) = cache {
        table_options.set_block_cache(cache);
    }
    table_options.set_bloom_filter(10.0, false);
    let mut options = Options::default();
    options.set_block_based_table_factory(&table_options);
    options
}

/// The opened data directory: RocksDB plus the file-based areas beside it.
pub struct Store {
    dir: DataDir,
    db: DB,
    write_options: WriteOptions,
    /// Serialises `apply` so sequence numbers are assigned in commit order.
    apply_lock: Mutex<u64>,
    /// Next hidden row id per table, handed out before the rows are committed.
    row_ids: Mutex<std::collections::HashMap<u64, u64>>,
    /// Sequence values reserved durably and not handed out yet (see `sequences`).
    sequence_ranges: Mutex<sequences::ReservedRanges>,
    /// Next segment id, handed out before the segment file is written.
    next_segment_id: std::sync::atomic::AtomicU64,
    streams_root: PathBuf,
    sync_writes: bool,
    /// Held while snapshot directories change or a backup point links them.
    snapshots_lock: Mutex<()>,
    /// Group commit: the highest sequence number whose write-ahead log bytes are fsynced.
    synced_seq: Mutex<u64>,
    /// The applied sequence number, readable without the apply lock: every batch up to it
    /// is in the write-ahead log (in RocksDB's log buffer or the file, maybe not fsynced).
    written_seq: std::sync::atomic::AtomicU64,
    /// Whether `apply` returns only once its batch is fsynced (sync_writes with the WAL on).
    wal_sync: bool,
    /// Bumped after every command that changes users, namespaces or tables, so callers can
    /// cache catalog records and know when to read them again.
    catalog_epoch: std::sync::atomic::AtomicU64,
    /// Footers and decoded blocks of segments, for point reads of flushed rows.
    segment_cache: segment_cache::SegmentCache,
    /// Fsyncs for commits that wait without a thread (`durable`), started by the first.
    wal_syncer: std::sync::OnceLock<wal_sync::WalSyncer>,
    raft_log_syncer: std::sync::OnceLock<raft_log::RaftLogSyncer>,
    /// The executor's evaluator of CHECK constraints (see `row_checks`).
    check_evaluator: std::sync::OnceLock<Arc<dyn CheckEvaluator>>,
    /// In cluster mode, this node's residue of segment ids (see `stripe_segment_ids`).
    segment_id_stripe: std::sync::OnceLock<u64>,
    /// In cluster mode, where commands go to be committed cluster-wide (see `replicator`).
    replicator: std::sync::OnceLock<Arc<dyn Replicator>>,
    /// Tables' indexes, foreign keys and layout generations for row writes (`write_shapes`).
    write_shapes: write_shapes::WriteShapes,
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
        // Every batch writes `meta` (the applied sequence number), whose memtable never fills,
        // so without a cap each WAL file would be kept until all column families flush.
        options.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
        // Durable commits reach the log file only when an fsync covers them (`sync_wal_through`
        // writes RocksDB's log buffer, then syncs): one write(2) per group commit instead of one
        // per commit made under the apply lock. Measured (8 clients, release build): single-row
        // INSERT 13,100 -> 13,800 tps, the 80/20 mixed workload 25,700 -> 26,900 tps. Without
        // fsync on commit each batch is still handed to the OS at once, so a crash of the
        // process alone loses nothing.
        options.set_manual_wal_flush(durability.sync_writes && durability.wal_enabled);
        // Compactions, like jobs (`jobs::background`), take the cores clients leave; memtable
        // flushes (the high-priority pool) keep normal priority so writes never wait on them.
        let mut env = rocksdb::Env::new()?;
        env.lower_thread_pool_cpu_priority();
        options.set_env(&env);
        let cache = rocksdb::Cache::new_lru_cache(ROCKSDB_MEMORY_BYTES);
        // Without a shared budget each of the eight column families may hold two 64 MiB
        // memtables: after loading and flushing a large table they stayed full, and the idle
        // server kept their memory.
        options.set_write_buffer_manager(
            &rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(
                MEMTABLE_BYTES,
                false,
                cache.clone(),
            ),
        );
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, column_family_options(Some(&cache))));
        let db = DB::open_cf_descriptors(&options, dir.rocksdb(), descriptors)?;
        // Batches are written unsynced under the apply lock and fsynced after it is released
        // (see `sync_wal_through`), so concurrent commits share one fsync.
        let mut write_options = WriteOptions::default();
        write_options.set_sync(false);
        write_options.disable_wal(!durability.wal_enabled);
        let applied = db
            .get_cf(cf(&db, CF_META), APPLIED_SEQ_KEY)?
            .map(|bytes| decode_u64(CF_META, &bytes))
            .transpose()?
            .unwrap_or(0);
        let streams_root = dir.streams();
        Ok(Store {
            dir,
            db,
            write_options,
            apply_lock: Mutex::new(applied),
            row_ids: Mutex::default(),
            sequence_ranges: Mutex::default(),
            next_segment_id: Default::default(),
            streams_root,
            sync_writes: durability.sync_writes,
            snapshots_lock: Mutex::new(()),
            synced_seq: Mutex::new(applied),
            written_seq: applied.into(),
            wal_sync: durability.sync_writes && durability.wal_enabled,
            catalog_epoch: Default::default(),
            segment_cache: Default::default(),
            wal_syncer: std::sync::OnceLock::new(),
            raft_log_syncer: std::sync::OnceLock::new(),
            check_evaluator: std::sync::OnceLock::new(),
            segment_id_stripe: std::sync::OnceLock::new(),
            replicator: std::sync::OnceLock::new(),
            write_shapes: Default::default(),
        })
        .and_then(|store| {
            // Before the sweep below: files an interrupted install moved in are orphans only
            // to the catalog it had not yet replaced.
            store.finish_interrupted_install()?;
            store.settle_files()?;
            Ok(store)
        })
    }

    pub fn dir(&self) -> &DataDir {
        &self.dir
    }

    /// Changes whenever a command changed users, namespaces or table definitions.
    pub fn catalog_epoch(&self) -> u64 {
        self.catalog_epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The id `Command::IdentifyDatabase` gave the database; `None` before it ran.
    pub fn database_id(&self) -> StorageResult<Option<String>> {
        Ok(self
            .db
            .get_cf(cf(&self.db, CF_META), DATABASE_ID_KEY)?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The sequence number of the last applied command (0 for a new store).
    pub fn applied_seq(&self) -> u64 {
        *self.apply_lock.lock().expect("apply lock poisoned")
    }

    /// Reserves `count` hidden row ids for a table without a declared key; returns the first.
    /// Ids are never reused, even when the rows are rolled back.
    /// In a cluster each node hands out ids of its own block (see `row_id_block`), so rows
    /// two nodes insert at once never share an id.
    pub fn allocate_row_ids(&self, table_id: u64, count: u64) -> StorageResult<u64> {
        let (low, high) = self.row_id_block();
        let mut row_ids = self.row_ids.lock().expect("row id lock");
        let next = match row_ids.get(&table_id) {
            Some(next) => *next,
            None => {
                let persisted = self
                    .db
                    .get_cf(cf(&self.db, CF_META), row_id_counter(table_id))?
                    .map(|b| decode_u64(CF_META, &b))
                    .transpose()?
                    .unwrap_or(0);
                let persisted = if (low..high).contains(&persisted) {
                    persisted
                } else {
                    low
                };
                let mut last_key = low;
                let mut options = rocksdb::ReadOptions::default();
                let upper = if high == u64::MAX {
                    rows::table_prefix(table_id + 1).to_vec()
                } else {
                    rows::row_id_key(table_id, high)
                };
                options.set_iterate_upper_bound(upper.clone());
                let mut iter = self.db.iterator_cf_opt(
                    cf(&self.db, CF_ROWS),
                    options,
                    rocksdb::IteratorMode::From(&upper, rocksdb::Direction::Reverse),
                );
                if let Some(item) = iter.next() {
                    let (key, _) = item?;
                    if key.starts_with(&rows::table_prefix(table_id)) && key.len() == 16 {
                        let id = u64::from_be_bytes(key[8..16].try_into().expect("16-byte key"));
                        last_key = last_key.max(id);
                    }
                }
                persisted.max(last_key) + 1
            }
        };
        row_ids.insert(table_id, next + count);
        Ok(next)
    }

    /// The hidden row ids this node hands out: all of them on a single node; in a cluster,
    /// node `n`'s block of 2^48 ids starting at `n << 48` (ids a single node handed out
    /// before stay below every node's block).
    fn row_id_block(&self) -> (u64, u64) {
        match self.segment_id_stripe.get() {
            Some(node) => (node << ROW_ID_BLOCK_BITS, (node + 1) << ROW_ID_BLOCK_BITS),
            None => (0, u64::MAX),
        }
    }

    /// Brings what lives beside the catalog in line with it: checks the file names it records,
    /// hands out segment ids past every published one, and deletes files it does not reference
    /// (at open, and after a snapshot replaced the catalog).
    fn settle_files(&self) -> StorageResult<()> {
        file_names::check_catalog(&self.db)?;
        let highest = self
            .all_segments()?
            .iter()
            .map(|s| s.segment_id)
            .max()
            .unwrap_or(0);
        self.next_segment_id
            .fetch_max(highest + 1, std::sync::atomic::Ordering::SeqCst);
        self.remove_orphan_segment_files()?;
        self.remove_orphan_stream_files()
    }

    pub fn allocate_segment_id(&self) -> u64 {
        let Some(stripe) = self.segment_id_stripe.get() else {
            return self
                .next_segment_id
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        };
        // Only ids of this node's stripe: two nodes flushing at once never pick the same id.
        loop {
            let id = self
                .next_segment_id
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if id % SEGMENT_ID_STRIPES == *stripe {
                return id;
            }
        }
    }

    /// In a cluster every node may flush, and its segments travel through the log to the
    /// others: node `node_id` then allocates only segment ids of its own residue, so ids, and
    /// the files they name, never collide between nodes. Only the first call counts.
    pub fn stripe_segment_ids(&self, node_id: u64) {
        let _ = self.segment_id_stripe.set(node_id % SEGMENT_ID_STRIPES);
    }

    /// Reads that all see the store as it is now, whatever is published meanwhile.
    pub fn view(&self) -> ReadView<'_> {
        ReadView::pinned(self)
    }

    /// Holds the apply lock, as a long command does, for tests of what must not wait for one.
    #[cfg(test)]
    pub(crate) fn hold_apply_lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.apply_lock.lock().expect("apply lock poisoned")
    }

    /// Reads that each see the store as it is when they are made: for a reader that looks at
    /// the hot row first and the cold index after, which no publish can fall between unseen.
    pub fn unpinned_view(&self) -> ReadView<'_> {
        ReadView::latest(self)
    }

    /// Compacts a table's range of hot rows and of its cold-row index, dropping the deletion
    /// markers a flush leaves. The bottommost level is rewritten too: files a compaction left
    /// there while a snapshot was held keep their sequence numbers and dropped versions, and
    /// RocksDB rewrites them later, once the snapshot is gone ("BottommostFiles"
    /// compactions), which an incremental backup then stores again although no row changed.
    pub fn compact_rows(&self, table_id: u64) -> StorageResult<()> {
        let start = rows::table_prefix(table_id);
        let end = rows::table_prefix(table_id.saturating_add(1));
        let mut options = rocksdb::CompactOptions::default();
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::ForceOptimized);
        for name in [CF_ROWS, CF_COLD_INDEX] {
            self.db.compact_range_cf_opt(
                cf(&self.db, name),
                Some(&start[..]),
                Some(&end[..]),
                &options,
            );
        }
        Ok(())
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

/// Deletes every file under `root` that is not in `referenced`: files a crash left between
/// being written and being published (or after their table was dropped).
fn remove_unreferenced_files(
    root: &Path,
    referenced: &std::collections::HashSet<PathBuf>,
    what: &str,
) -> StorageResult<()> {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io(format!("listing {}", dir.display()), e)),
        };
        for entry in entries {
            let path = entry
                .map_err(|e| StorageError::io(format!("listing {}", dir.display()), e))?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if !referenced.contains(&path) {
                tracing::info!(file = %path.display(), "removing unreferenced {what}");
                std::fs::remove_file(&path)
                    .map_err(|e| StorageError::io(format!("removing {}", path.display()), e))?;
            }
        }
    }
    Ok(())
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is opened with the database"))
}

fn decode_u64(cf: &'static str, bytes: &[u8]) -> StorageResult<u64> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StorageError::Corrupt {
        cf,
        message: "counter is not 8 bytes".into(),
    })?;
    Ok(u64::from_be_bytes(array))
}

fn row_id_counter(table_id: u64) -> Vec<u8> {
    format!("row_id/{table_id}").into_bytes()
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

    /// Versions a snapshot kept alive in the bottommost level are what RocksDB would rewrite
    /// later on its own; VACUUM (`compact_rows`) drops them now.
    #[test]
    fn compact_rows_rewrites_the_bottommost_level() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), durability()).unwrap();
        let rows_cf = cf(&store.db, CF_ROWS);
        // Only manual compactions, so nothing rewrites the files behind the test's back.
        store
            .db
            .set_options_cf(rows_cf, &[("disable_auto_compactions", "true")])
            .unwrap();
        let key = |i: u32| [&rows::table_prefix(7)[..], &i.to_be_bytes()[..]].concat();
        let put_all = |value: &[u8]| {
            for i in 0..1000 {
                store.db.put_cf(rows_cf, key(i), value).unwrap();
            }
            store.db.flush_cf(rows_cf).unwrap();
        };
        put_all(b"old");
        let snapshot = store.db.snapshot();
        put_all(b"new");
        // Compacted into the bottommost level while the snapshot needs the old versions.
        store
            .db
            .compact_range_cf(rows_cf, None::<&[u8]>, None::<&[u8]>);
        drop(snapshot);
        let entries = |store: &Store| -> u64 {
            store
                .db
                .live_files()
                .unwrap()
                .iter()
                .filter(|f| f.column_family_name == CF_ROWS)
                .map(|f| f.num_entries)
                .sum()
        };
        assert_eq!(entries(&store), 2000, "the snapshot kept both versions");
        store.compact_rows(7).unwrap();
        assert_eq!(entries(&store), 1000, "only the live versions are left");
    }

    #[test]
    fn applied_sequence_survives_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let user = UserRecord::new_for_test("alice", crate::model::Role::User);
        {
            let store = Store::open(tmp.path(), durability()).unwrap();
            assert_eq!(store.applied_seq(), 0);
            assert_eq!(store.apply(&Command::PutUser(user.clone())).unwrap().seq, 1);
            assert_eq!(store.apply(&Command::PutUser(user)).unwrap().seq, 2);
        }
        let store = Store::open(tmp.path(), durability()).unwrap();
        assert_eq!(store.applied_seq(), 2);
        assert_eq!(
            store.user("alice").unwrap().unwrap().role,
            crate::model::Role::User
        );
    }

    #[test]
    fn recorded_logins_skip_dropped_users_and_never_move_back() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), durability()).unwrap();
        let user = UserRecord::new_for_test("alice", crate::model::Role::User);
        store.apply(&Command::PutUser(user)).unwrap();
        let login = |logins: Vec<(&str, i64)>| -> Applied {
            store
                .apply(&Command::RecordLogins(
                    logins
                        .into_iter()
                        .map(|(u, at)| (u.to_owned(), at))
                        .collect(),
                ))
                .unwrap()
        };
        login(vec![("alice", 2_000), ("gone", 5)]);
        assert_eq!(
            store.user("alice").unwrap().unwrap().last_login_at,
            Some(2_000)
        );
        assert!(store.user("gone").unwrap().is_none());
        // A write that lost a race with a later one does not set the time back.
        login(vec![("alice", 1_000)]);
        assert_eq!(
            store.user("alice").unwrap().unwrap().last_login_at,
            Some(2_000)
        );
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = Store::open(tmp.path(), durability()).unwrap();
        let err = Store::open(tmp.path(), durability()).err().unwrap();
        assert!(matches!(err, StorageError::Locked(..)), "{err}");
    }

    /// A store holding one hot row of table 7: its key and the write that put it there.
    fn store_with_one_hot_row(dir: &Path) -> (Store, Vec<u8>, Applied) {
        let store = Store::open(dir, durability()).unwrap();
        let key = rows::row_id_key(7, 1);
        let written = store
            .apply(&Command::WriteRows {
                table_id: 7,
                writes: vec![RowWrite {
                    key: key.clone(),
                    value: Some(vec![1, 0]),
                    expect: Expect::Absent,
                    moved_to: None,
                }],
                row_id_high_water: Some(1),
                layout_generation: 0,
            })
            .unwrap();
        (store, key, written)
    }

    fn one_row_segment(segment_id: u64) -> SegmentRecord {
        SegmentRecord {
            segment_id,
            table_id: 7,
            file: format!("s{segment_id}.parquet"),
            rows: 1,
            bytes: 0,
            columns: 1,
            created_at: 0,
            column_ids: vec![0],
            column_names: Vec::new(),
        }
    }

    #[test]
    fn a_view_taken_before_a_flush_publishes_sees_the_row_hot_and_not_the_new_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, key, written) = store_with_one_hot_row(tmp.path());
        let before = store.view();
        store
            .apply(&Command::FlushSegment {
                segment: one_row_segment(1),
                rows: [(&key, written.seq, false)].into_iter().collect(),
            })
            .unwrap();
        // The earlier view: the row is still hot and no segment exists, so a reader that lists
        // segments and then looks for the row finds it one way or the other.
        assert!(before.row(&key).unwrap().is_some());
        assert!(before.segments(7).unwrap().is_empty());
        assert!(before.cold_entry(&key).unwrap().is_none());
        let after = store.view();
        assert!(after.row(&key).unwrap().is_none());
        assert_eq!(after.segments(7).unwrap().len(), 1);
        assert!(after.cold_entry(&key).unwrap().is_some());
    }

    #[test]
    fn a_command_reading_the_cold_index_after_publishing_a_flush_fails_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, key, written) = store_with_one_hot_row(tmp.path());
        // The publish writes its cold-index entries unremembered; the write after it in the
        // same command must look the key up there, and would miss the entry.
        let err = store
            .apply(&Command::Batch(vec![
                Command::FlushSegment {
                    segment: one_row_segment(1),
                    rows: [(&key, written.seq, false)].into_iter().collect(),
                },
                Command::WriteRows {
                    table_id: 7,
                    writes: vec![RowWrite {
                        key: key.clone(),
                        value: Some(vec![1, 5]),
                        expect: Expect::Absent,
                        moved_to: None,
                    }],
                    row_id_high_water: None,
                    layout_generation: 0,
                },
            ]))
            .unwrap_err();
        assert!(
            matches!(err, StorageError::ReadAfterUnrememberedWrite(CF_COLD_INDEX)),
            "{err}"
        );
        assert!(store.view().row(&key).unwrap().is_some());
        assert!(store.cold_entry(&key).unwrap().is_none());
        assert!(store.unpinned_view().segments(7).unwrap().is_empty());
    }

    #[test]
    fn a_second_flush_of_the_same_rows_is_not_published() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, key, written) = store_with_one_hot_row(tmp.path());
        // Both flushes read the same hot version before either published.
        let applied: Vec<Applied> = [1, 2]
            .into_iter()
            .map(|id| {
                store
                    .apply(&Command::FlushSegment {
                        segment: one_row_segment(id),
                        rows: [(&key, written.seq, false)].into_iter().collect(),
                    })
                    .unwrap()
            })
            .collect();
        assert!(applied[0].unpublished_segments.is_empty());
        assert_eq!(applied[1].unpublished_segments, vec![2]);
        assert_eq!(
            store.cold_entry(&key).unwrap(),
            Some(ColdEntry {
                segment_id: 1,
                version: written.seq,
                row: Some(0)
            })
        );
        let view = store.unpinned_view();
        assert_eq!(view.segments(7).unwrap().len(), 1);
        assert!(view.dead_keys(1).unwrap().is_empty());
        assert_eq!(store.live_version(&key).unwrap(), Some(written.seq));
    }

    #[test]
    fn a_flush_whose_rows_were_all_deleted_meanwhile_is_not_published() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, key, written) = store_with_one_hot_row(tmp.path());
        // What TRUNCATE or DROP TABLE does to the row between the flush's read and its publish.
        store
            .apply(&Command::WriteRows {
                table_id: 7,
                writes: vec![RowWrite {
                    key: key.clone(),
                    value: None,
                    expect: Expect::Anything,
                    moved_to: None,
                }],
                row_id_high_water: None,
                layout_generation: 0,
            })
            .unwrap();
        let applied = store
            .apply(&Command::FlushSegment {
                segment: one_row_segment(1),
                rows: [(&key, written.seq, false)].into_iter().collect(),
            })
            .unwrap();
        assert_eq!(applied.unpublished_segments, vec![1]);
        let view = store.unpinned_view();
        assert!(view.segments(7).unwrap().is_empty());
        assert!(view.dead_keys(1).unwrap().is_empty());
        assert!(store.cold_entry(&key).unwrap().is_none());
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
