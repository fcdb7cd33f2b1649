//! The PostgreSQL types and row descriptions Arrow columns are reported with.

use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::FieldInfo;

use crate::model::types::result_oid;

/// The PostgreSQL type a result column is reported as (see [`result_oid`]).
pub fn pg_type_of(field: &Field) -> Type {
    Type::from_oid(result_oid(field) as u32).unwrap_or(Type::TEXT)
}

/// The PostgreSQL type a parameter or column of `data_type` is reported as.
pub fn pg_type(data_type: &DataType) -> Type {
    pg_type_of(&Field::new("", data_type.clone(), true))
}

pub fn field_infos(schema: &SchemaRef, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            FieldInfo::new(
                field.name().clone(),
                None,
                None,
                pg_type_of(field),
                format.format_for(i),
            )
        })
        .collect()
}
