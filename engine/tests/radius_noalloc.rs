//! Proof that the server's RADIUS hot path performs no heap allocation.
//!
//! A counting global allocator wraps the system one; decode, verify_request, unhide_password
//! and encode_reply into a buffer that already has its capacity must leave the count at zero,
//! and so must the client side's verify_response and encode_request.
//! Only the measuring thread's allocations count (libtest's own threads may allocate at any
//! moment), and this file holds a single test.

// Implementing `GlobalAlloc` is an `unsafe impl` by definition, and the workspace denies
// unsafe code; the exception is confined to this test file and only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tollgate_engine::radius::{
    attr, encode_reply, encode_request, hide_password, unhide_password, verify_request,
    verify_response, Code, Packet, MAX_PACKET_LEN, MAX_PASSWORD_LEN,
};

/// Counts every allocation and reallocation made through the global allocator.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations count (const-initialised: reading it allocates
    /// nothing).
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if COUNTING.try_with(std::cell::Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees about `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by `System` through this wrapper with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this wrapper with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SECRET: &[u8] = b"no-allocation-secret";

#[test]
fn server_hot_path_does_not_allocate() {
    // Setup may allocate freely: build a request the way a NAS would.
    let authenticator = [0x5c; 16];
    let mut hidden = [0u8; MAX_PASSWORD_LEN];
    let n = hide_password(
        b"a fairly long password of forty octets!!",
        SECRET,
        &authenticator,
        &mut hidden,
    )
    .unwrap();
    let mut datagram = Vec::new();
    encode_request(
        &mut datagram,
        Code::AccessRequest,
        3,
        &authenticator,
        SECRET,
        &[
            (attr::USER_NAME, b"alice"),
            (attr::USER_PASSWORD, &hidden[..n]),
            (attr::PROXY_STATE, b"first"),
            (attr::NAS_IDENTIFIER, b"vpn"),
            (attr::PROXY_STATE, b"second"),
        ],
        true,
    )
    .unwrap();
    let mut reply = Vec::with_capacity(MAX_PACKET_LEN);
    let mut request = Vec::with_capacity(MAX_PACKET_LEN);
    let reply_attrs: [(u8, &[u8]); 2] = [
        (attr::REPLY_MESSAGE, b"Enter your one-time code"),
        (attr::STATE, &[0xAA; 32]),
    ];
    let long = [b'z'; 253];
    let big_attrs = [(attr::REPLY_MESSAGE, &long[..]); 15];

    COUNTING.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut answered = 0usize;
    for round in 0..200 {
        let packet = Packet::decode(&datagram).unwrap();
        let verified = verify_request(packet, SECRET, true).unwrap();
        let mut clear = [0u8; MAX_PASSWORD_LEN];
        let password = unhide_password(
            verified.attribute(attr::USER_PASSWORD).unwrap(),
            SECRET,
            verified.authenticator(),
            &mut clear,
        )
        .unwrap();
        let code = if password.len() == 40 {
            Code::AccessChallenge
        } else {
            Code::AccessReject
        };
        // Alternate small and near-maximal replies so that the buffer must not grow either way.
        let attrs: &[(u8, &[u8])] = if round % 2 == 0 {
            &reply_attrs
        } else {
            &big_attrs
        };
        encode_reply(&mut reply, code, &verified, SECRET, attrs).unwrap();
        answered += reply.len();
        // The client side (used by the load harness) must not allocate either.
        let response = Packet::decode(&reply).unwrap();
        verify_response(response, &authenticator, SECRET, true).unwrap();
        encode_request(
            &mut request,
            Code::AccessRequest,
            4,
            &authenticator,
            SECRET,
            &[(attr::USER_NAME, b"alice")],
            true,
        )
        .unwrap();
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);

    assert!(answered > 0);
    assert_eq!(after - before, 0, "the hot path allocated");

    // Make sure the counter really counts, so that the zero above means something.
    let boxed = std::hint::black_box(Box::new([0u8; 64]));
    assert!(ALLOCATIONS.load(Ordering::SeqCst) > after);
    drop(boxed);
    COUNTING.with(|c| c.set(false));
}
