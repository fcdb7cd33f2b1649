//! `pg_catalog.kalamdb_activity`: one row per logged-in session, what `pg_stat_activity` (a
//! derived view adding the OIDs) lists. A session that is not the asker's own user's shows its
//! pid, user and application only, with `<insufficient privilege>` for its statement, unless
//! the asker may reach it (see `Backend::reachable_by`), as PostgreSQL hides other roles'
//! activity from those without `pg_read_all_stats`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::Backends;
use crate::exec::system_tables::timestamp_type;
use crate::model::Role;

/// The helper relation `pg_stat_activity` reads; resolvable by name, never listed.
pub const ACTIVITY_TABLE: &str = "kalamdb_activity";

/// Who is asking, and the registry to list: a session's config extension, read at scan.
pub struct Viewer {
    pub backends: Arc<Backends>,
    pub user: String,
    pub role: Role,
}

#[derive(Debug)]
pub struct ActivityTable;

impl ActivityTable {
    fn schema() -> SchemaRef {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        Arc::new(Schema::new(vec![
            Field::new("pid", DataType::Int32, false),
            text("usename"),
            text("application_name"),
            text("client_addr"),
            Field::new("client_port", DataType::Int32, true),
            Field::new("backend_start", timestamp_type(), true),
            Field::new("xact_start", timestamp_type(), true),
            Field::new("query_start", timestamp_type(), true),
            Field::new("state_change", timestamp_type(), true),
            text("state"),
            text("query"),
            text("backend_type"),
        ]))
    }

    fn rows(viewer: Option<&Viewer>) -> Result<RecordBatch> {
        let schema = Self::schema();
        let Some(viewer) = viewer else {
            return Ok(RecordBatch::new_empty(schema));
        };
        let backends = viewer.backends.listing();
        let mut pid = Vec::with_capacity(backends.len());
        let mut user = Vec::with_capacity(backends.len());
        let mut application = Vec::with_capacity(backends.len());
        let mut client_addr = Vec::with_capacity(backends.len());
        let mut client_port = Vec::with_capacity(backends.len());
        let mut times: [Vec<Option<i64>>; 4] = Default::default();
        let mut state = Vec::with_capacity(backends.len());
        let mut query = Vec::with_capacity(backends.len());
        for backend in &backends {
            pid.push(backend.pid);
            user.push(Some(backend.user.clone()));
            application.push(
                backend
                    .settings
                    .lock()
                    .expect("settings")
                    .get("application_name")
                    .ok(),
            );
            if !backend.reachable_by(&viewer.user, viewer.role) {
                client_addr.push(None);
                client_port.push(None);
                for column in &mut times {
                    column.push(None);
                }
                state.push(None);
                query.push(Some("<insufficient privilege>".to_owned()));
                continue;
            }
            client_addr.push(backend.client.map(|a| a.ip().to_string()));
            client_port.push(backend.client.map(|a| i32::from(a.port())));
            let activity = backend.activity.lock().expect("activity");
            let micros = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_micros());
            times[0].push(micros(Some(backend.started)));
            times[1].push(micros(activity.xact_start));
            times[2].push(micros(activity.query_start));
            times[3].push(micros(Some(activity.state_change)));
            state.push(Some(activity.state.name().to_owned()));
            query.push(Some(activity.query.to_string()));
        }
        let timestamps = times.into_iter().map(|column| {
            Arc::new(
                datafusion::arrow::array::TimestampMicrosecondArray::from(column)
                    .with_timezone("UTC"),
            ) as ArrayRef
        });
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(pid)),
            Arc::new(StringArray::from(user)),
            Arc::new(StringArray::from(application)),
            Arc::new(StringArray::from(client_addr)),
            Arc::new(Int32Array::from(client_port)),
        ];
        columns.extend(timestamps);
        columns.push(Arc::new(StringArray::from(state)));
        columns.push(Arc::new(StringArray::from(query)));
        columns.push(Arc::new(StringArray::from(vec![
            Some("client backend");
            backends.len()
        ])));
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

#[async_trait]
impl TableProvider for ActivityTable {
    fn schema(&self) -> SchemaRef {
        Self::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let viewer = state.config().get_extension::<Viewer>();
        let batch = Self::rows(viewer.as_deref())?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Self::schema(),
            projection.cloned(),
        )?)
    }
}
