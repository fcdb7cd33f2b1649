//! The replicated state machine: openraft's `RaftStateMachine` over the store. Committed
//! entries are applied by `Store::apply_replicated`, each in one batch with the machine's
//! record of its last applied log id and membership, so what was applied and what the machine
//! says it applied never disagree after a crash.
//!
//! A snapshot carries the data, not just the catalog: a capture of the store (a RocksDB
//! checkpoint plus hard links to the segment and stream files, at one applied index) packed
//! as one uncompressed tar file in `data/snapshots/raft/`, with its metadata beside it. A node
//! that receives one unpacks it next to the data and has the store replace its replicated
//! state with it. Only the newest snapshot is kept.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncSeekExt;

use super::{
    Entry, LogId, NodeId, Outcome, RaftStorageError, StoredMembership, TypeConfig, decode, encode,
};
use crate::storage::{Command, Store};

type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

/// What the machine records with every applied entry (see `Store::apply_replicated`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct MachineState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// The state machine of one node.
pub struct StateMachine {
    store: Arc<Store>,
    snapshots: SnapshotFiles,
}

/// Builds snapshots of the store while the state machine goes on applying.
pub struct SnapshotBuilder {
    store: Arc<Store>,
    snapshots: SnapshotFiles,
}

/// Held while a snapshot is published or installed: openraft builds snapshots in a task of
/// their own, and a build finishing during an install must not remove what it installs.
type SnapshotFiles = Arc<std::sync::Mutex<()>>;

impl StateMachine {
    /// Binds the store, clearing what an interrupted snapshot transfer left behind.
    pub fn new(store: Arc<Store>) -> Result<StateMachine, RaftStorageError> {
        let dir = store.raft_snapshot_dir();
        for path in entries(&dir).map_err(|e| read_error(&e))? {
            let name = file_name(&path);
            if name.starts_with(".capture-")
                || name.starts_with("receiving-")
                || name.starts_with("staged-")
                || name.ends_with(".tmp")
            {
                remove(&path).map_err(|e| write_error(&e))?;
            }
        }
        Ok(StateMachine {
            store,
            snapshots: SnapshotFiles::default(),
        })
    }
}

/// The last entry `store` has applied, as recorded in the batch that applied it: ahead of
/// openraft's metrics, which are published after the client was answered.
pub(super) fn last_applied(store: &Store) -> Result<Option<LogId>, RaftStorageError> {
    Ok(machine_state(store)?.last_applied)
}

fn machine_state(store: &Store) -> Result<MachineState, RaftStorageError> {
    match store.replicated_machine_state() {
        Ok(Some(bytes)) => decode(&bytes).map_err(|e| read_error(&e)),
        Ok(None) => Ok(MachineState::default()),
        Err(e) => Err(read_error(&e)),
    }
}

