//! `nextval`, `currval`, `setval` and `lastval`, and `pg_get_serial_sequence`: the functions
//! that read and move sequences. Like PostgreSQL's they are not transactional (a rolled-back
//! insert's values stay used), and currval/lastval remember what this session was handed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::ExecError;
use super::names::{first_in_path, undefined_relation};
use super::sequences::qualified;
use super::settings::Settings;
use super::table::PendingWrites;
use crate::storage::{CatalogRead, SequencePosition, SequenceRecord, Store};

/// What this session's nextval calls returned: currval per sequence, and lastval.
#[derive(Debug, Default)]
struct Handed {
    last_by_sequence: HashMap<u64, i64>,
    last: Option<(u64, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Nextval,
    Currval,
    Setval,
    Lastval,
    SerialSequence,
}

/// What every sequence function of one session shares.
struct Context {
    store: Arc<Store>,
    settings: Arc<Mutex<Settings>>,
    /// The session's uncommitted writes: its block's DDL names sequences too.
    pending: Arc<PendingWrites>,
    handed: Mutex<Handed>,
}

struct SequenceFunction {
    kind: Kind,
    name: &'static str,
    signature: Signature,
    context: Arc<Context>,
    /// For nextval of a constant name: the name, taken out of the arguments (see `simplify`).
    bound: Option<String>,
}

impl std::fmt::Debug for SequenceFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequenceFunction")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SequenceFunction {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.bound == other.bound
            && Arc::ptr_eq(&self.context, &other.context)
    }
}

impl Eq for SequenceFunction {}

impl std::hash::Hash for SequenceFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.bound.hash(state);
    }
}

fn failed(e: impl Into<ExecError>) -> DataFusionError {
    DataFusionError::External(Box::new(e.into()))
}

impl Context {
    /// The catalog as the session sees it, its block's DDL included.
    fn catalog(&self) -> CatalogRead<'_> {
        self.store.catalog(self.pending.catalog_changes())
    }

    /// Where to look for a relation: its namespace, or those of `search_path`.
    fn namespaces_for(&self, name: &crate::sql::TableName) -> Result<Vec<String>> {
        if let Some(namespace) = &name.namespace {
            return Ok(vec![namespace.clone()]);
        }
        let (path, user) = {
            let settings = self.settings.lock().expect("settings lock");
            let path = settings.get("search_path").map_err(failed)?;
            (path, settings.session_user().to_owned())
        };
        super::names::namespaces_on_path(&self.catalog(), &path, &user).map_err(failed)
    }

    /// The sequence a `regclass`-style name means: qualified, or along `search_path`.
    fn resolve(&self, text: &str) -> Result<SequenceRecord> {
        let undefined = || failed(undefined_relation(text));
        let name = crate::sql::relation_name(text).map_err(|_| undefined())?;
        first_in_path(self.namespaces_for(&name)?, |namespace| {
            self.catalog().sequence(namespace, &name.name)
        })
        .map_err(failed)?
        .ok_or_else(undefined)
    }

    fn nextval(&self, text: &str, count: usize) -> Result<Vec<i64>> {
        let sequence = self.resolve(text)?;
        let values = super::off_the_runtime(|| self.store.next_sequence_values(&sequence, count))
            .map_err(failed)?;
        if let Some(&last) = values.last() {
            let mut handed = self.handed.lock().expect("sequence state lock");
            handed.last_by_sequence.insert(sequence.sequence_id, last);
            handed.last = Some((sequence.sequence_id, last));
        }
        Ok(values)
    }

    fn currval(&self, text: &str) -> Result<i64> {
        let sequence = self.resolve(text)?;
        let handed = self.handed.lock().expect("sequence state lock");
        handed
            .last_by_sequence
            .get(&sequence.sequence_id)
            .copied()
            .ok_or_else(|| {
                failed(ExecError::ObjectNotInPrerequisiteState(format!(
                    "currval of sequence \"{}\" is not yet defined in this session",
                    sequence.name
                )))
            })
    }

    fn lastval(&self) -> Result<i64> {
        let handed = self.handed.lock().expect("sequence state lock");
        handed.last.map(|(_, value)| value).ok_or_else(|| {
            failed(ExecError::ObjectNotInPrerequisiteState(
                "lastval is not yet defined in this session".into(),
            ))
        })
    }

    /// `setval(name, value [, is_called])`: the next nextval returns the value after it, or
    /// the value itself when `is_called` is false.
    fn setval(&self, text: &str, value: i64, is_called: bool) -> Result<i64> {
        let sequence = self.resolve(text)?;
        if !(sequence.min_value..=sequence.max_value).contains(&value) {
            return Err(failed(ExecError::NumericOutOfRange(format!(
                "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                sequence.name, sequence.min_value, sequence.max_value
            ))));
        }
        let to = if is_called {
            SequencePosition {
                next: sequence.after(value),
                last: Some(value),
            }
        } else {
            SequencePosition {
                next: Some(value),
                last: None,
            }
        };
        super::off_the_runtime(|| self.store.set_sequence_position(sequence.sequence_id, to))
            .map_err(failed)?;
        if is_called {
            let mut handed = self.handed.lock().expect("sequence state lock");
            handed.last_by_sequence.insert(sequence.sequence_id, value);
            handed.last = Some((sequence.sequence_id, value));
        }
        Ok(value)
    }

    /// `pg_get_serial_sequence(table, column)`: the qualified name of the sequence the
    /// column owns (SERIAL, identity, OWNED BY), or NULL.
    fn serial_sequence(&self, table: &str, column: &str) -> Result<Option<String>> {
        let undefined = || failed(undefined_relation(table));
        let name = crate::sql::relation_name(table).map_err(|_| undefined())?;
        let namespaces = self.namespaces_for(&name)?;
        let record = first_in_path(namespaces, |namespace| {
            self.catalog().table(namespace, &name.name)
        })
        .map_err(failed)?
        .ok_or_else(undefined)?;
        // The column argument is an identifier as written, quoted or not.
        let column = crate::sql::relation_name(column)
            .ok()
            .filter(|c| c.namespace.is_none())
            .map(|c| c.name)
            .unwrap_or_else(|| column.to_owned());
        if !record.columns.iter().any(|c| c.name == column) {
            return Err(failed(ExecError::UndefinedColumn(format!(
                "column \"{column}\" of relation \"{}\" does not exist",
                record.name
            ))));
        }
        let sequences = self.catalog().sequences().map_err(failed)?;
        Ok(sequences
            .into_iter()
            .find(|s| {
                s.namespace == record.namespace
                    && s.owned_by
                        .as_ref()
                        .is_some_and(|o| o.table == record.name && o.column == column)
            })
            .map(|s| qualified(&s.namespace, &s.name)))
    }
}

