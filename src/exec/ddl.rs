//! Namespaces and tables: CREATE (also AS a query and LIKE another), DROP, TRUNCATE, ALTER
//! TABLE ADD COLUMN, SHOW and DESCRIBE.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use datafusion::sql::sqlparser::ast;

use super::outcome::Outcome;
use super::planner::LazyPlanner;
use super::{ExecError, ExecResult, Session, now_micros};
use crate::model::types::{ColumnDef, UNASSIGNED_COLUMN_ID};
use crate::sql::{ColumnSpec, CreateTable, SYSTEM_SCHEMA, TableName};
use crate::storage::{
    Command, Conflict, NamespaceRecord, PUBLIC_NAMESPACE, StorageError, TableRecord,
};

/// Names no namespace may take: they belong to the system and to PostgreSQL's catalogs.
const RESERVED_NAMESPACES: [&str; 3] = [SYSTEM_SCHEMA, "pg_catalog", "information_schema"];

/// Each statement is one command, applied at once, or inside a transaction block kept with
/// the block's writes until COMMIT (see `block_ddl`).
impl Session {
    pub(super) fn create_namespace(&self, name: &str, if_not_exists: bool) -> ExecResult<Outcome> {
        if RESERVED_NAMESPACES.contains(&name) || name.starts_with("pg_") {
            return Err(ExecError::ReservedName(format!(
                "unacceptable schema name \"{name}\": the name is reserved"
            )));
        }
        let command = Command::CreateNamespace(NamespaceRecord {
            name: name.to_owned(),
            created_at: now_micros(),
            namespace_id: 0,
        });
        match self.apply_ddl(command) {
            Ok(_) => {}
            Err(StorageError::Conflict(Conflict::NamespaceExists(_))) if if_not_exists => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Outcome::Done {
            tag: "CREATE SCHEMA",
        })
    }

    pub(super) fn drop_namespace(
        &self,
        name: &str,
        if_exists: bool,
        cascade: bool,
    ) -> ExecResult<Outcome> {
        if name == PUBLIC_NAMESPACE || RESERVED_NAMESPACES.contains(&name) {
            return Err(ExecError::ObjectInUse(format!(
                "namespace \"{name}\" cannot be dropped"
            )));
        }
        match self.apply_ddl(Command::DropNamespace {
            name: name.to_owned(),
            cascade,
        }) {
            Ok(_) => {}
            Err(StorageError::Conflict(Conflict::NoSuchNamespace(_))) if if_exists => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Outcome::Done { tag: "DROP SCHEMA" })
    }

    pub(super) async fn create_table(&self, create: &CreateTable) -> ExecResult<Outcome> {
        let namespace = match &create.table.namespace {
            Some(ns) => ns.clone(),
            None => self.creation_namespace()?,
        };
        if let Some(query) = &create.as_query {
            return self.create_table_as(namespace, create, query).await;
        }
        let mut columns = match &create.like {
            Some((source, with_defaults)) => self.like_columns(source, *with_defaults)?,
            None => Vec::new(),
        };
        let copied = columns.len();
        for spec in &create.columns {
            let column = self.column_def(spec).await?;
            if columns.iter().any(|c| c.name == column.name) {
                return Err(ExecError::DuplicateColumn(format!(
                    "column \"{}\" specified more than once",
                    column.name
                )));
            }
            columns.push(column);
        }
        let mut commands = self.column_sequences(
            &namespace,
            &create.table.name,
            &mut columns[copied..],
            &create.columns,
        )?;
        let primary_key = create
            .primary_key
            .iter()
            .map(|name| {
                columns
                    .iter()
                    .position(|c: &ColumnDef| &c.name == name)
                    .expect("checked by sql")
            })
            .collect();
        let record = TableRecord {
            table_id: self.relation_id()?,
            namespace: namespace.clone(),
            name: create.table.name.clone(),
            kind: create.kind,
            columns,
            primary_key,
            created_at: now_micros(),
            comment: None,
            version: 0,
            checks: Vec::new(),
            next_column_id: 0,
            layout_generation: 0,
        };
        let mut record = record;
        record.number_columns();
        record.checks = self.check_constraints(&record, &create.checks)?;
        // The sequences of SERIAL and identity columns come and go with their table, and the
        // indexes of its UNIQUE constraints are created with it.
        let mut constraints = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut new_indexes = Vec::new();
        for unique in &create.unique {
            let index = self.unique_constraint_index(&record, unique, &names)?;
            names.push(index.name.clone());
            new_indexes.push(index.clone());
            constraints.push(Command::CreateIndex {
                table: record.name.clone(),
                index,
            });
        }
        let mut taken: Vec<String> = names.clone();
        taken.extend(record.checks.iter().map(|c| c.name.clone()));
        if !record.primary_key.is_empty() {
            taken.push(format!("{}_pkey", record.name));
        }
        for spec in &create.foreign_keys {
            let planned = self
                .plan_foreign_key(&record, spec, &new_indexes, &mut taken, true)
                .await?;
            if let Some(index) = &planned.index {
                new_indexes.push(index.clone());
                constraints.push(Command::CreateIndex {
                    table: record.name.clone(),
                    index: index.clone(),
                });
            }
            constraints.push(planned.command(&record.name));
        }
        commands.push(Command::CreateTable(record));
        commands.extend(constraints);
        match self.apply_ddl(Command::Batch(commands)) {
            Ok(_) => {}
            Err(StorageError::Conflict(Conflict::TableExists(_, name)))
                if create.if_not_exists && name == create.table.name => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Outcome::Done {
            tag: "CREATE TABLE",
        })
    }

