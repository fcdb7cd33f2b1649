//! The rows secondary indexes add to the derived catalog tables: a relation of kind `i` in
//! `pg_class`, a `pg_index` row, their key columns in `pg_attribute`, `pg_get_indexdef`'s
//! text, and (with the primary keys' indexes) the `pg_indexes` view; an index that enforces a
//! UNIQUE constraint adds the constraint's `pg_constraint` row and `pg_get_constraintdef`.

use super::queries::{
    Part, constraint_values, derived_relation, index_attribute, kalamdb_rows, key_collations, text,
};
use super::{CHECKS_TABLE, COLUMNS_TABLE, INDEXES_TABLE};

/// Secondary indexes' OIDs: this base plus the index's relation id, like every object with a
/// stored id (`model::oids`).
pub(super) const INDEX_OID_BASE: i64 = crate::model::oids::FIRST_NORMAL_OID;

/// `pg_am.oid` of btree.
const BTREE_AM_OID: i64 = 403;

/// The OIDs of the UNIQUE constraints secondary indexes enforce (which have no id of their
/// own): this base plus the index's relation id.
pub(super) const CONSTRAINT_OID_BASE: i64 = 0x6000_0000;

/// CHECK constraints' OIDs: this base plus 64 per table OID plus the constraint's position.
const CHECK_OID_BASE: i64 = 0x7000_0000;

/// Every CHECK constraint `k` with its table `c` and namespace `n`.
fn check_rows() -> String {
    format!(
        "pg_catalog.{}pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.{CHECKS_TABLE} k ON k.namespace = n.nspname AND k.table_name = c.relname",
        super::BASE_PREFIX
    )
}

/// Each table with CHECK constraints and how many (`pg_class.relchecks`).
pub(super) fn check_counts() -> String {
    format!(
        "SELECT c.oid, CAST(count(*) AS SMALLINT) AS checks FROM {} GROUP BY c.oid",
        check_rows()
    )
}

fn check_oid() -> String {
    format!("{CHECK_OID_BASE} + c.oid * 64 + k.seq")
}

fn index_oid() -> String {
    format!("{INDEX_OID_BASE} + k.index_id")
}

fn constraint_oid() -> String {
    format!("{CONSTRAINT_OID_BASE} + k.index_id")
}

/// The tables with at least one secondary index, as a subquery of their OIDs.
pub(super) fn indexed_tables() -> String {
    format!("SELECT DISTINCT c.oid FROM {}", kalamdb_rows(INDEXES_TABLE))
}

/// `CREATE [UNIQUE] INDEX name ON schema.table USING btree (columns)`, over a group of one
/// index's rows.
fn index_definition() -> String {
    "'CREATE ' || CASE WHEN k.is_unique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || \
     quote_ident(k.index_name) || ' ON ' || quote_ident(n.nspname) || '.' || \
     quote_ident(c.relname) || ' USING btree (' || \
     string_agg(quote_ident(k.column_name), ', ' ORDER BY k.key_seq) || ')'"
        .to_owned()
}

