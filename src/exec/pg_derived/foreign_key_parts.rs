//! The rows foreign keys add to the derived catalog tables: a `pg_constraint` row of type
//! `f` (columns, referenced table and key, actions, deferrability) and the text of
//! `pg_get_constraintdef`, which psql's `\d`, SQLAlchemy's inspector and pgJDBC read.

use super::FOREIGN_KEYS_TABLE;
use super::index_parts::INDEX_OID_BASE;
use super::queries::{INDEX_OID_OFFSET, Part, constraint_values, text};

/// Every column pair `k` of every foreign key, with the referencing table `c` (namespace `n`,
/// column `a`) and the referenced table `pc` (column `pa`).
fn key_rows() -> String {
    let base = super::BASE_PREFIX;
    format!(
        "pg_catalog.{base}pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.{FOREIGN_KEYS_TABLE} k ON k.namespace = n.nspname AND k.table_name = c.relname \
         JOIN pg_catalog.{base}pg_attribute a ON a.attrelid = c.oid AND a.attname = k.column_name \
         JOIN pg_catalog.pg_namespace pn ON pn.nspname = k.parent_namespace \
         JOIN pg_catalog.{base}pg_class pc ON pc.relnamespace = pn.oid AND pc.relname = k.parent_table \
         JOIN pg_catalog.{base}pg_attribute pa ON pa.attrelid = pc.oid AND pa.attname = k.parent_column"
    )
}

/// The tables on either side of a foreign key, as a subquery of their OIDs.
pub(super) fn linked_tables() -> String {
    format!(
        "SELECT c.oid FROM {rows} UNION SELECT pc.oid FROM {rows}",
        rows = key_rows()
    )
}

const GROUP: &str = "GROUP BY k.constraint_id, k.name, n.oid, c.oid, pc.oid, k.parent_index, \
                     k.parent_index_id, k.update_type, k.delete_type, k.deferrable, k.deferred, \
                     k.parent_relation, k.definition_tail";

fn constraint_oid() -> String {
    // A foreign key has a stored id of its own.
    format!("{} + k.constraint_id", crate::model::oids::FIRST_NORMAL_OID)
}

pub(super) fn parts(name: &str) -> Vec<Part> {
    match name {
        "pg_constraint" => vec![Part {
            values: constraint_values(vec![
                ("oid", constraint_oid()),
                ("conname", text("k.name")),
                ("connamespace", text("n.oid")),
                ("contype", text("'f'")),
                ("condeferrable", text("k.deferrable")),
                ("condeferred", text("k.deferred")),
                ("conrelid", text("c.oid")),
                // The referenced key's index: the primary key's, or the unique index's.
                (
                    "conindid",
                    format!(
                        "CASE WHEN k.parent_index IS NULL THEN pc.oid + {INDEX_OID_OFFSET} \
                         ELSE {INDEX_OID_BASE} + k.parent_index_id END"
                    ),
                ),
                ("confrelid", text("pc.oid")),
                ("confupdtype", text("k.update_type")),
                ("confdeltype", text("k.delete_type")),
                ("confmatchtype", text("'s'")),
                ("connoinherit", text("true")),
                ("conkey", text("array_agg(a.attnum ORDER BY k.key_seq)")),
                ("confkey", text("array_agg(pa.attnum ORDER BY k.key_seq)")),
            ]),
            from: format!("FROM {} {GROUP}", key_rows()),
            copies_base: false,
        }],
        super::DEFINITIONS_TABLE => vec![Part {
            values: vec![
                ("objid", constraint_oid()),
                ("column_no", text("0")),
                (
                    "definition",
                    text(
                        "'FOREIGN KEY (' || string_agg(quote_ident(k.column_name), ', ' \
                         ORDER BY k.key_seq) || ') REFERENCES ' || k.parent_relation || '(' || \
                         string_agg(quote_ident(k.parent_column), ', ' ORDER BY k.key_seq) || \
                         ')' || k.definition_tail",
                    ),
                ),
            ],
            from: format!("FROM {} {GROUP}", key_rows()),
            copies_base: false,
        }],
        _ => Vec::new(),
    }
}
