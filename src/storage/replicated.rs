//! The store as cluster mode's replicated state machine: a command applied at a Raft log index
//! (the index becomes the applied sequence number, which backups already capture), the
//! machine's own record of what it applied, kept in the same batch as the command, and the
//! whole replicated state replaced by a snapshot's.
//!
//! Replication needs every node to reach the same state from the same entries, so a command
//! whose precondition fails is refused deterministically and its entry still counts as
//! applied. A flush's segment, a file only the proposing node wrote, travels shipped with the
//! command, and every node puts the same bytes in place before applying it: segment files are
//! identical on every node, so snapshots and backups taken anywhere agree. A bulk load cannot
//! be replicated yet.

use std::path::{Path, PathBuf};

use rocksdb::{DB, Options, WriteBatch};

use super::{
    APPLIED_SEQ_KEY, Applied, CF_JOBS, CF_META, CF_RAFT_LOG, COLUMN_FAMILIES, Command, Conflict,
    StorageError, StorageResult, Store, cf, decode_u64, file_names,
};

/// The state machine's record of its last applied entry and membership, in `meta`.
pub(super) const MACHINE_STATE_KEY: &[u8] = b"raft_machine";

/// The applied sequence number a store already had when it became a cluster's first node
/// (a single node's data, a restored archive): log index `i` is applied as sequence number
/// `base + i`, so sequence numbers keep rising across the change. Absent (0) for a store that
/// started replicated; a snapshot carries it to the nodes it seeds.
const REPLICATION_BASE_KEY: &[u8] = b"raft_base";

/// Column families that stay the node's own when a snapshot replaces the rest: its Raft log
/// and state, and its jobs (each node runs and lists its own).
const NODE_LOCAL_FAMILIES: [&str; 2] = [CF_RAFT_LOG, CF_JOBS];

/// Written before a snapshot's state replaces the store's and removed after: naming the staged
/// directory, it lets the next open finish an install a crash interrupted.
const INSTALL_MARKER: &str = "installing";

/// Keys of the replicated column families sort below this (catalog keys are text, row keys
/// start with a table id far below 2^63, counters are text).
const KEYS_END: [u8; 16] = [0xff; 16];

impl Store {
    /// Applies log entry `index` as sequence number `base + index` (above the applied one; see
    /// [`REPLICATION_BASE_KEY`]): its command, if it has one (blank and membership entries have
    /// none), with `machine_state` recorded in the same batch. `Ok(Err(conflict))` is a refused
    /// command: the entry is recorded as applied all the same. `Err` means the store itself
    /// failed, and the node must stop applying.
    pub fn apply_replicated(
        &self,
        index: u64,
        command: Option<&Command>,
        machine_state: &[u8],
    ) -> StorageResult<Result<Applied, Conflict>> {
        let ranges = command
            .is_some_and(Command::restarts_sequences)
            .then(|| self.sequence_ranges.lock().expect("sequence ranges lock"));
        let applied = self.apply_lock.lock().expect("apply lock poisoned");
        let (base, starts_log) = self.replication_base(*applied)?;
        let seq = base.saturating_add(index);
        // Raft's first entry has index 0: it is applied as the sequence number the store
        // already has (0 for a new store).
        let first = starts_log && index == 0;
        if seq < *applied || (seq == *applied && !first) {
            return Err(StorageError::Corrupt {
                cf: CF_META,
                message: format!(
                    "log entry {index} (sequence number {seq}) applied after sequence number {}",
                    *applied
                ),
            });
        }
        let Some(command) = command else {
            let new_base = starts_log.then_some(base);
            return self
                .record_replicated(seq, machine_state, new_base, applied)
                .map(|()| Ok(Applied::at(seq)));
        };
        if starts_log && base > 0 {
            // Recorded before the command's batch: should that batch be lost, the entry is
            // applied again at the same sequence number.
            self.db.put_cf(
                cf(&self.db, CF_META),
                REPLICATION_BASE_KEY,
                base.to_be_bytes(),
            )?;
        }
        let materialized;
        let command = match command {
            Command::Shipped { file, command } => {
                materialized = self.put_shipped_file(file, command)?;
                &materialized
            }
            unshipped => match unshipped.local_file() {
                Some(kind) => return Err(StorageError::NotReplicable(kind)),
                None => unshipped,
            },
        };
        // A failed command writes nothing, so the guard comes back for the bare record.
        match self.apply_locked(command, seq, Some(machine_state), applied, ranges) {
            Ok(outcome) => Ok(Ok(outcome)),
            Err(StorageError::Conflict(conflict)) => {
                let applied = self.apply_lock.lock().expect("apply lock poisoned");
                self.record_replicated(seq, machine_state, None, applied)?;
                Ok(Err(conflict))
            }
            Err(other) => Err(other),
        }
    }

