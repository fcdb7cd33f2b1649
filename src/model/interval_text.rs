//! Intervals as PostgreSQL prints them with its default `IntervalStyle` (`postgres`): years,
//! months and days as words (`1 year 2 mons 3 days`), then the time as `[-]HH:MM:SS[.ffffff]`
//! when it is not zero or nothing else was printed (`00:00:00`).

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// The text of the interval `months`, `days` and `micros` (its three independent parts, as
/// PostgreSQL keeps them).
pub fn interval_text(months: i32, days: i32, micros: i64) -> String {
    let mut out = String::new();
    // A part after a negative one is signed `+` when positive, as PostgreSQL writes it.
    let mut after_negative = false;
    for (value, unit) in [
        (i64::from(months / 12), "year"),
        (i64::from(months % 12), "mon"),
        (i64::from(days), "day"),
    ] {
        if value == 0 {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        if after_negative && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value == 1 { "" } else { "s" }
        ));
        after_negative = value < 0;
    }
    if out.is_empty() || micros != 0 {
        if !out.is_empty() {
            out.push(' ');
        }
        if micros < 0 {
            out.push('-');
        } else if after_negative {
            out.push('+');
        }
        let micros = micros.unsigned_abs();
        let hours = micros / MICROS_PER_HOUR as u64;
        let minutes = micros % MICROS_PER_HOUR as u64 / MICROS_PER_MINUTE as u64;
        let seconds = micros % MICROS_PER_MINUTE as u64 / MICROS_PER_SECOND as u64;
        let fraction = micros % MICROS_PER_SECOND as u64;
        out.push_str(&format!("{hours:02}:{minutes:02}:{seconds:02}"));
        if fraction != 0 {
            out.push_str(format!(".{fraction:06}").trim_end_matches('0'));
        }
    }
    out
}

/// A difference of two timestamps as PostgreSQL makes it an interval: whole days, and the
/// rest as time (`timestamp - timestamp` never yields months).
pub fn duration_parts(micros: i64) -> (i32, i64) {
    let days = micros / MICROS_PER_DAY;
    (
        i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX }),
        micros % MICROS_PER_DAY,
    )
}

/// An interval's three parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalParts {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

/// Why text is not an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntervalInputError {
    /// Not in any form PostgreSQL reads (22007).
    Syntax,
    /// A part past what an interval holds (22015).
    OutOfRange,
}

/// A number as written: its whole part and its fraction, both carrying its sign.
#[derive(Debug, Clone, Copy)]
struct Number {
    whole: i64,
    fraction: f64,
}

impl Number {
    fn parse(text: &str) -> Option<Number> {
        let (negative, digits) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let valid = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !valid(whole) || !valid(fraction) {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let fraction: f64 = if fraction.is_empty() {
            0.0
        } else {
            format!("0.{fraction}").parse().ok()?
        };
        let sign = if negative { -1 } else { 1 };
        Some(Number {
            whole: whole * sign,
            fraction: fraction * sign as f64,
        })
    }
}

/// The parts as they are summed, wide enough that no sum of valid input overflows before the
/// result is checked.
#[derive(Debug, Default)]
struct Sum {
    months: i128,
    days: i128,
    micros: i128,
}

impl Sum {
    fn add_micros(&mut self, value: Number, unit: i64) {
        self.micros += i128::from(value.whole) * i128::from(unit)
            + (value.fraction * unit as f64).round_ties_even() as i128;
    }

    fn add_days(&mut self, value: Number, days_per_unit: i64) {
        let days = value.fraction * days_per_unit as f64;
        self.days += i128::from(value.whole) * i128::from(days_per_unit) + days.trunc() as i128;
        self.micros += (days.fract() * MICROS_PER_DAY as f64).round_ties_even() as i128;
    }

    /// Months; a fraction of a month cascades into days (30 to a month) and time.
    fn add_months(&mut self, value: Number) {
        self.months += i128::from(value.whole);
        self.add_days(
            Number {
                whole: 0,
                fraction: value.fraction,
            },
            30,
        );
    }

