//! Advisory locks: the server-wide table of locks applications take on numbers of their own
//! choosing (`pg_advisory_lock` and its family), which migration tools use to keep two
//! deployments from migrating at once. As in PostgreSQL, a lock is held exclusively or shared,
//! for the session or until its transaction ends; a session's own holds never conflict with
//! each other and count up (two locks need two unlocks); a wait ends when the lock is free,
//! when the statement is cancelled or times out, or with `40P01` when it would close a cycle
//! of sessions waiting on each other. Nothing here is stored: a lock lives in memory and ends
//! with its session, on this node.

mod functions;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

pub use functions::register;

/// What a lock is taken on: one `bigint`, or two `integer`s (a separate key space, as in
/// PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockKey {
    Single(i64),
    Pair(i32, i32),
}

impl std::fmt::Display for LockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockKey::Single(key) => write!(f, "advisory lock [{key}]"),
            LockKey::Pair(high, low) => write!(f, "advisory lock [{high},{low}]"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Exclusive,
    Shared,
}

impl Mode {
    fn lock_name(self) -> &'static str {
        match self {
            Mode::Exclusive => "ExclusiveLock",
            Mode::Shared => "ShareLock",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Session,
    Transaction,
}

/// How many times one session holds one key, by mode and scope.
#[derive(Debug, Default, Clone, Copy)]
struct Holds {
    exclusive: [u32; 2],
    shared: [u32; 2],
}

impl Holds {
    fn count(&mut self, mode: Mode, scope: Scope) -> &mut u32 {
        let by_scope = match mode {
            Mode::Exclusive => &mut self.exclusive,
            Mode::Shared => &mut self.shared,
        };
        &mut by_scope[scope as usize]
    }

    fn exclusive(&self) -> bool {
        self.exclusive.iter().any(|&n| n > 0)
    }

    fn is_empty(&self) -> bool {
        !self.exclusive() && self.shared.iter().all(|&n| n == 0)
    }
}

#[derive(Debug, Default)]
struct Table {
    held: HashMap<LockKey, HashMap<u64, Holds>>,
    /// What each waiting session waits for.
    waiting: HashMap<u64, (LockKey, Mode)>,
}

impl Table {
    /// The sessions other than `session` whose holds keep it from taking `key` in `mode`.
    fn blockers(&self, session: u64, key: LockKey, mode: Mode) -> Vec<u64> {
        let Some(holders) = self.held.get(&key) else {
            return Vec::new();
        };
        holders
            .iter()
            .filter(|(holder, holds)| {
                **holder != session && (mode == Mode::Exclusive || holds.exclusive())
            })
            .map(|(holder, _)| *holder)
            .collect()
    }

    fn grant(&mut self, session: u64, key: LockKey, mode: Mode, scope: Scope) {
        *self
            .held
            .entry(key)
            .or_default()
            .entry(session)
            .or_default()
            .count(mode, scope) += 1;
    }

    /// The session `session`'s wait would wait on, through other waiting sessions, if it
    /// leads back to `session`: the first session of that cycle.
    fn cycle_through(&self, session: u64, key: LockKey, mode: Mode) -> Option<u64> {
        let mut stack: Vec<u64> = self.blockers(session, key, mode);
        let first = stack.first().copied();
        let mut seen = HashSet::new();
        while let Some(next) = stack.pop() {
            if next == session {
                return first;
            }
            if !seen.insert(next) {
                continue;
            }
            if let Some(&(key, mode)) = self.waiting.get(&next) {
                stack.extend(self.blockers(next, key, mode));
            }
        }
        None
    }

    fn release_where(&mut self, session: u64, mut release: impl FnMut(&mut Holds)) {
        self.held.retain(|_, holders| {
            if let Some(holds) = holders.get_mut(&session) {
                release(holds);
                if holds.is_empty() {
                    holders.remove(&session);
                }
            }
            !holders.is_empty()
        });
    }
}

/// The server's advisory locks.
#[derive(Debug, Default)]
pub struct AdvisoryLocks {
    table: Mutex<Table>,
    /// Woken whenever a lock is released: waiters look again.
    released: tokio::sync::Notify,
    sessions: AtomicU64,
}

/// A wait that ended without the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlock {
    pub detail: String,
}

