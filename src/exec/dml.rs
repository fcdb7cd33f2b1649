//! INSERT, UPDATE and DELETE.
//!
//! Each statement is evaluated by DataFusion as a SELECT that produces the new rows (or the rows
//! to delete), so every expression, subquery and function DataFusion supports works in VALUES,
//! SET and WHERE. The rows are then checked against the table's definition, encoded, and written
//! as one `WriteRows` command whose expectations (key absent, row unchanged since read) make
//! concurrent writers safe: an INSERT of an existing key fails with 23505, and an UPDATE that
//! lost a race is retried against the new row version.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, Expr, FromTable, Ident, OnConflictAction, OnInsert, SelectItem,
    SetExpr, TableFactor, TableObject, VisitMut, VisitorMut,
};

use super::session::Outcome;
use super::table::{KEY_COLUMN, VERSION_COLUMN};
use super::{ExecError, ExecResult, Session};
use crate::model::TableKind;
use crate::model::types::{ColumnDef, SqlType, schema_of};
use crate::sql::TableName;
use crate::storage::rows;
use crate::storage::{Expect, RowWrite, TableRecord};

/// How many times an autocommit UPDATE or upsert is re-run after losing a write race. Each
/// retry reads the newer row, so a retry only fails again if yet another writer got in first.
const WRITE_RETRIES: usize = 64;

pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn qualified(record: &TableRecord, suffix: &str) -> String {
    format!(
        "{}.{}",
        quote_ident(&record.namespace),
        quote_ident(&format!("{}{suffix}", record.name))
    )
}

/// A DML statement's table, the name its expressions call it by, and its RETURNING list.
pub(super) type DmlTarget<'s> = (TableRecord, String, Option<&'s [SelectItem]>);

/// Suffix of the view of a table that adds its hidden key and version columns.
pub const ROW_IDENTITY_SUFFIX: &str = "$rowid";

/// Rows of a table, one array per column in table order, already checked against it.
struct TableRows {
    columns: Vec<ArrayRef>,
    len: usize,
}

impl TableRows {
    fn batch(&self, record: &TableRecord) -> ExecResult<RecordBatch> {
        RecordBatch::try_new(schema_of(&record.columns), self.columns.clone())
            .map_err(|e| ExecError::Internal(e.to_string()))
    }
}

fn invalid_text(column: &ColumnDef, detail: impl std::fmt::Display) -> ExecError {
    ExecError::InvalidText(format!(
        "invalid input for column \"{}\" of type {}: {detail}",
        column.name,
        column.sql_type.sql_name()
    ))
}

/// Casts `array` to the column's stored type and checks the column's constraints.
pub(super) fn conform(
    record: &TableRecord,
    column: &ColumnDef,
    array: &ArrayRef,
) -> ExecResult<ArrayRef> {
    let target = column.sql_type.arrow_type();
    // Text into BYTEA is PostgreSQL's bytea input syntax, not the text's own bytes.
    let array = if column.sql_type == SqlType::Bytea && array.data_type() == &DataType::Utf8 {
        let decoded: datafusion::arrow::array::BinaryArray = array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(parse_bytea).transpose())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid_text(column, e))?;
        Arc::new(decoded) as ArrayRef
    } else {
        array.clone()
    };
    let array = &array;
    let array = if array.data_type() == &target {
        array.clone()
    } else {
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        cast_with_options(array, &target, &options).map_err(|e| {
            // A number too large for the column is out of range, as PostgreSQL reports it.
            if array.data_type().is_numeric() && target.is_integer() {
                ExecError::NumericOutOfRange(format!("{} out of range", column.sql_type.sql_name()))
            } else {
                invalid_text(column, e)
            }
        })?
    };
    if !column.nullable && array.null_count() > 0 {
        return Err(ExecError::NotNullViolation(format!(
            "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
            column.name, record.name
        )));
    }
    match column.sql_type {
        SqlType::Varchar { max_len: Some(max) } => {
            let strings = array.as_string::<i32>();
            if strings
                .iter()
                .flatten()
                .any(|s| s.chars().count() > max as usize)
            {
                return Err(ExecError::StringTooLong(format!(
                    "value too long for type character varying({max})"
                )));
            }
            Ok(array)
        }
        SqlType::Json | SqlType::Jsonb => {
            for text in array.as_string::<i32>().iter().flatten() {
                serde_json::from_str::<serde::de::IgnoredAny>(text)
                    .map_err(|e| invalid_text(column, format!("invalid JSON: {e}")))?;
            }
            Ok(array)
        }
        SqlType::Uuid => {
            let normalized: StringArray = array
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(normalize_uuid).transpose())
                .collect::<Result<_, _>>()
                .map_err(|bad| invalid_text(column, format!("\"{bad}\" is not a UUID")))?;
            Ok(Arc::new(normalized))
        }
        _ => Ok(array),
    }
}

