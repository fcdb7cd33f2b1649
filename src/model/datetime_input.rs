//! PostgreSQL's input forms for `date`, `timestamp` and `timestamptz` (its DateStyle ISO, MDY):
//! ISO (`1999-01-08 04:05:06`, `T` between), month names (`January 8, 1999`, `08-Jan-1999`,
//! `Mon Feb 10 17:32:01 1997 PST`), numeric dates in month-day-year order (`1/8/1999`),
//! concatenated (`19990108 040506`), day of year (`1999.008`), Julian days (`J2451187`), the
//! special words `now`, `today`, `tomorrow`, `yesterday` and `epoch`, 12-hour times, and zones
//! as offsets or common abbreviations. Each is read into one value written as ISO text.

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};

/// Why text is not a date or time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateTimeInputError {
    /// Not a form PostgreSQL reads (22007).
    Syntax,
    /// A form it reads with a field out of range: February 30th, month 13 (22008).
    OutOfRange,
}

/// A date and time read from text, with the zone it named, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateTimeInput {
    pub at: NaiveDateTime,
    /// Seconds east of UTC.
    pub offset: Option<i32>,
}

impl DateTimeInput {
    /// `YYYY-MM-DD`.
    pub fn date_text(&self) -> String {
        self.at.date().format("%Y-%m-%d").to_string()
    }

    /// `YYYY-MM-DD HH:MM:SS.ffffff`, and the offset (`+HH:MM`) when `with_zone`. A timestamp
    /// without time zone ignores a zone in its input, as PostgreSQL's does.
    pub fn timestamp_text(&self, with_zone: bool) -> String {
        let mut text = self.at.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        if let (true, Some(offset)) = (with_zone, self.offset) {
            let sign = if offset < 0 { '-' } else { '+' };
            let offset = offset.unsigned_abs();
            text.push_str(&format!(
                "{sign}{:02}:{:02}",
                offset / 3600,
                offset / 60 % 60
            ));
        }
        text
    }
}

