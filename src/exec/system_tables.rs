//! The `system` schema: read-only tables built from storage at scan time.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::storage::Store;

/// A table whose rows are computed from the store each time it is scanned.
pub(super) trait SystemTable: Send + Sync + std::fmt::Debug + 'static {
    fn schema(&self) -> SchemaRef;
    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>>;
}

pub struct SystemSchema {
    store: Arc<Store>,
    /// The server's `[[backup.schedule]]` entries, for `system.backup_schedules`.
    schedules: Arc<[crate::backup::Schedule]>,
    /// This node's part in a cluster, for `system.cluster`.
    cluster: Option<Arc<crate::cluster::replica::Replica>>,
}

impl std::fmt::Debug for SystemSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemSchema").finish_non_exhaustive()
    }
}

impl SystemSchema {
    pub fn new(
        store: Arc<Store>,
        schedules: Arc<[crate::backup::Schedule]>,
        cluster: Option<Arc<crate::cluster::replica::Replica>>,
    ) -> Self {
        SystemSchema {
            store,
            schedules,
            cluster,
        }
    }

    fn find(&self, name: &str) -> Option<Arc<dyn SystemTable>> {
        match name {
            "users" => Some(Arc::new(UsersTable)),
            "jobs" => Some(Arc::new(JobsTable)),
            "namespaces" => Some(Arc::new(NamespacesTable)),
            "tables" => Some(Arc::new(TablesTable)),
            "indexes" => Some(Arc::new(super::index_catalog::IndexHealthTable)),
            "backup_schedules" => Some(Arc::new(super::backup_schedules::BackupSchedulesTable {
                schedules: self.schedules.clone(),
            })),
            "cluster" => Some(Arc::new(super::cluster_nodes::ClusterTable {
                replica: self.cluster.clone(),
            })),
            _ => None,
        }
    }
}

const TABLE_NAMES: [&str; 7] = [
    "cluster",
    "users",
    "jobs",
    "namespaces",
    "tables",
    "indexes",
    "backup_schedules",
];

/// A table provider computing `table`'s rows from `store` at every scan.
pub(super) fn store_backed(
    table: Arc<dyn SystemTable>,
    store: Arc<Store>,
) -> Arc<dyn TableProvider> {
    Arc::new(StoreBackedTable { table, store })
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        TABLE_NAMES.iter().map(|s| (*s).to_owned()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .find(name)
            .map(|table| store_backed(table, self.store.clone())))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLE_NAMES.contains(&name)
    }
}

#[derive(Debug)]
struct StoreBackedTable {
    table: Arc<dyn SystemTable>,
    store: Arc<Store>,
}

#[async_trait]
impl TableProvider for StoreBackedTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.table.schema();
        let batch = RecordBatch::try_new(schema.clone(), self.table.rows(&self.store)?)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            projection.cloned(),
        )?)
    }
}

pub(super) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

use super::catalog::storage_error;

/// `system.users`: who may log in and with which role. Secrets are never exposed.
#[derive(Debug)]
struct UsersTable;

impl SystemTable for UsersTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new("role", DataType::Utf8, false),
            Field::new("created_at", timestamp_type(), false),
            Field::new("updated_at", timestamp_type(), false),
            Field::new("last_login_at", timestamp_type(), true),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let users = store.users().map_err(storage_error)?;
        let timestamps = |values: Vec<Option<i64>>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
        };
        Ok(vec![
            Arc::new(StringArray::from_iter_values(
                users.iter().map(|u| u.user_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                users.iter().map(|u| u.role.as_str()),
            )),
            timestamps(users.iter().map(|u| Some(u.created_at)).collect()),
            timestamps(users.iter().map(|u| Some(u.updated_at)).collect()),
            timestamps(users.iter().map(|u| u.last_login_at).collect()),
        ])
    }
}

pub(super) fn timestamps(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from(values.into_iter().collect::<Vec<_>>())
            .with_timezone("UTC"),
    )
}

pub(super) fn texts<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from(values.into_iter().collect::<Vec<_>>()))
}

/// `system.jobs`: background jobs, their state and progress.
#[derive(Debug)]
struct JobsTable;

