//! Fuzz target `multipart`: a multipart body through the binary's `forms::read_multipart`;
//! see src/multipart.rs. The binary's modules are compiled here, not in the fuzz library, so
//! that a change to them can break this target alone.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../src/uploads.rs"]
mod uploads;

#[allow(dead_code, unused_imports)]
#[path = "../../src/http/forms.rs"]
mod forms;

/// Stands in for the binary's `probe` (the FFmpeg check of a stored upload, which
/// `forms::check_video` runs after a form is read): not fuzzed, never called.
#[allow(dead_code)]
mod probe {
    pub fn check(
        _: &std::path::Path,
        _: &shared::config::Config,
    ) -> Result<(), crate::uploads::UploadError> {
        Ok(())
    }
}

#[path = "../src/multipart.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::multipart(data));