impl AdvisoryLocks {
    /// The locks of one new session, released when it ends.
    pub fn open_session(self: &Arc<Self>) -> Arc<SessionLocks> {
        Arc::new(SessionLocks {
            locks: self.clone(),
            session: self.sessions.fetch_add(1, Ordering::Relaxed) + 1,
            took_any: AtomicBool::new(false),
            took_for_transaction: AtomicBool::new(false),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().expect("advisory lock table")
    }

    fn try_acquire(&self, session: u64, key: LockKey, mode: Mode, scope: Scope) -> bool {
        let mut table = self.table();
        if !table.blockers(session, key, mode).is_empty() {
            return false;
        }
        table.grant(session, key, mode, scope);
        true
    }

    /// Waits until `key` can be held in `mode`; dropping the future gives the wait up.
    async fn acquire(
        &self,
        session: u64,
        key: LockKey,
        mode: Mode,
        scope: Scope,
    ) -> Result<(), Deadlock> {
        let _waiting = WaitingEntry {
            locks: self,
            session,
        };
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before looking, so a release between the look and the await wakes it.
            released.as_mut().enable();
            {
                let mut table = self.table();
                if table.blockers(session, key, mode).is_empty() {
                    table.waiting.remove(&session);
                    table.grant(session, key, mode, scope);
                    return Ok(());
                }
                if let Some(blocker) = table.cycle_through(session, key, mode) {
                    table.waiting.remove(&session);
                    return Err(Deadlock {
                        detail: format!(
                            "Process {session} waits for {} on {key}; blocked by process {blocker}.",
                            mode.lock_name()
                        ),
                    });
                }
                table.waiting.insert(session, (key, mode));
            }
            released.await;
        }
    }

    /// Releases one session-level hold of `key` in `mode`; false when there was none.
    fn release(&self, session: u64, key: LockKey, mode: Mode) -> bool {
        let mut table = self.table();
        let Some(holders) = table.held.get_mut(&key) else {
            return false;
        };
        let Some(holds) = holders.get_mut(&session) else {
            return false;
        };
        let count = holds.count(mode, Scope::Session);
        if *count == 0 {
            return false;
        }
        *count -= 1;
        if holds.is_empty() {
            holders.remove(&session);
            if holders.is_empty() {
                table.held.remove(&key);
            }
        }
        drop(table);
        self.released.notify_waiters();
        true
    }

    fn release_scope(&self, session: u64, scope: Option<Scope>) {
        self.table().release_where(session, |holds| match scope {
            Some(scope) => {
                *holds.count(Mode::Exclusive, scope) = 0;
                *holds.count(Mode::Shared, scope) = 0;
            }
            None => *holds = Holds::default(),
        });
        self.released.notify_waiters();
    }
}

/// Takes a waiting session out of the wait-for graph however its wait ends.
struct WaitingEntry<'a> {
    locks: &'a AdvisoryLocks,
    session: u64,
}

impl Drop for WaitingEntry<'_> {
    fn drop(&mut self) {
        self.locks.table().waiting.remove(&self.session);
    }
}

/// One session's view of the lock table; its locks go when it is dropped.
#[derive(Debug)]
pub struct SessionLocks {
    locks: Arc<AdvisoryLocks>,
    session: u64,
    /// Whether the session may hold locks (of its transaction): every statement's end, and
    /// every session's, would otherwise take the server-wide table's lock to release nothing.
    took_any: AtomicBool,
    took_for_transaction: AtomicBool,
}

impl SessionLocks {
    /// Records a lock granted to this session in `scope`.
    fn granted(&self, scope: Scope) {
        self.took_any.store(true, Ordering::Relaxed);
        if scope == Scope::Transaction {
            self.took_for_transaction.store(true, Ordering::Relaxed);
        }
    }

