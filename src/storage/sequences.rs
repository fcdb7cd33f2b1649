//! Sequences: their definitions in the catalog, the durable position each has reached, and the
//! allocator that hands values out of ranges reserved ahead.
//!
//! A value is handed out only after a position past it is durable (the reserving command is
//! applied, and fsynced with `sync_writes`, before any value of its range leaves), so no crash
//! can hand the same value out twice; the values of a range not used before a restart are lost,
//! as gaps, like PostgreSQL's pre-logged 32. Ranges are shared by every session, so a setval
//! or ALTER SEQUENCE ... RESTART takes effect for all of them at once.

use std::collections::HashMap;

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::command::{ApplyContext, Command};
use super::{
    CF_CATALOG, CF_META, Conflict, StorageError, StorageResult, Store, catalog_keys, records,
};
use crate::model::types::SqlType;

/// Values reserved at least per reservation: a bulk insert or a busy table does not pay a
/// durable write per value (PostgreSQL logs 32 ahead for the same reason).
const MIN_RESERVED: u64 = 32;

/// How often a reservation is tried again after other nodes of a cluster reserved first.
const SEQUENCE_RESERVE_ATTEMPTS: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceRecord {
    /// Assigned when the sequence is created, from the counter tables use (so the relation
    /// OIDs catalogs derive from them never collide).
    pub sequence_id: u64,
    pub namespace: String,
    pub name: String,
    /// `AS smallint | integer | bigint`: the default bounds come from it.
    pub data_type: SqlType,
    pub increment: i64,
    pub min_value: i64,
    pub max_value: i64,
    pub start: i64,
    pub cache: i64,
    pub cycle: bool,
    /// The column that uses this sequence (SERIAL, IDENTITY, `OWNED BY`): dropping its table
    /// drops the sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<OwnedBy>,
    pub created_at: i64,
}

/// A column of a table in the sequence's own namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedBy {
    pub table: String,
    pub column: String,
}

/// How far a sequence has gone, as stored: what survives a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencePosition {
    /// The first value never handed out; `None` once a sequence without CYCLE has handed out
    /// its last value.
    pub next: Option<i64>,
    /// The last value reserved (`pg_sequences.last_value`); `None` before the first.
    pub last: Option<i64>,
}

impl SequenceRecord {
    fn ascending(&self) -> bool {
        self.increment > 0
    }

    /// Where a sequence goes after handing out `value`: the next value, the wrapped-around
    /// first one with CYCLE, or nowhere.
    pub fn after(&self, value: i64) -> Option<i64> {
        let next = value as i128 + self.increment as i128;
        if (self.min_value as i128..=self.max_value as i128).contains(&next) {
            Some(next as i64)
        } else if self.cycle {
            Some(if self.ascending() {
                self.min_value
            } else {
                self.max_value
            })
        } else {
            None
        }
    }

    /// The position of a new or restarted sequence: its start value next.
    fn restarted(&self) -> SequencePosition {
        SequencePosition {
            next: Some(self.start),
            last: None,
        }
    }

    /// The error of a sequence that has nothing left to hand out.
    pub fn exhausted(&self) -> Conflict {
        Conflict::SequenceExhausted {
            name: self.name.clone(),
            ascending: self.ascending(),
            bound: if self.ascending() {
                self.max_value
            } else {
                self.min_value
            },
        }
    }
}

fn position_key(sequence_id: u64) -> Vec<u8> {
    format!("seq_position/{sequence_id}").into_bytes()
}

fn put_position(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    sequence_id: u64,
    position: SequencePosition,
) {
    ctx.put(
        batch,
        CF_META,
        position_key(sequence_id),
        records::encode(&position),
    );
}

/// Values of a reserved range not handed out yet.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ReservedRange {
    next: i64,
    left: u64,
}

pub(super) type ReservedRanges = HashMap<u64, ReservedRange>;

