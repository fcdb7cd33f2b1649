//! `json_to_record`, `json_to_recordset` and their `jsonb` forms in FROM: the records a
//! document holds as rows, with the columns and types the alias's column definition list
//! declares (`FROM jsonb_to_recordset($1) AS x(id int, name text)`). Each becomes a derived
//! table that unnests, side by side, one list per declared column: that column's value in
//! every record, as text its type reads, which the executor's function named here computes.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, DataType, FunctionArg, Ident, ObjectName, TableAlias, TableFactor, Visit, Visitor,
};

use super::SqlError;

/// The executor's function behind each column: `(document, key, shape, function)` gives, per
/// record of the document, the key's value as text of the given shape (see the constants
/// below); the function's name selects one record or an array of them, and names it in errors.
pub const RECORD_FIELDS: &str = "kalamdb_json_record_fields";

/// A column of a scalar type: strings unquoted, other values as JSON text.
pub const SHAPE_SCALAR: &str = "scalar";
/// A `json` or `jsonb` column: the value as JSON text.
pub const SHAPE_JSON: &str = "json";
/// An array column: a JSON array as PostgreSQL's array literal, a string as written.
pub const SHAPE_ARRAY: &str = "array";

const FUNCTIONS: [&str; 4] = [
    "json_to_record",
    "json_to_recordset",
    "jsonb_to_record",
    "jsonb_to_recordset",
];

const DEFINITION_LIST_REQUIRED: &str =
    "a column definition list is required for functions returning \"record\"";

/// PostgreSQL's syntax errors for column definition lists: the record functions need one,
/// with a type for every column and without ORDINALITY, and no other function takes one.
pub(super) fn check_column_definitions(statement: &ast::Statement) -> Result<(), SqlError> {
    struct Check;
    impl Visitor for Check {
        type Break = SqlError;
        fn pre_visit_table_factor(&mut self, relation: &TableFactor) -> ControlFlow<SqlError> {
            match check(relation) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            }
        }
    }
    match statement.visit(&mut Check) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn check(relation: &TableFactor) -> Result<(), SqlError> {
    let Some((function, alias, ordinality)) = function_call(relation) else {
        return Ok(());
    };
    let columns = alias.map_or(&[][..], |a| a.columns.as_slice());
    let typed = columns.iter().any(|c| c.data_type.is_some());
    if !FUNCTIONS.contains(&function.as_str()) {
        return match typed {
            true => Err(SqlError::Syntax(
                "a column definition list is only allowed for functions returning \"record\""
                    .into(),
            )),
            false => Ok(()),
        };
    }
    if columns.is_empty() || columns.iter().any(|c| c.data_type.is_none()) {
        return Err(SqlError::Syntax(DEFINITION_LIST_REQUIRED.into()));
    }
    if ordinality {
        return Err(SqlError::Syntax(
            "WITH ORDINALITY cannot be used with a column definition list".into(),
        ));
    }
    Ok(())
}

/// The function a FROM item calls, folded, with its alias and whether it has ORDINALITY.
fn function_call(relation: &TableFactor) -> Option<(String, Option<&TableAlias>, bool)> {
    let (name, alias, ordinality) = match relation {
        TableFactor::Table {
            name,
            args: Some(_),
            alias,
            with_ordinality,
            ..
        }
        | TableFactor::Function {
            name,
            alias,
            with_ordinality,
            ..
        } => (name, alias, *with_ordinality),
        _ => return None,
    };
    let function = name.0.last()?.as_ident().map(super::fold)?;
    Some((function, alias.as_ref(), ordinality))
}

/// The derived table `FROM function(document) AS alias(column type, ...)` reads as, when
/// `function` is one of the four (`check_column_definitions` has refused malformed lists).
pub(super) fn as_derived_table(
    function: &str,
    args: &[FunctionArg],
    alias: &Option<TableAlias>,
) -> Option<TableFactor> {
    if !FUNCTIONS.contains(&function) {
        return None;
    }
    let [document] = args else {
        return None;
    };
    let alias = alias.as_ref()?;
    let json_type = if function.starts_with("jsonb") {
        "JSONB"
    } else {
        "JSON"
    };
    let columns: Vec<String> = alias
        .columns
        .iter()
        .map(|column| {
            let data_type = column.data_type.as_ref()?;
            let (shape, type_text) = shape_of(data_type);
            let key = super::fold(&column.name).replace('\'', "''");
            Some(format!(
                "CAST(unnest({RECORD_FIELDS}(CAST(CAST({document} AS TEXT) AS {json_type}), \
                 '{key}', '{shape}', '{function}')) AS {type_text}) AS {}",
                column.name
            ))
        })
        .collect::<Option<_>>()?;
    if columns.is_empty() {
        return None;
    }
    super::set_returning::derived_table(
        &format!("SELECT {}", columns.join(", ")),
        alias.name.clone(),
    )
}

/// How a column's value is written for its type, and the type as a cast names it
/// (PostgreSQL's internal array names such as `_int4` become `int4[]`).
fn shape_of(data_type: &DataType) -> (&'static str, String) {
    match data_type {
        DataType::JSON | DataType::JSONB => (SHAPE_JSON, data_type.to_string()),
        DataType::Array(_) => (SHAPE_ARRAY, data_type.to_string()),
        DataType::Custom(ObjectName(parts), modifiers) if modifiers.is_empty() => {
            let name = parts
                .last()
                .and_then(|p| p.as_ident())
                .map(super::fold)
                .unwrap_or_default();
            match name.strip_prefix('_') {
                Some(element) => (SHAPE_ARRAY, format!("{}[]", Ident::new(element))),
                None if name == "json" || name == "jsonb" => (SHAPE_JSON, name),
                None => (SHAPE_SCALAR, data_type.to_string()),
            }
        }
        _ => (SHAPE_SCALAR, data_type.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql_type: &str) -> (&'static str, String) {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let data_type = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
            .try_with_sql(sql_type)
            .and_then(|mut p| p.parse_data_type())
            .unwrap();
        shape_of(&data_type)
    }

    #[test]
    fn columns_are_written_as_their_types_read_them() {
        assert_eq!(shape("int"), (SHAPE_SCALAR, "INT".to_owned()));
        assert_eq!(shape("jsonb"), (SHAPE_JSON, "JSONB".to_owned()));
        assert_eq!(shape("text[]"), (SHAPE_ARRAY, "TEXT[]".to_owned()));
        assert_eq!(shape("_int4"), (SHAPE_ARRAY, "int4[]".to_owned()));
    }
}