/// Reads `text` as PostgreSQL reads a date or timestamp; `now` is the moment `now`, `today`
/// and the other special words are relative to.
pub fn parse_datetime(text: &str, now: NaiveDateTime) -> Result<DateTimeInput, DateTimeInputError> {
    let fields = fields(&text.to_ascii_lowercase())?;
    let mut parts: Vec<Part> = Vec::new();
    let mut time: Option<Duration> = None;
    let mut meridiem: Option<bool> = None;
    let mut offset: Option<i32> = None;
    let mut base: Option<NaiveDate> = None;
    let mut base_time: Option<Duration> = None;
    let mut julian = false;
    for field in fields {
        match field {
            Field::Time(t) => {
                if time.is_some() {
                    return Err(DateTimeInputError::Syntax);
                }
                time = Some(time_of(&t)?);
            }
            Field::Date(pieces) => {
                if pieces.len() == 2
                    && let (Piece::Number(year), Piece::Number(day)) = (&pieces[0], &pieces[1])
                    && year.len() == 4
                    && day.len() == 3
                {
                    let date = NaiveDate::from_yo_opt(number(year)?, number(day)?)
                        .ok_or(DateTimeInputError::OutOfRange)?;
                    base = Some(date);
                    continue;
                }
                for piece in pieces {
                    parts.push(match piece {
                        Piece::Number(n) => Part::Number(n),
                        Piece::Word(w) => Part::Month(month(&w).ok_or(DateTimeInputError::Syntax)?),
                    });
                }
            }
            Field::Number(n) if julian => {
                let days = number::<i64>(&n)?;
                base = NaiveDate::from_num_days_from_ce_opt(
                    i32::try_from(days - 1_721_425).map_err(|_| DateTimeInputError::OutOfRange)?,
                );
                julian = false;
                if base.is_none() {
                    return Err(DateTimeInputError::OutOfRange);
                }
            }
            // Concatenated dates are year first: `19990108`, `990108`.
            Field::Number(n) if n.len() == 8 && parts.is_empty() && base.is_none() => {
                base = Some(concatenated_date(&n[..4], &n[4..6], &n[6..])?);
            }
            Field::Number(n)
                if n.len() == 6 && time.is_none() && (parts.len() >= 3 || base.is_some()) =>
            {
                time = Some(time_of(&format!("{}:{}:{}", &n[..2], &n[2..4], &n[4..]))?);
            }
            Field::Number(n) if n.len() == 6 && parts.is_empty() && base.is_none() => {
                base = Some(concatenated_date(&n[..2], &n[2..4], &n[4..])?);
            }
            Field::Number(n) => parts.push(Part::Number(n)),
            Field::Offset(seconds) => offset = Some(seconds),
            Field::Word(word) => match word.as_str() {
                "am" => meridiem = Some(false),
                "pm" => meridiem = Some(true),
                "t" | "at" | "on" => {}
                "j" => julian = true,
                "now" => {
                    base = Some(now.date());
                    base_time = Some(now.time() - NaiveTime::MIN);
                }
                "today" => base = Some(now.date()),
                "tomorrow" => base = Some(now.date() + Duration::days(1)),
                "yesterday" => base = Some(now.date() - Duration::days(1)),
                "epoch" => base = NaiveDate::from_ymd_opt(1970, 1, 1),
                w if weekday(w) => {}
                w => {
                    if let Some(m) = month(w) {
                        parts.push(Part::Month(m));
                    } else if let Some(seconds) = zone(w) {
                        offset = Some(seconds);
                    } else {
                        return Err(DateTimeInputError::Syntax);
                    }
                }
            },
        }
    }
    let date = match base {
        Some(date) if parts.is_empty() => date,
        Some(_) => return Err(DateTimeInputError::Syntax),
        None => date_of(&parts)?,
    };
    let mut time = match (time, base_time) {
        (Some(t), None) => t,
        (None, Some(t)) => t,
        (None, None) => Duration::zero(),
        (Some(_), Some(_)) => return Err(DateTimeInputError::Syntax),
    };
    if let Some(pm) = meridiem {
        let hour = time.num_hours();
        if !(1..=12).contains(&hour) {
            return Err(DateTimeInputError::OutOfRange);
        }
        match (pm, hour) {
            (false, 12) => time -= Duration::hours(12),
            (true, h) if h < 12 => time += Duration::hours(12),
            _ => {}
        }
    }
    // `24:00:00` on the last day chrono holds has no next midnight.
    let at = date
        .and_time(NaiveTime::MIN)
        .checked_add_signed(time)
        .ok_or(DateTimeInputError::OutOfRange)?;
    Ok(DateTimeInput { at, offset })
}

/// `24:00:00` is the end of the day, which PostgreSQL reads as the next day's midnight.
const END_OF_DAY: u32 = 24;

enum Field {
    Number(String),
    Word(String),
    Time(String),
    Date(Vec<Piece>),
    Offset(i32),
}

enum Piece {
    Number(String),
    Word(String),
}

enum Part {
    Number(String),
    Month(u32),
}

