//! Session settings: the run-time parameters drivers and tools SET and SHOW.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::outcome::Outcome;
use super::session::Session;
use super::{ExecError, ExecResult, PG_SERVER_VERSION, PG_SERVER_VERSION_NUM};

/// How a parameter may be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Session,
    ReadOnly,
}

/// (name, default, access, description)
const PARAMETERS: &[(&str, &str, Access, &str)] = &[
    (
        "application_name",
        "",
        Access::Session,
        "Sets the application name to be reported in statistics and logs.",
    ),
    (
        "bytea_output",
        "hex",
        Access::Session,
        "Sets the output format for bytea.",
    ),
    (
        "client_encoding",
        "UTF8",
        Access::Session,
        "Sets the client's character set encoding.",
    ),
    (
        "client_min_messages",
        "notice",
        Access::Session,
        "Sets the message levels that are sent to the client.",
    ),
    (
        "datestyle",
        "ISO, MDY",
        Access::Session,
        "Sets the display format for date and time values.",
    ),
    (
        "default_table_access_method",
        "heap",
        Access::ReadOnly,
        "Sets the default table access method for new tables.",
    ),
    (
        "default_tablespace",
        "",
        Access::Session,
        "Sets the default tablespace to create tables and indexes in.",
    ),
    (
        "default_transaction_isolation",
        "read committed",
        Access::Session,
        "Sets the transaction isolation level of each new transaction.",
    ),
    (
        "default_transaction_read_only",
        "off",
        Access::Session,
        "Sets the default read-only status of new transactions.",
    ),
    (
        "extra_float_digits",
        "1",
        Access::Session,
        "Sets the number of digits displayed for floating-point values.",
    ),
    (
        "idle_in_transaction_session_timeout",
        "0",
        Access::Session,
        "Sets the maximum allowed idle time between queries, when in a transaction.",
    ),
    (
        "max_index_keys",
        "32",
        Access::ReadOnly,
        "Shows the maximum number of index keys.",
    ),
    (
        "integer_datetimes",
        "on",
        Access::ReadOnly,
        "Shows whether datetimes are integer based.",
    ),
    (
        "intervalstyle",
        "postgres",
        Access::Session,
        "Sets the display format for interval values.",
    ),
    // Text compares byte by byte, as in PostgreSQL's C locale.
    (
        "lc_collate",
        "C",
        Access::ReadOnly,
        "Shows the collation order locale.",
    ),
    (
        "lc_ctype",
        "C",
        Access::ReadOnly,
        "Shows the character classification and case conversion locale.",
    ),
    (
        "lc_messages",
        "C",
        Access::Session,
        "Sets the language in which messages are displayed.",
    ),
    (
        "lock_timeout",
        "0",
        Access::Session,
        "Sets the maximum allowed duration of any wait for a lock.",
    ),
    (
        "max_identifier_length",
        "63",
        Access::ReadOnly,
        "Shows the maximum identifier length.",
    ),
    (
        "role",
        "none",
        Access::Session,
        "Sets the current session role.",
    ),
    (
        "search_path",
        "\"$user\", public",
        Access::Session,
        "Sets the schema search order for names that are not schema-qualified.",
    ),
    (
        "server_encoding",
        "UTF8",
        Access::ReadOnly,
        "Shows the server (database) character set encoding.",
    ),
    (
        "server_version",
        PG_SERVER_VERSION,
        Access::ReadOnly,
        "Shows the server version.",
    ),
    (
        "server_version_num",
        PG_SERVER_VERSION_NUM,
        Access::ReadOnly,
        "Shows the server version as an integer.",
    ),
    (
        "standard_conforming_strings",
        "on",
        Access::Session,
        "Causes '...' strings to treat backslashes literally.",
    ),
    (
        "statement_timeout",
        "0",
        Access::Session,
        "Sets the maximum allowed duration of any statement.",
    ),
    (
        "timezone",
        "UTC",
        Access::Session,
        "Sets the time zone for displaying and interpreting time stamps.",
    ),
    (
        "transaction_isolation",
        "read committed",
        Access::Session,
        "Sets the current transaction's isolation level.",
    ),
    (
        "transaction_read_only",
        "off",
        Access::Session,
        "Sets the current transaction's read-only status.",
    ),
];

/// Names PostgreSQL accepts for the same parameter.
/// The settings in a startup packet's `options` (libpq's `PGOPTIONS`, pgJDBC's `options`):
/// `-c name=value` and `--name=value` words, split at spaces no backslash escapes.
fn command_line_settings(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut escaped = false;
    for c in options.chars() {
        if escaped {
            word.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c.is_whitespace() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut settings = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let assignment = match word.as_str() {
            "-c" => words.next(),
            _ => word
                .strip_prefix("--")
                .or_else(|| word.strip_prefix("-c"))
                .map(str::to_owned),
        };
        if let Some((name, value)) = assignment.as_deref().and_then(|a| a.split_once('=')) {
            settings.push((name.replace('-', "_"), value.to_owned()));
        }
    }
    settings
}

fn canonical_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "time zone" | "time_zone" => "timezone".into(),
        "transaction isolation level" => "transaction_isolation".into(),
        "session authorization" => "session_authorization".into(),
        _ => lower,
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<&'static str, String>,
    /// What RESET returns a parameter to where it is not the default: the value the client
    /// sent at startup, as in PostgreSQL (pgJDBC's `currentSchema` as `search_path`).
    startup: BTreeMap<&'static str, String>,
    session_user: String,
    is_superuser: bool,
}

