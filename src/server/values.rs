//! Wire encodings PostgreSQL clients expect that differ from pgwire's defaults: float text as
//! PostgreSQL prints it, intervals in its `postgres` style, and JSON, JSONB and UUID values
//! stored as text.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::datatypes::i256;
use pgwire::api::Type;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql, to_sql_checked};

use crate::model::float_text::{float4_text, float8_text};
use crate::model::numeric_text::{NumericDigits, NumericGroups};

type BoxError = Box<dyn Error + Sync + Send>;

/// A float sent as PostgreSQL's `float4out`/`float8out` would write it (shortest exact digits,
/// exponent form outside a fixed range, `Infinity`, `NaN`).
#[derive(Debug)]
pub enum PgFloat {
    Float4(f32),
    Float8(f64),
}

impl ToSql for PgFloat {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            PgFloat::Float4(v) => v.to_sql(ty, out),
            PgFloat::Float8(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::FLOAT4 | Type::FLOAT8)
    }

    to_sql_checked!();
}

impl ToSqlText for PgFloat {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _: &FormatOptions,
    ) -> Result<IsNull, BoxError> {
        let text = match self {
            // Shortest round-trip digits of the value at its own precision.
            PgFloat::Float4(v) => float4_text(*v),
            PgFloat::Float8(v) => float8_text(*v),
        };
        out.put_slice(text.as_bytes());
        Ok(IsNull::No)
    }
}

/// A `regproc` or `regprocedure` value: the function's OID in binary, its name in text.
#[derive(Debug)]
pub struct FunctionName {
    pub oid: i32,
    pub text: String,
}

impl ToSql for FunctionName {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i32(self.oid);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::REGPROC | Type::REGPROCEDURE)
    }

    to_sql_checked!();
}

impl ToSqlText for FunctionName {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _: &FormatOptions,
    ) -> Result<IsNull, BoxError> {
        out.put_slice(self.text.as_bytes());
        Ok(IsNull::No)
    }
}

/// A JSON, JSONB or UUID value kept as its text; binary forms are built as clients expect.
#[derive(Debug)]
pub struct TextTyped<'a>(pub &'a str);

impl ToSql for TextTyped<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match *ty {
            Type::JSONB => {
                // JSONB's binary form is a version byte, then the JSON text.
                out.put_u8(1);
                out.put_slice(self.0.as_bytes());
            }
            Type::UUID => {
                let hex: String = self.0.chars().filter(|c| *c != '-').collect();
                out.put_slice(&hex::decode(hex)?);
            }
            _ => out.put_slice(self.0.as_bytes()),
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB | Type::UUID)
    }

    to_sql_checked!();
}

impl ToSqlText for TextTyped<'_> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _: &FormatOptions,
    ) -> Result<IsNull, BoxError> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

/// A NUMERIC value: an Arrow decimal's unscaled integer and scale. PostgreSQL keeps a value's
/// display scale through both encodings, so zero at scale 2 reads back as `0.00`.
#[derive(Debug)]
pub struct PgNumeric(NumericDigits);

impl PgNumeric {
    pub fn new(unscaled: impl Into<i256>, scale: i8) -> Self {
        PgNumeric(NumericDigits::new(unscaled.into(), scale))
    }
}

impl ToSql for PgNumeric {
    /// PostgreSQL's binary numeric: the count of base-10000 digit groups, the weight of the
    /// first, the sign, the display scale, then the groups.
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        const POSITIVE: u16 = 0x0000;
        const NEGATIVE: u16 = 0x4000;
        let NumericGroups { groups, weight } = self.0.groups();
        out.put_u16(groups.len() as u16);
        out.put_i16(weight);
        out.put_u16(if self.0.negative { NEGATIVE } else { POSITIVE });
        out.put_u16(self.0.fraction.len() as u16);
        for group in groups {
            out.put_i16(group);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::NUMERIC)
    }

    to_sql_checked!();
}

impl ToSqlText for PgNumeric {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _: &FormatOptions,
    ) -> Result<IsNull, BoxError> {
        out.put_slice(self.0.text().as_bytes());
        Ok(IsNull::No)
    }
}

fn push_two_digits(value: u32, out: &mut BytesMut) {
    out.put_u8(b'0' + (value / 10 % 10) as u8);
    out.put_u8(b'0' + (value % 10) as u8);
}

/// `YYYY-MM-DD` for years 1 to 9999 (what nearly every date is), written without a format
/// string: result and COPY encoding spend most of their time on dates otherwise. False for
/// other years, which take chrono's formatting.
fn push_iso_date(date: chrono::NaiveDate, out: &mut BytesMut) -> bool {
    use chrono::Datelike;
    let year = date.year();
    if !(1..=9999).contains(&year) {
        return false;
    }
    let year = year as u32;
    push_two_digits(year / 100, out);
    push_two_digits(year % 100, out);
    out.put_u8(b'-');
    push_two_digits(date.month(), out);
    out.put_u8(b'-');
    push_two_digits(date.day(), out);
    true
}

