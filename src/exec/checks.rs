//! CHECK constraints: naming and validating them when they are declared, checking the rows a
//! table has when one is added, and checking every row an INSERT or UPDATE writes. A row
//! passes when the expression is true or NULL, as in PostgreSQL.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast;

use super::outcome::Outcome;
use super::{ExecError, ExecResult, Session};
use crate::model::types::schema_of;
use crate::sql::{CheckSpec, TableName};
use crate::storage::{CheckConstraint, CheckEvaluator, Command, TableRecord};

impl Session {
    /// The constraints `specs` declare on `record`, named as PostgreSQL names them when no
    /// name is given (`<table>_<column>_check` for one that reads one column), each checked to be a boolean
    /// expression over the table's columns.
    pub(super) fn check_constraints(
        &self,
        record: &TableRecord,
        specs: &[CheckSpec],
    ) -> ExecResult<Vec<CheckConstraint>> {
        let mut taken: Vec<String> = record.checks.iter().map(|c| c.name.clone()).collect();
        let mut checks = Vec::with_capacity(specs.len());
        for spec in specs {
            self.check_expression(record, &spec.expr)?;
            let name = match &spec.name {
                Some(name) if taken.contains(name) => {
                    return Err(ExecError::DuplicateObject(format!(
                        "constraint \"{name}\" for relation \"{}\" already exists",
                        record.name
                    )));
                }
                Some(name) => name.clone(),
                None => {
                    let column = spec
                        .column
                        .clone()
                        .or_else(|| only_column(record, &spec.expr));
                    let base = match column {
                        Some(column) => format!("{}_{column}_check", record.name),
                        None => format!("{}_check", record.name),
                    };
                    super::indexes::numbered_past(base, &taken)
                }
            };
            taken.push(name.clone());
            checks.push(CheckConstraint {
                name,
                expr: spec.expr.clone(),
            });
        }
        Ok(checks)
    }

    /// The expression as DataFusion evaluates it over the table's rows; it must be boolean.
    fn check_expression(
        &self,
        record: &TableRecord,
        expr: &str,
    ) -> ExecResult<Arc<dyn PhysicalExpr>> {
        compile_check(&self.ctx, record, expr)
    }

    /// Fails with 23514 when a row of `columns` (one array per table column) makes one of the
    /// table's CHECK constraints false.
    pub(super) fn enforce_checks(
        &self,
        record: &TableRecord,
        columns: &[ArrayRef],
        rows: usize,
    ) -> ExecResult<()> {
        match self.check_violation(record, columns, rows)? {
            None => Ok(()),
            Some((error, _)) => Err(error),
        }
    }

    /// The first row that breaks one of the table's CHECKs: the error and the row's index.
    pub(super) fn check_violation(
        &self,
        record: &TableRecord,
        columns: &[ArrayRef],
        rows: usize,
    ) -> ExecResult<Option<(ExecError, usize)>> {
        Ok(
            first_violation(&self.ctx, record, columns, rows)?.map(|(check, row)| {
                let error = ExecError::CheckViolation {
                    message: format!(
                        "new row for relation \"{}\" violates check constraint \"{}\"",
                        record.name, check.name
                    ),
                    detail: format!("Failing row contains ({}).", row_text(columns, row)),
                };
                (error, row)
            }),
        )
    }

    /// `ALTER TABLE t ADD [CONSTRAINT name] CHECK (expr)`: every row the table has must pass.
    pub(super) async fn add_check(
        &self,
        table: &TableName,
        spec: &CheckSpec,
    ) -> ExecResult<Outcome> {
        let mut record = self.resolve_table(table)?;
        let mut added = self.check_constraints(&record, std::slice::from_ref(spec))?;
        let check = added.remove(0);
        let query = format!(
            "SELECT count(*) FROM {} WHERE NOT ({})",
            super::sequences::qualified(&record.namespace, &record.name),
            check.expr
        );
        let batches = self.internal_query(&query).await?;
        let violating = batches
            .first()
            .filter(|b| b.num_rows() > 0)
            .map(|b| {
                b.column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(0)
            })
            .unwrap_or(0);
        if violating > 0 {
            return Err(ExecError::CheckViolation {
                message: format!(
                    "check constraint \"{}\" of relation \"{}\" is violated by some row",
                    check.name, record.name
                ),
                detail: format!("{violating} row(s) fail it."),
            });
        }
        record.checks.push(check);
        self.apply_ddl(Command::AlterTable(record))?;
        Ok(Outcome::Done { tag: "ALTER TABLE" })
    }
}

impl Session {
    /// Runs a query the server composed (to validate a constraint over a table's rows) as
    /// this session, seeing what it sees.
    pub(super) async fn internal_query(&self, query: &str) -> ExecResult<Vec<RecordBatch>> {
        let statement = crate::sql::parse(query)?
            .into_iter()
            .next()
            .and_then(|s| match s {
                crate::sql::Statement::Query(q) => Some(*q),
                _ => None,
            })
            .ok_or_else(|| ExecError::Internal(format!("{query} is not a query")))?;
        let ast::Statement::Query(select) = &statement else {
            return Err(ExecError::Internal(format!("{query} is not a query")));
        };
        let planner = super::planner::StatementPlanner::new(self, &statement).await?;
        let plan = planner.query(select)?;
        planner.collect(plan).await
    }
}

