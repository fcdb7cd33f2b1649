//! Catalog queries from PostgreSQL tools (psql's `\d`, drivers' type lookups): rewritten by
//! datafusion-pg-catalog's parser, which matches psql's exact text, into forms DataFusion plans.

use std::sync::LazyLock;

use datafusion::sql::sqlparser::ast::{self, VisitMut};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

mod arrays;
mod correlated;
mod definitions;
mod empty_catalogs;
mod jdbc;
mod partitions;
mod regclass;
mod table_oids;

use arrays::*;
use correlated::*;
use definitions::*;
use empty_catalogs::*;
use jdbc::*;
use partitions::*;
use regclass::{ComputedRegclass, RegclassAlongPath};
use table_oids::CatalogTableOids;

pub use definitions::{
    DEFINITIONS_TABLE, FORMAT_TYPES_FUNCTION, PRETTY_VIEW_COLUMN, RELATION_SIZES_TABLE,
};
pub use jdbc::PRIMARY_KEYS_TABLE;
pub use regclass::RELATION_OID_FUNCTION;

static COMPATIBILITY: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// True when `text` reads PostgreSQL's catalogs or uses its catalog casts.
pub fn mentions_catalog(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("pg_catalog")
        || lower.contains("pg_class")
        || lower.contains("pg_type")
        || lower.contains("pg_namespace")
        || lower.contains("pg_roles")
        || lower.contains("::reg")
        || lower.contains("regclass")
        || lower.contains("information_schema")
        || lower.contains("_size(")
        || lower.contains("_description(")
        || lower.contains("pg_get_")
}

/// The rewritten statements, when every statement in `text` is a query.
pub fn parse(text: &str) -> Option<Vec<ast::Statement>> {
    let named = referencing_table_names(text);
    let text = named.as_deref().unwrap_or(text);
    let rewritten = jdbc_primary_keys(text).or_else(|| keep_correlated_subqueries(text));
    let text = rewritten.as_deref().unwrap_or(text);
    let lower = text.to_ascii_lowercase();
    let own_parse = || {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, text).ok()
    };
    let with_crate_rules = |statements: Vec<ast::Statement>| -> Vec<ast::Statement> {
        statements
            .into_iter()
            .map(|statement| COMPATIBILITY.rewrite(statement))
            .collect()
    };
    let mut statements = if lower.contains("regproc") {
        // Casts to regproc/regprocedure are KalamDB's to read before the crate's rules,
        // which would look the name up alone.
        let mut parsed = own_parse()?;
        for statement in &mut parsed {
            crate::sql::function_casts::casts_to_function_references(statement);
            let _ = VisitMut::visit(statement, &mut ComputedRegclass::default());
        }
        with_crate_rules(parsed)
    } else if lower.contains("current_setting") {
        // The crate's token blacklist replaces Grafana's search-path subquery (the only entry
        // reading a setting) with `''`, written for servers without `current_setting`;
        // KalamDB has it, so such statements take the crate's rewrite rules alone.
        with_crate_rules(own_parse()?)
    } else if lower.contains("regclass")
        && let Some(mut parsed) = own_parse()
        && {
            let mut computed = ComputedRegclass::default();
            for statement in &mut parsed {
                let _ = VisitMut::visit(statement, &mut computed);
            }
            computed.rewrote
        }
    {
        with_crate_rules(parsed)
    } else {
        COMPATIBILITY.parse(text).ok()?
    };
    if statements.is_empty()
        || !statements
            .iter()
            .all(|s| matches!(s, ast::Statement::Query(_)))
    {
        return None;
    }
    for statement in &mut statements {
        super::output_names::adopt_catalog_rewrite_aliases(statement);
        let _ = VisitMut::visit(statement, &mut CatalogTableOids::default());
        let _ = VisitMut::visit(statement, &mut PartitionAncestors);
        crate::sql::subquery_values::array_subqueries_as_aggregates(statement);
        let _ = VisitMut::visit(statement, &mut GenerateSubscripts);
        let _ = VisitMut::visit(statement, &mut ExpandedArrays);
        let _ = VisitMut::visit(statement, &mut DefinitionFunctions);
        let _ = VisitMut::visit(statement, &mut EmptyCatalogSubqueries);
        let _ = VisitMut::visit(statement, &mut OuterOnlyConditions);
        let _ = VisitMut::visit(statement, &mut RegclassAlongPath);
    }
    Some(statements)
}

