//! How the process uses glibc's allocator. Query batches are megabytes each; by default glibc
//! raises its mmap threshold every time such a block is freed, after which every later batch is
//! carved from the heap and kept there once freed. Measured on a debug build: streaming 600 MB
//! of rows left 80 MiB resident for good, and 5,000 prepared statements on a closed connection
//! 85 MiB. Fixing the threshold keeps large blocks in their own mappings, returned on free.

/// Blocks of this size and larger get their own mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 256 * 1024;

/// Called once at start-up, before any thread is spawned.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

/// How often freed heap pages go back to the operating system (jemalloc's default decay of dirty
/// pages is ten seconds too).
const RECLAIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the thread that returns freed heap pages every [`RECLAIM_INTERVAL`]. glibc gives
/// memory back only from the top of each arena's heap, so the small blocks a bulk INSERT or a
/// flush of millions of rows frees stay resident for good: measured after loading and flushing
/// ten million rows, 200 MiB of the server's 490 MiB were freed blocks glibc still held.
pub fn start_reclaimer() {
    let started = std::thread::Builder::new()
        .name("memory-reclaim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(RECLAIM_INTERVAL);
                release_freed_memory();
            }
        });
    if let Err(e) = started {
        tracing::warn!("freed memory will stay resident: cannot start its thread: {e}");
    }
}

/// Returns freed heap pages to the operating system (glibc keeps what a thread freed in that
/// thread's arena): every [`RECLAIM_INTERVAL`], and at once after a connection that held
/// thousands of small objects.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
