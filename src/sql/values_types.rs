//! The type of a VALUES column, as PostgreSQL resolves it: quoted literals and NULLs are of
//! unknown type and take the type another row gives the column by a cast
//! (`VALUES ('[1]'::jsonb), ('[]')` is a `jsonb` column). DataFusion would type the literals
//! as text and refuse rows whose types differ in what the cast tagged them with (`json`,
//! `jsonb`), so each such literal is given the cast itself.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{self, CastKind, Expr, SetExpr, Value, VisitMut, VisitorMut};

/// Casts the unknown-typed literals of every VALUES column that some row casts.
pub fn type_values_columns(statement: &mut ast::Statement) {
    let _ = VisitMut::visit(statement, &mut Columns);
}

struct Columns;

impl VisitorMut for Columns {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<()> {
        if let SetExpr::Values(values) = query.body.as_mut() {
            type_columns(&mut values.rows);
        }
        ControlFlow::Continue(())
    }
}

fn type_columns(rows: &mut [ast::Parens<Vec<Expr>>]) {
    let width = rows.iter().map(|row| row.content.len()).max().unwrap_or(0);
    for column in 0..width {
        let Some(data_type) = rows.iter().find_map(|row| match row.content.get(column) {
            Some(Expr::Cast {
                kind: CastKind::Cast | CastKind::DoubleColon,
                data_type,
                format: None,
                ..
            }) => Some(data_type.clone()),
            _ => None,
        }) else {
            continue;
        };
        for row in rows.iter_mut() {
            if let Some(value) = row.content.get_mut(column)
                && is_unknown(value)
            {
                *value = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(value.clone()),
                    data_type: data_type.clone(),
                    array: false,
                    format: None,
                };
            }
        }
    }
}

/// A quoted literal or NULL: what PostgreSQL types as `unknown`.
fn is_unknown(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Value(v) if matches!(
            v.value,
            Value::SingleQuotedString(_) | Value::EscapedStringLiteral(_) | Value::Null
        )
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_literals_take_the_type_another_row_casts_to() {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let mut statement = datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &dialect,
            "SELECT * FROM (VALUES ('[1]'::jsonb, 1), ('[]', 2), (NULL, 3)) v(d, n)",
        )
        .unwrap()
        .remove(0);
        super::type_values_columns(&mut statement);
        let text = statement.to_string();
        assert!(text.contains("CAST('[]' AS JSONB)"), "{text}");
        assert!(text.contains("CAST(NULL AS JSONB)"), "{text}");
        assert!(text.contains("('[1]'::JSONB, 1)"), "{text}");
    }
}
