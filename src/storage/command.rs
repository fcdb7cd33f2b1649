//! Commands: the only way durable state changes, and their preconditions.

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

pub(super) use super::apply_context::ApplyContext;
use super::records::{self, JobRecord, NamespaceRecord, TableRecord, UserRecord};
use super::segments::SegmentRecord;
use super::sequences::{self, SequencePosition, SequenceRecord};
use super::streams::{self, StreamState};
use super::table_ddl;
use super::view_ddl::{self, ViewRecord};
use super::{
    CF_CATALOG, CF_COLD_INDEX, CF_DEAD_KEYS, CF_JOBS, CF_META, CF_ROWS, CF_USERS, Conflict,
    StorageError, StorageResult, catalog_keys, cf, rows,
};

/// A hot value that hides a cold row: the key was deleted after it was flushed.
pub(super) const TOMBSTONE: &[u8] = &[0xFF];

/// Where the live cold copy of a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdEntry {
    pub segment_id: u64,
    pub version: u64,
    /// The row's position in the segment file; `None` in entries written before positions
    /// were recorded (the row is then found by its key).
    pub row: Option<u64>,
}

pub(super) fn cold_entry(segment_id: u64, version: u64, row: u64) -> Vec<u8> {
    let mut value = segment_id.to_be_bytes().to_vec();
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(&row.to_be_bytes());
    value
}

pub(super) fn decode_cold_entry(value: &[u8]) -> StorageResult<ColdEntry> {
    let word = |at: usize| {
        value
            .get(at..at + 8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_be_bytes)
    };
    match (value.len(), word(0), word(8)) {
        (16, Some(segment_id), Some(version)) => Ok(ColdEntry {
            segment_id,
            version,
            row: None,
        }),
        (24, Some(segment_id), Some(version)) => Ok(ColdEntry {
            segment_id,
            version,
            row: word(16),
        }),
        _ => Err(StorageError::Corrupt {
            cf: CF_COLD_INDEX,
            message: format!("entry is {} bytes, not 16 or 24", value.len()),
        }),
    }
}

fn dead_key(segment_id: u64, key: &[u8]) -> Vec<u8> {
    let mut dead = segment_id.to_be_bytes().to_vec();
    dead.extend_from_slice(key);
    dead
}

/// One atomic change to the database. Commands are serialisable so that a replicated log can
/// carry them; applying the same sequence of commands to the same state gives the same state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Creates or replaces a user.
    PutUser(UserRecord),
    DropUser {
        user_id: String,
    },
    CreateNamespace(NamespaceRecord),
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
    },
    /// Publishes a flushed segment: adds it to the manifest, indexes its keys, marks older
    /// copies dead and removes the hot versions it holds. A hot row written after the flush read
    /// it stays hot, and the segment's copy of it is dead from the start.
    FlushSegment {
        segment: SegmentRecord,
        /// (key, version read, whether it was a tombstone)
        rows: Vec<(Vec<u8>, u64, bool)>,
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
    /// Creates or updates a job's row in `system.jobs`.
    PutJob(JobRecord),
    DeleteJobs(Vec<String>),
    /// Several commands applied as one (a transaction block's writes).
    Batch(Vec<Command>),
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    Anything,
    /// No live row with this key (INSERT).
    Absent,
    /// The row is still the version that was read.
    Version(u64),
}

/// What applying a command produced.
#[derive(Debug, Default)]
pub struct Applied {
    pub seq: u64,
    /// Ids assigned to tables created by the command, in order.
    pub table_ids: Vec<u64>,
    /// Flushed segments left out of the manifest because none of their rows was current.
    pub unpublished_segments: Vec<u64>,
    /// Segments that dropped or truncated tables no longer reference: their files can go.
    pub unreferenced_segments: Vec<SegmentRecord>,
    /// Sequences set back to their start (TRUNCATE ... RESTART IDENTITY).
    pub restarted_sequences: Vec<u64>,
}

