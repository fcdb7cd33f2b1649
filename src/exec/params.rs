//! Bound parameters of INSERT, UPDATE and DELETE.
//!
//! DataFusion plans queries with placeholders itself; DML is planned piece by piece (see
//! `dml::planner`), so its placeholders are typed here from the column each one is assigned to
//! or compared with, and replaced by literals of the bound values before it is planned.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, BinaryOperator, Expr, SetExpr, Value, Visit, VisitMut, Visitor,
    VisitorMut,
};

use super::{ExecError, ExecResult};
use crate::storage::TableRecord;

/// `n` of a `$n` placeholder (1-based).
pub(super) fn placeholder_index(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p
                .strip_prefix('$')?
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1),
            _ => None,
        },
        _ => None,
    }
}

fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(crate::sql::fold(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(crate::sql::fold),
        _ => None,
    }
}

/// Parameter types of a DML statement on `record` (`None` where nothing pins the type).
pub fn parameter_types(statement: &ast::Statement, record: &TableRecord) -> Vec<Option<DataType>> {
    let column_type = |name: &str| {
        record
            .columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.sql_type.arrow_type())
    };
    let mut types: HashMap<usize, DataType> = HashMap::new();
    let mut highest = 0;
    match statement {
        ast::Statement::Insert(insert) => {
            let targets: Vec<String> = if insert.columns.is_empty() {
                record.columns.iter().map(|c| c.name.clone()).collect()
            } else {
                insert
                    .columns
                    .iter()
                    .filter_map(|c| c.0.last().and_then(|p| p.as_ident()).map(crate::sql::fold))
                    .collect()
            };
            if let Some(source) = &insert.source
                && let SetExpr::Values(values) = source.body.as_ref()
            {
                for row in &values.rows {
                    for (expr, target) in row.iter().zip(&targets) {
                        if let (Some(n), Some(t)) = (placeholder_index(expr), column_type(target)) {
                            types.entry(n).or_insert(t);
                        }
                    }
                }
            }
        }
        ast::Statement::Update(update) => {
            for assignment in &update.assignments {
                if let (AssignmentTarget::ColumnName(name), Some(n)) =
                    (&assignment.target, placeholder_index(&assignment.value))
                {
                    let column = name
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .map(crate::sql::fold);
                    if let Some(t) = column.as_deref().and_then(column_type) {
                        types.entry(n).or_insert(t);
                    }
                }
            }
        }
        _ => {}
    }
    // `column <op> $n` anywhere (WHERE, ON CONFLICT ... WHERE, subqueries).
    struct Comparisons<'a, F: Fn(&str) -> Option<DataType>> {
        column_type: &'a F,
        types: &'a mut HashMap<usize, DataType>,
        highest: &'a mut usize,
    }
    impl<F: Fn(&str) -> Option<DataType>> Visitor for Comparisons<'_, F> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Some(n) = placeholder_index(expr) {
                *self.highest = (*self.highest).max(n);
            }
            if let Expr::BinaryOp { left, op, right } = expr
                && is_comparison(op)
            {
                let pair = match (column_name(left), placeholder_index(right)) {
                    (Some(c), Some(n)) => Some((c, n)),
                    _ => column_name(right).zip(placeholder_index(left)),
                };
                if let Some((column, n)) = pair
                    && let Some(t) = (self.column_type)(&column)
                {
                    self.types.entry(n).or_insert(t);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Comparisons {
        column_type: &column_type,
        types: &mut types,
        highest: &mut highest,
    });
    (1..=highest).map(|n| types.get(&n).cloned()).collect()
}

