//! Fuzz target `isobmff`: see `leaktrace_fuzz::isobmff` for what it drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leaktrace_fuzz::isobmff(data));
