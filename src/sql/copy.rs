//! `COPY`: which table or query, which direction, and the format options, checked the way
//! PostgreSQL checks them before any data moves.
//!
//! Data travels through the client connection only (`FROM STDIN`, `TO STDOUT`, which psql's
//! `\copy` uses too); reading or writing files on the server is refused, since a database
//! role must not reach the server's file system.

use datafusion::sql::sqlparser::ast::{
    self, CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget,
};

use super::parse::fold_ident;
use super::{SqlError, Statement, TableName};

/// How rows are written in the data stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// The format options of a COPY, with PostgreSQL's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: u8,
    /// The text that stands for NULL.
    pub null: String,
    pub header: bool,
    pub quote: u8,
    pub escape: u8,
    /// `FORCE_QUOTE (...)`: columns whose non-NULL values are always quoted (CSV, COPY TO).
    pub force_quote: Vec<String>,
    /// `FORCE_NOT_NULL (...)`: columns whose unquoted NULL text is read as a value (CSV, FROM).
    pub force_not_null: Vec<String>,
    /// `FORCE_NULL (...)`: columns whose quoted NULL text is read as NULL (CSV, FROM).
    pub force_null: Vec<String>,
}

/// What a COPY reads from or writes into.
#[derive(Debug, Clone)]
pub enum CopyRelation {
    /// A table and the columns named (all of them when empty).
    Table {
        name: TableName,
        columns: Vec<String>,
    },
    /// `COPY (query) TO`.
    Query(Box<ast::Query>),
}

#[derive(Debug, Clone)]
pub struct CopyStatement {
    pub relation: CopyRelation,
    /// `TO STDOUT` when true, `FROM STDIN` when false.
    pub to_client: bool,
    pub options: CopyOptions,
}

fn unsupported(message: impl Into<String>) -> SqlError {
    SqlError::Unsupported(message.into())
}

fn syntax(message: impl Into<String>) -> SqlError {
    SqlError::Syntax(message.into())
}

/// A single-byte option character, as PostgreSQL requires of DELIMITER, QUOTE and ESCAPE.
fn one_byte(what: &str, c: char) -> Result<u8, SqlError> {
    if c.is_ascii() {
        Ok(c as u8)
    } else {
        Err(unsupported(format!(
            "COPY {what} must be a single one-byte character"
        )))
    }
}

fn column_names(columns: &[ast::Ident]) -> Vec<String> {
    columns.iter().map(fold_ident).collect()
}

/// Option values as given, before defaults and cross-checks.
#[derive(Default)]
struct Given {
    format: Option<CopyFormat>,
    delimiter: Option<u8>,
    null: Option<String>,
    header: Option<bool>,
    quote: Option<u8>,
    escape: Option<u8>,
    force_quote: Option<Vec<String>>,
    force_not_null: Option<Vec<String>>,
    force_null: Option<Vec<String>>,
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), SqlError> {
    if slot.is_some() {
        return Err(syntax("conflicting or redundant options"));
    }
    *slot = Some(value);
    Ok(())
}

