//! `api`: what every route of the HTTP API shares, whichever crate serves it (the viewer API in
//! `streaming`, the evidence and admin routes of the server): the JSON error shape and the one
//! mapping of subsystem errors to statuses ([`error`]), and who is calling ([`auth`]: bearer
//! tokens checked against the signing key and the database, API keys, and the role extractors
//! handlers take as arguments instead of checking roles in their bodies).

pub mod auth;
pub mod error;

pub use error::ApiError;
