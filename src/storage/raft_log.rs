//! The Raft log of cluster mode and this node's own Raft state (its vote, the committed and the
//! purged positions), kept in the `raft_log` column family: entries are opaque bytes keyed by
//! log index, and every write here is durable before it returns when writes are synced. What
//! the bytes mean belongs to `cluster`; a single-node server never writes here. The column
//! family is node-local: a snapshot installed from another node replaces every other one.

use rocksdb::WriteBatch;

use super::{CF_RAFT_LOG, StorageResult, Store, cf};

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
    /// at one of those indexes.
    pub fn append_raft_entries(
        &self,
        entries: impl IntoIterator<Item = (u64, Vec<u8>)>,
    ) -> StorageResult<()> {
        let log = cf(&self.db, CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        for (index, bytes) in entries {
            batch.put_cf(log, entry_key(index), bytes);
        }
        self.write_raft_batch(batch)
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

    /// Records one of this node's Raft values (its vote, the committed position).
    pub fn put_raft_state(&self, name: &str, value: Vec<u8>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT_LOG), state_key(name), value);
        self.write_raft_batch(batch)
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

    fn store(dir: &std::path::Path) -> Store {
        let durability = Durability {
            sync_writes: false,
            wal_enabled: true,
        };
        Store::open(dir, durability).unwrap()
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
            store
                .append_raft_entries((1..=300).map(|i| (i, i.to_string().into_bytes())))
                .unwrap();
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
        store
            .append_raft_entries((1..=10).map(|i| (i, vec![i as u8])))
            .unwrap();
        store.truncate_raft_log(8).unwrap();
        assert_eq!(store.last_raft_entry().unwrap(), Some((7, vec![7])));
        store.purge_raft_log(3, "purged", b"3".to_vec()).unwrap();
        assert_eq!(indexes(&store.raft_entries(0, 100).unwrap()), [4, 5, 6, 7]);
        assert_eq!(store.raft_state("purged").unwrap(), Some(b"3".to_vec()));
        store.purge_raft_log(7, "purged", b"7".to_vec()).unwrap();
        assert_eq!(store.last_raft_entry().unwrap(), None);
    }
}
