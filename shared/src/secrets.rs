//! Server secrets: the JWT signing key and the master key that seals per-video secrets and
//! ephemeral session keys. Taken from the configuration when given there, otherwise created
//! on first use in `<data dir>/secrets/` with owner-only permissions.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use formats::layout::DataLayout;
use rand::RngCore;

use crate::config::{SecretOverrides, SecretString};

pub const JWT_KEY_FILE: &str = "jwt.key";
pub const MASTER_KEY_FILE: &str = "master.key";
const JWT_KEY_MIN_BYTES: usize = 32;
const JWT_KEY_NEW_BYTES: usize = 64;
const MASTER_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is invalid: {message}")]
    Invalid { what: String, message: String },
}

impl SecretsError {
    pub fn code(&self) -> &'static str {
        match self {
            SecretsError::Io { .. } => "secrets_unavailable",
            SecretsError::Invalid { .. } => "secrets_invalid",
        }
    }
}

/// Where a secret came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Configured,
    File(PathBuf),
    Created(PathBuf),
}

/// Key material; `Debug` never shows it.
#[derive(Clone)]
pub struct Secrets {
    jwt_key: Vec<u8>,
    master_key: [u8; MASTER_KEY_BYTES],
    pub jwt_source: SecretSource,
    pub master_source: SecretSource,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("jwt_key", &"REDACTED")
            .field("master_key", &"REDACTED")
            .field("jwt_source", &self.jwt_source)
            .field("master_source", &self.master_source)
            .finish()
    }
}

impl Secrets {
    /// Loads the configured secrets, or the ones in the data dir, creating those missing.
    pub fn load_or_create(
        data_dir: &Path,
        overrides: &SecretOverrides,
    ) -> Result<Secrets, SecretsError> {
        let dir = DataLayout::new(data_dir).secrets();
        let (jwt_key, jwt_source) = resolve(
            &dir,
            JWT_KEY_FILE,
            overrides.jwt_secret.as_ref(),
            "the JWT secret (LEAKTRACE_JWT_SECRET)",
            JWT_KEY_NEW_BYTES,
            |n| n >= JWT_KEY_MIN_BYTES,
        )?;
        let (master, master_source) = resolve(
            &dir,
            MASTER_KEY_FILE,
            overrides.master_key.as_ref(),
            "the master key (LEAKTRACE_MASTER_KEY)",
            MASTER_KEY_BYTES,
            |n| n == MASTER_KEY_BYTES,
        )?;
        let master_key: [u8; MASTER_KEY_BYTES] =
            master.try_into().map_err(|_| SecretsError::Invalid {
                what: "the master key".into(),
                message: format!("must be {MASTER_KEY_BYTES} bytes"),
            })?;
        Ok(Secrets {
            jwt_key,
            master_key,
            jwt_source,
            master_source,
        })
    }

    pub fn jwt_key(&self) -> &[u8] {
        &self.jwt_key
    }

    pub fn master_key(&self) -> &[u8; MASTER_KEY_BYTES] {
        &self.master_key
    }

    /// The opaque reference of a session accused in a case, as an API key (a crawler) is told
    /// it: analysts see the same reference beside the session, so a crawler's report can be
    /// matched to the case; the crawler cannot tell who it is, nor link two cases' references
    /// (keyed by the master key and the case).
    pub fn case_reference(&self, case_id: &str, session_id: &str) -> String {
        use ring::hmac;
        let derive = hmac::Key::new(hmac::HMAC_SHA256, &self.master_key);
        let key = hmac::sign(&derive, b"leaktrace/case-reference/v1");
        let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_ref());
        let mut message = Vec::with_capacity(case_id.len() + session_id.len() + 1);
        message.extend_from_slice(case_id.as_bytes());
        message.push(0);
        message.extend_from_slice(session_id.as_bytes());
        let tag = hmac::sign(&key, &message);
        format!("ref_{}", hex::encode(&tag.as_ref()[..12]))
    }
}

fn decode_hex_key(
    text: &str,
    what: &str,
    len_ok: impl Fn(usize) -> bool,
) -> Result<Vec<u8>, SecretsError> {
    let bytes = hex::decode(text.trim()).map_err(|e| SecretsError::Invalid {
        what: what.to_string(),
        message: format!("expected hex digits ({e})"),
    })?;
    if !len_ok(bytes.len()) {
        return Err(SecretsError::Invalid {
            what: what.to_string(),
            message: format!("{} bytes is not an accepted length", bytes.len()),
        });
    }
    Ok(bytes)
}