/// PostgreSQL's bytea input: `\x` followed by hex digits, or the escape format in which
/// `\\` is a backslash and `\nnn` an octal byte.
fn parse_bytea(text: &str) -> Result<Vec<u8>, String> {
    if let Some(hex_digits) = text.strip_prefix("\\x") {
        let compact: String = hex_digits.chars().filter(|c| !c.is_whitespace()).collect();
        return hex::decode(compact).map_err(|e| format!("invalid hexadecimal data: {e}"));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = bytes
                .get(i + 1..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
                .ok_or_else(|| "invalid escape sequence in bytea input".to_owned())?;
            out.push(octal);
            i += 4;
        }
    }
    Ok(out)
}

/// Canonical lower-case hyphenated form; accepts the spellings PostgreSQL accepts.
fn normalize_uuid(text: &str) -> Result<String, String> {
    let hex: String = text
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(text.to_owned());
    }
    let h = hex.to_ascii_lowercase();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Qualifies bare column names with `table` so that `x` means `table.x` next to `excluded.x`.
struct Qualify<'a> {
    table: &'a str,
    columns: &'a HashSet<String>,
}

impl VisitorMut for Qualify<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> std::ops::ControlFlow<()> {
        if let Expr::Identifier(ident) = expr
            && self.columns.contains(&crate::sql::fold(ident))
        {
            *expr =
                Expr::CompoundIdentifier(vec![Ident::with_quote('"', self.table), ident.clone()]);
        }
        std::ops::ControlFlow::Continue(())
    }
}

fn assignment_column(record: &TableRecord, target: &AssignmentTarget) -> ExecResult<usize> {
    let name = match target {
        AssignmentTarget::ColumnName(name) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(crate::sql::fold)
            .unwrap_or_default(),
        AssignmentTarget::Tuple(_) => {
            return Err(ExecError::Sql(crate::sql::SqlError::Unsupported(
                "multiple-column assignment is not supported".into(),
            )));
        }
    };
    column_index(record, &name)
}

