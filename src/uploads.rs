//! Suspect files arriving for analysis: streamed to the data dir's `uploads` folder with their
//! SHA-256 computed on the way and a size limit enforced as bytes arrive (never the whole
//! file in memory), checked with FFmpeg before any job is queued; or taken from the crawler
//! inbox, only from inside it. Whatever fails leaves no file behind.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use forensics::media::decode::{FrameReader, Limits};
use forensics::media::MediaError;
use formats::digest::{copy_with_progress, HashingWriter};

/// Longest file name kept (bytes); longer names are cut.
const MAX_NAME_BYTES: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the uploaded file is empty")]
    Empty,
    #[error("the file name {0:?} is not acceptable: give a plain name without folders")]
    BadFileName(String),
    #[error("the upload was cut off before its end: {0}")]
    Incomplete(String),
    #[error("the file is not a video FFmpeg can read: {0}")]
    NotVideo(String),
    #[error("{0:?} is not a file inside the inbox folder")]
    OutsideInbox(String),
    #[error("no file {0:?} in the inbox folder")]
    NotInInbox(String),
    #[error("cannot store the upload: {0}")]
    Io(#[from] std::io::Error),
}

impl UploadError {
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::TooLarge { .. } => "upload_too_large",
            UploadError::Empty => "empty_file",
            UploadError::BadFileName(_) => "invalid_file_name",
            UploadError::Incomplete(_) => "upload_incomplete",
            UploadError::NotVideo(_) => "unsupported_media",
            UploadError::OutsideInbox(_) => "path_outside_inbox",
            UploadError::NotInInbox(_) => "file_not_found",
            UploadError::Io(_) => "io_error",
        }
    }

    /// True when the client's upload or request is at fault (not this installation's disk).
    pub fn is_input(&self) -> bool {
        !matches!(self, UploadError::Io(_))
    }
}

/// A file stored for analysis (or packaging). It owns the file: dropped before [`keep`] (the
/// request was refused, failed, or its client went away while it was checked), it removes
/// it, so no upload outlives its request unless a case or job took it.
///
/// [`keep`]: StoredUpload::keep
#[derive(Debug)]
pub struct StoredUpload {
    pub path: PathBuf,
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
    kept: bool,
}