fn read_error(e: &(dyn std::error::Error + 'static)) -> RaftStorageError {
    StorageIOError::read_state_machine(AnyError::error(e)).into()
}

fn write_error(e: &(dyn std::error::Error + 'static)) -> RaftStorageError {
    StorageIOError::write_state_machine(AnyError::error(e)).into()
}

fn snapshot_error(e: &(dyn std::error::Error + 'static)) -> RaftStorageError {
    StorageIOError::write_snapshot(None, AnyError::error(e)).into()
}

/// Applies entries in order; each outcome answers the entry at the same position.
fn apply_entries(store: &Store, entries: Vec<Entry>) -> Result<Vec<Outcome>, RaftStorageError> {
    let mut state = machine_state(store)?;
    let mut outcomes = Vec::with_capacity(entries.len());
    for entry in entries {
        let log_id = entry.log_id;
        state.last_applied = Some(log_id);
        let command = match entry.payload {
            EntryPayload::Blank => None,
            EntryPayload::Normal(command) => Some(command),
            EntryPayload::Membership(membership) => {
                state.membership = StoredMembership::new(Some(log_id), membership);
                None
            }
        };
        let failed = |e: &(dyn std::error::Error + 'static)| -> RaftStorageError {
            StorageIOError::apply(log_id, AnyError::error(e)).into()
        };
        let encoded = encode(&state).map_err(|e| failed(&e))?;
        let outcome = store
            .apply_replicated(log_id.index, command.as_ref(), &encoded)
            .map_err(|e| failed(&e))?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The most commands, and bytes of rows, one `apply` runs on the state machine's own task.
const QUICK_APPLY_COMMANDS: usize = 64;
const QUICK_APPLY_BYTES: usize = 256 * 1024;

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RaftStorageError> + Send + 'static,
) -> Result<T, RaftStorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| write_error(&e))?
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership), RaftStorageError> {
        let state = machine_state(&self.store)?;
        Ok((state.last_applied, state.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // A few small row writes (what a commit round usually holds) are applied on this task,
        // sparing two thread hand-offs per round; anything larger, or a follower catching up
        // on many entries at once, goes to a blocking thread so no runtime worker is held.
        let mut commands = 0;
        let mut bytes = 0;
        let quick = entries.iter().all(|entry| {
            let quick_commands: &[Command] = match &entry.payload {
                EntryPayload::Normal(Command::Batch(group)) => group,
                EntryPayload::Normal(command) => std::slice::from_ref(command),
                EntryPayload::Blank | EntryPayload::Membership(_) => &[],
            };
            commands += quick_commands.len();
            bytes += quick_commands
                .iter()
                .map(Command::batch_size_hint)
                .sum::<usize>();
            quick_commands.iter().all(Command::applies_quickly)
        }) && commands <= QUICK_APPLY_COMMANDS
            && bytes <= QUICK_APPLY_BYTES;
        if quick {
            return apply_entries(&self.store, entries);
        }
        let store = self.store.clone();
        blocking(move || apply_entries(&store, entries)).await
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, RaftStorageError> {
        let dir = self.store.raft_snapshot_dir();
        let path = dir.join(format!("receiving-{}.tar", unique_suffix()));
        let open = || -> std::io::Result<std::fs::File> {
            std::fs::create_dir_all(&dir)?;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
        };
        let file = open().map_err(|e| snapshot_error(&e))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), RaftStorageError> {
        let mut file = *snapshot;
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|e| snapshot_error(&e))?;
        let file = file.into_std().await;
        let store = self.store.clone();
        let meta = meta.clone();
        let snapshots = self.snapshots.clone();
        let installed = blocking(move || {
            let _files = snapshots.lock().expect("snapshot files lock");
            install(&store, &meta, file)?;
            Ok(meta)
        })
        .await?;
        tracing::info!(
            snapshot = %installed.snapshot_id,
            last_index = installed.last_log_id.map_or(0, |id| id.index),
            "installed a snapshot the leader sent"
        );
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, RaftStorageError> {
        let dir = self.store.raft_snapshot_dir();
        blocking(move || current_snapshot(&dir)).await
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, RaftStorageError> {
        let store = self.store.clone();
        let snapshots = self.snapshots.clone();
        blocking(move || build(&store, &snapshots)).await
    }
}

/// Captures the store and packs the capture into the new current snapshot.
fn build(
    store: &Store,
    snapshots: &SnapshotFiles,
) -> Result<Snapshot<TypeConfig>, RaftStorageError> {
    let dir = store.raft_snapshot_dir();
    let scratch = dir.join(format!(".capture-{}", unique_suffix()));
    let point = store
        .capture_backup_point(&scratch)
        .map_err(|e| snapshot_error(&e))?;
    let state: MachineState = match &point.machine_state {
        Some(bytes) => decode(bytes).map_err(|e| read_error(&e))?,
        None => MachineState::default(),
    };
    let name = snapshot_name(state.last_applied);
    let meta = Meta {
        last_log_id: state.last_applied,
        last_membership: state.membership,
        snapshot_id: name.clone(),
    };
    let tar_path = dir.join(format!("{name}.tar"));
    let packed = pack(&point.files, &tar_path);
    let removed = remove(&scratch);
    packed.and(removed).map_err(|e| snapshot_error(&e))?;
    let _files = snapshots.lock().expect("snapshot files lock");
    publish(&dir, &name, &meta)?;
    open_snapshot(&tar_path, meta)
}

/// Writes the captured files into a tar at `target`, made durable before it is visible.
fn pack(files: &[crate::storage::CapturedFile], target: &Path) -> std::io::Result<()> {
    let tmp = crate::durable::temporary_name(target);
    let mut archive = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(&tmp)?));
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.len);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        let source = std::fs::File::open(&file.source)?;
        // A stream log may have grown past the captured length; only that much belongs here.
        let mut limited = std::io::Read::take(source, file.len);
        archive.append_data(&mut header, &file.relative, &mut limited)?;
    }
    let mut writer = archive.into_inner()?;
    writer.flush()?;
    drop(writer);
    crate::durable::publish_file(&tmp, target, crate::durable::Publish::Replace)
}

/// Records `meta` beside snapshot `name` and removes the snapshots older than it (names sort
/// by the entry they hold). A build that finishes after a newer install leaves that one be.
fn publish(dir: &Path, name: &str, meta: &Meta) -> Result<(), RaftStorageError> {
    let bytes = encode(meta).map_err(|e| snapshot_error(&e))?;
    crate::durable::write_file(&dir.join(format!("{name}.meta")), &bytes, None)
        .map_err(|e| snapshot_error(&e))?;
    for path in entries(dir).map_err(|e| read_error(&e))? {
        let other = file_name(&path);
        let other_name = other.split('.').next().unwrap_or_default();
        // A `.tmp` is a build still packing; the next start clears any left over.
        if other.starts_with("snapshot-") && !other.ends_with(".tmp") && other_name < name {
            remove(&path).map_err(|e| write_error(&e))?;
        }
    }
    Ok(())
}

/// Keeps the received snapshot as this node's current one and installs its state.
fn install(
    store: &Store,
    meta: &Meta,
    mut received: std::fs::File,
) -> Result<(), RaftStorageError> {
    let dir = store.raft_snapshot_dir();
    let name = snapshot_name(meta.last_log_id);
    let tar_path = dir.join(format!("{name}.tar"));
    let tmp = crate::durable::temporary_name(&tar_path);
    let copied = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::File::create(&tmp))
        .and_then(|mut out| std::io::copy(&mut received, &mut out))
        .and_then(|_| {
            crate::durable::publish_file(&tmp, &tar_path, crate::durable::Publish::Replace)
        });
    copied.map_err(|e| snapshot_error(&e))?;
    let staged = dir.join(format!("staged-{name}"));
    // Nothing of a refused snapshot stays behind.
    let refuse = |e: &(dyn std::error::Error + 'static)| {
        let _ = remove(&staged);
        let _ = remove(&tar_path);
        snapshot_error(e)
    };
    unpack(&tar_path, &staged).map_err(|e| refuse(&e))?;
    // Checked before the store changes: the state must be the one the metadata names.
    let state: MachineState = match Store::replicated_machine_state_at(&staged.join("rocksdb")) {
        Ok(Some(bytes)) => decode(&bytes).map_err(|e| refuse(&e))?,
        Ok(None) => MachineState::default(),
        Err(e) => return Err(refuse(&e)),
    };
    if state.last_applied != meta.last_log_id {
        let message = format!(
            "snapshot {} says it holds entries up to {:?}, but its state was applied up to {:?}",
            meta.snapshot_id, meta.last_log_id, state.last_applied
        );
        return Err(refuse(&std::io::Error::other(message)));
    }
    store
        .install_replicated_state(&staged)
        .map_err(|e| write_error(&e))?;
    publish(&dir, &name, meta)?;
    for path in entries(&dir).map_err(|e| read_error(&e))? {
        if file_name(&path).starts_with("receiving-") {
            remove(&path).map_err(|e| write_error(&e))?;
        }
    }
    Ok(())
}

