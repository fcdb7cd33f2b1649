//! Fault injection for crash and panic tests, driven by `KALAMDB_FAULT`:
//! `<point>` makes the process abort (as a `kill -9` would stop it) when it reaches that point;
//! `<point>:<detail>` makes the code at `point` panic when handling exactly `detail` (a query
//! text), to prove that one statement's panic stays with that statement.

use std::sync::OnceLock;

/// Environment variable naming the point at which to fail.
pub const FAULT_ENV: &str = "KALAMDB_FAULT";

/// Read once: the points are on hot paths.
fn wanted() -> Option<&'static str> {
    static WANTED: OnceLock<Option<String>> = OnceLock::new();
    WANTED
        .get_or_init(|| std::env::var(FAULT_ENV).ok())
        .as_deref()
}

/// Aborts the process when `KALAMDB_FAULT` names `point`.
pub fn crash_point(point: &str) {
    if wanted() == Some(point) {
        eprintln!("kalamdb: fault injection: crashing at {point}");
        std::process::abort();
    }
}

/// Panics when `KALAMDB_FAULT` is `<point>:<detail>` for this `detail`.
pub fn panic_point(point: &str, detail: &str) {
    if let Some((at, on)) = wanted().and_then(|w| w.split_once(':'))
        && at == point
        && on == detail
    {
        panic!("fault injection: panicking at {point} on {detail:?}");
    }
}
