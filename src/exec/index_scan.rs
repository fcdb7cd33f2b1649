//! Reading a table through a secondary index: choosing the index a scan's filters can use
//! (equality on its leading columns, then at most one range), the key range of entries that
//! covers them, and the plan node EXPLAIN shows for it.
//!
//! The range is never narrower than the filters: a bound whose value does not convert exactly
//! to the column's type is widened, and DataFusion still applies every filter to the rows the
//! index finds. When the range holds more than [`MAX_INDEXED_ROWS`] entries the scan reads the
//! table instead: fetching rows one key at a time loses to a sequential read long before that.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::compute::cast;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, ScalarValue};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
    ReplaceChildrenOptions,
};

use crate::storage::{IndexRecord, IndexState, TableRecord};
use crate::storage::{prefix_end, rows};

/// Past this many matching entries an index is not used.
pub const MAX_INDEXED_ROWS: usize = 2000;

/// The entries of one index a scan reads: keys from `low` (inclusive) to `high` (exclusive).
#[derive(Debug)]
pub struct IndexRange {
    pub index: IndexRecord,
    pub low: Vec<u8>,
    pub high: Vec<u8>,
    /// The conditions used, for EXPLAIN.
    pub conditions: Vec<String>,
}

/// What the filters say about one column.
#[derive(Default)]
struct ColumnBounds<'a> {
    equal: Option<&'a ScalarValue>,
    lower: Option<&'a ScalarValue>,
    upper: Option<&'a ScalarValue>,
}

/// The best usable index for `filters`: the most leading columns pinned by equality (a unique
/// index pinned on every column first), then a range on the next one.
pub fn choose(
    record: &TableRecord,
    indexes: &[IndexRecord],
    filters: &[Expr],
) -> Option<IndexRange> {
    let mut bounds: HashMap<&str, ColumnBounds> = HashMap::new();
    for filter in filters {
        collect_bounds(filter, &mut bounds);
    }
    if bounds.is_empty() {
        return None;
    }
    let mut best: Option<(usize, IndexRange)> = None;
    for index in indexes.iter().filter(|i| i.state == IndexState::Ready) {
        let Some((score, range)) = range_for(record, index, &bounds) else {
            continue;
        };
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, range));
        }
    }
    best.map(|(_, range)| range)
}

fn range_for(
    record: &TableRecord,
    index: &IndexRecord,
    bounds: &HashMap<&str, ColumnBounds>,
) -> Option<(usize, IndexRange)> {
    let mut prefix = index.index_id.to_be_bytes().to_vec();
    let mut conditions = Vec::new();
    let mut pinned = 0;
    for &position in &index.columns {
        let column = record.columns.get(position)?;
        let Some(value) = bounds.get(column.name.as_str()).and_then(|b| b.equal) else {
            break;
        };
        prefix.extend_from_slice(&value_key(record, position, value)?);
        conditions.push(format!("{} = {value}", column.name));
        pinned += 1;
    }
    let next = index
        .columns
        .get(pinned)
        .and_then(|&p| Some((p, bounds.get(record.columns.get(p)?.name.as_str())?)));
    let (low, high, ranged) = match next {
        Some((position, b)) if b.lower.is_some() || b.upper.is_some() => {
            let name = &record.columns[position].name;
            // Entries of values start with marker 1 and NULLs with 2: no bound means from the
            // first value, or up to (not into) the NULLs.
            let mut low = prefix.clone();
            match b.lower {
                Some(value) => {
                    low.extend_from_slice(&value_key(record, position, value)?);
                    conditions.push(format!("{name} >= {value}"));
                }
                None => low.push(1),
            }
            let high = match b.upper {
                Some(value) => {
                    let mut upper = prefix.clone();
                    upper.extend_from_slice(&value_key(record, position, value)?);
                    conditions.push(format!("{name} <= {value}"));
                    prefix_end(&upper)?
                }
                None => {
                    let mut high = prefix.clone();
                    high.push(2);
                    high
                }
            };
            (low, high, true)
        }
        _ if pinned > 0 => (prefix.clone(), prefix_end(&prefix)?, false),
        _ => return None,
    };
    // More pinned columns narrow more; a unique index pinned on all of them finds one row.
    let complete = index.unique && pinned == index.columns.len();
    let score = pinned * 4 + usize::from(ranged) * 2 + usize::from(complete) * 100;
    Some((
        score,
        IndexRange {
            index: index.clone(),
            low,
            high,
            conditions,
        },
    ))
}

