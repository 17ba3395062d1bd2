//! The `multipart` target's harness: a multipart body read by the binary's
//! `forms::read_multipart` (actix-multipart, the form's field rules,
//! `uploads::clean_file_name`, the part file written through `web::block`), without a server.
//! That code is private to the `leaktrace` binary, which has no library: fuzz_targets/
//! multipart.rs compiles src/uploads.rs and src/http/forms.rs as they are, beside this file,
//! as `crate::uploads` and `crate::forms` (and stands in for what else forms.rs names).
//!
//! `LEAKTRACE_FUZZ_SHOW=1` prints each outcome to stderr.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::Bytes;
use actix_web::FromRequest;
use futures_util::StreamExt;

/// The boundary in the request's content type (the seeds use it).
pub const BOUNDARY: &str = "leaktrace-fuzz-boundary";
/// The text fields of the suspect upload form (`FORM_FIELDS` in src/http/cases.rs).
pub const FIELDS: [&str; 3] = ["video_id", "expected_watermark_hash", "video_file_path"];
/// The file size limit passed to `read_multipart`.
pub const LIMIT: u64 = 1 << 20;

/// A read still waiting this long after the body's end looks stalled (a read takes
/// milliseconds)...
const GRACE: Duration = Duration::from_millis(50);
/// ...and is, if it has not finished given this long (a busy machine): the longest a read
/// may take at all.
const CONFIRM: Duration = Duration::from_secs(10);

/// The form's text fields and file size, or the refusal's error code.
pub type Outcome = Result<(Vec<(String, String)>, Option<u64>), &'static str>;

/// A read that did not finish: `after_eof` when it was still waiting after the whole body
/// had been handed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    pub after_eof: bool,
}

/// Reads `data` as a form body under a `multipart/form-data; boundary=leaktrace-fuzz-boundary`
/// header, once as one chunk and once cut into small chunks (so that boundaries straddle
/// chunks). Panics when the reading panics, breaks what callers rely on (see `read_form`),
/// or never finishes (as actix-multipart 0.7 did on a body cut off after a CR:
/// fuzz/regressions/multipart/README.md).
pub fn multipart(data: &[u8]) {
    static SHOW: OnceLock<bool> = OnceLock::new();
    let show = *SHOW.get_or_init(|| {
        std::env::var_os("LEAKTRACE_FUZZ_SHOW").is_some_and(|v| !v.is_empty() && v != "0")
    });
    for chunk in [data.len().max(1), 1 + data.len() % 13] {
        let outcome = read_multipart(data, chunk, GRACE)
            .or_else(|_| read_multipart(data, chunk, CONFIRM))
            .unwrap_or_else(|stalled| {
                panic!(
                    "read_multipart never finishes this body ({chunk}-byte chunks; {}): the \
                     request would hang until its client goes",
                    if stalled.after_eof {
                        "waiting after the body's end"
                    } else {
                        "before the body's end"
                    }
                )
            });
        if show {
            eprintln!("multipart {chunk}-byte chunks: {outcome:?}");
        }
    }
}

/// What `forms::read_multipart` made of `data` fed in `chunk`-byte chunks, or that it was
/// still waiting `grace` after the body's end (or [`CONFIRM`] after its start).
pub fn read_multipart(data: &[u8], chunk: usize, grace: Duration) -> Result<Outcome, Stalled> {
    use futures_util::future::{select, Either};
    thread_local! {
        static SYSTEM: actix_web::rt::SystemRunner = actix_web::rt::System::new();
    }
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        std::env::temp_dir().join(format!("leaktrace-fuzz-multipart-{}", std::process::id()))
    });
    let ended: Arc<OnceLock<Instant>> = Arc::default();
    let started = Instant::now();
    let read = read_form(data, chunk.max(1), dir.clone(), ended.clone());
    let watch = async {
        loop {
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
            let after_eof = ended.get().map(|at| at.elapsed() > grace);
            if after_eof == Some(true) || started.elapsed() > CONFIRM {
                return Stalled {
                    after_eof: after_eof.is_some(),
                };
            }
        }
    };
    SYSTEM.with(|system| {
        system.block_on(async {
            match select(std::pin::pin!(read), std::pin::pin!(watch)).await {
                Either::Left((outcome, _)) => Ok(outcome),
                Either::Right((stalled, _)) => Err(stalled),
            }
        })
    })
}

/// Reads the form; `ended` is set when the body's last byte has been handed over.
async fn read_form(
    data: &[u8],
    chunk: usize,
    dir: PathBuf,
    ended: Arc<OnceLock<Instant>>,
) -> Outcome {
    let (req, _) = actix_web::test::TestRequest::post()
        .insert_header((
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ))
        .to_http_parts();
    let chunks: Vec<Result<Bytes, PayloadError>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let end = futures_util::stream::poll_fn(move |_| {
        let _ = ended.set(Instant::now());
        Poll::Ready(None)
    });
    let mut payload: Payload = Payload::Stream {
        payload: Box::pin(futures_util::stream::iter(chunks).chain(end)),
    };
    let payload = actix_web::web::Payload::from_request(&req, &mut payload)
        .await
        .expect("taking the payload cannot fail");
    let form = crate::forms::read_multipart(&req, payload, dir, LIMIT, &FIELDS)
        .await
        .map_err(|e| e.code)?;
    for (name, value) in &form.fields {
        assert!(
            FIELDS.contains(&name.as_str()),
            "unknown field {name:?} kept"
        );
        assert!(!value.is_empty(), "empty field {name:?} kept");
    }
    let size = form.file.as_ref().map(|file| {
        assert!(
            file.size > 0 && file.size <= LIMIT,
            "a file of {} bytes",
            file.size
        );
        assert!(
            !file.file_name.contains(['/', '\\']),
            "{:?}",
            file.file_name
        );
        let stored = std::fs::metadata(&file.path).map(|m| m.len()).ok();
        assert_eq!(stored, Some(file.size), "the stored file's size");
        file.size
    });
    // Dropping the form removes its file.
    Ok((form.fields.clone().into_iter().collect(), size))
}
