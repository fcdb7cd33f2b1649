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
