//! Multidimensional arrays on the wire. KalamDB holds `ARRAY[[1,2],[3,4]]` as a list of lists;
//! PostgreSQL sends it as one array value with two dimensions: `{{1,2},{3,4}}` in text, and in
//! binary one header giving each dimension's length followed by the elements in row-major
//! order. PostgreSQL's arrays are rectangular, so sub-arrays of unequal lengths cannot be sent.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use pgwire::api::Type;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, Kind, ToSql};

/// Whether a list of this element type is an array of two or more dimensions.
pub(super) fn is_nested(element: &DataType) -> bool {
    matches!(element, DataType::List(_) | DataType::LargeList(_))
}

/// The lengths of each dimension of a (possibly nested) list value and its innermost elements
/// in row-major order. An error when sub-arrays differ in length or one is NULL.
pub(super) fn flatten(value: &dyn Array) -> PgWireResult<(Vec<usize>, ArrayRef)> {
    let rows: Vec<ArrayRef> = match value.data_type() {
        DataType::List(_) => {
            let list = value.as_list::<i32>();
            (0..list.len()).map(|i| list.value(i)).collect()
        }
        DataType::LargeList(_) => {
            let list = value.as_list::<i64>();
            (0..list.len()).map(|i| list.value(i)).collect()
        }
        _ => return Ok((vec![value.len()], value.slice(0, value.len()))),
    };
    if value.null_count() > 0 {
        return Err(ragged());
    }
    let mut inner_dimensions: Option<Vec<usize>> = None;
    let mut leaves = Vec::with_capacity(rows.len());
    for row in &rows {
        let (dimensions, row_leaves) = flatten(row.as_ref())?;
        match &inner_dimensions {
            Some(expected) if *expected != dimensions => return Err(ragged()),
            Some(_) => {}
            None => inner_dimensions = Some(dimensions),
        }
        leaves.push(row_leaves);
    }
    let Some(inner) = inner_dimensions else {
        // No rows: the empty array, which has no dimensions to speak of.
        return Ok((
            vec![0],
            datafusion::arrow::array::new_empty_array(&DataType::Null),
        ));
    };
    let parts: Vec<&dyn Array> = leaves.iter().map(|a| a.as_ref()).collect();
    let joined = datafusion::arrow::compute::concat(&parts)
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let mut dimensions = vec![rows.len()];
    dimensions.extend(inner);
    Ok((dimensions, joined))
}

fn ragged() -> PgWireError {
    PgWireError::ApiError(
        "multidimensional arrays must have sub-arrays with matching dimensions".into(),
    )
}

/// An array value of two or more dimensions, its elements in row-major order.
#[derive(Debug)]
pub(super) struct Dimensioned<T> {
    pub dimensions: Vec<usize>,
    pub elements: Vec<Option<T>>,
}

impl<T: ToSqlText> Dimensioned<T> {
    fn write_text(
        &self,
        depth: usize,
        elements: &[Option<T>],
        ty: &Type,
        out: &mut BytesMut,
        format_options: &FormatOptions,
    ) -> Result<(), Box<dyn Error + Sync + Send>> {
        if depth + 1 == self.dimensions.len() {
            elements.to_sql_text(ty, out, format_options)?;
            return Ok(());
        }
        out.put_u8(b'{');
        let step = self.dimensions[depth + 1..]
            .iter()
            .product::<usize>()
            .max(1);
        for (i, chunk) in elements.chunks(step).enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            self.write_text(depth + 1, chunk, ty, out, format_options)?;
        }
        out.put_u8(b'}');
        Ok(())
    }
}

impl<T: ToSqlText> ToSqlText for Dimensioned<T> {
    fn to_sql_text(
        &self,
        ty: &Type,
        out: &mut BytesMut,
        format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if self.elements.is_empty() {
            out.put_slice(b"{}");
        } else {
            self.write_text(0, &self.elements, ty, out, format_options)?;
        }
        Ok(IsNull::No)
    }
}

