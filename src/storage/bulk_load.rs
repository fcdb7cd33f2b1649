//! Bulk loads: a great many new rows of one table (a large COPY FROM) written without holding
//! them in memory or in one write batch. The rows are sorted in bounded memory, spilling sorted
//! runs to the data directory's load scratch area; the runs are merged into one RocksDB table
//! file of stored rows, and one `Command::IngestRows` publishes that file whole under the
//! apply lock after checking that none of its keys is live. The load is all of its rows or
//! none: a key repeated in the data, a key already live, or a table that gained an index or a
//! foreign key meanwhile fails it before anything is visible.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{IngestExternalFileOptions, SstFileWriter};

use super::apply_context::ApplyContext;
use super::keys::{CF_COLD_INDEX, CF_ROWS};
use super::row_writes::live_version;
use super::{Conflict, StorageError, StorageResult, Store, cf, foreign_keys, indexes, rows};

/// Bytes of keys and rows sorted in memory before they are spilled as one run.
const RUN_BYTES: usize = 32 * 1024 * 1024;
/// Read and write buffer of each run file.
const RUN_BUFFER: usize = 256 * 1024;

static NEXT_LOAD: AtomicU64 = AtomicU64::new(1);

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError::io(format!("{what} {}", path.display()), e)
}

/// A load that failed: why, and the data line of the row at fault when one is.
#[derive(Debug)]
pub struct LoadFailure {
    pub error: StorageError,
    pub line: Option<u64>,
}

impl From<StorageError> for LoadFailure {
    fn from(error: StorageError) -> Self {
        LoadFailure { error, line: None }
    }
}

impl From<rocksdb::Error> for LoadFailure {
    fn from(error: rocksdb::Error) -> Self {
        StorageError::from(error).into()
    }
}

/// The next row of one run in the merge: key, run index, data line, encoded row. Ordered by key
/// first, so the heap yields keys in order and equal keys side by side.
type RunHead = (Vec<u8>, usize, u64, Vec<u8>);

/// One row of a load as sorted: where its key and row sit in the arena, and its data line.
struct Entry {
    start: usize,
    key_len: u32,
    row_len: u32,
    line: u64,
}

/// The rows of a load, sorted by key in runs of bounded size.
pub struct RowSorter {
    table_id: u64,
    dir: PathBuf,
    arena: Vec<u8>,
    entries: Vec<Entry>,
    runs: Vec<PathBuf>,
    rows: u64,
    /// Arena bytes that make a run ([`RUN_BYTES`]; smaller in tests).
    run_bytes: usize,
}

impl RowSorter {
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds a row: its key and its encoded columns (not yet stored with a version).
    pub fn push(&mut self, key: &[u8], row: &[u8], line: u64) -> StorageResult<()> {
        let start = self.arena.len();
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(row);
        self.entries.push(Entry {
            start,
            key_len: key.len() as u32,
            row_len: row.len() as u32,
            line,
        });
        self.rows += 1;
        if self.arena.len() >= self.run_bytes {
            self.spill()?;
        }
        Ok(())
    }

    fn key_of<'a>(arena: &'a [u8], entry: &Entry) -> &'a [u8] {
        &arena[entry.start..entry.start + entry.key_len as usize]
    }

    /// Writes the rows in memory, sorted by key (equal keys in arrival order), as a run file.
    fn spill(&mut self) -> StorageResult<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let arena = &self.arena;
        self.entries
            .sort_by(|a, b| Self::key_of(arena, a).cmp(Self::key_of(arena, b)));
        let path = self.dir.join(format!("run-{}", self.runs.len()));
        let file = File::create(&path).map_err(|e| io_error("creating", &path, e))?;
        let mut out = BufWriter::with_capacity(RUN_BUFFER, file);
        for entry in &self.entries {
            let end = entry.start + entry.key_len as usize + entry.row_len as usize;
            out.write_all(&entry.key_len.to_le_bytes())
                .and_then(|()| out.write_all(&entry.row_len.to_le_bytes()))
                .and_then(|()| out.write_all(&entry.line.to_le_bytes()))
                .and_then(|()| out.write_all(&arena[entry.start..end]))
                .map_err(|e| io_error("writing", &path, e))?;
        }
        out.flush().map_err(|e| io_error("writing", &path, e))?;
        self.runs.push(path);
        self.arena.clear();
        self.entries.clear();
        Ok(())
    }
}

