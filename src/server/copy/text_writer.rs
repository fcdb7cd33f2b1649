//! Writing rows in PostgreSQL's text and CSV COPY formats (COPY TO): each value is its type's
//! text output, escaped (text) or quoted (CSV) so that COPY FROM reads it back unchanged.

use crate::sql::{CopyFormat, CopyOptions};

/// Writes rows in the text or CSV format.
pub struct TextWriter {
    options: CopyOptions,
    csv: bool,
    /// Per column: always quote (CSV FORCE_QUOTE).
    force_quote: Vec<bool>,
}

impl TextWriter {
    pub fn new(options: &CopyOptions, force_quote: Vec<bool>) -> Self {
        TextWriter {
            options: options.clone(),
            csv: options.format == CopyFormat::Csv,
            force_quote,
        }
    }

    /// One row, each value its type's text output (`None`: NULL), ended by a newline.
    pub fn row(&self, values: &[Option<&[u8]>], out: &mut Vec<u8>) {
        let single = values.len() == 1;
        for (column, value) in values.iter().enumerate() {
            if column > 0 {
                out.push(self.options.delimiter);
            }
            match value {
                None => out.extend_from_slice(self.options.null.as_bytes()),
                Some(value) if self.csv => {
                    let force = self.force_quote.get(column).copied().unwrap_or(false);
                    self.csv_value(value, force, single, out)
                }
                Some(value) => self.text_value(value, out),
            }
        }
        out.push(b'\n');
    }

    fn text_value(&self, value: &[u8], out: &mut Vec<u8>) {
        for &b in value {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                8 => out.extend_from_slice(b"\\b"),
                12 => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                11 => out.extend_from_slice(b"\\v"),
                b if b == self.options.delimiter => {
                    out.push(b'\\');
                    out.push(b);
                }
                b => out.push(b),
            }
        }
    }

    fn csv_value(&self, value: &[u8], force: bool, single: bool, out: &mut Vec<u8>) {
        let needs_quotes = force
            || value == self.options.null.as_bytes()
            || (single && value == b"\\.")
            || value.iter().any(|&b| {
                b == self.options.delimiter || b == self.options.quote || b == b'\n' || b == b'\r'
            });
        if !needs_quotes {
            out.extend_from_slice(value);
            return;
        }
        out.push(self.options.quote);
        for &b in value {
            if b == self.options.quote || b == self.options.escape {
                out.push(self.options.escape);
            }
            out.push(b);
        }
        out.push(self.options.quote);
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
