//! `pg_catalog.kalamdb_foreign_keys`: every column pair of every foreign key, in key order,
//! from which the derived `pg_constraint` rows (contype `f`) and `pg_get_constraintdef` of
//! foreign keys are computed (see `pg_derived`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int16Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;

use super::catalog::storage_error;
use super::sequences::quote_ident;
use super::system_tables::{SystemTable, texts};
use crate::model::ReferentialAction;
use crate::storage::{ForeignKeyRecord, Store, TableRecord};

#[derive(Debug)]
pub(super) struct ForeignKeysTable;

/// What `pg_get_constraintdef` says after the column lists: the actions other than NO
/// ACTION, then deferrability, as PostgreSQL prints them.
fn definition_tail(fk: &ForeignKeyRecord) -> String {
    let mut tail = String::new();
    for (event, action) in [("UPDATE", fk.on_update), ("DELETE", fk.on_delete)] {
        if action != ReferentialAction::NoAction {
            tail.push_str(&format!(" ON {event} {}", action.sql()));
        }
    }
    if fk.deferrable {
        tail.push_str(" DEFERRABLE");
    }
    if fk.initially_deferred {
        tail.push_str(" INITIALLY DEFERRED");
    }
    tail
}

/// The referenced table as `pg_get_constraintdef` names it: qualified outside `public`.
fn relation_text(table: &TableRecord) -> String {
    match table.namespace.as_str() {
        "public" => quote_ident(&table.name),
        namespace => format!("{}.{}", quote_ident(namespace), quote_ident(&table.name)),
    }
}

impl SystemTable for ForeignKeysTable {
    fn schema(&self) -> SchemaRef {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        Arc::new(Schema::new(vec![
            text("namespace", false),
            text("table_name", false),
            text("name", false),
            Field::new("constraint_id", DataType::Int64, false),
            text("column_name", false),
            Field::new("key_seq", DataType::Int16, false),
            text("parent_namespace", false),
            text("parent_table", false),
            text("parent_column", false),
            text("parent_relation", false),
            // NULL when the referenced key is the primary key.
            text("parent_index", true),
            Field::new("parent_index_id", DataType::Int64, false),
            text("update_type", false),
            text("delete_type", false),
            Field::new("deferrable", DataType::Boolean, false),
            Field::new("deferred", DataType::Boolean, false),
            text("definition_tail", false),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let tables = store.tables().map_err(storage_error)?;
        let keys = store.all_foreign_keys().map_err(storage_error)?;
        let mut rows = Vec::new();
        for fk in &keys {
            let table = tables.iter().find(|t| t.table_id == fk.table_id);
            let parent = tables.iter().find(|t| t.table_id == fk.parent_id);
            let (Some(table), Some(parent)) = (table, parent) else {
                continue;
            };
            let tail = definition_tail(fk);
            let parent_relation = relation_text(parent);
            for (seq, pair) in fk.in_declared_order().into_iter().enumerate() {
                let (c, p) = (fk.columns[pair], fk.parent_columns[pair]);
                let (Some(column), Some(parent_column)) =
                    (table.columns.get(c), parent.columns.get(p))
                else {
                    continue;
                };
                rows.push((
                    table,
                    fk,
                    column.name.as_str(),
                    seq,
                    parent,
                    parent_column.name.as_str(),
                    parent_relation.clone(),
                    tail.clone(),
                ));
            }
        }
        let bools = |f: fn(&ForeignKeyRecord) -> bool| -> ArrayRef {
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|(_, fk, ..)| Some(f(fk))),
            ))
        };
        Ok(vec![
            texts(rows.iter().map(|(t, ..)| Some(t.namespace.as_str()))),
            texts(rows.iter().map(|(t, ..)| Some(t.name.as_str()))),
            texts(rows.iter().map(|(_, fk, ..)| Some(fk.name.as_str()))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, fk, ..)| fk.constraint_id as i64),
            )),
            texts(rows.iter().map(|(_, _, c, ..)| Some(*c))),
            Arc::new(Int16Array::from_iter_values(
                rows.iter().map(|(_, _, _, seq, ..)| *seq as i16 + 1),
            )),
            texts(
                rows.iter()
                    .map(|(.., p, _, _, _)| Some(p.namespace.as_str())),
            ),
            texts(rows.iter().map(|(.., p, _, _, _)| Some(p.name.as_str()))),
            texts(rows.iter().map(|(.., pc, _, _)| Some(*pc))),
            texts(rows.iter().map(|(.., relation, _)| Some(relation.as_str()))),
            texts(rows.iter().map(|(_, fk, ..)| fk.parent_index.as_deref())),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, fk, ..)| fk.parent_index_id as i64),
            )),
            texts(rows.iter().map(|(_, fk, ..)| Some(fk.on_update.code()))),
            texts(rows.iter().map(|(_, fk, ..)| Some(fk.on_delete.code()))),
            bools(|fk| fk.deferrable),
            bools(|fk| fk.initially_deferred),
            texts(rows.iter().map(|(.., tail)| Some(tail.as_str()))),
        ])
    }
}