impl Drop for RowSorter {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One row read back from a run.
struct RunRow {
    key: Vec<u8>,
    row: Vec<u8>,
    line: u64,
}

struct RunReader {
    path: PathBuf,
    input: BufReader<File>,
}

impl RunReader {
    fn open(path: &Path) -> StorageResult<RunReader> {
        let file = File::open(path).map_err(|e| io_error("opening", path, e))?;
        Ok(RunReader {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(RUN_BUFFER, file),
        })
    }

    fn next(&mut self) -> StorageResult<Option<RunRow>> {
        let mut head = [0u8; 16];
        match self.input.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_error("reading", &self.path, e)),
        }
        let word = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().unwrap_or([0; 4]));
        let (key_len, row_len) = (word(0) as usize, word(4) as usize);
        let line = u64::from_le_bytes(head[8..16].try_into().unwrap_or([0; 8]));
        let mut key = vec![0; key_len];
        let mut row = vec![0; row_len];
        self.input
            .read_exact(&mut key)
            .and_then(|()| self.input.read_exact(&mut row))
            .map_err(|e| io_error("reading", &self.path, e))?;
        Ok(Some(RunRow { key, row, line }))
    }
}

/// A load's rows merged into one table file, ready for `Command::IngestRows`.
pub struct LoadFile {
    /// Keeps the scratch directory (and the runs, which give the line of a key) until the
    /// load is over.
    sorter: RowSorter,
    pub table_id: u64,
    pub file: PathBuf,
    pub rows: u64,
    pub low: Vec<u8>,
    pub high: Vec<u8>,
}

impl LoadFile {
    /// The files holding the load's keys: its sorted runs.
    pub fn runs(&self) -> &[PathBuf] {
        &self.sorter.runs
    }

    /// The data line of the row holding `key` (for the error of a key already live).
    pub fn line_of(&self, key: &[u8]) -> Option<u64> {
        for run in &self.sorter.runs {
            let mut reader = RunReader::open(run).ok()?;
            while let Ok(Some(row)) = reader.next() {
                match row.key.as_slice().cmp(key) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal => return Some(row.line),
                    std::cmp::Ordering::Greater => break,
                }
            }
        }
        None
    }
}

impl Store {
    /// Whether rows can be loaded into the table without a write batch: it has no secondary
    /// index and no foreign key of its own.
    pub fn bulk_loadable(&self, table_id: u64) -> StorageResult<bool> {
        // A load's checks read sorted runs only this node has: a cluster writes rows instead.
        if self.is_replicated() {
            return Ok(false);
        }
        let storage_root = self.dir.storage();
        let ctx = self.apply_context(0, false, &storage_root);
        loadable(&ctx, table_id)
    }

    /// A sorter for the new rows of a table, spilling into its own scratch directory.
    pub fn row_sorter(&self, table_id: u64) -> StorageResult<RowSorter> {
        let dir = self
            .dir
            .load_scratch(NEXT_LOAD.fetch_add(1, Ordering::Relaxed));
        std::fs::create_dir_all(&dir).map_err(|e| io_error("creating", &dir, e))?;
        Ok(RowSorter {
            table_id,
            dir,
            arena: Vec::with_capacity(RUN_BYTES + RUN_BYTES / 8),
            entries: Vec::new(),
            runs: Vec::new(),
            rows: 0,
            run_bytes: RUN_BYTES,
        })
    }

