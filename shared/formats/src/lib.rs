//! `formats`: the file and wire formats leaktrace reads and writes, with no storage,
//! configuration or network behind them: where things live on disk ([`layout`]), a packaged
//! title's manifest ([`package`]), ISOBMFF reading ([`isobmff`]), the session codes
//! ([`codes`]), the signed session marker box ([`marker`]), AES-256-GCM sealing
//! ([`sealing`]), streaming SHA-256 ([`digest`]), and a case's result as stored and served
//! ([`case`], the extract JSON). Both the delivery side (`streaming`) and
//! the watermark side (`forensics`) build on it without building a database stack.

pub mod bundle;
pub mod case;
pub mod codes;
pub mod digest;
pub mod isobmff;
pub mod layout;
pub mod marker;
pub mod names;
pub mod package;
pub mod sealing;
