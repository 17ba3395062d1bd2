//! Credentials: password hashing, API keys and signed user/device tokens.

pub mod api_key;
pub mod password;
pub mod tokens;
