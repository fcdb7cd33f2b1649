//! `pg_stat_activity`: PostgreSQL 15's columns over `kalamdb_activity` (one row per logged-in
//! session, see `exec::activity`), with the database's and each user's OID from the catalog.
//! KalamDB has no wait events, parallel workers, transaction ids or query ids: those columns
//! are NULL, as PostgreSQL shows them for a backend without one. `pg_stat_gssapi` has a row per
//! session too, none of them GSSAPI-authenticated (pgAdmin reads the asking session's).

use datafusion::arrow::datatypes::{DataType, Field};

use super::STAT_ACTIVITY_VIEW;
use super::queries::Part;
use crate::exec::activity::ACTIVITY_TABLE;
use crate::exec::system_tables::timestamp_type;

pub(super) fn fields(name: &str) -> Option<Vec<Field>> {
    if name != STAT_ACTIVITY_VIEW {
        return None;
    }
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int32, true);
    let time = |n: &str| Field::new(n, timestamp_type(), true);
    Some(vec![
        int("datid"),
        text("datname"),
        int("pid"),
        int("leader_pid"),
        int("usesysid"),
        text("usename"),
        text("application_name"),
        text("client_addr"),
        text("client_hostname"),
        int("client_port"),
        time("backend_start"),
        time("xact_start"),
        time("query_start"),
        time("state_change"),
        text("wait_event_type"),
        text("wait_event"),
        text("state"),
        text("backend_xid"),
        text("backend_xmin"),
        Field::new("query_id", DataType::Int64, true),
        text("query"),
        text("backend_type"),
    ])
}

/// PostgreSQL's view of each backend's GSSAPI use.
const STAT_GSSAPI_VIEW: &str = "pg_stat_gssapi";

pub(super) fn parts(name: &str) -> Option<Vec<Part>> {
    if name == STAT_GSSAPI_VIEW {
        return Some(vec![Part {
            values: vec![
                ("pid", "a.pid".into()),
                ("gss_authenticated", "false".into()),
                ("encrypted", "false".into()),
                ("credentials_delegated", "false".into()),
            ],
            from: format!("FROM pg_catalog.{ACTIVITY_TABLE} a"),
            copies_base: false,
        }]);
    }
    if name != STAT_ACTIVITY_VIEW {
        return None;
    }
    let copied = [
        "pid",
        "usename",
        "application_name",
        "client_addr",
        "client_port",
        "backend_start",
        "xact_start",
        "query_start",
        "state_change",
        "state",
        "query",
        "backend_type",
    ];
    let mut values: Vec<(&'static str, String)> =
        copied.iter().map(|c| (*c, format!("a.{c}"))).collect();
    values.push(("datid", "d.oid".into()));
    values.push(("datname", "d.datname".into()));
    values.push(("usesysid", "r.oid".into()));
    Some(vec![Part {
        values,
        from: format!(
            "FROM pg_catalog.{ACTIVITY_TABLE} a \
             LEFT JOIN pg_catalog.pg_roles r ON r.rolname = a.usename \
             CROSS JOIN pg_catalog.pg_database d"
        ),
        copies_base: false,
    }])
}
