//! The queries behind each derived catalog table: which KalamDB helper relations each reads,
//! joined to datafusion-pg-catalog's rows so that OIDs agree.

use super::{
    BASE_PREFIX, COLUMNS_TABLE, COMMENTS_TABLE, DEFINITIONS_TABLE, RELATION_SIZES_TABLE,
    SEQUENCES_TABLE, SEQUENCES_VIEW, TABLE_SIZES_TABLE,
};
use crate::exec::information_schema;
use crate::exec::view_table::VIEWS_TABLE;

const PRIMARY_KEYS_TABLE: &str = crate::sql::PRIMARY_KEYS_TABLE;

use crate::sql::PRETTY_VIEW_COLUMN;

/// `pg_class.oid` of `pg_class` itself: the `classoid` of a relation's description.
const PG_CLASS_OID: i64 = 1259;

/// `pg_class.oid` of `pg_type`: the `classoid` of a type's description.
const PG_TYPE_OID: i64 = 1247;

/// Objects KalamDB derives from a table get OIDs at fixed offsets from the table's, in
/// ranges datafusion-pg-catalog's OID counter (which starts at 16384) does not reach.
pub(super) const INDEX_OID_OFFSET: i64 = crate::model::oids::PRIMARY_KEY_INDEX_OFFSET as i64;
const CONSTRAINT_OID_OFFSET: i64 = 0x3000_0000;
/// A column default's OID: this base plus 2048 per table (mod 2^19 tables) plus `attnum`.
const ATTRDEF_OID_BASE: i64 = 0x4000_0000;
/// `pg_am.oid` of btree, the access method PostgreSQL gives primary-key indexes.
const BTREE_AM_OID: i64 = 403;

