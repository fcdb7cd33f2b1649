//! A recursive query's terms made to agree with its declared columns in field metadata.
//! DataFusion runs a recursive query only when both terms' columns carry exactly its output
//! columns' metadata, and the catalogs tag some OID columns (`pg_auth_members.roleid`) but
//! not others (`pg_roles.oid`): a recursive walk of role memberships, as pgAdmin's login
//! query makes, failed on that alone. A term whose column differs is projected through a
//! same-type cast that carries the declared metadata.

use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchemaRef, Result};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, RecursiveQuery};

/// `plan` with every recursive query's terms conformed (see the module comment).
pub fn conform(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up(|node| match node {
        LogicalPlan::RecursiveQuery(query) => {
            let static_term = conform_term(query.static_term.clone(), &query.schema)?;
            let recursive_term = conform_term(query.recursive_term.clone(), &query.schema)?;
            if !static_term.transformed && !recursive_term.transformed {
                return Ok(Transformed::no(LogicalPlan::RecursiveQuery(query)));
            }
            Ok(Transformed::yes(LogicalPlan::RecursiveQuery(
                RecursiveQuery {
                    static_term: Arc::new(static_term.data),
                    recursive_term: Arc::new(recursive_term.data),
                    ..query
                },
            )))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|conformed| conformed.data)
}

fn conform_term(
    term: Arc<LogicalPlan>,
    declared: &DFSchemaRef,
) -> Result<Transformed<LogicalPlan>> {
    let fields = term.schema().fields().clone();
    let differs = fields.len() == declared.fields().len()
        && fields
            .iter()
            .zip(declared.fields())
            .any(|(field, wanted)| field.metadata() != wanted.metadata());
    if !differs {
        return Ok(Transformed::no(Arc::unwrap_or_clone(term)));
    }
    let columns: Vec<Expr> = term
        .schema()
        .columns()
        .into_iter()
        .zip(fields.iter().zip(declared.fields()))
        .map(|(column, (field, wanted))| {
            let name = field.name().clone();
            if field.metadata() == wanted.metadata() {
                return Expr::Column(column);
            }
            // A named target field makes the cast carry exactly its metadata, even to the
            // same type.
            let target = Field::new(&name, field.data_type().clone(), field.is_nullable())
                .with_metadata(wanted.metadata().clone());
            Expr::Cast(Cast::new_from_field(
                Box::new(Expr::Column(column)),
                Arc::new(target),
            ))
            .alias(name)
        })
        .collect();
    let projected = LogicalPlanBuilder::from(Arc::unwrap_or_clone(term))
        .project(columns)?
        .build()?;
    Ok(Transformed::yes(projected))
}