    /// This store's replication base (see [`REPLICATION_BASE_KEY`]) and whether the log
    /// starts here: a store that has applied no entry yet starts it above the sequence number
    /// `applied` it already has.
    fn replication_base(&self, applied: u64) -> StorageResult<(u64, bool)> {
        let meta = cf(&self.db, CF_META);
        if let Some(bytes) = self.db.get_cf(meta, REPLICATION_BASE_KEY)? {
            return Ok((decode_u64(CF_META, &bytes)?, false));
        }
        if self.db.get_cf(meta, MACHINE_STATE_KEY)?.is_some() {
            return Ok((0, false));
        }
        Ok((applied, true))
    }

    /// Whether this store holds data that no Raft log has: a single node's, or a restored
    /// archive's. Such a store can start a cluster only alone (see `node`).
    pub fn holds_unreplicated_history(&self) -> StorageResult<bool> {
        Ok(self.applied_seq() > 0 && self.replicated_machine_state()?.is_none())
    }

    /// The sequence number this store had when its Raft log started (0 when it started
    /// empty); nodes seeded from it by a snapshot have it too.
    pub fn replication_base_seq(&self) -> StorageResult<u64> {
        self.db
            .get_cf(cf(&self.db, CF_META), REPLICATION_BASE_KEY)?
            .map_or(Ok(0), |bytes| decode_u64(CF_META, &bytes))
    }

