//! Tests' stand-in for a crash of the process: a copy of a data directory taken while its store
//! is open holds what its files hold and nothing RocksDB keeps in memory, so opening the copy
//! recovers what a restart after `kill -9` would (the OS's page cache survives such a crash).

use std::path::Path;

use super::Durability;

/// The durability whose promise a crash tests: every acknowledged commit fsynced.
pub(crate) const FSYNC_ON_COMMIT: Durability = Durability {
    sync_writes: true,
    wal_enabled: true,
};

/// Copies the data directory `from` (its store still open, nothing writing) to a new
/// temporary directory.
pub(crate) fn crashed_copy(from: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("a temporary directory");
    copy_tree(from, copy.path());
    copy
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating a copied directory");
    for entry in std::fs::read_dir(from).expect("reading a data directory") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copying a data file");
        }
    }
}
