//! Writing rows in PostgreSQL's text and CSV COPY formats (COPY TO): each value is its type's
//! text output, escaped (text) or quoted (CSV) so that COPY FROM reads it back unchanged.

use bytes::BufMut;

use crate::sql::{CopyFormat, CopyOptions};

/// Writes rows in the text or CSV format.
pub struct TextWriter {
    options: CopyOptions,
    csv: bool,
    /// Per column: always quote (CSV FORCE_QUOTE).
    force_quote: Vec<bool>,
}

impl TextWriter {
    /// A writer for rows of `force_quote.len()` columns.
    pub fn new(options: &CopyOptions, force_quote: Vec<bool>) -> Self {
        TextWriter {
            options: options.clone(),
            csv: options.format == CopyFormat::Csv,
            force_quote,
        }
    }

    /// One row, each value its type's text output (`None`: NULL), ended by a newline.
    pub fn row(&self, values: &[Option<&[u8]>], out: &mut impl BufMut) {
        for (column, value) in values.iter().enumerate() {
            self.field(column, *value, out);
        }
        self.end_row(out);
    }

    /// The value of `column` (its type's text output; `None`: NULL), after the delimiter that
    /// separates it from the previous one.
    pub fn field(&self, column: usize, value: Option<&[u8]>, out: &mut impl BufMut) {
        if column > 0 {
            out.put_u8(self.options.delimiter);
        }
        match value {
            None => out.put_slice(self.options.null.as_bytes()),
            Some(value) if self.csv => {
                let force = self.force_quote.get(column).copied().unwrap_or(false);
                self.csv_value(value, force, out)
            }
            Some(value) => self.text_value(value, out),
        }
    }

    pub fn end_row(&self, out: &mut impl BufMut) {
        out.put_u8(b'\n');
    }

    fn text_value(&self, value: &[u8], out: &mut impl BufMut) {
        // Runs of bytes that need no escape are copied whole.
        let mut plain = 0;
        for (at, &b) in value.iter().enumerate() {
            let escaped: &[u8] = match b {
                b'\\' => b"\\\\",
                8 => b"\\b",
                12 => b"\\f",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                11 => b"\\v",
                b if b == self.options.delimiter => &[b'\\', b],
                _ => continue,
            };
            out.put_slice(&value[plain..at]);
            out.put_slice(escaped);
            plain = at + 1;
        }
        out.put_slice(&value[plain..]);
    }

    fn csv_value(&self, value: &[u8], force: bool, out: &mut impl BufMut) {
        let single = self.force_quote.len() == 1;
        let needs_quotes = force
            || value == self.options.null.as_bytes()
            || (single && value == b"\\.")
            || value.iter().any(|&b| {
                b == self.options.delimiter || b == self.options.quote || b == b'\n' || b == b'\r'
            });
        if !needs_quotes {
            out.put_slice(value);
            return;
        }
        out.put_u8(self.options.quote);
        for &b in value {
            if b == self.options.quote || b == self.options.escape {
                out.put_u8(self.options.escape);
            }
            out.put_u8(b);
        }
        out.put_u8(self.options.quote);
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::tests::{options, read};
    use super::*;

    #[test]
    fn written_rows_read_back_as_the_same_values() {
        let rows: Vec<Vec<Option<&[u8]>>> = vec![
            vec![Some(b"1"), Some(b"tab\there, comma \"q\"\nnewline \\ back")],
            vec![Some(b"2"), None],
            vec![Some(b"3"), Some(b"")],
        ];
        for sql in ["COPY t TO STDOUT", "COPY t TO STDOUT (FORMAT csv)"] {
            let writer = TextWriter::new(&options(sql), vec![false, false]);
            let mut out = Vec::new();
            for row in &rows {
                writer.row(row, &mut out);
            }
            let back = read(&sql.replace("TO STDOUT", "FROM STDIN"), 2, &[&out]).unwrap();
            let back: Vec<Vec<Option<Vec<u8>>>> = back
                .into_iter()
                .map(|(_, v)| v.into_iter().map(|x| x.map(String::into_bytes)).collect())
                .collect();
            let want: Vec<Vec<Option<Vec<u8>>>> = rows
                .iter()
                .map(|r| r.iter().map(|x| x.map(<[u8]>::to_vec)).collect())
                .collect();
            assert_eq!(back, want, "{sql}");
        }
    }
}
