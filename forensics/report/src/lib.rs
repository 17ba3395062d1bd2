//! `report`: evidence reports as signed PDFs: the document ([`document`], with its per-unit
//! [`chart`]) and its PAdES signature and report PKI ([`signing`]). What a report says comes
//! from the caller (the case, the sessions and the audit trail live in the database); this
//! crate only lays it out and signs, so the PDF and PKI stack stays out of the kernels' crate.

pub mod chart;
pub mod document;
pub mod metrics;
pub mod signing;
pub mod timestamp;
