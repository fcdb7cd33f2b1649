//! The `system` schema: read-only tables built from storage at scan time.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::storage::Store;

/// A table whose rows are computed from the store each time it is scanned.
trait SystemTable: Send + Sync + std::fmt::Debug + 'static {
    fn schema(&self) -> SchemaRef;
    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>>;
}

#[derive(Debug)]
pub struct SystemSchema {
    store: Arc<Store>,
}

impl SystemSchema {
    pub fn new(store: Arc<Store>) -> Self {
        SystemSchema { store }
    }

    fn find(name: &str) -> Option<Arc<dyn SystemTable>> {
        match name {
            "users" => Some(Arc::new(UsersTable)),
            _ => None,
        }
    }
}

const TABLE_NAMES: [&str; 1] = ["users"];

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        TABLE_NAMES.iter().map(|s| (*s).to_owned()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(Self::find(name).map(|table| {
            Arc::new(StoreBackedTable {
                table,
                store: self.store.clone(),
            }) as Arc<dyn TableProvider>
        }))
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

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn storage_error(e: crate::storage::StorageError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

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
