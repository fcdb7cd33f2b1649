//! The Raft log storage: openraft's `RaftLogStorage` over the store's `raft_log` column family.
//! An append returns once written, and tells openraft it is durable once the store's Raft log
//! syncer has fsynced it (openraft 0.9 waits for that before its next append). The last purged
//! log id is kept beside the entries so the log's start survives a restart that finds it empty.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError, Vote};

use super::{Entry, LogId, NodeId, RaftStorageError, TypeConfig, decode, encode};
use crate::storage::Store;

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "purged";

/// The log of one node; clones share it (openraft reads through a clone while it appends).
#[derive(Clone)]
pub struct LogStore {
    store: Arc<Store>,
}

impl LogStore {
    pub fn new(store: Arc<Store>) -> LogStore {
        LogStore { store }
    }

    fn state<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, RaftStorageError> {
        let read = |e: &dyn std::error::Error| StorageIOError::read(AnyError::error(e)).into();
        match self.store.raft_state(name).map_err(|e| read(&e))? {
            Some(bytes) => decode(&bytes).map(Some).map_err(|e| read(&e)),
            None => Ok(None),
        }
    }

    fn put_state<T: serde::Serialize>(
        &self,
        name: &str,
        value: &T,
        failed: fn(AnyError) -> StorageIOError<NodeId>,
    ) -> Result<(), RaftStorageError> {
        let bytes = encode(value).map_err(|e| failed(AnyError::new(&e)))?;
        self.store
            .put_raft_state(name, bytes)
            .map_err(|e| failed(AnyError::new(&e)).into())
    }
}

fn index_range(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(index) => *index,
        Bound::Excluded(index) => index.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let until = match range.end_bound() {
        Bound::Included(index) => index.saturating_add(1),
        Bound::Excluded(index) => *index,
        Bound::Unbounded => u64::MAX,
    };
    (from, until)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        let (from, until) = index_range(&range);
        let failed = |e: &dyn std::error::Error| StorageIOError::read_logs(AnyError::error(e));
        let stored = self
            .store
            .raft_entries(from, until)
            .map_err(|e| failed(&e))?;
        stored
            .iter()
            .map(|(index, bytes)| {
                decode::<Entry>(bytes).map_err(|e| {
                    StorageIOError::read_log_at_index(*index, AnyError::new(&e)).into()
                })
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let last_purged_log_id: Option<LogId> = self.state(PURGED)?;
        let last = self
            .store
            .last_raft_entry()
            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
        let last_log_id = match last {
            Some((index, bytes)) => Some(
                decode::<Entry>(&bytes)
                    .map_err(|e| StorageIOError::read_log_at_index(index, AnyError::new(&e)))?
                    .log_id,
            ),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), RaftStorageError> {
        self.put_state(VOTE, vote, StorageIOError::write_vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, RaftStorageError> {
        self.state(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), RaftStorageError> {
        let bytes = encode(&committed).map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        self.store
            .put_raft_state_buffered(COMMITTED, bytes)
            .map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, RaftStorageError> {
        Ok(self.state::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|entry| {
                encode(&entry)
                    .map(|bytes| (entry.log_id.index, bytes))
                    .map_err(|e| StorageIOError::write_log_entry(entry.log_id, AnyError::new(&e)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let appended = self.store.append_raft_entries(encoded, move |durable| {
            callback.log_io_completed(durable.map_err(|e| std::io::Error::other(e.to_string())))
        });
        appended.map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        self.store
            .truncate_raft_log(log_id.index)
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let purged = encode(&log_id).map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        self.store
            .purge_raft_log(log_id.index, PURGED, purged)
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}
