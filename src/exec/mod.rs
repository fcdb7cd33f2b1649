//! Execution: runs authorized statements for a session against storage and DataFusion.
//!
//! [`Engine`] is the server-wide state (store, catalog, config); a [`Session`] is one
//! authenticated connection's view of it (its user, settings and DataFusion context). Statements
//! arrive here already parsed by `sql`; `exec` authorizes them through `sql::authorize`, runs
//! them and returns Arrow data or a command tag. It knows nothing of the wire protocol.

mod activity;
mod advisory_locks;
mod age;
mod aggregate_catalog;
mod alter;
mod array_overlap;
pub(crate) mod array_text;
mod backup_schedules;
mod block_ddl;
mod bpchar;
mod bytea_substr;
mod catalog;
mod catalog_oids;
mod checked_arithmetic;
mod checks;
mod cluster_nodes;
mod cold;
mod compute;
mod cursors;
mod ddl;
mod dispatch;
mod dml;
mod foreign_key_catalog;
mod foreign_keys;
mod format;
mod function_names;
mod functions;
mod hot_scan;
mod index_catalog;
mod index_scan;
mod indexes;
mod information_schema;
mod int4_results;
mod integer_literals;
mod interval_arithmetic;
mod interval_average;
pub mod json;
mod lateral_key;
mod logins;
mod maintenance;
mod names;
mod naming;
mod numeric_aggregates;
mod numeric_division;
mod ordered_set_aggregates;
mod outcome;
mod params;
mod pg_catalog;
mod pg_derived;
mod plan_rewrite;
mod planner;
mod point_query;
mod prepare;
mod query_planner;
mod recursive_terms;
mod regexp;
mod search_path;
mod sequence_functions;
mod sequences;
mod session;
mod settings;
mod sleep;
mod sql_prepared;
mod stream_table;
mod subplan;
mod system_tables;
mod table;
mod text_casts;
mod to_char;
mod transaction;
mod type_mismatch;
mod unknown_operands;
mod users;
mod view_definition;
mod view_table;
mod views;
mod width_bucket;

use std::sync::Arc;

use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::error::DataFusionError;

pub use activity::{StatementActivity, Termination};
pub use dml::CopyIn;
pub use function_names::printed as function_name;
pub use outcome::Outcome;
pub use prepare::PreparedStatement;
pub use session::Session;
pub use users::{AuthSecret, LoginOutcome};

use crate::cluster::replica::Replica;
use crate::config::Config;
use crate::jobs::{self, JobError, JobManager};
use crate::model::TableKind;
use crate::sql::SqlError;
use crate::storage::{Command, Conflict, NamespaceRecord, PUBLIC_NAMESPACE, StorageError, Store};

pub use crate::model::DATABASE_NAME;

