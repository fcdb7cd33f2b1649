//! FOREIGN KEY DDL: resolving a declared foreign key against the tables it joins (the
//! referenced key, the column pairs, their types, its name and the index that finds referring
//! rows), adding one to a table with rows (validating them), and the TRUNCATE rules referenced
//! tables follow. Storage enforces the constraints on every write (`storage::referential`).
//!
//! PostgreSQL scans the referencing table when a referenced row goes; KalamDB finds referring
//! rows through an index whose leading columns are the referencing ones, and creates one
//! (named like the constraint, dropped with it) when the table has none.

use datafusion::arrow::util::display::array_value_to_string;

use super::outcome::Outcome;
use super::{ExecError, ExecResult, Session, now_micros};
use crate::model::{ReferentialAction, TableKind};
use crate::sql::{ForeignKeySpec, SqlError, TableName};
use crate::storage::{Command, ForeignKeyRecord, IndexRecord, IndexState, TableRecord};

/// A foreign key resolved against its tables, ready to become commands.
pub(super) struct PlannedForeignKey {
    /// The index to create on the referencing table, when none it has fits.
    pub index: Option<IndexRecord>,
    pub record: ForeignKeyRecord,
    pub parent: TableRecord,
}

impl PlannedForeignKey {
    pub fn command(&self, table: &str) -> Command {
        Command::AddForeignKey {
            table: table.to_owned(),
            parent: (self.parent.namespace.clone(), self.parent.name.clone()),
            foreign_key: self.record.clone(),
        }
    }
}

fn invalid_foreign_key(message: String) -> ExecError {
    ExecError::InvalidForeignKey(message)
}