    /// Merges the sorted runs into one table file of stored rows (`None`: there were no rows).
    /// A key the data holds twice fails the load at the second row holding it.
    pub fn finish_load(&self, mut sorter: RowSorter) -> Result<Option<LoadFile>, LoadFailure> {
        sorter.spill()?;
        sorter.arena = Vec::new();
        // The rows' version: no command before this load's own wrote them, and every command
        // after it has a higher sequence number.
        let version = self.applied_seq() + 1;
        let mut readers = sorter
            .runs
            .iter()
            .map(|run| RunReader::open(run))
            .collect::<StorageResult<Vec<_>>>()?;
        let mut heads: BinaryHeap<Reverse<RunHead>> = BinaryHeap::new();
        for (at, reader) in readers.iter_mut().enumerate() {
            if let Some(row) = reader.next()? {
                heads.push(Reverse((row.key, at, row.line, row.row)));
            }
        }
        let file = sorter.dir.join("rows.sst");
        let options = super::column_family_options(None);
        let mut writer = SstFileWriter::create(&options);
        writer.open(&file)?;
        let mut stored = Vec::new();
        let mut previous: Option<Vec<u8>> = None;
        let mut low = None;
        let mut rows = 0u64;
        while let Some(Reverse((key, at, line, row))) = heads.pop() {
            if previous.as_deref() == Some(key.as_slice()) {
                return Err(LoadFailure {
                    error: Conflict::DuplicateKey {
                        table_id: sorter.table_id,
                        key,
                    }
                    .into(),
                    line: Some(line),
                });
            }
            rows::store_row_into(version, &row, &mut stored);
            writer.put(&key, &stored)?;
            rows += 1;
            if low.is_none() {
                low = Some(key.clone());
            }
            if let Some(next) = readers[at].next()? {
                heads.push(Reverse((next.key, at, next.line, next.row)));
            }
            previous = Some(key);
        }
        let (Some(low), Some(high)) = (low, previous) else {
            return Ok(None);
        };
        writer.finish()?;
        Ok(Some(LoadFile {
            table_id: sorter.table_id,
            file,
            rows,
            low,
            high,
            sorter,
        }))
    }
}

/// New rows need index entries and their references checked row by row; a foreign key
/// referring to the table is no concern, since no row it holds can disappear.
pub(super) fn loadable(ctx: &ApplyContext, table_id: u64) -> StorageResult<bool> {
    Ok(foreign_keys::links_of(ctx, table_id)?.outgoing.is_empty()
        && indexes::of_table(ctx, table_id)?.is_empty())
}

/// The checks of `Command::IngestRows`: the table still takes the file as it was built, and no
/// key of the load is live. A key range holding nothing of the table needs two seeks;
/// otherwise each key is looked up, read back from the load's runs.
pub(super) fn check_ingest(
    ctx: &ApplyContext,
    table_id: u64,
    runs: &[PathBuf],
    low: &[u8],
    high: &[u8],
) -> StorageResult<()> {
    if !loadable(ctx, table_id)? {
        // An index or a foreign key created since the load began would miss these rows.
        return Err(Conflict::RowChanged { table_id }.into());
    }
    if !ctx.occupied(CF_ROWS, low, high)? && !ctx.occupied(CF_COLD_INDEX, low, high)? {
        return Ok(());
    }
    for run in runs {
        let mut reader = RunReader::open(run)?;
        while let Some(row) = reader.next()? {
            if live_version(ctx, &row.key)?.is_some() {
                return Err(Conflict::DuplicateKey {
                    table_id,
                    key: row.key,
                }
                .into());
            }
        }
    }
    Ok(())
}

