//! `formats`: the file and wire formats leaktrace reads and writes, with no storage,
//! configuration or network behind them: where things live on disk ([`layout`]), a packaged
//! title's manifest ([`package`]), ISOBMFF reading ([`isobmff`]), the session codes
//! ([`codes`]), the signed session marker box ([`marker`]), AES-256-GCM sealing
//! ([`sealing`]) and streaming SHA-256 ([`digest`]). Both the delivery side (`streaming`) and
//! the watermark side (`forensics`) build on it without building a database stack.

pub mod codes;
pub mod digest;
pub mod isobmff;
pub mod layout;
pub mod marker;
pub mod package;
pub mod sealing;
