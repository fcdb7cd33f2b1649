//! ON CONFLICT's arbiters: the unique constraints that decide whether a proposed row
//! conflicts with a row already there (PostgreSQL's arbiter indexes), and the row each
//! proposed row meets through them.
//!
//! Without a conflict target every unique constraint is an arbiter (DO NOTHING only); a column
//! list names the primary key or the unique indexes on exactly those columns, in any order;
//! `ON CONSTRAINT` names one constraint. A row that conflicts on a unique constraint that is
//! not an arbiter still fails with a unique violation, as in PostgreSQL.

use std::collections::{HashMap, HashSet};

use datafusion::sql::sqlparser::ast::{ConflictTarget, OnConflictAction};

use super::column_index;
use super::insert::names_primary_key;
use crate::exec::{ExecError, ExecResult, Session};
use crate::storage::{IndexRecord, IndexState, TableRecord};

fn no_matching_constraint() -> ExecError {
    ExecError::InvalidColumnReference(
        "there is no unique or exclusion constraint matching the ON CONFLICT specification".into(),
    )
}

/// The constraints one INSERT ... ON CONFLICT checks its rows against.
#[derive(Debug, Clone, Default)]
pub(super) struct Arbiters {
    /// A proposed row conflicts with the live row under its own key.
    primary_key: bool,
    /// Ready unique indexes (and the UNIQUE constraints they enforce) a proposed row's values
    /// must not be taken in.
    indexes: Vec<IndexRecord>,
}

impl Arbiters {
    /// The primary key alone: a proposed row's key is all that is looked up.
    pub fn is_primary_key_only(&self) -> bool {
        self.primary_key && self.indexes.is_empty()
    }

    /// Whether a unique violation of `constraint` (as storage names it) is a conflict these
    /// arbiters decide, which a row committed since the check explains.
    pub fn decide_violations_of(&self, constraint: &str) -> bool {
        self.indexes
            .iter()
            .any(|i| i.constraint_name() == constraint)
    }

    pub fn decide_duplicate_keys(&self) -> bool {
        self.primary_key
    }
}

/// What a proposed row meets through the arbiters.
#[derive(Debug)]
pub(super) enum Meets {
    Nothing,
    /// A row proposed earlier in the same statement.
    Proposed,
    /// A live row: its key and version (`None`: an uncommitted row of this session's block).
    Existing {
        key: Vec<u8>,
        version: Option<u64>,
    },
}

/// The keys and arbiter entries of the rows a statement has proposed so far, and the block's
/// uncommitted rows by arbiter entry (read once per statement, when first needed).
#[derive(Debug, Default)]
pub(super) struct Proposals {
    keys: HashSet<Vec<u8>>,
    entries: HashSet<Vec<u8>>,
    pending_entries: Option<HashMap<Vec<u8>, Vec<u8>>>,
}

impl Proposals {
    /// Counts a row as proposed: later rows meeting its key or entries meet it.
    pub fn add(&mut self, key: &[u8], entries: Vec<Vec<u8>>) {
        self.keys.insert(key.to_vec());
        self.entries.extend(entries);
    }
}

impl Session {
    /// The arbiters of `ON CONFLICT [target] action` on `record`.
    pub(super) fn arbiters(
        &self,
        record: &TableRecord,
        target: Option<&ConflictTarget>,
        action: &OnConflictAction,
    ) -> ExecResult<Arbiters> {
        let has_primary_key = !record.primary_key.is_empty();
        let unique_indexes = || -> ExecResult<Vec<IndexRecord>> {
            Ok(self
                .catalog()
                .indexes_of(record.table_id)?
                .into_iter()
                .filter(|i| i.unique && i.state == IndexState::Ready)
                .collect())
        };
        match target {
            None => {
                if matches!(action, OnConflictAction::DoUpdate(_)) {
                    return Err(ExecError::Sql(crate::sql::SqlError::Syntax(
                        "ON CONFLICT DO UPDATE requires inference specification or constraint name"
                            .into(),
                    )));
                }
                Ok(Arbiters {
                    primary_key: has_primary_key,
                    indexes: unique_indexes()?,
                })
            }
            Some(ConflictTarget::Columns(columns)) => {
                if has_primary_key && names_primary_key(record, columns) {
                    return Ok(Arbiters {
                        primary_key: true,
                        indexes: Vec::new(),
                    });
                }
                let named = columns
                    .iter()
                    .map(|column| {
                        // PostgreSQL names no relation here.
                        let name = crate::sql::fold(column);
                        column_index(record, &name).map_err(|_| {
                            ExecError::UndefinedColumn(format!("column \"{name}\" does not exist"))
                        })
                    })
                    .collect::<ExecResult<HashSet<usize>>>()?;
                let indexes: Vec<IndexRecord> = unique_indexes()?
                    .into_iter()
                    .filter(|i| i.columns.iter().copied().collect::<HashSet<_>>() == named)
                    .collect();
                if indexes.is_empty() {
                    return Err(no_matching_constraint());
                }
                Ok(Arbiters {
                    primary_key: false,
                    indexes,
                })
            }
            Some(ConflictTarget::OnConstraint(name)) => {
                let name = match name.0.as_slice() {
                    [part] => part
                        .as_ident()
                        .map(crate::sql::fold)
                        .ok_or_else(no_matching_constraint)?,
                    _ => return Err(no_matching_constraint()),
                };
                if has_primary_key && name == format!("{}_pkey", record.name) {
                    return Ok(Arbiters {
                        primary_key: true,
                        indexes: Vec::new(),
                    });
                }
                let indexes: Vec<IndexRecord> = unique_indexes()?
                    .into_iter()
                    .filter(|i| i.constraint.as_deref() == Some(name.as_str()))
                    .collect();
                if indexes.is_empty() {
                    return Err(ExecError::UndefinedObject(format!(
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        record.name
                    )));
                }
                Ok(Arbiters {
                    primary_key: false,
                    indexes,
                })
            }
        }
    }

