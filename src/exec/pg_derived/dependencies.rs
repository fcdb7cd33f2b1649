//! `pg_depend` rows for KalamDB's own objects beside datafusion-pg-catalog's: the index that
//! implements a primary key or unique constraint depends internally (`deptype` `i`) on that
//! constraint, as PostgreSQL records it. pgAdmin finds a constraint's index, and an index's
//! constraint, through these rows.

use super::BASE_PREFIX;
use super::queries::{Part, text};
use crate::model::oids::pg_catalog_relation_oid;

pub(super) fn parts(name: &str) -> Option<Vec<Part>> {
    if name != "pg_depend" {
        return None;
    }
    let catalog_oid = |table: &str| {
        pg_catalog_relation_oid(table)
            .expect("a PostgreSQL catalog")
            .to_string()
    };
    Some(vec![
        Part {
            values: vec![],
            from: format!("FROM pg_catalog.{BASE_PREFIX}pg_depend a"),
            copies_base: true,
        },
        Part {
            values: vec![
                ("classid", catalog_oid("pg_class")),
                ("objid", text("con.conindid")),
                ("objsubid", text("0")),
                ("refclassid", catalog_oid("pg_constraint")),
                ("refobjid", text("con.oid")),
                ("refobjsubid", text("0")),
                ("deptype", text("'i'")),
            ],
            from: text(
                "FROM pg_catalog.pg_constraint con \
                 WHERE con.contype IN ('p', 'u') AND con.conindid <> 0",
            ),
            copies_base: false,
        },
    ])
}