/// Unpacks a snapshot's tar into `staged`, refusing any entry that is not a plain file or
/// directory inside it (a link, a device, an absolute path or `..`).
fn unpack(tar_path: &Path, staged: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(tar_path)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    std::fs::create_dir_all(staged)?;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) || !entry.unpack_in(staged)? {
            let path = entry.path()?.display().to_string();
            return Err(std::io::Error::other(format!(
                "snapshot entry {path} is not a plain file inside the snapshot"
            )));
        }
    }
    Ok(())
}

fn current_snapshot(dir: &Path) -> Result<Option<Snapshot<TypeConfig>>, RaftStorageError> {
    newest(dir)?
        .map(|(meta, tar_path)| open_snapshot(&tar_path, meta))
        .transpose()
}

/// A built snapshot as `CLUSTER SNAPSHOT` reports it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SnapshotReport {
    pub snapshot_id: String,
    /// The last log index it holds (the applied sequence number it captured).
    pub index: u64,
    pub path: String,
    pub bytes: u64,
}

/// The newest snapshot in `dir` (a store's `raft_snapshot_dir`), if any.
pub fn newest_snapshot(dir: &Path) -> Result<Option<SnapshotReport>, RaftStorageError> {
    let Some((meta, tar_path)) = newest(dir)? else {
        return Ok(None);
    };
    let bytes = std::fs::metadata(&tar_path)
        .map_err(|e| read_error(&e))?
        .len();
    Ok(Some(SnapshotReport {
        snapshot_id: meta.snapshot_id,
        index: meta.last_log_id.map_or(0, |id| id.index),
        path: tar_path.display().to_string(),
        bytes,
    }))
}

