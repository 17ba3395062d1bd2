use std::path::PathBuf;

use shared::auth::tokens::TokenKeys;
use shared::db::Db;

/// What the viewer-facing handlers need; built once at start-up.
pub struct StreamingState {
    pub db: Db,
    pub tokens: TokenKeys,
    /// An Argon2 hash of a random password, verified when a user name is unknown, so that
    /// unknown names and wrong passwords take the same time.
    pub dummy_password_hash: String,
    /// Seals ephemeral session secrets and content keys at rest.
    pub master_key: [u8; 32],
    /// Where packaged titles live (`videos.storage_dir` is relative to it).
    pub data_dir: PathBuf,
}
