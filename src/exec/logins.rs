//! Login times, recorded behind the login instead of inside it. A login that waited for its own
//! write would wait for whatever command holds the store's apply lock (a flush publishing a
//! million-row segment holds it for seconds), so a client opening a connection during a flush
//! stalled before its first statement. Logins noted meanwhile are coalesced into one command.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::storage::{Command, Store};

/// Login times not yet written, and whether a writer is on its way.
#[derive(Debug, Default)]
pub(super) struct LoginRecorder {
    pending: Mutex<PendingLogins>,
}

#[derive(Debug, Default)]
struct PendingLogins {
    /// The latest login time (microseconds) per user.
    logins: HashMap<String, i64>,
    writing: bool,
}

impl LoginRecorder {
    /// Notes that `user_id` logged in at `at`, writing it on a blocking thread (at once, when
    /// there is no runtime).
    pub(super) fn note(self: &Arc<Self>, store: &Arc<Store>, user_id: &str, at: i64) {
        let start_writer = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let latest = pending.logins.entry(user_id.to_owned()).or_insert(at);
            *latest = (*latest).max(at);
            !std::mem::replace(&mut pending.writing, true)
        };
        if !start_writer {
            return;
        }
        let (recorder, store) = (self.clone(), store.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || recorder.write_pending(&store));
            }
            Err(_) => recorder.write_pending(&store),
        }
    }

    fn write_pending(&self, store: &Store) {
        loop {
            let logins = {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if pending.logins.is_empty() {
                    pending.writing = false;
                    return;
                }
                std::mem::take(&mut pending.logins)
            };
            let mut logins: Vec<(String, i64)> = logins.into_iter().collect();
            logins.sort();
            if let Err(e) = store.apply(&Command::RecordLogins(logins)) {
                tracing::warn!("recording login times: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Durability, UserRecord};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_login_is_noted_without_waiting_for_a_command_in_progress() {
        let tmp = tempfile::tempdir().unwrap();
        let durability = Durability {
            sync_writes: false,
            wal_enabled: true,
        };
        let store = Arc::new(Store::open(tmp.path(), durability).unwrap());
        let alice = UserRecord::new_for_test("alice", crate::model::Role::User);
        store.apply(&Command::PutUser(alice)).unwrap();
        let recorder = Arc::new(LoginRecorder::default());
        {
            let _long_command = store.hold_apply_lock();
            recorder.note(&store, "alice", 5);
            recorder.note(&store, "alice", 7);
            assert_eq!(store.user("alice").unwrap().unwrap().last_login_at, None);
        }
        // Once the command ends, the latest of the logins noted meanwhile is written.
        let mut recorded = None;
        for _ in 0..100 {
            recorded = store.user("alice").unwrap().unwrap().last_login_at;
            if recorded == Some(7) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(recorded, Some(7));
    }
}
