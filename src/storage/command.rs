//! Commands: the only way durable state changes, and their preconditions.

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

pub(super) use super::apply_context::ApplyContext;
use super::bulk_load;
use super::flushed_rows::FlushedRows;
use super::foreign_keys::{self, ForeignKeyRecord};
use super::index_ddl;
use super::indexes::{self, IndexRecord, IndexedRow};
use super::records::{self, JobRecord, NamespaceRecord, TableRecord, UserRecord};
use super::referential;
use super::row_writes::{write_new_rows, write_row};
use super::segment_publish::flush_segment;
use super::segments::SegmentRecord;
use super::sequences::{self, SequencePosition, SequenceRecord};
use super::streams::{self, StreamState};
use super::table_ddl;
use super::view_ddl::{self, ViewRecord};
use super::{
    CF_CATALOG, CF_JOBS, CF_META, CF_USERS, Conflict, StorageResult, catalog_keys, write_shapes,
};

/// One atomic change to the database. Commands are serialisable so that a replicated log can
/// carry them; applying the same sequence of commands to the same state gives the same state.
/// A row a statement rewrote in full (ALTER COLUMN TYPE): its key, the version the statement
/// read (`None`: the row as the same transaction block wrote it, earlier in the command), and
/// the row in the new definition.
pub type RewrittenRow = (Vec<u8>, Option<u64>, Vec<u8>);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Creates or replaces a user.
    PutUser(UserRecord),
    /// Sets users' last login times (user id, microseconds); a user dropped meanwhile is
    /// skipped and a time never moves back.
    RecordLogins(Vec<(String, i64)>),
    DropUser {
        user_id: String,
    },
    /// Creates a namespace; its `namespace_id` is assigned when the command is applied.
    CreateNamespace(NamespaceRecord),
    /// Gives every namespace without an id (one created before namespaces had ids) the next
    /// one, so that its OID is stored like every other object's.
    NumberNamespaces,
    /// Names the database once, if it has no id yet (a later id is ignored). Backups record
    /// it, so an incremental backup is only ever taken on a base of the same database.
    IdentifyDatabase {
        database_id: String,
    },
    /// Drops a namespace; with `cascade` its tables and their rows too.
    DropNamespace {
        name: String,
        cascade: bool,
    },
    /// Creates a table; its `table_id` is assigned when the command is applied.
    CreateTable(TableRecord),
    /// Replaces a table's definition (ALTER TABLE); the table must still have the same id.
    AlterTable(TableRecord),
    /// Drops a table; with `cascade` the views that depend on it too.
    DropTable {
        namespace: String,
        name: String,
        /// The (table id, version) the statement resolved: another definition by now is a
        /// conflict. `None` drops whatever table has the name.
        #[serde(default)]
        expect: Option<(u64, u64)>,
        #[serde(default)]
        cascade: bool,
    },
    /// Removes every row of a table, hot and flushed, keeping its definition; with
    /// `restart_identity`, the sequences its columns own start over.
    TruncateTable {
        namespace: String,
        name: String,
        table_id: u64,
        restart_identity: bool,
    },
    /// Gives a table a new name in its namespace.
    RenameTable {
        namespace: String,
        name: String,
        table_id: u64,
        new_name: String,
    },
    /// Moves a table from `namespace` to `table.namespace` (its definition there, at the
    /// version read), with its indexes and the sequences its columns own.
    SetSchema {
        namespace: String,
        table: TableRecord,
    },
    /// Gives column `position` the type `table` (the new definition, at the version read)
    /// has, rewriting every live row: (key, version read, row in the new definition).
    RetypeColumn {
        table: TableRecord,
        position: usize,
        rows: Vec<RewrittenRow>,
    },
    /// Drops column `position`; `table` is the definition without it, at the version read.
    DropColumn {
        table: TableRecord,
        position: usize,
        cascade: bool,
    },
    RenameColumn {
        namespace: String,
        table: String,
        table_id: u64,
        column: String,
        new_name: String,
    },
    WriteRows {
        table_id: u64,
        writes: Vec<RowWrite>,
        /// The highest hidden row id used by `writes`, for tables without a declared key.
        row_id_high_water: Option<u64>,
        /// The table's layout generation the rows are encoded for: a DROP COLUMN or ALTER
        /// COLUMN TYPE applied since fails the write (40001) rather than store a stale layout.
        #[serde(default)]
        layout_generation: u64,
    },
    /// Publishes a bulk load's rows (see `bulk_load`): checks that the table still has no index
    /// or foreign key and that none of the keys is live, then ingests `file`, a RocksDB table
    /// file of stored rows between `low` and `high`, whole. `runs` hold the same keys.
    IngestRows {
        table_id: u64,
        file: std::path::PathBuf,
        runs: Vec<std::path::PathBuf>,
        low: Vec<u8>,
        high: Vec<u8>,
        row_id_high_water: Option<u64>,
        layout_generation: u64,
    },
    /// Publishes a flushed segment: adds it to the manifest, indexes its keys, marks older
    /// copies dead and removes the hot versions it holds. A hot row written after the flush read
    /// it stays hot, and the segment's copy of it is dead from the start.
    FlushSegment {
        segment: SegmentRecord,
        rows: FlushedRows,
    },
    /// Appends rows to a stream table's commit log at `appended_at` (microseconds).
    AppendStream {
        table_id: u64,
        appended_at: i64,
        rows: Vec<Vec<u8>>,
    },
    /// Drops whole stream log files whose rows are all past the TTL.
    EvictStreamFiles {
        table_id: u64,
        numbers: Vec<u64>,
    },
    /// Creates a sequence; its `sequence_id` is assigned when the command is applied.
    CreateSequence(SequenceRecord),
    /// Replaces a sequence's definition and position (ALTER SEQUENCE).
    AlterSequence {
        sequence: SequenceRecord,
        position: SequencePosition,
    },
    DropSequence {
        namespace: String,
        name: String,
    },
    /// Moves a sequence's position: a reservation of values (expecting the position it read),
    /// or setval.
    MoveSequence {
        sequence_id: u64,
        expect: Option<SequencePosition>,
        to: SequencePosition,
    },
    /// Creates a view, or with `replace` redefines an existing one (keeping its id).
    CreateView {
        view: ViewRecord,
        replace: bool,
    },
    /// Drops a view; with `cascade` the views that depend on it too.
    DropView {
        namespace: String,
        name: String,
        cascade: bool,
    },
    /// Reserves ids for relations a transaction block creates, so that the rows it writes
    /// to them before COMMIT carry the ids they will have.
    ReserveRelationIds {
        count: u64,
    },
    /// Writes the start position of a sequence a transaction block creates (with a reserved
    /// id), so nextval can hand out its values before COMMIT.
    StartSequence(SequenceRecord),
    /// Creates an index on `table`; its id is assigned when applied (unless a block reserved
    /// one). On a table with rows it starts building (`Applied::indexes_to_build`).
    CreateIndex {
        table: String,
        index: IndexRecord,
    },
    DropIndex {
        namespace: String,
        name: String,
    },
    /// Entries for rows a build job read, added for those still at the version read.
    AddIndexEntries {
        table_id: u64,
        index: String,
        rows: Vec<IndexedRow>,
    },
    /// A build finished: the index is used by queries from now on.
    IndexReady {
        table_id: u64,
        name: String,
        index_id: u64,
    },
    /// Adds a foreign key to `table` (in the key's namespace) referencing `parent`
    /// (namespace, name); ids the executor could not know yet (tables and indexes the same
    /// command creates) are resolved by name when applied.
    AddForeignKey {
        table: String,
        parent: (String, String),
        foreign_key: ForeignKeyRecord,
    },
    /// Drops a foreign key, with the index it owns.
    DropForeignKey {
        table_id: u64,
        name: String,
    },
    /// Sets what an ON ... SET DEFAULT foreign key writes (its columns' defaults changed).
    SetForeignKeyDefaults {
        table_id: u64,
        name: String,
        defaults: Vec<Vec<u8>>,
    },
    /// `SET CONSTRAINTS` inside a transaction block: from here to the end of the command, the
    /// named deferrable foreign keys (every deferrable one when `names` is `None`) are checked
    /// at its end (`deferred`) or at the end of each statement. Made immediate, the checks
    /// they had deferred so far are made now.
    SetConstraintTiming {
        names: Option<Vec<String>>,
        deferred: bool,
    },
    /// Creates or updates a job's row in `system.jobs`.
    PutJob(JobRecord),
    DeleteJobs(Vec<String>),
    /// Several commands applied as one (a transaction block's writes).
    Batch(Vec<Command>),
    /// A command that names a file (a flushed segment, a bulk load's table file) together
    /// with that file's bytes, as the replicated log carries it: every node puts the same
    /// bytes in place before applying the command (see `replicated`).
    Shipped {
        file: serde_bytes::ByteBuf,
        command: Box<Command>,
    },
}

