//! `to_char` with PostgreSQL's template patterns. DataFusion's function of that name takes
//! strftime formats, so `to_char(now(), 'YYYY')` answered `YYYY`; this one reads PostgreSQL's
//! date/time patterns (`YYYY-MM-DD HH24:MI:SS`, `FMMonth`, `DDth`, quoted text) and numeric
//! patterns (`9`, `0`, `.`, `,`, `S`, `MI`, `PL`, `SG`, `FM`), as PostgreSQL 15 formats them.

use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ScalarUDF, Signature, TypeSignature, Volatility};
use rust_decimal::{Decimal, RoundingStrategy};

use super::functions::vectorized;

pub(super) fn to_char() -> ScalarUDF {
    // Tried in order: a zone-aware timestamp must not be coerced to a naive one, nor a
    // decimal to a float.
    let shapes: Vec<TypeSignature> = [
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Date32,
        DataType::Int64,
        DataType::Decimal128(38, 10),
        DataType::Float64,
    ]
    .into_iter()
    .map(|t| TypeSignature::Exact(vec![t, DataType::Utf8]))
    .collect();
    vectorized(
        "to_char",
        Signature::one_of(shapes, Volatility::Immutable),
        DataType::Utf8,
        |args| {
            let patterns = args[1].as_string::<i32>();
            let mut out = StringBuilder::with_capacity(args[0].len(), args[0].len() * 16);
            match args[0].data_type() {
                DataType::Timestamp(..) | DataType::Date32 => {
                    let zone = matches!(args[0].data_type(), DataType::Timestamp(_, Some(_)));
                    let micros = cast(&args[0], &DataType::Timestamp(TimeUnit::Microsecond, None))?;
                    let micros = micros
                        .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
                    for row in 0..micros.len() {
                        let at = (!micros.is_null(row))
                            .then(|| chrono::DateTime::from_timestamp_micros(micros.value(row)))
                            .flatten();
                        match (at, patterns.is_valid(row)) {
                            (Some(at), true) => out.append_value(format_datetime(
                                at.naive_utc(),
                                patterns.value(row),
                                zone,
                            )),
                            _ => out.append_null(),
                        }
                    }
                }
                _ => {
                    let text = cast(&args[0], &DataType::Utf8)?;
                    let text = text.as_string::<i32>();
                    for row in 0..text.len() {
                        if text.is_null(row) || patterns.is_null(row) {
                            out.append_null();
                            continue;
                        }
                        let value: Decimal = text
                            .value(row)
                            .parse()
                            .or_else(|_| Decimal::from_scientific(text.value(row)))
                            .map_err(|_| {
                                DataFusionError::Execution(format!(
                                    "to_char cannot format {}",
                                    text.value(row)
                                ))
                            })?;
                        out.append_value(format_number(value, patterns.value(row)));
                    }
                }
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        },
    )
}

/// How a name pattern's letters are cased: `MONTH`, `Month`, `month`.
#[derive(Clone, Copy)]
enum Case {
    Upper,
    Capitalized,
    Lower,
}

fn case_of(pattern: &str) -> Case {
    let mut chars = pattern.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_uppercase() && b.is_uppercase() => Case::Upper,
        (Some(a), _) if a.is_uppercase() => Case::Capitalized,
        _ => Case::Lower,
    }
}

fn cased(word: &str, case: Case) -> String {
    match case {
        Case::Upper => word.to_uppercase(),
        Case::Lower => word.to_lowercase(),
        Case::Capitalized => word.to_owned(),
    }
}

/// The date/time patterns, longest first so that `HH24` wins over `HH` and `YYYY` over `YY`.
const DATETIME_PATTERNS: [&str; 48] = [
    "A.M.", "P.M.", "B.C.", "A.D.", "Y,YYY", "HH24", "HH12", "SSSSS", "SSSS", "YYYY", "IYYY",
    "MONTH", "IDDD", "YYY", "IYY", "MON", "DAY", "DDD", "FF1", "FF2", "FF3", "FF4", "FF5", "FF6",
    "HH", "MI", "SS", "MS", "US", "AM", "PM", "BC", "AD", "YY", "IY", "MM", "DY", "DD", "ID", "IW",
    "WW", "CC", "RM", "TZ", "OF", "Y", "I", "D",
];

