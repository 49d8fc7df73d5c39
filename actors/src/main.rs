//! The `tollgate` binary: see `tollgate --help` and the README.

fn main() -> std::process::ExitCode {
    keep_large_allocations_returnable();
    tollgate_actors::cli::main()
}

/// Pins glibc's mmap threshold at its initial 128 KiB.
///
/// glibc raises the threshold each time a large mmapped block is freed, after which blocks
/// of that size come from per-thread heaps and stay resident when freed. Argon2's 19 MiB
/// working buffer, allocated and freed by every cold password check on a blocking thread,
/// then accumulates: RSS reached 0.9 GB after 1,000 cold logins. With the threshold fixed,
/// each buffer is mapped and unmapped, and memory returns to the system.
#[allow(unsafe_code)]
fn keep_large_allocations_returnable() {
    // SAFETY: mallopt only sets an allocator tunable; it is called once, before any other
    // thread exists, and has no memory-safety preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
