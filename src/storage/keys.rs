//! How the store is laid out in RocksDB: its column families, and the keys of catalog records
//! (namespaces, tables, segments, stream logs), whose prefixes let one scan read a kind.

/// Column families. `meta` holds store-wide values: the applied sequence number and counters.
pub(super) const CF_META: &str = "meta";
pub(super) const CF_USERS: &str = "users";
/// Namespaces and table definitions.
pub(super) const CF_CATALOG: &str = "catalog";
/// Hot rows of every table, keyed by table id and primary key.
pub(super) const CF_ROWS: &str = "rows";
/// Cold rows: row key to the segment holding its live copy and that copy's version.
pub(super) const CF_COLD_INDEX: &str = "cold_index";
/// Keys whose copy in a segment was superseded: segment id, then row key.
pub(super) const CF_DEAD_KEYS: &str = "dead_keys";
pub(super) const CF_JOBS: &str = "jobs";
/// Secondary index entries: index id and indexed values to the row key (see `indexes`).
pub(super) const CF_INDEX_ENTRIES: &str = "index_entries";
/// Cluster mode's Raft log and this node's Raft state (see `raft_log`): never replicated by a
/// snapshot, since each node keeps its own.
pub(super) const CF_RAFT_LOG: &str = "raft_log";
pub(super) const COLUMN_FAMILIES: [&str; 9] = [
    CF_META,
    CF_USERS,
    CF_CATALOG,
    CF_ROWS,
    CF_COLD_INDEX,
    CF_DEAD_KEYS,
    CF_JOBS,
    CF_INDEX_ENTRIES,
    CF_RAFT_LOG,
];

/// Keys of records in the `catalog` column family.
pub(super) mod catalog_keys {
    pub fn namespace(name: &str) -> Vec<u8> {
        format!("ns\0{name}").into_bytes()
    }
    pub fn namespaces() -> Vec<u8> {
        b"ns\0".to_vec()
    }
    pub fn table(namespace: &str, name: &str) -> Vec<u8> {
        format!("tbl\0{namespace}\0{name}").into_bytes()
    }
    pub fn tables_of(namespace: &str) -> Vec<u8> {
        format!("tbl\0{namespace}\0").into_bytes()
    }
    pub fn tables() -> Vec<u8> {
        b"tbl\0".to_vec()
    }
    pub fn stream(table_id: u64) -> Vec<u8> {
        let mut key = b"str\0".to_vec();
        key.extend_from_slice(&table_id.to_be_bytes());
        key
    }
    pub fn segment(table_id: u64, segment_id: u64) -> Vec<u8> {
        let mut key = segments_of(table_id);
        key.extend_from_slice(&segment_id.to_be_bytes());
        key
    }
    pub fn sequence(namespace: &str, name: &str) -> Vec<u8> {
        format!("sqn\0{namespace}\0{name}").into_bytes()
    }
    pub fn sequences_of(namespace: &str) -> Vec<u8> {
        format!("sqn\0{namespace}\0").into_bytes()
    }
    pub fn sequences() -> Vec<u8> {
        b"sqn\0".to_vec()
    }
    pub fn view(namespace: &str, name: &str) -> Vec<u8> {
        format!("view\0{namespace}\0{name}").into_bytes()
    }
    pub fn views_of(namespace: &str) -> Vec<u8> {
        format!("view\0{namespace}\0").into_bytes()
    }
    pub fn views() -> Vec<u8> {
        b"view\0".to_vec()
    }
    /// An index's definition, under its table (row writes read a table's indexes).
    pub fn index(table_id: u64, name: &str) -> Vec<u8> {
        let mut key = indexes_of(table_id);
        key.extend_from_slice(name.as_bytes());
        key
    }
    pub fn indexes_of(table_id: u64) -> Vec<u8> {
        let mut key = indexes();
        key.extend_from_slice(&table_id.to_be_bytes());
        key.push(0);
        key
    }
    pub fn indexes() -> Vec<u8> {
        b"tix\0".to_vec()
    }
    /// An index's name in its namespace, to the id of its table (index names are relation
    /// names, as in PostgreSQL).
    pub fn index_name(namespace: &str, name: &str) -> Vec<u8> {
        format!("ixn\0{namespace}\0{name}").into_bytes()
    }
    /// A foreign key, under the referencing (child) table.
    pub fn foreign_key(table_id: u64, name: &str) -> Vec<u8> {
        let mut key = foreign_keys_of(table_id);
        key.extend_from_slice(name.as_bytes());
        key
    }
    pub fn foreign_keys_of(table_id: u64) -> Vec<u8> {
        let mut key = foreign_keys();
        key.extend_from_slice(&table_id.to_be_bytes());
        key.push(0);
        key
    }
    pub fn foreign_keys() -> Vec<u8> {
        b"fk\0".to_vec()
    }
    /// A foreign key under the table it references: child table id and name, so that a write
    /// to the referenced table finds what refers to it with one scan.
    pub fn referencing(parent_id: u64, table_id: u64, name: &str) -> Vec<u8> {
        let mut key = referencing_of(parent_id);
        key.extend_from_slice(&table_id.to_be_bytes());
        key.extend_from_slice(name.as_bytes());
        key
    }
    pub fn referencing_of(parent_id: u64) -> Vec<u8> {
        let mut key = b"fkr\0".to_vec();
        key.extend_from_slice(&parent_id.to_be_bytes());
        key
    }
    /// A table's layout generation (see `TableRecord::layout_generation`); absent means 0.
    pub fn layout_generation(table_id: u64) -> Vec<u8> {
        let mut key = b"lay\0".to_vec();
        key.extend_from_slice(&table_id.to_be_bytes());
        key
    }
    pub fn segments_of(table_id: u64) -> Vec<u8> {
        let mut key = b"seg\0".to_vec();
        key.extend_from_slice(&table_id.to_be_bytes());
        key
    }
}
