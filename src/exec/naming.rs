//! Result column names as PostgreSQL chooses them (`count`, `?column?`, `bool`), so that clients
//! that address columns by name see what they would see against PostgreSQL.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{self, Expr, SelectItem, SetExpr};

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
            SelectItem::UnnamedExpr(expr) => names.push(Some(expr_name(expr))),
            SelectItem::ExprWithAlias { expr, alias }
                if alias.value.starts_with(crate::sql::REPEAT_ALIAS_PREFIX) =>
            {
                names.push(Some(expr_name(expr)))
            }
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

fn select_items(body: &SetExpr) -> Option<&[SelectItem]> {
    match body {
        SetExpr::Select(select) => Some(&select.projection),
        SetExpr::Query(query) => select_items(&query.body),
        // A set operation takes its column names from its first branch.
        SetExpr::SetOperation { left, .. } => select_items(left),
        _ => None,
    }
}

/// PostgreSQL's FigureColname, for the expressions it gives names to.
pub(super) fn expr_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(ident) => crate::sql::fold(ident),
        Expr::CompoundIdentifier(parts) => parts.last().map(crate::sql::fold).unwrap_or_default(),
        Expr::Function(function) => function
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_lowercase())
            .unwrap_or_else(unnamed),
        Expr::Cast {
            expr, data_type, ..
        } => match expr_name(expr) {
            name if name == unnamed() => type_name(data_type),
            name => name,
        },
        Expr::Nested(inner) => expr_name(inner),
        // A scalar subquery is named after its one column (seen through the single-row
        // aggregate KalamDB holds it with).
        Expr::Subquery(query) => match select_items(&query.body) {
            Some([SelectItem::ExprWithAlias { alias, .. }]) => crate::sql::fold(alias),
            Some([SelectItem::UnnamedExpr(Expr::Function(f))])
                if f.name.to_string() == crate::sql::SINGLE_ROW_FUNCTION =>
            {
                match &f.args {
                    ast::FunctionArguments::List(list) => match list.args.as_slice() {
                        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(inner))] => {
                            expr_name(inner)
                        }
                        _ => unnamed(),
                    },
                    _ => unnamed(),
                }
            }
            Some([SelectItem::UnnamedExpr(inner)]) => expr_name(inner),
            _ => unnamed(),
        },
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Array(_) => "array".into(),
        Expr::Value(value) if matches!(value.value, ast::Value::Boolean(_)) => "bool".into(),
        _ => unnamed(),
    }
}

fn unnamed() -> String {
    "?column?".into()
}

/// PostgreSQL's internal type names, which it uses to name a cast literal's column.
fn type_name(data_type: &ast::DataType) -> String {
    match crate::sql::declared_type(data_type) {
        Ok(sql_type) => sql_type.internal_name().into(),
        Err(_) => data_type.to_string().to_lowercase(),
    }
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
                "?column?", "count", "a", "df3", "bool", "int4", "now", "case", "v", "max",
                "?column?", "a"
            ]
        );
    }

    #[test]
    fn a_single_wildcard_keeps_its_columns() {
        assert_eq!(names("SELECT *, 1 FROM t", 3), ["df0", "df1", "?column?"]);
    }
}
