//! Credentials: password hashing and API keys. (Device tokens arrive with streaming.)

pub mod api_key;
pub mod password;
