//! Where the store's writes go in cluster mode. A single node applies each command itself, as
//! the next sequence number; a node of a cluster hands every replicated command to its
//! [`Replicator`], which commits it through the Raft log and has it applied here at the log's
//! index (`replicated`). The callers of [`Store::apply`] do not change: jobs, sessions and
//! start-up write the same way on one node and on many. Only a node's own job rows stay out
//! of the log: each node runs and lists its own jobs, and they carry no sequence number.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rocksdb::{WriteBatch, WriteOptions};

use super::{Applied, Command, StorageError, StorageResult, Store};

/// A command's cluster-wide commit, resolved once this node has applied it.
pub type CommitFuture<'a> = Pin<Box<dyn Future<Output = StorageResult<Applied>> + Send + 'a>>;

/// Commits commands cluster-wide. A refused command comes back as
/// [`StorageError::Conflict`], as from a local apply; a cluster that cannot commit answers
/// [`StorageError::ClusterUnavailable`] or [`StorageError::ClusterOutcomeUnknown`] within a
/// bounded time.
pub trait Replicator: Send + Sync {
    fn commit(&self, command: Command) -> CommitFuture<'_>;
}

impl Store {
    /// Makes this store a cluster node's: from now on replicated commands are committed
    /// through `replicator`. Only the first call counts.
    pub fn install_replicator(&self, replicator: Arc<dyn Replicator>) {
        let _ = self.replicator.set(replicator);
    }

    /// Whether this store's commands are committed through a cluster.
    pub fn is_replicated(&self) -> bool {
        self.replicator.get().is_some()
    }

    /// In cluster mode, the commit of `command` through the cluster, for callers that await
    /// it instead of blocking a thread; `None` on a single node or for a node's own job rows.
    pub fn commit_replicated(&self, command: &Command) -> Option<CommitFuture<'_>> {
        let replicator = self.replicator.get()?;
        (!command.is_node_local()).then(|| replicator.commit(command.clone()))
    }

    /// `Some` when this store is a cluster node's: `command` applied the cluster's way (see
    /// the module's paragraph), waiting on this thread.
    pub(super) fn apply_in_cluster(&self, command: &Command) -> Option<StorageResult<Applied>> {
        if command.is_node_local() {
            return self
                .replicator
                .get()
                .map(|_| self.apply_node_local(command));
        }
        let commit = self.commit_replicated(command)?;
        Some(wait_on_runtime(commit))
    }

    /// Writes a node's own rows (its jobs) in one batch of their own, outside the sequence of
    /// replicated commands: the applied sequence number is the log's alone.
    fn apply_node_local(&self, command: &Command) -> StorageResult<Applied> {
        let storage_root = self.dir.storage();
        let mut ctx = self.apply_context(self.applied_seq(), self.sync_writes, &storage_root);
        let mut batch = WriteBatch::default();
        command.write_all_into(&mut ctx, &mut batch)?;
        let mut options = WriteOptions::default();
        options.set_sync(self.wal_sync);
        self.db.write_opt(batch, &options)?;
        Ok(ctx.applied)
    }
}

/// Waits for `commit` on this thread. The commit needs the runtime's timers and sockets, so on
/// a runtime worker the worker is handed over first; outside a multi-threaded runtime there is
/// nothing to drive it.
fn wait_on_runtime(commit: CommitFuture<'_>) -> StorageResult<Applied> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(commit))
        }
        _ => Err(StorageError::ClusterUnavailable(
            "a cluster write was made outside the server's runtime".into(),
        )),
    }
}