    fn try_acquire(&self, key: LockKey, mode: Mode, scope: Scope) -> bool {
        let taken = self.locks.try_acquire(self.session, key, mode, scope);
        if taken {
            self.granted(scope);
        }
        taken
    }

    async fn acquire(&self, key: LockKey, mode: Mode, scope: Scope) -> Result<(), Deadlock> {
        self.locks.acquire(self.session, key, mode, scope).await?;
        self.granted(scope);
        Ok(())
    }

    /// Ends every lock this session holds (`DISCARD ALL`), as `pg_advisory_unlock_all` and
    /// the end of the session do.
    pub fn release_all(&self) {
        self.took_for_transaction.store(false, Ordering::Relaxed);
        if self.took_any.swap(false, Ordering::Relaxed) {
            self.locks.release_scope(self.session, None);
        }
    }

    /// Ends the locks taken for the transaction that just ended (or the statement, outside a
    /// transaction block).
    pub fn release_transaction_locks(&self) {
        if self.took_for_transaction.swap(false, Ordering::Relaxed) {
            self.locks
                .release_scope(self.session, Some(Scope::Transaction));
        }
    }
}

/// `stream`, ending the transaction-scoped locks of `locks` once it is read or dropped.
pub fn release_after(
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
    locks: &Arc<SessionLocks>,
) -> SendableRecordBatchStream {
    struct ReleaseOnDrop(Arc<SessionLocks>);
    impl Drop for ReleaseOnDrop {
        fn drop(&mut self) {
            self.0.release_transaction_locks();
        }
    }
    let release = ReleaseOnDrop(locks.clone());
    // Released when the last row has been read (before the statement's completion is sent),
    // or when the stream is dropped unread.
    let end = futures::stream::once(async move {
        drop(release);
        None
    })
    .filter_map(std::future::ready);
    Box::pin(RecordBatchStreamAdapter::new(schema, stream.chain(end)))
}

impl Drop for SessionLocks {
    fn drop(&mut self) {
        if *self.took_any.get_mut() {
            self.locks.release_scope(self.session, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_holds_coexist_and_keep_out_an_exclusive_one() {
        let locks = Arc::new(AdvisoryLocks::default());
        let (a, b) = (locks.open_session(), locks.open_session());
        let key = LockKey::Single(7);
        assert!(a.try_acquire(key, Mode::Shared, Scope::Session));
        assert!(b.try_acquire(key, Mode::Shared, Scope::Session));
        assert!(!b.try_acquire(key, Mode::Exclusive, Scope::Session));
        assert!(locks.release(a.session, key, Mode::Shared));
        assert!(b.try_acquire(key, Mode::Exclusive, Scope::Session));
        assert!(
            !locks.release(a.session, key, Mode::Shared),
            "a holds nothing now"
        );
    }

    #[test]
    fn a_wait_that_closes_a_cycle_is_a_deadlock_and_leaves_the_graph() {
        let locks = Arc::new(AdvisoryLocks::default());
        let (a, b) = (locks.open_session(), locks.open_session());
        let (one, two) = (LockKey::Single(1), LockKey::Pair(1, 2));
        assert!(a.try_acquire(one, Mode::Exclusive, Scope::Session));
        assert!(b.try_acquire(two, Mode::Exclusive, Scope::Transaction));
        locks
            .table()
            .waiting
            .insert(a.session, (two, Mode::Exclusive));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = runtime.block_on(b.acquire(one, Mode::Exclusive, Scope::Session));
        assert!(result.is_err(), "{result:?}");
        assert!(!locks.table().waiting.contains_key(&b.session));
        b.release_transaction_locks();
        assert!(a.try_acquire(two, Mode::Shared, Scope::Session));
        drop(a);
        assert!(locks.table().held.is_empty(), "a's locks end with it");
    }
}
