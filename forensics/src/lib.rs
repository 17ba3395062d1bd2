//! `forensics`: the forensic watermark's library side; no HTTP in here. FFmpeg media I/O,
//! watermark embedding and A/B packaging, leak extraction and the matching statistics.

pub mod evidence;
pub mod extract;
pub mod fingerprint;
pub mod matching;
pub mod media;
pub mod package;
pub mod refstore;
pub mod statistics;
pub mod watermark;
