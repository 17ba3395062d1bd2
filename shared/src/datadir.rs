//! The data dir: media, secrets, uploads, reports and the default SQLite database.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("data dir {path} is not usable: {reason}")]
pub struct DataDirError {
    pub path: PathBuf,
    pub reason: String,
}

impl DataDirError {
    pub fn code(&self) -> &'static str {
        "data_dir_unusable"
    }
}

/// Creates the data dir if needed and proves it is writable, before anything else happens.
pub fn prepare(path: &Path) -> Result<(), DataDirError> {
    let fail = |reason: String| DataDirError {
        path: path.to_path_buf(),
        reason,
    };
    if path.exists() && !path.is_dir() {
        return Err(fail("it exists and is not a folder".into()));
    }
    if !path.exists() {
        fs::create_dir_all(path).map_err(|e| fail(format!("cannot create it ({e})")))?;
        // Media and uploads are evidence: keep them to the service's own user.
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(|e| fail(format!("cannot set its permissions ({e})")))?;
    }
    let probe = path.join(format!(".write-probe-{}", std::process::id()));
    fs::write(&probe, b"probe").map_err(|e| fail(format!("cannot write in it ({e})")))?;
    fs::remove_file(&probe).map_err(|e| fail(format!("cannot remove files in it ({e})")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_missing_folders() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b");
        prepare(&p).unwrap();
        assert!(p.is_dir());
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(fs::read_dir(&p).unwrap().count(), 0, "probe removed");
    }

    #[test]
    fn a_file_in_the_way_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("file");
        fs::write(&f, "x").unwrap();
        let err = prepare(&f).unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
        let err = prepare(&f.join("below")).unwrap_err();
        assert!(err.to_string().contains("cannot create"), "{err}");
    }
}
