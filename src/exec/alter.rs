//! ALTER TABLE ... RENAME TO, SET SCHEMA, RENAME COLUMN, DROP COLUMN and ALTER COLUMN (SET/DROP
//! DEFAULT, SET/DROP NOT NULL). ADD COLUMN is with the other column DDL in `ddl`.

use super::dml::column_index;
use super::outcome::Outcome;
use super::{ExecError, ExecResult, Session};
use crate::sql::{ColumnSpec, TableName};
use crate::storage::Command;

impl Session {
    pub(super) fn rename_table(&self, table: &TableName, new_name: &str) -> ExecResult<Outcome> {
        let record = self.resolve_table(table)?;
        let mut commands = vec![Command::RenameTable {
            namespace: record.namespace.clone(),
            name: record.name.clone(),
            table_id: record.table_id,
            new_name: new_name.to_owned(),
        }];
        commands.extend(self.views_renamed_with(
            (&record.namespace, &record.name),
            (&record.namespace, new_name),
        )?);
        self.apply_ddl(Command::Batch(commands))?;
        Ok(Outcome::Done { tag: "ALTER TABLE" })
    }

    /// `ALTER TABLE [IF EXISTS] t SET SCHEMA ns`: the table moves with its indexes and the
    /// sequences its columns own (their defaults follow), and views reading it follow it.
    pub(super) fn set_schema(
        &self,
        table: &TableName,
        if_exists: bool,
        namespace: &str,
    ) -> ExecResult<Outcome> {
        let done = Outcome::Done { tag: "ALTER TABLE" };
        let record = match self.resolve_table(table) {
            Ok(record) => record,
            Err(ExecError::UndefinedTable(_)) if if_exists => return Ok(done),
            Err(e) => return Err(e),
        };
        if let crate::model::TableKind::Stream { .. } = record.kind {
            return Err(crate::sql::SqlError::Unsupported(
                "ALTER TABLE ... SET SCHEMA on a stream table is not supported".into(),
            )
            .into());
        }
        if record.namespace == namespace {
            return Ok(done);
        }
        let mut moved = record.clone();
        moved.namespace = namespace.to_owned();
        for sequence in self.catalog().sequences()? {
            let owned = sequence.owned_by.as_ref().is_some_and(|owner| {
                sequence.namespace == record.namespace && owner.table == record.name
            });
            if !owned {
                continue;
            }
            let before = super::sequences::nextval_default(&record.namespace, &sequence.name);
            for column in &mut moved.columns {
                if column.default.as_deref() == Some(before.as_str()) {
                    column.default =
                        Some(super::sequences::nextval_default(namespace, &sequence.name));
                }
            }
        }
        let mut commands = vec![Command::SetSchema {
            namespace: record.namespace.clone(),
            table: moved,
        }];
        commands.extend(
            self.views_renamed_with((&record.namespace, &record.name), (namespace, &record.name))?,
        );
        self.apply_ddl(Command::Batch(commands))?;
        Ok(done)
    }

    /// COMMENT ON TABLE / COLUMN: kept with the definition (an empty comment removes it, as
    /// in PostgreSQL).
    pub(super) fn comment_on(
        &self,
        table: &TableName,
        column: Option<&str>,
        comment: Option<String>,
    ) -> ExecResult<Outcome> {
        let mut record = self.resolve_table(table)?;
        let comment = comment.filter(|c| !c.is_empty());
        match column {
            None => record.comment = comment,
            Some(column) => {
                let index = column_index(&record, column)?;
                record.columns[index].comment = comment;
            }
        }
        self.apply_ddl(Command::AlterTable(record))?;
        Ok(Outcome::Done { tag: "COMMENT" })
    }

    pub(super) fn rename_column(
        &self,
        table: &TableName,
        column: &str,
        new_name: &str,
    ) -> ExecResult<Outcome> {
        let record = self.resolve_table(table)?;
        column_index(&record, column)?;
        if record.columns.iter().any(|c| c.name == new_name) {
            return Err(ExecError::DuplicateColumn(format!(
                "column \"{new_name}\" of relation \"{}\" already exists",
                record.name
            )));
        }
        self.apply_ddl(Command::RenameColumn {
            namespace: record.namespace,
            table: record.name,
            table_id: record.table_id,
            column: column.to_owned(),
            new_name: new_name.to_owned(),
        })?;
        Ok(Outcome::Done { tag: "ALTER TABLE" })
    }