/// The text split into PostgreSQL's fields: runs of digits, of letters, times (`17:32:01.5`),
/// dates joined by `-`, `/` or `.` (`1999-01-08`, `08-jan-1999`) and zone offsets (`-0800`).
fn fields(text: &str) -> Result<Vec<Field>, DateTimeInputError> {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut fields = Vec::new();
    let mut at = 0;
    let run = |at: &mut usize, accept: &dyn Fn(char) -> bool| {
        let start = *at;
        while *at < chars.len() && accept(chars[*at]) {
            *at += 1;
        }
        chars[start..*at].iter().collect::<String>()
    };
    while at < chars.len() {
        let c = chars[at];
        if c.is_whitespace() || c == ',' {
            at += 1;
        } else if c.is_ascii_digit() {
            let digits = run(&mut at, &|c| c.is_ascii_digit());
            match chars.get(at) {
                Some(':') => {
                    let rest = run(&mut at, &|c| c.is_ascii_digit() || c == ':' || c == '.');
                    fields.push(Field::Time(digits + &rest));
                }
                Some('-' | '/' | '.') if chars.get(at + 1).is_some_and(|c| c.is_alphanumeric()) => {
                    let mut pieces = vec![Piece::Number(digits)];
                    while let Some('-' | '/' | '.') = chars.get(at) {
                        at += 1;
                        let piece = match chars.get(at) {
                            Some(c) if c.is_ascii_digit() => {
                                Piece::Number(run(&mut at, &|c| c.is_ascii_digit()))
                            }
                            Some(c) if c.is_alphabetic() => {
                                Piece::Word(run(&mut at, &|c| c.is_alphabetic()))
                            }
                            _ => return Err(DateTimeInputError::Syntax),
                        };
                        pieces.push(piece);
                    }
                    // `1999-01-08t04:05:06`: the time follows the `t`.
                    if let Some(Piece::Word(w)) = pieces.last()
                        && let Some(rest) = w.strip_prefix('t')
                        && rest.is_empty()
                    {
                        pieces.pop();
                    }
                    fields.push(Field::Date(pieces));
                }
                _ => fields.push(Field::Number(digits)),
            }
        } else if c.is_alphabetic() {
            let word = run(&mut at, &|c| c.is_alphabetic());
            if chars.get(at).is_some_and(|c| matches!(c, '-' | '/'))
                && chars.get(at + 1).is_some_and(|c| c.is_ascii_digit())
                && month(&word).is_some()
            {
                let mut pieces = vec![Piece::Word(word)];
                while let Some('-' | '/') = chars.get(at) {
                    at += 1;
                    if !chars.get(at).is_some_and(|c| c.is_ascii_digit()) {
                        return Err(DateTimeInputError::Syntax);
                    }
                    pieces.push(Piece::Number(run(&mut at, &|c| c.is_ascii_digit())));
                }
                fields.push(Field::Date(pieces));
            } else {
                fields.push(Field::Word(word));
            }
        } else if (c == '+' || c == '-') && chars.get(at + 1).is_some_and(|c| c.is_ascii_digit()) {
            at += 1;
            let offset = run(&mut at, &|c| c.is_ascii_digit() || c == ':');
            let seconds = offset_seconds(&offset)?;
            fields.push(Field::Offset(if c == '-' { -seconds } else { seconds }));
        } else {
            return Err(DateTimeInputError::Syntax);
        }
    }
    Ok(fields)
}

/// `8`, `08`, `0800`, `08:00`, `08:00:00` as seconds.
fn offset_seconds(text: &str) -> Result<i32, DateTimeInputError> {
    let (hours, minutes, seconds): (i32, i32, i32) =
        match text.split(':').collect::<Vec<_>>().as_slice() {
            [hm] if hm.len() <= 2 => (number(hm)?, 0, 0),
            [hm] if hm.len() == 4 => (number(&hm[..2])?, number(&hm[2..])?, 0),
            [h, m] => (number(h)?, number(m)?, 0),
            [h, m, s] => (number(h)?, number(m)?, number(s)?),
            _ => return Err(DateTimeInputError::Syntax),
        };
    if hours > 15 || minutes > 59 || seconds > 59 {
        return Err(DateTimeInputError::OutOfRange);
    }
    Ok(hours * 3600 + minutes * 60 + seconds)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, DateTimeInputError> {
    text.parse().map_err(|_| DateTimeInputError::Syntax)
}

/// `h:mm[:ss[.ffffff]]` as the time since midnight; `24:00:00` is the next midnight and a
/// leap second the next minute, as PostgreSQL reads them.
fn time_of(text: &str) -> Result<Duration, DateTimeInputError> {
    let pieces: Vec<&str> = text.split(':').collect();
    let (hour, minute, second) = match pieces.as_slice() {
        [h, m] => (*h, *m, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return Err(DateTimeInputError::Syntax),
    };
    let hour: u32 = number(hour)?;
    let minute: u32 = number(minute)?;
    let (whole, fraction) = second.split_once('.').unwrap_or((second, ""));
    let second: u32 = number(whole)?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateTimeInputError::Syntax);
    }
    // Microseconds, rounded at the seventh digit as PostgreSQL rounds.
    let mut digits: String = fraction.chars().take(7).collect();
    while digits.len() < 7 {
        digits.push('0');
    }
    let micros = (number::<u32>(&digits)? + 5) / 10;
    let end_of_day = hour == END_OF_DAY && minute == 0 && second == 0 && micros == 0;
    if (hour >= END_OF_DAY && !end_of_day) || minute > 59 || second > 60 {
        return Err(DateTimeInputError::OutOfRange);
    }
    Ok(Duration::hours(i64::from(hour))
        + Duration::minutes(i64::from(minute))
        + Duration::seconds(i64::from(second))
        + Duration::microseconds(i64::from(micros)))
}

