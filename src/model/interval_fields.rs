//! Interval literals with a field qualifier (`INTERVAL '1 2' DAY TO HOUR`, `'1.234' SECOND(2)`),
//! read as PostgreSQL reads them: a number written without a unit counts in the qualifier's
//! last field (`'1' YEAR TO MONTH` is one month), two such numbers are days and hours only under
//! `DAY TO HOUR`, `MINUTE TO SECOND` reads `2:03` as minutes and seconds, and every field below
//! the last is dropped (`'1 2:03:04' DAY TO HOUR` is `1 day 02:00:00`), the seconds rounded to
//! the precision given.

use super::interval_text::{IntervalInputError, IntervalParts, parse_interval};

/// A field of an interval qualifier, from the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IntervalField {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl IntervalField {
    fn unit(self) -> &'static str {
        match self {
            IntervalField::Year => "years",
            IntervalField::Month => "months",
            IntervalField::Day => "days",
            IntervalField::Hour => "hours",
            IntervalField::Minute => "minutes",
            IntervalField::Second => "seconds",
        }
    }
}

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;

fn is_bare_number(token: &str) -> bool {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
}

/// Reads `text` under the qualifier `leading TO last` (`last` equal to `leading` for a single
/// field), with `second_precision` fractional digits of seconds kept when given.
pub fn parse_qualified_interval(
    text: &str,
    leading: IntervalField,
    last: IntervalField,
    second_precision: Option<u32>,
) -> Result<IntervalParts, IntervalInputError> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let parts = match tokens.as_slice() {
        [number] if is_bare_number(number) => parse_interval(&format!("{number} {}", last.unit()))?,
        [days, hours] if is_bare_number(days) && is_bare_number(hours) => {
            if (leading, last) != (IntervalField::Day, IntervalField::Hour) {
                return Err(IntervalInputError::Syntax);
            }
            parse_interval(&format!("{days} days {hours} hours"))?
        }
        _ if (leading, last) == (IntervalField::Minute, IntervalField::Second) => {
            // `m:s` rather than `h:m` when the time has one colon and no fraction.
            let read: Vec<String> = tokens
                .iter()
                .map(|token| {
                    let unsigned = token.trim_start_matches(['+', '-']);
                    if unsigned.matches(':').count() == 1 && !unsigned.contains('.') {
                        let sign = &token[..token.len() - unsigned.len()];
                        format!("{sign}00:{unsigned}")
                    } else {
                        (*token).to_owned()
                    }
                })
                .collect();
            parse_interval(&read.join(" "))?
        }
        _ => parse_interval(text)?,
    };
    truncated(parts, last, second_precision)
}

/// `parts` without the fields below `last`, seconds rounded to `second_precision` digits.
fn truncated(
    mut parts: IntervalParts,
    last: IntervalField,
    second_precision: Option<u32>,
) -> Result<IntervalParts, IntervalInputError> {
    match last {
        IntervalField::Year => {
            parts.months -= parts.months % 12;
            parts.days = 0;
            parts.micros = 0;
        }
        IntervalField::Month => {
            parts.days = 0;
            parts.micros = 0;
        }
        IntervalField::Day => parts.micros = 0,
        IntervalField::Hour => parts.micros -= parts.micros % MICROS_PER_HOUR,
        IntervalField::Minute => parts.micros -= parts.micros % MICROS_PER_MINUTE,
        IntervalField::Second => {
            if let Some(digits) = second_precision.filter(|d| *d < 6) {
                let step = 10_i64.pow(6 - digits);
                let rest = parts.micros % step;
                parts.micros -= rest;
                // Half away from zero, as PostgreSQL rounds.
                if rest.abs() * 2 >= step {
                    parts.micros = parts
                        .micros
                        .checked_add(step * rest.signum())
                        .ok_or(IntervalInputError::OutOfRange)?;
                }
            }
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::IntervalField::*;
    use super::*;

    fn read(text: &str, leading: IntervalField, last: IntervalField) -> (i32, i32, i64) {
        let p = parse_qualified_interval(text, leading, last, None).unwrap();
        (p.months, p.days, p.micros)
    }

    #[test]
    fn a_bare_number_counts_in_the_last_field() {
        assert_eq!(read("1", Year, Month), (1, 0, 0));
        assert_eq!(read("1.5", Year, Year), (12, 0, 0));
        assert_eq!(read("1", Hour, Hour), (0, 0, MICROS_PER_HOUR));
    }

    #[test]
    fn two_bare_numbers_are_days_and_hours_only_under_day_to_hour() {
        assert_eq!(read("123 11", Day, Hour), (0, 123, 11 * MICROS_PER_HOUR));
        assert!(parse_qualified_interval("1 2", Day, Minute, None).is_err());
        assert!(parse_qualified_interval("1 2", Minute, Second, None).is_err());
    }

    #[test]
    fn fields_below_the_last_are_dropped() {
        assert_eq!(read("1 2:03:04", Day, Hour), (0, 1, 2 * MICROS_PER_HOUR));
        assert_eq!(
            read("1 2:03:04", Hour, Minute),
            (0, 1, 2 * MICROS_PER_HOUR + 3 * MICROS_PER_MINUTE)
        );
        assert_eq!(read("5 4:3:2", Day, Day), (0, 5, 0));
    }

    #[test]
    fn minute_to_second_reads_one_colon_as_minutes_and_seconds() {
        assert_eq!(
            read("1 2:03", Minute, Second),
            (0, 1, 2 * MICROS_PER_MINUTE + 3_000_000)
        );
        assert_eq!(
            read("1 2:03", Hour, Second),
            (0, 1, 2 * MICROS_PER_HOUR + 3 * MICROS_PER_MINUTE)
        );
    }

    #[test]
    fn rounding_past_the_largest_interval_is_out_of_range() {
        assert_eq!(
            parse_qualified_interval("9223372036854.7", Second, Second, Some(0)),
            Err(IntervalInputError::OutOfRange)
        );
    }

    #[test]
    fn seconds_round_to_the_precision_given() {
        let p = parse_qualified_interval("1.234", Second, Second, Some(2)).unwrap();
        assert_eq!(p.micros, 1_230_000);
        let p = parse_qualified_interval("12:34.5678", Minute, Second, Some(2)).unwrap();
        assert_eq!(p.micros, 12 * MICROS_PER_MINUTE + 34_570_000);
    }
}