    /// The columns `CREATE TABLE ... (LIKE source)` copies: names, types and NOT NULL, and the
    /// defaults only with INCLUDING DEFAULTS (an identity is not copied, as in PostgreSQL).
    fn like_columns(&self, source: &TableName, with_defaults: bool) -> ExecResult<Vec<ColumnDef>> {
        let record = self.resolve_table(source)?;
        Ok(record
            .columns
            .into_iter()
            .map(|c| ColumnDef {
                id: UNASSIGNED_COLUMN_ID,
                default: c.default.filter(|_| with_defaults && c.identity.is_none()),
                missing_value: None,
                identity: None,
                comment: None,
                ..c
            })
            .collect())
    }

    /// `CREATE TABLE ... AS query`: a table with the query's result columns (named as
    /// PostgreSQL names them), then its rows, reported as `SELECT n`. The table and its rows
    /// are one atomic write: outside a block the statement runs as a block of its own.
    async fn create_table_as(
        &self,
        namespace: String,
        create: &CreateTable,
        query: &ast::Query,
    ) -> ExecResult<Outcome> {
        if self.in_transaction_block() {
            return self.create_and_fill(namespace, create, query).await;
        }
        let block = super::transaction::ImplicitBlock::begin(self);
        let outcome = self.create_and_fill(namespace, create, query).await?;
        block.commit()?;
        Ok(outcome)
    }

