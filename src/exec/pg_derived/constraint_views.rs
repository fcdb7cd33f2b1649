//! `information_schema`'s constraint relations, derived from `pg_constraint` and
//! `pg_attribute` the way PostgreSQL 15 defines them over its own catalogs, so that a tool
//! asking the standard views (pgJDBC's metadata, Django, BI tools) sees the constraints psql
//! shows. Like PostgreSQL 15, a NOT NULL column counts as a CHECK constraint named
//! `<namespace oid>_<table oid>_<attnum>_not_null`.

use super::DEFINITIONS_TABLE;
use super::queries::{Part, text};
use crate::exec::information_schema::{
    CHECK_CONSTRAINTS, CONSTRAINT_COLUMN_USAGE, KEY_COLUMN_USAGE, REFERENTIAL_CONSTRAINTS,
    TABLE_CONSTRAINTS,
};

/// The most columns a key has (PostgreSQL's INDEX_MAX_KEYS): positions in `conkey` are
/// enumerated up to it.
const MAX_KEY_COLUMNS: i32 = 32;

fn catalog() -> String {
    format!("'{}'", crate::model::DATABASE_NAME)
}

/// Constraint `con` on table `c` in namespace `n` (a table's constraints live in its
/// namespace).
const CONSTRAINTS: &str = "FROM pg_catalog.pg_constraint con \
     JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace";

/// Every NOT NULL column `a` of table `c` in namespace `n`.
const NOT_NULL_COLUMNS: &str = "FROM pg_catalog.pg_attribute a \
     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE a.attnotnull AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')";

const NOT_NULL_NAME: &str = "CAST(n.oid AS TEXT) || '_' || CAST(c.oid AS TEXT) || '_' || \
     CAST(a.attnum AS TEXT) || '_not_null'";

/// Each position `s.value` of `keys` (an attnum array of `con`) with its column `a` of
/// table `relation`: the joins, and the condition for the WHERE clause. (In the join's ON,
/// DataFusion 55 drops the condition on the cross-joined positions.)
fn key_positions(keys: &str, relation: &str) -> (String, String) {
    (
        format!(
            "CROSS JOIN generate_series(1, {MAX_KEY_COLUMNS}) AS s(value) \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = {relation}"
        ),
        format!("s.value <= array_length({keys}, 1) AND a.attnum = array_element({keys}, s.value)"),
    )
}

fn yes_no(flag: &str) -> String {
    format!("CASE WHEN {flag} THEN 'YES' ELSE 'NO' END")
}

/// `update_rule` / `delete_rule` from `confupdtype` / `confdeltype`.
fn rule(code: &str) -> String {
    format!(
        "CASE {code} WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' \
         WHEN 'd' THEN 'SET DEFAULT' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END"
    )
}

fn constraint_columns(schema: &str, name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("constraint_catalog", catalog()),
        ("constraint_schema", text(schema)),
        ("constraint_name", text(name)),
    ]
}

fn table_columns() -> Vec<(&'static str, String)> {
    vec![
        ("table_catalog", catalog()),
        ("table_schema", text("n.nspname")),
        ("table_name", text("c.relname")),
    ]
}