/// The argument as text, one value per row (a scalar is repeated).
fn texts(arg: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let array = arg.to_array(rows)?;
    Ok(cast(&array, &DataType::Utf8)?)
}

impl ScalarUDFImpl for SequenceFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::SerialSequence => DataType::Utf8,
            _ => DataType::Int64,
        })
    }

    /// Each call gives a new value, so the result has no order even when every argument is
    /// a constant (which would otherwise make it a constant, and a sort on it a no-op).
    fn output_ordering(&self, _: &[ExprProperties]) -> Result<SortProperties> {
        Ok(SortProperties::Unordered)
    }

    /// DataFusion takes a function whose arguments are all constants for a constant, and drops
    /// a sort on it: `nextval('s')` becomes a call without arguments, bound to the name.
    fn simplify(&self, args: Vec<Expr>, _: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let name = match (self.kind, args.as_slice()) {
            (Kind::Nextval, [Expr::Literal(ScalarValue::Utf8(Some(name)), _)]) => name.clone(),
            _ => return Ok(ExprSimplifyResult::Original(args)),
        };
        let bound = SequenceFunction {
            kind: Kind::Nextval,
            name: self.name,
            signature: Signature::nullary(Volatility::Volatile),
            context: self.context.clone(),
            bound: Some(name),
        };
        Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::new(ScalarUDF::new_from_impl(bound)), vec![]),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let context = &self.context;
        if let Some(name) = &self.bound {
            let values = match args.number_rows {
                0 => Vec::new(),
                rows => context.nextval(name, rows)?,
            };
            return Ok(ColumnarValue::Array(Arc::new(Int64Array::from(values))));
        }
        let constant = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        // A constant nextval still gives each row its own value (in one reservation, so a
        // bulk insert asks once per batch); the other functions answer a constant call once.
        let rows = if constant && self.kind != Kind::Nextval {
            1
        } else {
            args.number_rows
        };
        let text = |i: usize| texts(&args.args[i], rows);
        let out: ArrayRef = match self.kind {
            Kind::Lastval => Arc::new(Int64Array::from(vec![context.lastval()?])),
            Kind::Nextval if constant => {
                let names = text(0)?;
                let names = names.as_string::<i32>();
                if rows == 0 || names.is_null(0) {
                    Arc::new(Int64Array::new_null(rows))
                } else {
                    Arc::new(Int64Array::from(context.nextval(names.value(0), rows)?))
                }
            }
            Kind::Nextval => {
                let names = text(0)?;
                let values: Result<Int64Array> = names
                    .as_string::<i32>()
                    .iter()
                    .map(|n| n.map(|n| Ok(context.nextval(n, 1)?[0])).transpose())
                    .collect();
                Arc::new(values?)
            }
            Kind::Currval => {
                let names = text(0)?;
                let values: Result<Int64Array> = names
                    .as_string::<i32>()
                    .iter()
                    .map(|n| n.map(|n| context.currval(n)).transpose())
                    .collect();
                Arc::new(values?)
            }
            Kind::Setval => {
                let names = text(0)?;
                let values = cast(&args.args[1].to_array(rows)?, &DataType::Int64)?;
                let values = values.as_primitive::<Int64Type>();
                let called = match args.args.get(2) {
                    Some(arg) => Some(cast(&arg.to_array(rows)?, &DataType::Boolean)?),
                    None => None,
                };
                let mut out = Vec::with_capacity(rows);
                for (row, name) in names.as_string::<i32>().iter().enumerate() {
                    let is_called = match &called {
                        None => Some(true),
                        Some(c) => {
                            let c = c.as_boolean();
                            c.is_valid(row).then(|| c.value(row))
                        }
                    };
                    out.push(match (name, values.is_valid(row), is_called) {
                        (Some(name), true, Some(is_called)) => {
                            Some(context.setval(name, values.value(row), is_called)?)
                        }
                        _ => None,
                    });
                }
                Arc::new(Int64Array::from(out))
            }
            Kind::SerialSequence => {
                let (tables, columns) = (text(0)?, text(1)?);
                let mut out = Vec::with_capacity(rows);
                for (table, column) in tables
                    .as_string::<i32>()
                    .iter()
                    .zip(columns.as_string::<i32>().iter())
                {
                    out.push(match (table, column) {
                        (Some(t), Some(c)) => context.serial_sequence(t, c)?,
                        _ => None,
                    });
                }
                Arc::new(StringArray::from(out))
            }
        };
        if constant && self.kind != Kind::Nextval {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }
}

