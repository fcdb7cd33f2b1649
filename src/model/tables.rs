//! What kind of table a table is, what a foreign key does when its referenced row changes,
//! and the one database a server holds.

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

/// What a write to the referenced table does to the rows referring to the row it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferentialAction {
    /// The statement fails if referring rows remain at its end (or the transaction's, when
    /// the constraint is deferred) and no row with the old key has appeared meanwhile.
    NoAction,
    /// The statement fails if referring rows remain.
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl ReferentialAction {
    /// `pg_constraint.confupdtype` / `confdeltype`.
    pub fn code(self) -> &'static str {
        match self {
            ReferentialAction::NoAction => "a",
            ReferentialAction::Restrict => "r",
            ReferentialAction::Cascade => "c",
            ReferentialAction::SetNull => "n",
            ReferentialAction::SetDefault => "d",
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            ReferentialAction::NoAction => "NO ACTION",
            ReferentialAction::Restrict => "RESTRICT",
            ReferentialAction::Cascade => "CASCADE",
            ReferentialAction::SetNull => "SET NULL",
            ReferentialAction::SetDefault => "SET DEFAULT",
        }
    }
}
