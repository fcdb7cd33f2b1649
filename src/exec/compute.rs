//! Where DataFusion's work runs. The front end serves each connection on a lane, a runtime of
//! one thread (see `server::lanes`), because a point query costs less there than on a shared
//! pool whose threads wake each other for every message. DataFusion, though, runs a plan's
//! partitions as tasks on the runtime that starts it, so a plan started on a lane would use one
//! core. Plans are therefore started and polled on the compute runtime (the one the engine was
//! built on, with a thread per core), and their batches cross to the lane through a small
//! channel. A panic on the compute runtime is resumed on the lane, where the front end turns it
//! into the statement's XX000 as before.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, resume_unwind};

use datafusion::arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{FutureExt, StreamExt};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

/// Batches a plan may run ahead of the client reading them.
const BATCHES_IN_FLIGHT: usize = 2;

type Panic = Box<dyn Any + Send>;

/// Starts a plan with `start` on `compute` and streams its batches here (here, without a
/// compute runtime). Dropping the returned stream stops the plan at its next batch.
pub(crate) async fn stream_on(
    compute: Option<&Handle>,
    start: impl Future<Output = DFResult<SendableRecordBatchStream>> + Send + 'static,
) -> DFResult<SendableRecordBatchStream> {
    let Some(compute) = compute else {
        return start.await;
    };
    let (started_tx, started_rx) = oneshot::channel::<Result<DFResult<_>, Panic>>();
    let (batches_tx, batches_rx) =
        mpsc::channel::<Result<DFResult<RecordBatch>, Panic>>(BATCHES_IN_FLIGHT);
    compute.spawn(async move {
        let mut started_tx = started_tx;
        let started = tokio::select! {
            () = started_tx.closed() => return,
            started = AssertUnwindSafe(start).catch_unwind() => started,
        };
        let mut stream = match started {
            Ok(Ok(stream)) => {
                if started_tx.send(Ok(Ok(stream.schema()))).is_err() {
                    return;
                }
                stream
            }
            Ok(Err(e)) => {
                let _ = started_tx.send(Ok(Err(e)));
                return;
            }
            Err(panic) => {
                let _ = started_tx.send(Err(panic));
                return;
            }
        };
        loop {
            let next = tokio::select! {
                () = batches_tx.closed() => return,
                next = AssertUnwindSafe(stream.next()).catch_unwind() => next,
            };
            let item = match next {
                Ok(None) => return,
                Ok(Some(batch)) => Ok(batch),
                Err(panic) => Err(panic),
            };
            let last = !matches!(item, Ok(Ok(_)));
            if batches_tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    let schema = match started_rx.await {
        Ok(Ok(started)) => started?,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => return Err(ended_early()),
    };
    let batches = futures::stream::unfold(batches_rx, |mut rx| async move {
        match rx.recv().await? {
            Ok(batch) => Some((batch, rx)),
            Err(panic) => resume_unwind(panic),
        }
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

/// Runs `work` on `compute` and waits for its answer here (runs it here, without a compute
/// runtime); dropping the wait stops the work.
pub(crate) async fn run_on<T: Send + 'static>(
    compute: Option<&Handle>,
    work: impl Future<Output = DFResult<T>> + Send + 'static,
) -> DFResult<T> {
    let Some(compute) = compute else {
        return work.await;
    };
    match AbortOnDropHandle::new(compute.spawn(work)).await {
        Ok(answer) => answer,
        Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
        Err(_) => Err(ended_early()),
    }
}

/// The compute runtime dropped the work: the server is shutting down.
fn ended_early() -> DataFusionError {
    DataFusionError::Execution("the query was stopped: the server is shutting down".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    /// Runs `test` on a one-thread runtime, as a lane, given a separate compute runtime.
    fn on_a_lane<F: Future>(test: impl FnOnce(Handle) -> F) -> F::Output {
        let compute = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let lane = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        lane.block_on(test(compute.handle().clone()))
    }

    /// Starts `sql` as a plan on `compute`.
    async fn stream_sql(compute: Handle, sql: &'static str) -> DFResult<SendableRecordBatchStream> {
        let ctx = SessionContext::new();
        let start = async move { ctx.sql(sql).await?.execute_stream().await };
        stream_on(Some(&compute), start).await
    }

    #[test]
    fn a_plan_started_on_the_compute_runtime_streams_every_batch_to_the_caller() {
        let rows = on_a_lane(|compute| async move {
            let sql =
                "SELECT value FROM generate_series(1, 100000) AS t(value) WHERE value % 7 = 0";
            let stream = stream_sql(compute, sql).await.unwrap();
            let batches: Vec<RecordBatch> = stream.map(|b| b.unwrap()).collect::<Vec<_>>().await;
            batches.iter().map(|b| b.num_rows()).sum::<usize>()
        });
        assert_eq!(rows, 100_000 / 7);
    }

    #[test]
    fn a_planning_error_comes_back_as_the_error() {
        let error = on_a_lane(|compute| async move {
            stream_sql(compute, "SELECT nope FROM nowhere")
                .await
                .err()
                .unwrap()
        });
        assert!(error.to_string().contains("nowhere"), "{error}");
    }

    #[test]
    fn a_panic_on_the_compute_runtime_is_resumed_on_the_caller() {
        let caught = on_a_lane(|compute| async move {
            AssertUnwindSafe(run_on(Some(&compute), async { panic!("boom in a plan") }))
                .catch_unwind()
                .await
        });
        let panic = caught.map(|_: DFResult<()>| ()).unwrap_err();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom in a plan"));
    }
}
