//! Row and key encodings for the hot (RocksDB) part of a table.
//!
//! A row value is each column in table order: a presence byte, then fixed-width little-endian
//! bytes or a u32 length and the bytes. Rows written before an `ALTER TABLE ... ADD COLUMN` are
//! shorter; their missing trailing columns read as the column's missing value. A row key is the
//! table id followed by the primary key in a memcomparable encoding, so RocksDB's byte order is
//! the key order and a table is one contiguous key range.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, TimestampMicrosecondType,
};

use super::{StorageError, StorageResult};
use crate::model::types::{ColumnDef, SqlType};

pub(super) const ABSENT: u8 = 0;
pub(super) const PRESENT: u8 = 1;

fn corrupt(message: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        cf: super::CF_ROWS,
        message: message.into(),
    }
}

/// Encodes row `row` of `columns` (arrays of each column's Arrow type, in table order).
/// Encodes row after row, each into a vector of exactly its size: growing a fresh vector per
/// row reallocates several times, which bulk writes feel.
#[derive(Default)]
pub struct RowEncoder {
    scratch: Vec<u8>,
}

impl RowEncoder {
    pub fn encode(&mut self, columns: &[ArrayRef], row: usize) -> Vec<u8> {
        self.scratch.clear();
        encode_row(columns, row, &mut self.scratch);
        self.scratch.clone()
    }
}

pub fn encode_row(columns: &[ArrayRef], row: usize, out: &mut Vec<u8>) {
    for column in columns {
        encode_datum(column.as_ref(), row, out);
    }
}

/// Encodes row `row` of a segment's columns as a stored row of `columns`: `positions` says
/// which of `file_columns` holds each (by column id); one the file does not hold gets its
/// missing value.
pub fn encode_file_row(
    columns: &[ColumnDef],
    positions: &[Option<usize>],
    file_columns: &[ArrayRef],
    row: usize,
    out: &mut Vec<u8>,
) {
    for (column, position) in columns.iter().zip(positions) {
        match position {
            Some(p) => encode_datum(file_columns[*p].as_ref(), row, out),
            None => out.extend_from_slice(column.missing_value.as_deref().unwrap_or(&[ABSENT])),
        }
    }
}

