//! The layers a configuration is read from, lowest first: the embedded `server.toml`, a file
//! that holds only what differs from it, and `KALAMDB_<SECTION>__<KEY>` environment variables.
//! Also the masked rendering of the result, for `kalamdb config show`.
//!
//! Layers are merged as TOML tables before the schema sees them, so the schema's
//! `deny_unknown_fields` still refuses a misspelt key by name, from whichever layer it came.

use toml::{Table, Value};

use super::{Config, ConfigError, DEFAULT_CONFIG_TOML};

const ENV_PREFIX: &str = "KALAMDB_";
/// Separates the section from the key: `KALAMDB_SERVER__PORT` is `[server] port`.
const ENV_SEPARATOR: &str = "__";
const MASK: &str = "********";

/// Merges the layers and reads the result into the schema. `file` is the file's text and the
/// name its errors carry; `environment` is every variable of the process (others are ignored).
pub(super) fn resolve(
    file: Option<(&str, &str)>,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut merged: Table = DEFAULT_CONFIG_TOML
        .parse()
        .expect("the embedded server.toml is valid TOML");
    if let Some((text, origin)) = file {
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                origin: origin.to_owned(),
                message: e.to_string(),
            })?;
        overlay(&mut merged, table);
        // Read once without the environment, so the file's own mistakes are reported as the
        // file's.
        read_schema(&merged, origin)?;
    }
    let overrides = environment_overrides(environment, &merged)?;
    if overrides.names.is_empty() {
        return read_schema(
            &merged,
            file.map_or("embedded defaults", |(_, origin)| origin),
        );
    }
    overlay(&mut merged, overrides.table);
    read_schema(
        &merged,
        &format!("from the environment ({})", overrides.names.join(", ")),
    )
}

fn read_schema(table: &Table, origin: &str) -> Result<Config, ConfigError> {
    Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.message().trim_end().to_owned(),
        })
}

/// Puts `upper` over `lower` key by key: a table merges into a table, any other value replaces
/// what was there.
fn overlay(lower: &mut Table, upper: Table) {
    for (key, value) in upper {
        match (lower.get_mut(&key), value) {
            (Some(Value::Table(lower)), Value::Table(upper)) => overlay(lower, upper),
            (_, value) => {
                lower.insert(key, value);
            }
        }
    }
}

struct Overrides {
    table: Table,
    /// The variables that contributed, for error messages.
    names: Vec<String>,
}

/// Reads `KALAMDB_<SECTION>__<KEY>=value` variables into a table shaped like the file. A value
/// takes the type of the key it overrides: text as written for text keys, TOML syntax for
/// numbers, booleans and lists.
fn environment_overrides(
    environment: impl IntoIterator<Item = (String, String)>,
    current: &Table,
) -> Result<Overrides, ConfigError> {
    let mut overrides = Overrides {
        table: Table::new(),
        names: Vec::new(),
    };
    let mut variables: Vec<(String, String)> = environment
        .into_iter()
        .filter(|(name, _)| {
            name.strip_prefix(ENV_PREFIX)
                .is_some_and(|rest| rest.contains(ENV_SEPARATOR))
        })
        .collect();
    // The environment's order is arbitrary; errors and `names` should not be.
    variables.sort();
    for (name, raw) in variables {
        let invalid = |message: String| ConfigError::Parse {
            origin: format!("environment variable {name}"),
            message,
        };
        let path = &name[ENV_PREFIX.len()..];
        let (section, key) = path
            .split_once(ENV_SEPARATOR)
            .map(|(s, k)| (s.to_ascii_lowercase(), k.to_ascii_lowercase()))
            .filter(|(s, k)| !s.is_empty() && !k.is_empty() && !k.contains(ENV_SEPARATOR))
            .ok_or_else(|| {
                invalid(format!(
                    "expected {ENV_PREFIX}<SECTION>{ENV_SEPARATOR}<KEY>, for example KALAMDB_SERVER__PORT"
                ))
            })?;
        let Some(Value::Table(known)) = current.get(&section) else {
            return Err(invalid(format!("unknown section [{section}]")));
        };
        let value = typed_like(known.get(&key), &raw).map_err(invalid)?;
        let Value::Table(target) = overrides
            .table
            .entry(section)
            .or_insert_with(|| Value::Table(Table::new()))
        else {
            unreachable!("sections of the override table are tables")
        };
        target.insert(key, value);
        overrides.names.push(name.clone());
    }
    Ok(overrides)
}

/// Reads a variable's text as a value of the type `current` has. A key the defaults leave unset
/// (`[backup] signing_key`) is text.
fn typed_like(current: Option<&Value>, raw: &str) -> Result<Value, String> {
    match current {
        None | Some(Value::String(_)) => Ok(Value::String(raw.to_owned())),
        Some(current) => {
            let wrong_type = || format!("`{raw}` is not {}", with_article(current.type_str()));
            let mut document: Table = format!("value = {raw}").parse().map_err(|_| wrong_type())?;
            let value = document.remove("value").expect("the document has a value");
            if value.same_type(current) {
                Ok(value)
            } else {
                Err(wrong_type())
            }
        }
    }
}

