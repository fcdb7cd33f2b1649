//! COPY in the executor. COPY FROM takes the values the front end decoded from the data
//! stream in chunks: each chunk is typed as its columns' input functions would type it, the
//! columns the data leaves out get their defaults (one `nextval` per row, as INSERT does), and
//! the table's constraints are checked. Nothing is written until the data ends; then every
//! row goes in one command, so a COPY that fails anywhere loads nothing. A load past
//! [`BULK_LOAD_ROWS`] into a table without secondary indexes or foreign keys is not held in
//! memory: its rows are sorted on disk and ingested whole (storage's bulk loads). COPY TO is
//! the query (or the table's columns) as a row stream the front end writes out.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::{Expr, lit};
use datafusion::sql::sqlparser::ast;

use super::coercion::{assignment_cast, conform};
use super::{TableRows, column_index};
use crate::exec::outcome::Outcome;
use crate::exec::planner::{StatementPlanner, rows_relation};
use crate::exec::{ExecError, ExecResult, Session};
use crate::model::TableKind;
use crate::model::types::{ColumnDef, SqlType};
use crate::sql::{CopyOptions, CopyRelation, CopyStatement, SqlError};
use crate::storage::{
    Command, Conflict, Expect, LoadFailure, RowSorter, RowWrite, StorageError, TableRecord, rows,
};

/// Rows a COPY holds in memory for one write; a larger load into a table that allows it is
/// sorted on disk and ingested instead.
const BULK_LOAD_ROWS: usize = 100_000;

/// A COPY FROM under way: where its rows go, and the rows checked so far.
pub struct CopyIn {
    record: TableRecord,
    /// Table positions of the columns the data holds, in data order.
    targets: Vec<usize>,
    pub options: CopyOptions,
    /// Per target column: read unquoted NULL text as a value (FORCE_NOT_NULL), read quoted
    /// NULL text as NULL (FORCE_NULL).
    pub force_not_null: Vec<bool>,
    pub force_null: Vec<bool>,
    /// The rows checked so far, encoded as they will be stored.
    encoded: Encoded,
    /// The line each row starts on, in row order (while the rows are held in memory).
    lines: Vec<u64>,
    rows: usize,
    /// Whether the rows may go to disk once they pass [`BULK_LOAD_ROWS`]: outside a
    /// transaction block, until the table is found to have an index or a foreign key.
    may_sort: bool,
}

/// Rows of a COPY ready to write: a chunk's typed columns are encoded as soon as it is
/// checked, so only the stored form of the rows is held until the data ends.
enum Encoded {
    Rows {
        writes: Vec<RowWrite>,
        row_id_high_water: Option<u64>,
    },
    /// A load too large to hold, sorted on disk for one ingest.
    Sorted {
        sorter: RowSorter,
        row_id_high_water: Option<u64>,
    },
    /// A stream table's appended rows.
    Stream(Vec<Vec<u8>>),
}

impl CopyIn {
    /// The columns the data holds, in data order.
    pub fn columns(&self) -> Vec<&ColumnDef> {
        self.targets
            .iter()
            .map(|&i| &self.record.columns[i])
            .collect()
    }

    pub fn table_name(&self) -> &str {
        &self.record.name
    }

    /// `COPY t`, the start of PostgreSQL's CONTEXT line.
    fn context(&self) -> String {
        format!("COPY {}", self.record.name)
    }
}

/// Where in the data a chunk's rows came from: the line each row starts on.
pub type RowLines<'a> = &'a [u64];

/// The first line of `text` for an error's context, cut as PostgreSQL cuts long ones.
fn quoted(text: &str) -> String {
    let mut cut: String = text.chars().take(60).collect();
    if cut.len() < text.len() {
        cut.push_str("...");
    }
    format!("\"{cut}\"")
}