    /// SET/DROP DEFAULT and SET/DROP NOT NULL. SET NOT NULL first checks that no row, hot or
    /// flushed, holds a NULL there (23502 naming the column, as PostgreSQL).
    pub(super) async fn alter_column(
        &self,
        table: &TableName,
        column: &str,
        change: &crate::sql::ColumnChange,
    ) -> ExecResult<Outcome> {
        use crate::sql::ColumnChange;
        let mut record = self.resolve_table(table)?;
        let index = column_index(&record, column)?;
        let current = record.columns[index].clone();
        match change {
            ColumnChange::SetType { sql_type, using } => {
                return self
                    .retype_column(record, index, *sql_type, using.as_deref())
                    .await;
            }
            ColumnChange::SetDefault(_) | ColumnChange::DropDefault
                if current.identity.is_some() =>
            {
                return Err(ExecError::Sql(crate::sql::SqlError::Syntax(format!(
                    "column \"{column}\" of relation \"{}\" is an identity column",
                    record.name
                ))));
            }
            ColumnChange::SetDefault(default) => {
                let spec = ColumnSpec {
                    name: current.name.clone(),
                    sql_type: current.sql_type,
                    nullable: current.nullable,
                    default: Some(default.clone()),
                    sequence: None,
                    unique: None,
                    checks: Vec::new(),
                    foreign_keys: Vec::new(),
                };
                record.columns[index].default = self.column_def(&spec).await?.default;
            }
            ColumnChange::DropDefault => record.columns[index].default = None,
            ColumnChange::DropNotNull if record.primary_key.contains(&index) => {
                return Err(ExecError::InvalidTableDefinition(format!(
                    "column \"{column}\" is in a primary key"
                )));
            }
            ColumnChange::DropNotNull => record.columns[index].nullable = true,
            ColumnChange::SetNotNull => {
                let is_null = format!("{} IS NULL", super::sequences::quote_ident(column));
                if current.nullable && self.any_row(&record, &is_null).await? {
                    return Err(ExecError::NotNullViolation(format!(
                        "column \"{column}\" of relation \"{}\" contains null values",
                        record.name
                    )));
                }
                record.columns[index].nullable = false;
            }
        }
        if record.columns[index] == current {
            return Ok(Outcome::Done { tag: "ALTER TABLE" });
        }
        // ON ... SET DEFAULT constraints write the column's default as it now is.
        let mut commands = Vec::new();
        if record.columns[index].default != current.default {
            for fk in self.catalog().foreign_keys_of(record.table_id)? {
                if fk.defaults.is_empty() || !fk.columns.contains(&index) {
                    continue;
                }
                let mut defaults = Vec::with_capacity(fk.columns.len());
                for &column in &fk.columns {
                    defaults.push(self.constant_default(&record, column).await?);
                }
                commands.push(Command::SetForeignKeyDefaults {
                    table_id: record.table_id,
                    name: fk.name,
                    defaults,
                });
            }
        }
        commands.insert(0, Command::AlterTable(record));
        self.apply_ddl(Command::Batch(commands))?;
        Ok(Outcome::Done { tag: "ALTER TABLE" })
    }

    /// `ALTER TABLE t DROP [COLUMN] [IF EXISTS] c [CASCADE]`: the column's indexes, foreign
    /// keys and CHECK constraints go with it, as in PostgreSQL; with CASCADE so do other
    /// tables' foreign keys referring to it. Flushed segments are not rewritten.
    pub(super) fn drop_column(
        &self,
        table: &TableName,
        column: &str,
        if_exists: bool,
        cascade: bool,
    ) -> ExecResult<Outcome> {
        let record = self.resolve_table(table)?;
        if let crate::model::TableKind::Stream { .. } = record.kind {
            return Err(crate::sql::SqlError::Unsupported(
                "ALTER TABLE ... DROP COLUMN on a stream table is not supported".into(),
            )
            .into());
        }
        let Some(position) = record.columns.iter().position(|c| c.name == column) else {
            if if_exists {
                return Ok(Outcome::Done { tag: "ALTER TABLE" });
            }
            return Err(ExecError::UndefinedColumn(format!(
                "column \"{column}\" of relation \"{}\" does not exist",
                record.name
            )));
        };
        if record.primary_key.contains(&position) {
            return Err(crate::sql::SqlError::Unsupported(format!(
                "dropping column \"{column}\" of the primary key of \"{}\" is not supported",
                record.name
            ))
            .into());
        }
        if record.columns.len() == 1 {
            return Err(crate::sql::SqlError::Unsupported(
                "dropping a table's only column is not supported".into(),
            )
            .into());
        }
        let mut without = record.clone();
        without.columns.remove(position);
        without.primary_key = record
            .primary_key
            .iter()
            .map(|&c| if c > position { c - 1 } else { c })
            .collect();
        without.checks.retain(|check| {
            !super::checks::columns_read(&record, &check.expr).contains(&column.to_owned())
        });
        without.layout_generation += 1;
        let columns = (record.columns.clone(), without.columns.clone());
        self.apply_ddl(Command::DropColumn {
            table: without,
            position,
            cascade,
        })?;
        super::block_ddl::relayout_held(
            &mut self.pending.tables.lock().expect("pending writes"),
            record.table_id,
            &columns.0,
            &columns.1,
        )?;
        Ok(Outcome::Done { tag: "ALTER TABLE" })
    }

