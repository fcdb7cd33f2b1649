//! Making files and directories durable and visible in one step. A file is written under a
//! temporary name, fsynced, renamed (or hard-linked, which never replaces an existing file) to
//! its final name, and its directory fsynced: after a crash the final name holds either the old
//! content or the complete new one, never a torn file. Every place that publishes a file uses
//! these functions. The system calls go through rustix's safe wrappers.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Whether publishing may replace a file already at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// rename(2): the target is replaced atomically.
    Replace,
    /// link(2), then the temporary name is removed: fails with `AlreadyExists` instead of
    /// replacing a file someone else put at the target.
    NoClobber,
}

/// Makes the fully written file `tmp` durable, then visible as `target`.
pub fn publish_file(tmp: &Path, target: &Path, how: Publish) -> io::Result<()> {
    File::open(tmp)?.sync_all()?;
    match how {
        Publish::Replace => std::fs::rename(tmp, target)?,
        Publish::NoClobber => {
            std::fs::hard_link(tmp, target)?;
            std::fs::remove_file(tmp)?;
        }
    }
    fsync_parent(target)
}

/// Writes `bytes` as `target`, replacing it atomically; `mode` sets the file's permissions.
pub fn write_file(target: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    let tmp = temporary_name(target);
    std::fs::write(&tmp, bytes)?;
    if let Some(mode) = mode {
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    }
    publish_file(&tmp, target, Publish::Replace)
}

/// Makes the directory `tmp` visible as `target` (renamed; its contents must already be durable).
pub fn publish_dir(tmp: &Path, target: &Path) -> io::Result<()> {
    std::fs::rename(tmp, target)?;
    fsync_parent(target)
}

/// `<target>.tmp`, beside the target so that the rename stays on one file system.
pub fn temporary_name(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    target.with_file_name(name)
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn fsync_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => fsync_dir(parent),
        None => fsync_dir(Path::new(".")),
    }
}

/// Makes everything written on `path`'s file system durable (syncfs(2)): one call instead of an
/// fsync per file when hundreds were written.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    rustix::fs::syncfs(&dir)?;
    Ok(())
}

/// Atomically exchanges two directory entries (renameat2 with RENAME_EXCHANGE).
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )?;
    Ok(())
}

/// Bytes available to this user on the file system holding `path`.
pub fn available_space(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_clobber_publishing_leaves_an_existing_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("archive.tar.gz");
        std::fs::write(&target, b"theirs").unwrap();
        let tmp = dir.path().join("archive.tar.gz.partial");
        std::fs::write(&tmp, b"ours").unwrap();
        let err = publish_file(&tmp, &target, Publish::NoClobber).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        write_file(&target, b"replaced", Some(0o600)).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"replaced");
        assert!(!temporary_name(&target).exists());
    }

    #[test]
    fn exchange_swaps_two_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("mark"), b"a").unwrap();
        exchange(&a, &b).unwrap();
        assert!(b.join("mark").exists() && !a.join("mark").exists());
        assert!(available_space(dir.path()).unwrap() > 0);
        sync_filesystem(dir.path()).unwrap();
    }
}
