//! Connection lanes: each accepted connection is served on one of a few runtimes of one worker
//! thread each (two lanes per core), the lane with the fewest connections at accept.
//!
//! On one runtime with a worker per core, every message a client sends wakes a worker, which
//! hands tasks to the others and wakes them in turn; measured under pgbench (8 clients, prepared
//! point SELECTs, 2 cores) the server spent 34 µs of CPU per statement that way against 22 µs
//! when one worker served every connection. A lane keeps a connection's protocol, session and
//! fast paths on one thread. A lane's runtime is multi-threaded with a single worker, so
//! `block_in_place` (a commit that waits on an fsync) still hands the lane to another thread
//! and the lane's other connections go on. DataFusion plans do not run on lanes: they run on
//! the engine's runtime (see `exec::compute`), which keeps their parallelism.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle, Runtime};

/// The lanes of a listener; dropping them stops their runtimes.
pub(super) struct Lanes {
    lanes: Vec<Lane>,
}

struct Lane {
    runtime: Option<Runtime>,
    connections: Arc<AtomicUsize>,
}

/// A connection's place on a lane, given back when the connection ends.
pub(super) struct Seat {
    connections: Arc<AtomicUsize>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lanes {
    /// Starts `count` lanes (at least one) whose threads have `stack_bytes` of stack.
    pub fn start(count: usize, stack_bytes: usize) -> io::Result<Lanes> {
        let lanes = (0..count.max(1))
            .map(|i| {
                let runtime = Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(format!("kalamdb-lane-{i}"))
                    .thread_stack_size(stack_bytes)
                    .enable_all()
                    .build()?;
                Ok(Lane {
                    runtime: Some(runtime),
                    connections: Arc::default(),
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Lanes { lanes })
    }

    /// The lane serving the fewest connections, and a seat on it.
    pub fn least_busy(&self) -> (Handle, Seat) {
        let lane = self
            .lanes
            .iter()
            .min_by_key(|lane| lane.connections.load(Ordering::Relaxed))
            .expect("at least one lane");
        lane.connections.fetch_add(1, Ordering::Relaxed);
        let handle = lane
            .runtime
            .as_ref()
            .expect("a lane's runtime lives as long as the lane")
            .handle()
            .clone();
        let seat = Seat {
            connections: lane.connections.clone(),
        };
        (handle, seat)
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            // Dropped from the engine's runtime, where a runtime may not block on its threads.
            if let Some(runtime) = lane.runtime.take() {
                runtime.shutdown_background();
            }
        }
    }
}

/// How many lanes to start: `[server] lanes` as configured, or for 0 two per core. With one
/// per core every lane always had work queued, so a client waiting for its answer slept and was
/// woken for nearly every statement; with two, each lane serves half as many connections and
/// answers sooner. Measured on 2 cores (pgbench, prepared
/// point SELECTs): 8 clients went from 44-46k to 49-54k statements a second, 16 and 32 clients
/// from 46-49k to 59-64k, while the machine's context switches per statement fell from 1.7 to
/// 1.0; three, five, six and eight lanes did no better, and single-row INSERTs did not move.
pub(super) fn count(configured: usize) -> usize {
    match configured {
        0 => 2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_lane_count_is_kept_and_zero_means_two_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(count(0), 2 * cores);
        assert_eq!(count(3), 3);
        assert_eq!(count(1), 1);
    }

    #[test]
    fn each_new_connection_goes_to_the_lane_with_the_fewest() {
        let lanes = Lanes::start(2, 2 << 20).unwrap();
        let (_, first) = lanes.least_busy();
        let (_, second) = lanes.least_busy();
        let busy = |lanes: &Lanes| -> Vec<usize> {
            lanes
                .lanes
                .iter()
                .map(|lane| lane.connections.load(Ordering::Relaxed))
                .collect()
        };
        assert_eq!(busy(&lanes), vec![1, 1]);
        drop(first);
        assert_eq!(busy(&lanes), vec![0, 1]);
        let (_, third) = lanes.least_busy();
        assert_eq!(busy(&lanes), vec![1, 1]);
        drop((second, third));
        assert_eq!(busy(&lanes), vec![0, 0]);
    }

    #[test]
    fn a_lane_runs_tasks_and_blocking_sections_off_its_one_worker() {
        let lanes = Lanes::start(1, 2 << 20).unwrap();
        let (lane, _seat) = lanes.least_busy();
        let (tx, rx) = std::sync::mpsc::channel();
        lane.spawn(async move {
            let other = tokio::spawn(async { 41 });
            // As a commit waiting on its fsync does: the lane's worker moves to another thread.
            let waited = tokio::task::block_in_place(|| 1);
            tx.send(other.await.unwrap() + waited).unwrap();
        });
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(10)), Ok(42));
    }
}
