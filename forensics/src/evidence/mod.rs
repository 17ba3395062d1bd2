//! Evidence reports: the PDF ([`document`], with its per-unit [`chart`]) and its PAdES
//! signature ([`signing`]). What a report says comes from the caller (the case, the
//! sessions, the audit trail live in the database); this module only lays it out and signs.

pub mod chart;
pub mod document;
pub mod signing;