/// Has `raft` build a snapshot now into `dir` (its store's `raft_snapshot_dir`) and returns it
/// once openraft has taken it as its current one, within `timeout`.
pub async fn build_now(
    raft: &openraft::Raft<TypeConfig>,
    dir: &Path,
    timeout: std::time::Duration,
) -> Result<SnapshotReport, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let before = newest_snapshot(dir)
        .map_err(|e| e.to_string())?
        .map(|report| report.snapshot_id);
    raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
    // Every build has a name of its own (it ends in the time it was made).
    let report = loop {
        if let Some(report) = newest_snapshot(dir).map_err(|e| e.to_string())?
            && Some(&report.snapshot_id) != before.as_ref()
        {
            break report;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("no snapshot was built within {timeout:?}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let index = report.index;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    raft.wait(Some(left))
        .metrics(
            |m| m.snapshot.is_some_and(|id| id.index >= index),
            "snapshot taken",
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(report)
}

fn newest(dir: &Path) -> Result<Option<(Meta, PathBuf)>, RaftStorageError> {
    let mut newest: Option<(Meta, PathBuf)> = None;
    for path in entries(dir).map_err(|e| read_error(&e))? {
        let name = file_name(&path);
        let Some(stem) = name.strip_suffix(".meta") else {
            continue;
        };
        let tar_path = dir.join(format!("{stem}.tar"));
        if !stem.starts_with("snapshot-") || !tar_path.exists() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| read_error(&e))?;
        let meta: Meta = decode(&bytes).map_err(|e| read_error(&e))?;
        if newest
            .as_ref()
            .is_none_or(|(best, _)| meta.last_log_id > best.last_log_id)
        {
            newest = Some((meta, tar_path));
        }
    }
    Ok(newest)
}

fn open_snapshot(tar_path: &Path, meta: Meta) -> Result<Snapshot<TypeConfig>, RaftStorageError> {
    let file = std::fs::File::open(tar_path).map_err(|e| read_error(&e))?;
    Ok(Snapshot {
        meta,
        snapshot: Box::new(tokio::fs::File::from_std(file)),
    })
}

/// Names sort by the last included entry, then by when they were made.
fn snapshot_name(last: Option<LogId>) -> String {
    let (term, index) = last.map_or((0, 0), |id| (id.leader_id.term, id.index));
    format!("snapshot-{term:020}-{index:020}-{}", unique_suffix())
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos}")
}

fn entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(list) => list.map(|entry| entry.map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn remove(path: &Path) -> std::io::Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{
        Command, Durability, Expect, RowWrite, SegmentRecord, UserRecord, rows::row_id_key,
    };
    use openraft::testing::log_id;
    use tokio::io::AsyncWriteExt;

    fn open(dir: &Path) -> Arc<Store> {
        let durability = Durability {
            sync_writes: false,
            wal_enabled: true,
        };
        Arc::new(Store::open(dir, durability).unwrap())
    }

    fn write_row(row_id: u64, value: u8) -> Command {
        Command::WriteRows {
            table_id: 7,
            writes: vec![RowWrite {
                key: row_id_key(7, row_id),
                value: Some(vec![value, 0]),
                expect: Expect::Absent,
                moved_to: None,
            }],
            row_id_high_water: Some(row_id),
            layout_generation: 0,
        }
    }

    fn entry(index: u64, command: Command) -> Entry {
        Entry {
            log_id: log_id(1, 1, index),
            payload: EntryPayload::Normal(command),
        }
    }

    /// Flushes hot row `row_id` (written as sequence number `version`) into segment
    /// `segment_id`, whose file holds `content`. Flushes are not replicated yet, so the store
    /// applies this one locally.
    fn flush(store: &Store, segment_id: u64, row_id: u64, version: u64, content: &[u8]) {
        let segment = SegmentRecord {
            segment_id,
            table_id: 7,
            file: format!("s{segment_id}.parquet"),
            rows: 1,
            bytes: content.len() as u64,
            columns: 1,
            created_at: 0,
            column_ids: vec![0],
            column_names: Vec::new(),
        };
        std::fs::write(store.segment_path(&segment), content).unwrap();
        let key = row_id_key(7, row_id);
        store
            .apply(&Command::FlushSegment {
                segment,
                rows: [(&key, version, false)].into_iter().collect(),
            })
            .unwrap();
    }

    /// As [`leader_snapshot`], with the path of the snapshot's tar file.
    async fn leader_snapshot_file(dir: &Path) -> (Arc<Store>, PathBuf) {
        let (leader, snapshot) = leader_snapshot(dir).await;
        let tar_path = leader
            .raft_snapshot_dir()
            .join(format!("{}.tar", snapshot.meta.snapshot_id));
        (leader, tar_path)
    }

    /// A leader with a user, a flushed row in a segment and a hot row, applied at entries 1 to
    /// 4, and the snapshot it builds of them.
    async fn leader_snapshot(dir: &Path) -> (Arc<Store>, Snapshot<TypeConfig>) {
        let store = open(dir);
        let mut machine = StateMachine::new(store.clone()).unwrap();
        let alice = UserRecord::new_for_test("alice", crate::model::Role::User);
        let outcomes = machine
            .apply([entry(1, Command::PutUser(alice)), entry(2, write_row(1, 1))])
            .await
            .unwrap();
        assert_eq!(outcomes[1].as_ref().unwrap().seq, 2);
        flush(&store, 1, 1, 2, b"segment one");
        machine.apply([entry(4, write_row(2, 2))]).await.unwrap();
        let snapshot = machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, 4)));
        (store, snapshot)
    }

    /// A store that went its own way before the snapshot: a row the leader never had, and a
    /// segment of the same id with other content.
    fn diverged_follower(dir: &Path) -> Arc<Store> {
        let store = open(dir);
        store.apply(&write_row(9, 9)).unwrap();
        flush(&store, 1, 9, 1, b"stale segment");
        store
    }

    fn assert_holds_the_leaders_state(store: &Store) {
        assert_eq!(store.applied_seq(), 4);
        assert!(store.user("alice").unwrap().is_some());
        assert!(store.row(&row_id_key(7, 2)).unwrap().is_some());
        assert_eq!(store.row(&row_id_key(7, 9)).unwrap(), None);
        let segments = store.segments(7).unwrap();
        assert_eq!(segments.len(), 1);
        let content = std::fs::read(store.segment_path(&segments[0])).unwrap();
        assert_eq!(content, b"segment one");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_carries_rows_users_and_segment_files_to_a_store_that_is_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let (_leader, snapshot) = leader_snapshot(&tmp.path().join("leader")).await;
        let follower_dir = tmp.path().join("follower");
        let follower = diverged_follower(&follower_dir);
        let mut machine = StateMachine::new(follower.clone()).unwrap();
        let mut received = machine.begin_receiving_snapshot().await.unwrap();
        let mut sent = *snapshot.snapshot;
        tokio::io::copy(&mut sent, &mut *received).await.unwrap();
        received.flush().await.unwrap();
        machine
            .install_snapshot(&snapshot.meta, received)
            .await
            .unwrap();
        assert_holds_the_leaders_state(&follower);
        let (applied, membership) = machine.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 1, 4)));
        assert_eq!(membership, StoredMembership::default());
        drop(machine);
        drop(follower);

        // After a restart the store keeps the state and the snapshot stays the current one.
        let follower = open(&follower_dir);
        assert_holds_the_leaders_state(&follower);
        let mut machine = StateMachine::new(follower.clone()).unwrap();
        let current = machine.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
        let leftovers: Vec<String> = entries(&follower.raft_snapshot_dir())
            .unwrap()
            .iter()
            .map(|path| file_name(path))
            .filter(|name| !name.starts_with("snapshot-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_whose_state_is_not_the_one_its_metadata_names_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (_leader, snapshot) = leader_snapshot(&tmp.path().join("leader")).await;
        let follower = diverged_follower(&tmp.path().join("follower"));
        let mut machine = StateMachine::new(follower.clone()).unwrap();
        let mut meta = snapshot.meta.clone();
        meta.last_log_id = Some(log_id(1, 1, 5));
        let err = machine
            .install_snapshot(&meta, snapshot.snapshot)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("holds entries up to"), "{err}");
        assert_eq!(follower.applied_seq(), 2);
        assert!(follower.user("alice").unwrap().is_none());
        let segments = follower.segments(7).unwrap();
        let content = std::fs::read(follower.segment_path(&segments[0])).unwrap();
        assert_eq!(content, b"stale segment");
        assert!(machine.get_current_snapshot().await.unwrap().is_none());
        let left: Vec<String> = entries(&follower.raft_snapshot_dir())
            .unwrap()
            .iter()
            .map(|path| file_name(path))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_snapshot_entry_that_is_not_a_plain_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let tar_path = tmp.path().join("hostile.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "storage/app/t/seg-1.parquet", "/etc/passwd")
            .unwrap();
        builder.finish().unwrap();
        drop(builder);
        let staged = tmp.path().join("staged");
        let err = unpack(&tar_path, &staged).unwrap_err();
        assert!(err.to_string().contains("not a plain file"), "{err}");
        assert!(!staged.join("storage/app/t/seg-1.parquet").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_install_a_crash_interrupted_is_finished_when_the_store_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let (_leader, tar_path) = leader_snapshot_file(&tmp.path().join("leader")).await;
        let follower_dir = tmp.path().join("follower");
        let raft_dir = {
            let follower = diverged_follower(&follower_dir);
            follower.raft_snapshot_dir()
        };
        // What an install leaves when the process dies after writing its marker.
        let staged = raft_dir.join("staged-interrupted");
        let file = std::fs::File::open(&tar_path).unwrap();
        tar::Archive::new(file).unpack(&staged).unwrap();
        std::fs::write(raft_dir.join("installing"), "staged-interrupted").unwrap();

        let follower = open(&follower_dir);
        assert_holds_the_leaders_state(&follower);
        assert!(!staged.exists());
        assert!(!raft_dir.join("installing").exists());
    }

    /// The crash came after the install had moved the snapshot's segment in: to the catalog
    /// the store still has, that file is an orphan, and the start-up sweep must not run first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_an_interrupted_install_moved_in_survive_the_next_start() {
        let tmp = tempfile::tempdir().unwrap();
        let (leader, tar_path) = leader_snapshot_file(&tmp.path().join("leader")).await;
        let follower_dir = tmp.path().join("follower");
        let (raft_dir, storage) = {
            let follower = open(&follower_dir);
            follower.apply(&write_row(9, 9)).unwrap();
            let segment = leader.segments(7).unwrap().remove(0);
            (
                follower.raft_snapshot_dir(),
                follower.segment_path(&segment),
            )
        };
        let staged = raft_dir.join("staged-interrupted");
        let file = std::fs::File::open(&tar_path).unwrap();
        tar::Archive::new(file).unpack(&staged).unwrap();
        std::fs::write(raft_dir.join("installing"), "staged-interrupted").unwrap();
        std::fs::rename(staged.join("storage/s1.parquet"), &storage).unwrap();

        let follower = open(&follower_dir);
        assert_holds_the_leaders_state(&follower);
    }

    #[test]
    fn snapshot_names_sort_by_the_entry_they_hold() {
        let id = |term, index| Some(openraft::testing::log_id::<NodeId>(term, 1, index));
        let mut names = [
            snapshot_name(id(2, 9)),
            snapshot_name(id(1, 10)),
            snapshot_name(id(2, 10)),
        ];
        names.sort();
        assert!(names[0].contains(&format!("-{:020}-{:020}-", 1, 10)));
        assert!(names[1].contains(&format!("-{:020}-{:020}-", 2, 9)));
        assert!(names[2].contains(&format!("-{:020}-{:020}-", 2, 10)));
    }
}