impl SystemTable for JobsTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("job_id", DataType::Utf8, false),
            Field::new("job_type", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("parameters", DataType::Utf8, false),
            Field::new("message", DataType::Utf8, true),
            Field::new("created_by", DataType::Utf8, false),
            Field::new("created_at", timestamp_type(), false),
            Field::new("started_at", timestamp_type(), true),
            Field::new("finished_at", timestamp_type(), true),
            Field::new("updated_at", timestamp_type(), false),
            Field::new("bytes_total", DataType::Int64, true),
            Field::new("bytes_done", DataType::Int64, false),
            Field::new("progress", DataType::Float64, true),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let mut jobs = store.jobs().map_err(storage_error)?;
        jobs.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.job_id.cmp(&b.job_id))
        });
        let progress = |j: &crate::storage::JobRecord| match (j.status, j.bytes_total) {
            (crate::storage::JobStatus::Completed, _) => Some(1.0),
            (_, Some(total)) if total > 0 => Some((j.bytes_done as f64 / total as f64).min(1.0)),
            _ => None,
        };
        Ok(vec![
            texts(jobs.iter().map(|j| Some(j.job_id.as_str()))),
            texts(jobs.iter().map(|j| Some(j.job_type.as_str()))),
            texts(jobs.iter().map(|j| Some(j.status.as_str()))),
            texts(jobs.iter().map(|j| Some(j.parameters.as_str()))),
            texts(jobs.iter().map(|j| j.message.as_deref())),
            texts(jobs.iter().map(|j| Some(j.created_by.as_str()))),
            timestamps(jobs.iter().map(|j| Some(j.created_at))),
            timestamps(jobs.iter().map(|j| j.started_at)),
            timestamps(jobs.iter().map(|j| j.finished_at)),
            timestamps(jobs.iter().map(|j| Some(j.updated_at))),
            Arc::new(Int64Array::from_iter(
                jobs.iter().map(|j| j.bytes_total.map(|b| b as i64)),
            )),
            Arc::new(Int64Array::from_iter_values(
                jobs.iter().map(|j| j.bytes_done as i64),
            )),
            Arc::new(Float64Array::from_iter(jobs.iter().map(progress))),
        ])
    }
}

/// `system.namespaces`
#[derive(Debug)]
struct NamespacesTable;

impl SystemTable for NamespacesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("namespace_name", DataType::Utf8, false),
            Field::new("created_at", timestamp_type(), false),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let namespaces = store.namespaces().map_err(storage_error)?;
        Ok(vec![
            texts(namespaces.iter().map(|n| Some(n.name.as_str()))),
            timestamps(namespaces.iter().map(|n| Some(n.created_at))),
        ])
    }
}

/// `pg_catalog.kalamdb_primary_keys`: every primary-key column, in key order (what pgJDBC's
/// `getPrimaryKeys` reads; see `sql::catalog_queries`).
#[derive(Debug)]
pub(super) struct PrimaryKeysTable;

impl SystemTable for PrimaryKeysTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("namespace", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("column_name", DataType::Utf8, false),
            Field::new("key_seq", DataType::Int16, false),
            Field::new("pk_name", DataType::Utf8, false),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let tables = store.tables().map_err(storage_error)?;
        let keys: Vec<_> = tables
            .iter()
            .flat_map(|t| {
                t.primary_key
                    .iter()
                    .enumerate()
                    .map(move |(seq, &c)| (t, seq, c))
            })
            .collect();
        let pk_names: Vec<String> = keys
            .iter()
            .map(|(t, _, _)| format!("{}_pkey", t.name))
            .collect();
        Ok(vec![
            texts(keys.iter().map(|(t, _, _)| Some(t.namespace.as_str()))),
            texts(keys.iter().map(|(t, _, _)| Some(t.name.as_str()))),
            texts(
                keys.iter()
                    .map(|(t, _, c)| Some(t.columns[*c].name.as_str())),
            ),
            Arc::new(Int16Array::from_iter_values(
                keys.iter().map(|(_, seq, _)| *seq as i16 + 1),
            )),
            texts(pk_names.iter().map(|n| Some(n.as_str()))),
        ])
    }
}

/// Every column of every table with what PostgreSQL's catalogs say of it and Arrow cannot:
/// the declared type (OID and modifier), NOT NULL and the DEFAULT expression.
#[derive(Debug)]
pub(super) struct ColumnsTable;

