//! `forensics`: the forensic watermark's library side: FFmpeg media I/O, watermark embedding
//! and A/B packaging, the reference store, leak extraction and the matching statistics. No
//! HTTP, no database and no PDF in here: it builds on `formats` only.

pub mod coalition;
pub mod extract;
pub mod fingerprint;
pub mod frame;
pub mod matching;
pub mod media;
pub mod package;
pub mod refstore;
pub mod statistics;
pub mod watermark;
