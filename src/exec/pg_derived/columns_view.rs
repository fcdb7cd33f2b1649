//! The catalog views of settings and columns. `information_schema.columns` as PostgreSQL 15
//! defines it over its catalogs: SQL type names (`character varying`, `timestamp without
//! time zone`), lengths, precisions and scales from the type modifier, defaults and identity,
//! for every column of every relation the derived `pg_attribute` describes (DataFusion's own
//! view names Arrow types: `Int64`, `Utf8`). `pg_settings`: every parameter the session can
//! SHOW, with the session's current value.

use super::COLUMNS_TABLE;
use super::queries::{Part, text};
use crate::exec::information_schema::COLUMNS;

/// PostgreSQL's information_schema type name for `a.atttypid`.
const DATA_TYPE: &str = "CASE a.atttypid \
     WHEN 16 THEN 'boolean' WHEN 17 THEN 'bytea' WHEN 18 THEN '\"char\"' WHEN 19 THEN 'name' \
     WHEN 20 THEN 'bigint' WHEN 21 THEN 'smallint' WHEN 23 THEN 'integer' WHEN 25 THEN 'text' \
     WHEN 26 THEN 'oid' WHEN 114 THEN 'json' WHEN 700 THEN 'real' \
     WHEN 701 THEN 'double precision' WHEN 1042 THEN 'character' \
     WHEN 1043 THEN 'character varying' WHEN 1082 THEN 'date' \
     WHEN 1083 THEN 'time without time zone' WHEN 1114 THEN 'timestamp without time zone' \
     WHEN 1184 THEN 'timestamp with time zone' WHEN 1186 THEN 'interval' \
     WHEN 1700 THEN 'numeric' WHEN 2950 THEN 'uuid' WHEN 3802 THEN 'jsonb' \
     ELSE CASE WHEN t.typcategory = 'A' THEN 'ARRAY' ELSE 'USER-DEFINED' END END";

/// Column `a` of relation `c` in namespace `n`, with its type `t` and, for a table's column,
/// KalamDB's own row `k` (default and identity).
fn columns_from() -> String {
    format!(
        "FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_catalog.{COLUMNS_TABLE} k ON k.namespace = n.nspname \
         AND k.table_name = c.relname AND k.column_name = a.attname \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'p', 'f', 'm')"
    )
}

pub(super) fn parts(name: &str) -> Option<Vec<Part>> {
    if name == "pg_settings" {
        return Some(settings_parts());
    }
    if name == super::USER_VIEW {
        return Some(vec![Part {
            values: vec![
                ("usename", text("r.rolname")),
                ("usesysid", text("r.oid")),
                ("usecreatedb", text("r.rolcreatedb")),
                ("usesuper", text("r.rolsuper")),
                ("userepl", text("r.rolreplication")),
                ("usebypassrls", text("r.rolbypassrls")),
                ("passwd", text("'********'")),
            ],
            from: "FROM pg_catalog.pg_roles r WHERE r.rolcanlogin".into(),
            copies_base: false,
        }]);
    }
    if name != COLUMNS {
        return None;
    }
    let modified = "a.atttypmod >= 0";
    let values = vec![
        (
            "table_catalog",
            format!("'{}'", crate::model::DATABASE_NAME),
        ),
        ("table_schema", text("n.nspname")),
        ("table_name", text("c.relname")),
        ("column_name", text("a.attname")),
        ("ordinal_position", text("CAST(a.attnum AS INT)")),
        ("column_default", text("k.default_expr")),
        (
            "is_nullable",
            text("CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END"),
        ),
        ("data_type", text(DATA_TYPE)),
        (
            "character_maximum_length",
            format!("CASE WHEN a.atttypid IN (1042, 1043) AND {modified} THEN a.atttypmod - 4 END"),
        ),
        (
            // Four bytes per character in UTF8; unbounded text is capped at 1 GB.
            "character_octet_length",
            format!(
                "CASE WHEN a.atttypid IN (1042, 1043) AND {modified} THEN (a.atttypmod - 4) * 4 \
                 WHEN a.atttypid IN (25, 1042, 1043) THEN 1073741824 END"
            ),
        ),
        (
            "numeric_precision",
            format!(
                "CASE a.atttypid WHEN 21 THEN 16 WHEN 23 THEN 32 WHEN 20 THEN 64 WHEN 700 THEN 24 \
                 WHEN 701 THEN 53 WHEN 1700 THEN CASE WHEN {modified} \
                 THEN ((a.atttypmod - 4) / 65536) % 65536 END END"
            ),
        ),
        (
            "numeric_precision_radix",
            text(
                "CASE WHEN a.atttypid IN (20, 21, 23, 700, 701) THEN 2 WHEN a.atttypid = 1700 THEN 10 END",
            ),
        ),
        (
            "numeric_scale",
            format!(
                "CASE WHEN a.atttypid IN (20, 21, 23) THEN 0 WHEN a.atttypid = 1700 AND {modified} \
                 THEN (a.atttypmod - 4) % 65536 END"
            ),
        ),
        (
            "datetime_precision",
            format!(
                "CASE WHEN a.atttypid = 1082 THEN 0 WHEN a.atttypid IN (1083, 1114, 1184, 1186) \
                 THEN CASE WHEN {modified} THEN a.atttypmod ELSE 6 END END"
            ),
        ),
        ("udt_catalog", format!("'{}'", crate::model::DATABASE_NAME)),
        ("udt_schema", text("'pg_catalog'")),
        ("udt_name", text("t.typname")),
        ("dtd_identifier", text("CAST(a.attnum AS TEXT)")),
        ("is_self_referencing", text("'NO'")),
        (
            "is_identity",
            text("CASE WHEN k.identity IN ('a', 'd') THEN 'YES' ELSE 'NO' END"),
        ),
        (
            "identity_generation",
            text("CASE k.identity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END"),
        ),
        ("is_generated", text("'NEVER'")),
        (
            "is_updatable",
            text("CASE WHEN c.relkind IN ('r', 'p') THEN 'YES' ELSE 'NO' END"),
        ),
    ];
    Some(vec![Part {
        values,
        from: columns_from(),
        copies_base: false,
    }])
}