/// A query with the DML statement's placeholders in the same places, for DataFusion to type the
/// ones no column pins as PostgreSQL would from their context: `SET v = v + $1 WHERE id = $2`
/// becomes `SELECT v + $1 FROM t WHERE id = $2`, and an INSERT's `VALUES ($1 + $2 * 10)`
/// becomes `SELECT $1 + $2 * 10`. `None` when the statement has nothing to type this way.
pub fn typing_probe(statement: &ast::Statement) -> Option<String> {
    fn list<T: std::fmt::Display>(items: &[T]) -> String {
        items
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
    let mut projection: Vec<String> = Vec::new();
    let mut from: Vec<String> = Vec::new();
    let mut selection = None;
    let returning = |projection: &mut Vec<String>, items: &Option<Vec<ast::SelectItem>>| {
        projection.extend(items.iter().flatten().map(|i| i.to_string()));
    };
    match statement {
        ast::Statement::Insert(insert) => {
            let source = insert.source.as_ref()?;
            let SetExpr::Values(values) = source.body.as_ref() else {
                return Some(source.to_string());
            };
            // Values cannot name the target's columns; only computed ones need typing.
            projection.extend(
                values
                    .rows
                    .iter()
                    .flat_map(|row| row.iter())
                    .filter(|e| {
                        placeholder_index(e).is_none()
                            && !matches!(e, Expr::Identifier(_) | Expr::Value(_))
                    })
                    .map(|e| e.to_string()),
            );
            returning(&mut projection, &insert.returning);
            if insert.returning.is_some() {
                from.push(insert.table.to_string());
            }
        }
        ast::Statement::Update(update) => {
            projection.extend(
                update
                    .assignments
                    .iter()
                    .filter(|a| placeholder_index(&a.value).is_none())
                    .map(|a| a.value.to_string()),
            );
            returning(&mut projection, &update.returning);
            from.push(update.table.to_string());
            if let Some(
                ast::UpdateTableFromKind::BeforeSet(tables)
                | ast::UpdateTableFromKind::AfterSet(tables),
            ) = &update.from
            {
                from.push(list(tables));
            }
            selection = update.selection.as_ref();
        }
        ast::Statement::Delete(delete) => {
            let (ast::FromTable::WithFromKeyword(tables) | ast::FromTable::WithoutKeyword(tables)) =
                &delete.from;
            from.push(list(tables));
            if let Some(using) = &delete.using {
                from.push(list(using));
            }
            returning(&mut projection, &delete.returning);
            selection = delete.selection.as_ref();
        }
        _ => return None,
    }
    if projection.is_empty() && selection.is_none() {
        return None;
    }
    if projection.is_empty() {
        projection.push("1".into());
    }
    let mut probe = format!("SELECT {}", projection.join(", "));
    if !from.is_empty() {
        probe.push_str(&format!(" FROM {}", from.join(", ")));
    }
    if let Some(selection) = selection {
        probe.push_str(&format!(" WHERE {selection}"));
    }
    Some(probe)
}

/// Replaces `$n` placeholders with literals of the bound values.
pub fn bind(statement: &ast::Statement, params: &[ScalarValue]) -> ExecResult<ast::Statement> {
    struct Bind<'a> {
        params: &'a [ScalarValue],
        error: Option<ExecError>,
    }
    impl VisitorMut for Bind<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Some(n) = placeholder_index(expr) {
                match self.params.get(n - 1) {
                    Some(value) => match literal(value) {
                        Ok(sql) => *expr = sql,
                        Err(e) => {
                            self.error = Some(e);
                            return ControlFlow::Break(());
                        }
                    },
                    None => {
                        self.error = Some(ExecError::InvalidParameterValue(format!(
                            "no value bound for parameter ${n}"
                        )));
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut bound = statement.clone();
    let mut binder = Bind {
        params,
        error: None,
    };
    let _ = VisitMut::visit(&mut bound, &mut binder);
    match binder.error {
        Some(e) => Err(e),
        None => Ok(bound),
    }
}

/// A SQL expression that evaluates to `value` with its type.
fn literal(value: &ScalarValue) -> ExecResult<Expr> {
    if value.is_null() {
        return Ok(Expr::value(Value::Null));
    }
    let text = match value {
        ScalarValue::Boolean(Some(b)) => return Ok(Expr::value(Value::Boolean(*b))),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Decimal128(..) => {
            let digits = value.to_string();
            return Ok(Expr::value(Value::Number(digits, false)));
        }
        ScalarValue::Float32(Some(f)) => format!("CAST('{f:e}' AS REAL)"),
        ScalarValue::Float64(Some(f)) => format!("CAST('{f:e}' AS DOUBLE PRECISION)"),
        ScalarValue::Utf8(Some(s)) => return Ok(Expr::value(Value::SingleQuotedString(s.clone()))),
        ScalarValue::Binary(Some(b)) => {
            return Ok(Expr::value(Value::SingleQuotedString(format!(
                "\\x{}",
                hex::encode(b)
            ))));
        }
        ScalarValue::Date32(Some(days)) => {
            let date = chrono::NaiveDate::default() + chrono::Duration::days(*days as i64);
            format!("DATE '{}'", date.format("%Y-%m-%d"))
        }
        ScalarValue::TimestampMicrosecond(Some(micros), zone) => {
            let at = chrono::DateTime::from_timestamp_micros(*micros).ok_or_else(|| {
                ExecError::InvalidParameterValue(format!("timestamp out of range: {micros}"))
            })?;
            match zone {
                Some(_) => format!("TIMESTAMPTZ '{}'", at.format("%Y-%m-%d %H:%M:%S%.6f+00")),
                None => format!(
                    "TIMESTAMP '{}'",
                    at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")
                ),
            }
        }
        other => {
            return Err(ExecError::InvalidParameterValue(format!(
                "parameters of type {} are not supported in INSERT, UPDATE or DELETE",
                other.data_type()
            )));
        }
    };
    crate::sql::parse_expr(&text)
        .map_err(|e| ExecError::Internal(format!("literal for a bound parameter: {e}")))
}

/// `=`, `<>`, `<`, `<=`, `>` or `>=`.
pub(super) fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}
