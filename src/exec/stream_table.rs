//! The table provider for stream tables: rows from the commit log that are within the TTL.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::catalog::storage_error;
use crate::model::TableKind;
use crate::model::types::schema_of;
use crate::storage::rows::RowDecoder;
use crate::storage::{Store, TableRecord, now_micros, streams};

#[derive(Debug)]
pub struct StreamTable {
    store: Arc<Store>,
    record: Arc<TableRecord>,
    schema: SchemaRef,
}

impl StreamTable {
    pub fn new(store: Arc<Store>, record: Arc<TableRecord>) -> Self {
        let schema = schema_of(&record.columns);
        StreamTable {
            store,
            record,
            schema,
        }
    }
}

/// The oldest append time still within a stream's TTL.
pub fn ttl_cutoff(record: &TableRecord) -> i64 {
    match record.kind {
        TableKind::Stream { ttl_seconds } => now_micros() - ttl_seconds as i64 * 1_000_000,
        TableKind::Regular => i64::MIN,
    }
}

#[async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = self
            .store
            .stream_state(self.record.table_id)
            .map_err(storage_error)?;
        let cutoff = ttl_cutoff(&self.record);
        let mut decoder = RowDecoder::new(
            Arc::new(self.record.columns.clone()),
            projection.map(|p| p.as_slice()),
        );
        streams::read(self.store.streams_root(), &state, |appended_at, row| {
            if appended_at >= cutoff {
                decoder.push(row)?;
            }
            Ok(())
        })
        .map_err(storage_error)?;
        let rows = decoder.len();
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(schema.clone(), decoder.finish(), &options)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            None,
        )?)
    }
}