/// psql's `\d` lists the tables referring to a table (`Referenced by:`) by their
/// `conrelid::regclass`, which prints as the table's name; the crate's rewrite of `::regclass`
/// keeps the OID, so the name is looked up instead.
fn referencing_table_names(text: &str) -> Option<String> {
    const CAST: &str = "SELECT conname, conrelid::pg_catalog.regclass AS ontable,";
    text.contains(CAST).then(|| {
        text.replace(
            CAST,
            "SELECT conname, (SELECT kalamdb_rel.relname FROM pg_catalog.pg_class kalamdb_rel \
             WHERE kalamdb_rel.oid = c.conrelid) AS ontable,",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let statements = parse(sql).expect("a catalog query");
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn conditions_on_outer_columns_only_become_a_guard_around_the_subquery() {
        let sql = rewritten(
            "SELECT CASE WHEN a.atthasdef THEN (SELECT d.adbin FROM pg_catalog.pg_attrdef d \
             WHERE a.atthasdef AND d.adrelid = a.attrelid) END FROM pg_catalog.pg_attribute a",
        );
        assert!(
            sql.contains("CASE WHEN (a.atthasdef) THEN (SELECT d.adbin"),
            "{sql}"
        );
        assert!(sql.contains("WHERE d.adrelid = a.attrelid)"), "{sql}");
    }

    #[test]
    fn conditions_reading_the_subquerys_own_tables_stay_inside() {
        let sql = rewritten(
            "SELECT (SELECT max(d.adnum) FROM pg_catalog.pg_attrdef d \
             WHERE d.adnum > 0 AND d.adrelid = a.attrelid) FROM pg_catalog.pg_attribute a",
        );
        assert!(
            sql.contains("WHERE d.adnum > 0 AND d.adrelid = a.attrelid"),
            "{sql}"
        );
        assert!(!sql.contains("CASE WHEN (d."), "{sql}");
    }

    #[test]
    fn grafanas_search_path_subquery_is_kept_for_current_setting_to_answer() {
        let sql = rewritten(
            "SELECT table_name FROM information_schema.tables WHERE table_schema IN (\
             SELECT CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END FROM \
             generate_series(array_lower(string_to_array(current_setting('search_path'),','),1), \
             array_upper(string_to_array(current_setting('search_path'),','),1)) as i, \
             string_to_array(current_setting('search_path'),',') s)",
        );
        assert!(sql.contains("IN (SELECT CASE WHEN"), "{sql}");
        assert!(sql.contains("current_setting('search_path')"), "{sql}");
    }

    #[test]
    fn a_subquery_over_an_always_empty_catalog_is_null() {
        let sql = rewritten(
            "SELECT a.attname, (SELECT s.seqstart FROM pg_catalog.pg_sequence s \
             WHERE s.seqrelid = a.attrelid) AS seq FROM pg_catalog.pg_attribute a",
        );
        assert!(sql.contains("THEN NULL END AS seq"), "{sql}");
        assert!(!sql.contains("pg_sequence"), "{sql}");
    }

    #[test]
    fn a_count_over_an_always_empty_catalog_is_zero() {
        let sql = rewritten(
            "SELECT rel.relname, (SELECT count(*) FROM pg_catalog.pg_trigger \
             WHERE tgrelid = rel.oid) AS triggercount FROM pg_catalog.pg_class rel",
        );
        assert!(sql.contains("CAST(0 AS BIGINT)"), "{sql}");
        assert!(!sql.contains("pg_trigger"), "{sql}");
    }

    #[test]
    fn toast_options_unnested_by_psql_are_an_empty_array() {
        let sql = rewritten(
            "SELECT pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x \
             from pg_catalog.unnest(tc.reloptions) x), ', ') FROM pg_catalog.pg_class c \
             LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)",
        );
        assert!(!sql.contains("unnest"), "{sql}");
        assert!(
            sql.contains("c.reloptions || array_concat(CAST(ARRAY[] AS TEXT[]), make_array())"),
            "{sql}"
        );
    }

    #[test]
    fn pg_expandarray_fields_become_zipped_unnests() {
        let sql = rewritten(
            "SELECT (information_schema._pg_expandarray(i.indkey)).x AS attnum, \
             (INFORMATION_SCHEMA._PG_EXPANDARRAY(\"i\".\"indkey\")).\"n\" AS pos \
             FROM pg_catalog.pg_index i",
        );
        assert!(sql.contains("unnest(i.indkey) AS attnum"), "{sql}");
        assert!(
            sql.contains(
                "unnest(generate_series(1, CAST(cardinality(\"i\".\"indkey\") AS BIGINT))) AS pos"
            ),
            "{sql}"
        );
    }

    #[test]
    fn generate_subscripts_zips_with_unnest() {
        let sql = rewritten(
            "SELECT unnest(i.indkey) AS attnum, generate_subscripts(i.indkey, 1) AS ord \
             FROM pg_catalog.pg_index i",
        );
        assert!(
            sql.contains(
                "unnest(generate_series(1, CAST(CASE WHEN 1 = 1 THEN cardinality(i.indkey) ELSE 0 END AS BIGINT))) AS ord"
            ),
            "{sql}"
        );
    }

    #[test]
    fn index_and_constraint_definitions_are_looked_up_and_keep_their_names() {
        let sql = rewritten(
            "SELECT pg_catalog.pg_get_indexdef(i.indexrelid, 0, true), \
             pg_catalog.pg_get_constraintdef(c.oid, true) FROM pg_catalog.pg_index i, \
             pg_catalog.pg_constraint c",
        );
        assert!(
            sql.contains(
                "kalamdb_def.objid = i.indexrelid AND kalamdb_def.column_no = 0) AS pg_get_indexdef"
            ),
            "{sql}"
        );
        assert!(
            sql.contains(
                "kalamdb_def.objid = c.oid AND kalamdb_def.column_no = 0) AS pg_get_constraintdef"
            ),
            "{sql}"
        );
    }

    #[test]
    fn correlated_select_items_are_kept_only_when_datafusion_can_join_them() {
        let joinable = "SELECT (SELECT d.adbin FROM pg_catalog.pg_attrdef d \
                        WHERE d.adrelid = a.attrelid AND a.atthasdef) FROM pg_catalog.pg_attribute a";
        let kept = keep_correlated_subqueries(joinable).expect("wrapped");
        assert!(
            kept.contains("CASE WHEN true THEN (SELECT d.adbin"),
            "{kept}"
        );
        let unequal = "SELECT (SELECT c.collname FROM pg_catalog.pg_collation c \
                       WHERE c.oid = a.attcollation AND a.attcollation <> c.collencoding) \
                       FROM pg_catalog.pg_attribute a";
        assert_eq!(keep_correlated_subqueries(unequal), None);
        let uncorrelated = "SELECT (SELECT count(*) FROM pg_catalog.pg_class c)";
        assert_eq!(keep_correlated_subqueries(uncorrelated), None);
    }

    #[test]
    fn tableoid_of_a_catalog_relation_is_its_fixed_oid() {
        let sql = rewritten(
            "SELECT cls.relname, tableoid FROM pg_catalog.pg_index idx \
             JOIN pg_catalog.pg_class cls ON cls.oid = idx.indexrelid \
             LEFT JOIN pg_catalog.pg_depend dep ON dep.classid = cls.tableoid \
             AND dep.refclassid = (SELECT c2.tableoid FROM pg_catalog.pg_constraint c2 LIMIT 1) \
             WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_constraint con WHERE con.tableoid = dep.refclassid)",
        );
        assert!(sql.contains("dep.classid = 1259"), "{sql}");
        assert!(sql.contains("WHERE 2606 = dep.refclassid"), "{sql}");
        assert!(
            sql.contains("(SELECT 2606 FROM pg_catalog.pg_constraint c2"),
            "{sql}"
        );
        // Bare `tableoid` over two relations is ambiguous, as in PostgreSQL: left alone.
        assert!(sql.contains("cls.relname, tableoid"), "{sql}");
        let single = rewritten("SELECT tableoid, relname FROM pg_catalog.pg_class");
        assert!(single.contains("SELECT 1259, relname"), "{single}");
    }

    #[test]
    fn a_computed_name_cast_to_regclass_is_resolved_by_name() {
        let sql = rewritten(
            "SELECT col_description(CAST(CAST(format('%I.%I', c.table_schema, c.table_name) \
             AS REGCLASS) AS OID), 1), 'public.t'::regclass FROM information_schema.columns c",
        );
        assert!(
            sql.contains("kalamdb_relation_oid(format('%I.%I', c.table_schema, c.table_name))"),
            "{sql}"
        );
        assert!(
            !sql.contains("'public.t'::regclass"),
            "the literal is the crate's: {sql}"
        );
        // A column cast to regclass is an OID psql displays; the crate keeps it.
        let column = rewritten(
            "SELECT c.oid::pg_catalog.regclass, ('x' || c.relname)::regclass \
             FROM pg_catalog.pg_class c",
        );
        assert!(!column.contains("kalamdb_relation_oid(c.oid"), "{column}");
        assert!(
            column.contains("kalamdb_relation_oid(('x' || c.relname))"),
            "{column}"
        );
    }
}