/// `expr` compiled for evaluation over the rows of `record`'s table; it must be boolean.
fn compile_check(
    ctx: &SessionContext,
    record: &TableRecord,
    expr: &str,
) -> ExecResult<Arc<dyn PhysicalExpr>> {
    let schema = DFSchema::try_from(schema_of(&record.columns).as_ref().clone())?;
    let logical = ctx.parse_sql_expr(expr, &schema)?;
    let physical = ctx.create_physical_expr(logical, &schema)?;
    let data_type = physical.data_type(schema.as_arrow())?;
    if data_type != DataType::Boolean && data_type != DataType::Null {
        let field = datafusion::arrow::datatypes::Field::new("check", data_type.clone(), true);
        let type_name = crate::model::types::storable_type(&field)
            .map_or_else(|| data_type.to_string(), |t| t.sql_name());
        return Err(ExecError::DatatypeMismatch(format!(
            "argument of CHECK must be type boolean, not type {type_name}"
        )));
    }
    Ok(physical)
}

/// The first row of `columns` (one array per table column) that makes one of the table's
/// CHECK constraints false, with that constraint. A row passes when the expression is true or
/// NULL; constraints are tried in name order, as PostgreSQL does, so a row failing several
/// names the first.
fn first_violation<'r>(
    ctx: &SessionContext,
    record: &'r TableRecord,
    columns: &[ArrayRef],
    rows: usize,
) -> ExecResult<Option<(&'r CheckConstraint, usize)>> {
    if record.checks.is_empty() || rows == 0 {
        return Ok(None);
    }
    let batch = RecordBatch::try_new(schema_of(&record.columns), columns.to_vec())
        .map_err(|e| ExecError::Internal(e.to_string()))?;
    let mut checks: Vec<&CheckConstraint> = record.checks.iter().collect();
    checks.sort_by(|a, b| a.name.cmp(&b.name));
    for check in checks {
        let verdict = compile_check(ctx, record, &check.expr)?
            .evaluate(&batch)?
            .into_array(rows)?;
        if verdict.data_type() != &DataType::Boolean {
            continue;
        }
        let verdict = verdict.as_boolean();
        if let Some(row) = (0..rows).find(|&i| verdict.is_valid(i) && !verdict.value(i)) {
            return Ok(Some((check, row)));
        }
    }
    Ok(None)
}

/// Storage's view of CHECK constraints: it asks this about rows a foreign key's cascade
/// rewrote. Its expression context is a session's without a user: a CHECK constraint reads
/// only its row.
pub struct CheckRules {
    ctx: SessionContext,
}

impl CheckRules {
    pub fn new() -> CheckRules {
        let mut config = SessionConfig::new();
        super::session::postgres_sql(&mut config);
        let ctx = SessionContext::new_with_config(config);
        let settings = super::settings::Settings::new(super::users::ROOT_USER, true);
        super::functions::register(
            &ctx,
            super::users::ROOT_USER,
            Arc::new(Mutex::new(settings)),
        );
        CheckRules { ctx }
    }
}

impl CheckEvaluator for CheckRules {
    fn first_violation(
        &self,
        table: &TableRecord,
        columns: &[ArrayRef],
        rows: usize,
    ) -> Result<Option<(String, usize)>, String> {
        first_violation(&self.ctx, table, columns, rows)
            .map(|found| found.map(|(check, row)| (check.name.clone(), row)))
            .map_err(|e| e.to_string())
    }
}

/// The one table column `expr` reads, if it reads exactly one (PostgreSQL names a table
/// constraint after its column only then).
fn only_column(record: &TableRecord, expr: &str) -> Option<String> {
    let mut found = columns_read(record, expr);
    (found.len() == 1).then(|| found.remove(0))
}

/// The table columns a constraint's expression reads.
pub(super) fn columns_read(record: &TableRecord, expr: &str) -> Vec<String> {
    let Ok(parsed) = crate::sql::parse_expr(expr) else {
        return Vec::new();
    };
    let mut found: Vec<String> = Vec::new();
    let _ = ast::visit_expressions(&parsed, |e| {
        if let ast::Expr::Identifier(ident) = e {
            let name = crate::sql::fold(ident);
            if record.columns.iter().any(|c| c.name == name) && !found.contains(&name) {
                found.push(name);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// `1, -5, null`: a row as PostgreSQL's "Failing row contains" shows it.
fn row_text(columns: &[ArrayRef], row: usize) -> String {
    columns
        .iter()
        .map(|c| {
            if c.is_null(row) {
                "null".to_owned()
            } else {
                array_value_to_string(c, row).unwrap_or_else(|_| "?".into())
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
