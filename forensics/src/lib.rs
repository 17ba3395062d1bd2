//! `forensics`: the forensic watermark's library side. No HTTP in here. This crate holds the
//! matching statistics ([`statistics`]); FFmpeg media I/O, embedding, A/B packaging,
//! extraction and evidence reports build on it.

pub mod statistics;
