//! Fuzz target for a line of `tollgate token import`: read or refused with a clear error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tollgate_actors::fuzzing::token_csv_line(text);
    }
});
