//! What point reads of flushed rows keep in memory between reads: segment footers (schema, row
//! groups, page indexes) and recently read blocks of rows, decoded.
//!
//! Reading one row from Parquet means opening the file, decompressing its data pages and
//! decoding them up to the row, which costs several times a RocksDB read of a hot row. A block
//! is a run of rows of one row group (at most a data page's worth, fewer when rows are wide; see
//! `segments::block_rows`) with every column of the file, so one decode serves any later read
//! of any of its rows, in any projection. A segment never changes once published and segment
//! ids are never reused, so neither footers nor blocks go stale: a dropped segment's entries
//! are simply never asked for again and age out. Only a Raft snapshot that replaces the whole
//! store empties the cache.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::file::metadata::PageIndexPolicy;

use super::{StorageError, StorageResult};

/// How many segment footers are kept.
const FOOTERS_KEPT: usize = 1024;
/// The decoded bytes all cached blocks may hold together (beside RocksDB's block cache of
/// compressed hot rows).
const BLOCK_BYTES_KEPT: usize = 64 * 1024 * 1024;
/// Independently locked parts of the block cache, so concurrent point reads rarely wait.
const SHARDS: usize = 8;

/// Footers and decoded blocks of segments, shared by every reader.
pub struct SegmentCache {
    footers: Mutex<HashMap<u64, ArrowReaderMetadata>>,
    shards: Vec<Mutex<Shard>>,
}

/// Blocks keyed by segment id and the segment row each starts at; the oldest go first when the
/// shard is over its share of the bytes.
#[derive(Default)]
struct Shard {
    blocks: HashMap<(u64, u64), RecordBatch>,
    order: VecDeque<(u64, u64)>,
    bytes: usize,
}

impl Default for SegmentCache {
    fn default() -> Self {
        SegmentCache {
            footers: Mutex::default(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl SegmentCache {
    /// The footer of segment `segment_id`, read from its file at `path` the first time.
    pub(super) fn footer(
        &self,
        segment_id: u64,
        path: &Path,
    ) -> StorageResult<ArrowReaderMetadata> {
        if let Some(footer) = self.footers.lock().expect("footers").get(&segment_id) {
            return Ok(footer.clone());
        }
        let file = File::open(path)
            .map_err(|e| StorageError::io(format!("opening segment {}", path.display()), e))?;
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let footer =
            ArrowReaderMetadata::load(&file, options).map_err(super::segments::parquet_error)?;
        let mut cached = self.footers.lock().expect("footers");
        if cached.len() >= FOOTERS_KEPT {
            cached.clear();
        }
        cached.insert(segment_id, footer.clone());
        Ok(footer)
    }

    fn shard(&self, key: (u64, u64)) -> &Mutex<Shard> {
        let mixed = key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ key.1;
        &self.shards[(mixed % SHARDS as u64) as usize]
    }

    /// The cached block of the segment that starts at row `first`.
    pub(super) fn block(&self, segment_id: u64, first: u64) -> Option<RecordBatch> {
        let key = (segment_id, first);
        let shard = self.shard(key).lock().expect("segment blocks");
        shard.blocks.get(&key).cloned()
    }

    /// Keeps `batch`, the decoded block of the segment that starts at row `first`.
    pub(super) fn keep(&self, segment_id: u64, first: u64, batch: RecordBatch) {
        let key = (segment_id, first);
        let size = batch.get_array_memory_size();
        let budget = BLOCK_BYTES_KEPT / SHARDS;
        if size > budget {
            return;
        }
        let mut shard = self.shard(key).lock().expect("segment blocks");
        if shard.blocks.contains_key(&key) {
            // Another reader decoded it meanwhile.
            return;
        }
        shard.blocks.insert(key, batch);
        shard.order.push_back(key);
        shard.bytes += size;
        while shard.bytes > budget {
            let Some(oldest) = shard.order.pop_front() else {
                break;
            };
            if let Some(evicted) = shard.blocks.remove(&oldest) {
                shard.bytes -= evicted.get_array_memory_size();
            }
        }
    }

    /// Forgets every footer and block: after a snapshot replaced the store, segment ids may
    /// name other files.
    pub(super) fn forget_all(&self) {
        self.footers.lock().expect("footers").clear();
        for shard in &self.shards {
            *shard.lock().expect("segment blocks") = Shard::default();
        }
    }

    #[cfg(test)]
    pub(super) fn blocks_kept(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expect("segment blocks").blocks.len())
            .sum()
    }
}