/// PostgreSQL's message for text that a column's type does not accept.
fn input_error(column: &ColumnDef, text: &str) -> ExecError {
    let integer = matches!(
        column.sql_type,
        SqlType::SmallInt | SqlType::Integer | SqlType::BigInt
    );
    if integer && text.trim().parse::<i128>().is_ok() {
        return ExecError::NumericOutOfRange(format!(
            "value \"{text}\" is out of range for type {}",
            column.sql_type.sql_name()
        ));
    }
    ExecError::InvalidText(format!(
        "invalid input syntax for type {}: \"{text}\"",
        column.sql_type.sql_name()
    ))
}

impl Session {
    /// Starts a COPY FROM: the table, the columns the data holds, and the options checked
    /// against them.
    pub(in crate::exec) fn begin_copy_in(&self, copy: &CopyStatement) -> ExecResult<CopyIn> {
        let CopyRelation::Table { name, columns } = &copy.relation else {
            return Err(SqlError::Syntax("COPY (query) FROM is not valid".into()).into());
        };
        let record = self.resolve_table(name)?;
        let targets = if columns.is_empty() {
            (0..record.columns.len()).collect()
        } else {
            let mut targets = Vec::with_capacity(columns.len());
            for column in columns {
                let index = column_index(&record, column)?;
                if targets.contains(&index) {
                    return Err(SqlError::DuplicateColumn(column.clone()).into());
                }
                targets.push(index);
            }
            targets
        };
        let flags = |named: &[String], option: &str| -> ExecResult<Vec<bool>> {
            for name in named {
                if !targets.iter().any(|&t| record.columns[t].name == *name) {
                    return Err(SqlError::Syntax(format!(
                        "{option} column \"{name}\" not referenced by COPY"
                    ))
                    .into());
                }
            }
            Ok(targets
                .iter()
                .map(|&t| named.contains(&record.columns[t].name))
                .collect())
        };
        let force_not_null = flags(&copy.options.force_not_null, "FORCE_NOT_NULL")?;
        let force_null = flags(&copy.options.force_null, "FORCE_NULL")?;
        let encoded = match record.kind {
            TableKind::Stream { .. } => Encoded::Stream(Vec::new()),
            _ => Encoded::Rows {
                writes: Vec::new(),
                row_id_high_water: None,
            },
        };
        Ok(CopyIn {
            record,
            targets,
            options: copy.options.clone(),
            force_not_null,
            force_null,
            encoded,
            lines: Vec::new(),
            rows: 0,
            may_sort: !self.in_transaction_block(),
        })
    }

    /// Types, completes and checks a chunk of rows: one array per data column, text for the
    /// text and CSV formats or already typed for binary. Errors mark an open block failed.
    pub async fn copy_in_rows(
        &self,
        copy: &mut CopyIn,
        values: Vec<ArrayRef>,
        lines: RowLines<'_>,
    ) -> ExecResult<()> {
        let result = self.copy_chunk(copy, values, lines).await;
        if result.is_err() {
            self.fail_block();
        }
        result
    }