pub(super) fn parts(name: &str) -> Vec<Part> {
    let group = "GROUP BY k.index_id, k.index_name, k.is_unique, k.is_ready, c.oid, \
                 c.relnamespace, c.relowner, n.nspname, c.relname";
    match name {
        "pg_class" => vec![Part {
            values: derived_relation(vec![
                ("oid", index_oid()),
                ("relname", text("k.index_name")),
                ("relnamespace", text("c.relnamespace")),
                ("relowner", text("c.relowner")),
                ("relam", BTREE_AM_OID.to_string()),
                ("relpages", text("0")),
                ("reltuples", text("0")),
                ("relkind", text("'i'")),
                ("relnatts", text("count(*)")),
            ]),
            from: format!("FROM {} {group}", kalamdb_rows(INDEXES_TABLE)),
            copies_base: false,
        }],
        "pg_index" => vec![Part {
            values: vec![
                ("indexrelid", index_oid()),
                ("indrelid", text("c.oid")),
                ("indnatts", text("count(*)")),
                ("indnkeyatts", text("count(*)")),
                ("indisunique", text("k.is_unique")),
                ("indnullsnotdistinct", text("false")),
                ("indisprimary", text("false")),
                ("indisexclusion", text("false")),
                ("indimmediate", text("true")),
                ("indisclustered", text("false")),
                ("indisvalid", text("k.is_ready")),
                ("indcheckxmin", text("false")),
                ("indisready", text("k.is_ready")),
                ("indislive", text("true")),
                ("indisreplident", text("false")),
                ("indkey", text("array_agg(a.attnum ORDER BY k.key_seq)")),
                ("indcollation", key_collations()),
                ("indclass", text("array_agg(0 ORDER BY k.key_seq)")),
                ("indoption", text("array_agg(0 ORDER BY k.key_seq)")),
            ],
            from: format!("FROM {} {group}", kalamdb_rows(INDEXES_TABLE)),
            copies_base: false,
        }],
        // An index has its key columns as its own attributes, numbered in key order.
        "pg_attribute" => vec![Part {
            values: index_attribute(index_oid()),
            from: format!(
                "FROM {} JOIN pg_catalog.{COLUMNS_TABLE} kc ON kc.namespace = k.namespace \
                 AND kc.table_name = k.table_name AND kc.column_name = k.column_name",
                kalamdb_rows(INDEXES_TABLE)
            ),
            copies_base: false,
        }],
        "pg_constraint" => vec![
            Part {
                values: constraint_values(vec![
                    ("oid", check_oid()),
                    ("conname", text("k.name")),
                    ("connamespace", text("n.oid")),
                    ("contype", text("'c'")),
                    ("conrelid", text("c.oid")),
                    ("conindid", text("0")),
                    ("connoinherit", text("false")),
                ]),
                from: format!("FROM {}", check_rows()),
                copies_base: false,
            },
            Part {
                values: constraint_values(vec![
                    ("oid", constraint_oid()),
                    ("conname", text("k.constraint_name")),
                    ("connamespace", text("n.oid")),
                    ("contype", text("'u'")),
                    ("conrelid", text("c.oid")),
                    ("conindid", index_oid()),
                    ("connoinherit", text("true")),
                    ("conkey", text("array_agg(a.attnum ORDER BY k.key_seq)")),
                ]),
                from: format!(
                    "FROM {} WHERE k.constraint_name IS NOT NULL \
                 GROUP BY k.index_id, k.constraint_name, n.oid, c.oid",
                    kalamdb_rows(INDEXES_TABLE)
                ),
                copies_base: false,
            },
        ],
        super::DEFINITIONS_TABLE => vec![
            Part {
                values: vec![
                    ("objid", check_oid()),
                    ("column_no", text("0")),
                    ("definition", text("'CHECK (' || k.expr || ')'")),
                ],
                from: format!("FROM {}", check_rows()),
                copies_base: false,
            },
            Part {
                values: vec![
                    ("objid", constraint_oid()),
                    ("column_no", text("0")),
                    (
                        "definition",
                        text(
                            "'UNIQUE (' || string_agg(quote_ident(k.column_name), ', ' \
                             ORDER BY k.key_seq) || ')'",
                        ),
                    ),
                ],
                from: format!(
                    "FROM {} WHERE k.constraint_name IS NOT NULL GROUP BY k.index_id",
                    kalamdb_rows(INDEXES_TABLE)
                ),
                copies_base: false,
            },
            Part {
                values: vec![
                    ("objid", index_oid()),
                    ("column_no", text("0")),
                    ("definition", index_definition()),
                ],
                from: format!("FROM {} {group}", kalamdb_rows(INDEXES_TABLE)),
                copies_base: false,
            },
            Part {
                values: vec![
                    ("objid", index_oid()),
                    ("column_no", text("k.key_seq")),
                    ("definition", text("quote_ident(k.column_name)")),
                ],
                from: format!("FROM {}", kalamdb_rows(INDEXES_TABLE)),
                copies_base: false,
            },
        ],
        super::INDEXES_VIEW => vec![Part {
            values: vec![
                ("schemaname", text("n.nspname")),
                ("tablename", text("c.relname")),
                ("indexname", text("k.index_name")),
                ("indexdef", index_definition()),
            ],
            from: format!("FROM {} {group}", kalamdb_rows(INDEXES_TABLE)),
            copies_base: false,
        }],
        _ => Vec::new(),
    }
}
