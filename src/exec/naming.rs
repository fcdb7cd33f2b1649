//! Result column names as PostgreSQL chooses them (`count`, `?column?`, `bool`), so that clients
//! that address columns by name see what they would see against PostgreSQL.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{self, SelectItem};

use crate::sql::output_names::{is_repeat_alias, output_name, repeated_name, select_items};

/// Renames the fields of `schema` for the SELECT list of `statement`. Explicit aliases and
/// wildcard columns keep their names; anything the SELECT list does not explain is left alone.
pub fn postgres_names(statement: &ast::Statement, schema: SchemaRef) -> SchemaRef {
    let ast::Statement::Query(query) = statement else {
        return schema;
    };
    let Some(items) = select_items(&query.body) else {
        return schema;
    };
    let wildcards = items
        .iter()
        .filter(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        })
        .count();
    let named = items.len() - wildcards;
    if wildcards > 1
        || (wildcards == 0 && named != schema.fields().len())
        || named > schema.fields().len()
    {
        return schema;
    }
    let wildcard_width = schema.fields().len() - named;
    let mut names: Vec<Option<String>> = Vec::with_capacity(schema.fields().len());
    for item in items {
        match item {
            SelectItem::UnnamedExpr(expr) => names.push(Some(output_name(expr))),
            SelectItem::ExprWithAlias { expr, alias } if is_repeat_alias(alias) => names.push(
                Some(repeated_name(alias).unwrap_or_else(|| output_name(expr))),
            ),
            SelectItem::ExprWithAlias { .. } | SelectItem::ExprWithAliases { .. } => {
                names.push(None)
            }
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                names.extend(std::iter::repeat_n(None, wildcard_width))
            }
        }
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(names)
        .map(|(field, name)| match name {
            Some(name) => field.as_ref().clone().with_name(name),
            None => field.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    fn names(sql: &str, width: usize) -> Vec<String> {
        let statement = match crate::sql::parse(sql).unwrap().remove(0) {
            crate::sql::Statement::Query(q) => *q,
            other => panic!("{other:?}"),
        };
        let schema = Arc::new(Schema::new(
            (0..width)
                .map(|i| Field::new(format!("df{i}"), DataType::Int64, true))
                .collect::<Vec<_>>(),
        ));
        postgres_names(&statement, schema)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    #[test]
    fn names_follow_postgres_rules() {
        assert_eq!(
            names(
                "SELECT 1, count(*), t.a, b AS x, true, '1'::int, now(), CASE WHEN true THEN 1 END, \
                 (SELECT u.v FROM u), (SELECT max(w) FROM u), 1, t.a FROM t",
                12
            ),
            [
                "?column?", "count", "a", "df3", "?column?", "int4", "now", "case", "v", "max",
                "?column?", "a"
            ]
        );
    }

    #[test]
    fn repeated_names_survive_the_aliases_that_keep_them_apart() {
        let mut statement =
            crate::sql::parse("SELECT 1 AS c, 2 AS c, a, 7 AS a, count(*), count(*) FROM t")
                .unwrap()
                .remove(0);
        let crate::sql::Statement::Query(query) = &mut statement else {
            panic!("a query")
        };
        // The plan names an explicit alias after itself and the others as DataFusion does.
        let schema = Arc::new(Schema::new(
            ["c", "__r1", "t.a", "__r3", "count(*)", "__r5"]
                .map(|name| Field::new(name, DataType::Int64, true))
                .to_vec(),
        ));
        let named: Vec<String> = postgres_names(query, schema)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(named, ["c", "c", "a", "a", "count", "count"]);
    }

    #[test]
    fn an_outer_cast_renames_a_name_that_came_from_a_cast() {
        assert_eq!(
            names(
                "SELECT '1'::int::text, a::text, now()::date::text FROM t",
                3
            ),
            ["text", "a", "now"]
        );
    }

    #[test]
    fn a_single_wildcard_keeps_its_columns() {
        assert_eq!(names("SELECT *, 1 FROM t", 3), ["df0", "df1", "?column?"]);
    }
}
