//! Stable OIDs in `pg_namespace`, `pg_class`, `pg_attribute` and `pg_database`.
//!
//! datafusion-pg-catalog numbers objects per session, in the order a session first meets
//! them, so one connection's OID named another object on the next. These tables wrap the
//! crate's and replace each OID by the object's own (`model::oids`): user objects' from
//! their stored ids, built-in ones' fixed. Every catalog table KalamDB derives reads these,
//! so the OIDs of indexes, constraints and defaults derived from a table's are stable too.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::model::DATABASE_NAME;
use crate::model::oids::{self, object_oid};
use crate::storage::Store;

/// The crate's tables whose OIDs are replaced.
const WRAPPED: [&str; 4] = ["pg_namespace", "pg_class", "pg_attribute", "pg_database"];

/// `base` (datafusion-pg-catalog's table `name`) with stable OIDs, if it has any to replace.
pub fn stable(
    name: &str,
    base: Arc<dyn TableProvider>,
    crate_catalog: &Arc<dyn SchemaProvider>,
    store: &Arc<Store>,
) -> Arc<dyn TableProvider> {
    match WRAPPED
        .iter()
        .find(|wrapped| name.eq_ignore_ascii_case(wrapped))
    {
        Some(wrapped) => Arc::new(StableOids {
            table: wrapped,
            base,
            crate_catalog: crate_catalog.clone(),
            store: store.clone(),
        }),
        None => base,
    }
}

struct StableOids {
    table: &'static str,
    base: Arc<dyn TableProvider>,
    crate_catalog: Arc<dyn SchemaProvider>,
    store: Arc<Store>,
}

impl std::fmt::Debug for StableOids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StableOids({})", self.table)
    }
}

#[async_trait]
impl TableProvider for StableOids {
    fn schema(&self) -> SchemaRef {
        array_columns(&self.base.schema())
    }