const SINGLE_LETTER: [&str; 5] = ["W", "J", "Q", "Y", "D"];

fn ordinal_suffix(n: i64) -> &'static str {
    match (n % 100, n % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const ROMAN_MONTHS: [&str; 12] = [
    "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII",
];

/// Formats `at` with a PostgreSQL date/time template.
pub(super) fn format_datetime(at: NaiveDateTime, pattern: &str, with_zone: bool) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().collect();
        let upper = rest.to_uppercase();
        let fill_mode = upper.starts_with("FM");
        let start = if fill_mode { i + 2 } else { i };
        let rest: String = chars[start..].iter().collect();
        let upper = rest.to_uppercase();
        let matched = DATETIME_PATTERNS
            .iter()
            .chain(SINGLE_LETTER.iter())
            .find(|p| upper.starts_with(**p));
        let Some(&name) = matched else {
            if fill_mode {
                i += 2;
                continue;
            }
            match chars[i] {
                '"' => {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        if chars[i] == '\\' && i + 1 < chars.len() {
                            i += 1;
                        }
                        out.push(chars[i]);
                        i += 1;
                    }
                    i += 1;
                }
                '\\' if i + 1 < chars.len() => {
                    out.push(chars[i + 1]);
                    i += 2;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
            continue;
        };
        let written: String = rest.chars().take(name.chars().count()).collect();
        let case = case_of(&written);
        let mut next = start + name.chars().count();
        let number = |value: i64, width: usize| match fill_mode {
            true => value.to_string(),
            false => format!("{value:0width$}"),
        };
        let padded_name = |word: &str| match fill_mode {
            true => cased(word, case),
            false => format!("{:<9}", cased(word, case)),
        };
        let year = at.year() as i64;
        let iso = at.iso_week();
        let hour12 = match at.hour() % 12 {
            0 => 12,
            h => h,
        } as i64;
        let (text, numeric) = match name {
            "HH24" => (number(at.hour() as i64, 2), Some(at.hour() as i64)),
            "HH12" | "HH" => (number(hour12, 2), Some(hour12)),
            "MI" => (number(at.minute() as i64, 2), Some(at.minute() as i64)),
            "SS" => (number(at.second() as i64, 2), Some(at.second() as i64)),
            "SSSS" | "SSSSS" => {
                let seconds = at.num_seconds_from_midnight() as i64;
                (seconds.to_string(), Some(seconds))
            }
            "MS" => (number((at.nanosecond() / 1_000_000) as i64, 3), None),
            "US" => (number((at.nanosecond() / 1_000) as i64, 6), None),
            "FF1" | "FF2" | "FF3" | "FF4" | "FF5" | "FF6" => {
                let digits = name[2..].parse::<u32>().unwrap_or(6);
                let value = (at.nanosecond() / 1_000) / 10u32.pow(6 - digits);
                (format!("{value:0width$}", width = digits as usize), None)
            }
            "AM" | "PM" => (cased(if at.hour() < 12 { "AM" } else { "PM" }, case), None),
            "A.M." | "P.M." => (
                cased(if at.hour() < 12 { "A.M." } else { "P.M." }, case),
                None,
            ),
            "BC" | "AD" => (cased(if year > 0 { "AD" } else { "BC" }, case), None),
            "B.C." | "A.D." => (cased(if year > 0 { "A.D." } else { "B.C." }, case), None),
            "Y,YYY" => (format!("{},{:03}", year / 1000, year % 1000), Some(year)),
            "YYYY" => (number(year, 4), Some(year)),
            "YYY" => (number(year % 1000, 3), Some(year % 1000)),
            "YY" => (number(year % 100, 2), Some(year % 100)),
            "Y" => (number(year % 10, 1), Some(year % 10)),
            "IYYY" => (number(iso.year() as i64, 4), Some(iso.year() as i64)),
            "IYY" => (number(iso.year() as i64 % 1000, 3), None),
            "IY" => (number(iso.year() as i64 % 100, 2), None),
            "I" => (number(iso.year() as i64 % 10, 1), None),
            "MONTH" => (padded_name(MONTHS[at.month0() as usize]), None),
            "MON" => (cased(&MONTHS[at.month0() as usize][..3], case), None),
            "MM" => (number(at.month() as i64, 2), Some(at.month() as i64)),
            "DAY" => (
                padded_name(DAYS[at.weekday().num_days_from_sunday() as usize]),
                None,
            ),
            "DY" => (
                cased(
                    &DAYS[at.weekday().num_days_from_sunday() as usize][..3],
                    case,
                ),
                None,
            ),
            "DDD" => (number(at.ordinal() as i64, 3), Some(at.ordinal() as i64)),
            "IDDD" => {
                let day = (iso.week() as i64 - 1) * 7 + at.weekday().number_from_monday() as i64;
                (number(day, 3), Some(day))
            }
            "DD" => (number(at.day() as i64, 2), Some(at.day() as i64)),
            "D" => {
                let day = at.weekday().number_from_sunday() as i64;
                (day.to_string(), Some(day))
            }
            "ID" => {
                let day = at.weekday().number_from_monday() as i64;
                (day.to_string(), Some(day))
            }
            "W" => {
                let week = (at.day() as i64 - 1) / 7 + 1;
                (week.to_string(), Some(week))
            }
            "WW" => {
                let week = (at.ordinal() as i64 - 1) / 7 + 1;
                (number(week, 2), Some(week))
            }
            "IW" => (number(iso.week() as i64, 2), Some(iso.week() as i64)),
            "CC" => {
                let century = if year > 0 {
                    (year + 99) / 100
                } else {
                    -((99 - year) / 100)
                };
                (number(century, 2), Some(century))
            }
            "J" => {
                let julian = at.num_days_from_ce() as i64 + 1_721_425;
                (julian.to_string(), Some(julian))
            }
            "Q" => {
                let quarter = at.month0() as i64 / 3 + 1;
                (quarter.to_string(), Some(quarter))
            }
            "RM" => {
                let roman = cased(ROMAN_MONTHS[at.month0() as usize], case);
                (
                    match fill_mode {
                        true => roman,
                        false => format!("{roman:<4}"),
                    },
                    None,
                )
            }
            "TZ" => (cased(if with_zone { "UTC" } else { "" }, case), None),
            "OF" => ((if with_zone { "+00" } else { "" }).to_owned(), None),
            _ => (String::new(), None),
        };
        out.push_str(&text);
        // An ordinal suffix after a number: `DDth` is `05th`, `FMDDth` is `5th`.
        let suffix: String = chars[next..].iter().take(2).collect();
        if let Some(value) = numeric
            && (suffix == "th" || suffix == "TH")
        {
            let ordinal = ordinal_suffix(value);
            out.push_str(&match suffix.as_str() {
                "TH" => ordinal.to_uppercase(),
                _ => ordinal.to_owned(),
            });
            next += 2;
        }
        i = next;
    }
    out
}