/// The memcomparable key of `value` as column `position` stores it; `None` when it does not
/// convert. (A conversion that rounds toward zero only widens an inclusive range.)
pub(super) fn value_key(
    record: &TableRecord,
    position: usize,
    value: &ScalarValue,
) -> Option<Vec<u8>> {
    if value.is_null() {
        return None;
    }
    let sql_type = record.columns[position].sql_type;
    let array = cast(&value.to_array_of_size(1).ok()?, &sql_type.arrow_type()).ok()?;
    if array.is_null(0) {
        return None;
    }
    let mut datum = Vec::new();
    rows::encode_datum(array.as_ref(), 0, &mut datum);
    let mut key = Vec::new();
    rows::datum_key(sql_type, &datum, &mut key).ok()?;
    Some(key)
}

/// [`value_key`] for a value the column holds exactly (a lossy conversion is `None`): what a
/// lookup that applies no filter afterwards needs.
pub(super) fn exact_value_key(
    record: &TableRecord,
    position: usize,
    value: &ScalarValue,
) -> Option<Vec<u8>> {
    let sql_type = record.columns[position].sql_type;
    let stored = cast(&value.to_array_of_size(1).ok()?, &sql_type.arrow_type()).ok()?;
    let back = cast(&stored, &value.data_type()).ok()?;
    if ScalarValue::try_from_array(&back, 0).ok()? != *value {
        return None;
    }
    value_key(record, position, value)
}

/// Collects `column op literal` conjuncts (and BETWEEN) by column.
fn collect_bounds<'a>(expr: &'a Expr, out: &mut HashMap<&'a str, ColumnBounds<'a>>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                collect_bounds(left, out);
                collect_bounds(right, out);
                return;
            }
            let (name, value, op) = match (left.as_ref(), right.as_ref()) {
                (Expr::Column(Column { name, .. }), Expr::Literal(value, _)) => (name, value, *op),
                (Expr::Literal(value, _), Expr::Column(Column { name, .. })) => match op.swap() {
                    Some(op) => (name, value, op),
                    None => return,
                },
                _ => return,
            };
            let bounds = out.entry(name.as_str()).or_default();
            match op {
                Operator::Eq => bounds.equal = Some(value),
                Operator::Gt | Operator::GtEq => bounds.lower = Some(value),
                Operator::Lt | Operator::LtEq => bounds.upper = Some(value),
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            if let (
                Expr::Column(Column { name, .. }),
                Expr::Literal(low, _),
                Expr::Literal(high, _),
            ) = (expr.as_ref(), low.as_ref(), high.as_ref())
            {
                let bounds = out.entry(name.as_str()).or_default();
                bounds.lower = Some(low);
                bounds.upper = Some(high);
            }
        }
        _ => {}
    }
}

/// The rows an index found (read when the scan was planned); EXPLAIN shows the index.
#[derive(Debug)]
pub struct IndexScanExec {
    input: Arc<dyn ExecutionPlan>,
    description: String,
}

impl IndexScanExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, range: &IndexRange) -> Self {
        IndexScanExec {
            input,
            description: format!(
                "IndexScan: {} on {}",
                range.index.name,
                range.conditions.join(" AND ")
            ),
        }
    }
}

impl DisplayAs for IndexScanExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl ExecutionPlan for IndexScanExec {
    fn name(&self) -> &'static str {
        "IndexScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(IndexScanExec {
            input: children.swap_remove(0),
            description: self.description.clone(),
        }))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