impl Given {
    fn option(&mut self, option: &CopyOption) -> Result<(), SqlError> {
        match option {
            CopyOption::Format(name) => {
                let format = match fold_ident(name).as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => {
                        return Err(unsupported(format!(
                            "COPY format \"{other}\" not recognized"
                        )));
                    }
                };
                set_once(&mut self.format, format)
            }
            // FREEZE is a promise about visibility that every KalamDB load already keeps.
            CopyOption::Freeze(_) => Ok(()),
            CopyOption::Delimiter(c) => set_once(&mut self.delimiter, one_byte("delimiter", *c)?),
            CopyOption::Null(text) => set_once(&mut self.null, text.clone()),
            CopyOption::Header(on) => set_once(&mut self.header, *on),
            CopyOption::Quote(c) => set_once(&mut self.quote, one_byte("quote", *c)?),
            CopyOption::Escape(c) => set_once(&mut self.escape, one_byte("escape", *c)?),
            CopyOption::ForceQuote(columns) => {
                set_once(&mut self.force_quote, column_names(columns))
            }
            CopyOption::ForceNotNull(columns) => {
                set_once(&mut self.force_not_null, column_names(columns))
            }
            CopyOption::ForceNull(columns) => set_once(&mut self.force_null, column_names(columns)),
            CopyOption::Encoding(name) => {
                let normalized = name.to_ascii_lowercase().replace(['-', '_'], "");
                if normalized == "utf8" || normalized == "unicode" {
                    Ok(())
                } else {
                    Err(unsupported(format!(
                        "COPY ENCODING '{name}' is not supported: data is read and written as UTF8"
                    )))
                }
            }
        }
    }

    /// The options of the pre-9.0 syntax (`WITH CSV HEADER`, `DELIMITER ','`, `NULL AS ''`).
    fn legacy(&mut self, option: &CopyLegacyOption) -> Result<(), SqlError> {
        match option {
            CopyLegacyOption::Binary => set_once(&mut self.format, CopyFormat::Binary),
            CopyLegacyOption::Delimiter(c) => {
                set_once(&mut self.delimiter, one_byte("delimiter", *c)?)
            }
            CopyLegacyOption::Null(text) => set_once(&mut self.null, text.clone()),
            CopyLegacyOption::Header => set_once(&mut self.header, true),
            CopyLegacyOption::Csv(options) => {
                set_once(&mut self.format, CopyFormat::Csv)?;
                for option in options {
                    match option {
                        CopyLegacyCsvOption::Header => set_once(&mut self.header, true)?,
                        CopyLegacyCsvOption::Quote(c) => {
                            set_once(&mut self.quote, one_byte("quote", *c)?)?
                        }
                        CopyLegacyCsvOption::Escape(c) => {
                            set_once(&mut self.escape, one_byte("escape", *c)?)?
                        }
                        CopyLegacyCsvOption::ForceQuote(columns) => {
                            set_once(&mut self.force_quote, column_names(columns))?
                        }
                        CopyLegacyCsvOption::ForceNotNull(columns) => {
                            set_once(&mut self.force_not_null, column_names(columns))?
                        }
                    }
                }
                Ok(())
            }
            other => Err(syntax(format!(
                "syntax error at or near \"{other}\": not a PostgreSQL COPY option"
            ))),
        }
    }

    /// PostgreSQL's defaults and its checks of options against the format and direction.
    fn resolve(self, to_client: bool) -> Result<CopyOptions, SqlError> {
        let format = self.format.unwrap_or(CopyFormat::Text);
        let csv = format == CopyFormat::Csv;
        if format == CopyFormat::Binary {
            for (given, name) in [
                (self.delimiter.is_some(), "DELIMITER"),
                (self.null.is_some(), "NULL"),
                (self.header.is_some(), "HEADER"),
            ] {
                if given {
                    return Err(syntax(format!("cannot specify {name} in BINARY mode")));
                }
            }
        }
        if !csv {
            for (given, what) in [
                (self.quote.is_some(), "quote"),
                (self.escape.is_some(), "escape"),
                (self.force_quote.is_some(), "force quote"),
                (self.force_not_null.is_some(), "force not null"),
                (self.force_null.is_some(), "force null"),
            ] {
                if given {
                    return Err(unsupported(format!(
                        "COPY {what} available only in CSV mode"
                    )));
                }
            }
        }
        if self.force_quote.is_some() && !to_client {
            return Err(unsupported("COPY force quote only available using COPY TO"));
        }
        if to_client && (self.force_not_null.is_some() || self.force_null.is_some()) {
            let what = if self.force_not_null.is_some() {
                "force not null"
            } else {
                "force null"
            };
            return Err(unsupported(format!(
                "COPY {what} only available using COPY FROM"
            )));
        }
        let delimiter = self.delimiter.unwrap_or(if csv { b',' } else { b'\t' });
        if delimiter == b'\n' || delimiter == b'\r' {
            return Err(unsupported(
                "COPY delimiter cannot be newline or carriage return",
            ));
        }
        let null = self
            .null
            .unwrap_or_else(|| if csv { "" } else { "\\N" }.into());
        if null.contains(['\n', '\r']) {
            return Err(unsupported(
                "COPY null representation cannot use newline or carriage return",
            ));
        }
        if !csv
            && (delimiter == b'\\' || delimiter.is_ascii_lowercase() || delimiter.is_ascii_digit())
        {
            return Err(unsupported(format!(
                "COPY delimiter cannot be \"{}\"",
                delimiter as char
            )));
        }
        let quote = self.quote.unwrap_or(b'"');
        if csv && delimiter == quote {
            return Err(unsupported("COPY delimiter and quote must be different"));
        }
        if null.as_bytes().contains(&delimiter) {
            return Err(unsupported(
                "COPY delimiter must not appear in the NULL specification",
            ));
        }
        Ok(CopyOptions {
            format,
            delimiter,
            null,
            header: self.header.unwrap_or(false),
            quote,
            escape: self.escape.unwrap_or(quote),
            force_quote: self.force_quote.unwrap_or_default(),
            force_not_null: self.force_not_null.unwrap_or_default(),
            force_null: self.force_null.unwrap_or_default(),
        })
    }
}

