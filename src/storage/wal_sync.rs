//! Waiting for a commit to become durable without holding a thread: the write-ahead log syncer.
//!
//! A command's batch is written to RocksDB unsynced; it is durable once an fsync of the log
//! that began after the write has returned. Sessions run on the async runtime's few workers: a
//! worker that fsynced (or waited for another caller's fsync) would stall every connection it
//! serves, and handing the worker to another thread for the wait costs a thread switch per
//! commit. Instead a commit registers the sequence number it needs and awaits; one syncer
//! thread fsyncs for as long as anyone waits, each fsync covering every batch written before it
//! began (group commit), and wakes the waiters through a watch channel.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::{StorageError, StorageResult, Store};

/// How long the idle syncer sleeps before checking that its store still exists.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How far the log is known durable, as waiters see it.
#[derive(Debug, Clone, Default)]
struct Durable {
    /// Every command up to this sequence number is fsynced.
    synced: u64,
    /// The last fsync failed: the commands it was to cover (up to this number) are not
    /// known durable, and the error.
    failed: Option<(u64, String)>,
}

/// Sequence numbers waited for, and whether the syncer sleeps.
#[derive(Debug, Default)]
struct Wanted {
    through: u64,
    syncer_idle: bool,
}

#[derive(Debug)]
struct Shared {
    wanted: Mutex<Wanted>,
    wake: Condvar,
    durable: watch::Sender<Durable>,
}

/// The syncer thread of one store, started by its first waiter.
#[derive(Debug)]
pub(super) struct WalSyncer {
    shared: Arc<Shared>,
}

impl WalSyncer {
    pub(super) fn start(store: Weak<Store>, synced: u64) -> StorageResult<WalSyncer> {
        let (durable, _) = watch::channel(Durable {
            synced,
            failed: None,
        });
        let shared = Arc::new(Shared {
            wanted: Mutex::default(),
            wake: Condvar::new(),
            durable,
        });
        let syncer = shared.clone();
        std::thread::Builder::new()
            .name("kalamdb-wal-sync".into())
            .spawn(move || sync_while_wanted(&syncer, &store))
            .map_err(|e| StorageError::io("starting the write-ahead log syncer", e))?;
        Ok(WalSyncer { shared })
    }

    /// Returns once every command up to `seq` is fsynced.
    pub(super) async fn durable(&self, seq: u64) -> StorageResult<()> {
        let mut durable = self.shared.durable.subscribe();
        if durable.borrow().synced >= seq {
            return Ok(());
        }
        {
            let mut wanted = self.shared.wanted.lock().expect("wal sync state");
            wanted.through = wanted.through.max(seq);
            if wanted.syncer_idle {
                self.shared.wake.notify_one();
            }
        }
        let settled = durable
            .wait_for(|d| d.synced >= seq || d.failed.as_ref().is_some_and(|(to, _)| *to >= seq))
            .await
            .map_err(|_| {
                StorageError::io(
                    "waiting for the write-ahead log fsync",
                    std::io::Error::other("the syncer stopped"),
                )
            })?;
        match &settled.failed {
            Some((_, error)) if settled.synced < seq => Err(StorageError::io(
                "fsync of the write-ahead log",
                std::io::Error::other(error.clone()),
            )),
            _ => Ok(()),
        }
    }
}

/// The syncer's loop: fsync whenever a waiter needs more than is synced; exits once the store
/// is gone.
fn sync_while_wanted(shared: &Shared, store: &Weak<Store>) {
    loop {
        let through = {
            let mut wanted = shared.wanted.lock().expect("wal sync state");
            loop {
                // A failed fsync is not retried for the commits it failed: they were told.
                let settled = {
                    let durable = shared.durable.borrow();
                    durable
                        .synced
                        .max(durable.failed.as_ref().map_or(0, |(to, _)| *to))
                };
                if wanted.through > settled {
                    wanted.syncer_idle = false;
                    break wanted.through;
                }
                if store.strong_count() == 0 {
                    return;
                }
                wanted.syncer_idle = true;
                wanted = shared
                    .wake
                    .wait_timeout(wanted, IDLE_CHECK)
                    .expect("wal sync state")
                    .0;
            }
        };
        let Some(store) = store.upgrade() else {
            return;
        };
        let outcome = store.sync_wal_through(through);
        drop(store);
        shared.durable.send_modify(|durable| match outcome {
            Ok(synced) => {
                durable.synced = durable.synced.max(synced);
                durable.failed = None;
            }
            Err(e) => durable.failed = Some((through, e.to_string())),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Command;
    use crate::storage::crashed_copy::{FSYNC_ON_COMMIT, crashed_copy};

    /// Durable commits write RocksDB's log buffer only at their group's fsync: a commit must
    /// not be acknowledged before its batch left the buffer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_once_durable_is_in_the_files_a_crash_of_the_process_leaves() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(tmp.path(), FSYNC_ON_COMMIT).unwrap());
        let user = crate::storage::UserRecord::new_for_test("alice", crate::model::Role::User);
        let applied = store.apply_unsynced(&Command::PutUser(user)).unwrap();
        let durable = tokio::time::timeout(Duration::from_secs(10), store.durable(applied.seq));
        durable.await.expect("the fsync waited past 10 s").unwrap();
        let crashed = crashed_copy(tmp.path());
        drop(store);
        let recovered = Store::open(crashed.path(), FSYNC_ON_COMMIT).unwrap();
        assert_eq!(recovered.applied_seq(), applied.seq);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_commits_return_once_an_fsync_covers_them_and_the_syncer_ends_with_its_store() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(tmp.path(), FSYNC_ON_COMMIT).unwrap());
        let user = crate::storage::UserRecord::new_for_test("alice", crate::model::Role::User);
        let mut waiting = Vec::new();
        for _ in 0..20 {
            let applied = store
                .apply_unsynced(&Command::PutUser(user.clone()))
                .unwrap();
            let store = store.clone();
            waiting.push(tokio::spawn(
                async move { store.durable(applied.seq).await },
            ));
        }
        for commit in waiting {
            let done = tokio::time::timeout(Duration::from_secs(10), commit).await;
            done.expect("a commit waited past 10 s").unwrap().unwrap();
        }
        assert_eq!(*store.synced_seq.lock().unwrap(), 20);
        // Already durable: no fsync to wait for.
        let again = tokio::time::timeout(Duration::from_secs(1), store.durable(7)).await;
        again.unwrap().unwrap();
        let shared = Arc::downgrade(&store.wal_syncer.get().unwrap().shared);
        drop(store);
        let deadline = std::time::Instant::now() + IDLE_CHECK * 5;
        while shared.upgrade().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the syncer outlived its store"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