/// The index of a column by name, or 42703 naming the table.
fn column_index(record: &TableRecord, name: &str) -> ExecResult<usize> {
    record
        .columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| {
            ExecError::UndefinedColumn(format!(
                "column \"{name}\" of relation \"{}\" does not exist",
                record.name
            ))
        })
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Session {
    /// Runs a SELECT given as SQL text in this session (seeing its uncommitted writes).
    pub(super) async fn select(&self, sql: &str) -> ExecResult<(SchemaRef, Vec<RecordBatch>)> {
        let frame = self.ctx.sql(sql).await?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        Ok((schema, batches))
    }

    /// Registers `batch` as a uniquely named scratch table for the duration of one statement.
    fn scratch_table(&self, batch: RecordBatch) -> ExecResult<ScratchTable<'_>> {
        let name = format!("s{}", SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed));
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        self.engine.scratch.register(&name, Arc::new(table))?;
        Ok(ScratchTable {
            session: self,
            name,
        })
    }

    fn table_for_write(&self, name: &TableName) -> ExecResult<TableRecord> {
        let record = self.resolve_table(name)?;
        if let TableKind::Stream { .. } = record.kind {
            return Err(ExecError::WrongObjectType(format!(
                "\"{}\" is a stream table: rows can only be appended with INSERT",
                record.name
            )));
        }
        Ok(record)
    }

    pub(super) async fn insert(&self, statement: &ast::Statement) -> ExecResult<Outcome> {
        let ast::Statement::Insert(insert) = statement else {
            return Err(ExecError::Internal(
                "insert() called with another statement".into(),
            ));
        };
        let TableObject::TableName(object) = &insert.table else {
            return Err(unsupported("INSERT into a table function"));
        };
        let record = self.resolve_table(&TableName::from_object_name(object)?)?;
        let alias = insert
            .table_alias
            .as_ref()
            .map(|a| crate::sql::fold(&a.alias))
            .unwrap_or_else(|| record.name.clone());
        let targets: Vec<usize> = if insert.columns.is_empty() {
            (0..record.columns.len()).collect()
        } else {
            insert
                .columns
                .iter()
                .map(|c| {
                    let name =
                        c.0.last()
                            .and_then(|p| p.as_ident())
                            .map(crate::sql::fold)
                            .unwrap_or_default();
                    column_index(&record, &name)
                })
                .collect::<ExecResult<_>>()?
        };
        let new_rows = self.insert_source_rows(&record, insert, &targets).await?;
        if let TableKind::Stream { .. } = record.kind {
            if insert.on.is_some() {
                return Err(unsupported("ON CONFLICT on a stream table"));
            }
            let rows = (0..new_rows.len)
                .map(|row| {
                    let mut value = Vec::new();
                    rows::encode_row(&new_rows.columns, row, &mut value);
                    value
                })
                .collect();
            self.append_stream(&record, rows)?;
            return self
                .finish_dml(
                    &record,
                    &alias,
                    new_rows,
                    insert.returning.as_deref(),
                    "INSERT",
                )
                .await;
        }
        let on_conflict = match &insert.on {
            None => None,
            Some(OnInsert::OnConflict(on_conflict)) => {
                if let Some(target) = &on_conflict.conflict_target {
                    self.check_conflict_target(&record, target)?;
                } else if matches!(on_conflict.action, OnConflictAction::DoUpdate(_)) {
                    return Err(ExecError::Sql(crate::sql::SqlError::Syntax(
                        "ON CONFLICT DO UPDATE requires inference specification or constraint name"
                            .into(),
                    )));
                }
                if record.primary_key.is_empty() {
                    return Err(ExecError::InvalidColumnReference(
                        "there is no unique or exclusion constraint matching the ON CONFLICT specification".into(),
                    ));
                }
                Some(&on_conflict.action)
            }
            Some(_) => return Err(unsupported("ON DUPLICATE KEY UPDATE")),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .write_insert(&record, &alias, &new_rows, on_conflict)
                .await;
            match result {
                Err(ExecError::ConcurrentUpdate(_))
                    if attempt < WRITE_RETRIES && !self.in_transaction_block() =>
                {
                    tokio::task::yield_now().await;
                    continue;
                }
                other => {
                    let written = other?;
                    return self
                        .finish_dml(
                            &record,
                            &alias,
                            written,
                            insert.returning.as_deref(),
                            "INSERT",
                        )
                        .await;
                }
            }
        }
    }

    /// Evaluates VALUES or the SELECT, fills defaults, and returns full rows in table order.
    async fn insert_source_rows(
        &self,
        record: &TableRecord,
        insert: &ast::Insert,
        targets: &[usize],
    ) -> ExecResult<TableRows> {
        let defaults: Vec<Option<Expr>> = record
            .columns
            .iter()
            .map(|c| {
                c.default
                    .as_deref()
                    .map(|d| crate::sql::parse_expr(d).map_err(ExecError::Sql))
                    .transpose()
            })
            .collect::<ExecResult<_>>()?;
        let mut source = match &insert.source {
            Some(source) => source.as_ref().clone(),
            None => return Err(unsupported("INSERT ... DEFAULT VALUES")),
        };
        // `DEFAULT` inside VALUES means the column's default expression.
        if let SetExpr::Values(values) = source.body.as_mut() {
            for row in &mut values.rows {
                if row.len() != targets.len() {
                    return Err(ExecError::Sql(crate::sql::SqlError::Syntax(format!(
                        "INSERT has {} target columns but {} expressions",
                        targets.len(),
                        row.len()
                    ))));
                }
                for (value, &column) in row.iter_mut().zip(targets) {
                    if matches!(value, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
                    {
                        *value = defaults[column]
                            .clone()
                            .unwrap_or(Expr::value(ast::Value::Null));
                    }
                }
            }
        }
        // PostgreSQL allows a SELECT feeding an INSERT to repeat an output name
        // (`SELECT v, CAST(v AS INT)`); DataFusion does not, and the names are replaced anyway.
        if let SetExpr::Select(select) = source.body.as_mut() {
            for (i, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(expr) = item {
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::new(format!("__v{i}")),
                    };
                }
            }
        }
        if let Some(batch) = literal_values(&source, targets, &defaults, record.columns.len()) {
            return self.table_rows(record, &[batch]);
        }
        let source_columns: Vec<String> = (0..targets.len()).map(|i| format!("c{i}")).collect();
        let projection: Vec<String> = record
            .columns
            .iter()
            .enumerate()
            .map(
                |(index, column)| match targets.iter().position(|&t| t == index) {
                    Some(position) => format!("__src.{} AS c{index}", source_columns[position]),
                    None => format!(
                        "CAST({} AS {}) AS c{index}",
                        defaults[index]
                            .as_ref()
                            .map_or("NULL".to_owned(), |d| d.to_string()),
                        cast_type(column.sql_type)
                    ),
                },
            )
            .collect();
        // Rows keep their VALUES order (RETURNING shows it) through the UNION ALL.
        let (source, order) = match values_with_subqueries_as_selects(&source) {
            Some(selects) => (selects, " ORDER BY __src.__row"),
            None => (source.to_string(), ""),
        };
        let mut source_columns = source_columns;
        if !order.is_empty() {
            source_columns.push("__row".into());
        }
        let sql = format!(
            "SELECT {} FROM ({source}) AS __src({}){order}",
            projection.join(", "),
            source_columns.join(", ")
        );
        let (_, batches) = self.select(&sql).await.map_err(|e| match e {
            ExecError::DataFusion(df) if df.to_string().contains("column aliases") => {
                ExecError::Sql(crate::sql::SqlError::Syntax(format!(
                    "INSERT has {} target columns but the source has a different number",
                    targets.len()
                )))
            }
            other => other,
        })?;
        self.table_rows(record, &batches)
    }

    fn table_rows(&self, record: &TableRecord, batches: &[RecordBatch]) -> ExecResult<TableRows> {
        let len: usize = batches.iter().map(|b| b.num_rows()).sum();
        let columns = record
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
                let joined = if parts.is_empty() {
                    datafusion::arrow::array::new_empty_array(&column.sql_type.arrow_type())
                } else {
                    datafusion::arrow::compute::concat(&parts)
                        .map_err(|e| ExecError::Internal(e.to_string()))?
                };
                conform(record, column, &joined)
            })
            .collect::<ExecResult<Vec<_>>>()?;
        Ok(TableRows { columns, len })
    }

    fn check_conflict_target(
        &self,
        record: &TableRecord,
        target: &ast::ConflictTarget,
    ) -> ExecResult<()> {
        let ast::ConflictTarget::Columns(columns) = target else {
            return Err(unsupported("ON CONFLICT ON CONSTRAINT"));
        };
        let named: HashSet<String> = columns.iter().map(crate::sql::fold).collect();
        let key: HashSet<String> = record
            .primary_key
            .iter()
            .map(|&i| record.columns[i].name.clone())
            .collect();
        if named != key {
            return Err(ExecError::InvalidColumnReference(
                "there is no unique or exclusion constraint matching the ON CONFLICT specification"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Encodes the key of every row (allocating hidden row ids where the table has no key).
    fn row_keys(
        &self,
        record: &TableRecord,
        rows: &TableRows,
    ) -> ExecResult<(Vec<Vec<u8>>, Option<u64>)> {
        if record.primary_key.is_empty() {
            let first = self
                .engine
                .store
                .allocate_row_ids(record.table_id, rows.len as u64)?;
            let keys = (0..rows.len as u64)
                .map(|i| rows::row_id_key(record.table_id, first + i))
                .collect();
            return Ok((keys, (rows.len > 0).then(|| first + rows.len as u64 - 1)));
        }
        let key_columns: Vec<ArrayRef> = record
            .primary_key
            .iter()
            .map(|&i| rows.columns[i].clone())
            .collect();
        let keys = (0..rows.len)
            .map(|row| {
                let mut key = rows::table_prefix(record.table_id).to_vec();
                rows::encode_key(&key_columns, row, &mut key);
                key
            })
            .collect();
        Ok((keys, None))
    }

    async fn write_insert(
        &self,
        record: &TableRecord,
        alias: &str,
        rows: &TableRows,
        on_conflict: Option<&OnConflictAction>,
    ) -> ExecResult<TableRows> {
        let (keys, high_water) = self.row_keys(record, rows)?;
        let mut writes = Vec::with_capacity(rows.len);
        let mut written: Vec<usize> = Vec::with_capacity(rows.len);
        let mut conflicting: Vec<(usize, Option<u64>)> = Vec::new();
        let mut seen: HashSet<&[u8]> = HashSet::new();
        for (row, key) in keys.iter().enumerate() {
            if on_conflict.is_some() {
                let first_in_statement = seen.insert(key.as_slice());
                match (first_in_statement, self.current_version(key)?) {
                    (true, None) => {}
                    (true, Some(version)) => {
                        conflicting.push((row, version));
                        continue;
                    }
                    (false, _) => {
                        if matches!(on_conflict, Some(OnConflictAction::DoUpdate(_))) {
                            return Err(ExecError::CardinalityViolation(
                                "ON CONFLICT DO UPDATE command cannot affect row a second time"
                                    .into(),
                            ));
                        }
                        continue;
                    }
                }
            }
            let mut value = Vec::new();
            rows::encode_row(&rows.columns, row, &mut value);
            writes.push(RowWrite {
                key: key.clone(),
                value: Some(value),
                expect: Expect::Absent,
            });
            written.push(row);
        }
        let mut result = take_rows(rows, &written)?;
        if let (Some(OnConflictAction::DoUpdate(update)), false) =
            (on_conflict, conflicting.is_empty())
        {
            let updated = self
                .upsert_rows(record, alias, rows, &keys, &conflicting, update)
                .await?;
            for (key, version, row) in updated.writes {
                writes.push(RowWrite {
                    key,
                    value: Some(row),
                    expect: version.map_or(Expect::Anything, Expect::Version),
                });
            }
            result = append_rows(result, updated.rows)?;
        }
        self.commit_rows(record, writes, high_water)?;
        Ok(result)
    }

    /// The version of the live row under `key` (`Some(None)`: an uncommitted row of this
    /// session), or `None` when there is no live row.
    fn current_version(&self, key: &[u8]) -> ExecResult<Option<Option<u64>>> {
        if let Some(pending) = self.pending_row(key) {
            return Ok(pending.map(|_| None));
        }
        Ok(self.engine.store.live_version(key)?.map(Some))
    }

    async fn upsert_rows(
        &self,
        record: &TableRecord,
        alias: &str,
        proposed: &TableRows,
        keys: &[Vec<u8>],
        conflicting: &[(usize, Option<u64>)],
        update: &ast::DoUpdate,
    ) -> ExecResult<UpdatedRows> {
        let rows_idx: Vec<usize> = conflicting.iter().map(|(r, _)| *r).collect();
        let excluded = with_identity(
            record,
            take_rows(proposed, &rows_idx)?.columns,
            rows_idx.iter().map(|&r| keys[r].clone()).collect(),
            vec![None; rows_idx.len()],
        )?;
        let excluded = self.scratch_table(excluded)?;
        let existing_keys: Vec<String> = rows_idx
            .iter()
            .map(|&r| format!("X'{}'", hex::encode(&keys[r])))
            .collect();
        let columns: HashSet<String> = record.columns.iter().map(|c| c.name.clone()).collect();
        let mut assignments = update.assignments.clone();
        let mut selection = update.selection.clone();
        let mut qualify = Qualify {
            table: alias,
            columns: &columns,
        };
        for assignment in &mut assignments {
            let _ = assignment.value.visit(&mut qualify);
        }
        if let Some(selection) = &mut selection {
            let _ = selection.visit(&mut qualify);
        }
        let mut values: Vec<String> = record
            .columns
            .iter()
            .map(|c| format!("{}.{}", quote_ident(alias), quote_ident(&c.name)))
            .collect();
        for assignment in &assignments {
            let index = assignment_column(record, &assignment.target)?;
            values[index] = assigned_value(record, index, &assignment.value);
        }
        let sql = format!(
            "SELECT {}, {a}.{KEY_COLUMN}, {a}.{VERSION_COLUMN} FROM {} AS {a} JOIN {} AS excluded \
             ON {a}.{KEY_COLUMN} = excluded.{KEY_COLUMN} WHERE {a}.{KEY_COLUMN} IN ({}){}",
            values.join(", "),
            qualified(record, ROW_IDENTITY_SUFFIX),
            excluded.reference(),
            existing_keys.join(", "),
            selection.map(|s| format!(" AND ({s})")).unwrap_or_default(),
            a = quote_ident(alias),
        );
        let (_, batches) = self.select(&sql).await?;
        self.updated_rows(record, &batches)
    }

    /// Turns the output of an UPDATE-shaped SELECT (table columns, key, version) into writes.
    fn updated_rows(
        &self,
        record: &TableRecord,
        batches: &[RecordBatch],
    ) -> ExecResult<UpdatedRows> {
        let rows = self.table_rows(record, batches)?;
        let n = record.columns.len();
        let mut writes = Vec::with_capacity(rows.len);
        for batch in batches {
            let keys = batch.column(n).as_binary::<i32>();
            let versions = batch.column(n + 1).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                writes.push((
                    keys.value(i).to_vec(),
                    versions.is_valid(i).then(|| versions.value(i) as u64),
                ));
            }
        }
        let mut out = Vec::with_capacity(rows.len);
        for (row, (key, version)) in writes.into_iter().enumerate() {
            let mut value = Vec::new();
            rows::encode_row(&rows.columns, row, &mut value);
            out.push((key, version, value));
        }
        Ok(UpdatedRows { writes: out, rows })
    }

    pub(super) async fn update(&self, statement: &ast::Statement) -> ExecResult<Outcome> {
        let ast::Statement::Update(update) = statement else {
            return Err(ExecError::Internal(
                "update() called with another statement".into(),
            ));
        };
        if update.from.is_some() || !update.table.joins.is_empty() {
            return Err(unsupported("UPDATE ... FROM"));
        }
        let (record, alias) = self.dml_target(&update.table.relation)?;
        let mut values: Vec<String> = record
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        for assignment in &update.assignments {
            let index = assignment_column(&record, &assignment.target)?;
            values[index] = assigned_value(&record, index, &assignment.value);
        }
        let sql = row_identity_select(&record, &alias, &values, update.selection.as_ref());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (_, batches) = self.select(&sql).await?;
            let updated = self.updated_rows(&record, &batches)?;
            let (new_keys, _) = if record.primary_key.is_empty() {
                (
                    updated.writes.iter().map(|(k, _, _)| k.clone()).collect(),
                    None,
                )
            } else {
                self.row_keys(&record, &updated.rows)?
            };
            let mut writes = Vec::with_capacity(updated.writes.len());
            let mut inserts = Vec::new();
            for ((old_key, version, value), new_key) in updated.writes.into_iter().zip(new_keys) {
                let expect = version.map_or(Expect::Anything, Expect::Version);
                if old_key == new_key {
                    writes.push(RowWrite {
                        key: old_key,
                        value: Some(value),
                        expect,
                    });
                } else {
                    // The primary key changed: remove the old row, then insert under the new key.
                    writes.push(RowWrite {
                        key: old_key,
                        value: None,
                        expect,
                    });
                    inserts.push(RowWrite {
                        key: new_key,
                        value: Some(value),
                        expect: Expect::Absent,
                    });
                }
            }
            writes.extend(inserts);
            match self.commit_rows(&record, writes, None) {
                Err(ExecError::ConcurrentUpdate(_))
                    if attempt < WRITE_RETRIES && !self.in_transaction_block() =>
                {
                    tokio::task::yield_now().await;
                    continue;
                }
                Err(e) => return Err(e),
                Ok(()) => {
                    return self
                        .finish_dml(
                            &record,
                            &alias,
                            updated.rows,
                            update.returning.as_deref(),
                            "UPDATE",
                        )
                        .await;
                }
            }
        }
    }

    pub(super) async fn delete(&self, statement: &ast::Statement) -> ExecResult<Outcome> {
        let ast::Statement::Delete(delete) = statement else {
            return Err(ExecError::Internal(
                "delete() called with another statement".into(),
            ));
        };
        let from = match &delete.from {
            FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => from,
        };
        if from.len() != 1 || !from[0].joins.is_empty() || delete.using.is_some() {
            return Err(unsupported("DELETE from several tables or with USING"));
        }
        let (record, alias) = self.dml_target(&from[0].relation)?;
        let columns: Vec<String> = record
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let sql = row_identity_select(&record, &alias, &columns, delete.selection.as_ref());
        let (_, batches) = self.select(&sql).await?;
        let deleted = self.updated_rows(&record, &batches)?;
        let writes = deleted
            .writes
            .into_iter()
            .map(|(key, _, _)| RowWrite {
                key,
                value: None,
                expect: Expect::Anything,
            })
            .collect();
        self.commit_rows(&record, writes, None)?;
        self.finish_dml(
            &record,
            &alias,
            deleted.rows,
            delete.returning.as_deref(),
            "DELETE",
        )
        .await
    }

    fn dml_target(&self, relation: &TableFactor) -> ExecResult<(TableRecord, String)> {
        let TableFactor::Table { name, alias, .. } = relation else {
            return Err(unsupported("DML on something other than a table"));
        };
        let record = self.table_for_write(&TableName::from_object_name(name)?)?;
        let alias = alias
            .as_ref()
            .map(|a| crate::sql::fold(&a.name))
            .unwrap_or_else(|| record.name.clone());
        Ok((record, alias))
    }

    /// The command tag, or the RETURNING rows evaluated over the rows the statement wrote.
    async fn finish_dml(
        &self,
        record: &TableRecord,
        alias: &str,
        rows: TableRows,
        returning: Option<&[SelectItem]>,
        tag: &'static str,
    ) -> ExecResult<Outcome> {
        let count = rows.len;
        let Some(items) = returning else {
            return Ok(Outcome::Affected { tag, rows: count });
        };
        let (schema, batches) = self.returning(alias, rows.batch(record)?, items).await?;
        Ok(Outcome::rows(schema, batches))
    }

    /// Evaluates a RETURNING list over `rows`, the rows a statement wrote.
    async fn returning(
        &self,
        alias: &str,
        rows: RecordBatch,
        items: &[SelectItem],
    ) -> ExecResult<(SchemaRef, Vec<RecordBatch>)> {
        let table = self.scratch_table(rows)?;
        let list: Vec<String> = items.iter().map(|i| i.to_string()).collect();
        let sql = format!(
            "SELECT {} FROM {} AS {}",
            list.join(", "),
            table.reference(),
            quote_ident(alias)
        );
        let (schema, batches) = self.select(&sql).await?;
        let schema = match crate::sql::parse(&sql)?.remove(0) {
            crate::sql::Statement::Query(ast) => super::naming::postgres_names(&ast, schema),
            _ => schema,
        };
        Ok((schema, batches))
    }

    /// What a DML statement's RETURNING produces (`None` without RETURNING), for Describe.
    pub(super) async fn returning_schema(
        &self,
        statement: &ast::Statement,
    ) -> ExecResult<Option<SchemaRef>> {
        let Some((record, alias, items)) = self.dml_table(statement)? else {
            return Ok(None);
        };
        let Some(items) = items else {
            return Ok(None);
        };
        let empty = RecordBatch::new_empty(schema_of(&record.columns));
        let (schema, _) = self.returning(&alias, empty, items).await?;
        Ok(Some(schema))
    }

    /// A DML statement's target table, the name its expressions use for it, and its RETURNING.
    pub(super) fn dml_table<'s>(
        &self,
        statement: &'s ast::Statement,
    ) -> ExecResult<Option<DmlTarget<'s>>> {
        Ok(Some(match statement {
            ast::Statement::Insert(insert) => {
                let TableObject::TableName(object) = &insert.table else {
                    return Ok(None);
                };
                let record = self.resolve_table(&TableName::from_object_name(object)?)?;
                let alias = insert
                    .table_alias
                    .as_ref()
                    .map(|a| crate::sql::fold(&a.alias))
                    .unwrap_or_else(|| record.name.clone());
                (record, alias, insert.returning.as_deref())
            }
            ast::Statement::Update(update) => {
                let (record, alias) = self.dml_target(&update.table.relation)?;
                (record, alias, update.returning.as_deref())
            }
            ast::Statement::Delete(delete) => {
                let from = match &delete.from {
                    FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => from,
                };
                let Some(first) = from.first() else {
                    return Ok(None);
                };
                let (record, alias) = self.dml_target(&first.relation)?;
                (record, alias, delete.returning.as_deref())
            }
            _ => return Ok(None),
        }))
    }
}

