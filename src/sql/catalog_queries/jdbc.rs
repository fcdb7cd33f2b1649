//! pgJDBC's primary-key query, rewritten to read KalamDB's primary keys table.

/// The table in `pg_catalog` listing every primary-key column.
pub const PRIMARY_KEYS_TABLE: &str = "kalamdb_primary_keys";

/// pgJDBC's `DatabaseMetaData.getPrimaryKeys` expands `pg_index.indkey` with
/// `information_schema._pg_expandarray` and reads fields of the composite it returns, which
/// DataFusion cannot plan. The query is recognised by those parts and answered from
/// `pg_catalog.kalamdb_primary_keys` with the same columns, filters and order.
pub(super) fn jdbc_primary_keys(text: &str) -> Option<String> {
    if !(text.contains("_pg_expandarray(i.indkey)") && text.contains("indisprimary")) {
        return None;
    }
    let mut conditions = Vec::new();
    for (marker, column) in [
        ("n.nspname = ", "namespace"),
        ("ct.relname = ", "table_name"),
    ] {
        if let Some(value) = text
            .find(marker)
            .and_then(|at| quoted_literal(&text[at + marker.len()..]))
        {
            conditions.push(format!("{column} = '{}'", value.replace('\'', "''")));
        }
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    Some(format!(
        "SELECT CAST(NULL AS TEXT) AS table_cat, namespace AS table_schem, table_name, \
         column_name, key_seq, pk_name FROM pg_catalog.{PRIMARY_KEYS_TABLE}{filter} \
         ORDER BY table_name, pk_name, key_seq"
    ))
}

/// The value of a string literal at the start of `text` (`'x'` or `E'x'`, with `''` inside).
pub(super) fn quoted_literal(text: &str) -> Option<String> {
    let rest = text.strip_prefix('E').unwrap_or(text).strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                value.push('\'');
            }
            '\'' => return Some(value),
            '\\' => value.push(chars.next()?),
            other => value.push(other),
        }
    }
    None
}