impl<T: ToSql> ToSql for Dimensioned<T> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let Kind::Array(member) = ty.kind() else {
            return Err(format!("{ty} is not an array type").into());
        };
        let dimensions: &[usize] = if self.elements.is_empty() {
            &[]
        } else {
            &self.dimensions
        };
        out.put_i32(i32::try_from(dimensions.len())?);
        out.put_i32(i32::from(self.elements.iter().any(Option::is_none)));
        out.put_u32(member.oid());
        for length in dimensions {
            out.put_i32(i32::try_from(*length)?);
            out.put_i32(1);
        }
        for element in &self.elements {
            let Some(element) = element else {
                out.put_i32(-1);
                continue;
            };
            let at = out.len();
            out.put_i32(0);
            element.to_sql(member, out)?;
            let written = i32::try_from(out.len() - at - 4)?;
            out[at..at + 4].copy_from_slice(&written.to_be_bytes());
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.kind(), Kind::Array(member) if T::accepts(member))
    }

    postgres_types::to_sql_checked!();
}

/// An `int2vector` or `oidvector`: in text its elements separated by spaces (`1 2`), in
/// binary an array's layout, as PostgreSQL sends them.
#[derive(Debug)]
pub(super) struct Vector<T>(pub Vec<Option<T>>);

impl<T: std::fmt::Display + std::fmt::Debug> ToSqlText for Vector<T> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let text: Vec<String> = self.0.iter().flatten().map(ToString::to_string).collect();
        out.put_slice(text.join(" ").as_bytes());
        Ok(IsNull::No)
    }
}

impl<T: ToSql> ToSql for Vector<T> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <Vec<Option<T>> as ToSql>::accepts(ty)
    }

    postgres_types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::ListArray;
    use datafusion::arrow::datatypes::Int32Type;

    use super::*;

    fn two_by_two() -> ArrayRef {
        let rows = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![Some(3), None]),
        ]);
        Arc::new(rows)
    }

    #[test]
    fn nested_lists_flatten_to_dimensions_and_row_major_elements() {
        let (dimensions, leaves) = flatten(two_by_two().as_ref()).unwrap();
        assert_eq!(dimensions, vec![2, 2]);
        let leaves = leaves.as_primitive::<Int32Type>();
        assert_eq!(
            leaves.iter().collect::<Vec<_>>(),
            vec![Some(1), Some(2), Some(3), None]
        );
    }

    #[test]
    fn sub_arrays_of_unequal_length_are_refused() {
        let rows = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![Some(3)]),
        ]);
        assert!(flatten(&rows).is_err());
    }

    #[test]
    fn text_form_nests_braces_per_dimension() {
        let value = Dimensioned {
            dimensions: vec![2, 2],
            elements: vec![Some(1i32), Some(2), Some(3), None],
        };
        let mut out = BytesMut::new();
        value
            .to_sql_text(&Type::INT4_ARRAY, &mut out, &FormatOptions::default())
            .unwrap();
        assert_eq!(&out[..], b"{{1,2},{3,NULL}}");
    }

    #[test]
    fn vectors_are_space_separated_in_text() {
        let mut out = BytesMut::new();
        Vector(vec![Some(25u32), Some(23)])
            .to_sql_text(&Type::OID_VECTOR, &mut out, &FormatOptions::default())
            .unwrap();
        assert_eq!(&out[..], b"25 23");
    }

    #[test]
    fn binary_form_carries_every_dimension() {
        let value = Dimensioned {
            dimensions: vec![2, 1],
            elements: vec![Some(7i32), Some(8)],
        };
        let mut out = BytesMut::new();
        value.to_sql(&Type::INT4_ARRAY, &mut out).unwrap();
        let words: Vec<i32> = out
            .chunks(4)
            .map(|w| i32::from_be_bytes(w.try_into().unwrap()))
            .collect();
        // ndim, has-nulls, element OID, (length, lower bound) per dimension, (size, value)s.
        assert_eq!(words, vec![2, 0, 23, 2, 1, 1, 1, 4, 7, 4, 8]);
    }
}