pub(super) fn parts(name: &str) -> Option<Vec<Part>> {
    let part = |values: Vec<(&'static str, String)>, from: String| Part {
        values,
        from,
        copies_base: false,
    };
    let parts = match name {
        TABLE_CONSTRAINTS => vec![
            part(
                [
                    constraint_columns("n.nspname", "con.conname"),
                    table_columns(),
                    vec![
                        (
                            "constraint_type",
                            text(
                                "CASE con.contype WHEN 'p' THEN 'PRIMARY KEY' \
                                 WHEN 'u' THEN 'UNIQUE' WHEN 'f' THEN 'FOREIGN KEY' \
                                 ELSE 'CHECK' END",
                            ),
                        ),
                        ("is_deferrable", yes_no("con.condeferrable")),
                        ("initially_deferred", yes_no("con.condeferred")),
                        ("enforced", text("'YES'")),
                        (
                            "nulls_distinct",
                            text("CASE WHEN con.contype IN ('p', 'u') THEN 'YES' END"),
                        ),
                    ],
                ]
                .concat(),
                format!("{CONSTRAINTS} WHERE con.contype IN ('p', 'u', 'f', 'c')"),
            ),
            part(
                [
                    constraint_columns("n.nspname", NOT_NULL_NAME),
                    table_columns(),
                    vec![
                        ("constraint_type", text("'CHECK'")),
                        ("is_deferrable", text("'NO'")),
                        ("initially_deferred", text("'NO'")),
                        ("enforced", text("'YES'")),
                    ],
                ]
                .concat(),
                NOT_NULL_COLUMNS.to_owned(),
            ),
        ],
        KEY_COLUMN_USAGE => vec![part(
            [
                constraint_columns("n.nspname", "con.conname"),
                table_columns(),
                vec![
                    ("column_name", text("a.attname")),
                    ("ordinal_position", text("s.value")),
                    // Where the referenced column is in the referenced key's index.
                    (
                        "position_in_unique_constraint",
                        text(
                            "CASE WHEN con.contype = 'f' THEN array_position(i.indkey, \
                             array_element(con.confkey, s.value)) END",
                        ),
                    ),
                ],
            ]
            .concat(),
            {
                let (joins, on_key) = key_positions("con.conkey", "con.conrelid");
                format!(
                    "{CONSTRAINTS} {joins} \
                     LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = con.conindid \
                     WHERE con.contype IN ('p', 'u', 'f') AND {on_key}"
                )
            },
        )],
        REFERENTIAL_CONSTRAINTS => vec![part(
            [
                constraint_columns("n.nspname", "con.conname"),
                vec![
                    (
                        "unique_constraint_catalog",
                        format!("CASE WHEN pkc.conname IS NOT NULL THEN {} END", catalog()),
                    ),
                    ("unique_constraint_schema", text("pn.nspname")),
                    ("unique_constraint_name", text("pkc.conname")),
                    (
                        "match_option",
                        text(
                            "CASE con.confmatchtype WHEN 'f' THEN 'FULL' \
                             WHEN 'p' THEN 'PARTIAL' ELSE 'NONE' END",
                        ),
                    ),
                    ("update_rule", rule("con.confupdtype")),
                    ("delete_rule", rule("con.confdeltype")),
                ],
            ]
            .concat(),
            // The referenced key's constraint, when its index is one's (not a bare unique
            // index).
            format!(
                "{CONSTRAINTS} \
                 LEFT JOIN pg_catalog.pg_constraint pkc ON pkc.conrelid = con.confrelid \
                 AND pkc.conindid = con.conindid AND pkc.contype IN ('p', 'u') \
                 LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = pkc.connamespace \
                 WHERE con.contype = 'f'"
            ),
        )],
        // The columns a constraint constrains: a foreign key's are the referenced ones.
        CONSTRAINT_COLUMN_USAGE => {
            let usage = |keys: &str, relation: &str, kinds: &str| {
                let (joins, on_key) = key_positions(keys, relation);
                part(
                    [
                        table_columns(),
                        vec![("column_name", text("a.attname"))],
                        constraint_columns("cn.nspname", "con.conname"),
                    ]
                    .concat(),
                    format!(
                        "FROM pg_catalog.pg_constraint con \
                         JOIN pg_catalog.pg_namespace cn ON cn.oid = con.connamespace \
                         JOIN pg_catalog.pg_class c ON c.oid = {relation} \
                         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace {joins} \
                         WHERE con.contype IN ({kinds}) AND {on_key}"
                    ),
                )
            };
            vec![
                usage("con.conkey", "con.conrelid", "'p', 'u', 'c'"),
                usage("con.confkey", "con.confrelid", "'f'"),
            ]
        }
        CHECK_CONSTRAINTS => vec![
            part(
                [
                    constraint_columns("n.nspname", "con.conname"),
                    vec![(
                        "check_clause",
                        // After `CHECK `, as PostgreSQL's view cuts pg_get_constraintdef.
                        text("substr(d.definition, 7)"),
                    )],
                ]
                .concat(),
                format!(
                    "{CONSTRAINTS} JOIN pg_catalog.{DEFINITIONS_TABLE} d \
                     ON d.objid = con.oid AND d.column_no = 0 WHERE con.contype = 'c'"
                ),
            ),
            part(
                [
                    constraint_columns("n.nspname", NOT_NULL_NAME),
                    vec![("check_clause", text("a.attname || ' IS NOT NULL'"))],
                ]
                .concat(),
                NOT_NULL_COLUMNS.to_owned(),
            ),
        ],
        _ => return None,
    };
    Some(parts)
}