    /// Puts a shipped file where this node's copy of `command` reads it and returns that
    /// command: a segment at its path in `storage/` (the proposing node already has it, byte
    /// for byte). A bulk load is not shipped yet: its checks read the sorted runs it was built
    /// from, which only the loading node has.
    fn put_shipped_file(&self, bytes: &[u8], command: &Command) -> StorageResult<Command> {
        let place = |path: &Path| -> StorageResult<()> {
            if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
                return Ok(());
            }
            let io = |e| StorageError::io(format!("writing shipped file {}", path.display()), e);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            crate::durable::write_file(path, bytes, None).map_err(io)
        };
        match command {
            Command::FlushSegment { segment, .. } => {
                if let Some(why) = file_names::refusal(&segment.file) {
                    return Err(StorageError::Corrupt {
                        cf: CF_META,
                        message: format!("shipped segment {:?}: {why}", segment.file),
                    });
                }
                place(&self.segment_path(segment))?;
                // Ids this node hands out next stay clear of the one the log just used.
                self.next_segment_id.fetch_max(
                    segment.segment_id.saturating_add(1),
                    std::sync::atomic::Ordering::SeqCst,
                );
                Ok(command.clone())
            }
            other => Err(StorageError::NotReplicable(
                other.local_file().unwrap_or("file of a nested command"),
            )),
        }
    }

    /// The command as the replicated log must carry it: a flushed segment is shipped with its
    /// file's bytes; a command naming another local file cannot be replicated.
    pub fn ship(&self, command: Command) -> StorageResult<Command> {
        let path = match &command {
            Command::FlushSegment { segment, .. } => self.segment_path(segment),
            other => match other.local_file() {
                Some(kind) => return Err(StorageError::NotReplicable(kind)),
                None => return Ok(command),
            },
        };
        let bytes = std::fs::read(&path)
            .map_err(|e| StorageError::io(format!("reading {} to ship it", path.display()), e))?;
        Ok(Command::Shipped {
            file: serde_bytes::ByteBuf::from(bytes),
            command: Box::new(command),
        })
    }

    /// Records an entry without a command (or a refused one) as applied at `seq`, with the
    /// replication base when this entry starts the log.
    fn record_replicated(
        &self,
        seq: u64,
        machine_state: &[u8],
        new_base: Option<u64>,
        mut applied: std::sync::MutexGuard<'_, u64>,
    ) -> StorageResult<()> {
        let meta = cf(&self.db, CF_META);
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, APPLIED_SEQ_KEY, seq.to_be_bytes());
        batch.put_cf(meta, MACHINE_STATE_KEY, machine_state);
        if let Some(base) = new_base.filter(|base| *base > 0) {
            batch.put_cf(meta, REPLICATION_BASE_KEY, base.to_be_bytes());
        }
        self.db.write_opt(batch, &self.write_options)?;
        self.record_written(&mut applied, seq);
        Ok(())
    }

    /// What the state machine recorded with its last applied entry; `None` before any.
    pub fn replicated_machine_state(&self) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(cf(&self.db, CF_META), MACHINE_STATE_KEY)?)
    }

    /// Where snapshots of the replicated state are kept and staged.
    pub fn raft_snapshot_dir(&self) -> PathBuf {
        self.dir.snapshots().join("raft")
    }

    /// What the state machine recorded in the checkpoint at `checkpoint` (a staged snapshot's
    /// `rocksdb/`), read without opening it for writing.
    pub fn replicated_machine_state_at(checkpoint: &Path) -> StorageResult<Option<Vec<u8>>> {
        let db = DB::open_cf_for_read_only(&Options::default(), checkpoint, [CF_META], false)?;
        Ok(db.get_cf(cf(&db, CF_META), MACHINE_STATE_KEY)?)
    }

    /// Replaces the replicated state with the one staged in `staged` (a capture's layout:
    /// `rocksdb/` a checkpoint, `storage/` and `streams/` its files), which must be on the
    /// data directory's file system. The staged catalog is checked before anything changes.
    /// Reads that run meanwhile may see part of either state: a node installing a snapshot is
    /// behind its leader and must not serve reads until it is done. A crash part way is
    /// finished by the next [`Store::open`]. Returns the new applied sequence number.
    pub fn install_replicated_state(&self, staged: &Path) -> StorageResult<u64> {
        let io = |what: String| move |e| StorageError::io(what, e);
        let snapshots = self.raft_snapshot_dir();
        let marker = snapshots.join(INSTALL_MARKER);
        let name = staged
            .strip_prefix(&snapshots)
            .map_err(|_| StorageError::Corrupt {
                cf: CF_META,
                message: format!("{} is not a staged snapshot", staged.display()),
            })?;
        file_names::verify_catalog_at(&staged.join("rocksdb"))?;
        // The marker promises a complete staged copy to the next start.
        crate::durable::sync_filesystem(staged)
            .map_err(io(format!("syncing {}", staged.display())))?;
        crate::durable::write_file(&marker, name.to_string_lossy().as_bytes(), None)
            .map_err(io(format!("writing {}", marker.display())))?;
        let applied = self.replace_replicated_state(staged)?;
        std::fs::remove_file(&marker).map_err(io(format!("removing {}", marker.display())))?;
        crate::durable::fsync_dir(&snapshots)
            .map_err(io(format!("syncing {}", snapshots.display())))?;
        std::fs::remove_dir_all(staged).map_err(io(format!("removing {}", staged.display())))?;
        Ok(applied)
    }

    /// Finishes an install a crash interrupted (see [`Self::install_replicated_state`]).
    pub(super) fn finish_interrupted_install(&self) -> StorageResult<()> {
        let marker = self.raft_snapshot_dir().join(INSTALL_MARKER);
        let name = match std::fs::read_to_string(&marker) {
            Ok(name) => name,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StorageError::io(format!("reading {}", marker.display()), e)),
        };
        let staged = self.raft_snapshot_dir().join(name.trim());
        if !staged.is_dir() {
            // Only an outside hand removes a staged copy while its marker stands.
            tracing::error!(staged = %staged.display(), "a snapshot install's staged copy is gone; its marker is dropped");
            return std::fs::remove_file(&marker)
                .map_err(|e| StorageError::io(format!("removing {}", marker.display()), e));
        }
        tracing::warn!(staged = %staged.display(), "finishing a snapshot install a crash interrupted");
        self.install_replicated_state(&staged).map(|_| ())
    }

    fn replace_replicated_state(&self, staged: &Path) -> StorageResult<u64> {
        let replaced: Vec<&str> = COLUMN_FAMILIES
            .into_iter()
            .filter(|name| !NODE_LOCAL_FAMILIES.contains(name))
            .collect();
        // Table files are written first, outside the locks: RocksDB ingests them as they are.
        let tables = write_table_files(&staged.join("rocksdb"), &replaced, staged)?;
        let _snapshots = self.snapshots_lock.lock().expect("snapshots lock");
        let mut ranges = self.sequence_ranges.lock().expect("sequence ranges lock");
        let mut applied = self.apply_lock.lock().expect("apply lock poisoned");
        move_files_in(&staged.join("storage"), &self.dir.storage())?;
        move_files_in(&staged.join("streams"), &self.streams_root)?;
        let mut ingest = rocksdb::IngestExternalFileOptions::default();
        ingest.set_move_files(true);
        // Synced through the log even when the server runs without one: an ingest is durable
        // at once, and the deletions under it must be too.
        let mut synced = rocksdb::WriteOptions::default();
        synced.set_sync(true);
        for (name, table) in &tables {
            let family = cf(&self.db, name);
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(family, &[][..], &KEYS_END[..]);
            self.db.write_opt(batch, &synced)?;
            if let Some(table) = table {
                self.db
                    .ingest_external_file_cf_opts(family, &ingest, vec![table])?;
            }
        }
        let new_applied = self
            .db
            .get_cf(cf(&self.db, CF_META), APPLIED_SEQ_KEY)?
            .map(|bytes| decode_u64(CF_META, &bytes))
            .transpose()?
            .unwrap_or(0);
        self.record_written(&mut applied, new_applied);
        // Nothing kept from the old state may answer for the new one: segment ids and table
        // ids can name other things now.
        *ranges = Default::default();
        self.row_ids.lock().expect("row id lock").clear();
        self.write_shapes.forget_all();
        self.segment_cache.forget_all();
        self.catalog_epoch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        drop(applied);
        drop(ranges);
        // After the apply lock: group commit takes the sync lock first, then the apply lock.
        {
            let mut synced = self.synced_seq.lock().expect("sync lock poisoned");
            *synced = (*synced).max(new_applied);
        }
        self.settle_files()?;
        Ok(new_applied)
    }
}