    async fn copy_chunk(
        &self,
        copy: &mut CopyIn,
        values: Vec<ArrayRef>,
        lines: RowLines<'_>,
    ) -> ExecResult<()> {
        let len = lines.len();
        if len == 0 {
            return Ok(());
        }
        let record = &copy.record;
        let mut typed = Vec::with_capacity(values.len());
        for (array, &target) in values.iter().zip(&copy.targets) {
            let column = &record.columns[target];
            match conform(record, column, array) {
                Ok(array) => typed.push(array),
                Err(e) => return Err(locate(copy, target, array, lines, e)),
            }
        }
        let all_targeted = copy.targets.len() == record.columns.len();
        let needs_defaults = !all_targeted
            && record
                .columns
                .iter()
                .enumerate()
                .any(|(i, c)| c.default.is_some() && !copy.targets.contains(&i));
        let columns: Vec<ArrayRef> = if needs_defaults {
            self.with_defaults(copy, typed, len).await?
        } else {
            (0..record.columns.len())
                .map(|i| match copy.targets.iter().position(|&t| t == i) {
                    Some(at) => typed[at].clone(),
                    None => new_null_array(&record.columns[i].sql_type.arrow_type(), len),
                })
                .collect()
        };
        // NOT NULL for the columns the data left out, then the table's CHECKs.
        for (i, column) in record.columns.iter().enumerate() {
            if !column.nullable && columns[i].null_count() > 0 {
                let row = (0..len).find(|&r| columns[i].is_null(r)).unwrap_or(0);
                return Err(ExecError::InCopy {
                    source: Box::new(ExecError::NotNullViolation(format!(
                        "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                        column.name, record.name
                    ))),
                    context: format!("{}, line {}", copy.context(), lines[row]),
                });
            }
        }
        if let Some((error, row)) = self.check_violation(record, &columns, len)? {
            return Err(ExecError::InCopy {
                source: Box::new(error),
                context: format!("{}, line {}", copy.context(), lines[row]),
            });
        }
        let chunk = TableRows { columns, len };
        let mut encoder = rows::RowEncoder::default();
        match &mut copy.encoded {
            Encoded::Stream(appended) => {
                appended.extend((0..len).map(|row| encoder.encode(&chunk.columns, row)));
            }
            Encoded::Rows {
                writes,
                row_id_high_water,
            } => {
                let (keys, high_water) = self.row_keys(record, &chunk)?;
                *row_id_high_water = high_water.or(*row_id_high_water);
                writes.extend(keys.into_iter().enumerate().map(|(row, key)| RowWrite {
                    key,
                    value: Some(encoder.encode(&chunk.columns, row)),
                    expect: Expect::Absent,
                    moved_to: None,
                }));
                copy.lines.extend_from_slice(lines);
            }
            Encoded::Sorted {
                sorter,
                row_id_high_water,
            } => {
                let (keys, high_water) = self.row_keys(record, &chunk)?;
                *row_id_high_water = high_water.or(*row_id_high_water);
                let mut row = Vec::new();
                for (at, key) in keys.iter().enumerate() {
                    row.clear();
                    rows::encode_row(&chunk.columns, at, &mut row);
                    sorter.push(key, &row, lines[at])?;
                }
            }
        }
        copy.rows += len;
        self.sort_when_large(copy)
    }

    /// Moves the rows held so far to a sorter once they pass [`BULK_LOAD_ROWS`], if the table
    /// allows a bulk load.
    fn sort_when_large(&self, copy: &mut CopyIn) -> ExecResult<()> {
        let Encoded::Rows {
            writes,
            row_id_high_water,
        } = &mut copy.encoded
        else {
            return Ok(());
        };
        if !copy.may_sort || writes.len() < BULK_LOAD_ROWS {
            return Ok(());
        }
        let store = &self.engine.store;
        if !store.bulk_loadable(copy.record.table_id)? {
            copy.may_sort = false;
            return Ok(());
        }
        let mut sorter = store.row_sorter(copy.record.table_id)?;
        for (write, line) in writes.iter().zip(&copy.lines) {
            sorter.push(
                &write.key,
                write.value.as_deref().unwrap_or_default(),
                *line,
            )?;
        }
        copy.encoded = Encoded::Sorted {
            sorter,
            row_id_high_water: *row_id_high_water,
        };
        copy.lines = Vec::new();
        Ok(())
    }