    /// Years (of `years_per_unit`); a fraction of one becomes whole months, rounded.
    fn add_years(&mut self, value: Number, years_per_unit: i64) {
        self.months += i128::from(value.whole) * i128::from(years_per_unit) * 12
            + (value.fraction * (years_per_unit * 12) as f64).round_ties_even() as i128;
    }

    fn add(&mut self, value: Number, unit: &str) -> Result<(), IntervalInputError> {
        match unit {
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" | "useconds" => {
                self.add_micros(value, 1)
            }
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "mseconds" => {
                self.add_micros(value, 1_000)
            }
            "second" | "seconds" | "s" | "sec" | "secs" => {
                self.add_micros(value, MICROS_PER_SECOND)
            }
            "minute" | "minutes" | "m" | "min" | "mins" => {
                self.add_micros(value, MICROS_PER_MINUTE)
            }
            "hour" | "hours" | "h" | "hr" | "hrs" => self.add_micros(value, MICROS_PER_HOUR),
            "day" | "days" | "d" => self.add_days(value, 1),
            "week" | "weeks" | "w" => self.add_days(value, 7),
            "month" | "months" | "mon" | "mons" => self.add_months(value),
            "year" | "years" | "y" | "yr" | "yrs" => self.add_years(value, 1),
            "decade" | "decades" | "dec" | "decs" => self.add_years(value, 10),
            "century" | "centuries" | "c" | "cent" => self.add_years(value, 100),
            "millennium" | "millennia" | "mil" | "mils" => self.add_years(value, 1000),
            _ => return Err(IntervalInputError::Syntax),
        }
        Ok(())
    }

    /// `[+-]H:MM[:SS[.fraction]]`, or `[+-]M:SS.fraction`.
    fn add_time(&mut self, token: &str) -> Result<(), IntervalInputError> {
        let (sign, digits) = match token.as_bytes().first() {
            Some(b'-') => (-1, &token[1..]),
            Some(b'+') => (1, &token[1..]),
            _ => (1, token),
        };
        let mut fields = digits.split(':');
        let number = |field: Option<&str>| {
            field
                .filter(|f| !f.is_empty() && !f.starts_with(['+', '-']))
                .and_then(Number::parse)
                .ok_or(IntervalInputError::Syntax)
        };
        let zero = || Number {
            whole: 0,
            fraction: 0.0,
        };
        let first = number(fields.next())?;
        let second_field = fields.next();
        let second = number(second_field)?;
        let (hours, minutes, seconds) = match fields.next() {
            Some(field) => (first, second, number(Some(field))?),
            // Two fields with a fraction are minutes and seconds (`12:34.5678`).
            None if second_field.is_some_and(|f| f.contains('.')) => (zero(), first, second),
            None => (first, second, zero()),
        };
        if fields.next().is_some() || hours.fraction != 0.0 || minutes.fraction != 0.0 {
            return Err(IntervalInputError::Syntax);
        }
        let signed = |n: Number| Number {
            whole: n.whole * sign,
            fraction: n.fraction * sign as f64,
        };
        self.add_micros(signed(hours), MICROS_PER_HOUR);
        self.add_micros(signed(minutes), MICROS_PER_MINUTE);
        self.add_micros(signed(seconds), MICROS_PER_SECOND);
        Ok(())
    }

    fn finish(self, negate: bool) -> Result<IntervalParts, IntervalInputError> {
        let sign = if negate { -1 } else { 1 };
        let out_of_range = |_| IntervalInputError::OutOfRange;
        Ok(IntervalParts {
            months: i32::try_from(self.months * sign).map_err(out_of_range)?,
            days: i32::try_from(self.days * sign).map_err(out_of_range)?,
            micros: i64::try_from(self.micros * sign).map_err(out_of_range)?,
        })
    }
}

