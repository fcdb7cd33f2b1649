//! `pg_catalog.kalamdb_indexes`: every column of every secondary index, in index order, from
//! which the derived `pg_class`, `pg_index`, `pg_attribute`, `pg_indexes` and
//! `pg_get_indexdef` rows of secondary indexes are computed (see `pg_derived`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int16Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;

use super::catalog::storage_error;
use super::system_tables::{SystemTable, texts};
use crate::storage::{IndexState, Store};

#[derive(Debug)]
pub(super) struct IndexesTable;

impl SystemTable for IndexesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("namespace", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("index_name", DataType::Utf8, false),
            Field::new("index_id", DataType::Int64, false),
            Field::new("column_name", DataType::Utf8, false),
            Field::new("key_seq", DataType::Int16, false),
            Field::new("is_unique", DataType::Boolean, false),
            Field::new("is_ready", DataType::Boolean, false),
            Field::new("constraint_name", DataType::Utf8, true),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let tables = store.tables().map_err(storage_error)?;
        let indexes = store.all_indexes().map_err(storage_error)?;
        let mut rows = Vec::new();
        for index in &indexes {
            let Some(table) = tables.iter().find(|t| t.table_id == index.table_id) else {
                continue;
            };
            for (seq, &column) in index.columns.iter().enumerate() {
                let Some(column) = table.columns.get(column) else {
                    continue;
                };
                rows.push((table, index, column, seq));
            }
        }
        Ok(vec![
            texts(rows.iter().map(|(t, ..)| Some(t.namespace.as_str()))),
            texts(rows.iter().map(|(t, ..)| Some(t.name.as_str()))),
            texts(rows.iter().map(|(_, i, ..)| Some(i.name.as_str()))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, i, ..)| i.index_id as i64),
            )),
            texts(rows.iter().map(|(_, _, c, _)| Some(c.name.as_str()))),
            Arc::new(Int16Array::from_iter_values(
                rows.iter().map(|(.., seq)| *seq as i16 + 1),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|(_, i, ..)| Some(i.unique)),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter()
                    .map(|(_, i, ..)| Some(i.state == IndexState::Ready)),
            )),
            texts(rows.iter().map(|(_, i, ..)| i.constraint.as_deref())),
        ])
    }
}

/// `system.indexes`: every secondary index with its state, checked against its table when
/// read: how many entries it has, how many live rows the table has, and how many rows lack
/// their entry or entries lack their row (both 0 in a consistent index). The check reads the
/// whole table, as PostgreSQL's `amcheck` with `heapallindexed` does.
#[derive(Debug)]
pub(super) struct IndexHealthTable;

impl SystemTable for IndexHealthTable {
    fn schema(&self) -> SchemaRef {
        let count = |name: &str| Field::new(name, DataType::Int64, false);
        Arc::new(Schema::new(vec![
            Field::new("namespace", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("index_name", DataType::Utf8, false),
            Field::new("columns", DataType::Utf8, false),
            Field::new("is_unique", DataType::Boolean, false),
            Field::new("state", DataType::Utf8, false),
            count("entries"),
            count("live_rows"),
            count("missing_entries"),
            count("dangling_entries"),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let tables = store.tables().map_err(storage_error)?;
        let mut rows = Vec::new();
        for index in store.all_indexes().map_err(storage_error)? {
            let Some(table) = tables.iter().find(|t| t.table_id == index.table_id) else {
                continue;
            };
            let columns: Vec<&str> = index
                .columns
                .iter()
                .filter_map(|&c| table.columns.get(c).map(|c| c.name.as_str()))
                .collect();
            let check = store.check_index(&index).map_err(storage_error)?;
            rows.push((table, columns.join(", "), check, index));
        }
        let counts = |f: fn(&crate::storage::IndexCheck) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, _, check, _)| f(check) as i64),
            ))
        };
        Ok(vec![
            texts(rows.iter().map(|(t, ..)| Some(t.namespace.as_str()))),
            texts(rows.iter().map(|(t, ..)| Some(t.name.as_str()))),
            texts(rows.iter().map(|(.., i)| Some(i.name.as_str()))),
            texts(rows.iter().map(|(_, c, ..)| Some(c.as_str()))),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|(.., i)| Some(i.unique)),
            )),
            texts(rows.iter().map(|(.., i)| {
                Some(match i.state {
                    IndexState::Ready => "ready",
                    IndexState::Building => "building",
                })
            })),
            counts(|c| c.entries),
            counts(|c| c.rows),
            counts(|c| c.missing),
            counts(|c| c.dangling),
        ])
    }
}

/// `pg_catalog.kalamdb_checks`: every CHECK constraint (namespace, table, name, expression,
/// position), behind their `pg_constraint` rows and `pg_get_constraintdef`.
#[derive(Debug)]
pub(super) struct ChecksTable;

impl SystemTable for ChecksTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("namespace", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("expr", DataType::Utf8, false),
            Field::new("seq", DataType::Int64, false),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let tables = store.tables().map_err(storage_error)?;
        let checks: Vec<_> = tables
            .iter()
            .flat_map(|t| t.checks.iter().enumerate().map(move |(i, c)| (t, i, c)))
            .collect();
        Ok(vec![
            texts(checks.iter().map(|(t, ..)| Some(t.namespace.as_str()))),
            texts(checks.iter().map(|(t, ..)| Some(t.name.as_str()))),
            texts(checks.iter().map(|(.., c)| Some(c.name.as_str()))),
            texts(checks.iter().map(|(.., c)| Some(c.expr.as_str()))),
            Arc::new(Int64Array::from_iter_values(
                checks.iter().map(|(_, i, _)| *i as i64),
            )),
        ])
    }
}
