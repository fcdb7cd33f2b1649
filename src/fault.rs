//! Fault injection for crash tests: `KALAMDB_FAULT=<point>` makes the process abort (as a
//! `kill -9` would stop it) when it reaches the named point.

/// Environment variable naming the point at which to crash.
pub const FAULT_ENV: &str = "KALAMDB_FAULT";

/// Aborts the process when `KALAMDB_FAULT` names `point`.
pub fn crash_point(point: &str) {
    if std::env::var(FAULT_ENV).is_ok_and(|wanted| wanted == point) {
        eprintln!("kalamdb: fault injection: crashing at {point}");
        std::process::abort();
    }
}