fn with_article(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

/// The configuration as TOML with passwords and keys replaced by a mask.
pub(super) fn masked_toml(config: &Config) -> String {
    let mut shown = config.clone();
    shown.auth.root_password = MASK.to_owned();
    if shown.backup.signing_key.is_some() {
        shown.backup.signing_key = Some(MASK.to_owned());
    }
    if let Some(remote) = shown.backup.remote.as_mut() {
        for secret in [&mut remote.access_key_id, &mut remote.secret_access_key] {
            if secret.is_some() {
                *secret = Some(MASK.to_owned());
            }
        }
    }
    toml::to_string(&shown).expect("the configuration serializes to TOML")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_one_line_file_keeps_every_other_default() {
        let config = resolve(Some(("[server]\nport = 6543\n", "one-line.toml")), env(&[])).unwrap();
        let defaults = Config::defaults();
        assert_eq!(config.server.port, 6543);
        assert_eq!(config.server.host, defaults.server.host);
        assert_eq!(config.auth.scram_iterations, defaults.auth.scram_iterations);
        assert_eq!(
            config.backup.compression_level,
            defaults.backup.compression_level
        );
    }

    #[test]
    fn a_file_setting_only_the_root_password_is_complete() {
        let config = resolve(
            Some(("[auth]\nroot_password = \"s3cret\"\n", "auth.toml")),
            env(&[]),
        )
        .unwrap();
        assert_eq!(config.auth.root_password, "s3cret");
        assert_eq!(config.auth.scram_iterations, 4096);
        assert_eq!(config.auth.max_failed_attempts, 5);
    }

    #[test]
    fn unknown_keys_in_a_file_are_refused_by_name_and_file() {
        let err = resolve(
            Some(("[server]\nprot = 1\n", "/etc/kalamdb/server.toml")),
            env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("prot") && err.contains("/etc/kalamdb/server.toml"),
            "{err}"
        );
        let err = resolve(Some(("[sever]\nport = 1\n", "s.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sever"), "{err}");
    }

    #[test]
    fn environment_variables_override_the_file_with_the_keys_type() {
        let config = resolve(
            Some(("[server]\nport = 6543\n", "f.toml")),
            env(&[
                ("KALAMDB_SERVER__PORT", "7000"),
                ("KALAMDB_SERVER__HOST", "0.0.0.0"),
                ("KALAMDB_STORAGE__SYNC_WRITES", "false"),
                ("KALAMDB_BACKUP__ALLOWED_DIRS", "[\"/backups\"]"),
                (
                    "KALAMDB_BACKUP__SIGNING_KEY",
                    "0123456789abcdef0123456789abcdef",
                ),
                ("KALAMDB_ROOT_PASSWORD", "not a layered variable"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.port, 7000);
        assert_eq!(config.server.host, "0.0.0.0");
        assert!(!config.storage.sync_writes);
        assert_eq!(
            config.backup.allowed_dirs,
            vec![std::path::PathBuf::from("/backups")]
        );
        assert_eq!(
            config.backup.signing_key.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn bad_environment_overrides_name_the_variable() {
        for (name, value, expected) in [
            ("KALAMDB_SERVER__PORT", "many", "`many` is not an integer"),
            ("KALAMDB_SERVER__PORT", "true", "`true` is not an integer"),
            (
                "KALAMDB_STORAGE__SYNC_WRITES",
                "yes",
                "`yes` is not a boolean",
            ),
            ("KALAMDB_SEVER__PORT", "1", "unknown section [sever]"),
            ("KALAMDB_SERVER__", "1", "<SECTION>"),
        ] {
            let err = resolve(None, env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name) && err.contains(expected), "{err}");
        }
        let err = resolve(None, env(&[("KALAMDB_SERVER__PROT", "1")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("prot") && err.contains("KALAMDB_SERVER__PROT"),
            "{err}"
        );
    }

    #[test]
    fn the_masked_rendering_hides_secrets_and_reads_back_as_the_same_configuration() {
        let mut config = Config::defaults();
        config.auth.root_password = "hunter2".into();
        config.backup.signing_key = Some("k".repeat(40));
        config.backup.remote = Some(crate::config::BackupRemote {
            endpoint: None,
            region: "eu-west-1".into(),
            buckets: vec!["backups".into()],
            access_key_id: Some("AKIAEXAMPLEKEYID".into()),
            secret_access_key: Some("s3-secret-value".into()),
        });
        let shown = masked_toml(&config);
        for secret in [
            "hunter2",
            &"k".repeat(40),
            "AKIAEXAMPLEKEYID",
            "s3-secret-value",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(shown.matches(MASK).count(), 4, "{shown}");
        let reread = resolve(Some((&shown, "shown")), env(&[])).unwrap();
        assert_eq!(reread.server.port, config.server.port);
        assert_eq!(reread.flush.segment_rows, config.flush.segment_rows);
        assert_eq!(reread.logging.format, config.logging.format);
    }
}
