//! Fuzz target `report_check`: see `leaktrace_fuzz::report_check` for what it drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| leaktrace_fuzz::report_check(data));
