//! Fuzz target for the mobile API's signed-request headers (device, timestamp, nonce,
//! signature; repeated or missing ones included): read or refused, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_portals::push::fuzzing::signed_headers(data);
});
