//! Fuzz target for a token record read from a directory attribute (`tollgate$1$…`): read or refused with a clear error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tollgate_actors::fuzzing::sealed_record(text);
    }
});