/// One row change. `expect` is checked against the row's current state when applied, so a
/// write computed from a row read earlier fails instead of overwriting a newer version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowWrite {
    /// The full row key (table prefix and encoded primary key or hidden row id).
    pub key: Vec<u8>,
    /// The encoded row, or `None` to delete.
    pub value: Option<Vec<u8>>,
    pub expect: Expect,
    /// For a deletion that is half of an UPDATE changing the row's primary key: the key the
    /// row moves to (written by the same command), so that foreign keys referring to the row
    /// see an update rather than a deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    Anything,
    /// No live row with this key (INSERT).
    Absent,
    /// The row is still the version that was read.
    Version(u64),
}

/// What applying a command produced; serialisable because a replicated command's outcome
/// travels back to the node that proposed it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    pub seq: u64,
    /// Ids assigned to tables created by the command, in order.
    pub table_ids: Vec<u64>,
    /// Flushed segments left out of the manifest because none of their rows was current.
    pub unpublished_segments: Vec<u64>,
    /// Deletion markers a flush found current and removed with the rows they deleted.
    pub flushed_deletions: u64,
    /// Segments that dropped or truncated tables no longer reference: their files can go.
    pub unreferenced_segments: Vec<SegmentRecord>,
    /// Sequences set back to their start (TRUNCATE ... RESTART IDENTITY).
    pub restarted_sequences: Vec<u64>,
    /// Indexes created on tables with rows: (table id, index name), each to be built by a job.
    pub indexes_to_build: Vec<(u64, String)>,
    /// A bulk load's file of rows, ingested once the command's batch is written.
    #[serde(skip)]
    pub(super) ingest_rows: Option<std::path::PathBuf>,
}