    /// Every table column for a chunk: the data's columns, and each other column's default
    /// evaluated per row.
    async fn with_defaults(
        &self,
        copy: &CopyIn,
        typed: Vec<ArrayRef>,
        len: usize,
    ) -> ExecResult<Vec<ArrayRef>> {
        let record = &copy.record;
        let fields: Vec<Field> = typed
            .iter()
            .enumerate()
            .map(|(i, a)| Field::new(format!("d{i}"), a.data_type().clone(), true))
            .collect();
        let source = if typed.is_empty() {
            // Only defaults: one empty row per data row.
            let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Boolean, true)]));
            RecordBatch::try_new(schema, vec![new_null_array(&DataType::Boolean, len)])
        } else {
            RecordBatch::try_new(Arc::new(Schema::new(fields)), typed)
        }
        .map_err(|e| ExecError::Internal(e.to_string()))?;
        let planner = StatementPlanner::without_tables(self);
        let empty = DFSchema::empty();
        let input = rows_relation("copy_rows", source)?;
        let projection = record
            .columns
            .iter()
            .enumerate()
            .map(|(index, column)| {
                let value = match copy.targets.iter().position(|&t| t == index) {
                    Some(at) => Expr::Column(Column::new(Some("copy_rows"), format!("d{at}"))),
                    None => match &column.default {
                        Some(default) => assignment_cast(
                            planner.expr(&crate::sql::parse_expr(default)?, &empty)?,
                            column.sql_type,
                            &empty,
                        )?,
                        None => lit(ScalarValue::Null),
                    },
                };
                Ok(value.alias(format!("c{index}")))
            })
            .collect::<ExecResult<Vec<_>>>()?;
        let plan = input.project(projection)?.build()?;
        let batches = planner.collect(plan).await?;
        let table = self.conformed_rows(record, &batches)?;
        Ok(table.columns)
    }

    /// Writes every row the COPY checked, in one command (inside a block, into the block).
    pub fn finish_copy_in(&self, copy: CopyIn) -> ExecResult<Outcome> {
        let result = self.write_copied(copy);
        if result.is_err() {
            self.fail_block();
        }
        result
    }

    fn write_copied(&self, copy: CopyIn) -> ExecResult<Outcome> {
        let CopyIn {
            record,
            encoded,
            lines,
            rows,
            ..
        } = copy;
        match encoded {
            Encoded::Stream(appended) => self.append_stream(&record, appended)?,
            Encoded::Rows {
                writes,
                row_id_high_water,
            } => {
                if let Err((error, writes)) =
                    self.commit_rows_or_return(&record, writes, row_id_high_water)
                {
                    return Err(duplicate_in_copy(&record, &writes, &lines, error));
                }
            }
            Encoded::Sorted {
                sorter,
                row_id_high_water,
            } => self.ingest_sorted(&record, sorter, row_id_high_water)?,
        }
        Ok(Outcome::Affected { tag: "COPY", rows })
    }

    /// Merges a sorted load into one file and ingests it (see storage's bulk loads).
    fn ingest_sorted(
        &self,
        record: &TableRecord,
        sorter: RowSorter,
        row_id_high_water: Option<u64>,
    ) -> ExecResult<()> {
        let rows = sorter.rows() as usize;
        let load = match self.engine.store.finish_load(sorter) {
            Ok(Some(load)) => load,
            Ok(None) => return Ok(()),
            Err(LoadFailure { error, line }) => {
                return Err(in_copy(record, self.write_error(error), line));
            }
        };
        let command = Command::IngestRows {
            table_id: record.table_id,
            file: load.file.clone(),
            runs: load.runs().to_vec(),
            low: load.low.clone(),
            high: load.high.clone(),
            row_id_high_water,
            layout_generation: record.layout_generation,
        };
        if let Err(error) = self.engine.apply(&command) {
            let line = match &error {
                StorageError::Conflict(Conflict::DuplicateKey { key, .. }) => load.line_of(key),
                _ => None,
            };
            return Err(in_copy(record, self.write_error(error), line));
        }
        self.engine.note_writes(record.table_id, rows);
        Ok(())
    }

    /// COPY TO: the rows of the query, or of the table's columns, as a stream.
    pub(in crate::exec) async fn copy_out(&self, copy: &CopyStatement) -> ExecResult<Outcome> {
        let query = match &copy.relation {
            CopyRelation::Query(query) => query.as_ref().clone(),
            CopyRelation::Table { name, columns } => {
                let record = self.resolve_table(name)?;
                for column in columns {
                    column_index(&record, column)?;
                }
                let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
                let list = if columns.is_empty() {
                    record
                        .columns
                        .iter()
                        .map(|c| quote(&c.name))
                        .collect::<Vec<_>>()
                } else {
                    columns.iter().map(|c| quote(c)).collect()
                };
                let sql = format!(
                    "SELECT {} FROM {}.{}",
                    list.join(", "),
                    quote(&record.namespace),
                    quote(&record.name)
                );
                match crate::sql::parse(&sql)?.pop() {
                    Some(crate::sql::Statement::Query(statement)) => match *statement {
                        ast::Statement::Query(query) => *query,
                        _ => return Err(ExecError::Internal(format!("{sql} is not a query"))),
                    },
                    _ => return Err(ExecError::Internal(format!("{sql} is not a query"))),
                }
            }
        };
        let statement =
            crate::sql::Statement::Query(Box::new(ast::Statement::Query(Box::new(query))));
        match Box::pin(self.execute(statement)).await? {
            Outcome::Rows { schema, stream } => Ok(Outcome::CopyOut {
                options: copy.options.clone(),
                schema,
                stream,
            }),
            _ => Err(SqlError::Unsupported(
                "COPY (query) TO needs a query that returns rows".into(),
            )
            .into()),
        }
    }
}