/// Encodes one value as a row stores it (also used for a column's missing value).
pub fn encode_datum(array: &dyn Array, row: usize, out: &mut Vec<u8>) {
    use datafusion::arrow::datatypes::DataType as D;
    if array.is_null(row) {
        out.push(ABSENT);
        return;
    }
    out.push(PRESENT);
    match array.data_type() {
        D::Boolean => out.push(array.as_boolean().value(row) as u8),
        D::Int16 => {
            out.extend_from_slice(&array.as_primitive::<Int16Type>().value(row).to_le_bytes())
        }
        D::Int32 => {
            out.extend_from_slice(&array.as_primitive::<Int32Type>().value(row).to_le_bytes())
        }
        D::Int64 => {
            out.extend_from_slice(&array.as_primitive::<Int64Type>().value(row).to_le_bytes())
        }
        D::Float32 => {
            out.extend_from_slice(&array.as_primitive::<Float32Type>().value(row).to_le_bytes())
        }
        D::Float64 => {
            out.extend_from_slice(&array.as_primitive::<Float64Type>().value(row).to_le_bytes())
        }
        D::Decimal128(..) => out.extend_from_slice(
            &array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_le_bytes(),
        ),
        D::Date32 => {
            out.extend_from_slice(&array.as_primitive::<Date32Type>().value(row).to_le_bytes())
        }
        D::Timestamp(..) => out.extend_from_slice(
            &array
                .as_primitive::<TimestampMicrosecondType>()
                .value(row)
                .to_le_bytes(),
        ),
        D::Utf8 => put_bytes(out, array.as_string::<i32>().value(row).as_bytes()),
        D::Binary => put_bytes(out, array.as_binary::<i32>().value(row)),
        other => unreachable!("tables never store {other}"),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Accumulates decoded rows into Arrow arrays for the selected columns.
pub struct RowDecoder {
    columns: Arc<Vec<ColumnDef>>,
    /// For each table column: the index of its builder, if the column is selected.
    selected: Vec<Option<usize>>,
    builders: Vec<ColumnBuilder>,
    rows: usize,
}

impl RowDecoder {
    /// `projection`: table column indexes to produce, in output order (`None`: all).
    pub fn new(columns: Arc<Vec<ColumnDef>>, projection: Option<&[usize]>) -> RowDecoder {
        let order: Vec<usize> = match projection {
            Some(p) => p.to_vec(),
            None => (0..columns.len()).collect(),
        };
        let mut selected = vec![None; columns.len()];
        for (out, &col) in order.iter().enumerate() {
            selected[col] = Some(out);
        }
        let builders = order
            .iter()
            .map(|&col| ColumnBuilder::new(columns[col].sql_type))
            .collect();
        RowDecoder {
            columns,
            selected,
            builders,
            rows: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn push(&mut self, value: &[u8]) -> StorageResult<()> {
        let mut cursor = value;
        for (index, column) in self.columns.iter().enumerate() {
            let datum: &[u8] = if cursor.is_empty() {
                column.missing_value.as_deref().unwrap_or(&[ABSENT])
            } else {
                let len = datum_len(column.sql_type, cursor)?;
                let (datum, rest) = cursor.split_at(len);
                cursor = rest;
                datum
            };
            if let Some(builder) = self.selected[index] {
                self.builders[builder].push(datum)?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    pub fn finish(self) -> Vec<ArrayRef> {
        self.builders
            .into_iter()
            .map(ColumnBuilder::finish)
            .collect()
    }
}

fn fixed_width(sql_type: SqlType) -> Option<usize> {
    Some(match sql_type {
        SqlType::Boolean => 1,
        SqlType::SmallInt => 2,
        SqlType::Integer | SqlType::Real | SqlType::Date => 4,
        SqlType::BigInt | SqlType::Double | SqlType::Timestamp | SqlType::TimestampTz => 8,
        SqlType::Numeric { .. } => 16,
        _ => return None,
    })
}

/// Length of the encoded datum at the start of `bytes`, including its presence byte.
pub(super) fn datum_len(sql_type: SqlType, bytes: &[u8]) -> StorageResult<usize> {
    let len = match bytes.first() {
        Some(&ABSENT) => return Ok(1),
        Some(&PRESENT) => match fixed_width(sql_type) {
            Some(width) => 1 + width,
            None => {
                let header: [u8; 4] = bytes
                    .get(1..5)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| corrupt("truncated length"))?;
                5 + u32::from_le_bytes(header) as usize
            }
        },
        _ => return Err(corrupt("bad presence byte")),
    };
    if len > bytes.len() {
        return Err(corrupt("truncated value"));
    }
    Ok(len)
}

/// The encoded datums (presence byte included) of the first `columns.len()` columns of a
/// stored row; a row written before a column was added reads that column's missing value.
pub fn split_datums<'r>(columns: &'r [ColumnDef], row: &'r [u8]) -> StorageResult<Vec<&'r [u8]>> {
    let mut cursor = row;
    let mut datums = Vec::with_capacity(columns.len());
    for column in columns {
        if cursor.is_empty() {
            datums.push(column.missing_value.as_deref().unwrap_or(&[ABSENT]));
            continue;
        }
        let len = datum_len(column.sql_type, cursor)?;
        let (datum, rest) = cursor.split_at(len);
        cursor = rest;
        datums.push(datum);
    }
    Ok(datums)
}

/// A row stored under the columns `from` re-encoded for the columns `to`, matching columns by
/// id: a column `to` has and `from` lacks reads its missing value (else NULL), and a column only
/// `from` has is left out. A transaction block that dropped or retyped a column reads the rows
/// committed under the old layout this way.
pub fn relayout(from: &[ColumnDef], to: &[ColumnDef], row: &[u8]) -> StorageResult<Vec<u8>> {
    let datums = split_datums(from, row)?;
    let mut out = Vec::with_capacity(row.len());
    for column in to {
        match from.iter().position(|c| c.id == column.id) {
            Some(position) if from[position].sql_type == column.sql_type => {
                out.extend_from_slice(datums[position]);
            }
            _ => out.extend_from_slice(column.missing_value.as_deref().unwrap_or(&[ABSENT])),
        }
    }
    Ok(out)
}

/// Appends the memcomparable form of one stored datum of `sql_type` to `out`: a marker byte
/// (values before NULLs, PostgreSQL's ascending order), then the value ordered bytewise.
pub fn datum_key(sql_type: SqlType, datum: &[u8], out: &mut Vec<u8>) -> StorageResult<()> {
    const VALUE: u8 = 1;
    const NULL: u8 = 2;
    if datum.first() != Some(&PRESENT) {
        out.push(NULL);
        return Ok(());
    }
    out.push(VALUE);
    let value = &datum[1..];
    fn word<const N: usize>(value: &[u8]) -> StorageResult<[u8; N]> {
        value
            .get(..N)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("bad width"))
    }
    match sql_type {
        SqlType::Boolean => out.push(word::<1>(value)?[0]),
        SqlType::SmallInt => {
            let v = i16::from_le_bytes(word(value)?);
            out.extend_from_slice(&((v as u16) ^ 0x8000).to_be_bytes());
        }
        SqlType::Integer | SqlType::Date => {
            let v = i32::from_le_bytes(word(value)?);
            out.extend_from_slice(&((v as u32) ^ (1 << 31)).to_be_bytes());
        }
        SqlType::BigInt | SqlType::Timestamp | SqlType::TimestampTz => {
            let v = i64::from_le_bytes(word(value)?);
            out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
        }
        SqlType::Numeric { .. } => {
            let v = i128::from_le_bytes(word(value)?);
            out.extend_from_slice(&((v as u128) ^ (1 << 127)).to_be_bytes());
        }
        SqlType::Real => {
            let v = f32::from_le_bytes(word(value)?);
            out.extend_from_slice(&normalize_f64(v as f64).to_be_bytes());
        }
        SqlType::Double => {
            let v = f64::from_le_bytes(word(value)?);
            out.extend_from_slice(&normalize_f64(v).to_be_bytes());
        }
        SqlType::Text
        | SqlType::Varchar { .. }
        | SqlType::Name
        | SqlType::Char { .. }
        | SqlType::Json
        | SqlType::Jsonb
        | SqlType::Uuid
        | SqlType::Bytea => escape_bytes(value.get(4..).ok_or_else(|| corrupt("bad length"))?, out),
    }
    Ok(())
}

/// `Key (a, b)=(1, x)`: the values of `key` (positions in `columns`) among a row's `datums`,
/// for messages about that row.
pub fn describe_key(columns: &[ColumnDef], key: &[usize], datums: &[&[u8]]) -> String {
    let names: Vec<&str> = key.iter().map(|&c| columns[c].name.as_str()).collect();
    let values: Vec<String> = key
        .iter()
        .map(|&c| datum_text(columns[c].sql_type, datums[c]))
        .collect();
    format!("Key ({})=({})", names.join(", "), values.join(", "))
}

/// A stored datum as text, for messages (`Key (email)=(a@b.c) already exists`).
pub fn datum_text(sql_type: SqlType, datum: &[u8]) -> String {
    let mut decoder = ColumnBuilder::new(sql_type);
    if decoder.push(datum).is_err() {
        return "?".into();
    }
    let array = decoder.finish();
    if array.is_null(0) {
        return "null".into();
    }
    datafusion::arrow::util::display::array_value_to_string(&array, 0)
        .unwrap_or_else(|_| "?".into())
}

enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, bool),
}

impl ColumnBuilder {
    fn new(sql_type: SqlType) -> ColumnBuilder {
        match sql_type {
            SqlType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::new()),
            SqlType::SmallInt => ColumnBuilder::Int16(Int16Builder::new()),
            SqlType::Integer => ColumnBuilder::Int32(Int32Builder::new()),
            SqlType::BigInt => ColumnBuilder::Int64(Int64Builder::new()),
            SqlType::Real => ColumnBuilder::Float32(Float32Builder::new()),
            SqlType::Double => ColumnBuilder::Float64(Float64Builder::new()),
            SqlType::Numeric { precision, scale } => {
                ColumnBuilder::Decimal(Decimal128Builder::new(), precision, scale)
            }
            SqlType::Text
            | SqlType::Varchar { .. }
            | SqlType::Name
            | SqlType::Char { .. }
            | SqlType::Json
            | SqlType::Jsonb
            | SqlType::Uuid => ColumnBuilder::Utf8(StringBuilder::new()),
            SqlType::Bytea => ColumnBuilder::Binary(BinaryBuilder::new()),
            SqlType::Date => ColumnBuilder::Date32(Date32Builder::new()),
            SqlType::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new(), false)
            }
            SqlType::TimestampTz => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new(), true)
            }
        }
    }

    fn push(&mut self, datum: &[u8]) -> StorageResult<()> {
        macro_rules! fixed {
            ($builder:expr, $ty:ty) => {{
                if datum[0] == ABSENT {
                    $builder.append_null();
                } else {
                    let bytes = datum[1..].try_into().map_err(|_| corrupt("bad width"))?;
                    $builder.append_value(<$ty>::from_le_bytes(bytes));
                }
            }};
        }
        match self {
            ColumnBuilder::Boolean(b) => {
                if datum[0] == ABSENT {
                    b.append_null()
                } else {
                    b.append_value(datum[1] != 0)
                }
            }
            ColumnBuilder::Int16(b) => fixed!(b, i16),
            ColumnBuilder::Int32(b) => fixed!(b, i32),
            ColumnBuilder::Int64(b) => fixed!(b, i64),
            ColumnBuilder::Float32(b) => fixed!(b, f32),
            ColumnBuilder::Float64(b) => fixed!(b, f64),
            ColumnBuilder::Decimal(b, ..) => fixed!(b, i128),
            ColumnBuilder::Date32(b) => fixed!(b, i32),
            ColumnBuilder::Timestamp(b, _) => fixed!(b, i64),
            ColumnBuilder::Utf8(b) => {
                if datum[0] == ABSENT {
                    b.append_null()
                } else {
                    let text =
                        std::str::from_utf8(&datum[5..]).map_err(|_| corrupt("bad utf-8"))?;
                    b.append_value(text)
                }
            }
            ColumnBuilder::Binary(b) => {
                if datum[0] == ABSENT {
                    b.append_null()
                } else {
                    b.append_value(&datum[5..])
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            ColumnBuilder::Boolean(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(mut b, precision, scale) => Arc::new(
                b.finish()
                    .with_precision_and_scale(precision, scale)
                    .expect("declared precision is valid"),
            ),
            ColumnBuilder::Utf8(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Date32(mut b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(mut b, with_tz) => {
                let array = b.finish();
                Arc::new(if with_tz {
                    array.with_timezone("UTC")
                } else {
                    array
                })
            }
        }
    }
}

/// The key prefix shared by every row of a table.
pub fn table_prefix(table_id: u64) -> [u8; 8] {
    table_id.to_be_bytes()
}

/// A row key for a table without a declared primary key: its hidden row id.
pub fn row_id_key(table_id: u64, row_id: u64) -> Vec<u8> {
    let mut key = table_prefix(table_id).to_vec();
    key.extend_from_slice(&row_id.to_be_bytes());
    key
}

/// Appends the memcomparable encoding of row `row` of the primary-key `columns` to `out`.
/// Returns false when a key column is NULL (primary keys are never NULL).
pub fn encode_key(columns: &[ArrayRef], row: usize, out: &mut Vec<u8>) -> bool {
    use datafusion::arrow::datatypes::DataType as D;
    for column in columns {
        let array = column.as_ref();
        if array.is_null(row) {
            return false;
        }
        match array.data_type() {
            D::Boolean => out.push(array.as_boolean().value(row) as u8),
            D::Int16 => push_i16(array.as_primitive::<Int16Type>().value(row), out),
            D::Int32 => push_i32(array.as_primitive::<Int32Type>().value(row), out),
            D::Date32 => push_i32(array.as_primitive::<Date32Type>().value(row), out),
            D::Int64 => push_i64(array.as_primitive::<Int64Type>().value(row), out),
            D::Timestamp(..) => push_i64(
                array.as_primitive::<TimestampMicrosecondType>().value(row),
                out,
            ),
            D::Decimal128(..) => out.extend_from_slice(
                &((array.as_primitive::<Decimal128Type>().value(row) as u128) ^ (1 << 127))
                    .to_be_bytes(),
            ),
            D::Float32 => {
                let bits = normalize_f64(array.as_primitive::<Float32Type>().value(row) as f64);
                out.extend_from_slice(&bits.to_be_bytes())
            }
            D::Float64 => {
                let bits = normalize_f64(array.as_primitive::<Float64Type>().value(row));
                out.extend_from_slice(&bits.to_be_bytes())
            }
            D::Utf8 => escape_bytes(array.as_string::<i32>().value(row).as_bytes(), out),
            D::Binary => escape_bytes(array.as_binary::<i32>().value(row), out),
            other => unreachable!("tables never store {other}"),
        }
    }
    true
}

/// Appends an integer key part of a column of `key_type` (SMALLINT, INT or BIGINT) holding
/// `value`, as `encode_key` encodes it; false for another type or a value the column cannot
/// hold. A point lookup by an integer parameter needs no array.
pub fn encode_integer_key(key_type: &DataType, value: i64, out: &mut Vec<u8>) -> bool {
    match key_type {
        DataType::Int16 => i16::try_from(value).map(|v| push_i16(v, out)).is_ok(),
        DataType::Int32 => i32::try_from(value).map(|v| push_i32(v, out)).is_ok(),
        DataType::Int64 => {
            push_i64(value, out);
            true
        }
        _ => false,
    }
}

// Signed integers with the sign bit flipped, big-endian: byte order is numeric order.
fn push_i16(value: i16, out: &mut Vec<u8>) {
    out.extend_from_slice(&((value as u16) ^ 0x8000).to_be_bytes());
}

fn push_i32(value: i32, out: &mut Vec<u8>) {
    out.extend_from_slice(&((value as u32) ^ (1 << 31)).to_be_bytes());
}

fn push_i64(value: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&((value as u64) ^ (1 << 63)).to_be_bytes());
}

/// Orders floats by value: -0.0 equals 0.0 and every NaN sorts last, as in PostgreSQL.
fn normalize_f64(value: f64) -> u64 {
    let value = if value == 0.0 { 0.0 } else { value };
    let bits = if value.is_nan() {
        f64::NAN.to_bits()
    } else {
        value.to_bits()
    };
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Byte strings are escaped so that no encoded key is a prefix of another.
fn escape_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

/// A stored row: the sequence number of the command that wrote it (its version), then the row.
pub fn stored_row(seq: u64, row: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(8 + row.len());
    store_row_into(seq, row, &mut stored);
    stored
}

/// [`stored_row`] into a buffer the caller reuses.
pub fn store_row_into(seq: u64, row: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(row);
}

pub fn stored_version(stored: &[u8]) -> StorageResult<u64> {
    stored
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| corrupt("stored row shorter than its version"))
}

pub fn stored_payload(stored: &[u8]) -> &[u8] {
    &stored[8.min(stored.len())..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    fn key(arrays: &[ArrayRef], row: usize) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(encode_key(arrays, row, &mut out));
        out
    }

    #[test]
    fn integer_keys_sort_numerically_including_negatives() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![-5, -1, 0, 3, i64::MAX]));
        let keys: Vec<_> = (0..5)
            .map(|i| key(std::slice::from_ref(&ints), i))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn integer_key_parts_encode_as_their_columns_arrays_do() {
        use datafusion::arrow::array::{Int16Array, Int32Array};
        let values = [
            i64::MIN,
            -40_000,
            i16::MIN as i64,
            -1,
            0,
            1,
            i32::MAX as i64,
            i64::MAX,
        ];
        for value in values {
            let arrays: [(DataType, Option<ArrayRef>); 3] = [
                (
                    DataType::Int16,
                    i16::try_from(value)
                        .ok()
                        .map(|v| Arc::new(Int16Array::from(vec![v])) as ArrayRef),
                ),
                (
                    DataType::Int32,
                    i32::try_from(value)
                        .ok()
                        .map(|v| Arc::new(Int32Array::from(vec![v])) as ArrayRef),
                ),
                (
                    DataType::Int64,
                    Some(Arc::new(Int64Array::from(vec![value])) as ArrayRef),
                ),
            ];
            for (key_type, array) in arrays {
                let mut direct = Vec::new();
                let encoded = encode_integer_key(&key_type, value, &mut direct);
                match array {
                    Some(array) => {
                        assert!(encoded, "{value} as {key_type}");
                        assert_eq!(direct, key(&[array], 0), "{value} as {key_type}");
                    }
                    None => assert!(!encoded, "{value} does not fit {key_type}"),
                }
            }
        }
        assert!(!encode_integer_key(&DataType::Utf8, 1, &mut Vec::new()));
    }

    #[test]
    fn text_keys_sort_bytewise_and_never_prefix_each_other() {
        let text: ArrayRef = Arc::new(StringArray::from(vec!["a", "a\0", "ab", "b"]));
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![9, 1, 1, 1]));
        let keys: Vec<_> = (0..4)
            .map(|i| key(&[text.clone(), ints.clone()], i))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    }

    #[test]
    fn rows_round_trip_and_short_rows_read_missing_values() {
        let columns = Arc::new(vec![
            ColumnDef {
                id: 0,
                nullable: false,
                ..ColumnDef::new("id", SqlType::BigInt)
            },
            ColumnDef {
                id: 1,
                ..ColumnDef::new("name", SqlType::Text)
            },
        ]);
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("x"), None])),
        ];
        let mut decoder = RowDecoder::new(columns.clone(), Some(&[1, 0]));
        for row in 0..2 {
            let mut value = Vec::new();
            encode_row(&arrays, row, &mut value);
            decoder.push(&value).unwrap();
        }
        // A row written before `name` existed.
        let mut short = Vec::new();
        encode_datum(arrays[0].as_ref(), 0, &mut short);
        decoder.push(&short).unwrap();
        let out = decoder.finish();
        assert_eq!(
            out[0].as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("x"), None, None]
        );
        assert_eq!(
            out[1].as_primitive::<Int64Type>().values().to_vec(),
            [1, 2, 1]
        );
    }
}
