//! The forensic watermark: keyed per-unit patterns, the perceptual mask, and antipodal A/B
//! embedding. Every numeric kernel has a plain reference implementation beside the fast one,
//! and a test that they agree.

pub mod embed;
pub mod mask;
pub mod pattern;