/// Turns sqlparser's COPY into a [`Statement::Copy`].
pub(super) fn copy(
    source: CopySource,
    to: bool,
    target: CopyTarget,
    options: &[CopyOption],
    legacy_options: &[CopyLegacyOption],
    inline_rows: &[Option<String>],
) -> Result<Statement, SqlError> {
    match (&target, to) {
        (CopyTarget::Stdin, false) | (CopyTarget::Stdout, true) => {}
        (CopyTarget::Stdin, true) => return Err(syntax("syntax error at or near \"STDIN\"")),
        (CopyTarget::Stdout, false) => return Err(syntax("syntax error at or near \"STDOUT\"")),
        (CopyTarget::File { .. } | CopyTarget::Program { .. }, _) => {
            return Err(SqlError::PermissionDeniedDetail(
                "COPY to or from a file or program on the server is not allowed; use COPY ... FROM STDIN or TO STDOUT (psql's \\copy)".into(),
            ));
        }
    }
    if !inline_rows.is_empty() {
        return Err(unsupported(
            "COPY FROM STDIN data inside the query text is not supported; send it as COPY data",
        ));
    }
    let mut given = Given::default();
    for option in options {
        given.option(option)?;
    }
    for option in legacy_options {
        given.legacy(option)?;
    }
    let relation = match source {
        CopySource::Table {
            table_name,
            columns,
        } => CopyRelation::Table {
            name: TableName::from_object_name(&table_name)?,
            columns: column_names(&columns),
        },
        CopySource::Query(query) => CopyRelation::Query(query),
    };
    Ok(Statement::Copy(CopyStatement {
        relation,
        to_client: to,
        options: given.resolve(to)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_of(sql: &str) -> Result<CopyStatement, SqlError> {
        match crate::sql::parse(sql)?.pop() {
            Some(Statement::Copy(copy)) => Ok(copy),
            other => panic!("{sql} parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_format() {
        let text = copy_of("COPY t FROM STDIN").unwrap().options;
        assert_eq!((text.delimiter, text.null.as_str()), (b'\t', "\\N"));
        let csv = copy_of("COPY t (a, b) TO STDOUT WITH (FORMAT csv, HEADER)")
            .unwrap()
            .options;
        assert_eq!(
            (csv.format, csv.delimiter, csv.null.as_str(), csv.header),
            (CopyFormat::Csv, b',', "", true)
        );
        assert_eq!((csv.quote, csv.escape), (b'"', b'"'));
    }

    #[test]
    fn the_old_syntax_reads_as_the_new() {
        let legacy = copy_of("COPY t FROM STDIN WITH CSV HEADER QUOTE AS '''' FORCE NOT NULL a")
            .unwrap()
            .options;
        assert_eq!(
            (legacy.format, legacy.header, legacy.quote),
            (CopyFormat::Csv, true, b'\'')
        );
        assert_eq!(legacy.force_not_null, vec!["a".to_owned()]);
        let delimited = copy_of("COPY t TO STDOUT DELIMITER '|' NULL AS 'nil'")
            .unwrap()
            .options;
        assert_eq!(
            (delimited.delimiter, delimited.null.as_str()),
            (b'|', "nil")
        );
    }

    #[test]
    fn options_that_do_not_fit_the_format_or_direction_are_refused() {
        for sql in [
            "COPY t FROM STDIN (QUOTE '\"')",
            "COPY t FROM STDIN (FORMAT csv, FORCE_QUOTE (a))",
            "COPY t TO STDOUT (FORMAT csv, FORCE_NOT_NULL (a))",
            "COPY t FROM STDIN (FORMAT binary, DELIMITER ',')",
            "COPY t FROM STDIN (FORMAT csv, DELIMITER '\"')",
            "COPY t FROM STDIN (DELIMITER ',', NULL 'a,b')",
            "COPY t FROM STDIN (FORMAT json)",
            "COPY t FROM STDIN (HEADER, HEADER)",
            "COPY t FROM '/etc/passwd'",
            "COPY t TO PROGRAM 'ls'",
        ] {
            assert!(copy_of(sql).is_err(), "{sql}");
        }
    }
}
