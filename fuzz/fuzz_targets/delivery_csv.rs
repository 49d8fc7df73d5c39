//! Fuzz target for a file of `tollgate user delivery-import`: read or refused with a clear error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_actors::fuzzing::delivery_csv(data);
});