/// Reads an interval as PostgreSQL's `interval_in` does: `1 year 2 mons 3 days 04:05:06`,
/// `-1 days +01:00:00`, `1.5 hours`, `@ 1 hour ago`, `1 2:03:04` (days and time), `1-2`
/// (years and months), a bare number of seconds, and ISO 8601's `P1Y2M3DT4H5M6S`.
pub fn parse_interval(text: &str) -> Result<IntervalParts, IntervalInputError> {
    let text = text.trim().to_ascii_lowercase();
    if let Some(designators) = text.strip_prefix('p') {
        return parse_iso_8601(designators);
    }
    let text = text.strip_prefix('@').unwrap_or(&text);
    let mut tokens: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        // `1day` and `-2hours` are a number and a unit.
        match word.find(|c: char| c.is_ascii_alphabetic()) {
            Some(at) if at > 0 && !word[..at].contains(':') => {
                tokens.push(word[..at].to_owned());
                tokens.push(word[at..].to_owned());
            }
            _ => tokens.push(word.to_owned()),
        }
    }
    let negate = tokens.last().is_some_and(|t| t == "ago");
    if negate {
        tokens.pop();
    }
    if tokens.is_empty() {
        return Err(IntervalInputError::Syntax);
    }
    let mut sum = Sum::default();
    let mut at = 0;
    while at < tokens.len() {
        let token = &tokens[at];
        let next = tokens.get(at + 1).map(String::as_str);
        if token.contains(':') {
            sum.add_time(token)?;
            at += 1;
        } else if let Some((years, months)) = year_month(token) {
            sum.months += years * 12 + months;
            at += 1;
        } else if let Some(value) = Number::parse(token) {
            match next {
                Some(unit) if unit.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                    sum.add(value, unit)?;
                    at += 2;
                }
                // A number before a time is days; a number alone, seconds.
                Some(time) if time.contains(':') => {
                    sum.add_days(value, 1);
                    at += 1;
                }
                None => {
                    sum.add_micros(value, MICROS_PER_SECOND);
                    at += 1;
                }
                Some(_) => return Err(IntervalInputError::Syntax),
            }
        } else {
            return Err(IntervalInputError::Syntax);
        }
    }
    sum.finish(negate)
}

/// `Y-M`, the SQL standard's years and months (`1-2`, `-1-2`).
fn year_month(token: &str) -> Option<(i128, i128)> {
    let (negative, rest) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token.strip_prefix('+').unwrap_or(token)),
    };
    let (years, months) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(years) || !digits(months) {
        return None;
    }
    let sign = if negative { -1 } else { 1 };
    Some((
        years.parse::<i128>().ok()? * sign,
        months.parse::<i128>().ok()? * sign,
    ))
}

