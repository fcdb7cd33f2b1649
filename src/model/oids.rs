//! Object identifiers as PostgreSQL's catalogs give them: the fixed OIDs of the built-in
//! catalogs and namespaces, and the rule that turns an object's stored id into its OID.
//!
//! Every object a user creates (namespace, table, view, sequence, index, foreign key) draws
//! its id from one counter when its creation is applied, and its OID is that id above
//! PostgreSQL's first normal OID. So an OID names the same object on every connection and
//! after a restart, and is never reused for another object, as in PostgreSQL.

/// PostgreSQL's `FirstNormalObjectId`: the first OID a user object gets.
pub const FIRST_NORMAL_OID: i64 = 16_384;

/// `pg_namespace.oid` of `pg_catalog`, which the built-in catalog rows reference.
pub const PG_CATALOG_NAMESPACE_OID: i32 = 11;

/// `pg_namespace.oid` of `public` in every PostgreSQL cluster.
pub const PUBLIC_NAMESPACE_OID: i32 = 2200;

/// `pg_namespace.oid` of `information_schema` (PostgreSQL 15 as Debian builds it).
pub const INFORMATION_SCHEMA_OID: i32 = 13_207;

/// `pg_namespace.oid` of `pg_toast` in every PostgreSQL cluster.
pub const PG_TOAST_NAMESPACE_OID: i32 = 99;

/// `pg_namespace.oid` of KalamDB's `system` namespace, below the user range like
/// PostgreSQL's own namespaces.
pub const SYSTEM_NAMESPACE_OID: i32 = 14_000;

/// `pg_database.oid` of the one database: the OID PostgreSQL gives the first database a
/// user creates.
pub const DATABASE_OID: i32 = 16_384;

/// Where the relations of each built-in namespace without a fixed PostgreSQL OID are
/// numbered from, in name order: ranges apart from each other and below the user range.
pub const PG_CATALOG_RELATIONS_BASE: i32 = 12_000;
pub const INFORMATION_SCHEMA_RELATIONS_BASE: i32 = 13_300;
pub const SYSTEM_RELATIONS_BASE: i32 = 14_100;

/// A primary key's index has no id of its own: its OID is its table's plus this.
pub const PRIMARY_KEY_INDEX_OFFSET: i32 = 0x2000_0000;

/// The OID of the object whose stored id is `id`.
pub fn object_oid(id: u64) -> i32 {
    // OIDs are unsigned 32-bit in PostgreSQL and sent as int4 here; ids past the int4 range
    // would take a billion DDL statements.
    i64::try_from(id)
        .ok()
        .and_then(|id| i32::try_from(FIRST_NORMAL_OID.saturating_add(id)).ok())
        .unwrap_or(i32::MAX)
}

/// `pg_class.oid` of PostgreSQL 15's system catalogs, which clients may hard-code (1259 is
/// the `classoid` of every relation's description).
pub fn pg_catalog_relation_oid(name: &str) -> Option<i32> {
    let oid = match name {
        "pg_default_acl" => 826,
        "pg_tablespace" => 1213,
        "pg_shdepend" => 1214,
        "pg_type" => 1247,
        "pg_attribute" => 1249,
        "pg_proc" => 1255,
        "pg_class" => 1259,
        "pg_authid" => 1260,
        "pg_auth_members" => 1261,
        "pg_database" => 1262,
        "pg_foreign_server" => 1417,
        "pg_user_mapping" => 1418,
        "pg_sequence" => 2224,
        "pg_foreign_data_wrapper" => 2328,
        "pg_shdescription" => 2396,
        "pg_aggregate" => 2600,
        "pg_am" => 2601,
        "pg_amop" => 2602,
        "pg_amproc" => 2603,
        "pg_attrdef" => 2604,
        "pg_cast" => 2605,
        "pg_constraint" => 2606,
        "pg_conversion" => 2607,
        "pg_depend" => 2608,
        "pg_description" => 2609,
        "pg_index" => 2610,
        "pg_inherits" => 2611,
        "pg_language" => 2612,
        "pg_largeobject" => 2613,
        "pg_namespace" => 2615,
        "pg_opclass" => 2616,
        "pg_operator" => 2617,
        "pg_rewrite" => 2618,
        "pg_statistic" => 2619,
        "pg_trigger" => 2620,
        "pg_opfamily" => 2753,
        "pg_db_role_setting" => 2964,
        "pg_largeobject_metadata" => 2995,
        "pg_extension" => 3079,
        "pg_foreign_table" => 3118,
        "pg_policy" => 3256,
        "pg_partitioned_table" => 3350,
        "pg_statistic_ext" => 3381,
        "pg_init_privs" => 3394,
        "pg_statistic_ext_data" => 3429,
        "pg_collation" => 3456,
        "pg_event_trigger" => 3466,
        "pg_enum" => 3501,
        "pg_range" => 3541,
        "pg_transform" => 3576,
        "pg_shseclabel" => 3592,
        "pg_seclabel" => 3596,
        "pg_ts_dict" => 3600,
        "pg_ts_parser" => 3601,
        "pg_ts_config" => 3602,
        "pg_ts_config_map" => 3603,
        "pg_ts_template" => 3764,
        "pg_replication_origin" => 6000,
        "pg_subscription" => 6100,
        "pg_subscription_rel" => 6102,
        "pg_publication" => 6104,
        "pg_publication_rel" => 6106,
        "pg_publication_namespace" => 6237,
        "pg_parameter_acl" => 6243,
        _ => return None,
    };
    Some(oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_objects_are_numbered_above_the_first_normal_oid() {
        assert_eq!(object_oid(1), 16_385);
        assert_eq!(object_oid(u64::MAX), i32::MAX);
    }

    #[test]
    fn system_catalogs_keep_postgresql_oids() {
        assert_eq!(pg_catalog_relation_oid("pg_class"), Some(1259));
        assert_eq!(pg_catalog_relation_oid("pg_tables"), None);
    }
}
