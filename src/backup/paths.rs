//! The path rules BACKUP and RESTORE apply before a job is queued.
//!
//! Rules are matched on normalized path components, never on substrings: `/etc`, `//etc/x`,
//! `/./etc/x` and `c:\WINDOWS\x` all name a refused directory, while `/etcetera/x` does not.
//! After the syntactic rules pass, the parent directory is resolved (symlinks included) and the
//! location rules are checked again on the real path, so a symlink cannot lead into a refused
//! directory or into the data directory.

use std::path::{Path, PathBuf};

/// Why a path was refused. `Invalid` maps to SQLSTATE 22023, `Forbidden` to 42501.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
}

/// Directories no backup may be written to or read from (and everything under them). Windows
/// entries are compared case-insensitively.
const REFUSED_UNIX: [&[&str]; 3] = [&["etc"], &["root"], &["var", "log"]];
const REFUSED_WINDOWS: [&[&str]; 1] = [&["c:", "windows"]];

/// What the statement is doing with the path, for messages and suffix rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    BackupTarget,
    /// The archives a schedule will write: a backup target's rules, checked at start, except
    /// that a file of that name may exist now (each run checks its own name when submitted,
    /// and a run of the same second as the last one must not stop a restart).
    ScheduledTarget,
    RestoreSource,
    /// SHOW BACKUP and VERIFY BACKUP read an archive as a restore does, and change nothing.
    Inspected,
}

impl PathUse {
    pub(super) fn noun(self) -> &'static str {
        match self {
            PathUse::BackupTarget | PathUse::ScheduledTarget => "backup path",
            PathUse::RestoreSource => "restore path",
            PathUse::Inspected => "archive path",
        }
    }

    pub(super) fn suffixes(self) -> &'static [&'static str] {
        match self {
            PathUse::BackupTarget | PathUse::ScheduledTarget => &[".tar.gz"],
            PathUse::RestoreSource | PathUse::Inspected => &[".tar.gz", ".tgz"],
        }
    }
}

/// Where a server keeps its data and which directories backups may use.
pub struct PathPolicy<'a> {
    pub data_dir: &'a Path,
    pub allowed_dirs: &'a [PathBuf],
}

/// Checks `raw` (as written in the statement) and returns the absolute path to use.
pub fn check_path(
    raw: &str,
    quoted: bool,
    usage: PathUse,
    policy: &PathPolicy,
) -> Result<PathBuf, PathError> {
    let noun = usage.noun();
    let invalid = |rule: String| Err(PathError::Invalid(rule));
    if !quoted {
        return invalid(format!(
            "the {noun} must be quoted (single or double quotes), e.g. '/backups/kalamdb.tar.gz'"
        ));
    }
    if raw.contains('\0') {
        return invalid(format!("the {noun} must not contain a NUL byte"));
    }
    let windows = is_windows_form(raw);
    let components = split_components(raw, windows);
    if components.contains(&"..") {
        return invalid(format!(
            "the {noun} must not contain '..' (path traversal is not allowed)"
        ));
    }
    check_refused_dirs(&components, windows, noun)?;
    if windows || !raw.starts_with('/') {
        return invalid(format!("the {noun} must be an absolute path, got '{raw}'"));
    }
    let suffixes = usage.suffixes();
    if !suffixes.iter().any(|s| raw.ends_with(s)) || components.is_empty() {
        return invalid(format!(
            "the {noun} must end in {}, got '{raw}'",
            suffixes.join(" or ")
        ));
    }
    let path: PathBuf = std::iter::once("/")
        .chain(components.iter().copied())
        .collect();
    check_location(&path, policy, noun)?;

    let parent = path.parent().unwrap_or(Path::new("/"));
    let real_parent = std::fs::canonicalize(parent).map_err(|e| {
        PathError::Invalid(format!(
            "the directory {} of the {noun} does not exist or cannot be read: {e}",
            parent.display()
        ))
    })?;
    if !real_parent.is_dir() {
        return invalid(format!("{} is not a directory", parent.display()));
    }
    let real = real_parent.join(path.file_name().expect("a checked path has a file name"));
    check_resolved(&real, policy, noun)?;

    match usage {
        PathUse::BackupTarget => {
            if std::fs::symlink_metadata(&real).is_ok() {
                let stem = raw
                    .strip_suffix(".tar.gz")
                    .unwrap_or(raw)
                    .trim_end_matches('/');
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
                return invalid(format!(
                    "{} already exists and is not overwritten; use a new name, e.g. '{stem}-{stamp}.tar.gz'",
                    real.display()
                ));
            }
        }
        PathUse::ScheduledTarget => {}
        PathUse::RestoreSource | PathUse::Inspected => {
            let resolved = std::fs::canonicalize(&real).map_err(|e| {
                PathError::Invalid(format!("cannot read the archive {}: {e}", real.display()))
            })?;
            if !resolved.is_file() {
                return invalid(format!("{} is not a regular file", real.display()));
            }
            check_resolved(&resolved, policy, noun)?;
            return Ok(resolved);
        }
    }
    Ok(real)
}

