//! `forensics`: the forensic watermark's library side; no HTTP in here. FFmpeg media I/O,
//! watermark embedding and A/B packaging, and the matching statistics.

pub mod fingerprint;
pub mod media;
pub mod package;
pub mod statistics;
pub mod watermark;