/// One element of a numeric template.
#[derive(Clone, Copy, PartialEq)]
enum NumberPart {
    Nine,
    Zero,
    Point,
    Group,
    /// `S`: the sign, `+` or `-`.
    Sign,
    /// `MI`: `-` for a negative value, else a space.
    Minus,
    /// `PL`: `+` for a positive value, else a space.
    Plus,
    /// `SG`: `+` or `-`, where it stands.
    SignHere,
    Literal(char),
}

/// Formats `value` with a PostgreSQL numeric template.
pub(super) fn format_number(value: Decimal, pattern: &str) -> String {
    let mut parts = Vec::new();
    let mut fill_mode = false;
    let upper: Vec<char> = pattern.to_uppercase().chars().collect();
    let mut i = 0;
    while i < upper.len() {
        let two: String = upper[i..].iter().take(2).collect();
        let (part, width) = match (upper[i], two.as_str()) {
            (_, "FM") => {
                fill_mode = true;
                i += 2;
                continue;
            }
            (_, "MI") => (NumberPart::Minus, 2),
            (_, "PL") => (NumberPart::Plus, 2),
            (_, "SG") => (NumberPart::SignHere, 2),
            ('9', _) => (NumberPart::Nine, 1),
            ('0', _) => (NumberPart::Zero, 1),
            ('.' | 'D', _) => (NumberPart::Point, 1),
            (',' | 'G', _) => (NumberPart::Group, 1),
            ('S', _) => (NumberPart::Sign, 1),
            (c, _) => (NumberPart::Literal(c), 1),
        };
        parts.push(part);
        i += width;
    }
    let point = parts.iter().position(|p| *p == NumberPart::Point);
    let is_digit = |p: &&NumberPart| matches!(p, NumberPart::Nine | NumberPart::Zero);
    let integer_slots = parts[..point.unwrap_or(parts.len())]
        .iter()
        .filter(is_digit)
        .count();
    let fraction_slots = point.map_or(0, |p| parts[p..].iter().filter(is_digit).count());
    let negative = value.is_sign_negative() && !value.is_zero();
    let rounded = value.abs().round_dp_with_strategy(
        fraction_slots as u32,
        RoundingStrategy::MidpointAwayFromZero,
    );
    let text = format!("{rounded:.fraction_slots$}");
    let (integer, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let integer = integer.trim_start_matches('0');
    let overflow = integer.len() > integer_slots;
    let integer_digits: Vec<char> = integer.chars().collect();
    let fraction_digits: Vec<char> = fraction.chars().collect();
    let explicit_sign = parts.iter().any(|p| {
        matches!(
            p,
            NumberPart::Sign | NumberPart::Minus | NumberPart::Plus | NumberPart::SignHere
        )
    });
    let first_zero = parts.iter().position(|p| *p == NumberPart::Zero);
    // A leading `S` stands next to the first digit, as the implicit sign does.
    let leading_sign = parts.first() == Some(&NumberPart::Sign);
    let sign_char = match (negative, leading_sign) {
        (true, _) => '-',
        (false, true) => '+',
        (false, false) => ' ',
    };
    let mut out = String::new();
    let mut integer_slot = 0;
    let mut fraction_slot = 0;
    let mut started = false;
    let mut sign_written = explicit_sign && !leading_sign;
    for (index, part) in parts.iter().enumerate() {
        let in_fraction = point.is_some_and(|p| index > p);
        match part {
            NumberPart::Nine | NumberPart::Zero if overflow => {
                if !sign_written {
                    out.push(sign_char);
                    sign_written = true;
                }
                out.push('#')
            }
            NumberPart::Nine | NumberPart::Zero if !in_fraction => {
                let from_right = integer_slots - integer_slot - 1;
                integer_slot += 1;
                let digit = (from_right < integer_digits.len())
                    .then(|| integer_digits[integer_digits.len() - 1 - from_right]);
                let keep_zero = first_zero.is_some_and(|z| z <= index);
                match digit {
                    Some(d) => {
                        if !sign_written {
                            out.push(sign_char);
                            sign_written = true;
                        }
                        started = true;
                        out.push(d);
                    }
                    None if keep_zero => {
                        if !sign_written {
                            out.push(sign_char);
                            sign_written = true;
                        }
                        started = true;
                        out.push('0');
                    }
                    None if !fill_mode => out.push(' '),
                    None => {}
                }
            }
            NumberPart::Nine | NumberPart::Zero => {
                let digit = fraction_digits.get(fraction_slot).copied().unwrap_or('0');
                fraction_slot += 1;
                out.push(digit);
            }
            NumberPart::Point if overflow => out.push('.'),
            NumberPart::Point => {
                if !sign_written {
                    out.push(sign_char);
                    sign_written = true;
                }
                out.push('.');
            }
            NumberPart::Group if started => out.push(','),
            NumberPart::Group if !fill_mode => out.push(' '),
            NumberPart::Group => {}
            NumberPart::Sign if leading_sign && index == 0 => {}
            NumberPart::Sign | NumberPart::SignHere => out.push(if negative { '-' } else { '+' }),
            NumberPart::Minus => match (negative, fill_mode) {
                (true, _) => out.push('-'),
                (false, false) => out.push(' '),
                (false, true) => {}
            },
            NumberPart::Plus => match (negative, fill_mode) {
                (false, _) => out.push('+'),
                (true, false) => out.push(' '),
                (true, true) => {}
            },
            NumberPart::Literal(c) => out.push(*c),
        }
    }
    if fill_mode {
        // Fill mode drops the unused trailing `9` digits of the fraction (PostgreSQL keeps
        // the point: `to_char(12, 'FM999.99')` is `12.`).
        let last_zero = parts.iter().rposition(|p| *p == NumberPart::Zero);
        let keep_from = point.map(|p| last_zero.filter(|z| *z > p).map_or(p, |z| z));
        if let Some(keep_from) = keep_from
            && parts[keep_from + 1..]
                .iter()
                .all(|p| matches!(p, NumberPart::Nine | NumberPart::Zero))
        {
            let drop = parts[keep_from + 1..].len();
            let kept = out.len() - drop;
            let tail: String = out[kept..].trim_end_matches('0').to_owned();
            out.truncate(kept);
            out.push_str(&tail);
        }
        if sign_char == ' ' {
            out = out.trim_start().to_owned();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn datetime_patterns_format_as_postgresql_does() {
        // Expected strings are PostgreSQL 15's output for the same calls.
        assert_eq!(
            format_datetime(
                at("2024-03-05 14:07:09.123456"),
                "YYYY-MM-DD HH24:MI:SS.MS US Day Dy Month Mon DDD D W WW IW Q CC HH12 AM pm FMDay FMMonth| DDth FMDDth J",
                false
            ),
            "2024-03-05 14:07:09.123 123456 Tuesday   Tue March     Mar 065 3 1 10 10 1 21 02 PM pm Tuesday March| 05th 5th 2460375"
        );
        assert_eq!(
            format_datetime(at("2024-01-07 00:00:00"), "YYYY \"week\" IW, \"Q\"Q", false),
            "2024 week 01, Q1"
        );
        assert_eq!(
            format_datetime(at("2024-01-01 00:00:00"), "YYYY TZ OF", true),
            "2024 UTC +00"
        );
    }

    #[test]
    fn numeric_patterns_format_as_postgresql_does() {
        let cases = [
            ("123.456", "999.99", " 123.46"),
            ("-12", "999", " -12"),
            ("5", "000", " 005"),
            ("123.456", "FM999.99", "123.46"),
            ("12", "FM999.00", "12.00"),
            ("1234567", "9,999,999", " 1,234,567"),
            ("12345", "999", " ###"),
            ("-5.5", "S99.9", " -5.5"),
            ("5.5", "99.9MI", " 5.5 "),
            ("-5.5", "99.9MI", " 5.5-"),
            ("0.5", "9.99", "  .50"),
            ("0.5", "0.99", " 0.50"),
            ("12", "FM9990.00", "12.00"),
            ("-0.25", "FM990.00", "-0.25"),
        ];
        for (value, pattern, expected) in cases {
            assert_eq!(
                format_number(value.parse().unwrap(), pattern),
                expected,
                "to_char({value}, '{pattern}')"
            );
        }
    }
}
