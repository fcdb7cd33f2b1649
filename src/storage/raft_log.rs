//! The Raft log of cluster mode and this node's own Raft state (its vote, the committed and the
//! purged positions), kept in the `raft_log` column family: entries are opaque bytes keyed by
//! log index; votes and truncations are durable before they return, appends once the log's
//! syncer thread has fsynced them, and the committed position with the next fsync. What the
//! bytes mean belongs to `cluster`; a single-node server never writes here. The column
//! family is node-local: a snapshot installed from another node replaces every other one.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};

use rocksdb::WriteBatch;

use super::{CF_RAFT_LOG, StorageError, StorageResult, Store, cf};

/// What runs once an append is durable (or its fsync failed).
type OnDurable = Box<dyn FnOnce(StorageResult<()>) + Send>;

/// The thread that makes appended entries durable: it fsyncs the write-ahead log whenever
/// appends wait, each fsync covering every append written before it began, and then tells
/// their callers in the order they appended.
#[derive(Debug)]
pub(super) struct RaftLogSyncer {
    waiting: Mutex<Sender<OnDurable>>,
}

impl RaftLogSyncer {
    fn start(store: Weak<Store>) -> StorageResult<RaftLogSyncer> {
        let (waiting, appends) = std::sync::mpsc::channel::<OnDurable>();
        std::thread::Builder::new()
            .name("kalamdb-raft-sync".into())
            .spawn(move || sync_appends(&appends, &store))
            .map_err(|e| StorageError::io("starting the Raft log syncer", e))?;
        Ok(RaftLogSyncer {
            waiting: Mutex::new(waiting),
        })
    }

    fn after_next_fsync(&self, on_durable: OnDurable) {
        let waiting = self.waiting.lock().expect("raft log syncer");
        if let Err(returned) = waiting.send(on_durable) {
            // The thread is gone only if fsyncing panicked; the append is not known durable.
            (returned.0)(Err(StorageError::io(
                "fsync of the Raft log",
                std::io::Error::other("the Raft log syncer stopped"),
            )));
        }
    }
}

/// The syncer's loop; it ends when its store (which holds the sending end) is dropped.
fn sync_appends(appends: &Receiver<OnDurable>, store: &Weak<Store>) {
    while let Ok(first) = appends.recv() {
        // Every append queued by now was written before this fsync begins.
        let mut covered = vec![first];
        covered.extend(appends.try_iter());
        let synced = match store.upgrade() {
            Some(store) => store.db.flush_wal(true).map_err(StorageError::from),
            None => Err(StorageError::io(
                "fsync of the Raft log",
                std::io::Error::other("the store was closed"),
            )),
        };
        for on_durable in covered {
            on_durable(match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(StorageError::io(
                    "fsync of the Raft log",
                    std::io::Error::other(e.to_string()),
                )),
            });
        }
    }
}

/// Entries sort by index under this prefix; node state keys sort after them under their own.
const ENTRY_PREFIX: u8 = b'e';
const STATE_PREFIX: u8 = b's';

