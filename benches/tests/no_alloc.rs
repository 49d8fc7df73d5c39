//! Checks that the per-packet path of an append-mode login makes no heap allocation once its
//! reply buffer has been grown.
//!
//! A counting global allocator wraps the system one. It counts only while the current thread
//! has switched counting on, so the test harness's own threads cannot disturb the figure, and
//! this file holds a single test so that nothing else runs beside it anyway.

// GlobalAlloc is an unsafe trait, so wrapping the system allocator needs an unsafe impl.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use tollgate_benches::{
    per_packet_path, reply_buffer, token_state, Fixture, REQUEST_AUTHENTICATOR, SECRET,
};
use tollgate_engine::login::Outcome;
use tollgate_engine::radius::{verify_response, Code, Packet};

/// The system allocator, counting the allocations and frees of threads that ask for it.
struct Counting;

/// Allocations (including reallocations) made while counting was on.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Frees made while counting was on.
static DEALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // A const initialiser with no destructor needs no allocation and no registration, so the
    // allocator can read it without recursing into itself.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// Adds one to `counter` if the current thread is counting.
fn record(counter: &AtomicUsize) {
    // `try_with` keeps a late allocation during thread teardown from panicking.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// contract of `GlobalAlloc` is upheld by `System`; the counting touches no memory it returns.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(&ALLOCATIONS);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(&ALLOCATIONS);
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(&ALLOCATIONS);
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(&DEALLOCATIONS);
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many packets go through the path while allocations are counted.
const RUNS: usize = 1000;

#[test]
fn the_per_packet_path_does_not_allocate() {
    let fixture = Fixture::new().expect("the fixture builds");
    let state = token_state();
    let mut reply = reply_buffer();
    // One run before counting, so that anything done once per process (none is expected)
    // is not mistaken for a per-packet cost.
    let warm_up = per_packet_path(&fixture.accept_request, &state, &mut reply);
    assert_eq!(warm_up.ok(), Some(Outcome::Accept));

    let mut accepted = 0usize;
    let mut failed = 0usize;
    ALLOCATIONS.store(0, Ordering::Relaxed);
    DEALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for _ in 0..RUNS {
        match per_packet_path(
            std::hint::black_box(&fixture.accept_request),
            &state,
            &mut reply,
        ) {
            Ok(Outcome::Accept) => accepted += 1,
            _ => failed += 1,
        }
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let deallocations = DEALLOCATIONS.load(Ordering::Relaxed);

    assert_eq!(accepted, RUNS, "{failed} runs did not accept");
    assert_eq!(allocations, 0, "allocations during {RUNS} packets");
    assert_eq!(deallocations, 0, "frees during {RUNS} packets");

    // The last reply must be a genuine Access-Accept to this request, so the test cannot
    // pass by doing nothing.
    let answer = Packet::decode(&reply).expect("the reply decodes");
    let answer =
        verify_response(answer, &REQUEST_AUTHENTICATOR, SECRET, true).expect("the reply verifies");
    assert_eq!(answer.code(), Code::AccessAccept);
}