impl Store {
    pub fn sequence(&self, namespace: &str, name: &str) -> StorageResult<Option<SequenceRecord>> {
        self.get_record(CF_CATALOG, &catalog_keys::sequence(namespace, name))
    }

    pub fn sequences(&self) -> StorageResult<Vec<SequenceRecord>> {
        self.scan_records(CF_CATALOG, &catalog_keys::sequences())
    }

    pub fn sequence_position(&self, sequence_id: u64) -> StorageResult<Option<SequencePosition>> {
        self.get_record(CF_META, &position_key(sequence_id))
    }

    /// The next `count` values of `sequence`, in order.
    pub fn next_sequence_values(
        &self,
        sequence: &SequenceRecord,
        count: usize,
    ) -> StorageResult<Vec<i64>> {
        let mut ranges = self.sequence_ranges.lock().expect("sequence ranges lock");
        let mut values = Vec::with_capacity(count);
        while values.len() < count {
            let range = ranges.entry(sequence.sequence_id).or_default();
            if range.left == 0 {
                let wanted = ((count - values.len()) as u64)
                    .max(sequence.cache.max(1) as u64)
                    .max(MIN_RESERVED);
                *range = self.reserve(sequence, wanted)?;
            }
            while range.left > 0 && values.len() < count {
                values.push(range.next);
                range.left -= 1;
                // Past the range's last value the sum may overflow; it is never read then.
                range.next = range.next.wrapping_add(sequence.increment);
            }
        }
        Ok(values)
    }

