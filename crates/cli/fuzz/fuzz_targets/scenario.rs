//! The scenario parser and replay on arbitrary text: `mmcid replay` must answer every file with
//! a result or an error naming the line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Parse, validate, resolve and take every step, describe it, check the properties; a small
    // cap on the continuation search keeps each input fast.
    let _ = mmcid_kmodel::replay::replay(text, None, 2_000);
});