    /// A foreign key using column `index` of `record`, on either side, must compare the
    /// column's new type with the other side's (PostgreSQL's 42804 otherwise). Storage then
    /// validates the constraint again over the rewritten values.
    fn check_foreign_keys_can_follow(
        &self,
        record: &crate::storage::TableRecord,
        index: usize,
        sql_type: crate::model::SqlType,
    ) -> ExecResult<()> {
        let column = &record.columns[index];
        for fk in self.catalog().all_foreign_keys()? {
            let pairs = fk.columns.iter().zip(&fk.parent_columns);
            for (&child, &parent) in pairs {
                let other = if fk.table_id == record.table_id && child == index {
                    &fk.parent_layout[parent]
                } else if fk.parent_id == record.table_id && parent == index {
                    &fk.layout[child]
                } else {
                    continue;
                };
                if !sql_type.same_kind(other.sql_type) {
                    return Err(ExecError::DatatypeMismatch(format!(
                        "foreign key constraint \"{}\" cannot be implemented: key columns \"{}\" and \"{}\" are of incompatible types: {} and {}",
                        fk.name,
                        column.name,
                        other.name,
                        sql_type.sql_name(),
                        other.sql_type.sql_name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// `ALTER TABLE t ALTER COLUMN c [SET DATA] TYPE type [USING expr]`: every row is rewritten
    /// with the value converted (or USING's value), checked against the table's CHECK
    /// constraints, in one command with the new definition.
    async fn retype_column(
        &self,
        record: crate::storage::TableRecord,
        index: usize,
        sql_type: crate::model::SqlType,
        using: Option<&str>,
    ) -> ExecResult<Outcome> {
        let done = Outcome::Done { tag: "ALTER TABLE" };
        let column = record.columns[index].clone();
        if column.sql_type == sql_type && using.is_none() {
            return Ok(done);
        }
        let unsupported = |why: String| -> ExecResult<Outcome> {
            Err(crate::sql::SqlError::Unsupported(format!(
                "changing the type of column \"{}\" {why} is not supported",
                column.name
            ))
            .into())
        };
        if let crate::model::TableKind::Stream { .. } = record.kind {
            return unsupported("of a stream table".into());
        }
        self.check_foreign_keys_can_follow(&record, index, sql_type)?;
        if using.is_none() && !assignment_castable(column.sql_type, sql_type) {
            return Err(ExecError::DatatypeMismatch(format!(
                "column \"{}\" cannot be cast automatically to type {}",
                column.name,
                sql_type.sql_name()
            )));
        }
        let mut retyped = record.clone();
        retyped.columns[index].sql_type = sql_type;
        retyped.columns[index].missing_value = None;
        // A new id: files keep the old type's values under the old one.
        retyped.columns[index].id = crate::model::UNASSIGNED_COLUMN_ID;
        retyped.number_columns();
        retyped.layout_generation += 1;
        let value = using.map_or_else(
            || super::sequences::quote_ident(&column.name),
            |using| format!("({using})"),
        );
        let rows = self
            .rows_rewritten((&record, &retyped), &column.name, &value)
            .await?;
        let held = self
            .in_transaction_block()
            .then(|| (retyped.clone(), rows.clone()));
        self.apply_ddl(Command::RetypeColumn {
            table: retyped,
            position: index,
            rows,
        })?;
        if let Some((retyped, rows)) = held {
            super::block_ddl::hold_retyped(
                &mut self.pending.tables.lock().expect("pending writes"),
                &retyped,
                index,
                rows,
            )?;
        }
        Ok(done)
    }
}

/// Whether PostgreSQL converts `from` to `to` without USING: between numeric types, into text,
/// between text kinds, and from date to timestamps.
fn assignment_castable(from: crate::model::SqlType, to: crate::model::SqlType) -> bool {
    use crate::model::SqlType as T;
    let numeric = |t: T| {
        matches!(
            t,
            T::SmallInt | T::Integer | T::BigInt | T::Real | T::Double | T::Numeric { .. }
        )
    };
    let timestamp = |t: T| matches!(t, T::Timestamp | T::TimestampTz);
    from == to
        || (numeric(from) && numeric(to))
        || to.is_text()
        || (timestamp(from) && timestamp(to))
        || (from == T::Date && timestamp(to))
        || (matches!(from, T::Json | T::Jsonb) && matches!(to, T::Json | T::Jsonb))
}
