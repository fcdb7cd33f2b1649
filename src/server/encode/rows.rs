//! Result rows: Arrow batches encoded as DataRows, in text or binary, per column format.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type, i256,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions as ArrowFormat};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use postgres_types::ToSql;

use crate::exec::Outcome;
use crate::server::sqlstate;
use crate::server::values::{
    FunctionName, PgDate, PgFloat, PgInterval, PgNumeric, PgTimestamp, TextTyped,
};

use super::*;

/// Turns an execution outcome into a pgwire response, rows encoded in `format`.
pub fn response(outcome: Outcome, format: &Format) -> Response {
    match outcome {
        Outcome::Rows { schema, stream } => {
            let fields = Arc::new(field_infos(&schema, format));
            Response::Query(QueryResponse::new(
                fields.clone(),
                data_rows(stream, fields),
            ))
        }
        Outcome::Fetched { schema, stream } => {
            let fields = Arc::new(field_infos(&schema, format));
            let mut response = QueryResponse::new(fields.clone(), data_rows(stream, fields));
            response.set_command_tag("FETCH");
            Response::Query(response)
        }
        Outcome::Done { tag } => Response::Execution(Tag::new(tag)),
        // INSERT's tag carries an OID (always 0), as PostgreSQL's does.
        Outcome::Affected {
            tag: "INSERT",
            rows,
        } => Response::Execution(Tag::new("INSERT").with_oid(0).with_rows(rows)),
        Outcome::Affected { tag, rows } => Response::Execution(Tag::new(tag).with_rows(rows)),
        Outcome::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Outcome::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
        Outcome::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
        Outcome::Deallocate { tag, .. } => Response::Execution(Tag::new(tag)),
        // The connection answers COPY itself (it holds the data stream's state).
        Outcome::CopyIn(_) | Outcome::CopyOut { .. } => Response::Error(Box::new(sqlstate::error(
            sqlstate::INTERNAL_ERROR,
            "COPY reached the row encoder",
        ))),
    }
}

fn data_rows(
    stream: SendableRecordBatchStream,
    fields: Arc<Vec<FieldInfo>>,
) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send {
    encoded_rows(stream, move |batch| encode_batch(batch, &fields))
}

/// The rows `encode` makes of each batch of `stream`, in order; an execution error ends them.
pub fn encoded_rows<T: Send>(
    stream: SendableRecordBatchStream,
    encode: impl Fn(&RecordBatch) -> Vec<PgWireResult<T>> + Send,
) -> impl futures::Stream<Item = PgWireResult<T>> + Send {
    stream.flat_map(move |batch| {
        let rows = match batch {
            Ok(batch) => encode(&batch),
            Err(e) => vec![Err(PgWireError::UserError(Box::new(sqlstate::exec_error(
                &e.into(),
            ))))],
        };
        futures::stream::iter(rows)
    })
}

fn encode_batch(batch: &RecordBatch, fields: &Arc<Vec<FieldInfo>>) -> Vec<PgWireResult<DataRow>> {
    let mut encoder = DataRowEncoder::new(fields.clone());
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let encoded = batch
            .columns()
            .iter()
            .zip(fields.iter())
            .try_for_each(|(column, field)| encode_cell(&mut encoder, column.as_ref(), row, field));
        match encoded {
            Ok(()) => rows.push(Ok(encoder.take_row())),
            Err(e) => {
                rows.push(Err(e));
                break;
            }
        }
    }
    rows
}