    async fn create_and_fill(
        &self,
        namespace: String,
        create: &CreateTable,
        query: &ast::Query,
    ) -> ExecResult<Outcome> {
        let statement = ast::Statement::Query(Box::new(query.clone()));
        let planner = LazyPlanner::new(self, &statement);
        let plan = planner.get().await?.query(query)?;
        let schema = super::naming::postgres_names(&statement, plan.schema().inner().clone());
        let mut columns: Vec<ColumnDef> = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let sql_type = crate::model::types::storable_type(field).ok_or_else(|| {
                ExecError::Sql(crate::sql::SqlError::Unsupported(format!(
                    "column \"{}\" has type {} that a table cannot store",
                    field.name(),
                    field.data_type()
                )))
            })?;
            if columns.iter().any(|c| &c.name == field.name()) {
                return Err(ExecError::DuplicateColumn(format!(
                    "column \"{}\" specified more than once",
                    field.name()
                )));
            }
            columns.push(ColumnDef::new(field.name(), sql_type));
        }
        let name = create.table.name.clone();
        let record = TableRecord {
            table_id: self.relation_id()?,
            namespace: namespace.clone(),
            name: name.clone(),
            kind: create.kind,
            columns,
            primary_key: Vec::new(),
            created_at: now_micros(),
            comment: None,
            version: 0,
            checks: Vec::new(),
            next_column_id: 0,
            layout_generation: 0,
        };
        let mut record = record;
        record.number_columns();
        match self.apply_ddl(Command::CreateTable(record)) {
            Ok(_) => {}
            Err(StorageError::Conflict(Conflict::TableExists(..))) if create.if_not_exists => {
                return Ok(Outcome::Done {
                    tag: "CREATE TABLE AS",
                });
            }
            Err(e) => return Err(e.into()),
        }
        let insert = format!(
            "INSERT INTO {} {query}",
            super::sequences::qualified(&namespace, &name)
        );
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let filled = match datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, &insert)
        {
            Ok(mut statements) if statements.len() == 1 => self.insert(&statements.remove(0)).await,
            Ok(_) => Err(ExecError::Internal(format!(
                "{insert} is not one statement"
            ))),
            Err(e) => Err(ExecError::Internal(e.to_string())),
        };
        Ok(match filled? {
            Outcome::Affected { rows, .. } => Outcome::Affected {
                tag: "SELECT",
                rows,
            },
            _ => Outcome::Done {
                tag: "CREATE TABLE AS",
            },
        })
    }

    /// Checks a column's DEFAULT by evaluating it once, so a bad default fails at CREATE time;
    /// one that calls nextval is checked for its sequences instead (running it would use a
    /// value), and a plain `nextval('name')` is bound to the sequence the name means now.
    pub(super) async fn column_def(&self, spec: &ColumnSpec) -> ExecResult<ColumnDef> {
        let mut default = spec.default.clone();
        let sequences = default
            .as_deref()
            .map(super::sequences::sequences_in_default)
            .unwrap_or_default();
        if !sequences.is_empty() {
            let mut bound = Vec::new();
            for text in &sequences {
                let name = crate::sql::relation_name(text)
                    .map_err(|_| super::names::undefined_relation(text))?;
                bound.push(self.resolve_sequence(&name)?);
            }
            if let [sequence] = bound.as_slice()
                && super::sequences::is_plain_nextval(default.as_deref().unwrap_or_default())
            {
                default = Some(super::sequences::nextval_default(
                    &sequence.namespace,
                    &sequence.name,
                ));
            }
        } else if let Some(default) = &spec.default {
            self.evaluate_default(default, spec.sql_type)
                .await
                .map_err(|e| match e {
                    unsupported @ ExecError::Sql(crate::sql::SqlError::Unsupported(_)) => {
                        unsupported
                    }
                    other => ExecError::InvalidText(format!(
                        "invalid DEFAULT for column \"{}\": {other}",
                        spec.name
                    )),
                })?;
        }
        Ok(ColumnDef {
            id: UNASSIGNED_COLUMN_ID,
            name: spec.name.clone(),
            sql_type: spec.sql_type,
            nullable: spec.nullable,
            default,
            missing_value: None,
            identity: None,
            comment: None,
        })
    }

    pub(super) fn drop_tables(
        &self,
        tables: &[TableName],
        if_exists: bool,
        cascade: bool,
    ) -> ExecResult<Outcome> {
        let mut commands = Vec::new();
        for name in tables {
            match self.resolve_table(name) {
                Ok(record) => commands.push(Command::DropTable {
                    expect: Some((record.table_id, record.version)),
                    namespace: record.namespace,
                    name: record.name,
                    cascade,
                }),
                Err(ExecError::UndefinedTable(_)) if if_exists => {}
                Err(e) => return Err(e),
            }
        }
        if !commands.is_empty() {
            let applied = self.apply_ddl(Command::Batch(commands))?;
            self.remove_segment_files(&applied);
        }
        Ok(Outcome::Done { tag: "DROP TABLE" })
    }

    /// Deletes the segment files a DROP or TRUNCATE left unreferenced. A crash before this
    /// leaves them for the orphan sweep at the next start.
    pub(super) fn remove_segment_files(&self, applied: &crate::storage::Applied) {
        for segment in &applied.unreferenced_segments {
            let file = self.engine.store.segment_path(segment);
            if let Err(e) = std::fs::remove_file(&file) {
                tracing::warn!(file = %file.display(), "removing an unreferenced segment: {e}");
            }
        }
    }

    /// TRUNCATE: every named table loses all its rows (hot and flushed) in one command.
    pub(super) fn truncate(
        &self,
        tables: &[TableName],
        restart_identity: bool,
        cascade: bool,
    ) -> ExecResult<Outcome> {
        let mut records = Vec::new();
        for name in tables {
            // A stream table's rows leave only by eviction, as they never leave by DELETE.
            let record = self.table_for_write(name)?;
            if !records
                .iter()
                .any(|r: &TableRecord| r.table_id == record.table_id)
            {
                records.push(record);
            }
        }
        self.truncated_with(&mut records, cascade)?;
        let mut commands = Vec::new();
        for record in records {
            commands.push(Command::TruncateTable {
                namespace: record.namespace,
                name: record.name,
                table_id: record.table_id,
                restart_identity,
            });
        }
        let applied = self.apply_ddl(Command::Batch(commands))?;
        self.remove_segment_files(&applied);
        Ok(Outcome::Done {
            tag: "TRUNCATE TABLE",
        })
    }

    pub(super) async fn add_column(
        &self,
        table: &TableName,
        spec: &ColumnSpec,
        if_not_exists: bool,
    ) -> ExecResult<Outcome> {
        let mut record = self.resolve_table(table)?;
        if spec.sequence.is_some() {
            // Existing rows would each need their own value, which a missing value cannot give.
            return Err(crate::sql::SqlError::Unsupported(
                "ALTER TABLE ... ADD COLUMN with SERIAL or an identity is not supported; create the sequence and add the column with DEFAULT nextval(...) instead".into(),
            )
            .into());
        }
        if record.columns.iter().any(|c| c.name == spec.name) {
            if if_not_exists {
                return Ok(Outcome::Done { tag: "ALTER TABLE" });
            }
            return Err(ExecError::DuplicateColumn(format!(
                "column \"{}\" of relation \"{}\" already exists",
                spec.name, record.name
            )));
        }
        let mut column = self.column_def(spec).await?;
        let calls_nextval = column
            .default
            .as_deref()
            .is_some_and(|d| !super::sequences::sequences_in_default(d).is_empty());
        if calls_nextval && self.table_has_rows(&record).await? {
            return Err(crate::sql::SqlError::Unsupported(
                "ALTER TABLE ... ADD COLUMN with a nextval default on a table with rows is not supported".into(),
            )
            .into());
        }
        // Existing rows read the default as it is now (PostgreSQL's "missing value").
        if let Some(default) = spec.default.as_ref().filter(|_| !calls_nextval) {
            column.missing_value = Some(self.default_datum(&record, &column, default).await?);
        } else if !spec.nullable && self.table_has_rows(&record).await? {
            return Err(ExecError::NotNullViolation(format!(
                "column \"{}\" of relation \"{}\" contains null values",
                spec.name, record.name
            )));
        }
        record.columns.push(column);
        record.number_columns();
        let Some(foreign_key) = spec.foreign_keys.first() else {
            self.apply_ddl(Command::AlterTable(record))?;
            return Ok(Outcome::Done { tag: "ALTER TABLE" });
        };
        // The column and its REFERENCES clause are one change: outside a block the statement
        // runs as a block of its own.
        let block =
            (!self.in_transaction_block()).then(|| super::transaction::ImplicitBlock::begin(self));
        self.apply_ddl(Command::AlterTable(record))?;
        self.add_foreign_key(table, foreign_key).await?;
        if let Some(block) = block {
            block.commit()?;
        }
        Ok(Outcome::Done { tag: "ALTER TABLE" })
    }

    /// `default` (SQL text) evaluated once, as column `column` of `record` stores it.
    pub(super) async fn default_datum(
        &self,
        record: &TableRecord,
        column: &ColumnDef,
        default: &str,
    ) -> ExecResult<Vec<u8>> {
        let batches = self.evaluate_default(default, column.sql_type).await?;
        // A set-returning default gives no row or several: PostgreSQL refuses those.
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let batch = batches.iter().find(|b| b.num_rows() > 0);
        let (1, Some(batch)) = (rows, batch) else {
            return Err(crate::sql::SqlError::Unsupported(
                "a DEFAULT expression must give exactly one value".into(),
            )
            .into());
        };
        let value = super::dml::conform(record, column, batch.column(0))?;
        let mut encoded = Vec::new();
        crate::storage::rows::encode_datum(value.as_ref(), 0, &mut encoded);
        Ok(encoded)
    }

    /// Whether the table has a live row, hot or flushed (a scan of hot rows alone would take
    /// a fully flushed table for empty, and a deletion marker for a row).
    async fn table_has_rows(&self, record: &TableRecord) -> ExecResult<bool> {
        self.any_row(record, "true").await
    }

    /// Whether some live row of the table satisfies `condition` (SQL over its columns).
    pub(super) async fn any_row(&self, record: &TableRecord, condition: &str) -> ExecResult<bool> {
        let sql = format!(
            "SELECT 1 FROM {} WHERE {condition} LIMIT 1",
            super::sequences::qualified(&record.namespace, &record.name),
        );
        let frame = self.ctx.sql(&sql).await?;
        let batches = super::compute::run_on(self.engine.compute.as_ref(), frame.collect()).await?;
        Ok(batches.iter().any(|b| b.num_rows() > 0))
    }

    pub(super) fn show_namespaces(&self) -> ExecResult<Outcome> {
        let names: Vec<String> = self
            .engine
            .store
            .namespaces()?
            .into_iter()
            .map(|n| n.name)
            .collect();
        text_rows(SHOW_NAMESPACES_COLUMNS, vec![names])
    }

    pub(super) fn show_tables(&self, namespace: Option<&str>) -> ExecResult<Outcome> {
        let tables = match namespace {
            Some(ns) => {
                if self.catalog().namespace(ns)?.is_none() {
                    return Err(conflict_error(Conflict::NoSuchNamespace(ns.to_owned())));
                }
                self.catalog().tables_in(ns)?
            }
            None => self.catalog().tables()?,
        };
        let mut ns = Vec::new();
        let mut names = Vec::new();
        let mut kinds = Vec::new();
        for table in tables {
            ns.push(table.namespace);
            names.push(table.name);
            kinds.push(super::table_type_name(table.kind).to_owned());
        }
        text_rows(SHOW_TABLES_COLUMNS, vec![ns, names, kinds])
    }

    pub(super) fn describe(&self, table: &TableName) -> ExecResult<Outcome> {
        let record = self.resolve_table(table)?;
        let schema = describe_schema();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                record.columns.iter().map(|c| c.name.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                record.columns.iter().map(|c| c.sql_type.sql_name()),
            )),
            Arc::new(BooleanArray::from_iter(
                record.columns.iter().map(|c| Some(c.nullable)),
            )),
            Arc::new(StringArray::from_iter(
                record.columns.iter().map(|c| c.default.as_deref()),
            )),
            Arc::new(BooleanArray::from_iter(
                (0..record.columns.len()).map(|i| Some(record.primary_key.contains(&i))),
            )),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| ExecError::Internal(e.to_string()))?;
        Ok(Outcome::rows(schema, vec![batch]))
    }
}

