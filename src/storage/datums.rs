//! Edits of single datums in stored rows, as foreign keys and DROP COLUMN need them: a datum
//! converted across a foreign key's column types, datums replaced (SET NULL, SET DEFAULT,
//! CASCADE) or removed (a dropped column), and the NULL datum itself.

use super::StorageResult;
use super::rows::{ABSENT, PRESENT, datum_len, split_datums};
use crate::model::types::{ColumnDef, SqlType};

/// The stored datum of `from` as a datum of `to`, for comparing values across a foreign key
/// whose columns differ in integer width or text kind. `None`: no value of `to` equals it (an
/// integer out of `to`'s range), or the types do not compare.
pub fn convert_datum(from: SqlType, to: SqlType, datum: &[u8]) -> Option<Vec<u8>> {
    if from == to || (from.is_text() && to.is_text()) || datum.first() != Some(&PRESENT) {
        return Some(datum.to_vec());
    }
    let value = &datum[1..];
    let integer: i64 = match from {
        SqlType::SmallInt => i16::from_le_bytes(value.get(..2)?.try_into().ok()?).into(),
        SqlType::Integer => i32::from_le_bytes(value.get(..4)?.try_into().ok()?).into(),
        SqlType::BigInt => i64::from_le_bytes(value.get(..8)?.try_into().ok()?),
        _ => return None,
    };
    let mut out = vec![PRESENT];
    match to {
        SqlType::SmallInt => out.extend_from_slice(&i16::try_from(integer).ok()?.to_le_bytes()),
        SqlType::Integer => out.extend_from_slice(&i32::try_from(integer).ok()?.to_le_bytes()),
        SqlType::BigInt => out.extend_from_slice(&integer.to_le_bytes()),
        _ => return None,
    }
    Some(out)
}

/// Whether a stored datum is NULL.
pub fn datum_is_null(datum: &[u8]) -> bool {
    datum.first() != Some(&PRESENT)
}

/// The encoded NULL datum.
pub const NULL_DATUM: &[u8] = &[ABSENT];

/// A stored row with some of its first `columns` datums replaced: `(position, datum)`.
pub fn replace_datums(
    columns: &[ColumnDef],
    row: &[u8],
    replacements: &[(usize, Vec<u8>)],
) -> StorageResult<Vec<u8>> {
    let datums = split_datums(columns, row)?;
    // The datums split_datums found in `row` itself (a short row reads missing values).
    let mut consumed = 0;
    let mut rest = row;
    for column in columns {
        if rest.is_empty() {
            break;
        }
        let len = datum_len(column.sql_type, rest)?;
        consumed += len;
        rest = &rest[len..];
    }
    let mut out = Vec::with_capacity(row.len() + 16);
    for (position, datum) in datums.iter().enumerate() {
        match replacements.iter().find(|(at, _)| *at == position) {
            Some((_, replacement)) => out.extend_from_slice(replacement),
            None => out.extend_from_slice(datum),
        }
    }
    out.extend_from_slice(&row[consumed..]);
    Ok(out)
}

/// A stored row without its datum of column `position` (of `columns`, the row's layout): a
/// row too short to have it (written before the column was added) is returned whole.
pub fn without_datum(columns: &[ColumnDef], row: &[u8], position: usize) -> StorageResult<Vec<u8>> {
    let mut rest = row;
    let mut start = 0;
    for column in &columns[..position] {
        if rest.is_empty() {
            return Ok(row.to_vec());
        }
        let len = datum_len(column.sql_type, rest)?;
        start += len;
        rest = &rest[len..];
    }
    if rest.is_empty() {
        return Ok(row.to_vec());
    }
    let len = datum_len(columns[position].sql_type, rest)?;
    let mut out = Vec::with_capacity(row.len() - len);
    out.extend_from_slice(&row[..start]);
    out.extend_from_slice(&row[start + len..]);
    Ok(out)
}