/// Where a row's values go, one after another in column order: a DataRow for a query's
/// result, or a COPY TO row.
pub trait CellSink {
    fn put<T>(&mut self, value: Option<T>, field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText;
}

impl CellSink for DataRowEncoder {
    fn put<T>(&mut self, value: Option<T>, field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText,
    {
        self.encode_field_with_type_and_format(
            &value,
            field.datatype(),
            field.format(),
            field.format_options(),
        )
    }
}

fn put<T>(encoder: &mut impl CellSink, value: Option<T>, field: &FieldInfo) -> PgWireResult<()>
where
    T: ToSql + ToSqlText,
{
    encoder.put(value, field)
}

/// Encodes the value at `row` of `column` as `field` says (its PostgreSQL type and format).
pub fn encode_cell(
    encoder: &mut impl CellSink,
    column: &dyn Array,
    row: usize,
    field: &FieldInfo,
) -> PgWireResult<()> {
    macro_rules! primitive {
        ($arrow:ty, $convert:expr) => {{
            let array = column.as_primitive::<$arrow>();
            let value = array.is_valid(row).then(|| $convert(array.value(row)));
            put(encoder, value, field)
        }};
    }
    match column.data_type() {
        // A NullArray has no validity buffer, so `is_null` would call its rows valid.
        DataType::Null => put::<&str>(encoder, None, field),
        DataType::Boolean => {
            let array = column.as_boolean();
            put(
                encoder,
                array.is_valid(row).then(|| array.value(row)),
                field,
            )
        }
        DataType::Int8 => primitive!(Int8Type, i16::from),
        DataType::Int16 => primitive!(Int16Type, |v: i16| v),
        DataType::Int32
            if *field.datatype() == Type::REGPROC || *field.datatype() == Type::REGPROCEDURE =>
        {
            let signature = *field.datatype() == Type::REGPROCEDURE;
            primitive!(Int32Type, |oid: i32| FunctionName {
                oid,
                text: crate::exec::function_name(oid, signature),
            })
        }
        DataType::Int32 => primitive!(Int32Type, |v: i32| v),
        DataType::Int64 => primitive!(Int64Type, |v: i64| v),
        DataType::UInt8 => primitive!(UInt8Type, i16::from),
        DataType::UInt16 => primitive!(UInt16Type, i32::from),
        DataType::UInt32 => primitive!(UInt32Type, i64::from),
        DataType::UInt64 => primitive!(UInt64Type, |v: u64| PgNumeric::new(i128::from(v), 0)),
        DataType::Float32 => primitive!(Float32Type, PgFloat::Float4),
        DataType::Float64 => primitive!(Float64Type, PgFloat::Float8),
        DataType::Decimal128(_, scale) => {
            primitive!(Decimal128Type, |v: i128| PgNumeric::new(v, *scale))
        }
        DataType::Decimal256(_, scale) => {
            primitive!(Decimal256Type, |v: i256| PgNumeric::new(v, *scale))
        }
        DataType::Utf8 if TextTyped::accepts(field.datatype()) => {
            let array = column.as_string::<i32>();
            put(
                encoder,
                array.is_valid(row).then(|| TextTyped(array.value(row))),
                field,
            )
        }
        DataType::Utf8 => {
            let array = column.as_string::<i32>();
            put(
                encoder,
                array.is_valid(row).then(|| array.value(row)),
                field,
            )
        }
        DataType::LargeUtf8 => {
            let array = column.as_string::<i64>();
            put(
                encoder,
                array.is_valid(row).then(|| array.value(row)),
                field,
            )
        }
        DataType::Utf8View => {
            let array = column.as_string_view();
            put(
                encoder,
                array.is_valid(row).then(|| array.value(row)),
                field,
            )
        }
        DataType::Binary => {
            let array = column.as_binary::<i32>();
            put(
                encoder,
                array.is_valid(row).then(|| array.value(row)),
                field,
            )
        }
        DataType::LargeBinary => {
            let array = column.as_binary::<i64>();
            put(
                encoder,
                array.is_valid(row).then(|| array.value(row)),
                field,
            )
        }
        DataType::BinaryView => {
            let array = column.as_binary_view();
            put(
                encoder,
                array.is_valid(row).then(|| array.value(row)),
                field,
            )
        }
        DataType::Date32 => {
            let array = column.as_primitive::<Date32Type>();
            let value: Option<NaiveDate> = array
                .is_valid(row)
                .then(|| array.value_as_date(row))
                .flatten();
            put(encoder, value.map(PgDate), field)
        }
        DataType::Date64 => {
            let array = column.as_primitive::<Date64Type>();
            let value: Option<NaiveDate> = array
                .is_valid(row)
                .then(|| array.value_as_date(row))
                .flatten();
            put(encoder, value.map(PgDate), field)
        }
        DataType::Timestamp(unit, tz) => {
            let naive: Option<NaiveDateTime> = if column.is_null(row) {
                None
            } else {
                match unit {
                    TimeUnit::Second => column
                        .as_primitive::<TimestampSecondType>()
                        .value_as_datetime(row),
                    TimeUnit::Millisecond => column
                        .as_primitive::<TimestampMillisecondType>()
                        .value_as_datetime(row),
                    TimeUnit::Microsecond => column
                        .as_primitive::<TimestampMicrosecondType>()
                        .value_as_datetime(row),
                    TimeUnit::Nanosecond => column
                        .as_primitive::<TimestampNanosecondType>()
                        .value_as_datetime(row),
                }
            };
            let value = naive.map(|n| {
                if tz.is_some() {
                    PgTimestamp::Utc(DateTime::<Utc>::from_naive_utc_and_offset(n, Utc))
                } else {
                    PgTimestamp::Naive(n)
                }
            });
            put(encoder, value, field)
        }
        DataType::Interval(_) | DataType::Duration(_) => {
            let value = column
                .is_valid(row)
                .then(|| interval_at(column, row))
                .flatten();
            put(encoder, value, field)
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let elements = if column.is_null(row) {
                None
            } else if let Some(list) = column.as_list_opt::<i32>() {
                Some(list.value(row))
            } else {
                Some(column.as_list::<i64>().value(row))
            };
            if *field.datatype() == Type::INT2_VECTOR || *field.datatype() == Type::OID_VECTOR {
                return encode_vector(encoder, elements.as_deref(), field);
            }
            encode_array(encoder, elements.as_deref(), field)
        }
        _ => {
            let text = if column.is_null(row) {
                None
            } else {
                let formatter = ArrayFormatter::try_new(column, &ArrowFormat::default())
                    .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                Some(formatter.value(row).to_string())
            };
            put(encoder, text, field)
        }
    }
}

/// The interval at `row` of an interval or duration column (a duration, the difference of two
/// timestamps, is days and time as PostgreSQL makes it).
fn interval_at(column: &dyn Array, row: usize) -> Option<PgInterval> {
    use datafusion::arrow::datatypes::{
        DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType,
        DurationSecondType, IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit,
        IntervalYearMonthType,
    };
    let duration = |micros: Option<i64>| {
        let (days, micros) = crate::model::interval_text::duration_parts(micros?);
        Some(PgInterval {
            months: 0,
            days,
            micros,
        })
    };
    match column.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = column.as_primitive::<IntervalMonthDayNanoType>().value(row);
            Some(PgInterval {
                months: v.months,
                days: v.days,
                micros: v.nanoseconds / 1_000,
            })
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = column.as_primitive::<IntervalDayTimeType>().value(row);
            Some(PgInterval {
                months: 0,
                days: v.days,
                micros: i64::from(v.milliseconds) * 1_000,
            })
        }
        DataType::Interval(IntervalUnit::YearMonth) => Some(PgInterval {
            months: column.as_primitive::<IntervalYearMonthType>().value(row),
            days: 0,
            micros: 0,
        }),
        DataType::Duration(TimeUnit::Second) => duration(
            column
                .as_primitive::<DurationSecondType>()
                .value(row)
                .checked_mul(1_000_000),
        ),
        DataType::Duration(TimeUnit::Millisecond) => duration(
            column
                .as_primitive::<DurationMillisecondType>()
                .value(row)
                .checked_mul(1_000),
        ),
        DataType::Duration(TimeUnit::Microsecond) => duration(Some(
            column.as_primitive::<DurationMicrosecondType>().value(row),
        )),
        DataType::Duration(TimeUnit::Nanosecond) => duration(Some(
            column.as_primitive::<DurationNanosecondType>().value(row) / 1_000,
        )),
        _ => None,
    }
}

