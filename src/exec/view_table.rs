//! Views as DataFusion relations: a stored view as its namespace lists it (its columns and
//! definition, for the catalogs), and the `pg_catalog`/`information_schema` relations that
//! describe views.
//!
//! A statement that reads a view never scans the `StoredView` itself: the statement planner
//! plans the view's query and inlines it, so the optimizer sees through the view. `scan` here
//! serves whatever plans outside that planner.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;

use super::catalog::storage_error;
use super::system_tables::{SystemTable, texts};
use super::view_definition::{self, Definitions, Ty};
use crate::storage::{Store, ViewRecord};

/// `pg_catalog.kalamdb_views`: each view's namespace, name and definition text, plain and
/// pretty (`pg_get_viewdef(oid)` and `pg_get_viewdef(oid, true)`).
pub const VIEWS_TABLE: &str = "kalamdb_views";

#[derive(Debug)]
pub(super) struct StoredView {
    record: Arc<ViewRecord>,
    schema: SchemaRef,
}

impl StoredView {
    pub fn new(record: ViewRecord) -> Self {
        let schema = Arc::new(Schema::new(
            record
                .columns
                .iter()
                .map(|c| match c.sql_type {
                    Some(sql_type) => sql_type.field(&c.name, true),
                    None => Field::new(&c.name, DataType::Utf8, true),
                })
                .collect::<Vec<_>>(),
        ));
        StoredView {
            record: Arc::new(record),
            schema,
        }
    }

    pub fn record(&self) -> &ViewRecord {
        &self.record
    }
}

/// The stored text of a view's query as `pg_get_viewdef` shows one PostgreSQL's layout is
/// not known for: after a space, ending in a semicolon.
fn definition_text(query: &str) -> String {
    format!(" {query};")
}

#[async_trait]
impl TableProvider for StoredView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.record.query)
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(state) = state.as_any().downcast_ref::<SessionState>() else {
            return datafusion::common::internal_err!("views need a SessionState to be planned");
        };
        let plan = state.create_logical_plan(&self.record.query).await?;
        let mut plan = super::planner::with_view_columns(plan, &self.record)?;
        if let Some(projection) = projection {
            let columns: Vec<Expr> = projection
                .iter()
                .map(|&i| Expr::Column(plan.schema().columns()[i].clone()))
                .collect();
            plan = LogicalPlanBuilder::from(plan).project(columns)?.build()?;
        }
        state.create_physical_plan(&plan).await
    }
}

/// `kalamdb_views` rows (see [`VIEWS_TABLE`]).
#[derive(Debug)]
pub(super) struct ViewsTable;

impl SystemTable for ViewsTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("namespace", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("query", DataType::Utf8, false),
            Field::new("definition", DataType::Utf8, false),
            Field::new("pretty_definition", DataType::Utf8, false),
        ]))
    }

    fn rows(&self, store: &Store) -> Result<Vec<ArrayRef>> {
        let views = store.view_definitions().map_err(storage_error)?;
        let definitions: Vec<Definitions> = views
            .iter()
            .map(|v| {
                view_definition::definitions(v, &StoredRelations(store)).unwrap_or_else(|| {
                    let text = definition_text(&v.query);
                    Definitions {
                        plain: text.clone(),
                        pretty: text,
                    }
                })
            })
            .collect();
        Ok(vec![
            texts(views.iter().map(|v| Some(v.namespace.as_str()))),
            texts(views.iter().map(|v| Some(v.name.as_str()))),
            texts(views.iter().map(|v| Some(v.query.as_str()))),
            texts(definitions.iter().map(|d| Some(d.plain.as_str()))),
            texts(definitions.iter().map(|d| Some(d.pretty.as_str()))),
        ])
    }
}

/// The catalog as the view printer reads it.
struct StoredRelations<'a>(&'a Store);

impl view_definition::Relations for StoredRelations<'_> {
    fn columns(&self, namespace: &str, name: &str) -> Option<Vec<(String, Ty)>> {
        if let Ok(Some(table)) = self.0.table(namespace, name) {
            return Some(
                table
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), Ty::of(c.sql_type)))
                    .collect(),
            );
        }
        let view = self.0.view_definition(namespace, name).ok()??;
        Some(
            view.columns
                .iter()
                .map(|c| (c.name.clone(), c.sql_type.map_or(Ty::Other, Ty::of)))
                .collect(),
        )
    }

    /// A catalog row has no session, so no search path of its own: the default one
    /// (`"$user", public`) decides, as for a client that has not set it.
    fn visible(&self, namespace: &str) -> bool {
        namespace == crate::storage::PUBLIC_NAMESPACE
    }
}