/// The location rules again on a path whose symlinks have been resolved.
fn check_resolved(real: &Path, policy: &PathPolicy, noun: &str) -> Result<(), PathError> {
    let components: Vec<String> = real
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let refs: Vec<&str> = components.iter().map(String::as_str).collect();
    check_refused_dirs(&refs, false, noun)?;
    check_location(real, policy, noun)
}

/// `C:\...`, `c:/...`: a drive-letter path, whose separators may be either slash.
fn is_windows_form(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Components without empty and `.` parts. Windows-form paths split on both separators.
fn split_components(raw: &str, windows: bool) -> Vec<&str> {
    let separators: &[char] = if windows { &['/', '\\'] } else { &['/'] };
    raw.split(separators)
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

fn check_refused_dirs(components: &[&str], windows: bool, noun: &str) -> Result<(), PathError> {
    let refused: &[&[&str]] = if windows {
        &REFUSED_WINDOWS
    } else {
        &REFUSED_UNIX
    };
    for dir in refused {
        let under = components.len() >= dir.len()
            && dir.iter().zip(components).all(|(want, have)| {
                if windows {
                    want.eq_ignore_ascii_case(have)
                } else {
                    want == have
                }
            });
        if under {
            let shown = if windows {
                "C:\\Windows".to_owned()
            } else {
                format!("/{}", dir.join("/"))
            };
            return Err(PathError::Forbidden(format!(
                "the {noun} must not be in {shown} or below it (system directory)"
            )));
        }
    }
    Ok(())
}

/// The data-directory and `allowed_dirs` rules, on an absolute path.
fn check_location(path: &Path, policy: &PathPolicy, noun: &str) -> Result<(), PathError> {
    let data_dir = std::fs::canonicalize(policy.data_dir).unwrap_or(policy.data_dir.to_path_buf());
    if path.starts_with(&data_dir) || path.starts_with(policy.data_dir) {
        return Err(PathError::Forbidden(format!(
            "the {noun} must not be inside the data directory {}",
            data_dir.display()
        )));
    }
    if !policy.allowed_dirs.is_empty()
        && !policy.allowed_dirs.iter().any(|allowed| {
            path.starts_with(allowed)
                || std::fs::canonicalize(allowed).is_ok_and(|real| path.starts_with(real))
        })
    {
        let allowed: Vec<String> = policy
            .allowed_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        return Err(PathError::Forbidden(format!(
            "the {noun} must be under one of [backup] allowed_dirs: {}",
            allowed.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, usage: PathUse) -> Result<PathBuf, PathError> {
        let data = tempfile_dir();
        check_path(
            raw,
            true,
            usage,
            &PathPolicy {
                data_dir: &data,
                allowed_dirs: &[],
            },
        )
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kalamdb-paths-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        dir.join("data")
    }

    fn forbidden(raw: &str) -> bool {
        matches!(
            check(raw, PathUse::BackupTarget),
            Err(PathError::Forbidden(_))
        )
    }

    #[test]
    fn system_directories_are_matched_on_components() {
        for raw in [
            "/etc",
            "/etc/x.tar.gz",
            "//etc/x.tar.gz",
            "/./etc/x.tar.gz",
            "/root/x.tar.gz",
            "/var/log/x.tar.gz",
            "/var//log/./x.tar.gz",
            "c:\\WINDOWS\\x.tar.gz",
            "C:/Windows/System32/x.tar.gz",
        ] {
            assert!(
                forbidden(raw),
                "{raw} should be refused as a system directory"
            );
        }
        assert!(!forbidden("/etcetera/x.tar.gz"));
        assert!(!forbidden("/var/logs/x.tar.gz"));
    }

    #[test]
    fn syntactic_rules_name_the_rule() {
        let message = |raw: &str| check(raw, PathUse::BackupTarget).unwrap_err().to_string();
        assert!(message("/tmp/../tmp/x.tar.gz").contains(".."));
        assert!(message("/tmp/x\0.tar.gz").contains("NUL"));
        assert!(message("tmp/x.tar.gz").contains("absolute"));
        assert!(message("/tmp/x.zip").contains(".tar.gz"));
        assert!(message("/no/such/dir/x.tar.gz").contains("does not exist"));
        let unquoted = check_path(
            "/tmp/x.tar.gz",
            false,
            PathUse::BackupTarget,
            &PathPolicy {
                data_dir: &tempfile_dir(),
                allowed_dirs: &[],
            },
        );
        assert!(unquoted.unwrap_err().to_string().contains("quoted"));
    }

    #[test]
    fn the_data_directory_and_symlinks_into_it_are_refused() {
        let data = tempfile_dir();
        let inside = format!("{}/x.tar.gz", data.display());
        assert!(forbidden(&inside));
        let link = data.parent().unwrap().join("link-to-data");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&data, &link).unwrap();
        assert!(forbidden(&format!("{}/x.tar.gz", link.display())));
    }

    #[test]
    fn allowed_dirs_restrict_where_backups_go() {
        let data = tempfile_dir();
        let allowed = vec![data.parent().unwrap().join("allowed")];
        std::fs::create_dir_all(&allowed[0]).unwrap();
        let policy = PathPolicy {
            data_dir: &data,
            allowed_dirs: &allowed,
        };
        let ok = format!("{}/x.tar.gz", allowed[0].display());
        assert!(check_path(&ok, true, PathUse::BackupTarget, &policy).is_ok());
        let elsewhere = check_path("/tmp/x.tar.gz", true, PathUse::BackupTarget, &policy);
        assert!(matches!(elsewhere, Err(PathError::Forbidden(m)) if m.contains("allowed_dirs")));
    }

    #[test]
    fn restore_accepts_tgz_and_needs_an_existing_regular_file() {
        let data = tempfile_dir();
        let file = data.parent().unwrap().join("old.tgz");
        std::fs::write(&file, b"x").unwrap();
        assert!(check(&file.display().to_string(), PathUse::RestoreSource).is_ok());
        let missing = data.parent().unwrap().join("missing.tar.gz");
        assert!(check(&missing.display().to_string(), PathUse::RestoreSource).is_err());
        let dir = data.parent().unwrap().join("adir.tar.gz");
        std::fs::create_dir_all(&dir).unwrap();
        let err = check(&dir.display().to_string(), PathUse::RestoreSource).unwrap_err();
        assert!(err.to_string().contains("regular file"));
    }

    #[test]
    fn a_backup_target_must_not_exist_but_a_scheduled_name_may_exist_at_start() {
        let data = tempfile_dir();
        let file = data.parent().unwrap().join("often-20261205T085132Z.tar.gz");
        std::fs::write(&file, b"x").unwrap();
        let raw = file.display().to_string();
        let err = check(&raw, PathUse::BackupTarget).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(check(&raw, PathUse::ScheduledTarget).unwrap(), file);
        assert!(matches!(
            check(
                "/etc/often-20261205T085132Z.tar.gz",
                PathUse::ScheduledTarget
            ),
            Err(PathError::Forbidden(_))
        ));
    }
}