/// An `int2vector` or `oidvector` (`1 2`).
fn encode_vector(
    encoder: &mut impl CellSink,
    elements: Option<&dyn Array>,
    field: &FieldInfo,
) -> PgWireResult<()> {
    let Some(elements) = elements else {
        return put::<super::arrays::Vector<i16>>(encoder, None, field);
    };
    if *field.datatype() == Type::INT2_VECTOR {
        let values = cast_to(elements, &DataType::Int16)?;
        let values = values.as_primitive::<Int16Type>().iter().collect();
        return put(encoder, Some(super::arrays::Vector(values)), field);
    }
    let values = cast_to(elements, &DataType::UInt32)?;
    let values = values.as_primitive::<UInt32Type>().iter().collect();
    put(encoder, Some(super::arrays::Vector(values)), field)
}

fn cast_to(elements: &dyn Array, to: &DataType) -> PgWireResult<ArrayRef> {
    datafusion::arrow::compute::cast(elements, to).map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// One list value as a PostgreSQL array of the element type `pg_type` chose for it.
fn encode_array(
    encoder: &mut impl CellSink,
    elements: Option<&dyn Array>,
    field: &FieldInfo,
) -> PgWireResult<()> {
    fn numbers<T: ArrowPrimitiveType>(
        elements: &dyn Array,
    ) -> PgWireResult<Vec<Option<T::Native>>> {
        Ok(cast_to(elements, &T::DATA_TYPE)?
            .as_primitive::<T>()
            .iter()
            .collect())
    }
    let Some(elements) = elements else {
        return put::<Vec<Option<String>>>(encoder, None, field);
    };
    // `ARRAY[[1,2],[3,4]]`: one array of two dimensions, its elements sent row by row.
    let flattened;
    let (dimensions, elements) = if super::arrays::is_nested(elements.data_type()) {
        let (dimensions, leaves) = super::arrays::flatten(elements)?;
        flattened = leaves;
        (Some(dimensions), flattened.as_ref())
    } else {
        (None, elements)
    };
    fn send<T: ToSql + ToSqlText>(
        encoder: &mut impl CellSink,
        dimensions: Option<Vec<usize>>,
        elements: Vec<Option<T>>,
        field: &FieldInfo,
    ) -> PgWireResult<()> {
        match dimensions {
            Some(dimensions) => put(
                encoder,
                Some(super::arrays::Dimensioned {
                    dimensions,
                    elements,
                }),
                field,
            ),
            None => put(encoder, Some(elements), field),
        }
    }
    match *field.datatype() {
        Type::BOOL_ARRAY => {
            let values: Vec<Option<bool>> = cast_to(elements, &DataType::Boolean)?
                .as_boolean()
                .iter()
                .collect();
            send(encoder, dimensions, values, field)
        }
        Type::INT2_ARRAY => send(encoder, dimensions, numbers::<Int16Type>(elements)?, field),
        Type::INT4_ARRAY => send(encoder, dimensions, numbers::<Int32Type>(elements)?, field),
        Type::INT8_ARRAY => send(encoder, dimensions, numbers::<Int64Type>(elements)?, field),
        Type::FLOAT4_ARRAY => send(
            encoder,
            dimensions,
            numbers::<Float32Type>(elements)?,
            field,
        ),
        Type::FLOAT8_ARRAY => send(
            encoder,
            dimensions,
            numbers::<Float64Type>(elements)?,
            field,
        ),
        _ => {
            let formatter = ArrayFormatter::try_new(elements, &ArrowFormat::default())
                .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            let values: Vec<Option<String>> = (0..elements.len())
                .map(|i| elements.is_valid(i).then(|| formatter.value(i).to_string()))
                .collect();
            send(encoder, dimensions, values, field)
        }
    }
}