/// What a session's currval and lastval answer from.
pub struct SequenceMemory(Arc<Context>);

impl SequenceMemory {
    /// Forgets every value handed out (`DISCARD SEQUENCES`): currval and lastval fail until
    /// the next nextval, as in a new session.
    pub fn forget(&self) {
        *self.0.handed.lock().expect("sequence state lock") = Handed::default();
    }
}

/// Registers this session's sequence functions.
pub fn register(
    ctx: &SessionContext,
    store: Arc<Store>,
    settings: Arc<Mutex<Settings>>,
    pending: Arc<PendingWrites>,
) -> SequenceMemory {
    let context = Arc::new(Context {
        store,
        settings,
        pending,
        handed: Mutex::default(),
    });
    let any_text = |arity| Signature::any(arity, Volatility::Volatile);
    let functions = [
        (Kind::Nextval, "nextval", any_text(1)),
        (Kind::Currval, "currval", any_text(1)),
        (
            Kind::Setval,
            "setval",
            Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Volatile,
            ),
        ),
        (
            Kind::Lastval,
            "lastval",
            Signature::nullary(Volatility::Volatile),
        ),
        (
            Kind::SerialSequence,
            "pg_get_serial_sequence",
            Signature::any(2, Volatility::Stable),
        ),
    ];
    for (kind, name, signature) in functions {
        ctx.register_udf(ScalarUDF::new_from_impl(SequenceFunction {
            kind,
            name,
            signature,
            context: context.clone(),
            bound: None,
        }));
    }
    SequenceMemory(context)
}
