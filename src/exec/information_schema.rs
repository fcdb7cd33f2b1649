//! `information_schema` relations KalamDB answers for itself, where DataFusion's differ from
//! PostgreSQL's (`views` has other columns) or do not exist (`sequences` and the constraint
//! relations that pgJDBC's metadata, Django and BI tools read).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::catalog::TableProvider;
use datafusion::common::ResolvedTableReference;

/// The derived table that answers for `information_schema.views`.
pub const VIEWS: &str = "kalamdb_information_schema_views";

/// The derived table that answers for `information_schema.sequences`.
pub const SEQUENCES: &str = "kalamdb_information_schema_sequences";

/// The derived table that answers for `information_schema.schemata`.
pub const SCHEMATA: &str = "kalamdb_information_schema_schemata";

/// The derived table that answers for `information_schema.columns`.
pub const COLUMNS: &str = "kalamdb_information_schema_columns";

/// PostgreSQL 15's `information_schema.columns`: text, but for the numbers (its
/// `cardinal_number` columns: positions, lengths, precisions, scales, cardinality).
pub(super) fn columns_fields() -> Vec<Field> {
    let is_number = |name: &str| {
        [
            "_length",
            "_precision",
            "_radix",
            "_scale",
            "_position",
            "_cardinality",
        ]
        .iter()
        .any(|suffix| name.ends_with(suffix))
    };
    [
        "table_catalog",
        "table_schema",
        "table_name",
        "column_name",
        "ordinal_position",
        "column_default",
        "is_nullable",
        "data_type",
        "character_maximum_length",
        "character_octet_length",
        "numeric_precision",
        "numeric_precision_radix",
        "numeric_scale",
        "datetime_precision",
        "interval_type",
        "interval_precision",
        "character_set_catalog",
        "character_set_schema",
        "character_set_name",
        "collation_catalog",
        "collation_schema",
        "collation_name",
        "domain_catalog",
        "domain_schema",
        "domain_name",
        "udt_catalog",
        "udt_schema",
        "udt_name",
        "scope_catalog",
        "scope_schema",
        "scope_name",
        "maximum_cardinality",
        "dtd_identifier",
        "is_self_referencing",
        "is_identity",
        "identity_generation",
        "identity_start",
        "identity_increment",
        "identity_maximum",
        "identity_minimum",
        "identity_cycle",
        "is_generated",
        "generation_expression",
        "is_updatable",
    ]
    .iter()
    .map(|name| match is_number(name) {
        true => Field::new(*name, DataType::Int32, true),
        false => Field::new(*name, DataType::Utf8, true),
    })
    .collect()
}

/// The derived tables answering for `information_schema`'s constraint relations.
pub const TABLE_CONSTRAINTS: &str = "kalamdb_information_schema_table_constraints";
pub const KEY_COLUMN_USAGE: &str = "kalamdb_information_schema_key_column_usage";
pub const REFERENTIAL_CONSTRAINTS: &str = "kalamdb_information_schema_referential_constraints";
pub const CONSTRAINT_COLUMN_USAGE: &str = "kalamdb_information_schema_constraint_column_usage";
pub const CHECK_CONSTRAINTS: &str = "kalamdb_information_schema_check_constraints";

/// The columns of a constraint relation, as PostgreSQL 15 has them: text, but for
/// positions.
pub(super) fn constraint_fields(name: &str) -> Option<Vec<Field>> {
    let constraint = ["constraint_catalog", "constraint_schema", "constraint_name"];
    let table = ["table_catalog", "table_schema", "table_name"];
    let (names, positions): (Vec<&str>, &[&str]) = match name {
        TABLE_CONSTRAINTS => (
            [
                &constraint[..],
                &table[..],
                &[
                    "constraint_type",
                    "is_deferrable",
                    "initially_deferred",
                    "enforced",
                    "nulls_distinct",
                ],
            ]
            .concat(),
            &[],
        ),
        KEY_COLUMN_USAGE => (
            [
                &constraint[..],
                &table[..],
                &[
                    "column_name",
                    "ordinal_position",
                    "position_in_unique_constraint",
                ],
            ]
            .concat(),
            &["ordinal_position", "position_in_unique_constraint"],
        ),
        REFERENTIAL_CONSTRAINTS => (
            [
                &constraint[..],
                &[
                    "unique_constraint_catalog",
                    "unique_constraint_schema",
                    "unique_constraint_name",
                    "match_option",
                    "update_rule",
                    "delete_rule",
                ],
            ]
            .concat(),
            &[],
        ),
        CONSTRAINT_COLUMN_USAGE => (
            [&table[..], &["column_name"], &constraint[..]].concat(),
            &[],
        ),
        CHECK_CONSTRAINTS => ([&constraint[..], &["check_clause"]].concat(), &[]),
        _ => return None,
    };
    Some(
        names
            .into_iter()
            .map(|n| {
                let data_type = if positions.contains(&n) {
                    DataType::Int32
                } else {
                    DataType::Utf8
                };
                Field::new(n, data_type, true)
            })
            .collect(),
    )
}

/// The relation answering for `reference`, when it names one KalamDB replaces.
pub(super) fn replacement(reference: &ResolvedTableReference) -> Option<Arc<dyn TableProvider>> {
    if reference.schema.as_ref() != "information_schema" {
        return None;
    }
    match reference.table.as_ref() {
        "views" => super::pg_derived::table(VIEWS, None),
        "columns" => super::pg_derived::table(COLUMNS, None),
        "schemata" => super::pg_derived::table(SCHEMATA, None),
        "sequences" => super::pg_derived::table(SEQUENCES, None),
        "table_constraints" => super::pg_derived::table(TABLE_CONSTRAINTS, None),
        "key_column_usage" => super::pg_derived::table(KEY_COLUMN_USAGE, None),
        "referential_constraints" => super::pg_derived::table(REFERENTIAL_CONSTRAINTS, None),
        "constraint_column_usage" => super::pg_derived::table(CONSTRAINT_COLUMN_USAGE, None),
        "check_constraints" => super::pg_derived::table(CHECK_CONSTRAINTS, None),
        _ => None,
    }
}
