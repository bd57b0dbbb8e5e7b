//! The command-line argument layer on arbitrary argument lists: every list is either accepted
//! or refused with one line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|args: Vec<String>| {
    let argv = std::iter::once("mmcid".to_string()).chain(args);
    if let Err(e) = mmcid::validate(argv) {
        assert!(!e.contains('\n'), "a usage error on more than one line: {e}");
    }
});
