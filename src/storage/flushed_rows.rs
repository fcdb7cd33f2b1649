//! The hot rows one flush read, as its `FlushSegment` command carries them: the keys laid end
//! to end in one buffer, with each row's version and whether it was a deletion marker.
//!
//! A segment holds a million rows. Carried as a vector per key, they cost the flush more in
//! allocating and freeing (glibc consolidating a million small blocks) than encoding the
//! Parquet file did; laid end to end they cost a few large blocks.

use datafusion::arrow::array::BinaryArray;
use datafusion::arrow::buffer::{Buffer, OffsetBuffer};
use serde::{Deserialize, Serialize};

/// See the module documentation. A deserialized copy is checked to be laid out as `push`
/// lays it out, so that reading a key never indexes past the buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FlushedRowsParts")]
pub struct FlushedRows {
    key_bytes: Vec<u8>,
    /// Where each row's key ends in `key_bytes`.
    key_ends: Vec<usize>,
    versions: Vec<u64>,
    tombstones: Vec<bool>,
}

/// `FlushedRows` as serialized, before its layout is checked.
#[derive(Deserialize)]
struct FlushedRowsParts {
    key_bytes: Vec<u8>,
    key_ends: Vec<usize>,
    versions: Vec<u64>,
    tombstones: Vec<bool>,
}

impl TryFrom<FlushedRowsParts> for FlushedRows {
    type Error = String;

    fn try_from(parts: FlushedRowsParts) -> Result<Self, String> {
        let rows = parts.key_ends.len();
        let ends_in_order = parts.key_ends.is_sorted()
            && parts
                .key_ends
                .last()
                .is_none_or(|&end| end == parts.key_bytes.len());
        if !ends_in_order || parts.versions.len() != rows || parts.tombstones.len() != rows {
            return Err(format!(
                "flushed rows are not laid out as written: {rows} key ends over {} bytes, {} versions, {} tombstone flags",
                parts.key_bytes.len(),
                parts.versions.len(),
                parts.tombstones.len()
            ));
        }
        Ok(FlushedRows {
            key_bytes: parts.key_bytes,
            key_ends: parts.key_ends,
            versions: parts.versions,
            tombstones: parts.tombstones,
        })
    }
}

/// One row a flush read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushedRow<'a> {
    pub key: &'a [u8],
    /// The stored version the flush read.
    pub version: u64,
    /// It was a deletion marker, which the segment does not hold.
    pub tombstone: bool,
}

impl FlushedRows {
    pub fn push(&mut self, key: &[u8], version: u64, tombstone: bool) {
        self.key_bytes.extend_from_slice(key);
        self.key_ends.push(self.key_bytes.len());
        self.versions.push(version);
        self.tombstones.push(tombstone);
    }

    pub fn len(&self) -> usize {
        self.key_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.key_ends.is_empty()
    }

    pub fn key(&self, row: usize) -> &[u8] {
        let start = row.checked_sub(1).map_or(0, |before| self.key_ends[before]);
        &self.key_bytes[start..self.key_ends[row]]
    }

    pub fn get(&self, row: usize) -> FlushedRow<'_> {
        FlushedRow {
            key: self.key(row),
            version: self.versions[row],
            tombstone: self.tombstones[row],
        }
    }

    pub fn last_key(&self) -> Option<&[u8]> {
        self.len().checked_sub(1).map(|last| self.key(last))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = FlushedRow<'_>> + Clone {
        (0..self.len()).map(|row| self.get(row))
    }

    /// The keys of the rows that are not deletion markers, in order: the segment's key column.
    pub fn live_keys(&self) -> BinaryArray {
        let live = self.tombstones.iter().filter(|t| !**t).count();
        if live == self.len()
            && let Ok(ends) = self
                .key_ends
                .iter()
                .map(|&end| i32::try_from(end))
                .collect::<Result<Vec<i32>, _>>()
        {
            // Every row is live: the buffer is the column's values as it stands.
            let offsets: Vec<i32> = std::iter::once(0).chain(ends).collect();
            let offsets = OffsetBuffer::new(offsets.into());
            return BinaryArray::new(offsets, Buffer::from(self.key_bytes.as_slice()), None);
        }
        BinaryArray::from_iter_values(self.iter().filter(|r| !r.tombstone).map(|r| r.key))
    }

    /// The live rows' versions, in order: the segment's version column.
    pub fn live_versions(&self) -> Vec<i64> {
        self.iter()
            .filter(|r| !r.tombstone)
            .map(|r| r.version as i64)
            .collect()
    }
}

impl<K: AsRef<[u8]>> FromIterator<(K, u64, bool)> for FlushedRows {
    fn from_iter<I: IntoIterator<Item = (K, u64, bool)>>(rows: I) -> Self {
        let mut flushed = FlushedRows::default();
        for (key, version, tombstone) in rows {
            flushed.push(key.as_ref(), version, tombstone);
        }
        flushed
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Array;

    use super::*;

    #[test]
    fn rows_read_back_as_pushed_and_the_key_column_skips_deletion_markers() {
        let rows: FlushedRows = [
            (b"a".to_vec(), 1, false),
            (b"bb".to_vec(), 2, true),
            (Vec::new(), 3, false),
            (b"dddd".to_vec(), 4, false),
        ]
        .into_iter()
        .collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows.get(1),
            FlushedRow {
                key: b"bb",
                version: 2,
                tombstone: true
            }
        );
        assert_eq!(rows.key(2), b"");
        assert_eq!(rows.last_key(), Some(&b"dddd"[..]));
        let keys = rows.live_keys();
        let keys: Vec<&[u8]> = (0..keys.len()).map(|i| keys.value(i)).collect();
        assert_eq!(keys, [&b"a"[..], b"", b"dddd"]);
        assert_eq!(rows.live_versions(), [1, 3, 4]);
    }

    #[test]
    fn a_deserialized_copy_must_be_laid_out_as_written() {
        let rows: FlushedRows = [(&b"ab"[..], 1, false), (&b"c"[..], 2, true)]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&rows).unwrap();
        assert_eq!(serde_json::from_str::<FlushedRows>(&json).unwrap(), rows);
        for broken in [
            r#"{"key_bytes":[1,2],"key_ends":[1,5],"versions":[1,2],"tombstones":[false,false]}"#,
            r#"{"key_bytes":[1,2],"key_ends":[2,1],"versions":[1,2],"tombstones":[false,false]}"#,
            r#"{"key_bytes":[1,2],"key_ends":[1,2],"versions":[1],"tombstones":[false,false]}"#,
        ] {
            assert!(
                serde_json::from_str::<FlushedRows>(broken).is_err(),
                "{broken}"
            );
        }
    }

    #[test]
    fn with_every_row_live_the_key_column_is_the_key_buffer() {
        let rows: FlushedRows = [(b"k1", 7, false), (b"k2", 8, false)].into_iter().collect();
        let keys = rows.live_keys();
        assert_eq!(keys.value(0), b"k1");
        assert_eq!(keys.value(1), b"k2");
        assert_eq!(FlushedRows::default().live_keys().len(), 0);
        assert_eq!(FlushedRows::default().last_key(), None);
    }
}