impl Settings {
    /// The user the session logged in as (`$user` in `search_path`).
    pub fn session_user(&self) -> &str {
        &self.session_user
    }

    pub fn new(session_user: &str, is_superuser: bool) -> Settings {
        Settings {
            values: PARAMETERS
                .iter()
                .map(|(name, default, _, _)| (*name, (*default).to_owned()))
                .collect(),
            startup: BTreeMap::new(),
            session_user: session_user.to_owned(),
            is_superuser,
        }
    }

    /// Applies a startup parameter the client sent; unknown ones are ignored as PostgreSQL
    /// ignores options it does not know when they arrive through the startup packet.
    pub fn apply_startup(&mut self, name: &str, value: &str) {
        if name == "options" {
            for (name, value) in command_line_settings(value) {
                self.apply_startup(&name, &value);
            }
            return;
        }
        if self.set(name, Some(value)).is_ok()
            && let Some((key, _, _, _)) = PARAMETERS.iter().find(|p| p.0 == canonical_name(name))
            && let Some(set) = self.values.get(key)
        {
            self.startup.insert(key, set.clone());
        }
    }

    /// `SET name = value` (`None`: back to the default). `all` resets everything.
    pub fn set(&mut self, name: &str, value: Option<&str>) -> ExecResult<()> {
        let name = canonical_name(name);
        if name == "all" && value.is_none() {
            let fresh = Settings::new(&self.session_user, self.is_superuser);
            self.values = fresh.values;
            self.values
                .extend(self.startup.iter().map(|(k, v)| (*k, v.clone())));
            return Ok(());
        }
        let Some((key, default, access, _)) = PARAMETERS.iter().find(|p| p.0 == name) else {
            return Err(unknown(&name));
        };
        if *access == Access::ReadOnly {
            return Err(ExecError::CantChangeRuntimeParam(format!(
                "parameter \"{key}\" cannot be changed"
            )));
        }
        let reset = self.startup.get(*key).cloned();
        let value = value.unwrap_or_else(|| reset.as_deref().unwrap_or(default));
        // A session acts as the user it logged in as; SET ROLE may name that user or NONE.
        if *key == "role" && !value.eq_ignore_ascii_case("none") && value != self.session_user {
            return Err(ExecError::Sql(crate::sql::SqlError::Unsupported(format!(
                "SET ROLE to another role is not supported: connect as \"{value}\" instead"
            ))));
        }
        if *key == "client_encoding"
            && !matches!(
                value.to_ascii_uppercase().as_str(),
                "UTF8" | "UTF-8" | "UNICODE"
            )
        {
            return Err(ExecError::InvalidParameterValue(format!(
                "client encoding \"{value}\" is not supported: KalamDB speaks UTF8 only"
            )));
        }
        if matches!(
            *key,
            "statement_timeout" | "idle_in_transaction_session_timeout"
        ) {
            duration_setting(key, value)?;
        }
        self.values.insert(key, value.to_owned());
        Ok(())
    }

    /// A timeout setting as a duration; `None` when it is 0 (off).
    pub fn timeout(&self, name: &str) -> Option<std::time::Duration> {
        let value = self.values.get(name)?;
        duration_setting(name, value).ok().flatten()
    }

    pub fn get(&self, name: &str) -> ExecResult<String> {
        let name = canonical_name(name);
        match name.as_str() {
            "session_authorization" => Ok(self.session_user.clone()),
            "is_superuser" => Ok(if self.is_superuser { "on" } else { "off" }.into()),
            _ => self
                .values
                .get(name.as_str())
                .cloned()
                .ok_or_else(|| unknown(&name)),
        }
    }

    /// Every parameter as (name, value, description), for `SHOW ALL`.
    pub fn all(&self) -> Vec<(&'static str, String, &'static str)> {
        PARAMETERS
            .iter()
            .map(|(name, _, _, description)| (*name, self.values[name].clone(), *description))
            .collect()
    }
}

/// A parameter as `pg_settings` lists it.
pub struct CatalogSetting {
    /// The name as PostgreSQL spells it in `pg_settings` (`DateStyle`, `TimeZone`).
    pub name: &'static str,
    /// The lower-case name `current_setting` and SHOW take.
    pub key: &'static str,
    pub default: &'static str,
    /// `user` for what a session may SET, `internal` for what it may only read.
    pub context: &'static str,
    pub description: &'static str,
}

