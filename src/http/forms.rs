//! Request bodies the upload routes share: a multipart form whose one `file` field is
//! streamed to disk (size limit enforced as bytes arrive, SHA-256 on the way, off the async
//! executor) beside short text fields, a small JSON body, and the FFmpeg check of what
//! arrived. Whatever is refused leaves no file behind.

use std::collections::BTreeMap;
use std::path::PathBuf;

use actix_multipart::{Field, Multipart};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use api::ApiError;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use shared::config::Config;

use crate::uploads::{self as upload, PartFile, StoredUpload, UploadError};

/// Largest text field of a form.
const MAX_TEXT_FIELD: usize = 4096;
/// Bytes gathered before each write to disk (off the async executor).
const WRITE_CHUNK: usize = 1 << 20;
/// Room for the multipart framing around the file when judging a declared length.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// The HTTP answer for an upload failure.
pub fn upload_error(e: UploadError) -> ApiError {
    let status = match &e {
        UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        UploadError::NotVideo(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        UploadError::Io(_) => return ApiError::internal(e),
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// The request's content type, lower case ("" when absent).
pub fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Refuses (413) a body whose declared length already exceeds `limit` plus the form framing.
pub fn refuse_declared_length(req: &HttpRequest, limit: u64) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(FORM_OVERHEAD)) {
        return Err(upload_error(UploadError::TooLarge { limit }));
    }
    Ok(())
}

/// A form that arrived: its non-empty text fields and its file, if any.
#[derive(Default)]
pub struct Form {
    pub fields: BTreeMap<String, String>,
    pub file: Option<StoredUpload>,
}

impl Form {
    /// Takes a text field out of the form.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.fields.remove(name)
    }
}

async fn text_field(field: &mut Field) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| upload_error(UploadError::Incomplete(e.to_string())))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_TEXT_FIELD {
            return Err(ApiError::bad_request(
                "field_too_long",
                format!("a form field is longer than {MAX_TEXT_FIELD} bytes"),
            ));
        }
    }
    String::from_utf8(bytes)
        .map(|s| s.trim().to_string())
        .map_err(|_| ApiError::bad_request("invalid_field", "a form field is not UTF-8 text"))
}

/// Streams a file field to a part file in `dir`, writing in large blocks off the executor.
async fn file_field(field: &mut Field, dir: PathBuf, limit: u64) -> Result<StoredUpload, ApiError> {
    let raw_name = field
        .content_disposition()
        .and_then(|d| d.get_filename())
        .unwrap_or_default()
        .to_string();
    let name = upload::clean_file_name(&raw_name).map_err(upload_error)?;
    let write = |part: PartFile, block: Vec<u8>| async move {
        web::block(move || {
            let mut part = part;
            part.write(&block).map(|()| part)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(upload_error)
    };
    let mut part = web::block(move || PartFile::create(&dir, limit))
        .await
        .map_err(ApiError::internal)?
        .map_err(upload_error)?;
    let mut block = Vec::with_capacity(WRITE_CHUNK);
    let mut size = 0u64;
    while let Some(chunk) = field.next().await {
        // On any error the part file is dropped, which removes it.
        let chunk = chunk.map_err(|e| upload_error(UploadError::Incomplete(e.to_string())))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(upload_error(UploadError::TooLarge { limit }));
        }
        block.extend_from_slice(&chunk);
        if block.len() >= WRITE_CHUNK {
            part = write(part, std::mem::take(&mut block)).await?;
        }
    }
    part = write(part, block).await?;
    web::block(move || part.finish(&name))
        .await
        .map_err(ApiError::internal)?
        .map_err(upload_error)
}

/// Reads a multipart form: at most one `file` field (stored in `dir`, at most `limit`
/// bytes) and the text fields named in `fields`, each at most once (empty ones count as
/// absent). Any other field is refused as soon as its name arrives, so a form's text is
/// bounded by `fields.len()` x [`MAX_TEXT_FIELD`] bytes however the request is sent.
pub async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    dir: PathBuf,
    limit: u64,
    fields: &[&str],
) -> Result<Form, ApiError> {
    let mut multipart = Multipart::new(req.headers(), payload);
    let mut form = Form::default();
    let result: Result<(), ApiError> =
        async {
            let mut seen: Vec<&str> = Vec::new();
            while let Some(field) = multipart.next().await {
                let mut field =
                    field.map_err(|e| upload_error(UploadError::Incomplete(e.to_string())))?;
                let name = field.name().unwrap_or_default().to_string();
                if name != "file" {
                    let Some(known) = fields.iter().find(|f| **f == name) else {
                        return Err(ApiError::bad_request(
                            "unknown_field",
                            format!(
                            "the form has a field this route does not take (it takes \"file\"{})",
                            fields.iter().map(|f| format!(", \"{f}\"")).collect::<String>()
                        ),
                        ));
                    };
                    if seen.contains(known) {
                        return Err(ApiError::bad_request(
                            "duplicate_field",
                            format!("the form has the field \"{known}\" more than once"),
                        ));
                    }
                    seen.push(known);
                }
                if name == "file" {
                    if form.file.is_some() {
                        return Err(ApiError::bad_request(
                            "too_many_files",
                            "send one file per request",
                        ));
                    }
                    form.file = Some(file_field(&mut field, dir.clone(), limit).await?);
                } else {
                    let value = text_field(&mut field).await?;
                    if !value.is_empty() {
                        form.fields.insert(name, value);
                    }
                }
            }
            Ok(())
        }
        .await;
    // Refused: the stored file (if any) is dropped with the form, which removes it.
    result.map(|()| form)
}

/// Reads a small JSON body (at most 16 KiB) into `T`.
pub async fn read_json<T: DeserializeOwned>(mut payload: web::Payload) -> Result<T, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| upload_error(UploadError::Incomplete(e.to_string())))?;
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TEXT_FIELD * 4 {
            return Err(ApiError::bad_request(
                "body_too_long",
                "the JSON body is too long",
            ));
        }
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

/// Checks the stored file with FFmpeg; removes it when it is not a video.
pub async fn check_video(stored: &StoredUpload, config: &Config) -> Result<(), ApiError> {
    let path = stored.path.clone();
    let config = config.clone();
    let checked = web::block(move || {
        let result = crate::probe::check(&path, &config);
        if result.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        result
    })
    .await
    .map_err(ApiError::internal)?;
    checked.map_err(upload_error)
}