fn conflict_error(c: Conflict) -> ExecError {
    ExecError::from(StorageError::Conflict(c))
}

const SHOW_NAMESPACES_COLUMNS: &[&str] = &["namespace_name"];
const SHOW_TABLES_COLUMNS: &[&str] = &["namespace_name", "table_name", "table_type"];

fn text_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ))
}

fn describe_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("column_name", DataType::Utf8, false),
        Field::new("data_type", DataType::Utf8, false),
        Field::new("is_nullable", DataType::Boolean, false),
        Field::new("column_default", DataType::Utf8, true),
        Field::new("is_primary_key", DataType::Boolean, false),
    ]))
}

/// The result columns of SHOW NAMESPACES, SHOW TABLES and DESCRIBE, known before they run.
pub(super) fn listing_schema(statement: &crate::sql::Statement) -> Option<SchemaRef> {
    use crate::sql::Statement;
    match statement {
        Statement::ShowNamespaces => Some(text_schema(SHOW_NAMESPACES_COLUMNS)),
        Statement::ShowTables { .. } => Some(text_schema(SHOW_TABLES_COLUMNS)),
        Statement::Describe { .. } => Some(describe_schema()),
        _ => None,
    }
}

/// A result of text columns.
fn text_rows(names: &[&str], columns: Vec<Vec<String>>) -> ExecResult<Outcome> {
    let schema = text_schema(names);
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| ExecError::Internal(e.to_string()))?;
    Ok(Outcome::rows(schema, vec![batch]))
}