fn entry_key(index: u64) -> [u8; 9] {
    let mut key = [ENTRY_PREFIX; 9];
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn state_key(name: &str) -> Vec<u8> {
    let mut key = vec![STATE_PREFIX];
    key.extend_from_slice(name.as_bytes());
    key
}

/// The key past every entry.
fn entries_end() -> [u8; 1] {
    [ENTRY_PREFIX + 1]
}

impl Store {
    /// Writes a Raft batch synced through the write-ahead log, whatever the server's own
    /// durability settings: a vote or entry acknowledged and then lost in a crash would let
    /// this node vote twice in a term or forget an entry a majority counted on.
    fn write_raft_batch(&self, batch: WriteBatch) -> StorageResult<()> {
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// Appends log entries `(index, encoded entry)` in one batch, replacing any entry already
    /// at one of those indexes, and returns once they are written (readable) but before they
    /// are durable: `on_durable` is called, on the Raft log's syncer thread, once an fsync that
    /// covers them has returned (or failed). Appends that arrive while one fsync runs share the
    /// next. (openraft 0.9 waits for each append's report before it appends again, so today
    /// each fsync covers one append; concurrent writes share an entry instead, see
    /// `cluster::proposer`.)
    pub fn append_raft_entries(
        self: &Arc<Self>,
        entries: impl IntoIterator<Item = (u64, Vec<u8>)>,
        on_durable: impl FnOnce(StorageResult<()>) + Send + 'static,
    ) -> StorageResult<()> {
        let log = cf(&self.db, CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        for (index, bytes) in entries {
            batch.put_cf(log, entry_key(index), bytes);
        }
        // The write-ahead log is on whatever the server's own settings say: the syncer's
        // fsync of it is what makes the entries durable.
        self.db
            .write_opt(batch, &rocksdb::WriteOptions::default())?;
        self.raft_log_syncer()?
            .after_next_fsync(Box::new(on_durable));
        Ok(())
    }

    fn raft_log_syncer(self: &Arc<Self>) -> StorageResult<&RaftLogSyncer> {
        if let Some(syncer) = self.raft_log_syncer.get() {
            return Ok(syncer);
        }
        let started = RaftLogSyncer::start(Arc::downgrade(self))?;
        Ok(self.raft_log_syncer.get_or_init(|| started))
    }

    /// The entries with indexes in `from..until`, in order; a purged or missing index is
    /// simply absent.
    pub fn raft_entries(&self, from: u64, until: u64) -> StorageResult<Vec<(u64, Vec<u8>)>> {
        let mut entries = Vec::new();
        if from >= until {
            return Ok(entries);
        }
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_upper_bound(entry_key(until).to_vec());
        let start = entry_key(from);
        let iter = self.db.iterator_cf_opt(
            cf(&self.db, CF_RAFT_LOG),
            options,
            rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            entries.push((decode_entry_index(&key)?, value.into_vec()));
        }
        Ok(entries)
    }

    /// The entry with the highest index, if the log holds any.
    pub fn last_raft_entry(&self) -> StorageResult<Option<(u64, Vec<u8>)>> {
        let end = entries_end();
        let mut iter = self.db.iterator_cf(
            cf(&self.db, CF_RAFT_LOG),
            rocksdb::IteratorMode::From(&end, rocksdb::Direction::Reverse),
        );
        match iter.next() {
            Some(item) => {
                let (key, value) = item?;
                if key.first() == Some(&ENTRY_PREFIX) {
                    Ok(Some((decode_entry_index(&key)?, value.into_vec())))
                } else {
                    Ok(None)
                }
            }
            None => Ok(None),
        }
    }

    /// Deletes the entries at `from` and after: a new leader's log replaces them.
    pub fn truncate_raft_log(&self, from: u64) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf(&self.db, CF_RAFT_LOG),
            &entry_key(from)[..],
            &entries_end()[..],
        );
        self.write_raft_batch(batch)
    }

    /// Deletes the entries up to and including `through`, recording `purged` (the encoded id
    /// of that last purged entry) under `state_name` in the same batch, so the log's start is
    /// known after a restart even when the log is empty.
    pub fn purge_raft_log(
        &self,
        through: u64,
        state_name: &str,
        purged: Vec<u8>,
    ) -> StorageResult<()> {
        let log = cf(&self.db, CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        batch.put_cf(log, state_key(state_name), purged);
        batch.delete_range_cf(log, entry_key(0), entry_key(through.saturating_add(1)));
        if through == u64::MAX {
            batch.delete_cf(log, entry_key(u64::MAX));
        }
        self.write_raft_batch(batch)
    }

    /// Records one of this node's Raft values (its vote, the purged position), durably.
    pub fn put_raft_state(&self, name: &str, value: Vec<u8>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT_LOG), state_key(name), value);
        self.write_raft_batch(batch)
    }

    /// Records a Raft value that a crash may lose without harm (the committed position, which
    /// only spares a restarted node waiting for its leader to say it again): written with the
    /// next fsync of the write-ahead log, not one of its own.
    pub fn put_raft_state_buffered(&self, name: &str, value: Vec<u8>) -> StorageResult<()> {
        self.db.put_cf_opt(
            cf(&self.db, CF_RAFT_LOG),
            state_key(name),
            value,
            &rocksdb::WriteOptions::default(),
        )?;
        Ok(())
    }

    pub fn raft_state(&self, name: &str) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(cf(&self.db, CF_RAFT_LOG), state_key(name))?)
    }
}