    /// Makes the next `wanted` values (fewer when the sequence's bound comes first) durable as
    /// handed out, and returns them as a range.
    fn reserve(&self, sequence: &SequenceRecord, wanted: u64) -> StorageResult<ReservedRange> {
        let mut attempts = 0;
        loop {
            match self.reserve_once(sequence, wanted) {
                // Another node reserved first; its move is applied here by now (a commit
                // returns once this node has applied it), so the next read sees it.
                Err(StorageError::Conflict(Conflict::SequenceMoved(_)))
                    if attempts < SEQUENCE_RESERVE_ATTEMPTS =>
                {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    fn reserve_once(&self, sequence: &SequenceRecord, wanted: u64) -> StorageResult<ReservedRange> {
        let position = self
            .sequence_position(sequence.sequence_id)?
            .ok_or_else(|| Conflict::NoSuchSequence(sequence.name.clone()))?;
        let first = position.next.ok_or_else(|| sequence.exhausted())?;
        let increment = sequence.increment as i128;
        let bound = if sequence.ascending() {
            sequence.max_value
        } else {
            sequence.min_value
        } as i128;
        let available = (bound - first as i128) / increment + 1;
        if available <= 0 {
            return Err(sequence.exhausted().into());
        }
        let take = available.min(wanted as i128);
        let last = (first as i128 + (take - 1) * increment) as i64;
        self.apply(&Command::MoveSequence {
            sequence_id: sequence.sequence_id,
            expect: Some(position),
            to: SequencePosition {
                next: sequence.after(last),
                last: Some(last),
            },
        })?;
        Ok(ReservedRange {
            next: first,
            left: take as u64,
        })
    }

    /// setval: moves a sequence, dropping the values reserved under the old position so that
    /// none is handed out after it.
    pub fn set_sequence_position(
        &self,
        sequence_id: u64,
        to: SequencePosition,
    ) -> StorageResult<()> {
        let mut ranges = self.sequence_ranges.lock().expect("sequence ranges lock");
        self.apply(&Command::MoveSequence {
            sequence_id,
            expect: None,
            to,
        })?;
        ranges.remove(&sequence_id);
        Ok(())
    }

    /// ALTER SEQUENCE: the new definition, restarting at `restart` or else continuing after
    /// the last value handed out (not after the reserved ones, which were never seen), as
    /// PostgreSQL continues after its last value.
    pub fn alter_sequence(
        &self,
        current: &SequenceRecord,
        sequence: SequenceRecord,
        restart: Option<i64>,
    ) -> StorageResult<()> {
        let mut ranges = self.sequence_ranges.lock().expect("sequence ranges lock");
        let id = current.sequence_id;
        let stored = self
            .sequence_position(id)?
            .ok_or_else(|| Conflict::NoSuchSequence(current.name.clone()))?;
        let position = match restart {
            Some(next) => SequencePosition {
                next: Some(next),
                last: None,
            },
            None => {
                let handed = match ranges.get(&id) {
                    Some(range) if range.left > 0 => {
                        Some(range.next.wrapping_sub(current.increment))
                    }
                    _ => stored.last,
                };
                match handed {
                    Some(last) => SequencePosition {
                        next: sequence.after(last),
                        last: Some(last),
                    },
                    None => stored,
                }
            }
        };
        self.apply(&Command::AlterSequence { sequence, position })?;
        ranges.remove(&id);
        Ok(())
    }
}

/// Creates a sequence at its start value.
pub(super) fn create(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    sequence: &SequenceRecord,
) -> StorageResult<()> {
    let namespace = &sequence.namespace;
    check_new_relation(ctx, namespace, &sequence.name)?;
    let mut sequence = sequence.clone();
    // A sequence a transaction block creates had its id reserved, and its position written
    // (so nextval works inside the block), when the block created it: values handed out
    // since stay handed out.
    if sequence.sequence_id == 0 {
        sequence.sequence_id = ctx.next_relation_id(batch)?;
    }
    if ctx
        .get(CF_META, &position_key(sequence.sequence_id))?
        .is_none()
    {
        put_position(ctx, batch, sequence.sequence_id, sequence.restarted());
    }
    ctx.put(
        batch,
        CF_CATALOG,
        catalog_keys::sequence(namespace, &sequence.name),
        records::encode(&sequence),
    );
    Ok(())
}

/// 3F000 unless the namespace exists (this command's own changes included).
pub(super) fn require_namespace(ctx: &ApplyContext, namespace: &str) -> StorageResult<()> {
    match ctx.get(CF_CATALOG, &catalog_keys::namespace(namespace))? {
        Some(_) => Ok(()),
        None => Err(Conflict::NoSuchNamespace(namespace.to_owned()).into()),
    }
}

/// A new relation needs its namespace and a name no table, sequence or view has.
pub(super) fn check_new_relation(
    ctx: &ApplyContext,
    namespace: &str,
    name: &str,
) -> StorageResult<()> {
    require_namespace(ctx, namespace)?;
    if relation_exists(ctx, namespace, name)? {
        return Err(Conflict::TableExists(namespace.to_owned(), name.to_owned()).into());
    }
    Ok(())
}

/// Whether a table, a sequence, a view or an index already has this name (they share PostgreSQL's
/// relations).
pub(super) fn relation_exists(
    ctx: &ApplyContext,
    namespace: &str,
    name: &str,
) -> StorageResult<bool> {
    Ok(ctx.table(namespace, name)?.is_some()
        || ctx
            .get(CF_CATALOG, &catalog_keys::sequence(namespace, name))?
            .is_some()
        || ctx
            .get(CF_CATALOG, &catalog_keys::view(namespace, name))?
            .is_some()
        || ctx
            .get(CF_CATALOG, &catalog_keys::index_name(namespace, name))?
            .is_some())
}

fn current(
    ctx: &ApplyContext,
    namespace: &str,
    name: &str,
) -> StorageResult<Option<SequenceRecord>> {
    ctx.record(&catalog_keys::sequence(namespace, name))
}

/// Replaces a sequence's definition and position.
pub(super) fn alter(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    sequence: &SequenceRecord,
    position: SequencePosition,
) -> StorageResult<()> {
    match current(ctx, &sequence.namespace, &sequence.name)? {
        Some(found) if found.sequence_id == sequence.sequence_id => {}
        _ => return Err(Conflict::TableChanged(sequence.name.clone()).into()),
    }
    put_position(ctx, batch, sequence.sequence_id, position);
    ctx.put(
        batch,
        CF_CATALOG,
        catalog_keys::sequence(&sequence.namespace, &sequence.name),
        records::encode(sequence),
    );
    Ok(())
}

pub(super) fn drop(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    name: &str,
) -> StorageResult<()> {
    let sequence =
        current(ctx, namespace, name)?.ok_or_else(|| Conflict::NoSuchSequence(name.to_owned()))?;
    remove(ctx, batch, &sequence);
    Ok(())
}

fn remove(ctx: &mut ApplyContext, batch: &mut WriteBatch, sequence: &SequenceRecord) {
    ctx.delete(batch, CF_META, position_key(sequence.sequence_id));
    ctx.delete(
        batch,
        CF_CATALOG,
        catalog_keys::sequence(&sequence.namespace, &sequence.name),
    );
}

/// The sequences a table's columns own, this command's own changes included.
pub(super) fn owned_by(
    ctx: &ApplyContext,
    namespace: &str,
    table: &str,
) -> StorageResult<Vec<SequenceRecord>> {
    Ok(ctx
        .records_in::<SequenceRecord>(&catalog_keys::sequences_of(namespace))?
        .into_iter()
        .filter(|s| s.owned_by.as_ref().is_some_and(|o| o.table == table))
        .collect())
}

/// Drops the sequences owned by a table's columns, with the table.
pub(super) fn drop_owned_by(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    table: &str,
) -> StorageResult<()> {
    for sequence in &owned_by(ctx, namespace, table)? {
        remove(ctx, batch, sequence);
    }
    Ok(())
}

/// Starts the sequences owned by a table's columns over (TRUNCATE ... RESTART IDENTITY).
pub(super) fn restart_owned_by(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
    table: &str,
) -> StorageResult<()> {
    for sequence in owned_by(ctx, namespace, table)? {
        put_position(ctx, batch, sequence.sequence_id, sequence.restarted());
        ctx.applied.restarted_sequences.push(sequence.sequence_id);
    }
    Ok(())
}

/// Drops every sequence of a namespace (DROP SCHEMA ... CASCADE).
pub(super) fn drop_all_in(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    namespace: &str,
) -> StorageResult<()> {
    for sequence in ctx.records_in::<SequenceRecord>(&catalog_keys::sequences_of(namespace))? {
        remove(ctx, batch, &sequence);
    }
    Ok(())
}

/// Writes the start position of a sequence a transaction block creates, ahead of its COMMIT.
pub(super) fn start(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    sequence: &SequenceRecord,
) -> StorageResult<()> {
    if ctx
        .get(CF_META, &position_key(sequence.sequence_id))?
        .is_none()
    {
        put_position(ctx, batch, sequence.sequence_id, sequence.restarted());
    }
    Ok(())
}

/// Moves a sequence's position, if it is still where `expect` says (a reservation read it
/// under the allocator's lock; setval expects nothing).
pub(super) fn move_to(
    ctx: &mut ApplyContext,
    batch: &mut WriteBatch,
    sequence_id: u64,
    expect: Option<SequencePosition>,
    to: SequencePosition,
) -> StorageResult<()> {
    let key = position_key(sequence_id);
    let stored: SequencePosition = match ctx.get(CF_META, &key)? {
        Some(bytes) => records::decode(CF_META, &bytes)?,
        None => return Err(Conflict::NoSuchSequence(format!("#{sequence_id}")).into()),
    };
    // One node's allocator holds the ranges lock across its reservations; only another
    // node's can move the sequence meanwhile, and every node refuses this move alike.
    if expect.is_some_and(|expected| expected != stored) {
        return Err(Conflict::SequenceMoved(sequence_id).into());
    }
    ctx.put(batch, CF_META, key, records::encode(&to));
    Ok(())
}