impl Applied {
    /// The outcome of an entry that changed nothing but the applied sequence number.
    pub fn at(seq: u64) -> Applied {
        Applied {
            seq,
            ..Applied::default()
        }
    }
}

/// Records the highest hidden row id a write used, for tables without a declared key.
fn raise_row_id_counter(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
    high_water: Option<u64>,
) -> StorageResult<()> {
    if let Some(high) = high_water {
        let name = super::row_id_counter(table_id);
        if high > ctx.counter(&name)? {
            ctx.put(batch, CF_META, name, high.to_be_bytes().to_vec());
        }
    }
    Ok(())
}

impl Command {
    /// Whether applying this changes users, namespaces or table definitions (what sessions
    /// cache between statements).
    pub fn changes_catalog(&self) -> bool {
        match self {
            Command::PutUser(_)
            | Command::DropUser { .. }
            | Command::CreateNamespace(_)
            | Command::NumberNamespaces
            | Command::DropNamespace { .. }
            | Command::CreateTable(_)
            | Command::AlterTable(_)
            | Command::DropTable { .. }
            | Command::TruncateTable { .. }
            | Command::RenameTable { .. }
            | Command::RenameColumn { .. }
            | Command::DropColumn { .. }
            | Command::SetSchema { .. }
            | Command::RetypeColumn { .. }
            | Command::CreateSequence(_)
            | Command::AlterSequence { .. }
            | Command::DropSequence { .. }
            | Command::CreateView { .. }
            | Command::DropView { .. }
            | Command::CreateIndex { .. }
            | Command::DropIndex { .. }
            | Command::IndexReady { .. }
            | Command::AddForeignKey { .. }
            | Command::DropForeignKey { .. }
            | Command::SetForeignKeyDefaults { .. } => true,
            Command::Batch(commands) => commands.iter().any(Command::changes_catalog),
            Command::Shipped { command, .. } => command.changes_catalog(),
            _ => false,
        }
    }

    /// What local file this command names, if it names one: such a command can only be
    /// applied on the node that wrote the file, never from a replicated log, unless it is
    /// shipped with the file's bytes.
    /// Whether this writes only the node's own rows (its jobs), which a cluster does not
    /// replicate: each node runs and lists its own jobs.
    pub fn is_node_local(&self) -> bool {
        match self {
            Command::PutJob(_) | Command::DeleteJobs(_) => true,
            Command::Batch(commands) => {
                !commands.is_empty() && commands.iter().all(Command::is_node_local)
            }
            _ => false,
        }
    }

