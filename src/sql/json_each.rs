//! `json_each`, `jsonb_each` and their `_text` forms in FROM: a row per member of an object,
//! columns `key` and `value` (renamed by the alias's column list). Each becomes a derived table
//! that unnests, side by side, the list of the members' keys and the list of their values,
//! which the executor's JSON functions named here compute.

use datafusion::sql::sqlparser::ast::{FunctionArg, Ident, TableAlias, TableFactor};

/// The executor's functions behind the columns: each member's key, value (as the document's
/// type) and value as text, as lists; their second argument names the function for errors.
pub const EACH_KEYS: &str = "kalamdb_json_each_keys";
pub const EACH_VALUES: &str = "kalamdb_json_each_values";
pub const EACH_TEXTS: &str = "kalamdb_json_each_texts";

const FUNCTIONS: [&str; 4] = [
    "json_each",
    "json_each_text",
    "jsonb_each",
    "jsonb_each_text",
];

/// The derived table `FROM function(args) [WITH ORDINALITY] [AS alias [(key, value [,
/// ordinality])]]` reads as, when `function` is one of the four and is called with one
/// argument.
pub(super) fn as_derived_table(
    function: &str,
    args: &[FunctionArg],
    alias: &Option<TableAlias>,
    ordinality: bool,
) -> Option<TableFactor> {
    if !FUNCTIONS.contains(&function) {
        return None;
    }
    let [document] = args else {
        return None;
    };
    let named = alias.as_ref().map_or(0, |a| a.columns.len());
    let name = |at: usize, default: &str| {
        alias
            .as_ref()
            .and_then(|a| a.columns.get(at))
            .map_or_else(|| Ident::new(default), |c| c.name.clone())
    };
    if named != 0 && named != 2 && !(ordinality && named == 3) {
        return None;
    }
    let (key, value, number) = if named == 0 {
        (
            Ident::new("key"),
            Ident::new("value"),
            Ident::new("ordinality"),
        )
    } else {
        (name(0, "key"), name(1, "value"), name(2, "ordinality"))
    };
    let json_type = if function.starts_with("jsonb") {
        "JSONB"
    } else {
        "JSON"
    };
    let read = format!("CAST(CAST({document} AS TEXT) AS {json_type}), '{function}'");
    // unnest drops the element's type, so a json(b) value is read as that type again.
    let values = if function.ends_with("_text") {
        format!("unnest({EACH_TEXTS}({read}))")
    } else {
        format!("CAST(unnest({EACH_VALUES}({read})) AS {json_type})")
    };
    let mut sql = format!("SELECT unnest({EACH_KEYS}({read})) AS {key}, {values} AS {value}");
    if ordinality {
        sql.push_str(&format!(
            ", unnest(generate_series(1, cardinality({EACH_KEYS}({read})))) AS {number}"
        ));
    }
    let name = alias
        .as_ref()
        .map_or_else(|| Ident::new(function), |a| a.name.clone());
    super::set_returning::derived_table(&sql, name)
}