/// One SELECT of a derived table (several are combined with UNION ALL). Its select list
/// follows the table's schema: a column in `values` reads that expression, any other reads
/// the base row's value (`a.<column>`) when `copies_base`, and NULL otherwise.
pub(super) struct Part {
    pub values: Vec<(&'static str, String)>,
    pub from: String,
    pub copies_base: bool,
}

/// Every key (or column) row of `kalamdb_table` joined with its relation `c`, namespace `n`
/// and datafusion-pg-catalog's attribute row `a` (for the column's number).
pub(super) fn kalamdb_rows(kalamdb_table: &str) -> String {
    format!(
        "pg_catalog.{BASE_PREFIX}pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.{kalamdb_table} k ON k.namespace = n.nspname AND k.table_name = c.relname \
         JOIN pg_catalog.{BASE_PREFIX}pg_attribute a \
         ON a.attrelid = c.oid AND a.attname = k.column_name"
    )
}

/// A relation KalamDB derives (a primary key's index, a sequence), with the `pg_class`
/// columns such relations share added to `values`: permanent, no storage of its own, and no
/// rules, triggers, row security or partitions.
pub(super) fn derived_relation(
    mut values: Vec<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    for (column, value) in [
        ("reltype", "0"),
        ("reloftype", "0"),
        ("relfilenode", "0"),
        ("reltablespace", "0"),
        ("relallvisible", "0"),
        ("reltoastrelid", "0"),
        ("relhasindex", "false"),
        ("relisshared", "false"),
        ("relpersistence", "'p'"),
        ("relchecks", "0"),
        ("relhasrules", "false"),
        ("relhastriggers", "false"),
        ("relhassubclass", "false"),
        ("relrowsecurity", "false"),
        ("relforcerowsecurity", "false"),
        ("relispopulated", "true"),
        ("relreplident", "'n'"),
        ("relispartition", "false"),
        ("relrewrite", "0"),
        ("relfrozenxid", "0"),
        ("relminmxid", "0"),
    ] {
        values.push((column, text(value)));
    }
    values
}

/// The `pg_attribute` row of an index's key column `k` (with its table column `a` and
/// declared type `kc`): an attribute of relation `attrelid`, numbered in key order.
pub(super) fn index_attribute(attrelid: String) -> Vec<(&'static str, String)> {
    let mut values = vec![
        ("attrelid", attrelid),
        ("attname", text("k.column_name")),
        ("atttypid", text("kc.type_oid")),
        ("attnum", text("k.key_seq")),
        ("atttypmod", text("kc.typmod")),
    ];
    for (column, value) in [
        ("attstattarget", "-1"),
        ("attlen", "a.attlen"),
        ("attndims", "0"),
        ("attcacheoff", "-1"),
        ("attbyval", "a.attbyval"),
        ("attalign", "a.attalign"),
        ("attstorage", "a.attstorage"),
        ("attnotnull", "false"),
        ("atthasdef", "false"),
        ("atthasmissing", "false"),
        ("attidentity", "''"),
        ("attgenerated", "''"),
        ("attcompression", "''"),
        ("attisdropped", "false"),
        ("attislocal", "true"),
        ("attinhcount", "0"),
    ] {
        values.push((column, text(value)));
    }
    values.push((
        "attcollation",
        collation_of("kc.type_oid", "a.attcollation"),
    ));
    values
}

/// A column's collation, by its type's OID: the database default (100) for the string types
/// and their arrays, `C` (950) for `name`, as PostgreSQL declares them, else `otherwise`.
/// `pg_index.indcollation` of an index whose key columns are `a` rows in key order: the
/// default collation for each text column, none for others.
pub(super) fn key_collations() -> String {
    format!(
        "array_agg({} ORDER BY k.key_seq)",
        collation_of("a.atttypid", "0")
    )
}

pub(super) fn collation_of(type_oid: &str, otherwise: &str) -> String {
    format!(
        "CASE WHEN {type_oid} IN (25, 1043, 1042, 1009, 1015, 1014) THEN 100 \
         WHEN {type_oid} = 19 THEN 950 ELSE {otherwise} END"
    )
}

/// The `pg_constraint` columns every KalamDB constraint has the same value in: not deferrable,
/// validated, local, and no foreign key.
pub(super) fn constraint_values(
    mut values: Vec<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let defaults = [
        ("condeferrable", "false"),
        ("condeferred", "false"),
        ("convalidated", "true"),
        ("contypid", "0"),
        ("conparentid", "0"),
        ("confrelid", "0"),
        ("confupdtype", "' '"),
        ("confdeltype", "' '"),
        ("confmatchtype", "' '"),
        ("conislocal", "true"),
        ("coninhcount", "0"),
    ];
    for (column, value) in defaults {
        if !values.iter().any(|(given, _)| *given == column) {
            values.push((column, text(value)));
        }
    }
    values
}

/// The rows of `kalamdb_table` (as `alias`, naming its relation by `namespace` and
/// `name_column`) joined with that relation `c` and its namespace `n`.
fn rows_by_relation(kalamdb_table: &str, alias: &str, name_column: &str) -> String {
    format!(
        "FROM pg_catalog.{BASE_PREFIX}pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.{kalamdb_table} {alias} \
         ON {alias}.namespace = n.nspname AND {alias}.{name_column} = c.relname"
    )
}

/// Each view's two rows in `kalamdb_definitions`: the plain text at column 0 and the pretty
/// one at `PRETTY_VIEW_COLUMN`, from one read of the views (each read prints them all).
fn view_definitions() -> Part {
    Part {
        values: vec![
            ("objid", text("c.oid")),
            ("column_no", text("k.column_no")),
            (
                "definition",
                text("CASE WHEN k.column_no = 0 THEN v.definition ELSE v.pretty_definition END"),
            ),
        ],
        from: format!(
            "{} CROSS JOIN (VALUES (0), ({PRETTY_VIEW_COLUMN})) AS k(column_no)",
            rows_by_relation(VIEWS_TABLE, "v", "name")
        ),
        copies_base: false,
    }
}

pub(super) fn text(s: &str) -> String {
    s.to_owned()
}

pub(super) fn definition(name: &str) -> Option<Vec<Part>> {
    if let Some(parts) = super::constraint_views::parts(name) {
        return Some(parts);
    }
    if let Some(parts) = super::columns_view::parts(name) {
        return Some(parts);
    }
    if let Some(parts) = super::dependencies::parts(name) {
        return Some(parts);
    }
    if let Some(parts) = super::listings::parts(name) {
        return Some(parts);
    }
    if let Some(parts) = super::activity_view::parts(name) {
        return Some(parts);
    }
    let key_columns = "array_agg(a.attnum ORDER BY k.key_seq)";
    let zeros = "array_agg(0 ORDER BY k.key_seq)";
    let index_oid = format!("c.oid + {INDEX_OID_OFFSET}");
    let quoted_keys = "string_agg(quote_ident(k.column_name), ', ' ORDER BY k.key_seq)";
    // What pg_get_indexdef and pg_indexes say of a primary key's index.
    let pk_index_definition = format!(
        "'CREATE UNIQUE INDEX ' || quote_ident(k.pk_name) || ' ON ' || \
         quote_ident(n.nspname) || '.' || quote_ident(c.relname) || \
         ' USING btree (' || {quoted_keys} || ')'"
    );
    let mut parts = match name {
        // The declared type (VARCHAR(n), NUMERIC(p,s), JSON, UUID), NOT NULL and whether a
        // default exists, over the columns datafusion-pg-catalog reads from Arrow types.
        "pg_attribute" => vec![
            Part {
                values: vec![
                    ("atttypid", text("COALESCE(k.type_oid, a.atttypid)")),
                    ("atttypmod", text("COALESCE(k.typmod, a.atttypmod)")),
                    // The default compression method, which PostgreSQL shows as ''.
                    ("attcompression", text("COALESCE(a.attcompression, '')")),
                    ("attnotnull", text("COALESCE(k.not_null, a.attnotnull)")),
                    ("attidentity", text("COALESCE(k.identity, a.attidentity)")),
                    (
                        "attcollation",
                        collation_of("COALESCE(k.type_oid, a.atttypid)", "a.attcollation"),
                    ),
                    (
                        "atthasdef",
                        text(
                            "CASE WHEN k.relid IS NULL THEN a.atthasdef \
                         ELSE k.default_expr IS NOT NULL END",
                        ),
                    ),
                ],
                from: format!(
                    "FROM pg_catalog.{BASE_PREFIX}pg_attribute a LEFT JOIN (\
                 SELECT c.oid AS relid, k.column_name, k.type_oid, k.typmod, k.not_null, \
                 k.default_expr, k.identity FROM pg_catalog.{BASE_PREFIX}pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_catalog.{COLUMNS_TABLE} k \
                 ON k.namespace = n.nspname AND k.table_name = c.relname) k \
                 ON k.relid = a.attrelid AND k.column_name = a.attname"
                ),
                copies_base: true,
            },
            Part {
                // A primary key's index has the key columns as its own, numbered in key order.
                values: index_attribute(index_oid.clone()),
                from: format!(
                    "FROM {} JOIN pg_catalog.{COLUMNS_TABLE} kc ON kc.namespace = k.namespace \
                 AND kc.table_name = k.table_name AND kc.column_name = k.column_name",
                    kalamdb_rows(PRIMARY_KEYS_TABLE)
                ),
                copies_base: false,
            },
        ],
        "pg_attrdef" => vec![Part {
            values: vec![
                (
                    "oid",
                    format!("{ATTRDEF_OID_BASE} + (c.oid % 524288) * 2048 + a.attnum"),
                ),
                ("adrelid", text("c.oid")),
                ("adnum", text("a.attnum")),
                ("adbin", text("k.default_expr")),
            ],
            from: format!(
                "FROM {} WHERE k.default_expr IS NOT NULL",
                kalamdb_rows(COLUMNS_TABLE)
            ),
            copies_base: false,
        }],
        // Tables with a primary key have an index, and each such index is a relation.
        "pg_class" => vec![
            Part {
                values: vec![
                    ("relhasindex", text("a.relhasindex OR pk.oid IS NOT NULL")),
                    ("relchecks", text("COALESCE(ck.checks, a.relchecks)")),
                    // PostgreSQL enforces foreign keys with triggers on both tables, and
                    // psql lists foreign keys only of tables that have triggers.
                    (
                        "relhastriggers",
                        text("a.relhastriggers OR fk.oid IS NOT NULL"),
                    ),
                    // A view is its `_RETURN` rule, and only tables have a replica identity.
                    ("relhasrules", text("a.relhasrules OR a.relkind = 'v'")),
                    (
                        "relreplident",
                        text("CASE WHEN a.relkind = 'v' THEN 'n' ELSE a.relreplident END"),
                    ),
                    // KalamDB has no partitions: no relation has a partition bound.
                    ("relpartbound", text("NULL")),
                ],
                from: format!(
                    "FROM pg_catalog.{BASE_PREFIX}pg_class a LEFT JOIN (\
                     SELECT DISTINCT c.oid FROM {} UNION {}) pk ON pk.oid = a.oid \
                     LEFT JOIN ({}) ck ON ck.oid = a.oid \
                     LEFT JOIN ({}) fk ON fk.oid = a.oid",
                    kalamdb_rows(PRIMARY_KEYS_TABLE),
                    super::index_parts::indexed_tables(),
                    super::index_parts::check_counts(),
                    super::foreign_key_parts::linked_tables()
                ),
                copies_base: true,
            },
            Part {
                values: derived_relation(vec![
                    ("oid", index_oid.clone()),
                    ("relname", text("k.pk_name")),
                    ("relnamespace", text("c.relnamespace")),
                    ("relowner", text("c.relowner")),
                    ("relam", BTREE_AM_OID.to_string()),
                    ("relpages", text("0")),
                    ("reltuples", text("0")),
                    ("relkind", text("'i'")),
                    ("relnatts", text("count(*)")),
                ]),
                from: format!(
                    "FROM {} GROUP BY c.oid, k.pk_name, c.relnamespace, c.relowner",
                    kalamdb_rows(PRIMARY_KEYS_TABLE)
                ),
                copies_base: false,
            },
            Part {
                values: derived_relation(vec![
                    ("oid", text("s.oid")),
                    ("relname", text("s.name")),
                    ("relnamespace", text("n.oid")),
                    ("relowner", text("0")),
                    ("relam", text("0")),
                    ("relpages", text("1")),
                    ("reltuples", text("1")),
                    ("relkind", text("'S'")),
                    ("relnatts", text("3")),
                ]),
                from: format!(
                    "FROM pg_catalog.{SEQUENCES_TABLE} s \
                     JOIN pg_catalog.pg_namespace n ON n.nspname = s.namespace"
                ),
                copies_base: false,
            },
        ],
        // PostgreSQL's own descriptions, then COMMENT ON of tables (objsubid 0) and columns.
        "pg_description" => vec![
            {
                let (from, description) = super::listings::pg15_descriptions(PG_TYPE_OID);
                Part {
                    values: vec![("description", description)],
                    from,
                    copies_base: true,
                }
            },
            Part {
                values: vec![
                    ("objoid", text("c.oid")),
                    ("classoid", PG_CLASS_OID.to_string()),
                    ("objsubid", text("0")),
                    ("description", text("k.comment")),
                ],
                from: format!(
                    "FROM pg_catalog.{BASE_PREFIX}pg_class c \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     JOIN pg_catalog.{COMMENTS_TABLE} k \
                     ON k.namespace = n.nspname AND k.table_name = c.relname \
                     WHERE k.column_name IS NULL"
                ),
                copies_base: false,
            },
            Part {
                values: vec![
                    ("objoid", text("c.oid")),
                    ("classoid", PG_CLASS_OID.to_string()),
                    ("objsubid", text("a.attnum")),
                    ("description", text("k.comment")),
                ],
                from: format!("FROM {}", kalamdb_rows(COMMENTS_TABLE)),
                copies_base: false,
            },
        ],
        // `last_value` is the last value reserved, which PostgreSQL's documentation allows:
        // "greater than the last value handed out from the sequence" when caching is used.
        "pg_views" => vec![Part {
            values: vec![
                ("schemaname", text("v.namespace")),
                ("viewname", text("v.name")),
                ("viewowner", text("pg_get_userbyid(CAST(0 AS INT))")),
                ("definition", text("v.definition")),
            ],
            from: format!("FROM pg_catalog.{VIEWS_TABLE} v"),
            copies_base: false,
        }],
        // KalamDB's views are read-only and have no CHECK OPTION.
        // Its bounds and steps are character data in PostgreSQL too.
        information_schema::SEQUENCES => vec![Part {
            values: vec![
                (
                    "sequence_catalog",
                    format!("'{}'", crate::model::DATABASE_NAME),
                ),
                ("sequence_schema", text("s.namespace")),
                ("sequence_name", text("s.name")),
                (
                    "data_type",
                    text(
                        "CASE s.type_oid WHEN 21 THEN 'smallint' WHEN 23 THEN 'integer' \
                         ELSE 'bigint' END",
                    ),
                ),
                (
                    "numeric_precision",
                    text("CASE s.type_oid WHEN 21 THEN 16 WHEN 23 THEN 32 ELSE 64 END"),
                ),
                ("numeric_precision_radix", text("2")),
                ("numeric_scale", text("0")),
                ("start_value", text("CAST(s.start AS VARCHAR)")),
                ("minimum_value", text("CAST(s.min AS VARCHAR)")),
                ("maximum_value", text("CAST(s.max AS VARCHAR)")),
                ("increment", text("CAST(s.increment AS VARCHAR)")),
                (
                    "cycle_option",
                    text("CASE WHEN s.cycle THEN 'YES' ELSE 'NO' END"),
                ),
            ],
            from: format!("FROM pg_catalog.{SEQUENCES_TABLE} s"),
            copies_base: false,
        }],
        information_schema::VIEWS => vec![Part {
            values: vec![
                (
                    "table_catalog",
                    format!("'{}'", crate::model::DATABASE_NAME),
                ),
                ("table_schema", text("v.namespace")),
                ("table_name", text("v.name")),
                ("view_definition", text("v.definition")),
                ("check_option", text("'NONE'")),
                ("is_updatable", text("'NO'")),
                ("is_insertable_into", text("'NO'")),
                ("is_trigger_updatable", text("'NO'")),
                ("is_trigger_deletable", text("'NO'")),
                ("is_trigger_insertable_into", text("'NO'")),
            ],
            from: format!("FROM pg_catalog.{VIEWS_TABLE} v"),
            copies_base: false,
        }],
        SEQUENCES_VIEW => vec![Part {
            values: vec![
                ("schemaname", text("s.namespace")),
                ("sequencename", text("s.name")),
                ("sequenceowner", text("pg_get_userbyid(CAST(0 AS INT))")),
                (
                    "data_type",
                    text(
                        "CASE s.type_oid WHEN 21 THEN 'smallint' WHEN 23 THEN 'integer' \
                         ELSE 'bigint' END",
                    ),
                ),
                ("start_value", text("s.start")),
                ("min_value", text("s.min")),
                ("max_value", text("s.max")),
                ("increment_by", text("s.increment")),
                ("cycle", text("s.cycle")),
                ("cache_size", text("s.cache")),
                ("last_value", text("s.last_value")),
            ],
            from: format!("FROM pg_catalog.{SEQUENCES_TABLE} s"),
            copies_base: false,
        }],
        // A sequence's columns are last_value, log_cnt and is_called, as in PostgreSQL.
        "pg_sequence" => vec![Part {
            values: vec![
                ("seqrelid", text("s.oid")),
                ("seqtypid", text("s.type_oid")),
                ("seqstart", text("s.start")),
                ("seqincrement", text("s.increment")),
                ("seqmax", text("s.max")),
                ("seqmin", text("s.min")),
                ("seqcache", text("s.cache")),
                ("seqcycle", text("s.cycle")),
            ],
            from: format!("FROM pg_catalog.{SEQUENCES_TABLE} s"),
            copies_base: false,
        }],
        // One unique index per primary key, as PostgreSQL creates for each.
        "pg_index" => vec![Part {
            values: vec![
                ("indexrelid", index_oid),
                ("indrelid", text("c.oid")),
                ("indnatts", text("count(*)")),
                ("indnkeyatts", text("count(*)")),
                ("indisunique", text("true")),
                ("indnullsnotdistinct", text("false")),
                ("indisprimary", text("true")),
                ("indisexclusion", text("false")),
                ("indimmediate", text("true")),
                ("indisclustered", text("false")),
                ("indisvalid", text("true")),
                ("indcheckxmin", text("false")),
                ("indisready", text("true")),
                ("indislive", text("true")),
                ("indisreplident", text("false")),
                ("indkey", text(key_columns)),
                ("indcollation", key_collations()),
                ("indclass", text(zeros)),
                ("indoption", text(zeros)),
            ],
            from: format!("FROM {} GROUP BY c.oid", kalamdb_rows(PRIMARY_KEYS_TABLE)),
            copies_base: false,
        }],
        "pg_constraint" => vec![Part {
            values: constraint_values(vec![
                ("oid", format!("c.oid + {CONSTRAINT_OID_OFFSET}")),
                ("conname", text("k.pk_name")),
                ("connamespace", text("n.oid")),
                ("contype", text("'p'")),
                ("conrelid", text("c.oid")),
                ("conindid", index_oid.clone()),
                ("connoinherit", text("true")),
                ("conkey", text(key_columns)),
            ]),
            from: format!(
                "FROM {} GROUP BY c.oid, n.oid, k.pk_name",
                kalamdb_rows(PRIMARY_KEYS_TABLE)
            ),
            copies_base: false,
        }],
        RELATION_SIZES_TABLE => vec![Part {
            values: vec![("oid", text("c.oid")), ("bytes", text("s.bytes"))],
            from: rows_by_relation(TABLE_SIZES_TABLE, "s", "table_name"),
            copies_base: false,
        }],
        DEFINITIONS_TABLE => vec![
            // pg_get_viewdef(oid), and at column -1 pg_get_viewdef(oid, true)
            view_definitions(),
            Part {
                values: vec![
                    ("objid", index_oid.clone()),
                    ("column_no", text("0")),
                    ("definition", pk_index_definition.clone()),
                ],
                from: format!(
                    "FROM {} GROUP BY c.oid, k.pk_name, n.nspname, c.relname",
                    kalamdb_rows(PRIMARY_KEYS_TABLE)
                ),
                copies_base: false,
            },
            Part {
                values: vec![
                    ("objid", index_oid),
                    ("column_no", text("k.key_seq")),
                    ("definition", text("quote_ident(k.column_name)")),
                ],
                from: format!("FROM {}", kalamdb_rows(PRIMARY_KEYS_TABLE)),
                copies_base: false,
            },
            Part {
                values: vec![
                    ("objid", format!("c.oid + {CONSTRAINT_OID_OFFSET}")),
                    ("column_no", text("0")),
                    (
                        "definition",
                        format!("'PRIMARY KEY (' || {quoted_keys} || ')'"),
                    ),
                ],
                from: format!("FROM {} GROUP BY c.oid", kalamdb_rows(PRIMARY_KEYS_TABLE)),
                copies_base: false,
            },
        ],
        // The primary keys' indexes; secondary indexes add theirs below.
        super::INDEXES_VIEW => vec![Part {
            values: vec![
                ("schemaname", text("n.nspname")),
                ("tablename", text("c.relname")),
                ("indexname", text("k.pk_name")),
                ("indexdef", pk_index_definition),
            ],
            from: format!(
                "FROM {} GROUP BY c.oid, k.pk_name, n.nspname, c.relname",
                kalamdb_rows(PRIMARY_KEYS_TABLE)
            ),
            copies_base: false,
        }],
        _ => return None,
    };
    parts.extend(super::index_parts::parts(name));
    parts.extend(super::foreign_key_parts::parts(name));
    Some(parts)
}
