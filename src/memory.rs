//! The allocator's settings for a long-running server whose working set
//! is bounded (chunks, segment files in flight) but whose allocations come
//! from many threads.
//!
//! glibc's malloc gives each thread that allocates an arena of its own (up
//! to eight per core) and keeps freed memory in them; it also raises its
//! mmap threshold each time a large block is freed, after which large
//! buffers come from those arenas too and stay resident after they are
//! freed. The server's resident memory then grows with the number of
//! threads that once worked, not with what it holds. Two arenas and a
//! fixed 1 MiB mmap threshold (buffers of a segment file are mapped and
//! returned to the system when freed) keep it near the working set; the
//! cost, measured in bench/RESULTS.md, is a page fault per fresh page of
//! a large buffer.

/// Applies the settings; call first thing, before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other
    // threads exist, as glibc asks.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
