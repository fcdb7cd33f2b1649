//! Which allocators the process uses, and how they give memory back. The server's own (Rust)
//! allocations go to jemalloc. Against glibc's malloc (release builds, pgbench with 8 clients,
//! 2026-12-07, medians of 4 alternating runs): point SELECTs by key 52,870 to 56,270 tps, the
//! mixed point workload 26,058 to 27,026; malloc and free were about a tenth of the server's
//! CPU in those profiles. Loading two million rows peaked at 542 MiB instead of 702, and the
//! idle server afterwards held 234 MiB instead of 221. RocksDB's C++ allocations stay on glibc. Query batches are megabytes each; by default glibc
//! raises its mmap threshold every time such a block is freed, after which every later batch is
//! carved from the heap and kept there once freed. Measured on a debug build: streaming 600 MB
//! of rows left 80 MiB resident for good, and 5,000 prepared statements on a closed connection
//! 85 MiB. Fixing the threshold keeps large blocks in their own mappings, returned on free;
//! jemalloc returns freed pages on its own background thread after [`JEMALLOC_CONF`]'s decay.

#[cfg(target_os = "linux")]
#[global_allocator]
static RUST_ALLOCATIONS: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: a background thread purges freed pages, a second
/// after they were freed, so an idle server's memory falls back without any allocation to
/// trigger it (by default jemalloc keeps freed pages ten seconds and purges only while
/// allocating).
#[cfg(target_os = "linux")]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static JEMALLOC_CONF: Option<&'static libc::c_char> = Some(
    // SAFETY: the literal is NUL-terminated and static; jemalloc reads it as a C string.
    unsafe { &*c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr() },
);

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

/// Starts the thread that returns the heap pages glibc holds every [`RECLAIM_INTERVAL`]. glibc
/// gives memory back only from the top of each arena's heap, so the small blocks RocksDB frees
/// after a bulk INSERT or a flush of millions of rows stay resident for good: measured (when
/// the server's own allocations were glibc's too) after loading and flushing ten million rows,
/// 200 MiB of the server's 490 MiB were freed blocks glibc still held.
pub fn start_reclaimer() {
    let started = std::thread::Builder::new()
        .name("memory-reclaim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(RECLAIM_INTERVAL);
                trim_glibc_heap();
            }
        });
    if let Err(e) = started {
        tracing::warn!("freed memory will stay resident: cannot start its thread: {e}");
    }
}

/// Returns every freed page both allocators hold to the operating system at once, without
/// waiting for jemalloc's decay: after a connection that held thousands of small objects.
pub fn release_freed_memory() {
    trim_glibc_heap();
    #[cfg(target_os = "linux")]
    // SAFETY: "arena.<MALLCTL_ARENAS_ALL>.purge" takes and returns no value; the name is a
    // NUL-terminated static string.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

/// Returns the pages glibc holds after frees (it keeps what a thread freed in that thread's
/// arena).
fn trim_glibc_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
