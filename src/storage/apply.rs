//! Applying commands: the one write batch per command that records its sequence number, and
//! the wait until that batch is fsynced (in the caller's thread, or awaited without one; see
//! `wal_sync`).

use std::path::Path;
use std::sync::Arc;

use rocksdb::WriteBatch;

use super::{
    APPLIED_SEQ_KEY, Applied, CF_META, CheckEvaluator, Command, StorageResult, Store,
    apply_context, bulk_load, cf, command, sequences, wal_sync,
};

impl Store {
    /// Applies one command atomically: all of it, with the new sequence number, or nothing.
    /// With `sync_writes`, it returns once the batch is fsynced.
    /// In cluster mode the command is committed through the cluster instead (`replicator`).
    pub fn apply(&self, command: &Command) -> StorageResult<Applied> {
        if let Some(applied) = self.apply_in_cluster(command) {
            return applied;
        }
        let outcome = self.apply_unsynced(command)?;
        if self.wal_sync {
            self.sync_wal_through(outcome.seq)?;
        }
        Ok(outcome)
    }

    /// As [`Self::apply`], without waiting for the fsync: [`Self::durable`] must reach the
    /// outcome's sequence number before the command may be acknowledged.
    pub fn apply_unsynced(&self, command: &Command) -> StorageResult<Applied> {
        if let Some(applied) = self.apply_in_cluster(command) {
            return applied;
        }
        // A sequence set back to its start must not hand out a value reserved before.
        let ranges = command
            .restarts_sequences()
            .then(|| self.sequence_ranges.lock().expect("sequence ranges lock"));
        let applied = self.apply_lock.lock().expect("apply lock poisoned");
        let seq = *applied + 1;
        self.apply_locked(command, seq, None, applied, ranges)
    }

    /// As [`Self::apply_unsynced`] when no other command is being applied; `None` when one is
    /// (a flush publishing a segment holds the apply lock for seconds: the caller then waits
    /// where waiting blocks no other session).
    pub fn try_apply_unsynced(&self, command: &Command) -> Option<StorageResult<Applied>> {
        if command.restarts_sequences() || self.is_replicated() {
            return None;
        }
        match self.apply_lock.try_lock() {
            Ok(applied) => {
                let seq = *applied + 1;
                Some(self.apply_locked(command, seq, None, applied, None))
            }
            Err(std::sync::TryLockError::WouldBlock) => None,
            Err(std::sync::TryLockError::Poisoned(_)) => panic!("apply lock poisoned"),
        }
    }

    /// Applies `command` as sequence number `seq` (above the applied one) under the apply
    /// lock; `machine_state`, when given, is recorded in the same batch (see `replicated`).
    pub(super) fn apply_locked(
        &self,
        command: &Command,
        seq: u64,
        machine_state: Option<&[u8]>,
        mut applied: std::sync::MutexGuard<'_, u64>,
        mut ranges: Option<std::sync::MutexGuard<'_, sequences::ReservedRanges>>,
    ) -> StorageResult<Applied> {
        let mut batch = WriteBatch::with_capacity_bytes(command.batch_size_hint());
        let storage_root = self.dir.storage();
        let mut ctx = self.apply_context(seq, self.sync_writes, &storage_root);
        // Under the apply lock the committed catalog cannot change while the command reads it.
        ctx.write_shapes = Some(&self.write_shapes);
        command.write_all_into(&mut ctx, &mut batch)?;
        batch.put_cf(cf(&self.db, CF_META), APPLIED_SEQ_KEY, seq.to_be_bytes());
        if let Some(state) = machine_state {
            batch.put_cf(
                cf(&self.db, CF_META),
                super::replicated::MACHINE_STATE_KEY,
                state,
            );
        }
        if ctx.wrote_catalog() {
            self.write_shapes.forget_all();
        }
        self.db.write_opt(batch, &self.write_options)?;
        self.record_written(&mut applied, seq);
        // A bulk load's rows go in after its batch, still under the lock, so no command and no
        // backup point falls between its checks and its rows. Should the ingest fail, the
        // batch only raised counters: the load is reported failed, and none of its rows is
        // visible.
        if let Some(file) = ctx.applied.ingest_rows.take() {
            bulk_load::ingest(self, &file)?;
        }
        if command.changes_catalog() {
            self.catalog_epoch
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        drop(applied);
        let outcome = ctx.applied;
        if let Some(ranges) = ranges.as_mut() {
            for id in &outcome.restarted_sequences {
                ranges.remove(id);
            }
        }
        Ok(outcome)
    }

    /// Returns once every command up to `seq` is fsynced (at once without `sync_writes`),
    /// without blocking the calling thread: see `wal_sync`.
    pub async fn durable(self: &Arc<Self>, seq: u64) -> StorageResult<()> {
        if !self.wal_sync {
            return Ok(());
        }
        let syncer = match self.wal_syncer.get() {
            Some(syncer) => syncer,
            None => {
                let synced = *self.synced_seq.lock().expect("sync lock poisoned");
                let started = wal_sync::WalSyncer::start(Arc::downgrade(self), synced)?;
                self.wal_syncer.get_or_init(|| started)
            }
        };
        syncer.durable(seq).await
    }

    /// Records `seq` as applied, its batch being in the write-ahead log.
    pub(super) fn record_written(&self, applied: &mut std::sync::MutexGuard<'_, u64>, seq: u64) {
        **applied = seq;
        self.written_seq
            .store(seq, std::sync::atomic::Ordering::SeqCst);
    }

    /// Applies `commands` (a transaction block's so far) to nothing: the error applying them
    /// now would give, checks deferred to their end aside. Stream appends are left out (they
    /// write log files as they apply).
    pub fn dry_run(&self, commands: &[Command]) -> StorageResult<()> {
        let storage_root = self.dir.storage();
        let mut ctx = self.apply_context(0, false, &storage_root);
        let mut batch = WriteBatch::default();
        for command in commands {
            if !matches!(command, Command::AppendStream { .. }) {
                command.write_into(&mut ctx, &mut batch)?;
            }
        }
        Ok(())
    }

    /// What a command applied as sequence number `seq` sees.
    pub(super) fn apply_context<'a>(
        &'a self,
        seq: u64,
        sync: bool,
        storage_root: &'a Path,
    ) -> command::ApplyContext<'a> {
        let mut ctx = command::ApplyContext::new(&self.db, seq, &self.streams_root, sync)
            .with_segment_files(apply_context::SegmentFiles {
                storage_root,
                footers: &self.segment_cache,
            });
        ctx.check_evaluator = self.check_evaluator.get().map(|e| e.as_ref());
        ctx
    }

    /// Installs what evaluates CHECK constraints over rows a foreign key's cascade rewrites
    /// (the executor does, at start); only the first call counts.
    pub fn install_check_evaluator(&self, evaluator: Arc<dyn CheckEvaluator>) {
        let _ = self.check_evaluator.set(evaluator);
    }

    /// Group commit: fsyncs the write-ahead log unless a concurrent caller's fsync already
    /// covered `seq`. Whoever syncs covers every batch written before it started, so commits
    /// that arrive during one fsync share the next instead of queueing one each. Returns the
    /// sequence number the log is now fsynced through.
    pub(super) fn sync_wal_through(&self, seq: u64) -> StorageResult<u64> {
        let mut synced = self.synced_seq.lock().expect("sync lock poisoned");
        if *synced >= seq {
            return Ok(*synced);
        }
        let covered = self.written_seq.load(std::sync::atomic::Ordering::SeqCst);
        self.db.flush_wal(true)?;
        *synced = covered.max(*synced);
        Ok(*synced)
    }
}
