//! Catalog rows PostgreSQL 15 lists that datafusion-pg-catalog lists otherwise: namespaces
//! (`information_schema` and `pg_toast` too, and `information_schema.schemata` over them),
//! functions' argument lists as arrays in `pg_proc`, `pg_stat_user_tables` with a row per
//! table and its live row count, and the types of `pg_type` as PostgreSQL 15 has them (the
//! crate's rows come from a later release).

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

use super::queries::{Part, text};
use super::{BASE_PREFIX, STAT_USER_TABLES};
use crate::exec::information_schema;
use crate::model::oids::{INFORMATION_SCHEMA_OID, PG_TOAST_NAMESPACE_OID};

/// PostgreSQL 15's `pg_stat_user_tables` columns after the relation's identity; the counters
/// KalamDB does not keep (scans, tuples inserted, vacuums) are NULL rather than a made-up zero.
const STAT_COLUMNS: [&str; 20] = [
    "seq_scan",
    "seq_tup_read",
    "idx_scan",
    "idx_tup_fetch",
    "n_tup_ins",
    "n_tup_upd",
    "n_tup_del",
    "n_tup_hot_upd",
    "n_live_tup",
    "n_dead_tup",
    "n_mod_since_analyze",
    "n_ins_since_vacuum",
    "last_vacuum",
    "last_autovacuum",
    "last_analyze",
    "last_autoanalyze",
    "vacuum_count",
    "autovacuum_count",
    "analyze_count",
    "autoanalyze_count",
];

/// The columns of the relations here that have no datafusion-pg-catalog table to follow.
pub(super) fn fields(name: &str) -> Option<Vec<Field>> {
    if name == information_schema::SCHEMATA {
        return Some(
            [
                "catalog_name",
                "schema_name",
                "schema_owner",
                "default_character_set_catalog",
                "default_character_set_schema",
                "default_character_set_name",
                "sql_path",
            ]
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect(),
        );
    }
    if name == STAT_USER_TABLES {
        let mut fields = vec![
            Field::new("relid", DataType::Int32, true),
            Field::new("schemaname", DataType::Utf8, true),
            Field::new("relname", DataType::Utf8, true),
        ];
        fields.extend(STAT_COLUMNS.iter().map(|name| {
            let data_type = if name.starts_with("last_") {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            } else {
                DataType::Int64
            };
            Field::new(*name, data_type, true)
        }));
        return Some(fields);
    }
    None
}

pub(super) fn parts(name: &str) -> Option<Vec<Part>> {
    Some(match name {
        // PostgreSQL lists `information_schema` and `pg_toast` among its namespaces too;
        // KalamDB answers for the first and, like PostgreSQL, keeps nothing a tool reads in
        // the second.
        "pg_namespace" => vec![
            Part {
                values: vec![],
                from: format!("FROM pg_catalog.{BASE_PREFIX}pg_namespace a"),
                copies_base: true,
            },
            namespace(INFORMATION_SCHEMA_OID, "information_schema"),
            namespace(PG_TOAST_NAMESPACE_OID, "pg_toast"),
        ],
        // Every namespace, as `information_schema` describes a schema.
        information_schema::SCHEMATA => vec![Part {
            values: vec![
                ("catalog_name", text("current_database()")),
                ("schema_name", text("n.nspname")),
                ("schema_owner", text("pg_get_userbyid(n.nspowner)")),
            ],
            from: text("FROM pg_catalog.pg_namespace n"),
            copies_base: false,
        }],
        // datafusion-pg-catalog holds a function's argument lists as text (`25 23`,
        // `[1034, 26]`, `['acl', 'grantor']`); PostgreSQL's are an oidvector and arrays.
        "pg_proc" => vec![Part {
            values: vec![
                (
                    "proargtypes",
                    text("CAST(string_to_array(a.proargtypes, ' ') AS INT[])"),
                ),
                ("proallargtypes", listed("a.proallargtypes", "INT[]")),
                ("proargnames", listed("a.proargnames", "TEXT[]")),
                ("proargmodes", listed("a.proargmodes", "TEXT[]")),
            ],
            from: format!("FROM pg_catalog.{BASE_PREFIX}pg_proc a"),
            copies_base: true,
        }],
        // Every table outside PostgreSQL's own namespaces, with its live rows (hot ones not
        // deleted, flushed ones not deleted or replaced) as `system.tables` counts them.
        STAT_USER_TABLES => vec![Part {
            values: vec![
                ("relid", text("c.oid")),
                ("schemaname", text("n.nspname")),
                ("relname", text("c.relname")),
                ("n_live_tup", text("t.hot_rows + t.cold_rows")),
            ],
            from: text(
                "FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 JOIN system.tables t ON t.namespace = n.nspname AND t.table_name = c.relname \
                 WHERE c.relkind = 'r'",
            ),
            copies_base: false,
        }],
        // A row type belongs to a relation: the crate's pg_type also has those of catalog
        // relations KalamDB does not list (and of ones PostgreSQL 15 does not have), with
        // their array types. `aclitem` is 12 bytes, int-aligned, before PostgreSQL 16, and
        // PostgreSQL 15 keeps the parse location of `information_schema.time_stamp`'s
        // default (later releases store -1).
        "pg_type" => vec![Part {
            values: vec![
                (
                    "typdefaultbin",
                    text(
                        "CASE WHEN a.typname = 'time_stamp' AND a.typtype = 'd' \
                         THEN replace(a.typdefaultbin, ':location -1', ':location 105') \
                         ELSE a.typdefaultbin END",
                    ),
                ),
                (
                    "typlen",
                    format!("CASE WHEN a.oid = {ACLITEM_OID} THEN 12 ELSE a.typlen END"),
                ),
                (
                    "typalign",
                    format!(
                        "CASE WHEN a.oid IN ({ACLITEM_OID}, {ACLITEM_ARRAY_OID}) THEN 'i' \
                         ELSE a.typalign END"
                    ),
                ),
            ],
            from: format!(
                "FROM pg_catalog.{BASE_PREFIX}pg_type a \
                 LEFT JOIN pg_catalog.{BASE_PREFIX}pg_type e ON e.oid = a.typelem \
                 WHERE {} AND {}",
                listed_row_type("a"),
                listed_row_type("e"),
            ),
            copies_base: true,
        }],
        _ => return None,
    })
}