/// A date printed as PostgreSQL prints it with DateStyle ISO.
#[derive(Debug)]
pub struct PgDate(pub chrono::NaiveDate);

impl ToSql for PgDate {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::DATE)
    }

    to_sql_checked!();
}

impl ToSqlText for PgDate {
    fn to_sql_text(
        &self,
        ty: &Type,
        out: &mut BytesMut,
        options: &FormatOptions,
    ) -> Result<IsNull, BoxError> {
        if push_iso_date(self.0, out) {
            Ok(IsNull::No)
        } else {
            self.0.to_sql_text(ty, out, options)
        }
    }
}

/// A timestamp printed as PostgreSQL prints it with DateStyle ISO: fractional seconds without
/// trailing zeros, and `+00` for timestamptz (sessions run in UTC).
#[derive(Debug)]
pub enum PgTimestamp {
    Naive(chrono::NaiveDateTime),
    Utc(chrono::DateTime<chrono::Utc>),
}

impl ToSql for PgTimestamp {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            PgTimestamp::Naive(t) => t.to_sql(ty, out),
            PgTimestamp::Utc(t) => t.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }

    to_sql_checked!();
}

impl ToSqlText for PgTimestamp {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _: &FormatOptions,
    ) -> Result<IsNull, BoxError> {
        let (naive, zone) = match self {
            PgTimestamp::Naive(t) => (*t, ""),
            PgTimestamp::Utc(t) => (t.naive_utc(), "+00"),
        };
        if !push_iso_date(naive.date(), out) {
            out.put_slice(naive.format("%Y-%m-%d").to_string().as_bytes());
        }
        use chrono::Timelike;
        out.put_u8(b' ');
        push_two_digits(naive.hour(), out);
        out.put_u8(b':');
        push_two_digits(naive.minute(), out);
        out.put_u8(b':');
        push_two_digits(naive.second(), out);
        let micros = naive.and_utc().timestamp_subsec_micros();
        if micros != 0 {
            out.put_slice(format!(".{micros:06}").trim_end_matches('0').as_bytes());
        }
        out.put_slice(zone.as_bytes());
        Ok(IsNull::No)
    }
}

/// An interval: months, days and microseconds, printed in PostgreSQL's `postgres` style and
/// sent in binary as PostgreSQL's three fields.
#[derive(Debug)]
pub struct PgInterval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl ToSql for PgInterval {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.micros);
        out.put_i32(self.days);
        out.put_i32(self.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INTERVAL)
    }

    to_sql_checked!();
}

impl ToSqlText for PgInterval {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _: &FormatOptions,
    ) -> Result<IsNull, BoxError> {
        let text = crate::model::interval_text::interval_text(self.months, self.days, self.micros);
        out.put_slice(text.as_bytes());
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: impl ToSqlText, ty: &Type) -> String {
        let mut out = BytesMut::new();
        value
            .to_sql_text(ty, &mut out, &FormatOptions::default())
            .unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn dates_and_timestamps_print_in_iso_style() {
        let day = chrono::NaiveDate::from_ymd_opt(7, 3, 9).unwrap();
        assert_eq!(text(PgDate(day), &Type::DATE), "0007-03-09");
        let at = day.and_hms_micro_opt(4, 5, 6, 120_000).unwrap();
        assert_eq!(
            text(PgTimestamp::Naive(at), &Type::TIMESTAMP),
            "0007-03-09 04:05:06.12"
        );
        let utc = chrono::DateTime::from_naive_utc_and_offset(at, chrono::Utc);
        assert_eq!(
            text(PgTimestamp::Utc(utc), &Type::TIMESTAMPTZ),
            "0007-03-09 04:05:06.12+00"
        );
        let late = chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        assert_eq!(text(PgDate(late), &Type::DATE), "2026-12-31");
    }

    #[test]
    fn numerics_read_back_with_their_scale_in_binary() {
        use postgres_types::FromSql;
        for (unscaled, scale, expected) in [
            (1234567, 2, "12345.67"),
            (-5, 3, "-0.005"),
            (0, 2, "0.00"),
            (1, -5, "100000"),
            (10_000_000_000_i128, 0, "10000000000"),
        ] {
            let mut out = BytesMut::new();
            PgNumeric::new(unscaled, scale)
                .to_sql(&Type::NUMERIC, &mut out)
                .unwrap();
            let read = rust_decimal::Decimal::from_sql(&Type::NUMERIC, &out).unwrap();
            assert_eq!(read.to_string(), expected);
            assert_eq!(
                text(PgNumeric::new(unscaled, scale), &Type::NUMERIC),
                expected
            );
        }
    }
}