impl Command {
    /// Whether applying this changes users, namespaces or table definitions (what sessions
    /// cache between statements).
    pub fn changes_catalog(&self) -> bool {
        match self {
            Command::PutUser(_)
            | Command::DropUser { .. }
            | Command::CreateNamespace(_)
            | Command::DropNamespace { .. }
            | Command::CreateTable(_)
            | Command::AlterTable(_)
            | Command::DropTable { .. }
            | Command::TruncateTable { .. }
            | Command::RenameTable { .. }
            | Command::RenameColumn { .. }
            | Command::CreateSequence(_)
            | Command::AlterSequence { .. }
            | Command::DropSequence { .. }
            | Command::CreateView { .. }
            | Command::DropView { .. } => true,
            Command::Batch(commands) => commands.iter().any(Command::changes_catalog),
            _ => false,
        }
    }

    /// Whether applying this may set sequences back (TRUNCATE ... RESTART IDENTITY).
    pub fn restarts_sequences(&self) -> bool {
        match self {
            Command::TruncateTable {
                restart_identity, ..
            } => *restart_identity,
            Command::Batch(commands) => commands.iter().any(Command::restarts_sequences),
            _ => false,
        }
    }

    /// About how many bytes this command's write batch takes, so that a bulk write's batch is
    /// allocated once instead of grown (and copied) a doubling at a time.
    pub(super) fn batch_size_hint(&self) -> usize {
        // Per entry: tag, column family id, two varint lengths, the stored row's version.
        const ENTRY_OVERHEAD: usize = 24;
        match self {
            Command::WriteRows { writes, .. } => writes
                .iter()
                .map(|w| w.key.len() + w.value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD)
                .sum(),
            Command::Batch(commands) => commands.iter().map(Command::batch_size_hint).sum(),
            _ => 0,
        }
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
            Command::CreateNamespace(ns) => {
                let key = catalog_keys::namespace(&ns.name);
                if ctx.get(CF_CATALOG, &key)?.is_some() {
                    return Err(Conflict::NamespaceExists(ns.name.clone()).into());
                }
                ctx.put(batch, CF_CATALOG, key, records::encode(ns));
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
            Command::WriteRows {
                table_id,
                writes,
                row_id_high_water,
            } => {
                match ctx.begin_row_writes(writes)? {
                    Some(order) => write_new_rows(ctx, batch, *table_id, writes, order)?,
                    None => {
                        for write in writes {
                            write_row(ctx, batch, *table_id, write)?;
                        }
                    }
                }
                if let Some(high) = row_id_high_water {
                    let name = super::row_id_counter(*table_id);
                    let current = ctx.counter(&name)?;
                    if *high > current {
                        ctx.put(batch, CF_META, name, high.to_be_bytes().to_vec());
                    }
                }
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
                    let id = ctx.next_counter(batch, b"next_table_id".to_vec())?;
                    ctx.applied.table_ids.push(id);
                }
            }
            Command::StartSequence(sequence) => sequences::start(ctx, batch, sequence)?,
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
        }
        Ok(())
    }
}

fn flush_segment(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    segment: &SegmentRecord,
    flushed: &[(Vec<u8>, u64, bool)],
) -> StorageResult<()> {
    let mut current = Vec::with_capacity(flushed.len());
    for (key, version, _) in flushed {
        current.push(match ctx.get(CF_ROWS, key)? {
            Some(stored) => rows::stored_version(&stored)? == *version,
            None => false,
        });
    }
    // A segment none of whose rows is still current (its table was truncated or dropped
    // since the flush read it, or every row rewritten) is not published: its file is left
    // unreferenced, for the flush job to delete (or the start-up sweep after a crash).
    let publish = flushed
        .iter()
        .zip(&current)
        .any(|((_, _, tombstone), current)| *current && !tombstone);
    // The segment holds the flushed rows that are not deletions, in this order.
    let mut position = 0u64;
    for ((key, version, tombstone), still_current) in flushed.iter().zip(current) {
        let row = position;
        if !tombstone {
            position += 1;
        }
        if !still_current {
            // Rewritten, or flushed by another flush, since this flush read it: the segment's
            // copy is stale or a duplicate, and nothing else changes.
            if !tombstone && publish {
                ctx.put(
                    batch,
                    CF_DEAD_KEYS,
                    dead_key(segment.segment_id, key),
                    Vec::new(),
                );
            }
            continue;
        }
        if let Some(old) = ctx.get(CF_COLD_INDEX, key)? {
            let old = decode_cold_entry(&old)?;
            ctx.put(
                batch,
                CF_DEAD_KEYS,
                dead_key(old.segment_id, key),
                Vec::new(),
            );
        }
        if *tombstone {
            ctx.delete(batch, CF_COLD_INDEX, key.clone());
        } else {
            ctx.put(
                batch,
                CF_COLD_INDEX,
                key.clone(),
                cold_entry(segment.segment_id, *version, row),
            );
        }
        ctx.delete(batch, CF_ROWS, key.clone());
    }
    if publish {
        ctx.put(
            batch,
            CF_CATALOG,
            catalog_keys::segment(segment.table_id, segment.segment_id),
            records::encode(segment),
        );
    } else {
        ctx.applied.unpublished_segments.push(segment.segment_id);
    }
    Ok(())
}