/// Writes each column family of the checkpoint in `checkpoint` to one table file in `dir`
/// (`None` for an empty one), for RocksDB to ingest.
fn write_table_files<'a>(
    checkpoint: &Path,
    families: &[&'a str],
    dir: &Path,
) -> StorageResult<Vec<(&'a str, Option<PathBuf>)>> {
    let present = DB::list_cf(&Options::default(), checkpoint)?;
    let opened = families
        .iter()
        .filter(|name| present.iter().any(|p| p == *name));
    let source = DB::open_cf_for_read_only(&Options::default(), checkpoint, opened, false)?;
    let mut tables = Vec::new();
    for name in families {
        let Some(family) = source.cf_handle(name) else {
            tables.push((*name, None));
            continue;
        };
        let path = dir.join(format!("{name}.sst"));
        // After a crash mid-install this name may be a hard link to a table file RocksDB
        // ingested; writing through it would rewrite that file.
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StorageError::io(format!("removing {}", path.display()), e));
            }
            _ => {}
        }
        let options = super::column_family_options(None);
        let mut writer = rocksdb::SstFileWriter::create(&options);
        writer.open(&path)?;
        let mut written = 0u64;
        for item in source.iterator_cf(family, rocksdb::IteratorMode::Start) {
            let (key, value) = item?;
            writer.put(key, value)?;
            written += 1;
        }
        if written == 0 {
            tables.push((*name, None));
        } else {
            writer.finish()?;
            tables.push((*name, Some(path)));
        }
    }
    Ok(tables)
}

/// Moves every file under `from` to the same relative path under `to`, replacing a file of the
/// same name (a reader that has it open keeps reading the old one).
fn move_files_in(from: &Path, to: &Path) -> StorageResult<()> {
    let io = |what: String| move |e| StorageError::io(what, e);
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = from.join(&relative);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io(format!("listing {}", dir.display()), e)),
        };
        std::fs::create_dir_all(to.join(&relative))
            .map_err(io(format!("creating {}", to.join(&relative).display())))?;
        for entry in entries {
            let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
            let inner = relative.join(entry.file_name());
            let kind = entry
                .file_type()
                .map_err(io(format!("reading {}", entry.path().display())))?;
            if kind.is_dir() {
                pending.push(inner);
            } else if kind.is_file() {
                std::fs::rename(entry.path(), to.join(&inner))
                    .map_err(io(format!("moving {}", entry.path().display())))?;
            } else {
                return Err(StorageError::Corrupt {
                    cf: CF_META,
                    message: format!("{} in a snapshot is not a file", entry.path().display()),
                });
            }
        }
    }
    Ok(())
}