impl SystemTable for ColumnsTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("namespace", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("column_name", DataType::Utf8, false),
            Field::new("type_oid", DataType::Int32, false),
            Field::new("typmod", DataType::Int32, false),
            Field::new("not_null", DataType::Boolean, false),
            Field::new("default_expr", DataType::Utf8, true),
            // `pg_attribute.attidentity`: 'a', 'd' or ''.
            Field::new("identity", DataType::Utf8, false),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let tables = store.tables().map_err(storage_error)?;
        let columns: Vec<_> = tables
            .iter()
            .flat_map(|t| t.columns.iter().map(move |c| (t, c)))
            .collect();
        let defaults: Vec<Option<String>> = columns
            .iter()
            .map(|(_, c)| match (&c.default, c.identity) {
                (Some(default), None) => Some(super::sequences::display_default(default)),
                _ => None,
            })
            .collect();
        Ok(vec![
            texts(columns.iter().map(|(t, _)| Some(t.namespace.as_str()))),
            texts(columns.iter().map(|(t, _)| Some(t.name.as_str()))),
            texts(columns.iter().map(|(_, c)| Some(c.name.as_str()))),
            Arc::new(Int32Array::from_iter_values(
                columns.iter().map(|(_, c)| c.sql_type.pg_oid()),
            )),
            Arc::new(Int32Array::from_iter_values(
                columns.iter().map(|(_, c)| c.sql_type.pg_typmod()),
            )),
            Arc::new(BooleanArray::from_iter(
                columns.iter().map(|(_, c)| Some(!c.nullable)),
            )),
            // An identity column's nextval is its identity, not a default, in the catalogs.
            texts(defaults.iter().map(|d| d.as_deref())),
            texts(
                columns
                    .iter()
                    .map(|(_, c)| Some(c.identity.map_or("", |i| i.code()))),
            ),
        ])
    }
}

/// `COMMENT ON` texts: a table's (`column_name` NULL) and its columns'.
#[derive(Debug)]
pub(super) struct CommentsTable;

impl SystemTable for CommentsTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("namespace", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("column_name", DataType::Utf8, true),
            Field::new("comment", DataType::Utf8, false),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let tables = store.tables().map_err(storage_error)?;
        let mut comments: Vec<(&str, &str, Option<&str>, &str)> = Vec::new();
        for table in &tables {
            if let Some(comment) = &table.comment {
                comments.push((&table.namespace, &table.name, None, comment));
            }
            for column in &table.columns {
                if let Some(comment) = &column.comment {
                    comments.push((&table.namespace, &table.name, Some(&column.name), comment));
                }
            }
        }
        Ok(vec![
            texts(comments.iter().map(|c| Some(c.0))),
            texts(comments.iter().map(|c| Some(c.1))),
            texts(comments.iter().map(|c| c.2)),
            texts(comments.iter().map(|c| Some(c.3))),
        ])
    }
}

/// Each sequence with its `pg_class` OID, its `pg_sequence` parameters and the last value
/// reserved (`pg_sequences.last_value`).
#[derive(Debug)]
pub(super) struct SequencesTable;

impl SystemTable for SequencesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("namespace", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("oid", DataType::Int32, false),
            Field::new("type_oid", DataType::Int32, false),
            Field::new("start", DataType::Int64, false),
            Field::new("increment", DataType::Int64, false),
            Field::new("max", DataType::Int64, false),
            Field::new("min", DataType::Int64, false),
            Field::new("cache", DataType::Int64, false),
            Field::new("cycle", DataType::Boolean, false),
            Field::new("last_value", DataType::Int64, true),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let sequences = store.sequences().map_err(storage_error)?;
        let last_values = sequences
            .iter()
            .map(|s| {
                store
                    .sequence_position(s.sequence_id)
                    .map(|p| p.and_then(|p| p.last))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(storage_error)?;
        let ints = |f: fn(&crate::storage::SequenceRecord) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(sequences.iter().map(f)))
        };
        Ok(vec![
            texts(sequences.iter().map(|s| Some(s.namespace.as_str()))),
            texts(sequences.iter().map(|s| Some(s.name.as_str()))),
            Arc::new(Int32Array::from_iter_values(
                sequences
                    .iter()
                    .map(|s| super::sequences::sequence_oid(s.sequence_id)),
            )),
            Arc::new(Int32Array::from_iter_values(
                sequences.iter().map(|s| s.data_type.pg_oid()),
            )),
            ints(|s| s.start),
            ints(|s| s.increment),
            ints(|s| s.max_value),
            ints(|s| s.min_value),
            ints(|s| s.cache),
            Arc::new(BooleanArray::from_iter(
                sequences.iter().map(|s| Some(s.cycle)),
            )),
            Arc::new(Int64Array::from(last_values)),
        ])
    }
}

/// Each table's size in bytes: hot rows, segments and stream logs.
#[derive(Debug)]
pub(super) struct TableSizesTable;