/// The year, month and day the date's parts name: a number of three or more digits is the
/// year; otherwise numbers alone are in PostgreSQL's MDY order, and beside a month name the
/// day comes before the year.
fn date_of(parts: &[Part]) -> Result<NaiveDate, DateTimeInputError> {
    let numbers: Vec<&String> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Number(n) => Some(n),
            Part::Month(_) => None,
        })
        .collect();
    let months: Vec<u32> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Month(m) => Some(*m),
            Part::Number(_) => None,
        })
        .collect();
    let is_year = |n: &str| n.len() >= 3;
    let (year, month, day) = match (months.as_slice(), numbers.as_slice()) {
        ([month], [a, b]) if is_year(a) => (*a, *month, *b),
        ([month], [a, b]) => (*b, *month, *a),
        ([], [a, b, c]) if is_year(a) => (*a, number(b)?, *c),
        ([], [a, b, c]) => (*c, number(a)?, *b),
        _ => return Err(DateTimeInputError::Syntax),
    };
    NaiveDate::from_ymd_opt(full_year(year)?, month, number(day)?)
        .ok_or(DateTimeInputError::OutOfRange)
}

fn concatenated_date(year: &str, month: &str, day: &str) -> Result<NaiveDate, DateTimeInputError> {
    NaiveDate::from_ymd_opt(full_year(year)?, number(month)?, number(day)?)
        .ok_or(DateTimeInputError::OutOfRange)
}

/// A year as written; two digits or fewer are the nearest year to 2020 (`99` is 1999, `03`
/// is 2003), as PostgreSQL reads them.
fn full_year(text: &str) -> Result<i32, DateTimeInputError> {
    let year: i32 = number(text)?;
    Ok(match text.len() {
        0..=2 if year < 70 => year + 2000,
        0..=2 => year + 1900,
        _ => year,
    })
}

fn month(word: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    if word.len() < 3 {
        return None;
    }
    let word = if word == "sept" { "sep" } else { word };
    MONTHS
        .iter()
        .position(|m| m.starts_with(word))
        .map(|i| i as u32 + 1)
}

fn weekday(word: &str) -> bool {
    const DAYS: [&str; 7] = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    word.len() >= 3 && DAYS.iter().any(|d| d.starts_with(word))
}