impl StoredUpload {
    /// The file is taken (a case or job records its path): it stays.
    pub fn keep(mut self) -> PathBuf {
        self.kept = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for StoredUpload {
    fn drop(&mut self) {
        if !self.kept && !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A file name as sent by a client, accepted only as a plain name (no folders, no `..`, no
/// control characters).
pub fn clean_file_name(raw: &str) -> Result<String, UploadError> {
    let bad = || UploadError::BadFileName(raw.chars().take(80).collect());
    if raw.is_empty() {
        return Ok("upload".into());
    }
    if raw.contains(['/', '\\']) || raw == "." || raw == ".." || raw.starts_with("..") {
        return Err(bad());
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    let mut name = raw.to_string();
    while name.len() > MAX_NAME_BYTES {
        name.pop();
    }
    Ok(name)
}

/// An upload being written, hashed on the way: removed on drop unless [`PartFile::finish`]
/// kept it.
pub struct PartFile {
    out: Option<HashingWriter<BufWriter<File>>>,
    path: PathBuf,
    limit: u64,
}

impl PartFile {
    /// A new part file in `dir` (created if missing).
    pub fn create(dir: &Path, limit: u64) -> Result<PartFile, UploadError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.part", shared::db::new_id()));
        let file = File::create(&path)?;
        Ok(PartFile {
            out: Some(HashingWriter::new(BufWriter::with_capacity(1 << 20, file))),
            path,
            limit,
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        let Some(out) = self.out.as_mut() else {
            return Err(UploadError::Incomplete("written after the end".into()));
        };
        if out.size() + chunk.len() as u64 > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        Ok(out.write_all(chunk)?)
    }

    /// Copies everything from `input`, within the limit.
    pub fn copy_from(&mut self, input: &mut impl Read) -> Result<(), UploadError> {
        let mut limited = input.take(self.limit.saturating_add(1));
        let Some(out) = self.out.as_mut() else {
            return Err(UploadError::Incomplete("written after the end".into()));
        };
        copy_with_progress(&mut limited, out, &mut |_| {})?;
        if out.size() > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// Ends the upload: refuses an empty one, else renames it to `<id>.upload` beside (the
    /// client's `file_name` is kept in the result, not in the name).
    pub fn finish(mut self, file_name: &str) -> Result<StoredUpload, UploadError> {
        let Some(out) = self.out.take() else {
            return Err(UploadError::Incomplete("finished twice".into()));
        };
        let (_, size, sha256) = out.finish()?;
        if size == 0 {
            return Err(UploadError::Empty);
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A random name without the client's: its extension would steer FFmpeg's choice of
        // demuxer, and its name is the client's to choose (the case records it).
        let stored = dir.join(format!("{stem}.upload"));
        std::fs::rename(&self.path, &stored)?;
        // Renamed: nothing left for drop to remove.
        self.path = PathBuf::new();
        Ok(StoredUpload {
            path: stored,
            file_name: file_name.to_string(),
            size,
            sha256,
            kept: false,
        })
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            drop(self.out.take());
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Checks with FFmpeg that `path` holds a decodable video (its first frame decodes).
pub fn check_video(path: &Path, limits: &Limits) -> Result<(), UploadError> {
    let refuse =
        |e: MediaError| UploadError::NotVideo(without_paths(&e.to_string(), &[(path, "the file")]));
    let mut reader = FrameReader::open(path, limits)
        .map_err(refuse)?
        .without_length_check();
    match reader.next_frame().map_err(refuse)? {
        Some(_) => Ok(()),
        None => Err(UploadError::NotVideo("no video frame decodes".into())),
    }
}

/// `text` (an error's message) with each of `paths` replaced by its public name: messages
/// that reach clients never show the server's folders.
pub fn without_paths(text: &str, paths: &[(&Path, &str)]) -> String {
    let mut text = text.to_string();
    // Longest first, so that a folder does not cut a longer path inside it.
    let mut paths: Vec<(String, &str)> = paths
        .iter()
        .map(|(p, name)| (p.to_string_lossy().into_owned(), *name))
        .filter(|(p, _)| !p.is_empty())
        .collect();
    paths.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (path, name) in paths {
        text = text.replace(&path, name);
    }
    text
}

/// The inbox file a crawler named, refused unless it lies inside `inbox` (after resolving
/// links and `..`).
pub fn inbox_file(inbox: &Path, requested: &str) -> Result<PathBuf, UploadError> {
    let outside = || UploadError::OutsideInbox(requested.chars().take(200).collect());
    // The inbox exists from the first request on (crawlers may not have dropped anything yet).
    std::fs::create_dir_all(inbox)?;
    let inbox = std::fs::canonicalize(inbox)?;
    let candidate = Path::new(requested);
    let candidate = if candidate.is_absolute() {
        candidate.to_path_buf()
    } else {
        inbox.join(candidate)
    };
    let resolved = match std::fs::canonicalize(&candidate) {
        Ok(p) => p,
        // A missing file inside the inbox is "not found"; anything else is refused outright.
        Err(_) if !requested.contains("..") && candidate.starts_with(&inbox) => {
            return Err(UploadError::NotInInbox(
                requested.chars().take(200).collect(),
            ))
        }
        Err(_) => return Err(outside()),
    };
    if !resolved.starts_with(&inbox) || resolved == inbox {
        return Err(outside());
    }
    if !resolved.is_file() {
        return Err(UploadError::NotInInbox(
            requested.chars().take(200).collect(),
        ));
    }
    Ok(resolved)
}

/// Opens an inbox file found by [`inbox_file`] and checks the handle, not the name: the
/// last component is opened without following a link (`O_NOFOLLOW`; `O_NONBLOCK` so that a
/// FIFO cannot hold the request), and the file the handle actually reaches
/// (`/proc/self/fd`) must be a regular file inside the inbox. A link swapped in for any
/// component between [`inbox_file`]'s check and this open is refused.
pub fn open_inbox_file(inbox: &Path, resolved: &Path) -> Result<File, UploadError> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    // Messages name the file, never the server's folders.
    let shown: String = resolved
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(200).collect())
        .unwrap_or_default();
    let outside = || UploadError::OutsideInbox(shown.clone());
    let inbox = std::fs::canonicalize(inbox)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(resolved)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => outside(),
            Some(libc::ENOENT) => UploadError::NotInInbox(shown.clone()),
            _ => UploadError::Io(e),
        })?;
    let reached = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    if !reached.starts_with(&inbox) || reached == inbox {
        return Err(outside());
    }
    if !file.metadata()?.is_file() {
        return Err(UploadError::NotInInbox(shown));
    }
    Ok(file)
}

/// Copies an inbox file into the uploads folder (hashing it), so the evidence stays as it
/// was received whatever happens to the inbox; the file is opened through
/// [`open_inbox_file`].
pub fn store_inbox_file(
    inbox: &Path,
    source: &Path,
    uploads: &Path,
    limit: u64,
) -> Result<StoredUpload, UploadError> {
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = clean_file_name(&name)?;
    let mut opened = open_inbox_file(inbox, source)?;
    let mut part = PartFile::create(uploads, limit)?;
    part.copy_from(&mut opened)?;
    part.finish(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn file_names_are_plain_names() {
        assert_eq!(clean_file_name("leak.mp4").unwrap(), "leak.mp4");
        assert_eq!(clean_file_name("").unwrap(), "upload");
        for bad in [
            "../x.mp4",
            "a/b.mp4",
            "..\\x",
            "..",
            "x\u{0}y",
            "/etc/passwd",
        ] {
            assert!(clean_file_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            clean_file_name(&"x".repeat(500)).unwrap().len(),
            MAX_NAME_BYTES
        );
    }

    #[test]
    fn part_files_hash_limit_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = PartFile::create(dir.path(), 10).unwrap();
        p.write(b"hello").unwrap();
        let up = p.finish("a.mp4").unwrap();
        assert_eq!(up.size, 5);
        assert_eq!(up.sha256, hex::encode(Sha256::digest(b"hello")));
        assert!(up.path.is_file());
        // Over the limit: refused, and the part file goes.
        let mut p = PartFile::create(dir.path(), 4).unwrap();
        assert!(matches!(
            p.write(b"hello"),
            Err(UploadError::TooLarge { limit: 4 })
        ));
        drop(p);
        // Empty: refused, nothing left.
        let p = PartFile::create(dir.path(), 4).unwrap();
        assert!(matches!(p.finish("e.mp4"), Err(UploadError::Empty)));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the finished upload stays");
    }

    #[test]
    fn inbox_paths_stay_inside_the_inbox() {
        let root = tempfile::tempdir().unwrap();
        let inbox = root.path().join("inbox");
        std::fs::create_dir_all(inbox.join("sub")).unwrap();
        std::fs::write(inbox.join("sub/leak.mp4"), b"x").unwrap();
        std::fs::write(root.path().join("secret.txt"), b"x").unwrap();
        assert!(inbox_file(&inbox, "sub/leak.mp4").is_ok());
        let abs = inbox.join("sub/leak.mp4");
        assert!(inbox_file(&inbox, abs.to_str().unwrap()).is_ok());
        for bad in [
            "../secret.txt",
            "sub/../../secret.txt",
            "/etc/passwd",
            ".",
            "",
        ] {
            assert!(
                matches!(inbox_file(&inbox, bad), Err(UploadError::OutsideInbox(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            inbox_file(&inbox, "missing.mp4"),
            Err(UploadError::NotInInbox(_))
        ));
        // A missing inbox is created: nothing is in it yet.
        let fresh = root.path().join("fresh-inbox");
        assert!(matches!(
            inbox_file(&fresh, "x.mp4"),
            Err(UploadError::NotInInbox(_))
        ));
        assert!(fresh.is_dir());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.path().join("secret.txt"), inbox.join("link")).unwrap();
            assert!(matches!(
                inbox_file(&inbox, "link"),
                Err(UploadError::OutsideInbox(_))
            ));
        }
    }

    /// What `inbox_file` checked by name can change before the file is opened (a directory
    /// or the file swapped for a link): the open follows no last link, blocks on nothing, and
    /// checks where the handle really is.
    #[test]
    fn an_inbox_file_is_checked_by_its_open_handle() {
        let root = tempfile::tempdir().unwrap();
        let inbox = root.path().join("inbox");
        std::fs::create_dir_all(inbox.join("sub")).unwrap();
        std::fs::write(inbox.join("sub/leak.mp4"), b"evidence").unwrap();
        std::fs::create_dir_all(root.path().join("outside")).unwrap();
        std::fs::write(root.path().join("outside/leak.mp4"), b"secret").unwrap();
        let checked = inbox_file(&inbox, "sub/leak.mp4").unwrap();
        assert!(open_inbox_file(&inbox, &checked).is_ok());

        // After the check, the folder is swapped for a link to outside the inbox.
        std::fs::rename(inbox.join("sub"), root.path().join("old-sub")).unwrap();
        std::os::unix::fs::symlink(root.path().join("outside"), inbox.join("sub")).unwrap();
        let err = open_inbox_file(&inbox, &checked).unwrap_err();
        assert!(matches!(err, UploadError::OutsideInbox(_)), "{err:?}");
        assert!(
            !err.to_string().contains(root.path().to_str().unwrap()),
            "{err}"
        );

        // The file itself swapped for a link (even one inside the inbox) is not followed.
        std::fs::remove_file(inbox.join("sub")).unwrap();
        std::fs::rename(root.path().join("old-sub"), inbox.join("sub")).unwrap();
        std::fs::write(inbox.join("other.mp4"), b"x").unwrap();
        std::fs::remove_file(&checked).unwrap();
        std::os::unix::fs::symlink(inbox.join("other.mp4"), &checked).unwrap();
        assert!(matches!(
            open_inbox_file(&inbox, &checked),
            Err(UploadError::OutsideInbox(_))
        ));

        // A FIFO does not hold the request: refused at once as not a file.
        std::fs::remove_file(&checked).unwrap();
        let fifo = std::ffi::CString::new(checked.to_str().unwrap()).unwrap();
        // SAFETY: `fifo` is a valid NUL-terminated path for the duration of the call.
        #[allow(unsafe_code)]
        let made = unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) };
        assert_eq!(made, 0);
        assert!(matches!(
            open_inbox_file(&inbox, &checked),
            Err(UploadError::NotInInbox(_))
        ));
    }
}