    /// What the proposed row (`key`, encoded `row`) meets through `arbiters`, and its arbiter
    /// entries (for [`Proposals::add`]).
    pub(super) fn conflict_of(
        &self,
        arbiters: &Arbiters,
        proposals: &mut Proposals,
        record: &TableRecord,
        (key, row): (&[u8], &[u8]),
    ) -> ExecResult<(Meets, Vec<Vec<u8>>)> {
        let mut entries = Vec::with_capacity(arbiters.indexes.len());
        for index in &arbiters.indexes {
            entries.extend(index.unique_entry(row)?);
        }
        if (arbiters.primary_key && proposals.keys.contains(key))
            || entries.iter().any(|e| proposals.entries.contains(e))
        {
            return Ok((Meets::Proposed, entries));
        }
        if arbiters.primary_key
            && let Some(version) = self.current_version(key)?
        {
            let key = key.to_vec();
            return Ok((Meets::Existing { key, version }, entries));
        }
        for entry in &entries {
            if let Some((key, version)) = self.unique_holder(arbiters, proposals, record, entry)? {
                return Ok((Meets::Existing { key, version }, entries));
            }
        }
        Ok((Meets::Nothing, entries))
    }

    /// The live row holding unique `entry`, as this session sees it: the block's own rows
    /// first, then a committed row the block has not changed.
    fn unique_holder(
        &self,
        arbiters: &Arbiters,
        proposals: &mut Proposals,
        record: &TableRecord,
        entry: &[u8],
    ) -> ExecResult<Option<(Vec<u8>, Option<u64>)>> {
        let truncated = self.pending.truncated(record.table_id);
        let tables = self.pending.tables.lock().expect("pending writes");
        let block_rows = tables.get(&record.table_id).filter(|rows| !rows.is_empty());
        if let Some(rows) = block_rows {
            // The block's rows are in no index until COMMIT: their entries, once a statement.
            if proposals.pending_entries.is_none() {
                let mut by_entry = HashMap::new();
                for (key, row) in rows {
                    let Some(row) = row else { continue };
                    for index in &arbiters.indexes {
                        if let Some(entry) = index.unique_entry(row)? {
                            by_entry.insert(entry, key.clone());
                        }
                    }
                }
                proposals.pending_entries = Some(by_entry);
            }
            if let Some(key) = proposals
                .pending_entries
                .as_ref()
                .and_then(|p| p.get(entry))
            {
                return Ok(Some((key.clone(), None)));
            }
        }
        if truncated {
            return Ok(None);
        }
        let Some(holder) = self.engine.store.view().unique_entry_row_key(entry)? else {
            return Ok(None);
        };
        // A committed row the block updated or deleted holds what its pending version holds.
        if block_rows.is_some_and(|rows| rows.contains_key(&holder)) {
            return Ok(None);
        }
        drop(tables);
        Ok(self
            .engine
            .store
            .live_version(&holder)?
            .map(|version| (holder, Some(version))))
    }
}

/// An INSERT's ON CONFLICT clause, resolved: what to do, and the constraints that decide.
#[derive(Debug, Clone, Copy)]
pub(super) struct OnConflict<'a> {
    pub action: &'a OnConflictAction,
    pub arbiters: &'a Arbiters,
}
