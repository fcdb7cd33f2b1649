//! Who is connected and what each session is doing: the registry behind `pg_stat_activity`,
//! `pg_backend_pid()`, `pg_cancel_backend()` and `pg_terminate_backend()`. A session enters
//! it once its login completes, under the process id of its cancel key (the pid its client
//! was told), and leaves it when it ends; the server reports the start and end of each
//! statement. Another session can read what a backend shows and send it the two signals,
//! cancel and terminate, and nothing else.

mod functions;
mod table;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

pub(super) use functions::register;
pub(super) use table::{ACTIVITY_TABLE, ActivityTable, Viewer};

use super::settings::Settings;
use super::transaction::{BlockState, SharedTransaction};
use crate::model::Role;

/// Set by a cancel request or `pg_cancel_backend`; the running statement's result stream stops
/// at its next batch.
#[derive(Default)]
pub(super) struct CancelFlag {
    pub(super) cancelled: AtomicBool,
    pub(super) notify: Notify,
}

impl CancelFlag {
    pub(super) async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.cancelled.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    pub(super) fn raise(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// A request that a connection end (`pg_terminate_backend`): its connection waits on it between
/// messages and closes with `57P01`.
#[derive(Default)]
pub struct Termination {
    requested: AtomicBool,
    notify: Notify,
}

impl Termination {
    fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Resolves once termination has been requested.
    pub async fn requested(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_requested() {
                return;
            }
            notified.await;
        }
    }
}

/// Every logged-in session of this server, by process id.
#[derive(Default)]
pub struct Backends {
    by_pid: Mutex<HashMap<i32, Arc<Backend>>>,
}

impl Backends {
    fn enter(&self, backend: Arc<Backend>) {
        self.by_pid
            .lock()
            .expect("backends")
            .insert(backend.pid, backend);
    }

    pub(super) fn leave(&self, pid: i32) {
        self.by_pid.lock().expect("backends").remove(&pid);
    }

    fn get(&self, pid: i32) -> Option<Arc<Backend>> {
        self.by_pid.lock().expect("backends").get(&pid).cloned()
    }

    /// Every backend, oldest connection first.
    fn listing(&self) -> Vec<Arc<Backend>> {
        let mut all: Vec<Arc<Backend>> = self
            .by_pid
            .lock()
            .expect("backends")
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|b| (b.started, b.pid));
        all
    }
}

/// What `pg_stat_activity.state` says of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Idle,
    IdleInTransaction,
    IdleInFailedTransaction,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Idle => "idle",
            State::IdleInTransaction => "idle in transaction",
            State::IdleInFailedTransaction => "idle in transaction (aborted)",
        }
    }
}

struct Activity {
    state: State,
    /// The running statement's text, or the last one's.
    query: Arc<str>,
    query_start: Option<DateTime<Utc>>,
    state_change: DateTime<Utc>,
    /// When the current transaction began: the block's first statement, or the running
    /// statement outside a block.
    xact_start: Option<DateTime<Utc>>,
}

/// One logged-in session as other sessions see it.
pub(super) struct Backend {
    pid: i32,
    user: String,
    role: Role,
    client: Option<SocketAddr>,
    started: DateTime<Utc>,
    /// The session's settings, for its `application_name`.
    settings: Arc<Mutex<Settings>>,
    transaction: SharedTransaction,
    cancel: Arc<CancelFlag>,
    termination: Arc<Termination>,
    activity: Mutex<Activity>,
}

/// Who a backend belongs to and how it reaches its session: what `Session` hands the registry.
pub(super) struct BackendParts {
    pub user: String,
    pub role: Role,
    pub settings: Arc<Mutex<Settings>>,
    pub transaction: SharedTransaction,
    pub cancel: Arc<CancelFlag>,
}

impl Backend {
    /// Enters a session into `backends`; it shows as idle until its first statement.
    pub(super) fn enter(
        backends: &Backends,
        pid: i32,
        client: Option<SocketAddr>,
        termination: Arc<Termination>,
        parts: BackendParts,
    ) -> Arc<Backend> {
        let now = Utc::now();
        let backend = Arc::new(Backend {
            pid,
            user: parts.user,
            role: parts.role,
            client,
            started: now,
            settings: parts.settings,
            transaction: parts.transaction,
            cancel: parts.cancel,
            termination,
            activity: Mutex::new(Activity {
                state: State::Idle,
                query: Arc::from(""),
                query_start: None,
                state_change: now,
                xact_start: None,
            }),
        });
        backends.enter(backend.clone());
        backend
    }

    pub(super) fn pid(&self) -> i32 {
        self.pid
    }

    /// Marks the backend active running `query`; the returned guard marks it idle (in or out
    /// of a transaction block) when dropped.
    pub(super) fn statement_started(self: &Arc<Self>, query: &Arc<str>) -> StatementActivity {
        let now = Utc::now();
        let mut activity = self.activity.lock().expect("activity");
        activity.state = State::Active;
        activity.query = query.clone();
        activity.query_start = Some(now);
        activity.state_change = now;
        activity.xact_start.get_or_insert(now);
        StatementActivity {
            backend: Some(self.clone()),
        }
    }

    fn statement_ended(&self) {
        let block = self.transaction.lock().expect("transaction").state;
        let mut activity = self.activity.lock().expect("activity");
        activity.state = match block {
            BlockState::Idle => State::Idle,
            BlockState::InBlock => State::IdleInTransaction,
            BlockState::Failed => State::IdleInFailedTransaction,
        };
        if block == BlockState::Idle {
            activity.xact_start = None;
        }
        activity.state_change = Utc::now();
    }

    /// Whether `asker` may read this backend's statement and times, and signal it: its own
    /// user's backends, or any backend for a dba, except that only a system user reaches a
    /// system user's backends (as only a PostgreSQL superuser reaches a superuser's).
    fn reachable_by(&self, user: &str, role: Role) -> bool {
        if self.user == user {
            return true;
        }
        role >= Role::Dba && (self.role < Role::System || role == Role::System)
    }
}

/// The running statement of a backend; dropping it ends the statement's activity.
pub struct StatementActivity {
    backend: Option<Arc<Backend>>,
}

impl StatementActivity {
    /// For a session that was never entered into the registry.
    pub(super) fn untracked() -> StatementActivity {
        StatementActivity { backend: None }
    }
}

impl Drop for StatementActivity {
    fn drop(&mut self) {
        if let Some(backend) = self.backend.take() {
            backend.statement_ended();
        }
    }
}
