//! `streaming`: the viewer-facing secure delivery flow. This crate holds the protocol's
//! cryptography ([`crypto`]); sessions, manifests, segment assembly and monitoring build on it.
//! It never calls FFmpeg.

pub mod crypto;
