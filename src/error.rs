//! The application error: every failure of a command, a job or a route, as the typed error of
//! the subsystem it came from, or one of the few conditions only the application knows. Each
//! says whether the caller's input is at fault ([`AppError::is_input`]) and gives a stable
//! code ([`AppError::code`]). It is mapped once to exit statuses (here: 2 for bad input, 1
//! for a failing environment) and once to the API's error shape (`http::app_error`); jobs
//! end an attempt for good on input errors and retry the others.

use std::path::PathBuf;

use forensics::extract::ExtractError;
use forensics::media::MediaError;
use forensics::package::PackageError;
use forensics::refstore::RefStoreError;
use formats::package::ManifestError;
use report::signing::SigningError;
use shared::config::ConfigError;
use shared::datadir::DataDirError;
use shared::db::DbError;
use shared::domain::ValidationError;
use shared::secrets::SecretsError;

use crate::uploads::UploadError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    RefStore(#[from] RefStoreError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// A title id that names no packaged title.
    #[error("no packaged title has id {0}")]
    UnknownTitle(String),
    /// A title name already taken.
    #[error("a title named '{0}' already exists")]
    TitleExists(String),
    /// A report asked of a case whose analysis has not finished.
    #[error("case {case_id} is {status}: a report needs a finished analysis")]
    CaseNotFinished { case_id: String, status: String },
    /// A finished case whose stored result does not parse (a damaged database).
    #[error("the stored result of case {0} is unreadable")]
    DamagedCase(String),
    /// A command used wrongly in a way its argument parser cannot see.
    #[error("{0}")]
    Usage(String),
    /// The audit trail does not verify.
    #[error("audit trail broken at entry {seq}: {reason}")]
    AuditBroken { seq: i64, reason: String },
    /// A password cannot be hashed.
    #[error(transparent)]
    PasswordHash(#[from] shared::auth::password::HashError),
    /// A file named as input that cannot be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A job whose payload this build cannot use.
    #[error("the {kind} job's payload is unusable: {reason}")]
    JobPayload { kind: &'static str, reason: String },
    /// The file a packaging job was to package is no longer there.
    #[error("the source file {0} is gone")]
    SourceGone(PathBuf),
    /// A title's watermark secret does not unseal under this deployment's master key.
    #[error("the secret of title {video_id} cannot be unsealed: {source}")]
    TitleSecret {
        video_id: String,
        source: formats::sealing::SealError,
    },
    /// A case's suspect file no longer hashes to what was recorded when it was received
    /// (changed on disk or swapped in the bucket): it is not the evidence, and is not analysed.
    #[error(
        "the suspect file changed since it was received: its SHA-256 is {found}, \
         {expected} was recorded at upload; it is not analysed"
    )]
    SuspectChanged { expected: String, found: String },
    /// A crawler callback that will not be sent (its key revoked, its host no longer allowed).
    #[error("the callback is not sent: {0}")]
    CallbackRefused(String),
    /// A passing condition worth another attempt (a race with another writer).
    #[error("{0}")]
    Retry(String),
    /// A file or folder of this installation cannot be written or read.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The server cannot listen or run.
    #[error("{0}")]
    Server(String),
    /// `leaktrace doctor` found things out of place that are still there.
    #[error("{0} finding(s) remain (see above; --clean removes leftover files)")]
    DoctorFindings(usize),
    /// `leaktrace verify-bundle` found failing checks.
    #[error("{0} check(s) of the bundle failed (see above)")]
    BundleRejected(usize),
    /// `leaktrace verify-bundle` passed every check, but against the CA the bundle carries.
    #[error(
        "every check passed, but only against the CA certificate inside the bundle: anyone can \
         make such a bundle; pass the deployment's CA (--ca) to know who signed it"
    )]
    BundleUnpinned,
    /// `leaktrace doctor` could not look.
    #[error(transparent)]
    Doctor(#[from] crate::doctor::DoctorError),
    /// The bucket behind the data dir failed (or its settings are wrong).
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
}

