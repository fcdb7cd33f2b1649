//! `pg_backend_pid()`, and the signals one session may send another: `pg_cancel_backend(pid)`
//! stops the statement a backend is running (as a protocol cancel request does) and
//! `pg_terminate_backend(pid [, timeout])` also closes its connection. Each returns whether the
//! backend existed; one the caller may not reach is `42501`, as in PostgreSQL.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, Signature, TypeSignature, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::{Backend, Backends};
use crate::exec::ExecError;
use crate::exec::functions::vectorized;
use crate::model::Role;

#[derive(Clone, Copy)]
enum Signal {
    Cancel,
    Terminate,
}

/// Registers the functions for a session of `user` with `role`; `own` is the session's
/// backend once it has entered the registry.
pub(in crate::exec) fn register(
    ctx: &SessionContext,
    backends: Arc<Backends>,
    (user, role): (&str, Role),
    own: Arc<OnceLock<Arc<Backend>>>,
) {
    ctx.register_udf(create_udf(
        "pg_backend_pid",
        vec![],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(move |_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Int32(
                own.get().map(|b| b.pid()),
            )))
        }),
    ));
    // PostgreSQL's take an `integer` pid (and `pg_terminate_backend` a `bigint` timeout); an
    // integer constant is a bigint here until it runs, so a bigint pid is taken too.
    for (name, signal, arities) in [
        ("pg_cancel_backend", Signal::Cancel, vec![1]),
        ("pg_terminate_backend", Signal::Terminate, vec![1, 2]),
    ] {
        let forms = arities
            .iter()
            .flat_map(|&arity| {
                [DataType::Int32, DataType::Int64].map(|pid| {
                    let mut args = vec![pid];
                    if arity == 2 {
                        args.push(DataType::Int64);
                    }
                    TypeSignature::Exact(args)
                })
            })
            .collect();
        let backends = backends.clone();
        let user = user.to_owned();
        ctx.register_udf(vectorized(
            name,
            Signature::one_of(forms, Volatility::Volatile),
            DataType::Boolean,
            move |args| signal_each(&backends, (&user, role), signal, &args[0]),
        ));
    }
}

fn signal_each(
    backends: &Backends,
    (user, role): (&str, Role),
    signal: Signal,
    pids: &ArrayRef,
) -> Result<ArrayRef> {
    let pids = cast(pids, &DataType::Int64)?;
    let mut sent = Vec::with_capacity(pids.len());
    for pid in pids.as_primitive::<Int64Type>().iter() {
        let Some(pid) = pid else {
            sent.push(None);
            continue;
        };
        // PostgreSQL warns that a pid is not a backend and returns false.
        let Some(backend) = i32::try_from(pid).ok().and_then(|pid| backends.get(pid)) else {
            sent.push(Some(false));
            continue;
        };
        if !backend.reachable_by(user, role) {
            let what = match signal {
                Signal::Cancel => "cancel query",
                Signal::Terminate => "terminate process",
            };
            return Err(DataFusionError::External(Box::new(
                ExecError::InsufficientPrivilege(format!("permission denied to {what}")),
            )));
        }
        backend.cancel.raise();
        if let Signal::Terminate = signal {
            backend.termination.request();
        }
        sent.push(Some(true));
    }
    Ok(Arc::new(BooleanArray::from(sent)))
}