impl Session {
    /// Resolves `spec` declared on `child`. `creating`: the child is created by the same
    /// statement, with `new_indexes` (its UNIQUE constraints' indexes); `taken` holds the
    /// constraint names the table has or the statement chose, and gets this one's.
    pub(super) async fn plan_foreign_key(
        &self,
        child: &TableRecord,
        spec: &ForeignKeySpec,
        new_indexes: &[IndexRecord],
        taken: &mut Vec<String>,
        creating: bool,
    ) -> ExecResult<PlannedForeignKey> {
        if !matches!(child.kind, TableKind::Regular) {
            return Err(SqlError::Unsupported(format!(
                "foreign keys on stream table \"{}\" are not supported (streams are append-only logs)",
                child.name
            ))
            .into());
        }
        let refers_to_itself = spec.parent.name == child.name
            && spec
                .parent
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == child.namespace);
        let parent = if creating && refers_to_itself {
            child.clone()
        } else {
            self.resolve_table(&spec.parent)?
        };
        if !matches!(parent.kind, TableKind::Regular) {
            return Err(ExecError::WrongObjectType(format!(
                "referenced relation \"{}\" is not a table",
                parent.name
            )));
        }
        let position = |table: &TableRecord, name: &str| {
            table
                .columns
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| {
                    ExecError::UndefinedColumn(format!(
                        "column \"{name}\" referenced in foreign key constraint does not exist"
                    ))
                })
        };
        let declared: Vec<usize> = spec
            .columns
            .iter()
            .map(|c| position(child, c))
            .collect::<ExecResult<_>>()?;
        let parent_indexes: Vec<IndexRecord> = if creating && refers_to_itself {
            // The statement's own UNIQUE constraints: ready as soon as the empty table exists.
            new_indexes
                .iter()
                .cloned()
                .map(|mut index| {
                    index.state = IndexState::Ready;
                    index
                })
                .collect()
        } else {
            self.catalog().indexes_of(parent.table_id)?
        };
        let (parent_columns, parent_index) =
            referenced_key(&parent, spec, &parent_indexes, position)?;
        if declared.len() != parent_columns.len() {
            return Err(invalid_foreign_key(
                "number of referencing and referenced columns for foreign key disagree".into(),
            ));
        }
        // The referencing columns, paired in the order of the referenced key.
        let referenced: Vec<usize> = if spec.parent_columns.is_empty() {
            parent_columns.clone()
        } else {
            spec.parent_columns
                .iter()
                .map(|c| position(&parent, c))
                .collect::<ExecResult<_>>()?
        };
        let columns: Vec<usize> = parent_columns
            .iter()
            .map(|p| declared[referenced.iter().position(|r| r == p).unwrap_or(0)])
            .collect();
        // Where each named pair went (a column may be named twice, a referenced one not).
        let declared_order: Vec<usize> = referenced
            .iter()
            .map(|r| parent_columns.iter().position(|p| p == r).unwrap_or(0))
            .collect();
        let declared_order = if declared_order.iter().copied().eq(0..columns.len()) {
            Vec::new()
        } else {
            declared_order
        };
        let name = match &spec.name {
            Some(name) if taken.contains(name) => {
                return Err(ExecError::DuplicateObject(format!(
                    "constraint \"{name}\" for relation \"{}\" already exists",
                    child.name
                )));
            }
            Some(name) => name.clone(),
            None => {
                let base =
                    self.free_relation_name(&child.namespace, &child.name, &spec.columns, "fkey")?;
                super::indexes::numbered_past(base, taken)
            }
        };
        for (&c, &p) in columns.iter().zip(&parent_columns) {
            let (child_type, parent_type) = (child.columns[c].sql_type, parent.columns[p].sql_type);
            if !child_type.same_kind(parent_type) {
                return Err(ExecError::DatatypeMismatch(format!(
                    "foreign key constraint \"{name}\" cannot be implemented: key columns \"{}\" and \"{}\" are of incompatible types: {} and {}",
                    child.columns[c].name,
                    parent.columns[p].name,
                    child_type.sql_name(),
                    parent_type.sql_name()
                )));
            }
        }
        taken.push(name.clone());
        let existing = if creating {
            Vec::new()
        } else {
            self.catalog().indexes_of(child.table_id)?
        };
        let fitting = existing
            .iter()
            .filter(|i| i.state == IndexState::Ready)
            .chain(new_indexes)
            .find(|i| i.columns.starts_with(&columns));
        let index = match fitting {
            Some(_) => None,
            None => {
                let names: Vec<String> = columns
                    .iter()
                    .map(|&c| child.columns[c].name.clone())
                    .collect();
                let index_name = if self.relation_name_taken(&child.namespace, &name)?
                    || new_indexes.iter().any(|i| i.name == name)
                {
                    let base =
                        self.free_relation_name(&child.namespace, &child.name, &names, "fkey")?;
                    let taken: Vec<String> = new_indexes.iter().map(|i| i.name.clone()).collect();
                    super::indexes::numbered_past(base, &taken)
                } else {
                    name.clone()
                };
                Some(self.new_index(child, Some(&index_name), &names, false, None)?)
            }
        };
        let defaults = if [spec.on_delete, spec.on_update].contains(&ReferentialAction::SetDefault)
        {
            let mut defaults = Vec::with_capacity(columns.len());
            for &c in &columns {
                defaults.push(self.constant_default(child, c).await?);
            }
            defaults
        } else {
            Vec::new()
        };
        let index_name = match (&index, fitting) {
            (Some(index), _) => index.name.clone(),
            (None, Some(fitting)) => fitting.name.clone(),
            (None, None) => unreachable!("an index is created when none fits"),
        };
        let record = ForeignKeyRecord {
            name,
            constraint_id: 0,
            namespace: child.namespace.clone(),
            table_id: child.table_id,
            columns,
            layout: Vec::new(),
            index: index_name,
            index_id: 0,
            owns_index: index.is_some(),
            parent_id: parent.table_id,
            parent_columns,
            parent_layout: Vec::new(),
            parent_index,
            parent_index_id: 0,
            on_delete: spec.on_delete,
            on_update: spec.on_update,
            defaults,
            deferrable: spec.deferrable,
            initially_deferred: spec.initially_deferred,
            created_at: now_micros(),
            declared_order,
        };
        Ok(PlannedForeignKey {
            index,
            record,
            parent,
        })
    }

    /// What ON ... SET DEFAULT writes to column `column`: its default, evaluated now (so it
    /// must not draw from a sequence), or NULL without one.
    pub(super) async fn constant_default(
        &self,
        table: &TableRecord,
        column: usize,
    ) -> ExecResult<Vec<u8>> {
        let definition = &table.columns[column];
        let Some(default) = &definition.default else {
            return Ok(crate::storage::datums::NULL_DATUM.to_vec());
        };
        if !super::sequences::sequences_in_default(default).is_empty() {
            return Err(SqlError::Unsupported(format!(
                "ON DELETE/UPDATE SET DEFAULT needs a default that does not call nextval (column \"{}\")",
                definition.name
            ))
            .into());
        }
        self.default_datum(table, definition, default).await
    }

    /// `ALTER TABLE t ADD [CONSTRAINT name] FOREIGN KEY ...`: the constraint, then a check
    /// that every row the table has refers to an existing key. A failed check leaves nothing
    /// behind.
    pub(super) async fn add_foreign_key(
        &self,
        table: &TableName,
        spec: &ForeignKeySpec,
    ) -> ExecResult<Outcome> {
        let record = self.resolve_table(table)?;
        let mut taken = self.constraint_names(&record)?;
        let planned = self
            .plan_foreign_key(&record, spec, &[], &mut taken, false)
            .await?;
        if let Some(index) = &planned.index {
            self.add_index(&record, index.clone(), false).await?;
        }
        let added = self.apply_ddl(planned.command(&record.name));
        let violation = match added {
            Ok(_) => self.first_orphan(&record, &planned).await,
            Err(e) => Err(e.into()),
        };
        let error = match violation {
            Ok(None) => return Ok(Outcome::Done { tag: "ALTER TABLE" }),
            Ok(Some(detail)) => ExecError::ForeignKeyViolation {
                message: format!(
                    "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                    record.name, planned.record.name
                ),
                detail,
            },
            Err(e) => e,
        };
        // Inside a block the failed statement fails the block, which leaves nothing anyway.
        if !self.in_transaction_block() {
            let undo = match self
                .catalog()
                .foreign_keys_of(record.table_id)?
                .iter()
                .any(|fk| fk.name == planned.record.name)
            {
                true => Command::DropForeignKey {
                    table_id: record.table_id,
                    name: planned.record.name.clone(),
                },
                false => match &planned.index {
                    Some(index) => Command::DropIndex {
                        namespace: index.namespace.clone(),
                        name: index.name.clone(),
                    },
                    None => return Err(error),
                },
            };
            if let Err(e) = self.apply_ddl(undo) {
                tracing::warn!("removing a foreign key that failed validation: {e}");
            }
        }
        Err(error)
    }

    /// DETAIL for the first row of `child` whose key the referenced table lacks, if any.
    async fn first_orphan(
        &self,
        child: &TableRecord,
        planned: &PlannedForeignKey,
    ) -> ExecResult<Option<String>> {
        let quote = super::sequences::quote_ident;
        let names = |table: &TableRecord, columns: &[usize]| -> Vec<String> {
            columns
                .iter()
                .map(|&c| table.columns[c].name.clone())
                .collect()
        };
        let child_names = names(child, &planned.record.columns);
        let parent_names = names(&planned.parent, &planned.record.parent_columns);
        let quoted = |names: &[String]| {
            names
                .iter()
                .map(|n| quote(n))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let not_null = child_names
            .iter()
            .map(|n| format!("{} IS NOT NULL", quote(n)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let query = format!(
            "SELECT {} FROM {} WHERE {not_null} EXCEPT SELECT {} FROM {} LIMIT 1",
            quoted(&child_names),
            super::sequences::qualified(&child.namespace, &child.name),
            quoted(&parent_names),
            super::sequences::qualified(&planned.parent.namespace, &planned.parent.name),
        );
        let batches = self.internal_query(&query).await?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let values: Vec<String> = batch
            .columns()
            .iter()
            .map(|c| array_value_to_string(c, 0).unwrap_or_else(|_| "?".into()))
            .collect();
        Ok(Some(format!(
            "Key ({})=({}) is not present in table \"{}\".",
            child_names.join(", "),
            values.join(", "),
            planned.parent.name
        )))
    }

    /// `SET CONSTRAINTS {ALL | names} {DEFERRED | IMMEDIATE}`. Only foreign keys declared
    /// DEFERRABLE can be deferred. Inside a block the setting holds until COMMIT, and making
    /// constraints immediate checks what the block deferred so far, now; outside one it has
    /// nothing to act on, as in PostgreSQL.
    pub(super) fn set_constraints(
        &self,
        names: Option<&[TableName]>,
        deferred: bool,
    ) -> ExecResult<Outcome> {
        let done = Outcome::Done {
            tag: "SET CONSTRAINTS",
        };
        let names = match names {
            None => None,
            Some(names) => Some(self.deferrable_constraints(names)?),
        };
        if !self.in_transaction_block() {
            return Ok(done);
        }
        let command = Command::SetConstraintTiming { names, deferred };
        if !deferred {
            let mut commands = self.transaction().commands().to_vec();
            commands.push(command.clone());
            self.engine.store.dry_run(&commands)?;
        }
        self.transaction().push(command);
        Ok(done)
    }

    /// The foreign keys `names` name (each along the search path unless qualified), all of
    /// them deferrable.
    fn deferrable_constraints(&self, names: &[TableName]) -> ExecResult<Vec<String>> {
        let keys = self.catalog().all_foreign_keys()?;
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            let namespaces = self.candidate_namespaces(name)?;
            let matching: Vec<&ForeignKeyRecord> = keys
                .iter()
                .filter(|fk| fk.name == name.name && namespaces.contains(&fk.namespace))
                .collect();
            if matching.is_empty() {
                let other = self.catalog().tables()?.into_iter().any(|t| {
                    namespaces.contains(&t.namespace)
                        && self
                            .constraint_names(&t)
                            .is_ok_and(|names| names.contains(&name.name))
                });
                return Err(if other {
                    ExecError::WrongObjectType(format!(
                        "constraint \"{}\" is not deferrable",
                        name.name
                    ))
                } else {
                    ExecError::UndefinedObject(format!(
                        "constraint \"{}\" does not exist",
                        name.name
                    ))
                });
            }
            if matching.iter().any(|fk| !fk.deferrable) {
                return Err(ExecError::WrongObjectType(format!(
                    "constraint \"{}\" is not deferrable",
                    name.name
                )));
            }
            found.push(name.name.clone());
        }
        Ok(found)
    }

    /// The names of the constraints a table has: primary key, UNIQUE, CHECK, FOREIGN KEY.
    pub(super) fn constraint_names(&self, record: &TableRecord) -> ExecResult<Vec<String>> {
        let mut names: Vec<String> = record.checks.iter().map(|c| c.name.clone()).collect();
        if !record.primary_key.is_empty() {
            names.push(format!("{}_pkey", record.name));
        }
        let catalog = self.catalog();
        names.extend(
            catalog
                .indexes_of(record.table_id)?
                .into_iter()
                .filter_map(|i| i.constraint),
        );
        names.extend(
            catalog
                .foreign_keys_of(record.table_id)?
                .into_iter()
                .map(|fk| fk.name),
        );
        Ok(names)
    }

    /// The tables TRUNCATE of `tables` must also empty: with `cascade`, every table whose
    /// foreign keys refer to one being emptied (repeatedly); without, such a table not in
    /// the list is an error.
    pub(super) fn truncated_with(
        &self,
        tables: &mut Vec<TableRecord>,
        cascade: bool,
    ) -> ExecResult<()> {
        let keys = self.catalog().all_foreign_keys()?;
        let mut at = 0;
        while at < tables.len() {
            let parent = tables[at].table_id;
            for fk in keys.iter().filter(|fk| fk.parent_id == parent) {
                if tables.iter().any(|t| t.table_id == fk.table_id) {
                    continue;
                }
                let child = self
                    .catalog()
                    .tables()?
                    .into_iter()
                    .find(|t| t.table_id == fk.table_id);
                let Some(child) = child else { continue };
                if !cascade {
                    return Err(SqlError::Unsupported(format!(
                        "cannot truncate a table referenced in a foreign key constraint: table \"{}\" references \"{}\"; truncate table \"{}\" at the same time, or use TRUNCATE ... CASCADE",
                        child.name, tables[at].name, child.name
                    ))
                    .into());
                }
                tables.push(child);
            }
            at += 1;
        }
        Ok(())
    }
}

/// The referenced key `spec` names on `parent`: its columns in key order, and the unique
/// index that holds it (`None`: the primary key).
fn referenced_key(
    parent: &TableRecord,
    spec: &ForeignKeySpec,
    parent_indexes: &[IndexRecord],
    position: impl Fn(&TableRecord, &str) -> ExecResult<usize>,
) -> ExecResult<(Vec<usize>, Option<String>)> {
    if spec.parent_columns.is_empty() {
        if parent.primary_key.is_empty() {
            return Err(ExecError::UndefinedObject(format!(
                "there is no primary key for referenced table \"{}\"",
                parent.name
            )));
        }
        return Ok((parent.primary_key.clone(), None));
    }
    let mut wanted: Vec<usize> = spec
        .parent_columns
        .iter()
        .map(|c| position(parent, c))
        .collect::<ExecResult<_>>()?;
    wanted.sort_unstable();
    let same_set = |columns: &[usize]| {
        let mut sorted = columns.to_vec();
        sorted.sort_unstable();
        sorted == wanted
    };
    if same_set(&parent.primary_key) {
        return Ok((parent.primary_key.clone(), None));
    }
    match parent_indexes
        .iter()
        .find(|i| i.unique && i.state == IndexState::Ready && same_set(&i.columns))
    {
        Some(index) => Ok((index.columns.clone(), Some(index.name.clone()))),
        None => Err(invalid_foreign_key(format!(
            "there is no unique constraint matching given keys for referenced table \"{}\"",
            parent.name
        ))),
    }
}