impl AppError {
    /// True when the input (arguments, a request, a submitted file, the configuration) is at
    /// fault rather than this installation: exit status 2, a 4xx answer, a job that is not
    /// retried.
    pub fn is_input(&self) -> bool {
        match self {
            AppError::Config(_) | AppError::Validation(_) => true,
            AppError::Db(e) => matches!(
                e,
                DbError::Conflict(_)
                    | DbError::NotFound(_)
                    | DbError::MalformedUrl(_)
                    | DbError::UnsupportedScheme(_)
            ),
            AppError::Media(e) => e.is_input_error(),
            AppError::Package(e) => e.is_input_error(),
            AppError::Extract(e) => e.is_input_error(),
            // Variants that do not decode within the limits will not on another attempt.
            AppError::RefStore(forensics::refstore::RefStoreError::Media(e)) => e.is_input_error(),
            AppError::Upload(e) => e.is_input(),
            // A title whose manifest is unreadable stays so: not worth another attempt.
            AppError::Manifest(_) => true,
            AppError::UnknownTitle(_)
            | AppError::TitleExists(_)
            | AppError::CaseNotFinished { .. }
            | AppError::Unreadable { .. }
            | AppError::JobPayload { .. }
            | AppError::SourceGone(_)
            // A stored file that changed does not change back.
            | AppError::SuspectChanged { .. }
            | AppError::CallbackRefused(_)
            | AppError::Usage(_) => true,
            AppError::DataDir(_)
            | AppError::Secrets(_)
            | AppError::RefStore(_)
            | AppError::Signing(_)
            | AppError::TitleSecret { .. }
            | AppError::DamagedCase(_)
            | AppError::AuditBroken { .. }
            | AppError::PasswordHash(_)
            | AppError::Retry(_)
            | AppError::Io { .. }
            | AppError::Server(_)
            | AppError::DoctorFindings(_)
            | AppError::BundleRejected(_)
            | AppError::BundleUnpinned
            | AppError::Doctor(_)
            | AppError::Storage(_) => false,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Config(e) => e.code(),
            AppError::DataDir(e) => e.code(),
            AppError::Secrets(e) => e.code(),
            AppError::Db(e) => e.code(),
            AppError::Validation(e) => e.code(),
            AppError::Media(e) => e.code(),
            AppError::Package(e) => e.code(),
            AppError::RefStore(e) => e.code(),
            AppError::Extract(e) => e.code(),
            AppError::Manifest(_) => "package_unreadable",
            AppError::Upload(e) => e.code(),
            AppError::Signing(e) => e.code(),
            AppError::UnknownTitle(_) => "unknown_video",
            AppError::TitleExists(_) => "title_exists",
            AppError::CaseNotFinished { .. } => "case_not_finished",
            AppError::Unreadable { .. } => "file_unreadable",
            AppError::JobPayload { .. } => "invalid_job",
            AppError::SourceGone(_) => "file_not_found",
            AppError::TitleSecret { .. } => "secret_unsealable",
            AppError::DamagedCase(_) => "case_damaged",
            AppError::SuspectChanged { .. } => "suspect_changed",
            AppError::CallbackRefused(_) => "callback_refused",
            AppError::Usage(_) => "invalid_arguments",
            AppError::AuditBroken { .. } => "audit_broken",
            AppError::PasswordHash(_) => "password_hash_failed",
            AppError::Retry(_) => "retry",
            AppError::Io { .. } => "io_error",
            AppError::Server(_) => "server_failed",
            AppError::DoctorFindings(_) => "findings_remain",
            AppError::BundleRejected(_) => "bundle_rejected",
            AppError::BundleUnpinned => "bundle_ca_not_given",
            AppError::Doctor(_) => "doctor_failed",
            AppError::Storage(_) => "storage_failed",
        }
    }

    /// The message for a client of the API: the error itself, except where it would name a
    /// file of this server (then what went wrong, without the path).
    pub fn public_message(&self) -> String {
        match self {
            AppError::Unreadable { .. } => "the file cannot be read".into(),
            AppError::SourceGone(_) => "the source file is gone".into(),
            AppError::Manifest(_) => "the title's package manifest is unreadable".into(),
            AppError::Io { action, .. } => format!("the server cannot {action} a file"),
            AppError::Storage(_) => "the storage behind the server failed".into(),
            // What was wrong with the options asked for (no file named).
            AppError::Package(PackageError::InvalidOption(why)) => why.clone(),
            AppError::Media(_) | AppError::Package(_) | AppError::Extract(_) => {
                format!("the media cannot be used ({})", self.code())
            }
            other => other.to_string(),
        }
    }

    /// The shell's exit status: 2 for bad input, 1 for a failing environment.
    pub fn exit_code(&self) -> u8 {
        if matches!(self, AppError::BundleUnpinned) {
            // Distinct: nothing failed, but nothing ties the bundle to a deployment.
            return 3;
        }
        if self.is_input() {
            2
        } else {
            1
        }
    }

    /// An I/O failure of this installation's files.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> AppError {
        let path = path.into();
        move |source| AppError::Io {
            action,
            path,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_exit_2_and_the_environment_exits_1() {
        let input = [
            AppError::UnknownTitle("v".into()),
            AppError::Db(DbError::NotFound("case")),
            AppError::Db(DbError::Conflict("taken".into())),
            AppError::TitleExists("t".into()),
        ];
        for e in &input {
            assert_eq!(e.exit_code(), 2, "{e}");
        }
        let environment = [
            AppError::Db(DbError::Pool("gone".into())),
            AppError::Retry("race".into()),
            AppError::io("write", "/x")(std::io::Error::other("disk full")),
        ];
        for e in &environment {
            assert_eq!(e.exit_code(), 1, "{e}");
        }
        assert_eq!(input[0].code(), "unknown_video");
        assert_eq!(input[1].code(), "not_found");
    }
}
