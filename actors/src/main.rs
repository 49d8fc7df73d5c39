//! The `tollgate` binary: see `tollgate --help` and the README.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    #[cfg(not(feature = "mimalloc"))]
    keep_large_allocations_returnable();
    tollgate_actors::cli::main()
}

/// Pins glibc's mmap threshold at its initial 128 KiB.
///
/// glibc's allocator stays the default after a side-by-side measurement against mimalloc
/// (the `mimalloc` feature; README, Performance): mimalloc took about 4 % less CPU per
/// login, but 20 MB more after 1,000 cold logins, 261 MB more with 1,000,000 users (1,176
/// against 915 MB) and 1.7 times as long to load them.
///
/// glibc raises the threshold each time a large mmapped block is freed, after which blocks
/// of that size come from per-thread heaps and stay resident when freed. Argon2's 19 MiB
/// working buffer, when every cold password check allocated and freed its own on a blocking
/// thread, then accumulated: RSS reached 0.9 GB after 1,000 cold logins. Those buffers are
/// kept and reused now (`store/password.rs`); the threshold stays fixed so that any other
/// large, short-lived buffer is mapped and unmapped, and its memory returns to the system.
#[cfg(not(feature = "mimalloc"))]
#[allow(unsafe_code)]
fn keep_large_allocations_returnable() {
    // SAFETY: mallopt only sets an allocator tunable; it is called once, before any other
    // thread exists, and has no memory-safety preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
