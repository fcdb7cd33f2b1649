//! The SQL functions over the advisory lock table: `pg_advisory_lock`, `pg_try_advisory_lock`,
//! `pg_advisory_unlock` and their `_shared` and `xact_` forms, and `pg_advisory_unlock_all`.
//! They run as async functions, so a session waiting for a lock holds no worker thread and its
//! wait ends when the statement is cancelled or passes `statement_timeout` (the result stream
//! that awaits it is dropped). Like PostgreSQL's they are strict: a NULL key takes nothing.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int32Type, Int64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use super::{LockKey, Mode, Scope, SessionLocks};
use crate::exec::ExecError;
use crate::model::types::{PG_TYPE_METADATA, VOID_TAG};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Action {
    /// Waits for the lock; returns void.
    Wait,
    /// Takes the lock if it is free; returns whether it did.
    Try,
    /// Releases one session-level hold; returns whether there was one.
    Unlock,
    /// Releases every session-level hold; returns void.
    UnlockAll,
}

/// Every function of the family: name, action, mode, scope.
const FUNCTIONS: [(&str, Action, Mode, Scope); 11] = [
    (
        "pg_advisory_lock",
        Action::Wait,
        Mode::Exclusive,
        Scope::Session,
    ),
    (
        "pg_advisory_lock_shared",
        Action::Wait,
        Mode::Shared,
        Scope::Session,
    ),
    (
        "pg_advisory_xact_lock",
        Action::Wait,
        Mode::Exclusive,
        Scope::Transaction,
    ),
    (
        "pg_advisory_xact_lock_shared",
        Action::Wait,
        Mode::Shared,
        Scope::Transaction,
    ),
    (
        "pg_try_advisory_lock",
        Action::Try,
        Mode::Exclusive,
        Scope::Session,
    ),
    (
        "pg_try_advisory_lock_shared",
        Action::Try,
        Mode::Shared,
        Scope::Session,
    ),
    (
        "pg_try_advisory_xact_lock",
        Action::Try,
        Mode::Exclusive,
        Scope::Transaction,
    ),
    (
        "pg_try_advisory_xact_lock_shared",
        Action::Try,
        Mode::Shared,
        Scope::Transaction,
    ),
    (
        "pg_advisory_unlock",
        Action::Unlock,
        Mode::Exclusive,
        Scope::Session,
    ),
    (
        "pg_advisory_unlock_shared",
        Action::Unlock,
        Mode::Shared,
        Scope::Session,
    ),
    (
        "pg_advisory_unlock_all",
        Action::UnlockAll,
        Mode::Exclusive,
        Scope::Session,
    ),
];

/// Registers the family for a session whose locks `locks` holds.
pub fn register(ctx: &SessionContext, locks: &Arc<SessionLocks>) {
    for (name, action, mode, scope) in FUNCTIONS {
        let signature = match action {
            Action::UnlockAll => Signature::nullary(Volatility::Volatile),
            // bigint, or two integers; integer constants arrive as bigint and are checked to
            // fit when the function runs (22003 otherwise).
            _ => Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Int64]),
                    TypeSignature::Exact(vec![DataType::Int32, DataType::Int32]),
                    TypeSignature::Exact(vec![DataType::Int64, DataType::Int64]),
                ],
                Volatility::Volatile,
            ),
        };
        let function = AdvisoryFunction {
            name,
            action,
            mode,
            scope,
            signature,
            locks: locks.clone(),
        };
        ctx.register_udf(AsyncScalarUDF::new(Arc::new(function)).into_scalar_udf());
    }
}

#[derive(Debug)]
struct AdvisoryFunction {
    name: &'static str,
    action: Action,
    mode: Mode,
    scope: Scope,
    signature: Signature,
    locks: Arc<SessionLocks>,
}

impl PartialEq for AdvisoryFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.locks, &other.locks)
    }
}

impl Eq for AdvisoryFunction {}

impl std::hash::Hash for AdvisoryFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl AdvisoryFunction {
    fn returns_void(&self) -> bool {
        matches!(self.action, Action::Wait | Action::UnlockAll)
    }
}

impl ScalarUDFImpl for AdvisoryFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.returns_void() {
            true => DataType::Utf8,
            false => DataType::Boolean,
        })
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = Field::new(self.name, self.return_type(&[])?, true);
        Ok(Arc::new(match self.returns_void() {
            true => field.with_metadata(
                [(PG_TYPE_METADATA.to_owned(), VOID_TAG.to_owned())]
                    .into_iter()
                    .collect(),
            ),
            false => field,
        }))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        datafusion::common::internal_err!("{} runs only as an async function", self.name)
    }
}

/// Each row's key; `None` for a row with a NULL argument.
fn keys(args: &[ColumnarValue], rows: usize) -> Result<Vec<Option<LockKey>>> {
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    match args {
        [key] => {
            let key = cast_with_options(&key.to_array(rows)?, &DataType::Int64, &strict)?;
            Ok(key
                .as_primitive::<Int64Type>()
                .iter()
                .map(|key| key.map(LockKey::Single))
                .collect())
        }
        [high, low] => {
            let high = cast_with_options(&high.to_array(rows)?, &DataType::Int32, &strict)?;
            let low = cast_with_options(&low.to_array(rows)?, &DataType::Int32, &strict)?;
            Ok(high
                .as_primitive::<Int32Type>()
                .iter()
                .zip(low.as_primitive::<Int32Type>().iter())
                .map(|pair| match pair {
                    (Some(high), Some(low)) => Some(LockKey::Pair(high, low)),
                    _ => None,
                })
                .collect())
        }
        _ => datafusion::common::plan_err!("advisory lock functions take one or two keys"),
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for AdvisoryFunction {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let SessionLocks { locks, session, .. } = self.locks.as_ref();
        if self.action == Action::UnlockAll {
            locks.release_scope(*session, Some(Scope::Session));
            let out: StringArray = (0..rows).map(|_| Some("")).collect();
            return Ok(ColumnarValue::Array(Arc::new(out)));
        }
        let mut answers: Vec<Option<bool>> = Vec::with_capacity(rows);
        for key in keys(&args.args, rows)? {
            let Some(key) = key else {
                answers.push(None);
                continue;
            };
            answers.push(Some(match self.action {
                Action::Wait => {
                    self.locks
                        .acquire(key, self.mode, self.scope)
                        .await
                        .map_err(|deadlock| {
                            DataFusionError::External(Box::new(ExecError::Deadlock {
                                detail: deadlock.detail,
                            }))
                        })?;
                    true
                }
                Action::Try => self.locks.try_acquire(key, self.mode, self.scope),
                // (UnlockAll answered above, before the keys.)
                Action::Unlock | Action::UnlockAll => locks.release(*session, key, self.mode),
            }));
        }
        let out: ArrayRef = match self.returns_void() {
            true => Arc::new(
                answers
                    .iter()
                    .map(|answer| answer.map(|_| ""))
                    .collect::<StringArray>(),
            ),
            false => Arc::new(answers.into_iter().collect::<BooleanArray>()),
        };
        debug_assert_eq!(out.len(), rows);
        Ok(ColumnarValue::Array(out))
    }
}
