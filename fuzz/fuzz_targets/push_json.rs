//! Fuzz target for the mobile API's JSON request bodies: parsed strictly or refused, never
//! a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_portals::push::fuzzing::json_bodies(data);
});