/// The PostgreSQL version KalamDB speaks, as reported in `server_version`: the release whose
/// answers `pg-compat` checks KalamDB's against, so that tools choosing their catalog queries
/// by version pick the ones for the catalogs KalamDB has.
pub const PG_SERVER_VERSION: &str = "15.18";
pub const PG_SERVER_VERSION_NUM: &str = "150018";

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error("{0}")]
    UndefinedObject(String),
    #[error("{0}")]
    DuplicateObject(String),
    /// Two relations of one statement under the same name.
    #[error("{0}")]
    DuplicateAlias(String),
    /// The caller's role does not reach the object (`42501`).
    #[error("{0}")]
    InsufficientPrivilege(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    CantChangeRuntimeParam(String),
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,
    #[error("cursor \"{0}\" does not exist")]
    UndefinedCursor(String),
    #[error("cursor \"{0}\" already exists")]
    DuplicateCursor(String),
    #[error("prepared statement \"{0}\" does not exist")]
    UndefinedPreparedStatement(String),
    #[error("prepared statement \"{0}\" already exists")]
    DuplicatePreparedStatement(String),
    /// A session holding `[server] max_prepared_statements` statements PREPARE made (54000).
    #[error(
        "this session already holds {0} statements PREPARE made ([server] max_prepared_statements); DEALLOCATE some first"
    )]
    TooManyPreparedStatements(usize),
    /// An EXECUTE whose values do not match its statement's parameters (42601).
    #[error("wrong number of parameters for prepared statement \"{name}\"")]
    WrongParameterCount {
        name: String,
        expected: usize,
        given: usize,
    },
    /// A backward move on a cursor declared without SCROLL (55000).
    #[error("cursor can only scan forward")]
    ForwardOnlyCursor,
    #[error("{0}")]
    ObjectInUse(String),
    #[error("canceling statement due to user request")]
    QueryCanceled,
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,
    #[error("{0}")]
    UndefinedTable(String),
    #[error("{0}")]
    UndefinedColumn(String),
    #[error("{0}")]
    UndefinedFunction(String),
    /// A function name that several functions have, where one was wanted (`'avg'::regproc`).
    #[error("{0}")]
    AmbiguousFunction(String),
    /// No function or operator of the name takes the argument types it was given.
    #[error("{message}")]
    NoMatchingSignature { message: String, hint: &'static str },
    #[error("{0}")]
    DuplicateColumn(String),
    #[error("{0}")]
    NotNullViolation(String),
    #[error("{0}")]
    UniqueViolation(String),
    /// A primary key written twice, with the key as stored (COPY finds the row by it).
    #[error("{message}")]
    DuplicateKey { message: String, key: Vec<u8> },
    /// A unique violation with PostgreSQL's DETAIL naming the key, and the constraint (or
    /// unique index) violated: ON CONFLICT tells its own arbiters' races from other conflicts.
    #[error("{message}")]
    KeyViolation {
        message: String,
        detail: String,
        constraint: String,
    },
    /// A foreign key that cannot be declared as written (42830).
    #[error("{0}")]
    InvalidForeignKey(String),
    /// A row referring to a key that does not exist, or a referenced row still referred to,
    /// with the key as DETAIL (23503).
    #[error("{message}")]
    ForeignKeyViolation { message: String, detail: String },
    /// An expression of the wrong type where the statement needs another (42804).
    #[error("{0}")]
    DatatypeMismatch(String),
    /// A row a CHECK constraint refuses, with the failing row as DETAIL.
    #[error("{message}")]
    CheckViolation { message: String, detail: String },
    #[error("{0}")]
    StringTooLong(String),
    #[error("{0}")]
    NumericOutOfRange(String),
    /// Arguments `width_bucket` cannot bucket by (2201G).
    #[error("{0}")]
    InvalidWidthBucketArgument(String),
    /// An array of the wrong shape for its use: dimensions, or pairs that do not pair (2202E).
    #[error("{0}")]
    ArraySubscriptError(String),
    /// A pattern the regular expression functions cannot compile (2201B).
    #[error("{0}")]
    InvalidRegularExpression(String),
    /// A date, time or interval past what its type holds (22008).
    #[error("{0}")]
    DatetimeOutOfRange(String),
    /// A substring PostgreSQL cannot take: a negative length (22011).
    #[error("{0}")]
    SubstringError(String),
    /// Text that is no date or time PostgreSQL reads (22007).
    #[error("{0}")]
    InvalidDatetimeFormat(String),
    #[error("{0}")]
    InvalidText(String),
    /// Text read as `json` or `jsonb` that is not JSON (22P02); the detail says where.
    #[error("invalid input syntax for type json")]
    InvalidJson { detail: String },
    /// A JSON value that does not make the array a column of `json(b)_to_record` declares
    /// (22P02), with PostgreSQL's detail or hint saying which.
    #[error("{message}")]
    InvalidJsonArray {
        message: String,
        detail: Option<String>,
        hint: Option<String>,
    },
    /// An error loading one row of a COPY FROM, with where in the data it happened
    /// (PostgreSQL's CONTEXT line: `COPY t, line 3, column n: "abc"`).
    #[error("{source}")]
    InCopy {
        source: Box<ExecError>,
        context: String,
    },
    #[error("{0}")]
    WrongObjectType(String),
    #[error("{0}")]
    InvalidColumnReference(String),
    #[error("{0}")]
    CardinalityViolation(String),
    #[error("{0}")]
    InvalidSchemaName(String),
    #[error("{0}")]
    ReservedName(String),
    #[error("{0}")]
    DuplicateSchema(String),
    #[error("{0}")]
    DuplicateTable(String),
    #[error("{0}")]
    DependentObjectsStillExist(String),
    /// A row changed under a write between its read and its commit: the write is retried.
    #[error("{0}")]
    ConcurrentUpdate(String),
    /// A wait for an advisory lock that would close a cycle of waiting sessions.
    #[error("deadlock detected")]
    Deadlock { detail: String },
    /// A table's definition changed while a statement used it.
    #[error("{0}")]
    ConcurrentDefinitionChange(String),
    /// A prepared query's plan reads a table whose rows another session re-encoded (DROP
    /// COLUMN, ALTER COLUMN TYPE) since, and planning it again changes its result columns.
    #[error("cached plan must not change result type")]
    CachedPlanChanged,
    #[error("{0}")]
    Io(String),
    /// Cluster mode: no leader or quorum took a write or a read barrier in time; nothing was
    /// committed.
    #[error("{0}")]
    ClusterUnavailable(String),
    /// Cluster mode: a write whose commit could not be confirmed either way.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// Storage found something it cannot read or write (RocksDB, a corrupt record).
    #[error("{0}")]
    StorageFailure(String),
    #[error("{0}")]
    ObjectNotInPrerequisiteState(String),
    /// NULL where a value must be given (`format('%I', NULL)`).
    #[error("{0}")]
    NullValueNotAllowed(String),
    /// A statement that cannot run inside a transaction block (VACUUM).
    #[error("{0}")]
    ActiveSqlTransaction(String),
    /// A background job failed or was cancelled.
    #[error("{0}")]
    JobFailed(String),
    /// A BACKUP or RESTORE path the path rules refuse to this server.
    #[error("{0}")]
    PathForbidden(String),
    /// An archive that is damaged, foreign or fails its checksums (SHOW BACKUP).
    #[error("{0}")]
    DataCorrupted(String),
    #[error("{0}")]
    NoActiveTransaction(String),
    #[error("{0}")]
    InvalidSavepoint(String),
    #[error("role \"{0}\" was dropped: this session can no longer run statements")]
    RoleDropped(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// nextval past a sequence's bound without CYCLE.
    #[error("{0}")]
    SequenceLimit(String),
    /// A value given to a `GENERATED ALWAYS` identity column.
    #[error("{0}")]
    GeneratedAlways(String),
    #[error("{0}")]
    InvalidTableDefinition(String),
    /// A view whose definition cannot stand (one that reads itself).
    #[error("{0}")]
    InvalidObjectDefinition(String),
}

pub type ExecResult<T> = Result<T, ExecError>;

/// Storage conditions become execution errors by kind here, once, so the layers above never
/// see storage's types.
impl From<StorageError> for ExecError {
    fn from(err: StorageError) -> Self {
        use crate::storage::Conflict;
        let message = err.to_string();
        match err {
            StorageError::Io { .. } => ExecError::Io(message),
            StorageError::Locked(..) => ExecError::ObjectInUse(message),
            StorageError::Rocks(_)
            | StorageError::Corrupt { .. }
            | StorageError::ReadAfterUnrememberedWrite(_)
            | StorageError::NotReplicable(_) => ExecError::StorageFailure(message),
            StorageError::ClusterUnavailable(_) => ExecError::ClusterUnavailable(message),
            StorageError::ClusterOutcomeUnknown(_) => ExecError::OutcomeUnknown(message),
            StorageError::Conflict(conflict) => match conflict {
                Conflict::NamespaceExists(_) => ExecError::DuplicateSchema(message),
                Conflict::NoSuchNamespace(_) => ExecError::InvalidSchemaName(message),
                Conflict::NamespaceNotEmpty(_)
                | Conflict::HasDependents { .. }
                | Conflict::IndexRequired { .. }
                | Conflict::ColumnHasDependents { .. } => {
                    ExecError::DependentObjectsStillExist(message)
                }
                Conflict::TableExists(..) => ExecError::DuplicateTable(message),
                Conflict::NoSuchTable(..) | Conflict::NoSuchSequence(_) => {
                    ExecError::UndefinedTable(message)
                }
                Conflict::SequenceExhausted { .. } => ExecError::SequenceLimit(message),
                Conflict::DuplicateKey { .. } => ExecError::UniqueViolation(message),
                Conflict::UniqueViolation { detail, constraint }
                | Conflict::UniqueBuildFailed {
                    detail,
                    index: constraint,
                } => ExecError::KeyViolation {
                    message,
                    detail,
                    constraint,
                },
                Conflict::NoSuchIndex(_) | Conflict::NoSuchConstraint(_) => {
                    ExecError::UndefinedObject(message)
                }
                Conflict::ConstraintExists { .. } => ExecError::DuplicateObject(message),
                Conflict::ForeignKeyViolation { detail, .. } => {
                    ExecError::ForeignKeyViolation { message, detail }
                }
                Conflict::CheckViolation { detail, .. } => {
                    ExecError::CheckViolation { message, detail }
                }
                Conflict::NotNull { .. } => ExecError::NotNullViolation(message),
                Conflict::OutOfRange(_) => ExecError::NumericOutOfRange(message),
                Conflict::RowChanged { .. } | Conflict::SequenceMoved(_) => {
                    ExecError::ConcurrentUpdate(message)
                }
                Conflict::TableChanged(_) => ExecError::ConcurrentDefinitionChange(message),
            },
        }
    }
}

impl From<JobError> for ExecError {
    fn from(err: JobError) -> Self {
        let message = err.to_string();
        match err {
            JobError::Storage(e) => e.into(),
            JobError::NoSuchJob(_) => ExecError::UndefinedObject(message),
            JobError::AlreadyFinished(_) => ExecError::ObjectNotInPrerequisiteState(message),
            JobError::Failed(_) | JobError::Cancelled => ExecError::JobFailed(message),
        }
    }
}

impl From<crate::backup::ArchiveError> for ExecError {
    fn from(err: crate::backup::ArchiveError) -> Self {
        let message = err.to_string();
        match err {
            crate::backup::ArchiveError::Invalid(_) => ExecError::DataCorrupted(message),
            crate::backup::ArchiveError::Io { .. } | crate::backup::ArchiveError::NoSpace(_) => {
                ExecError::Io(message)
            }
            crate::backup::ArchiveError::Cancelled => ExecError::QueryCanceled,
        }
    }
}

impl From<crate::backup::PathError> for ExecError {
    fn from(err: crate::backup::PathError) -> Self {
        match err {
            crate::backup::PathError::Invalid(m) => ExecError::InvalidParameterValue(m),
            crate::backup::PathError::Forbidden(m) => ExecError::PathForbidden(m),
        }
    }
}

/// Runs `work`, which may wait for an fsync, so that on the multi-threaded runtime the worker
/// is given up meanwhile and other sessions' tasks keep running.
pub(crate) fn off_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Server-wide execution state shared by every session.
pub struct Engine {
    store: Arc<Store>,
    config: Arc<Config>,
    catalogs: Arc<dyn CatalogProviderList>,
    jobs: JobManager,
    /// Memory pool and spill files shared by every session's queries.
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    /// Rows written per table since its last automatic flush was queued.
    writes_since_flush: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
    /// Users' roles as of a catalog epoch (see `role_of`).
    roles: std::sync::Mutex<(
        u64,
        std::collections::HashMap<String, Option<crate::model::Role>>,
    )>,
    logins: Arc<logins::LoginRecorder>,
    /// The advisory locks sessions hold (`pg_advisory_lock`).
    advisory_locks: Arc<advisory_locks::AdvisoryLocks>,
    /// Every logged-in session, for `pg_stat_activity` and the signals between sessions.
    backends: Arc<activity::Backends>,
    /// `[[backup.schedule]]`, directories checked at start.
    schedules: Arc<[crate::backup::Schedule]>,
    /// This node's part in a cluster; `None` on a single node.
    cluster: Option<Arc<Replica>>,
    /// The runtime the engine was started on, where plans run (see `compute`); `None` when
    /// started outside one.
    compute: Option<tokio::runtime::Handle>,
}

impl Engine {
    /// Builds the engine over an opened store and creates the `root` user on first start. In
    /// cluster mode `cluster` already routes the store's writes through the cluster.
    pub fn start(
        store: Arc<Store>,
        config: Arc<Config>,
        cluster: Option<Arc<Replica>>,
    ) -> ExecResult<Arc<Engine>> {
        let schedules: Arc<[crate::backup::Schedule]> =
            backup_schedules::checked_schedules(&store, &config)?.into();
        let catalog = catalog::KalamCatalog::new(store.clone(), schedules.clone(), cluster.clone());
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(DATABASE_NAME.into(), Arc::new(catalog));
        let jobs = JobManager::new(store.clone(), config.jobs.max_concurrent)?;
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(
                datafusion::execution::memory_pool::FairSpillPool::new(config.query.memory_limit),
            ))
            .build_arc()?;
        store.install_check_evaluator(Arc::new(checks::CheckRules::new()));
        let engine = Arc::new(Engine {
            store,
            config,
            catalogs: Arc::new(catalogs),
            jobs,
            runtime,
            writes_since_flush: Default::default(),
            roles: std::sync::Mutex::new((u64::MAX, Default::default())),
            logins: Default::default(),
            advisory_locks: Default::default(),
            backends: Default::default(),
            schedules,
            cluster,
            compute: tokio::runtime::Handle::try_current().ok(),
        });
        engine.bootstrap_root()?;
        engine.bootstrap_namespaces()?;
        engine.bootstrap_identity()?;
        engine.recover_jobs()?;
        engine.resume_index_builds()?;
        Ok(engine)
    }

    /// Creates `public` in a new data directory, and numbers the namespaces a data directory
    /// from before namespaces had ids holds (their OIDs come from those ids).
    fn bootstrap_namespaces(&self) -> ExecResult<()> {
        if self.store.namespace(PUBLIC_NAMESPACE)?.is_none() {
            let command = Command::CreateNamespace(NamespaceRecord {
                name: PUBLIC_NAMESPACE.into(),
                created_at: now_micros(),
                namespace_id: 0,
            });
            match self.store.apply(&command) {
                Ok(_) | Err(StorageError::Conflict(Conflict::NamespaceExists(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self
            .store
            .namespaces()?
            .iter()
            .any(|ns| ns.namespace_id == 0)
        {
            self.store.apply(&Command::NumberNamespaces)?;
        }
        Ok(())
    }

    /// Gives a database without an id (a new one, or one from before databases had ids) a
    /// random one.
    fn bootstrap_identity(&self) -> ExecResult<()> {
        if self.store.database_id()?.is_none() {
            let mut bytes = [0u8; 16];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                .map_err(|_| ExecError::Internal("the system's random source failed".into()))?;
            let database_id = hex::encode(bytes);
            self.store
                .apply(&Command::IdentifyDatabase { database_id })?;
        }
        Ok(())
    }

    /// Fails jobs a crash interrupted, re-runs queued ones, and drops expired job rows.
    fn recover_jobs(&self) -> ExecResult<()> {
        self.purge_expired_jobs()?;
        let recovered = self.jobs.recover()?;
        for job in &recovered.interrupted {
            let archive_written = match job.job_type.as_str() {
                crate::backup::BackupJob::JOB_TYPE => {
                    serde_json::from_str::<crate::backup::BackupParameters>(&job.parameters)
                        .ok()
                        .map(|p| p.path)
                }
                crate::backup::RestoreJob::JOB_TYPE => {
                    serde_json::from_str::<crate::backup::RestoreParameters>(&job.parameters)
                        .ok()
                        .and_then(|p| p.backup_to)
                }
                _ => None,
            };
            if let Some(target) = archive_written {
                crate::backup::remove_leftovers(&target);
            }
        }
        for job in recovered.queued {
            let work = match self.resumed_work(&job) {
                Ok(work) => work,
                Err(e) => {
                    let message = format!("not resumed after the restart: {e}");
                    self.jobs.fail_queued(job, message)?;
                    continue;
                }
            };
            tracing::info!(
                job_id = job.job_id,
                job_type = job.job_type,
                "resuming a queued job"
            );
            self.jobs.resume(job.job_id, work);
        }
        Ok(())
    }

    /// The work of a queued job, rebuilt from its recorded parameters by the constructor that
    /// built it when it was submitted (so a backup's path is checked again).
    fn resumed_work(&self, job: &crate::storage::JobRecord) -> ExecResult<Arc<dyn jobs::JobWork>> {
        let malformed = |e: serde_json::Error| {
            ExecError::Internal(format!("its recorded parameters are unreadable: {e}"))
        };
        let recorded = |path: &std::path::Path| crate::sql::ArchivePath {
            raw: path.to_string_lossy().into_owned(),
            quoted: true,
        };
        Ok(match job.job_type.as_str() {
            jobs::FlushJob::JOB_TYPE => {
                let flush: jobs::FlushJob =
                    serde_json::from_str(&job.parameters).map_err(malformed)?;
                Arc::new(flush)
            }
            crate::backup::BackupJob::JOB_TYPE => {
                let parameters: crate::backup::BackupParameters =
                    serde_json::from_str(&job.parameters).map_err(malformed)?;
                let base = parameters.base.as_deref().map(recorded);
                let mut job = self.backup_job(&recorded(&parameters.path), base.as_ref())?;
                job.schedule = parameters
                    .schedule
                    .as_deref()
                    .and_then(|name| self.schedule_named(name));
                Arc::new(job)
            }
            crate::backup::RestoreJob::JOB_TYPE => {
                let parameters: crate::backup::RestoreParameters =
                    serde_json::from_str(&job.parameters).map_err(malformed)?;
                let backup_to = parameters.backup_to.as_deref().map(recorded);
                Arc::new(self.restore_job(&recorded(&parameters.path), backup_to.as_ref())?)
            }
            crate::backup::VerifyJob::JOB_TYPE => {
                let parameters: crate::backup::VerifyParameters =
                    serde_json::from_str(&job.parameters).map_err(malformed)?;
                Arc::new(self.verify_job(&recorded(&parameters.path))?)
            }
            other => {
                return Err(ExecError::Internal(format!(
                    "a queued {other} job is not resumable"
                )));
            }
        })
    }

    /// Applies a session's command. The call waits for the group commit's fsync, so on the
    /// multi-threaded runtime it gives up its worker meanwhile: other sessions keep running and
    /// their commits join the same fsync instead of queueing behind a blocked worker.
    pub(crate) fn apply(&self, command: &Command) -> Result<crate::storage::Applied, StorageError> {
        off_the_runtime(|| self.store.apply(command))
    }

    /// As [`Self::apply`] for a session's commit: the batch is written on this worker when the
    /// store is free (off the runtime when another command holds it), and the fsync is awaited
    /// without holding a thread, so a commit costs no thread switch and the worker serves other
    /// sessions while it waits.
    pub(crate) async fn apply_durably(
        &self,
        command: &Command,
    ) -> Result<crate::storage::Applied, StorageError> {
        // A cluster's commit is durable once a quorum's logs hold it.
        if let Some(commit) = self.store.commit_replicated(command) {
            return commit.await;
        }
        let written = match self.store.try_apply_unsynced(command) {
            Some(written) => written,
            None => off_the_runtime(|| self.store.apply_unsynced(command)),
        };
        let applied = written?;
        self.store.durable(applied.seq).await?;
        Ok(applied)
    }

    /// In cluster mode, returns once this node has applied every write the cluster
    /// acknowledged before the call (at once with `[cluster] follower_reads`, and on a single
    /// node).
    pub(crate) async fn read_barrier(&self) -> ExecResult<()> {
        let follower_reads = self
            .config
            .cluster
            .as_ref()
            .is_some_and(|settings| settings.follower_reads);
        if follower_reads {
            return Ok(());
        }
        self.cluster_barrier().await
    }

    /// In cluster mode, returns once this node has applied every write the cluster
    /// acknowledged before the call, whatever `follower_reads` says.
    pub(crate) async fn cluster_barrier(&self) -> ExecResult<()> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        Ok(cluster.read_barrier().await?)
    }

    /// This node's part in a cluster; `None` on a single node.
    pub fn cluster(&self) -> Option<&Arc<Replica>> {
        self.cluster.as_ref()
    }

    /// Removes finished jobs older than `[jobs] retention_days` (at start and periodically).
    pub fn purge_expired_jobs(&self) -> ExecResult<()> {
        let retention = std::time::Duration::from_secs(self.config.jobs.retention_days * 86_400);
        let purged = self.jobs.purge_finished(retention)?;
        if purged > 0 {
            tracing::info!(purged, "removed finished jobs past their retention");
        }
        Ok(())
    }

    /// Counts committed row writes and queues a flush when a table passes `[flush] row_limit`.
    pub(crate) fn note_writes(&self, table_id: u64, rows: usize) {
        let limit = self.config.flush.row_limit;
        if limit == 0 {
            return;
        }
        let due = {
            let mut counts = self.writes_since_flush.lock().expect("flush counters");
            let count = counts.entry(table_id).or_default();
            *count += rows as u64;
            let due = *count >= limit;
            if due {
                *count = 0;
            }
            due
        };
        if !due {
            return;
        }
        let table = match self.store.table_by_id(table_id) {
            Ok(table) => table,
            Err(e) => {
                tracing::warn!("automatic flush: reading the catalog: {e}");
                return;
            }
        };
        if let Some(table) = table.filter(|t| t.kind == TableKind::Regular) {
            let work = jobs::FlushJob {
                table_id,
                namespace: table.namespace,
                table: table.name,
                segment_rows: self.config.flush.segment_rows,
            };
            if let Err(e) = self.jobs.submit(Arc::new(work), "system") {
                tracing::warn!("automatic flush: queueing the job: {e}");
            }
        }
    }

    /// Queues a TTL eviction for every stream table that has expired log files.
    pub fn queue_stream_evictions(&self) {
        let tables = match self.store.tables() {
            Ok(tables) => tables,
            Err(e) => {
                tracing::warn!("stream eviction: reading the catalog: {e}");
                return;
            }
        };
        for table in tables {
            let TableKind::Stream { ttl_seconds } = table.kind else {
                continue;
            };
            match jobs::expired_files(&self.store, table.table_id, ttl_seconds) {
                Ok(expired) if !expired.is_empty() => {
                    let work = jobs::StreamEvictJob {
                        table_id: table.table_id,
                        namespace: table.namespace,
                        table: table.name,
                    };
                    if let Err(e) = self.jobs.submit(Arc::new(work), "system") {
                        tracing::warn!("stream eviction: queueing the job: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("stream eviction: {e}"),
            }
        }
    }

    pub fn jobs(&self) -> &JobManager {
        &self.jobs
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

pub(crate) use crate::storage::now_micros;

/// How `SHOW TABLES` and `system.tables` name a table's kind.
pub(crate) fn table_type_name(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Regular => "table",
        TableKind::Stream { .. } => "stream",
    }
}