/// How PostgreSQL 15's `pg_settings` describes a parameter: category, type, unit, bounds and
/// the values an enum takes (`role`, which PostgreSQL does not list, is a string).
struct SettingShape {
    category: &'static str,
    vartype: &'static str,
    unit: Option<&'static str>,
    bounds: Option<(&'static str, &'static str)>,
    enumvals: &'static [&'static str],
}

fn setting_shape(key: &str) -> SettingShape {
    const DEFAULTS: &str = "Client Connection Defaults / Statement Behavior";
    const LOCALE: &str = "Client Connection Defaults / Locale and Formatting";
    const PRESET: &str = "Preset Options";
    const ISOLATIONS: &[&str] = &[
        "serializable",
        "repeatable read",
        "read committed",
        "read uncommitted",
    ];
    const MILLISECONDS: Option<&str> = Some("ms");
    const TIMEOUT: Option<(&str, &str)> = Some(("0", "2147483647"));
    let shape = |category, vartype, unit, bounds, enumvals| SettingShape {
        category,
        vartype,
        unit,
        bounds,
        enumvals,
    };
    match key {
        "application_name" => shape(
            "Reporting and Logging / What to Log",
            "string",
            None,
            None,
            &[],
        ),
        "bytea_output" => shape(DEFAULTS, "enum", None, None, &["escape", "hex"]),
        "client_min_messages" => shape(
            DEFAULTS,
            "enum",
            None,
            None,
            &[
                "debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning",
                "error",
            ],
        ),
        "default_transaction_isolation" | "transaction_isolation" => {
            shape(DEFAULTS, "enum", None, None, ISOLATIONS)
        }
        "default_transaction_read_only" | "transaction_read_only" => {
            shape(DEFAULTS, "bool", None, None, &[])
        }
        "idle_in_transaction_session_timeout" | "lock_timeout" | "statement_timeout" => {
            shape(DEFAULTS, "integer", MILLISECONDS, TIMEOUT, &[])
        }
        "extra_float_digits" => shape(LOCALE, "integer", None, Some(("-15", "3")), &[]),
        "intervalstyle" => shape(
            LOCALE,
            "enum",
            None,
            None,
            &["postgres", "postgres_verbose", "sql_standard", "iso_8601"],
        ),
        "client_encoding" | "datestyle" | "lc_messages" | "timezone" => {
            shape(LOCALE, "string", None, None, &[])
        }
        "integer_datetimes" => shape(PRESET, "bool", None, None, &[]),
        "max_identifier_length" => shape(PRESET, "integer", None, Some(("63", "63")), &[]),
        "max_index_keys" => shape(PRESET, "integer", None, Some(("32", "32")), &[]),
        "server_version_num" => {
            let version = crate::exec::PG_SERVER_VERSION_NUM;
            shape(PRESET, "integer", None, Some((version, version)), &[])
        }
        "server_encoding" | "server_version" | "lc_collate" | "lc_ctype" => {
            shape(PRESET, "string", None, None, &[])
        }
        "standard_conforming_strings" => shape(
            "Version and Platform Compatibility / Previous PostgreSQL Versions",
            "bool",
            None,
            None,
            &[],
        ),
        _ => shape(DEFAULTS, "string", None, None, &[]),
    }
}

/// `pg_settings`: a row per parameter, its value read with `current_setting` so that it is
/// the session's own.
fn settings_parts() -> Vec<Part> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let optional = |s: Option<&str>| s.map_or_else(|| "NULL".to_owned(), quote);
    let rows: Vec<String> = crate::exec::settings::catalog_settings()
        .iter()
        .map(|s| {
            let shape = setting_shape(s.key);
            let enumvals = if shape.enumvals.is_empty() {
                "NULL".to_owned()
            } else {
                quote(&shape.enumvals.join(","))
            };
            format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                quote(s.name),
                quote(s.key),
                quote(s.default),
                quote(s.context),
                quote(s.description),
                quote(shape.vartype),
                quote(shape.category),
                optional(shape.unit),
                optional(shape.bounds.map(|(min, _)| min)),
                optional(shape.bounds.map(|(_, max)| max)),
                enumvals,
            )
        })
        .collect();
    vec![Part {
        values: vec![
            ("name", text("p.name")),
            ("setting", text("current_setting(p.key)")),
            ("unit", text("p.unit")),
            ("category", text("p.category")),
            ("short_desc", text("p.description")),
            ("context", text("p.context")),
            ("vartype", text("p.vartype")),
            ("source", text("'default'")),
            ("min_val", text("p.min_val")),
            ("max_val", text("p.max_val")),
            ("enumvals", text("string_to_array(p.enumvals, ',')")),
            ("boot_val", text("p.boot")),
            ("reset_val", text("p.boot")),
            ("pending_restart", text("false")),
        ],
        from: format!(
            "FROM (VALUES {}) AS p(name, key, boot, context, description, vartype, category, \
             unit, min_val, max_val, enumvals)",
            rows.join(", ")
        ),
        copies_base: false,
    }]
}
