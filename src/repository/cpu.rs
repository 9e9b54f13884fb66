//! Where the repository's CPU work runs (chunking, hashing, compression,
//! encryption): on the blocking pool, at most one job per core at a time.
//!
//! Why a gate: a snapshot or restore has dozens of chunks in flight;
//! letting each start its CPU work at once only interleaves them (no
//! chunk finishes sooner) while each holds its buffers and, through
//! [`super::compression`], a zstd context. With one job per core the
//! cores stay busy and the memory in use is bounded by the core count.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

fn gate() -> &'static Semaphore {
    static GATE: OnceLock<Semaphore> = OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(cores)
    })
}

/// Runs `job` on the blocking pool once a core is free.
pub async fn run<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let _core = gate().acquire().await.expect("the gate is never closed");
    tokio::task::spawn_blocking(job).await
}
