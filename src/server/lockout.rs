//! Limits on password guessing: failed logins are counted per user name and per client address,
//! and either count reaching its limit refuses further attempts for a while.
//!
//! A user name's failures from loopback addresses are counted apart from its failures from
//! elsewhere, so a storm of remote guesses at `root` never locks out the administrator on the
//! machine itself. An address may fail [`ADDRESS_FACTOR`] times as often as a name before it is
//! refused, so one client cannot try a few passwords against every name. Entries expire once
//! their window has passed, and the table never holds more than [`MAX_ENTRIES`] of them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many times a name's limit one address may fail, across all names.
pub const ADDRESS_FACTOR: u32 = 4;
/// The most entries kept; beyond it the stalest entry makes room.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User { name: String, local: bool },
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

pub struct Lockout {
    max_failures: u32,
    duration: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Lockout {
    /// `max_failures` of 0 turns the lockout off.
    pub fn new(max_failures: u32, duration: Duration) -> Self {
        Lockout {
            max_failures,
            duration,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, peer: IpAddr) -> [Key; 2] {
        [
            Key::User {
                name: user.to_owned(),
                local: peer.is_loopback(),
            },
            Key::Address(peer),
        ]
    }

    /// True while `user` may not try to log in from `peer`.
    pub fn is_locked(&self, user: &str, peer: IpAddr) -> bool {
        let now = Instant::now();
        let entries = self.entries.lock().expect("lockout lock");
        Self::keys(user, peer).iter().any(|key| {
            entries
                .get(key)
                .and_then(|e| e.locked_until)
                .is_some_and(|until| now < until)
        })
    }

    /// Counts a failed attempt; returns the name's failures in the current window.
    pub fn record_failure(&self, user: &str, peer: IpAddr) -> u32 {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("lockout lock");
        let mut name_failures = 0;
        for key in Self::keys(user, peer) {
            let limit = match key {
                Key::User { .. } => self.max_failures,
                Key::Address(_) => self.max_failures.saturating_mul(ADDRESS_FACTOR),
            };
            if !entries.contains_key(&key) {
                self.make_room(&mut entries, now);
            }
            let entry = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                last_failure: now,
                locked_until: None,
            });
            if self.expired(entry, now) {
                *entry = Entry {
                    failures: 0,
                    last_failure: now,
                    locked_until: None,
                };
            }
            entry.failures += 1;
            entry.last_failure = now;
            if limit > 0 && entry.failures >= limit {
                entry.locked_until = Some(now + self.duration);
            }
            if matches!(key, Key::User { .. }) {
                name_failures = entry.failures;
            }
        }
        name_failures
    }

    /// A successful login clears the name's count (from that side) and the address's.
    pub fn record_success(&self, user: &str, peer: IpAddr) {
        let mut entries = self.entries.lock().expect("lockout lock");
        for key in Self::keys(user, peer) {
            entries.remove(&key);
        }
    }

    /// An entry whose lock (or, unlocked, whose last failure) is older than the window.
    fn expired(&self, entry: &Entry, now: Instant) -> bool {
        match entry.locked_until {
            Some(until) => now >= until,
            None => now.duration_since(entry.last_failure) >= self.duration,
        }
    }

    fn make_room(&self, entries: &mut HashMap<Key, Entry>, now: Instant) {
        if entries.len() < MAX_ENTRIES {
            return;
        }
        entries.retain(|_, e| !self.expired(e, now));
        if entries.len() >= MAX_ENTRIES
            && let Some(stalest) = entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&stalest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().expect("lockout lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REMOTE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 8));
    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn remote_failures_never_lock_the_name_out_locally() {
        let lockout = Lockout::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            lockout.record_failure("root", REMOTE);
        }
        assert!(lockout.is_locked("root", REMOTE));
        assert!(
            lockout.is_locked("root", OTHER),
            "the name is locked for every remote"
        );
        assert!(!lockout.is_locked("root", LOCAL));
        assert!(!lockout.is_locked("alice", OTHER));
    }

    #[test]
    fn one_address_is_limited_across_names() {
        let lockout = Lockout::new(3, Duration::from_secs(60));
        for i in 0..(3 * ADDRESS_FACTOR) {
            assert!(!lockout.is_locked(&format!("name{i}"), REMOTE));
            lockout.record_failure(&format!("name{i}"), REMOTE);
        }
        assert!(lockout.is_locked("fresh", REMOTE));
        assert!(!lockout.is_locked("fresh", OTHER));
    }

    #[test]
    fn locks_expire_and_the_table_stays_bounded() {
        let lockout = Lockout::new(1, Duration::from_millis(20));
        lockout.record_failure("bob", REMOTE);
        assert!(lockout.is_locked("bob", REMOTE));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!lockout.is_locked("bob", REMOTE));
        let lockout = Lockout::new(5, Duration::from_secs(60));
        for i in 0..(MAX_ENTRIES + 500) {
            lockout.record_failure(&format!("unknown{i}"), REMOTE);
        }
        assert!(lockout.len() <= MAX_ENTRIES);
    }
}