    pub fn local_file(&self) -> Option<&'static str> {
        match self {
            Command::IngestRows { .. } => Some("bulk load file"),
            Command::FlushSegment { .. } => Some("segment file"),
            Command::Batch(commands) => commands.iter().find_map(Command::local_file),
            _ => None,
        }
    }

    /// Whether this is a write of rows small enough (what an autocommit statement writes) to
    /// apply on an async task without holding up others: no file, DDL or bulk work.
    pub fn applies_quickly(&self) -> bool {
        const QUICK_BATCH_BYTES: usize = 1 << 20;
        matches!(self, Command::WriteRows { .. }) && self.batch_size_hint() <= QUICK_BATCH_BYTES
    }

    /// Whether applying this may set sequences back (TRUNCATE ... RESTART IDENTITY).
    pub fn restarts_sequences(&self) -> bool {
        match self {
            Command::TruncateTable {
                restart_identity, ..
            } => *restart_identity,
            Command::Batch(commands) => commands.iter().any(Command::restarts_sequences),
            Command::Shipped { command, .. } => command.restarts_sequences(),
            _ => false,
        }
    }

    /// About how many bytes this command's write batch takes, so that a bulk write's batch is
    /// allocated once instead of grown (and copied) a doubling at a time.
    pub fn batch_size_hint(&self) -> usize {
        // Per entry: tag, column family id, two varint lengths, the stored row's version.
        const ENTRY_OVERHEAD: usize = 24;
        match self {
            Command::WriteRows { writes, .. } => writes
                .iter()
                .map(|w| w.key.len() + w.value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD)
                .sum(),
            Command::Batch(commands) => commands.iter().map(Command::batch_size_hint).sum(),
            Command::Shipped { command, .. } => command.batch_size_hint(),
            _ => 0,
        }
    }

    /// Turns the command into `batch`, then makes the checks deferred to its end.
    pub(super) fn write_all_into<'a>(
        &'a self,
        ctx: &mut ApplyContext<'a>,
        batch: &mut WriteBatch,
    ) -> StorageResult<()> {
        self.write_into(ctx, batch)?;
        referential::verify_deferred(ctx)
    }

    pub(super) fn write_into<'a>(
        &'a self,
        ctx: &mut ApplyContext<'a>,
        batch: &mut WriteBatch,
    ) -> StorageResult<()> {
        match self {
            Command::PutUser(user) => {
                ctx.put(
                    batch,
                    CF_USERS,
                    user.user_id.clone().into_bytes(),
                    records::encode(user),
                );
            }
            Command::DropUser { user_id } => {
                ctx.delete(batch, CF_USERS, user_id.clone().into_bytes());
            }
            Command::RecordLogins(logins) => {
                for (user_id, at) in logins {
                    let key = user_id.clone().into_bytes();
                    let Some(stored) = ctx.get(CF_USERS, &key)? else {
                        continue;
                    };
                    let mut user: UserRecord = records::decode(CF_USERS, &stored)?;
                    if user.last_login_at.is_none_or(|last| last < *at) {
                        user.last_login_at = Some(*at);
                        ctx.put(batch, CF_USERS, key, records::encode(&user));
                    }
                }
            }
            Command::CreateNamespace(ns) => {
                let key = catalog_keys::namespace(&ns.name);
                if ctx.get(CF_CATALOG, &key)?.is_some() {
                    return Err(Conflict::NamespaceExists(ns.name.clone()).into());
                }
                let mut ns = ns.clone();
                ns.namespace_id = ctx.next_relation_id(batch)?;
                ctx.put(batch, CF_CATALOG, key, records::encode(&ns));
            }
            Command::NumberNamespaces => {
                let namespaces: Vec<NamespaceRecord> =
                    ctx.records_in(&catalog_keys::namespaces())?;
                for mut ns in namespaces.into_iter().filter(|ns| ns.namespace_id == 0) {
                    ns.namespace_id = ctx.next_relation_id(batch)?;
                    let key = catalog_keys::namespace(&ns.name);
                    ctx.put(batch, CF_CATALOG, key, records::encode(&ns));
                }
            }
            Command::IdentifyDatabase { database_id } => {
                if ctx.get(CF_META, super::DATABASE_ID_KEY)?.is_none() {
                    ctx.put(
                        batch,
                        CF_META,
                        super::DATABASE_ID_KEY.to_vec(),
                        database_id.clone().into_bytes(),
                    );
                }
            }
            Command::DropNamespace { name, cascade } => {
                let key = catalog_keys::namespace(name);
                if ctx.get(CF_CATALOG, &key)?.is_none() {
                    return Err(Conflict::NoSuchNamespace(name.clone()).into());
                }
                let tables = ctx.tables_in(name)?;
                let has_sequences = !ctx
                    .records_in::<SequenceRecord>(&catalog_keys::sequences_of(name))?
                    .is_empty();
                let views: Vec<ViewRecord> = ctx.records_in(&catalog_keys::views_of(name))?;
                if (!tables.is_empty() || has_sequences || !views.is_empty()) && !cascade {
                    return Err(Conflict::NamespaceNotEmpty(name.clone()).into());
                }
                for view in views {
                    view_ddl::drop(ctx, batch, name, &view.name, true)?;
                }
                for table in tables {
                    table_ddl::drop_record(ctx, batch, &table, true)?;
                }
                sequences::drop_all_in(ctx, batch, name)?;
                ctx.delete(batch, CF_CATALOG, key);
            }
            Command::CreateTable(table) => table_ddl::create(ctx, batch, table)?,
            Command::AlterTable(table) => table_ddl::alter(ctx, batch, table)?,
            Command::DropTable {
                namespace,
                name,
                expect,
                cascade,
            } => table_ddl::drop(ctx, batch, namespace, name, *expect, *cascade)?,
            Command::TruncateTable {
                namespace,
                name,
                table_id,
                restart_identity,
            } => table_ddl::truncate(ctx, batch, namespace, name, *table_id, *restart_identity)?,
            Command::RenameTable {
                namespace,
                name,
                table_id,
                new_name,
            } => table_ddl::rename(ctx, batch, namespace, name, *table_id, new_name)?,
            Command::RenameColumn {
                namespace,
                table,
                table_id,
                column,
                new_name,
            } => {
                table_ddl::rename_column(ctx, batch, namespace, table, *table_id, column, new_name)?
            }
            Command::RetypeColumn {
                table,
                position,
                rows,
            } => super::column_ddl::retype_column(ctx, batch, table, *position, rows)?,
            Command::SetSchema { namespace, table } => {
                table_ddl::set_schema(ctx, batch, namespace, table)?
            }
            Command::DropColumn {
                table,
                position,
                cascade,
            } => super::column_ddl::drop_column(ctx, batch, table, *position, *cascade)?,
            Command::WriteRows {
                table_id,
                writes,
                row_id_high_water,
                layout_generation,
            } => {
                let shape = write_shapes::shape_of(ctx, *table_id)?;
                table_ddl::expect_layout_generation(
                    ctx,
                    *table_id,
                    shape.layout_generation,
                    *layout_generation,
                )?;
                if !shape.links.is_empty() {
                    referential::write_rows(ctx, batch, *table_id, writes, shape.links.clone())?;
                } else {
                    let indexes = &shape.indexes;
                    match ctx.begin_row_writes(writes)? {
                        Some(order) => {
                            write_new_rows(ctx, batch, *table_id, writes, order, indexes)?
                        }
                        None => {
                            for write in writes {
                                write_row(ctx, batch, *table_id, write, indexes, 0)?;
                            }
                        }
                    }
                }
                raise_row_id_counter(ctx, batch, *table_id, *row_id_high_water)?;
            }
            Command::IngestRows {
                table_id,
                file,
                runs,
                low,
                high,
                row_id_high_water,
                layout_generation,
            } => {
                table_ddl::check_layout_generation(ctx, *table_id, *layout_generation)?;
                bulk_load::check_ingest(ctx, *table_id, runs, low, high)?;
                raise_row_id_counter(ctx, batch, *table_id, *row_id_high_water)?;
                ctx.applied.ingest_rows = Some(file.clone());
            }
            Command::FlushSegment { segment, rows } => flush_segment(ctx, batch, segment, rows)?,
            Command::AppendStream {
                table_id,
                appended_at,
                rows,
            } => {
                let table = ctx
                    .table_by_id(*table_id)?
                    .ok_or_else(|| Conflict::TableChanged(format!("#{table_id}")))?;
                let ttl = match table.kind {
                    crate::model::TableKind::Stream { ttl_seconds } => {
                        ttl_seconds as i64 * 1_000_000
                    }
                    crate::model::TableKind::Regular => {
                        return Err(Conflict::TableChanged(table.name).into());
                    }
                };
                let key = catalog_keys::stream(*table_id);
                let state: StreamState = match ctx.get(CF_CATALOG, &key)? {
                    Some(bytes) => records::decode(CF_CATALOG, &bytes)?,
                    None => StreamState::default(),
                };
                let dir = super::segments::table_dir(&table.namespace, &table.name);
                let state = streams::append(
                    ctx.streams_root,
                    &dir,
                    &state,
                    ttl,
                    *appended_at,
                    rows,
                    ctx.sync,
                )?;
                ctx.put(batch, CF_CATALOG, key, records::encode(&state));
            }
            Command::EvictStreamFiles { table_id, numbers } => {
                let key = catalog_keys::stream(*table_id);
                if let Some(bytes) = ctx.get(CF_CATALOG, &key)? {
                    let mut state: StreamState = records::decode(CF_CATALOG, &bytes)?;
                    state.files.retain(|f| !numbers.contains(&f.number));
                    ctx.put(batch, CF_CATALOG, key, records::encode(&state));
                }
            }
            Command::CreateSequence(sequence) => sequences::create(ctx, batch, sequence)?,
            Command::AlterSequence { sequence, position } => {
                sequences::alter(ctx, batch, sequence, *position)?
            }
            Command::DropSequence { namespace, name } => {
                sequences::drop(ctx, batch, namespace, name)?
            }
            Command::MoveSequence {
                sequence_id,
                expect,
                to,
            } => sequences::move_to(ctx, batch, *sequence_id, *expect, *to)?,
            Command::CreateView { view, replace } => view_ddl::create(ctx, batch, view, *replace)?,
            Command::DropView {
                namespace,
                name,
                cascade,
            } => view_ddl::drop(ctx, batch, namespace, name, *cascade)?,
            Command::ReserveRelationIds { count } => {
                for _ in 0..*count {
                    let id = ctx.next_relation_id(batch)?;
                    ctx.applied.table_ids.push(id);
                }
            }
            Command::StartSequence(sequence) => sequences::start(ctx, batch, sequence)?,
            Command::CreateIndex { table, index } => index_ddl::create(ctx, batch, table, index)?,
            Command::DropIndex { namespace, name } => index_ddl::drop(ctx, batch, namespace, name)?,
            Command::AddIndexEntries {
                table_id,
                index,
                rows,
            } => indexes::add_built_entries(ctx, batch, *table_id, index, rows)?,
            Command::IndexReady {
                table_id,
                name,
                index_id,
            } => index_ddl::mark_ready(ctx, batch, *table_id, name, *index_id)?,
            Command::AddForeignKey {
                table,
                parent,
                foreign_key,
            } => foreign_keys::add(ctx, batch, table, (&parent.0, &parent.1), foreign_key)?,
            Command::DropForeignKey { table_id, name } => {
                foreign_keys::drop(ctx, batch, *table_id, name)?
            }
            Command::SetForeignKeyDefaults {
                table_id,
                name,
                defaults,
            } => foreign_keys::set_defaults(ctx, batch, *table_id, name, defaults)?,
            Command::SetConstraintTiming { names, deferred } => {
                ctx.set_constraint_timing(names.as_deref(), *deferred);
                if !deferred {
                    referential::verify_deferred_of(ctx, names.as_deref())?;
                }
            }
            Command::PutJob(job) => {
                ctx.put(
                    batch,
                    CF_JOBS,
                    job.job_id.clone().into_bytes(),
                    records::encode(job),
                );
            }
            Command::DeleteJobs(ids) => {
                for id in ids {
                    ctx.delete(batch, CF_JOBS, id.clone().into_bytes());
                }
            }
            Command::Batch(commands) => {
                for command in commands {
                    command.write_into(ctx, batch)?;
                }
            }
            // The file is in place by now (`Store::apply_replicated` puts it there).
            Command::Shipped { command, .. } => command.write_into(ctx, batch)?,
        }
        Ok(())
    }
}
