//! Where an archive is: a file on this machine, or an object in the store `[backup.remote]`
//! configures. Jobs, SHOW BACKUP and the archive reader name and open archives through this
//! one type, so each reads a remote archive exactly as it reads a file.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::remote::RemoteObject;

#[derive(Clone, Debug)]
pub enum ArchiveLocation {
    Local(PathBuf),
    Remote(RemoteObject),
}

impl fmt::Display for ArchiveLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveLocation::Local(path) => write!(f, "{}", path.display()),
            ArchiveLocation::Remote(object) => write!(f, "{object}"),
        }
    }
}

impl From<PathBuf> for ArchiveLocation {
    fn from(path: PathBuf) -> Self {
        ArchiveLocation::Local(path)
    }
}

impl From<&Path> for ArchiveLocation {
    fn from(path: &Path) -> Self {
        ArchiveLocation::Local(path.to_path_buf())
    }
}

impl ArchiveLocation {
    /// The file, for a local archive.
    pub fn local(&self) -> Option<&Path> {
        match self {
            ArchiveLocation::Local(path) => Some(path),
            ArchiveLocation::Remote(_) => None,
        }
    }

    /// What job parameters record: the path, or the URL.
    pub fn recorded(&self) -> PathBuf {
        match self {
            ArchiveLocation::Local(path) => path.clone(),
            ArchiveLocation::Remote(object) => PathBuf::from(object.to_string()),
        }
    }

    /// Opens the archive for one sequential read; returns the reader and the archive's size.
    pub fn open(&self) -> std::io::Result<(Box<dyn Read + Send>, u64)> {
        match self {
            ArchiveLocation::Local(path) => {
                let file = File::open(path)?;
                let len = file.metadata()?.len();
                Ok((Box::new(file), len))
            }
            ArchiveLocation::Remote(object) => {
                let (download, len) = object.download()?;
                Ok((Box::new(download), len))
            }
        }
    }
}
