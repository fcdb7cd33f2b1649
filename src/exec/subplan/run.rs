//! Running a subquery per outer row: its results remembered per distinct outer values, and the
//! async function DataFusion calls.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch, new_empty_array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use super::{Kind, SubqueryCall};
/// A subquery run per row in a session.
pub(super) struct SubPlan {
    call: Arc<SubqueryCall>,
    state: SessionState,
    /// Whether a row's result may be reused for another row with the same outer values.
    memoizable: bool,
    /// Results by outer values, for the statement's life.
    memo: Mutex<Memo>,
}

/// Remembered results, bounded by [`MEMO_VALUES`]: past it, new ones are run and not kept.
#[derive(Default)]
struct Memo {
    found: HashMap<Vec<ScalarValue>, Arc<Found>>,
    values: usize,
}

/// The values (outer keys and `IN` members) a subquery's memo may hold.
const MEMO_VALUES: usize = 1 << 20;

/// What running a subquery for one outer row found.
enum Found {
    /// The scalar subquery's value, or whether EXISTS found a row.
    Value(ScalarValue),
    /// The values an `IN` compares with.
    Members(Members),
}

struct Members {
    values: HashSet<ScalarValue>,
    data_type: DataType,
    any_null: bool,
    any_row: bool,
}

impl Members {
    fn read(batches: &[RecordBatch], data_type: DataType) -> Result<Self> {
        let mut members = Members {
            values: HashSet::new(),
            data_type,
            any_null: false,
            any_row: false,
        };
        for batch in batches {
            let column = batch.column(0);
            for row in 0..column.len() {
                members.any_row = true;
                if column.is_null(row) {
                    members.any_null = true;
                } else {
                    let value = ScalarValue::try_from_array(column, row)?;
                    members.values.insert(value.cast_to(&members.data_type)?);
                }
            }
        }
        Ok(members)
    }

    /// `compared IN (members)`: true on a match, NULL when a NULL on either side leaves it
    /// unknown, false otherwise (always false over no rows).
    fn contain(&self, compared: &ScalarValue) -> Result<Option<bool>> {
        if !self.any_row {
            return Ok(Some(false));
        }
        if compared.is_null() {
            return Ok(None);
        }
        let compared = compared.cast_to(&self.data_type)?;
        Ok(if self.values.contains(&compared) {
            Some(true)
        } else if self.any_null {
            None
        } else {
            Some(false)
        })
    }
}

impl SubPlan {
    pub(super) fn new(call: Arc<SubqueryCall>, state: &SessionState) -> Self {
        Self {
            // An uncorrelated subquery runs once, volatile or not, as PostgreSQL's does.
            memoizable: call.outer.is_empty() || !is_volatile(&call.plan),
            call,
            state: state.clone(),
            memo: Mutex::default(),
        }
    }

    async fn rows(&self, values: &[ScalarValue]) -> Result<Vec<RecordBatch>> {
        let plan = self.call.bound(values)?;
        let physical = self.state.create_physical_plan(&plan).await?;
        datafusion::physical_plan::collect(physical, self.state.task_ctx()).await
    }

    /// What the subquery finds for the outer row holding `values`.
    async fn find(&self, values: &[ScalarValue]) -> Result<Arc<Found>> {
        if let Some(found) = self.remembered(values) {
            return Ok(found);
        }
        let batches = self.rows(values).await?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let found = match self.call.kind {
            Kind::Scalar => Found::Value(match rows {
                0 => ScalarValue::try_from(&self.call.output)?,
                1 => {
                    let batch = batches
                        .iter()
                        .find(|batch| batch.num_rows() == 1)
                        .ok_or_else(|| DataFusionError::Internal("row not found".into()))?;
                    ScalarValue::try_from_array(batch.column(0), 0)?
                }
                _ => {
                    return Err(DataFusionError::External(Box::new(
                        crate::exec::ExecError::CardinalityViolation(
                            "more than one row returned by a subquery used as an expression".into(),
                        ),
                    )));
                }
            }),
            Kind::Exists { negated } => {
                Found::Value(ScalarValue::Boolean(Some((rows > 0) != negated)))
            }
            Kind::In { .. } => {
                let Some(field) = self.call.plan.schema().fields().first().cloned() else {
                    return datafusion::common::plan_err!("IN needs a subquery of one column");
                };
                let data_type = field.data_type().clone();
                Found::Members(Members::read(&batches, data_type)?)
            }
        };
        let size = values.len()
            + match &found {
                Found::Value(_) => 1,
                Found::Members(members) => members.values.len(),
            };
        let found = Arc::new(found);
        if self.memoizable
            && let Ok(mut memo) = self.memo.lock()
            && memo.values + size <= MEMO_VALUES
        {
            memo.values += size;
            memo.found.insert(values.to_vec(), found.clone());
        }
        Ok(found)
    }

    fn remembered(&self, values: &[ScalarValue]) -> Option<Arc<Found>> {
        self.memo.lock().ok()?.found.get(values).cloned()
    }

    /// The answer for one outer row: `compared` is the `IN`'s left value.
    async fn answer(
        &self,
        compared: Option<&ScalarValue>,
        values: &[ScalarValue],
    ) -> Result<ScalarValue> {
        let found = self.find(values).await?;
        match (found.as_ref(), self.call.kind, compared) {
            (Found::Value(value), _, _) => Ok(value.clone()),
            (Found::Members(members), Kind::In { negated }, Some(compared)) => {
                let contained = members.contain(compared)?;
                Ok(ScalarValue::Boolean(
                    contained.map(|found| found != negated),
                ))
            }
            _ => datafusion::common::internal_err!("IN without its left operand"),
        }
    }
}

fn is_volatile(plan: &LogicalPlan) -> bool {
    let mut volatile = false;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            volatile |= expr.is_volatile();
            Ok(if volatile {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })
    });
    volatile
}

impl ScalarUDFImpl for SubPlan {
    fn name(&self) -> &str {
        "subquery"
    }

    fn schema_name(&self, _args: &[Expr]) -> Result<String> {
        Ok(self.call.name.clone())
    }

    fn signature(&self) -> &Signature {
        &self.call.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.call.output.clone())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.call.field())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        datafusion::common::internal_err!("a subquery runs only as an async function")
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for SubPlan {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let columns = args
            .args
            .iter()
            .map(|arg| arg.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let takes_compared = matches!(self.call.kind, Kind::In { .. });
        let mut answers = Vec::with_capacity(rows);
        for row in 0..rows {
            let key = columns
                .iter()
                .map(|column| ScalarValue::try_from_array(column, row))
                .collect::<Result<Vec<_>>>()?;
            let (compared, values) = if takes_compared {
                (key.first(), key.get(1..).unwrap_or_default())
            } else {
                (None, &key[..])
            };
            answers.push(self.answer(compared, values).await?);
        }
        if answers.is_empty() {
            return Ok(ColumnarValue::Array(new_empty_array(&self.call.output)));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(answers)?))
    }
}

identity_eq!(SubPlan, call);