/// The version of the live row under `key`, hot or cold; `None` when there is none.
fn live_version(ctx: &ApplyContext, key: &[u8]) -> StorageResult<Option<u64>> {
    if let Some(stored) = ctx.get(CF_ROWS, key)? {
        return (rows::stored_payload(&stored) != TOMBSTONE)
            .then(|| rows::stored_version(&stored))
            .transpose();
    }
    Ok(ctx
        .get(CF_COLD_INDEX, key)?
        .map(|entry| decode_cold_entry(&entry))
        .transpose()?
        .map(|entry| entry.version))
}

/// Fails the command when `write` expects another state of its row than the current one.
fn check_expectation(ctx: &ApplyContext, table_id: u64, write: &RowWrite) -> StorageResult<()> {
    match (write.expect, live_version(ctx, &write.key)?) {
        (Expect::Anything, _) | (Expect::Absent, None) => Ok(()),
        (Expect::Version(v), Some(current)) if v == current => Ok(()),
        (Expect::Absent, Some(_)) => Err(Conflict::DuplicateKey {
            table_id,
            key: write.key.clone(),
        }
        .into()),
        (Expect::Version(_), _) => Err(Conflict::RowChanged { table_id }.into()),
    }
}

/// Writes rows, in the key `order` [`ApplyContext::begin_row_writes`] chose, into a range that
/// held nothing when the command started; they are recorded as one sorted run.
fn write_new_rows<'a>(
    ctx: &mut ApplyContext<'a>,
    batch: &mut WriteBatch,
    table_id: u64,
    writes: &'a [RowWrite],
    order: Vec<usize>,
) -> StorageResult<()> {
    let rows_cf = cf(ctx.db, CF_ROWS);
    let mut stored = Vec::new();
    for write in order.iter().map(|&i| &writes[i]) {
        check_expectation(ctx, table_id, write)?;
        // begin_row_writes admits only writes that carry a row.
        if let Some(row) = &write.value {
            rows::store_row_into(ctx.seq, row, &mut stored);
            batch.put_cf(rows_cf, &write.key, &stored);
        }
    }
    ctx.end_row_writes(writes, order);
    Ok(())
}

fn write_row(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    table_id: u64,
    write: &RowWrite,
) -> StorageResult<()> {
    check_expectation(ctx, table_id, write)?;
    let key = write.key.clone();
    match &write.value {
        Some(value) => {
            let stored = rows::stored_row(ctx.seq, value);
            ctx.put(batch, CF_ROWS, key, stored);
        }
        // A flushed row is hidden by a tombstone until the next flush records it as dead.
        None if ctx.get(CF_COLD_INDEX, &key)?.is_some() => {
            ctx.put(batch, CF_ROWS, key, rows::stored_row(ctx.seq, TOMBSTONE));
        }
        None => ctx.delete(batch, CF_ROWS, key),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_entries_carry_a_row_position_and_older_ones_read_without_it() {
        let entry = decode_cold_entry(&cold_entry(4, 99, 12)).unwrap();
        assert_eq!(
            entry,
            ColdEntry {
                segment_id: 4,
                version: 99,
                row: Some(12)
            }
        );
        let mut legacy = 4u64.to_be_bytes().to_vec();
        legacy.extend_from_slice(&99u64.to_be_bytes());
        assert_eq!(decode_cold_entry(&legacy).unwrap().row, None);
        assert!(decode_cold_entry(&legacy[..12]).is_err());
    }
}