/// ISO 8601's `P[nY][nM][nW][nD][T[nH][nM][nS]]`, after the `P`.
fn parse_iso_8601(designators: &str) -> Result<IntervalParts, IntervalInputError> {
    let mut sum = Sum::default();
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    for c in designators.chars() {
        if c == 't' && number.is_empty() && !in_time {
            in_time = true;
            continue;
        }
        if c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && number.is_empty()) {
            number.push(c);
            continue;
        }
        let value = Number::parse(&number).ok_or(IntervalInputError::Syntax)?;
        number.clear();
        let unit = match (c, in_time) {
            ('y', false) => "years",
            ('m', false) => "months",
            ('w', false) => "weeks",
            ('d', false) => "days",
            ('h', true) => "hours",
            ('m', true) => "minutes",
            ('s', true) => "seconds",
            _ => return Err(IntervalInputError::Syntax),
        };
        sum.add(value, unit)?;
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(IntervalInputError::Syntax);
    }
    sum.finish(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_in_every_form_postgresql_reads() {
        let hour = MICROS_PER_HOUR;
        let minute = MICROS_PER_MINUTE;
        let parts = |months, days, micros| IntervalParts {
            months,
            days,
            micros,
        };
        for (text, expected) in [
            ("04:05:06", parts(0, 0, 4 * hour + 5 * minute + 6_000_000)),
            ("1 day 02:00:00", parts(0, 1, 2 * hour)),
            ("-1 days +01:00:00", parts(0, -1, hour)),
            (
                "1 year 2 mons 3 days 04:05:06",
                parts(14, 3, 4 * hour + 5 * minute + 6_000_000),
            ),
            ("3 MONS", parts(3, 0, 0)),
            ("1.5 days", parts(0, 1, 12 * hour)),
            ("1.5 months", parts(1, 15, 0)),
            ("1.5 years", parts(18, 0, 0)),
            ("2 weeks", parts(0, 14, 0)),
            ("1 decade 1 century", parts(1320, 0, 0)),
            ("@ 1 hour ago", parts(0, 0, -hour)),
            ("10", parts(0, 0, 10_000_000)),
            ("1:30", parts(0, 0, 90 * minute)),
            ("-04:05", parts(0, 0, -(4 * hour + 5 * minute))),
            ("1 2:03:04", parts(0, 1, 2 * hour + 3 * minute + 4_000_000)),
            ("1-2", parts(14, 0, 0)),
            ("1day 2h", parts(0, 1, 2 * hour)),
            ("15.25 seconds 5 ms 100 us", parts(0, 0, 15_255_100)),
            (
                "P1Y2M3DT4H5M6S",
                parts(14, 3, 4 * hour + 5 * minute + 6_000_000),
            ),
            ("PT1.5H", parts(0, 0, 90 * minute)),
            ("P1W", parts(0, 7, 0)),
        ] {
            assert_eq!(parse_interval(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn text_that_is_not_an_interval_is_refused() {
        for text in [
            "",
            "abc",
            "1 fortnight",
            "1 day day",
            "P",
            "PT",
            "1:2:3:4",
            "1.5:00",
            "ago",
        ] {
            assert_eq!(
                parse_interval(text),
                Err(IntervalInputError::Syntax),
                "{text}"
            );
        }
        assert_eq!(
            parse_interval("3000000000 days"),
            Err(IntervalInputError::OutOfRange)
        );
    }

    #[test]
    fn printed_intervals_read_back_as_themselves() {
        for (months, days, micros) in [
            (14, 3, 1_500_000),
            (0, -1, MICROS_PER_HOUR),
            (-1, 2, -5),
            (0, 0, 0),
        ] {
            let text = interval_text(months, days, micros);
            assert_eq!(
                parse_interval(&text),
                Ok(IntervalParts {
                    months,
                    days,
                    micros
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn intervals_print_as_postgresql_prints_them() {
        let hour = MICROS_PER_HOUR;
        for (months, days, micros, text) in [
            (0, 0, 0, "00:00:00"),
            (0, 0, 3 * hour, "03:00:00"),
            (0, 1, 2 * hour, "1 day 02:00:00"),
            (3, 0, 0, "3 mons"),
            (14, 3, 0, "1 year 2 mons 3 days"),
            (
                31,
                21,
                27 * hour + 11 * MICROS_PER_MINUTE + 28_500_000,
                "2 years 7 mons 21 days 27:11:28.5",
            ),
            (0, 0, 42 * MICROS_PER_MINUTE + 51_428_571, "00:42:51.428571"),
            (0, -1, hour, "-1 days +01:00:00"),
            (-1, 2, -hour, "-1 mons +2 days -01:00:00"),
            (0, 0, -90 * MICROS_PER_MINUTE, "-01:30:00"),
            (0, 0, 100 * hour, "100:00:00"),
            (12, 0, 1, "1 year 00:00:00.000001"),
        ] {
            assert_eq!(interval_text(months, days, micros), text);
        }
    }

    #[test]
    fn a_timestamp_difference_is_days_and_time() {
        assert_eq!(duration_parts(MICROS_PER_DAY + 5), (1, 5));
        assert_eq!(duration_parts(-MICROS_PER_DAY - 5), (-1, -5));
    }
}
