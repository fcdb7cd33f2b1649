//! The session's physical planning: DataFusion's physical planner, given the optimized plan
//! after the logical fixes it needs to run what PostgreSQL runs. Subqueries it cannot join run
//! per row ([`super::subplan`]), and recursive queries' terms agree in column metadata
//! ([`super::recursive_terms`]).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

#[derive(Debug, Default)]
pub struct PostgresQueryPlanner;

#[async_trait]
impl QueryPlanner for PostgresQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = match session_state.as_any().downcast_ref::<SessionState>() {
            Some(state) => super::subplan::subqueries_per_row(logical_plan.clone(), state)?,
            None => logical_plan.clone(),
        };
        let plan = super::recursive_terms::conform(plan)?;
        DefaultPhysicalPlanner::default()
            .create_physical_plan(&plan, session_state)
            .await
    }
}
