//! Cluster mode's Raft storage against openraft's own storage test suite: log appends, reads,
//! truncation and purging, votes, applying entries, and a snapshot built on one store and
//! installed on another, each on a fresh data directory.

use std::sync::Arc;

use kalamdb::cluster::TypeConfig;
use kalamdb::cluster::log_store::LogStore;
use kalamdb::cluster::state_machine::StateMachine;
use kalamdb::storage::{Durability, Store};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

/// A store on a temporary directory, which the guard removes after the test.
struct TempStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for TempStores {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let durability = Durability {
            sync_writes: false,
            wal_enabled: true,
        };
        let store = Arc::new(Store::open(dir.path(), durability).expect("store opens"));
        let machine = StateMachine::new(store.clone())?;
        Ok((dir, LogStore::new(store), machine))
    }
}

#[test]
fn openraft_storage_suite_passes_on_the_rocksdb_log_and_state_machine() {
    Suite::test_all(TempStores).expect("every test of openraft's storage suite passes");
}
