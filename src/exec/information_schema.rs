//! `information_schema` relations KalamDB answers for itself, where DataFusion's differ from
//! PostgreSQL's (`views` has other columns; `sequences` does not exist there).

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::ResolvedTableReference;

/// The derived table that answers for `information_schema.views`.
pub const VIEWS: &str = "kalamdb_information_schema_views";

/// The derived table that answers for `information_schema.sequences`.
pub const SEQUENCES: &str = "kalamdb_information_schema_sequences";

/// The relation answering for `reference`, when it names one KalamDB replaces.
pub(super) fn replacement(reference: &ResolvedTableReference) -> Option<Arc<dyn TableProvider>> {
    if reference.schema.as_ref() != "information_schema" {
        return None;
    }
    match reference.table.as_ref() {
        "views" => super::pg_derived::table(VIEWS, None),
        "sequences" => super::pg_derived::table(SEQUENCES, None),
        _ => None,
    }
}