/// A duplicate key names the line of the row that repeated it: the second row holding the key
/// when the data holds it twice, else the one row that met a stored row.
fn duplicate_in_copy(
    record: &TableRecord,
    writes: &[RowWrite],
    lines: &[u64],
    error: ExecError,
) -> ExecError {
    let ExecError::DuplicateKey { key, .. } = &error else {
        return in_copy(record, error, None);
    };
    let found: Vec<u64> = writes
        .iter()
        .zip(lines)
        .filter(|(w, _)| w.key == *key)
        .map(|(_, line)| *line)
        .take(2)
        .collect();
    let line = found.get(1).or(found.first()).copied();
    in_copy(record, error, line)
}

/// An error of a COPY into `record`, with PostgreSQL's CONTEXT naming the line when known.
fn in_copy(record: &TableRecord, error: ExecError, line: Option<u64>) -> ExecError {
    let context = match line {
        Some(line) => format!("COPY {}, line {line}", record.name),
        None => format!("COPY {}", record.name),
    };
    ExecError::InCopy {
        source: Box::new(error),
        context,
    }
}

/// The row and column of a chunk's value that its type refused, as an error with
/// PostgreSQL's CONTEXT; other errors (a too long VARCHAR, NOT NULL) keep their own words.
fn locate(
    copy: &CopyIn,
    target: usize,
    array: &ArrayRef,
    lines: RowLines<'_>,
    error: ExecError,
) -> ExecError {
    let record = &copy.record;
    let column = &record.columns[target];
    for (row, line) in lines.iter().enumerate().take(array.len()) {
        let single = array.slice(row, 1);
        if let Err(e) = conform(record, column, &single) {
            let text = match single.data_type() {
                DataType::Utf8 => single
                    .as_string::<i32>()
                    .is_valid(0)
                    .then(|| single.as_string::<i32>().value(0).to_owned()),
                _ => None,
            };
            let line = format!("{}, line {line}", copy.context());
            // A value its column refuses names the column and the text; a NULL where NOT NULL
            // holds names the line, as PostgreSQL's CONTEXT does.
            let (source, context) = match (&e, &text) {
                (ExecError::NotNullViolation(_), _) => (e, line),
                (ExecError::InvalidText(_) | ExecError::NumericOutOfRange(_), Some(text)) => (
                    input_error(column, text),
                    format!("{line}, column {}: {}", column.name, quoted(text)),
                ),
                (_, Some(text)) => (
                    e,
                    format!("{line}, column {}: {}", column.name, quoted(text)),
                ),
                (_, None) => (e, format!("{line}, column {}", column.name)),
            };
            return ExecError::InCopy {
                source: Box::new(source),
                context,
            };
        }
    }
    ExecError::InCopy {
        source: Box::new(error),
        context: copy.context(),
    }
}