/// Ingests a load's file into the hot rows, moving it into RocksDB's own files.
///
/// The ingest is recorded in RocksDB's synced manifest at once, while the load's batch (its
/// counters and sequence number) may still be in the log buffer or unsynced: the log is made as
/// durable as a commit first, so no crash can keep the rows and lose the command that added
/// them.
pub(super) fn ingest(store: &Store, file: &Path) -> StorageResult<()> {
    store.db.flush_wal(store.wal_sync)?;
    let mut options = IngestExternalFileOptions::default();
    options.set_move_files(true);
    store
        .db
        .ingest_external_file_cf_opts(cf(&store.db, CF_ROWS), &options, vec![file])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Command, Durability, Expect, RowWrite};

    const TABLE: u64 = 7;

    fn store(dir: &Path) -> Store {
        let durability = Durability {
            sync_writes: false,
            wal_enabled: true,
        };
        Store::open(dir, durability).unwrap()
    }

    /// A sorter whose runs hold a few rows each, so loads of a dozen rows merge several.
    fn small_runs(store: &Store) -> RowSorter {
        let mut sorter = store.row_sorter(TABLE).unwrap();
        sorter.run_bytes = 40;
        sorter
    }

    fn ingest_command(load: &LoadFile) -> Command {
        Command::IngestRows {
            table_id: TABLE,
            file: load.file.clone(),
            runs: load.runs().to_vec(),
            low: load.low.clone(),
            high: load.high.clone(),
            row_id_high_water: None,
            layout_generation: 0,
        }
    }

    /// Row ids 1..=n pushed in a scrambled order, row id i on line 100 + i.
    fn push_scrambled(sorter: &mut RowSorter, n: u64) {
        for i in (0..n).map(|i| (i * 7) % n + 1) {
            let key = rows::row_id_key(TABLE, i);
            sorter.push(&key, &[1, 0], 100 + i).unwrap();
        }
    }

    #[test]
    fn rows_sorted_in_several_runs_are_ingested_whole_at_the_commands_version() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store(tmp.path());
        let mut sorter = small_runs(&store);
        push_scrambled(&mut sorter, 12);
        let load = store.finish_load(sorter).ok().unwrap().unwrap();
        assert!(load.runs().len() > 2, "{} runs", load.runs().len());
        assert_eq!(load.rows, 12);
        assert_eq!(load.low, rows::row_id_key(TABLE, 1));
        assert_eq!(load.high, rows::row_id_key(TABLE, 12));
        let applied = store.apply(&ingest_command(&load)).unwrap();
        for i in 1..=12 {
            let version = store.live_version(&rows::row_id_key(TABLE, i)).unwrap();
            assert_eq!(version, Some(applied.seq), "row {i}");
        }
        assert!(!load.file.exists(), "the file moved into RocksDB");
    }

    #[test]
    fn a_crash_right_after_an_ingest_keeps_the_rows_with_the_command_that_added_them() {
        use crate::storage::crashed_copy::{FSYNC_ON_COMMIT, crashed_copy};
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), FSYNC_ON_COMMIT).unwrap();
        let mut sorter = small_runs(&store);
        push_scrambled(&mut sorter, 12);
        let load = store.finish_load(sorter).ok().unwrap().unwrap();
        // Not waited for: the command is not acknowledged, yet its rows are already in place.
        let applied = store.apply_unsynced(&ingest_command(&load)).unwrap();
        let crashed = crashed_copy(tmp.path());
        drop(store);
        let recovered = Store::open(crashed.path(), FSYNC_ON_COMMIT).unwrap();
        assert_eq!(recovered.applied_seq(), applied.seq);
        for i in 1..=12 {
            let version = recovered.live_version(&rows::row_id_key(TABLE, i)).unwrap();
            assert_eq!(version, Some(applied.seq), "row {i}");
        }
    }

    #[test]
    fn a_key_the_data_repeats_fails_the_load_at_the_line_that_repeats_it() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store(tmp.path());
        let mut sorter = small_runs(&store);
        push_scrambled(&mut sorter, 12);
        sorter
            .push(&rows::row_id_key(TABLE, 5), &[1, 0], 500)
            .unwrap();
        let failure = store.finish_load(sorter).err().unwrap();
        assert!(
            matches!(
                failure.error,
                StorageError::Conflict(Conflict::DuplicateKey { .. })
            ),
            "{}",
            failure.error
        );
        assert_eq!(failure.line, Some(500));
    }

    #[test]
    fn a_key_already_live_fails_the_ingest_and_none_of_the_rows_appears() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store(tmp.path());
        let taken = rows::row_id_key(TABLE, 9);
        store
            .apply(&Command::WriteRows {
                table_id: TABLE,
                writes: vec![RowWrite {
                    key: taken.clone(),
                    value: Some(vec![1, 0]),
                    expect: Expect::Absent,
                    moved_to: None,
                }],
                row_id_high_water: None,
                layout_generation: 0,
            })
            .unwrap();
        let mut sorter = small_runs(&store);
        push_scrambled(&mut sorter, 12);
        let load = store.finish_load(sorter).ok().unwrap().unwrap();
        let error = store.apply(&ingest_command(&load)).unwrap_err();
        let StorageError::Conflict(Conflict::DuplicateKey { key, .. }) = error else {
            panic!("{error}");
        };
        assert_eq!(key, taken);
        assert_eq!(load.line_of(&key), Some(109));
        let other = rows::row_id_key(TABLE, 3);
        assert_eq!(store.live_version(&other).unwrap(), None);
    }

    #[test]
    fn a_loads_scratch_files_go_when_it_ends() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store(tmp.path());
        let mut sorter = small_runs(&store);
        push_scrambled(&mut sorter, 12);
        let dir = sorter.dir.clone();
        let load = store.finish_load(sorter).ok().unwrap().unwrap();
        assert!(dir.join("run-0").exists());
        drop(load);
        assert!(!dir.exists());
    }
}
