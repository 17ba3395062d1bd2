//! Fuzz target `tokens`: see `leaktrace_fuzz::tokens` for what it drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leaktrace_fuzz::tokens(data));