struct UpdatedRows {
    /// (key, version read, encoded new row)
    writes: Vec<(Vec<u8>, Option<u64>, Vec<u8>)>,
    rows: TableRows,
}

/// A scratch table that is dropped when the statement is done with it.
struct ScratchTable<'a> {
    session: &'a Session,
    name: String,
}

impl ScratchTable<'_> {
    fn reference(&self) -> String {
        format!(
            "{}.{}",
            super::catalog::SCRATCH_SCHEMA,
            quote_ident(&self.name)
        )
    }
}

impl Drop for ScratchTable<'_> {
    fn drop(&mut self) {
        self.session.engine.scratch.deregister(&self.name);
    }
}

fn with_identity(
    record: &TableRecord,
    mut columns: Vec<ArrayRef>,
    keys: Vec<Vec<u8>>,
    versions: Vec<Option<i64>>,
) -> ExecResult<RecordBatch> {
    let mut fields: Vec<Field> = record.columns.iter().map(ColumnDef::field).collect();
    fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
    fields.push(Field::new(VERSION_COLUMN, DataType::Int64, true));
    columns.push(Arc::new(
        datafusion::arrow::array::BinaryArray::from_iter_values(keys),
    ));
    columns.push(Arc::new(datafusion::arrow::array::Int64Array::from(
        versions,
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| ExecError::Internal(e.to_string()))
}

fn take_rows(rows: &TableRows, indices: &[usize]) -> ExecResult<TableRows> {
    let indices =
        datafusion::arrow::array::UInt32Array::from_iter_values(indices.iter().map(|&i| i as u32));
    let columns = rows
        .columns
        .iter()
        .map(|c| datafusion::arrow::compute::take(c, &indices, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ExecError::Internal(e.to_string()))?;
    Ok(TableRows {
        columns,
        len: indices.len(),
    })
}

fn append_rows(a: TableRows, b: TableRows) -> ExecResult<TableRows> {
    let columns = a
        .columns
        .iter()
        .zip(&b.columns)
        .map(|(x, y)| datafusion::arrow::compute::concat(&[x.as_ref(), y.as_ref()]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ExecError::Internal(e.to_string()))?;
    Ok(TableRows {
        columns,
        len: a.len + b.len,
    })
}

/// `SELECT <values>, key, version FROM t$rowid AS alias [WHERE ...]`: the rows an UPDATE or
/// DELETE touches, with what identifies and versions each one.
fn row_identity_select(
    record: &TableRecord,
    alias: &str,
    values: &[String],
    selection: Option<&Expr>,
) -> String {
    format!(
        "SELECT {}, {KEY_COLUMN}, {VERSION_COLUMN} FROM {} AS {}{}",
        values.join(", "),
        qualified(record, ROW_IDENTITY_SUFFIX),
        quote_ident(alias),
        selection.map(|s| format!(" WHERE {s}")).unwrap_or_default()
    )
}

/// A SET assignment's value, cast to the column's type and named after it.
fn assigned_value(record: &TableRecord, index: usize, value: &Expr) -> String {
    let column = &record.columns[index];
    format!(
        "CAST({value} AS {}) AS {}",
        cast_type(column.sql_type),
        quote_ident(&column.name)
    )
}

/// The SQL type DataFusion casts to for a stored type.
pub(super) fn cast_type(sql_type: SqlType) -> String {
    match sql_type {
        SqlType::Numeric { precision, scale } => format!("DECIMAL({precision},{scale})"),
        SqlType::Timestamp => "TIMESTAMP".into(),
        SqlType::TimestampTz => "TIMESTAMPTZ".into(),
        SqlType::Varchar { .. }
        | SqlType::Json
        | SqlType::Jsonb
        | SqlType::Uuid
        | SqlType::Text => "TEXT".into(),
        SqlType::Bytea => "BYTEA".into(),
        other => other.sql_name(),
    }
}

/// A constant in VALUES, typed as DataFusion types a SQL literal.
enum Literal {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

fn literal_of(expr: &Expr) -> Option<Literal> {
    match expr {
        Expr::Value(v) => match &v.value {
            ast::Value::Null => Some(Literal::Null),
            ast::Value::Boolean(b) => Some(Literal::Bool(*b)),
            ast::Value::SingleQuotedString(s) => Some(Literal::Text(s.clone())),
            ast::Value::Number(n, _) => number(n, false),
            _ => None,
        },
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => number(n, true),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn number(text: &str, negative: bool) -> Option<Literal> {
    let sign = if negative { "-" } else { "" };
    let signed = format!("{sign}{text}");
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Out of i64 range DataFusion types it differently: leave it to the general path.
        signed.parse().ok().map(Literal::Int)
    } else {
        signed.parse().ok().map(Literal::Float)
    }
}

/// The rows of `INSERT ... VALUES` when every value (and every default filled in) is a plain
/// literal: built directly instead of planning a SELECT, with the types DataFusion would give
/// the same literals, so `conform` treats them identically. `None` means "plan it".
fn literal_values(
    source: &ast::Query,
    targets: &[usize],
    defaults: &[Option<Expr>],
    column_count: usize,
) -> Option<RecordBatch> {
    let SetExpr::Values(values) = source.body.as_ref() else {
        return None;
    };
    if source.with.is_some()
        || source.order_by.is_some()
        || source.limit_clause.is_some()
        || source.fetch.is_some()
    {
        return None;
    }
    let null = Expr::value(ast::Value::Null);
    let mut fields = Vec::with_capacity(column_count);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(column_count);
    for (column, default) in defaults.iter().enumerate().take(column_count) {
        let position = targets.iter().position(|&t| t == column);
        let literals: Vec<Literal> = values
            .rows
            .iter()
            .map(|row| {
                let expr = match position {
                    Some(p) => &row[p],
                    None => default.as_ref().unwrap_or(&null),
                };
                literal_of(expr)
            })
            .collect::<Option<_>>()?;
        let array: ArrayRef = if literals.iter().all(|l| matches!(l, Literal::Null)) {
            Arc::new(datafusion::arrow::array::NullArray::new(literals.len()))
        } else if literals
            .iter()
            .all(|l| matches!(l, Literal::Null | Literal::Int(_)))
        {
            Arc::new(datafusion::arrow::array::Int64Array::from_iter(
                literals.iter().map(|l| match l {
                    Literal::Int(i) => Some(*i),
                    _ => None,
                }),
            ))
        } else if literals
            .iter()
            .all(|l| matches!(l, Literal::Null | Literal::Int(_) | Literal::Float(_)))
        {
            Arc::new(datafusion::arrow::array::Float64Array::from_iter(
                literals.iter().map(|l| match l {
                    Literal::Int(i) => Some(*i as f64),
                    Literal::Float(f) => Some(*f),
                    _ => None,
                }),
            ))
        } else if literals
            .iter()
            .all(|l| matches!(l, Literal::Null | Literal::Text(_)))
        {
            Arc::new(StringArray::from_iter(literals.iter().map(|l| match l {
                Literal::Text(s) => Some(s.as_str()),
                _ => None,
            })))
        } else if literals
            .iter()
            .all(|l| matches!(l, Literal::Null | Literal::Bool(_)))
        {
            Arc::new(datafusion::arrow::array::BooleanArray::from_iter(
                literals.iter().map(|l| match l {
                    Literal::Bool(b) => Some(*b),
                    _ => None,
                }),
            ))
        } else {
            return None;
        };
        fields.push(Field::new(
            format!("c{column}"),
            array.data_type().clone(),
            true,
        ));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).ok()
}

/// `VALUES (a, b), (c, d)` as `SELECT a, b, 0 UNION ALL SELECT c, d, 1` (the last column
/// numbers the rows) when a row holds a subquery: DataFusion runs subqueries in a SELECT list
/// but not inside VALUES.
fn values_with_subqueries_as_selects(source: &ast::Query) -> Option<String> {
    let SetExpr::Values(values) = source.body.as_ref() else {
        return None;
    };
    if source.with.is_some() || source.order_by.is_some() || source.limit_clause.is_some() {
        return None;
    }
    let has_subquery = ast::visit_expressions(&values.rows, |e| match e {
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
            std::ops::ControlFlow::Break(())
        }
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break();
    has_subquery.then(|| {
        values
            .rows
            .iter()
            .enumerate()
            .map(|(number, row)| {
                let items: Vec<String> = row.iter().map(ToString::to_string).collect();
                format!("SELECT {}, {number}", items.join(", "))
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    })
}

fn unsupported(what: &str) -> ExecError {
    ExecError::Sql(crate::sql::SqlError::Unsupported(format!(
        "{what} is not supported"
    )))
}
