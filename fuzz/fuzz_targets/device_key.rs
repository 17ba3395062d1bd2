//! Fuzz target `device_key`: see `leaktrace_fuzz::device_key` for what it drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leaktrace_fuzz::device_key(data));
