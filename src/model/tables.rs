//! What kind of table a table is, and the one database a server holds.

use serde::{Deserialize, Serialize};

/// The one database a KalamDB server holds, as `current_database()` and `\l` name it; every
/// connection reaches it, whatever name it asks for.
pub const DATABASE_NAME: &str = "kalamdb";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Regular,
    /// Append-only, kept as a commit log; rows older than the TTL are evicted.
    Stream {
        ttl_seconds: u64,
    },
}