/// Every parameter, for `pg_settings`.
pub fn catalog_settings() -> Vec<CatalogSetting> {
    PARAMETERS
        .iter()
        .map(|(key, default, access, description)| CatalogSetting {
            name: display_name(key),
            key,
            default,
            context: match access {
                Access::Session => "user",
                Access::ReadOnly => "internal",
            },
            description,
        })
        .collect()
}

/// A parameter's name as PostgreSQL spells it in `pg_settings` and in SHOW's column heading
/// (`DateStyle`, `TimeZone`), from the lower-case name sessions use.
pub fn display_name(key: &str) -> &str {
    match key {
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        "timezone" | "time zone" => "TimeZone",
        "transaction isolation level" => "transaction_isolation",
        other => other,
    }
}

fn unknown(name: &str) -> ExecError {
    ExecError::UndefinedObject(format!("unrecognized configuration parameter \"{name}\""))
}

impl Session {
    /// SHOW name, or SHOW ALL: the values as text, one row.
    pub(super) fn show(&self, name: &str) -> ExecResult<Outcome> {
        let settings = self.settings.lock().expect("settings lock");
        let schema = show_schema(name);
        let batch = if name == "all" {
            let all = settings.all();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(all.iter().map(|s| s.0))),
                    Arc::new(StringArray::from_iter_values(
                        all.iter().map(|s| s.1.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(all.iter().map(|s| s.2))),
                ],
            )
        } else {
            let value = settings.get(name)?;
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(vec![value]))],
            )
        }
        .map_err(|e| ExecError::Internal(e.to_string()))?;
        Ok(Outcome::rows(schema, vec![batch]))
    }
}

pub(super) fn show_schema(name: &str) -> SchemaRef {
    if name == "all" {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, false),
        ]))
    } else {
        let column = display_name(name);
        Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_show_reset_round_trip() {
        let mut settings = Settings::new("alice", false);
        settings.set("Application_Name", Some("psql")).unwrap();
        assert_eq!(settings.get("application_name").unwrap(), "psql");
        settings.set("application_name", None).unwrap();
        assert_eq!(settings.get("application_name").unwrap(), "");
        settings.set("TIME ZONE", Some("Europe/Paris")).unwrap();
        assert_eq!(settings.get("TimeZone").unwrap(), "Europe/Paris");
    }

    #[test]
    fn read_only_and_unknown_parameters_are_refused() {
        let mut settings = Settings::new("alice", false);
        assert!(matches!(
            settings.set("server_version", Some("1")),
            Err(ExecError::CantChangeRuntimeParam(_))
        ));
        assert!(matches!(
            settings.set("no_such_thing", Some("1")),
            Err(ExecError::UndefinedObject(_))
        ));
        assert!(matches!(
            settings.set("client_encoding", Some("LATIN1")),
            Err(ExecError::InvalidParameterValue(_))
        ));
    }

    #[test]
    fn startup_options_set_parameters_that_reset_returns_to() {
        let mut settings = Settings::new("alice", false);
        settings.apply_startup(
            "options",
            r"-c search_path=app,public --statement-timeout=5s -capplication_name=my\ app",
        );
        assert_eq!(settings.get("search_path").unwrap(), "app,public");
        assert_eq!(settings.get("statement_timeout").unwrap(), "5s");
        assert_eq!(settings.get("application_name").unwrap(), "my app");
        settings.set("search_path", Some("public")).unwrap();
        settings.set("search_path", None).unwrap();
        assert_eq!(settings.get("search_path").unwrap(), "app,public");
        settings.set("application_name", Some("other")).unwrap();
        settings.set("all", None).unwrap();
        assert_eq!(settings.get("application_name").unwrap(), "my app");
        assert_eq!(settings.get("DateStyle").unwrap(), "ISO, MDY");
    }
}

/// A time setting as PostgreSQL reads it: a bare number in milliseconds, or a number with a
/// unit (`us`, `ms`, `s`, `min`, `h`, `d`). `None` for 0, which turns the timeout off.
fn duration_setting(name: &str, value: &str) -> ExecResult<Option<std::time::Duration>> {
    let invalid = || {
        ExecError::InvalidParameterValue(format!(
            "invalid value for parameter \"{name}\": \"{value}\""
        ))
    };
    let text = value.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let millis_per_unit = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return Err(invalid()),
    };
    let millis = number * millis_per_unit;
    if !(0.0..=i32::MAX as f64).contains(&millis) {
        return Err(invalid());
    }
    Ok((millis >= 1.0).then(|| std::time::Duration::from_millis(millis as u64)))
}

#[cfg(test)]
mod timeout_tests {
    use super::*;

    #[test]
    fn timeouts_read_as_postgresql_reads_them() {
        let ms =
            |v: &str| duration_setting("statement_timeout", v).map(|d| d.map(|d| d.as_millis()));
        assert_eq!(ms("0").unwrap(), None);
        assert_eq!(ms("250").unwrap(), Some(250));
        assert_eq!(ms("2s").unwrap(), Some(2000));
        assert_eq!(ms("1min").unwrap(), Some(60_000));
        assert!(ms("soon").is_err());
        assert!(ms("-5").is_err());
        assert!(ms("5 parsecs").is_err());
    }
}