fn resolve(
    dir: &Path,
    file: &str,
    configured: Option<&SecretString>,
    what: &str,
    new_len: usize,
    len_ok: impl Fn(usize) -> bool + Copy,
) -> Result<(Vec<u8>, SecretSource), SecretsError> {
    if let Some(value) = configured {
        return Ok((
            decode_hex_key(value.expose(), what, len_ok)?,
            SecretSource::Configured,
        ));
    }
    let path = dir.join(file);
    let io = |action, source| SecretsError::Io {
        action,
        path: path.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            warn_if_shared(&path);
            let shown = path.display().to_string();
            Ok((
                decode_hex_key(&text, &shown, len_ok)?,
                SecretSource::File(path),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_dir_private(dir).map_err(|e| io("create folder for", e))?;
            let mut key = vec![0u8; new_len];
            rand::rngs::OsRng.fill_bytes(&mut key);
            match write_new_private(&path, hex::encode(&key).as_bytes()) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "created a new secret");
                    Ok((key, SecretSource::Created(path)))
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = fs::read_to_string(&path).map_err(|e| io("read", e))?;
                    let shown = path.display().to_string();
                    Ok((
                        decode_hex_key(&text, &shown, len_ok)?,
                        SecretSource::File(path),
                    ))
                }
                Err(e) => Err(io("write", e)),
            }
        }
        Err(e) => Err(io("read", e)),
    }
}

/// Creates `dir` (and parents) readable by the owner only.
pub fn create_dir_private(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes the whole file under a temporary name, then links it into place, so that a
/// reader never sees a half-written key and two racing processes agree on one key.
pub fn write_new_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

fn warn_if_shared(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                "secret file is readable by other users; run chmod 600 on it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_owner_only_permissions_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Secrets::load_or_create(dir.path(), &SecretOverrides::default()).unwrap();
        assert!(matches!(a.jwt_source, SecretSource::Created(_)));
        assert!(matches!(a.master_source, SecretSource::Created(_)));
        assert_eq!(a.jwt_key().len(), 64);
        for f in [JWT_KEY_FILE, MASTER_KEY_FILE] {
            let mode = fs::metadata(dir.path().join("secrets").join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let mode = fs::metadata(dir.path().join("secrets"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let b = Secrets::load_or_create(dir.path(), &SecretOverrides::default()).unwrap();
        assert!(matches!(b.jwt_source, SecretSource::File(_)));
        assert_eq!(a.jwt_key(), b.jwt_key());
        assert_eq!(a.master_key(), b.master_key());
        assert!(!format!("{b:?}").contains(&hex::encode(b.master_key())));
    }

    #[test]
    fn configured_values_win_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let o = SecretOverrides {
            jwt_secret: Some(SecretString::new("ab".repeat(32))),
            master_key: Some(SecretString::new("cd".repeat(32))),
        };
        let s = Secrets::load_or_create(dir.path(), &o).unwrap();
        assert_eq!(s.jwt_source, SecretSource::Configured);
        assert_eq!(s.master_key(), &[0xcd; 32]);
        assert!(!dir.path().join("secrets").exists(), "nothing written");

        let short = SecretOverrides {
            master_key: Some(SecretString::new("cd".repeat(16))),
            ..o.clone()
        };
        let err = Secrets::load_or_create(dir.path(), &short).unwrap_err();
        assert!(err.to_string().contains("master key"), "{err}");
        let not_hex = SecretOverrides {
            jwt_secret: Some(SecretString::new("z".repeat(64))),
            ..o
        };
        let err = Secrets::load_or_create(dir.path(), &not_hex).unwrap_err();
        assert!(err.to_string().contains("JWT"), "{err}");
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_not_a_silent_new_key() {
        let dir = tempfile::tempdir().unwrap();
        Secrets::load_or_create(dir.path(), &SecretOverrides::default()).unwrap();
        fs::write(dir.path().join("secrets").join(MASTER_KEY_FILE), "garbage").unwrap();
        let err = Secrets::load_or_create(dir.path(), &SecretOverrides::default()).unwrap_err();
        assert!(err.to_string().contains(MASTER_KEY_FILE), "{err}");
    }
}