const ACLITEM_OID: i32 = 1033;
const ACLITEM_ARRAY_OID: i32 = 1034;

/// Whether the type `t` (possibly absent, as an outer join's) is no row type, or the row
/// type of a relation `pg_class` lists.
fn listed_row_type(t: &str) -> String {
    format!(
        "({t}.oid IS NULL OR {t}.typtype <> 'c' OR {t}.typrelid IN \
         (SELECT oid FROM pg_catalog.{BASE_PREFIX}pg_class))"
    )
}

/// PostgreSQL 15's descriptions of the types whose description changed in later releases,
/// by type OID; a NULL text is a description PostgreSQL 15 does not have.
const PG15_TYPE_DESCRIPTIONS: [(i32, Option<&str>); 20] = [
    (16, Some("boolean, 'true'/'false'")),
    (27, Some("(block, offset), physical location of tuple")),
    (269, None),
    (600, Some("geometric point '(x, y)'")),
    (601, Some("geometric line segment '(pt1,pt2)'")),
    (602, Some("geometric path '(pt1,...)'")),
    (603, Some("geometric box '(lower left,upper right)'")),
    (604, Some("geometric polygon '(pt1,...)'")),
    (628, Some("geometric line")),
    (718, Some("geometric circle '(center,radius)'")),
    (
        1042,
        Some("char(length), blank-padded string, fixed storage length"),
    ),
    (
        1043,
        Some("varchar(length), non-blank-padded string, variable storage length"),
    ),
    (1186, Some("@ <number> <units>, time interval")),
    (
        1700,
        Some("numeric(precision, decimal), arbitrary precision number"),
    ),
    (2950, Some("UUID datatype")),
    (2970, Some("txid snapshot")),
    (3220, Some("PostgreSQL LSN datatype")),
    (4600, Some("BRIN bloom summary")),
    (4601, Some("BRIN minmax-multi summary")),
    (5038, Some("snapshot")),
];

/// The crate's descriptions `a` (with `pg_type`'s OID as `classoid`), with PostgreSQL 15's
/// text where it differs: the FROM clause, and the description's value.
pub(super) fn pg15_descriptions(type_class: i64) -> (String, String) {
    let rows: Vec<String> = PG15_TYPE_DESCRIPTIONS
        .iter()
        .map(|(oid, text)| match text {
            Some(text) => format!("({oid}, '{}')", text.replace('\'', "''")),
            None => format!("({oid}, CAST(NULL AS TEXT))"),
        })
        .collect();
    let from = format!(
        "FROM pg_catalog.{BASE_PREFIX}pg_description a \
         LEFT JOIN (VALUES {}) AS pg15(objoid, description) \
         ON pg15.objoid = a.objoid AND a.classoid = {type_class} \
         WHERE pg15.objoid IS NULL OR pg15.description IS NOT NULL",
        rows.join(", ")
    );
    let value = "COALESCE(pg15.description, a.description)".to_owned();
    (from, value)
}

fn namespace(oid: i32, name: &str) -> Part {
    Part {
        values: vec![
            ("oid", oid.to_string()),
            ("nspname", format!("'{name}'")),
            ("nspowner", text("10")),
        ],
        from: String::new(),
        copies_base: false,
    }
}

/// The array a list written as `[a, b]` or `['a', 'b']` holds, as `array_type`; NULL for an
/// absent list. (The quoted items of datafusion-pg-catalog's lists are argument names and
/// modes, which hold no quotes or commas.)
fn listed(column: &str, array_type: &str) -> String {
    format!(
        "CASE WHEN {column} IS NULL OR {column} = '' THEN NULL ELSE CAST(string_to_array(\
         replace(btrim({column}, '[]'), '''', ''), ', ') AS {array_type}) END"
    )
}
