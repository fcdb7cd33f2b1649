//! What can go wrong in storage: I/O, RocksDB, a record that does not decode, the data directory
//! held by another server, and the preconditions of a command that did not hold.

use std::path::PathBuf;

/// A command's precondition that did not hold; nothing of the command was applied.
/// Serialisable: a replicated command is refused on every node alike, and the refusal travels
/// back to the node that proposed it.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Conflict {
    #[error("schema \"{0}\" already exists")]
    NamespaceExists(String),
    #[error("schema \"{0}\" does not exist")]
    NoSuchNamespace(String),
    #[error(
        "cannot drop schema \"{0}\" because it still has tables; use DROP NAMESPACE ... CASCADE"
    )]
    NamespaceNotEmpty(String),
    #[error("relation \"{0}.{1}\" already exists")]
    TableExists(String, String),
    #[error("relation \"{0}.{1}\" does not exist")]
    NoSuchTable(String, String),
    #[error("relation \"{0}\" does not exist")]
    NoSuchSequence(String),
    #[error(
        "nextval: reached {} value of sequence \"{name}\" ({bound})",
        if *ascending { "maximum" } else { "minimum" }
    )]
    SequenceExhausted {
        name: String,
        ascending: bool,
        bound: i64,
    },
    /// `object` and each of `dependents` name their kind: `table t`, `view v`.
    #[error(
        "cannot drop {object} because other objects depend on it: {}",
        dependents.join(", ")
    )]
    HasDependents {
        object: String,
        dependents: Vec<String>,
    },
    #[error(
        "cannot change column {column} of table {table} because other objects depend on it: {}",
        dependents.iter().map(|v| format!("view {v}")).collect::<Vec<_>>().join(", ")
    )]
    ColumnHasDependents {
        table: String,
        column: String,
        dependents: Vec<String>,
    },
    #[error("index \"{0}\" does not exist")]
    NoSuchIndex(String),
    #[error("constraint \"{0}\" does not exist")]
    NoSuchConstraint(String),
    #[error("constraint \"{name}\" for relation \"{table}\" already exists")]
    ConstraintExists { name: String, table: String },
    /// A row refers to a key its referenced table does not have, or a referenced row would go
    /// while rows still refer to it.
    #[error("{message}")]
    ForeignKeyViolation { message: String, detail: String },
    /// A row storage rewrote itself (a foreign key's cascade) breaks a CHECK constraint.
    #[error("{message}")]
    CheckViolation { message: String, detail: String },
    #[error("{0}")]
    OutOfRange(String),
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNull { table: String, column: String },
    #[error(
        "cannot drop index {index} because constraint {constraint} on table {table} requires it"
    )]
    IndexRequired {
        index: String,
        constraint: String,
        table: String,
    },
    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation { constraint: String, detail: String },
    #[error("could not create unique index \"{index}\"")]
    UniqueBuildFailed { index: String, detail: String },
    #[error("table \"{0}\" was changed concurrently")]
    TableChanged(String),
    #[error("duplicate key value violates unique constraint")]
    DuplicateKey { table_id: u64, key: Vec<u8> },
    #[error("could not serialize access due to concurrent update")]
    RowChanged { table_id: u64 },
    /// Another node of the cluster reserved values of the sequence since this node read its
    /// position; the reservation is tried again from the new position.
    #[error("could not serialize access due to concurrent update of sequence #{0}")]
    SequenceMoved(u64),
}

impl Conflict {
    /// PostgreSQL's DETAIL line, when the conflict has one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Conflict::UniqueViolation { detail, .. }
            | Conflict::UniqueBuildFailed { detail, .. }
            | Conflict::ForeignKeyViolation { detail, .. }
            | Conflict::CheckViolation { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// Whether this is about the catalog (relations, namespaces) rather than rows.
    pub fn is_catalog(&self) -> bool {
        !matches!(
            self,
            Conflict::DuplicateKey { .. }
                | Conflict::UniqueViolation { .. }
                | Conflict::UniqueBuildFailed { .. }
                | Conflict::ForeignKeyViolation { .. }
                | Conflict::CheckViolation { .. }
                | Conflict::NotNull { .. }
                | Conflict::OutOfRange(_)
                | Conflict::RowChanged { .. }
                | Conflict::SequenceMoved(_)
                | Conflict::SequenceExhausted { .. }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(
        "the data directory {0} is in use by another KalamDB server (lock file {1} is held); stop that server or choose another [storage] data_path"
    )]
    Locked(PathBuf, PathBuf),
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record in {cf}: {message}")]
    Corrupt { cf: &'static str, message: String },
    /// A command read a column family after writing it unremembered: a bug in the command,
    /// refused rather than answered from the database without the command's own writes.
    #[error("internal error: a command read {0} after writing it unremembered")]
    ReadAfterUnrememberedWrite(&'static str),
    /// A command that names a file only the node that proposed it has, handed to the
    /// replicated state machine: a bug in whatever proposed it.
    #[error("internal error: a command naming a local {0} reached the replicated log")]
    NotReplicable(&'static str),
    /// Cluster mode: no leader or no quorum took the command in time, and nothing of it was
    /// committed; sending it again is safe.
    #[error("{0}")]
    ClusterUnavailable(String),
    /// Cluster mode: the command may have been committed or not; only reading tells.
    #[error("{0}")]
    ClusterOutcomeUnknown(String),
    #[error(transparent)]
    Conflict(#[from] Conflict),
}

impl StorageError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;