    fn table_type(&self) -> TableType {
        self.base.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = scan_all(state, &self.base).await?;
        let oids = if self.table == "pg_database" {
            OidMap::default()
        } else {
            OidMap::read(
                state,
                &self.crate_catalog,
                &self.store,
                self.table != "pg_namespace",
            )
            .await?
        };
        let schema = self.schema();
        let rewritten = batches
            .iter()
            .map(|batch| {
                let batch = oids.rewrite(self.table, batch)?;
                let columns = schema
                    .fields()
                    .iter()
                    .zip(batch.columns())
                    .map(|(field, column)| match field.data_type() {
                        DataType::List(_) if column.data_type() == &DataType::Utf8 => {
                            Ok(new_null_array(field.data_type(), column.len()))
                        }
                        _ => Ok(column.clone()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(RecordBatch::try_new(schema.clone(), columns)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[rewritten],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

/// The schema with the access-privilege columns (`nspacl`, `attacl`, ...) as the arrays
/// PostgreSQL has (datafusion-pg-catalog makes them text). KalamDB grants by role, not per
/// object, so every object has the default privileges: a NULL list, as in PostgreSQL.
fn array_columns(schema: &SchemaRef) -> SchemaRef {
    let list = |item: DataType| DataType::List(Arc::new(Field::new("item", item, true)));
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let field = f.as_ref().clone();
            match (f.name().as_str(), f.data_type()) {
                (name, DataType::Utf8) if name.ends_with("acl") => field
                    .with_data_type(list(DataType::Utf8))
                    .with_nullable(true),
                _ => field,
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

pub(super) async fn scan_all(
    state: &dyn Session,
    table: &Arc<dyn TableProvider>,
) -> Result<Vec<RecordBatch>> {
    let plan = table.scan(state, None, &[], None).await?;
    datafusion::physical_plan::collect(plan, state.task_ctx()).await
}

async fn crate_table(
    state: &dyn Session,
    crate_catalog: &Arc<dyn SchemaProvider>,
    name: &str,
) -> Result<Vec<RecordBatch>> {
    match crate_catalog.table(name).await? {
        Some(table) => scan_all(state, &table).await,
        None => Ok(Vec::new()),
    }
}

fn storage_error(e: crate::storage::StorageError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// This session's OIDs (the crate's) mapped to the stable ones.
#[derive(Default)]
struct OidMap {
    namespaces: HashMap<i32, i32>,
    relations: HashMap<i32, i32>,
}

impl OidMap {
    async fn read(
        state: &dyn Session,
        crate_catalog: &Arc<dyn SchemaProvider>,
        store: &Store,
        with_relations: bool,
    ) -> Result<Self> {
        let stored_namespaces: HashMap<String, u64> = store
            .namespaces()
            .map_err(storage_error)?
            .into_iter()
            .map(|ns| (ns.name, ns.namespace_id))
            .collect();
        let mut namespace_names = HashMap::new();
        let mut map = OidMap::default();
        for batch in crate_table(state, crate_catalog, "pg_namespace").await? {
            let oids = int32_column(&batch, "oid")?;
            let names = batch
                .column_by_name("nspname")
                .and_then(|c| c.as_string_opt::<i32>());
            let Some(names) = names else { continue };
            for row in 0..batch.num_rows() {
                let (session_oid, name) = (oids.value(row), names.value(row));
                map.namespaces
                    .insert(session_oid, namespace_oid(name, &stored_namespaces));
                namespace_names.insert(session_oid, name.to_owned());
            }
        }
        if !with_relations {
            return Ok(map);
        }
        let user_relations = user_relation_ids(store)?;
        // Built-in relations without a fixed OID are numbered in name order within their
        // namespace, which is the same on every connection of one server version.
        let mut builtin: HashMap<&str, Vec<(String, i32)>> = HashMap::new();
        let classes = crate_table(state, crate_catalog, "pg_class").await?;
        for batch in &classes {
            let oids = int32_column(batch, "oid")?;
            let spaces = int32_column(batch, "relnamespace")?;
            let Some(names) = batch
                .column_by_name("relname")
                .and_then(|c| c.as_string_opt::<i32>())
            else {
                continue;
            };
            for row in 0..batch.num_rows() {
                let namespace = namespace_names
                    .get(&spaces.value(row))
                    .map(String::as_str)
                    .unwrap_or_default();
                let name = names.value(row);
                let session_oid = oids.value(row);
                let stable = match namespace {
                    "pg_catalog" => oids::pg_catalog_relation_oid(name),
                    "information_schema" | "system" => None,
                    _ => Some(
                        user_relations
                            .get(&(namespace.to_owned(), name.to_owned()))
                            .map_or_else(|| uncommitted_oid(namespace, name), |id| object_oid(*id)),
                    ),
                };
                match stable {
                    Some(oid) => {
                        map.relations.insert(session_oid, oid);
                    }
                    None => {
                        let key = match namespace {
                            "pg_catalog" => "pg_catalog",
                            "information_schema" => "information_schema",
                            _ => "system",
                        };
                        builtin
                            .entry(key)
                            .or_default()
                            .push((name.to_owned(), session_oid));
                    }
                }
            }
        }
        for (namespace, mut relations) in builtin {
            relations.sort();
            let base = match namespace {
                "pg_catalog" => oids::PG_CATALOG_RELATIONS_BASE,
                "information_schema" => oids::INFORMATION_SCHEMA_RELATIONS_BASE,
                _ => oids::SYSTEM_RELATIONS_BASE,
            };
            for (ordinal, (_, session_oid)) in relations.into_iter().enumerate() {
                map.relations.insert(session_oid, base + ordinal as i32);
            }
        }
        Ok(map)
    }

    fn rewrite(&self, table: &str, batch: &RecordBatch) -> Result<RecordBatch> {
        let schema = batch.schema();
        let columns = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, column)| -> Result<ArrayRef> {
                let map = match (table, field.name().as_str()) {
                    ("pg_namespace", "oid") | ("pg_class", "relnamespace") => &self.namespaces,
                    ("pg_class", "oid" | "relfilenode") | ("pg_attribute", "attrelid") => {
                        &self.relations
                    }
                    ("pg_database", "oid") => return Ok(database_oids(batch, column)),
                    _ => return Ok(column.clone()),
                };
                if column.data_type() != &DataType::Int32 {
                    return Ok(column.clone());
                }
                let values = column.as_primitive::<Int32Type>();
                Ok(Arc::new(Int32Array::from_iter(values.iter().map(|oid| {
                    oid.map(|oid| map.get(&oid).copied().unwrap_or(oid))
                }))))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// `pg_database.oid`: the fixed OID for KalamDB's database.
fn database_oids(batch: &RecordBatch, column: &ArrayRef) -> ArrayRef {
    let names = batch
        .column_by_name("datname")
        .and_then(|c| c.as_string_opt::<i32>());
    let (Some(names), DataType::Int32) = (names, column.data_type()) else {
        return column.clone();
    };
    let values = column.as_primitive::<Int32Type>();
    Arc::new(Int32Array::from_iter((0..values.len()).map(|row| {
        if names.is_valid(row) && names.value(row) == DATABASE_NAME {
            Some(oids::DATABASE_OID)
        } else {
            values.is_valid(row).then(|| values.value(row))
        }
    })))
}

fn int32_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a datafusion::arrow::array::PrimitiveArray<Int32Type>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int32Type>())
        .ok_or_else(|| DataFusionError::Internal(format!("catalog column {name} is not int4")))
}

fn namespace_oid(name: &str, stored: &HashMap<String, u64>) -> i32 {
    match name {
        "pg_catalog" => oids::PG_CATALOG_NAMESPACE_OID,
        "public" => oids::PUBLIC_NAMESPACE_OID,
        "information_schema" => oids::INFORMATION_SCHEMA_OID,
        "system" => oids::SYSTEM_NAMESPACE_OID,
        _ => match stored.get(name) {
            Some(&id) if id != 0 => object_oid(id),
            _ => uncommitted_oid("", name),
        },
    }
}

/// Every committed table and view by (namespace, name), with its stored id.
fn user_relation_ids(store: &Store) -> Result<HashMap<(String, String), u64>> {
    let tables = store.tables().map_err(storage_error)?;
    let views = store.view_definitions().map_err(storage_error)?;
    Ok(tables
        .into_iter()
        .map(|t| ((t.namespace, t.name), t.table_id))
        .chain(
            views
                .into_iter()
                .map(|v| ((v.namespace, v.name), v.view_id)),
        )
        .collect())
}

/// An object a transaction block created has no committed id until COMMIT; until then it is
/// numbered from its name (FNV-1a), in a range no stored id reaches, so that every session
/// still agrees on it.
fn uncommitted_oid(namespace: &str, name: &str) -> i32 {
    const UNCOMMITTED_BASE: i32 = 0x0800_0000;
    let hash = namespace
        .bytes()
        .chain([0])
        .chain(name.bytes())
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    UNCOMMITTED_BASE + (hash % 0x0100_0000) as i32
}

/// Every committed relation a user created, by OID: (namespace, name). Tables, views,
/// sequences, secondary indexes, and the index behind each primary key.
pub fn relations_by_oid(store: &Store) -> Result<HashMap<i32, (String, String)>> {
    let mut relations = HashMap::new();
    for table in store.tables().map_err(storage_error)? {
        let oid = object_oid(table.table_id);
        if !table.primary_key.is_empty() {
            relations.insert(
                oid.saturating_add(oids::PRIMARY_KEY_INDEX_OFFSET),
                (table.namespace.clone(), format!("{}_pkey", table.name)),
            );
        }
        relations.insert(oid, (table.namespace, table.name));
    }
    for view in store.view_definitions().map_err(storage_error)? {
        relations.insert(object_oid(view.view_id), (view.namespace, view.name));
    }
    for sequence in store.sequences().map_err(storage_error)? {
        relations.insert(
            object_oid(sequence.sequence_id),
            (sequence.namespace, sequence.name),
        );
    }
    for index in store.all_indexes().map_err(storage_error)? {
        relations.insert(object_oid(index.index_id), (index.namespace, index.name));
    }
    Ok(relations)
}

/// The built-in namespace a built-in relation's OID belongs to (see `model::oids`).
pub fn builtin_namespace(oid: i32) -> Option<&'static str> {
    match oid {
        _ if oid <= 0 => None,
        _ if oid < oids::INFORMATION_SCHEMA_RELATIONS_BASE => Some("pg_catalog"),
        _ if oid < oids::SYSTEM_NAMESPACE_OID => Some("information_schema"),
        _ if (oids::SYSTEM_RELATIONS_BASE..oids::FIRST_NORMAL_OID as i32).contains(&oid) => {
            Some("system")
        }
        _ => None,
    }
}