impl SystemTable for TableSizesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("namespace", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("bytes", DataType::Int64, false),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let tables = store.tables().map_err(storage_error)?;
        let bytes = tables
            .iter()
            .map(|t| store.table_bytes(t).map(|b| b as i64))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(storage_error)?;
        Ok(vec![
            texts(tables.iter().map(|t| Some(t.namespace.as_str()))),
            texts(tables.iter().map(|t| Some(t.name.as_str()))),
            Arc::new(Int64Array::from(bytes)),
        ])
    }
}

/// `system.tables`: each table with its hot (RocksDB) and cold (Parquet) row counts.
#[derive(Debug)]
struct TablesTable;

impl SystemTable for TablesTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("namespace", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("table_type", DataType::Utf8, false),
            Field::new("hot_rows", DataType::Int64, false),
            Field::new("cold_rows", DataType::Int64, false),
            Field::new("segments", DataType::Int64, false),
            Field::new("created_at", timestamp_type(), false),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let tables = store.tables().map_err(storage_error)?;
        let mut hot = Vec::with_capacity(tables.len());
        let mut cold = Vec::with_capacity(tables.len());
        let mut segment_counts = Vec::with_capacity(tables.len());
        for table in &tables {
            // One moment for every count: a flush publishing meanwhile moves rows from hot to cold.
            let view = store.view();
            let mut hot_rows = 0i64;
            let mut hot_keys = Vec::new();
            view.scan_rows(table.table_id, |key, stored| {
                if !crate::storage::is_tombstone(stored) {
                    hot_rows += 1;
                }
                hot_keys.push(key.to_vec());
                Ok(true)
            })
            .map_err(storage_error)?;
            let segments = view.segments(table.table_id).map_err(storage_error)?;
            let mut cold_rows = 0i64;
            for segment in &segments {
                let dead = view
                    .dead_keys(segment.segment_id)
                    .map_err(storage_error)?
                    .len();
                cold_rows += segment.rows as i64 - dead as i64;
            }
            // Cold copies that a newer hot row or a tombstone hides are not live.
            let shadowed = view
                .with_cold_copies(&hot_keys)
                .map_err(storage_error)?
                .len();
            cold_rows -= shadowed as i64;
            hot.push(hot_rows);
            cold.push(cold_rows);
            segment_counts.push(segments.len() as i64);
        }
        Ok(vec![
            texts(tables.iter().map(|t| Some(t.namespace.as_str()))),
            texts(tables.iter().map(|t| Some(t.name.as_str()))),
            texts(tables.iter().map(|t| Some(super::table_type_name(t.kind)))),
            Arc::new(Int64Array::from(hot)),
            Arc::new(Int64Array::from(cold)),
            Arc::new(Int64Array::from(segment_counts)),
            timestamps(tables.iter().map(|t| Some(t.created_at))),
        ])
    }
}

/// `pg_authid` with one row per KalamDB user, in the shape of the catalog crate's table. No
/// password column ever holds a verifier: `rolpassword` is NULL, as PostgreSQL shows it to
/// anyone who is not a superuser.
#[derive(Debug)]
pub(super) struct AuthIdTable {
    schema: SchemaRef,
}

impl AuthIdTable {
    pub(super) fn new(schema: SchemaRef) -> Self {
        AuthIdTable { schema }
    }
}

/// The OID `pg_get_userbyid` and `pg_authid` give a user: 10 (PostgreSQL's bootstrap
/// superuser) for root, and a stable number above the system range for everyone else.
fn user_oid(user_id: &str) -> i64 {
    if user_id == "root" {
        return 10;
    }
    // FNV-1a: stable across releases, unlike std's hasher.
    let hash = user_id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    16_384 + i64::from(hash % 1_000_000_000)
}

impl SystemTable for AuthIdTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        use crate::model::Role;
        let users = store.users().map_err(storage_error)?;
        self.schema
            .fields()
            .iter()
            .map(|field| {
                let text: StringArray = users
                    .iter()
                    .map(|u| match field.name().as_str() {
                        "oid" => Some(user_oid(&u.user_id).to_string()),
                        "rolname" => Some(u.user_id.clone()),
                        "rolsuper" | "rolbypassrls" => Some((u.role == Role::System).to_string()),
                        "rolcreaterole" => Some((u.role >= Role::Dba).to_string()),
                        "rolinherit" | "rolcanlogin" => Some("true".into()),
                        "rolcreatedb" | "rolreplication" => Some("false".into()),
                        "rolconnlimit" => Some("-1".into()),
                        _ => None,
                    })
                    .collect();
                Ok(datafusion::arrow::compute::cast(&text, field.data_type())?)
            })
            .collect()
    }
}
