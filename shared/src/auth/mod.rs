//! Credentials: password hashing, API keys, signed user/device tokens and device proof keys.

pub mod api_key;
pub mod device_key;
pub mod password;
pub mod tokens;