/// Seconds east of UTC of the zone abbreviations PostgreSQL's default set has for North
/// America and Europe, and UTC's names.
fn zone(word: &str) -> Option<i32> {
    let hours = match word {
        "z" | "zulu" | "utc" | "ut" | "gmt" | "wet" => 0.0,
        "west" | "bst" | "cet" | "met" => 1.0,
        "cest" | "mest" | "eet" => 2.0,
        "eest" | "msk" => 3.0,
        "ist" => 5.5,
        "jst" | "kst" => 9.0,
        "aest" => 10.0,
        "nzst" => 12.0,
        "adt" => -3.0,
        "ast" | "edt" => -4.0,
        "est" | "cdt" => -5.0,
        "cst" | "mdt" => -6.0,
        "mst" | "pdt" => -7.0,
        "pst" | "akdt" => -8.0,
        "akst" => -9.0,
        "hst" => -10.0,
        _ => return None,
    };
    Some((hours * 3600.0) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 4)
            .unwrap()
            .and_hms_opt(17, 0, 0)
            .unwrap()
    }

    fn read(text: &str) -> String {
        let input = parse_datetime(text, now()).unwrap();
        input.timestamp_text(true)
    }

    #[test]
    fn iso_and_month_name_forms_read_as_postgresql_reads_them() {
        assert_eq!(read("1999-01-08 04:05:06"), "1999-01-08 04:05:06.000000");
        assert_eq!(
            read("1999-01-08T04:05:06.5Z"),
            "1999-01-08 04:05:06.500000+00:00"
        );
        assert_eq!(
            read("January 8, 1999 5:00 pm"),
            "1999-01-08 17:00:00.000000"
        );
        assert_eq!(
            read("Mon Feb 10 17:32:01 1997 PST"),
            "1997-02-10 17:32:01.000000-08:00"
        );
        assert_eq!(read("08-Jan-99"), "1999-01-08 00:00:00.000000");
        assert_eq!(read("1999-Jan-08"), "1999-01-08 00:00:00.000000");
        assert_eq!(read("Jan-08-1999"), "1999-01-08 00:00:00.000000");
        assert_eq!(read("1999 08 Jan"), "1999-01-08 00:00:00.000000");
    }

    #[test]
    fn numeric_dates_are_month_day_year_unless_the_year_comes_first() {
        assert_eq!(read("1/8/1999"), "1999-01-08 00:00:00.000000");
        assert_eq!(read("01/02/03"), "2003-01-02 00:00:00.000000");
        assert_eq!(read("1999-01-08"), "1999-01-08 00:00:00.000000");
        assert_eq!(read("08-01-99"), "1999-08-01 00:00:00.000000");
        assert_eq!(
            read("19970210 173201 -0800"),
            "1997-02-10 17:32:01.000000-08:00"
        );
        assert_eq!(read("990108"), "1999-01-08 00:00:00.000000");
        assert_eq!(read("1999.008"), "1999-01-08 00:00:00.000000");
        assert_eq!(read("J2451187"), "1999-01-08 00:00:00.000000");
    }

    #[test]
    fn special_words_are_relative_to_now() {
        assert_eq!(read("today"), "2026-12-04 00:00:00.000000");
        assert_eq!(read("tomorrow EST"), "2026-12-05 00:00:00.000000-05:00");
        assert_eq!(read("yesterday"), "2026-12-03 00:00:00.000000");
        assert_eq!(read("now"), "2026-12-04 17:00:00.000000");
        assert_eq!(read("epoch"), "1970-01-01 00:00:00.000000");
    }

    #[test]
    fn impossible_fields_are_out_of_range_and_other_text_is_not_a_date() {
        let err = |t: &str| parse_datetime(t, now()).unwrap_err();
        assert_eq!(err("1997-02-29"), DateTimeInputError::OutOfRange);
        assert_eq!(err("18/1/1999"), DateTimeInputError::OutOfRange);
        assert_eq!(err("99-08-01"), DateTimeInputError::OutOfRange);
        assert_eq!(err("2000-01-01 25:00"), DateTimeInputError::OutOfRange);
        assert_eq!(read("1997-02-10 24:00:00"), "1997-02-11 00:00:00.000000");
        assert_eq!(err("262143-12-31 24:00:00"), DateTimeInputError::OutOfRange);
        assert_eq!(err("foo"), DateTimeInputError::Syntax);
        assert_eq!(err("1999-01"), DateTimeInputError::Syntax);
    }
}
