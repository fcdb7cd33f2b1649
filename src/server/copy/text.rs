//! Reading PostgreSQL's text and CSV COPY formats: splitting the data stream into rows and
//! fields (COPY FROM).
//!
//! The data arrives in CopyData messages cut anywhere, even inside a field, so the reader keeps
//! the unfinished row and where its scan stopped, and emits complete rows only. Text format:
//! rows end at a newline, fields at the delimiter, a backslash escapes (`\t`, `\n`, `\\`,
//! octal and hex bytes), and the NULL text (`\N`) is matched before unescaping. CSV: fields may
//! be quoted, quoted fields hold delimiters and newlines, and only an unquoted field equal to the
//! NULL text (empty by default) is NULL. A line holding just `\.` ends the data in both.

use datafusion::arrow::array::{ArrayRef, StringBuilder};

use super::{CopyDataError, FormatFault};
use crate::sql::{CopyFormat, CopyOptions};

/// Rows read but not yet handed to the executor: one text column per data column.
pub struct PendingRows {
    pub columns: Vec<StringBuilder>,
    /// The line each row starts on.
    pub lines: Vec<u64>,
}

impl PendingRows {
    fn new(columns: usize) -> Self {
        PendingRows {
            columns: (0..columns).map(|_| StringBuilder::new()).collect(),
            lines: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// The rows so far, leaving this empty.
    pub fn take(&mut self) -> (Vec<ArrayRef>, Vec<u64>) {
        let arrays = self
            .columns
            .iter_mut()
            .map(|b| std::sync::Arc::new(b.finish()) as ArrayRef)
            .collect();
        (arrays, std::mem::take(&mut self.lines))
    }
}

/// Splits text or CSV COPY data into rows.
pub struct TextReader {
    options: CopyOptions,
    csv: bool,
    force_not_null: Vec<bool>,
    force_null: Vec<bool>,
    names: Vec<String>,
    header_pending: bool,
    /// Bytes of rows not yet complete.
    buffer: Vec<u8>,
    /// How far into `buffer` the search for the end of the current row has looked, and
    /// whether that point is inside a quoted CSV field.
    scanned: usize,
    in_quote: bool,
    /// Lines consumed before the current row.
    line: u64,
    /// `\.` was seen: what follows is ignored.
    ended: bool,
    pub rows: PendingRows,
    field: Vec<u8>,
}

impl TextReader {
    /// A reader of rows with the given column names (for messages), FORCE flags per column.
    pub fn new(
        options: &CopyOptions,
        names: Vec<String>,
        force_not_null: Vec<bool>,
        force_null: Vec<bool>,
    ) -> Self {
        TextReader {
            options: options.clone(),
            csv: options.format == CopyFormat::Csv,
            force_not_null,
            force_null,
            rows: PendingRows::new(names.len()),
            names,
            header_pending: options.header,
            buffer: Vec::new(),
            scanned: 0,
            in_quote: false,
            line: 0,
            ended: false,
            field: Vec::new(),
        }
    }

    /// Reads every complete row in `data` (and what earlier calls left unfinished).
    pub fn feed(&mut self, data: &[u8]) -> Result<(), CopyDataError> {
        if self.ended {
            return Ok(());
        }
        self.buffer.extend_from_slice(data);
        let mut start = 0;
        while let Some((end, next)) = self.row_end(start, false) {
            self.row(start, end)?;
            start = next;
            self.scanned = next;
            if self.ended {
                break;
            }
        }
        self.buffer.drain(..start);
        self.scanned -= start.min(self.scanned);
        Ok(())
    }

    /// The data ended: a last row without a newline is still a row.
    pub fn finish(&mut self) -> Result<(), CopyDataError> {
        if self.ended || self.buffer.is_empty() {
            return Ok(());
        }
        let (end, _) = self
            .row_end(0, true)
            .unwrap_or((self.buffer.len(), self.buffer.len()));
        if self.in_quote && end == self.buffer.len() {
            return Err(self.fault(FormatFault::BadFormat, "unterminated CSV quoted field"));
        }
        self.row(0, end)?;
        self.buffer.clear();
        Ok(())
    }

    /// The end of the row starting at `start` (exclusive) and where the next row starts, if
    /// the buffer holds the whole row. At the end of the data, a lone CR ends a row too.
    fn row_end(&mut self, start: usize, at_end: bool) -> Option<(usize, usize)> {
        let mut i = self.scanned.max(start);
        if i == start {
            self.in_quote = false;
        }
        let bytes = &self.buffer;
        while i < bytes.len() {
            let b = bytes[i];
            if self.csv {
                if self.in_quote {
                    if b == self.options.escape && self.options.escape != self.options.quote {
                        // The escape applies to the next byte; wait for it.
                        if i + 1 >= bytes.len() {
                            break;
                        }
                        if bytes[i + 1] == self.options.quote || bytes[i + 1] == self.options.escape
                        {
                            i += 2;
                            continue;
                        }
                    } else if b == self.options.quote {
                        self.in_quote = false;
                    }
                    i += 1;
                    continue;
                }
                if b == self.options.quote {
                    self.in_quote = true;
                    i += 1;
                    continue;
                }
            } else if b == b'\\' {
                // An escaped byte never ends the row.
                if i + 1 >= bytes.len() {
                    break;
                }
                i += 2;
                continue;
            }
            match b {
                b'\n' => {
                    self.scanned = i;
                    return Some((i, i + 1));
                }
                b'\r' => {
                    if i + 1 < bytes.len() {
                        let next = if bytes[i + 1] == b'\n' { i + 2 } else { i + 1 };
                        self.scanned = i;
                        return Some((i, next));
                    }
                    if at_end {
                        return Some((i, i + 1));
                    }
                    break;
                }
                _ => i += 1,
            }
        }
        self.scanned = i;
        None
    }

    fn fault(&self, fault: FormatFault, message: impl Into<String>) -> CopyDataError {
        CopyDataError {
            fault,
            message: message.into(),
            line: self.line + 1,
        }
    }

    /// One complete row, `buffer[start..end]` without its line end.
    fn row(&mut self, start: usize, end: usize) -> Result<(), CopyDataError> {
        let raw = std::mem::take(&mut self.buffer);
        let result = self.parse_row(&raw[start..end]);
        self.buffer = raw;
        let newlines = self.buffer[start..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.line += 1 + newlines;
        result
    }

    fn parse_row(&mut self, row: &[u8]) -> Result<(), CopyDataError> {
        if row == b"\\." {
            self.ended = true;
            return Ok(());
        }
        if self.header_pending {
            self.header_pending = false;
            return Ok(());
        }
        let columns = self.names.len();
        let mut at = 0;
        let mut column = 0;
        loop {
            if column == columns {
                // No columns at all (`COPY t ()`): rows must be empty.
                if columns == 0 && row.is_empty() {
                    break;
                }
                return Err(self.fault(
                    FormatFault::BadFormat,
                    "extra data after last expected column",
                ));
            }
            let (value, next) = if self.csv {
                self.csv_field(row, at, column)?
            } else {
                self.text_field(row, at)?
            };
            let builder = &mut self.rows.columns[column];
            match value {
                None => builder.append_null(),
                Some(()) => match std::str::from_utf8(&self.field) {
                    Ok(text) => builder.append_value(text),
                    Err(e) => {
                        let bad = self.field[e.valid_up_to()];
                        return Err(self.fault(
                            FormatFault::Encoding,
                            format!("invalid byte sequence for encoding \"UTF8\": 0x{bad:02x}"),
                        ));
                    }
                },
            }
            column += 1;
            match next {
                Some(next) => at = next,
                None => break,
            }
        }
        if column < columns {
            // The builders now hold part of a row; the COPY fails, so they are never read.
            let missing = self.names[column].clone();
            return Err(self.fault(
                FormatFault::BadFormat,
                format!("missing data for column \"{missing}\""),
            ));
        }
        self.rows.lines.push(self.line + 1);
        Ok(())
    }

    /// One text-format field starting at `at`: `Some(())` with the value in `self.field`, or
    /// `None` for NULL; and where the next field starts (`None`: this was the last).
    fn text_field(
        &mut self,
        row: &[u8],
        at: usize,
    ) -> Result<(Option<()>, Option<usize>), CopyDataError> {
        let mut end = at;
        while end < row.len() && row[end] != self.options.delimiter {
            end += if row[end] == b'\\' { 2 } else { 1 };
        }
        let end = end.min(row.len());
        let next = (end < row.len()).then_some(end + 1);
        let raw = &row[at..end];
        if raw == self.options.null.as_bytes() {
            return Ok((None, next));
        }
        self.field.clear();
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            if b != b'\\' || i + 1 >= raw.len() {
                self.field.push(b);
                i += 1;
                continue;
            }
            let c = raw[i + 1];
            i += 2;
            match c {
                b'b' => self.field.push(8),
                b'f' => self.field.push(12),
                b'n' => self.field.push(b'\n'),
                b'r' => self.field.push(b'\r'),
                b't' => self.field.push(b'\t'),
                b'v' => self.field.push(11),
                b'0'..=b'7' => {
                    let mut value = u32::from(c - b'0');
                    for _ in 0..2 {
                        match raw.get(i) {
                            Some(&d @ b'0'..=b'7') => {
                                value = value * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    self.field.push((value & 0xff) as u8);
                }
                b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                    let mut value = 0u32;
                    for _ in 0..2 {
                        match raw.get(i) {
                            Some(d) if d.is_ascii_hexdigit() => {
                                value = value * 16 + (*d as char).to_digit(16).unwrap_or(0);
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    self.field.push(value as u8);
                }
                other => self.field.push(other),
            }
        }
        if self.field.contains(&0) {
            return Err(self.fault(
                FormatFault::Encoding,
                "invalid byte sequence for encoding \"UTF8\": 0x00",
            ));
        }
        Ok((Some(()), next))
    }

    /// One CSV field starting at `at`, as [`Self::text_field`] returns it.
    fn csv_field(
        &mut self,
        row: &[u8],
        at: usize,
        column: usize,
    ) -> Result<(Option<()>, Option<usize>), CopyDataError> {
        self.field.clear();
        let mut quoted = false;
        let mut in_quote = false;
        let mut i = at;
        while i < row.len() {
            let b = row[i];
            if in_quote {
                if b == self.options.escape
                    && row
                        .get(i + 1)
                        .is_some_and(|&n| n == self.options.quote || n == self.options.escape)
                    && (self.options.escape != self.options.quote
                        || row.get(i + 1) == Some(&self.options.quote))
                {
                    self.field.push(row[i + 1]);
                    i += 2;
                } else if b == self.options.quote {
                    in_quote = false;
                    i += 1;
                } else {
                    self.field.push(b);
                    i += 1;
                }
                continue;
            }
            if b == self.options.delimiter {
                break;
            }
            if b == self.options.quote {
                quoted = true;
                in_quote = true;
                i += 1;
                continue;
            }
            self.field.push(b);
            i += 1;
        }
        if in_quote {
            return Err(self.fault(FormatFault::BadFormat, "unterminated CSV quoted field"));
        }
        let next = (i < row.len()).then_some(i + 1);
        let matches_null = self.field == self.options.null.as_bytes();
        let is_null = if quoted {
            matches_null && self.force_null.get(column).copied().unwrap_or(false)
        } else {
            matches_null && !self.force_not_null.get(column).copied().unwrap_or(false)
        };
        Ok((if is_null { None } else { Some(()) }, next))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use datafusion::arrow::array::{Array, AsArray};

    use super::*;

    pub(in crate::server::copy) fn options(sql: &str) -> CopyOptions {
        match crate::sql::parse(sql).unwrap().pop() {
            Some(crate::sql::Statement::Copy(copy)) => copy.options,
            _ => panic!("not a COPY"),
        }
    }

    /// A row read back: its line and its values as text (`None` for NULL).
    pub(in crate::server::copy) type Row = (u64, Vec<Option<String>>);

    /// Reads `chunks` as one COPY's data.
    pub(in crate::server::copy) fn read(
        sql: &str,
        columns: usize,
        chunks: &[&[u8]],
    ) -> Result<Vec<Row>, CopyDataError> {
        let names = (0..columns).map(|i| format!("c{i}")).collect();
        let mut reader = TextReader::new(
            &options(sql),
            names,
            vec![false; columns],
            vec![false; columns],
        );
        for chunk in chunks {
            reader.feed(chunk)?;
        }
        reader.finish()?;
        let (arrays, lines) = reader.rows.take();
        Ok(lines
            .iter()
            .enumerate()
            .map(|(row, line)| {
                let values = arrays
                    .iter()
                    .map(|a| {
                        let strings = a.as_string::<i32>();
                        strings.is_valid(row).then(|| strings.value(row).to_owned())
                    })
                    .collect();
                (*line, values)
            })
            .collect())
    }

    fn values(rows: &[Row]) -> Vec<Vec<Option<&str>>> {
        rows.iter()
            .map(|(_, v)| v.iter().map(|x| x.as_deref()).collect())
            .collect()
    }

    #[test]
    fn text_rows_split_unescape_and_know_null_wherever_the_data_is_cut() {
        let data = b"1\ta\\tb\\\\c\n2\t\\N\n3\t\\x41\\101\\n\r\n4\t\\\\N\n\\.\nignored\n";
        let whole = read("COPY t FROM STDIN", 2, &[data]).unwrap();
        let expected = vec![
            vec![Some("1"), Some("a\tb\\c")],
            vec![Some("2"), None],
            vec![Some("3"), Some("AA\n")],
            vec![Some("4"), Some("\\N")],
        ];
        assert_eq!(values(&whole), expected);
        assert_eq!(
            whole.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        for cut in 1..data.len() {
            let parts = read("COPY t FROM STDIN", 2, &[&data[..cut], &data[cut..]]).unwrap();
            assert_eq!(values(&parts), expected, "cut at {cut}");
        }
    }

    #[test]
    fn csv_quotes_hold_delimiters_newlines_and_quotes_and_only_unquoted_empty_is_null() {
        let data = b"id,note\n1,\"a,b\"\n2,\"line\nbreak\"\n3,\n4,\"\"\n5,\"say \"\"hi\"\"\"\n";
        let sql = "COPY t FROM STDIN WITH (FORMAT csv, HEADER)";
        let expected = vec![
            vec![Some("1"), Some("a,b")],
            vec![Some("2"), Some("line\nbreak")],
            vec![Some("3"), None],
            vec![Some("4"), Some("")],
            vec![Some("5"), Some("say \"hi\"")],
        ];
        let whole = read(sql, 2, &[data]).unwrap();
        assert_eq!(values(&whole), expected);
        assert_eq!(
            whole.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![2, 3, 5, 6, 7]
        );
        for cut in 1..data.len() {
            let parts = read(sql, 2, &[&data[..cut], &data[cut..]]).unwrap();
            assert_eq!(values(&parts), expected, "cut at {cut}");
        }
    }

    #[test]
    fn a_row_with_too_few_or_too_many_fields_names_its_line() {
        let missing = read("COPY t FROM STDIN", 2, &[b"1\ta\n2\n"]).unwrap_err();
        assert_eq!(
            (missing.line, missing.message.as_str()),
            (2, "missing data for column \"c1\"")
        );
        let extra = read("COPY t FROM STDIN (FORMAT csv)", 2, &[b"1,a,x\n"]).unwrap_err();
        assert_eq!(
            (extra.line, extra.message.as_str()),
            (1, "extra data after last expected column")
        );
        let open = read("COPY t FROM STDIN (FORMAT csv)", 2, &[b"1,\"open\n"]).unwrap_err();
        assert_eq!(open.message, "unterminated CSV quoted field");
        let bad = read("COPY t FROM STDIN", 1, &[b"\xff\n"]).unwrap_err();
        assert_eq!(bad.fault, FormatFault::Encoding);
    }
}