fn decode_entry_index(key: &[u8]) -> StorageResult<u64> {
    key.get(1..9)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| super::StorageError::Corrupt {
            cf: CF_RAFT_LOG,
            message: format!("log key of {} bytes", key.len()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Durability;

    fn store(dir: &std::path::Path) -> Arc<Store> {
        let durability = Durability {
            sync_writes: false,
            wal_enabled: true,
        };
        Arc::new(Store::open(dir, durability).unwrap())
    }

    /// Appends `entries` and waits (bounded) until the syncer reports them durable.
    fn append_durably(store: &Arc<Store>, entries: impl IntoIterator<Item = (u64, Vec<u8>)>) {
        let (durable, reported) = std::sync::mpsc::channel();
        store
            .append_raft_entries(entries, move |result| durable.send(result).unwrap())
            .unwrap();
        reported
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the append was reported")
            .expect("the append's fsync succeeded");
    }

    fn indexes(entries: &[(u64, Vec<u8>)]) -> Vec<u64> {
        entries.iter().map(|(index, _)| *index).collect()
    }

    #[test]
    fn entries_read_back_in_index_order_across_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = store(tmp.path());
            assert_eq!(store.last_raft_entry().unwrap(), None);
            append_durably(&store, (1..=300).map(|i| (i, i.to_string().into_bytes())));
            store.put_raft_state("vote", b"v1".to_vec()).unwrap();
        }
        let store = store(tmp.path());
        assert_eq!(
            indexes(&store.raft_entries(255, 258).unwrap()),
            [255, 256, 257]
        );
        assert_eq!(
            store.last_raft_entry().unwrap(),
            Some((300, b"300".to_vec()))
        );
        assert_eq!(store.raft_state("vote").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(store.raft_state("committed").unwrap(), None);
    }

    #[test]
    fn truncate_drops_the_tail_and_purge_the_head() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store(tmp.path());
        append_durably(&store, (1..=10).map(|i| (i, vec![i as u8])));
        store.truncate_raft_log(8).unwrap();
        assert_eq!(store.last_raft_entry().unwrap(), Some((7, vec![7])));
        store.purge_raft_log(3, "purged", b"3".to_vec()).unwrap();
        assert_eq!(indexes(&store.raft_entries(0, 100).unwrap()), [4, 5, 6, 7]);
        assert_eq!(store.raft_state("purged").unwrap(), Some(b"3".to_vec()));
        store.purge_raft_log(7, "purged", b"7".to_vec()).unwrap();
        assert_eq!(store.last_raft_entry().unwrap(), None);
    }

    #[test]
    fn appends_are_reported_durable_in_the_order_they_were_made() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store(tmp.path());
        let (durable, reported) = std::sync::mpsc::channel();
        for index in 1..=200u64 {
            let durable = durable.clone();
            store
                .append_raft_entries([(index, vec![1])], move |result| {
                    durable.send((index, result.is_ok())).unwrap()
                })
                .unwrap();
        }
        let order: Vec<(u64, bool)> = (0..200)
            .map(|_| {
                reported
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .expect("every append is reported")
            })
            .collect();
        assert_eq!(order, (1..=200).map(|i| (i, true)).collect::<Vec<_>>());
        assert_eq!(store.last_raft_entry().unwrap(), Some((200, vec![1])));
    }
}
