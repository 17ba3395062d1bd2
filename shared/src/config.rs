//! Configuration, assembled once at start-up and passed explicitly:
//! defaults -> TOML file (`--config` / `LEAKTRACE_CONFIG`) -> `LEAKTRACE_*` environment -> flags.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use formats::codes::CodeScheme;
use formats::layout::DataLayout;
use serde::{Deserialize, Serialize};

use crate::db::{DatabaseTarget, DbError};

/// The environment as a map, so that assembly is a pure function (tests pass their own).
pub type Env = BTreeMap<String, String>;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "data";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {key}: {message}")]
    Value { key: String, message: String },
}

impl ConfigError {
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "config_unreadable",
            ConfigError::Parse { .. } | ConfigError::Value { .. } => "config_invalid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("'{other}' is not a log format (human or json)")),
        }
    }
}

/// A secret value from the config file or environment. Never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(REDACTED)")
    }
}

/// Every setting with a value: what the program runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Media, secrets, uploads, reports and the default SQLite database live here.
    pub data_dir: PathBuf,
    /// `None` selects the SQLite database inside the data dir.
    pub database_url: Option<String>,
    pub server: ServerConfig,
    pub log: LogConfig,
    /// Secret overrides; what is not given here is created in the data dir on first use.
    pub secrets: SecretOverrides,
    pub limits: MediaLimits,
    pub monitoring: Monitoring,
    pub analysis: Analysis,
    pub evidence: Evidence,
    pub jobs: Jobs,
    pub packaging: Packaging,
    pub reports: Reports,
    pub metrics: MetricsConfig,
    pub storage: StorageConfig,
    /// Settings given under a deprecated name, one notice each, for the log once it is set
    /// up (assembly itself has nowhere to log to).
    pub deprecations: Vec<String>,
}

/// Packaging titles: what a packaging request (`leaktrace package`, the admin API) that does
/// not say otherwise gets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Packaging {
    /// Heights of the lower renditions a title is packaged with (adaptive streaming), those
    /// below the source's height only; empty: one rendition.
    pub ladder: Vec<u32>,
    /// How the sessions' codes are built: `uniform-v1` (strongest for a single leaker) or
    /// `tardos-v2` (colluders who mix their copies cannot cancel it).
    pub code: CodeScheme,
    /// Length of one watermark unit (one bit of a session's code), 0.5 to 4 seconds.
    pub unit_seconds: f64,
    /// Watermark units per segment: 1, or 2 (every segment in four variants; twice the
    /// packaging time and storage). Unit length times this is at most 4 seconds.
    pub segment_units: u32,
}

impl Default for Packaging {
    fn default() -> Self {
        Packaging {
            ladder: formats::package::DEFAULT_LADDER.to_vec(),
            code: CodeScheme::default(),
            unit_seconds: formats::package::DEFAULT_UNIT_SECONDS,
            segment_units: formats::package::default_segment_units(),
        }
    }
}

/// Evidence reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reports {
    /// The deployment's name: shown on every report and in the subject of the report CA and
    /// signing certificates (created on first use; changing it later does not rename them).
    pub organisation: String,
    /// An RFC 3161 timestamp authority (`http://` or `https://`): each report's signature is
    /// timestamped by it (PAdES B-T), and a report is not issued without its timestamp.
    /// Unset: the report says that its times are the server's own claim.
    pub tsa_url: Option<String>,
    /// The timestamp authority's certificate, or the CA that issues it (PEM file): tokens
    /// signed by anyone else are refused. Required with `tsa_url`.
    pub tsa_certificate: Option<PathBuf>,
    /// Evidence bundles carry the suspect file itself (else its name, size and SHA-256
    /// only): a policy decision, as the file is the pirated copy and may be large.
    pub bundle_suspect: bool,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            organisation: "leaktrace".to_string(),
            tsa_url: None,
            tsa_certificate: None,
            bundle_suspect: false,
        }
    }
}

/// Suspect submissions: uploads and the crawler inbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Largest suspect upload accepted (413 beyond).
    pub max_upload_bytes: u64,
    /// The folder crawlers drop suspect files into (`video_file_path` submissions must lie
    /// inside it); `None`: `inbox` in the data dir.
    pub inbox_dir: Option<PathBuf>,
    /// Hosts a crawler's `callback_url` may name (`host` or `host:port`); empty: callbacks
    /// are refused. Nothing else is ever called back (no redirects are followed).
    pub callback_hosts: Vec<String>,
}

impl Default for Evidence {
    fn default() -> Self {
        Evidence {
            max_upload_bytes: 4 << 30,
            inbox_dir: None,
            callback_hosts: Vec::new(),
        }
    }
}

/// The job queue's workers: analyses, packaging, reference stores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Jobs {
    /// Workers `leaktrace serve` runs beside the server (0: leave the jobs to
    /// `leaktrace worker` processes).
    pub workers: u32,
    /// A job's lease: a worker renews it while it works; when it lapses (the worker died),
    /// another worker takes the job over.
    pub lease_seconds: u64,
    /// Attempts of a job that keeps failing for transient reasons.
    pub max_attempts: u32,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            workers: 1,
            lease_seconds: 60,
            max_attempts: 3,
        }
    }
}

impl Config {
    /// The data dir's folders and files.
    pub fn layout(&self) -> DataLayout {
        DataLayout::new(&self.data_dir)
    }

    /// Where crawler-dropped suspect files are accepted from.
    pub fn inbox_dir(&self) -> PathBuf {
        self.evidence
            .inbox_dir
            .clone()
            .unwrap_or_else(|| self.layout().default_inbox())
    }
}

/// How leak analysis decides.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Analysis {
    /// A session is named (verdict `identified`) only when the false-positive probability of
    /// its match is below this.
    pub false_positive_threshold: f64,
    /// Build each title's reference store after packaging (about 1.8 times the variants'
    /// storage; extraction then decodes only the suspect, about 1.75 times faster). When
    /// on, workers also queue the store of every title that lacks one when they start.
    pub reference_store: bool,
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            false_positive_threshold: 1e-6,
            reference_store: true,
        }
    }
}

/// What the streaming monitor tolerates before it acts: ripping pace, concurrent sessions,
/// authentication failures (see `streaming::monitor` and docs/PROTOCOL.md, "Monitoring").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Monitoring {
    /// Sessions one user may have open (requested, keyed or streaming) at once.
    pub max_concurrent_sessions: u32,
    /// Content a session may fetch ahead of real time before any pace check applies.
    pub ripping_burst_seconds: f64,
    /// Fetching faster than this many content seconds per wall-clock second (beyond the
    /// burst) is flagged as suspected ripping.
    pub ripping_flag_speed: f64,
    /// Beyond this speed the session is throttled (429 with Retry-After) or revoked.
    pub ripping_limit_speed: f64,
    pub ripping_action: RippingAction,
    /// Failed logins (or device-token refreshes) allowed per address and per account within
    /// the window before further attempts get 429 with Retry-After.
    pub auth_failures_max: u32,
    pub auth_failures_window_seconds: u64,
    /// Serve `/api/demo/...` (session security state and watermark payload to its owner). Off
    /// by default: a viewer who sees its own A/B code can compare it with a fellow pirate's.
    pub demo_api: bool,
    /// Security events older than this many days are removed (0: kept forever).
    pub event_retention_days: u32,
    /// How long a device stays signed in from its registration: device tokens refresh (each
    /// lives 300 s) until this many hours have passed, then the viewer signs in again.
    pub device_sign_in_hours: u32,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            max_concurrent_sessions: 2,
            ripping_burst_seconds: 60.0,
            ripping_flag_speed: 2.0,
            ripping_limit_speed: 4.0,
            ripping_action: RippingAction::Throttle,
            auth_failures_max: 5,
            auth_failures_window_seconds: 300,
            demo_api: false,
            event_retention_days: 90,
            device_sign_in_hours: 12,
        }
    }
}

/// What happens to a session fetching past the ripping limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RippingAction {
    Throttle,
    Revoke,
}

impl std::str::FromStr for RippingAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "throttle" => Ok(RippingAction::Throttle),
            "revoke" => Ok(RippingAction::Revoke),
            other => Err(format!("'{other}' is not throttle or revoke")),
        }
    }
}

/// Bounds on what one media file (a title to package, a suspect to analyse) may cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MediaLimits {
    pub max_input_bytes: u64,
    /// Longest accepted media duration.
    pub max_media_seconds: f64,
    /// Wall-time limit of one decode.
    pub max_processing_seconds: u64,
    /// Check uploaded files (their first frame decoded by FFmpeg) in a child process with
    /// resource limits (address space, CPU time, files written, descriptors), so that a
    /// decoder fault or a hostile file cannot take the server with it. On by default (about
    /// 70 ms more per upload: see docs/BENCHMARKS.md).
    pub isolate_probe: bool,
    /// Address space of that child process, in MiB.
    pub probe_memory_mib: u64,
}

impl Default for MediaLimits {
    fn default() -> Self {
        MediaLimits {
            max_input_bytes: 64 << 30,
            max_media_seconds: 6.0 * 3600.0,
            max_processing_seconds: 6 * 3600,
            isolate_probe: true,
            probe_memory_mib: 2048,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub bind: String,
    /// On SIGTERM or SIGINT: how long requests under way (segments, uploads) may take to
    /// finish, and then how long running jobs may take before their leases are handed back
    /// for another worker.
    pub shutdown_grace_seconds: u64,
    /// MiB of segment files each server keeps in memory (read once from the data dir, served
    /// from memory after); 0 reads every segment from the data dir.
    pub segment_cache_mib: u64,
}

/// Default of `server.shutdown_grace_seconds`.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u64 = 30;
/// Default of `server.segment_cache_mib`.
pub const DEFAULT_SEGMENT_CACHE_MIB: u64 = 256;

/// `/metrics` (Prometheus text). Off unless one of these is set: with `token`, the main
/// address serves it to `Authorization: Bearer <token>`; with `bind`, a second listener on
/// that address (a private interface, for the scraper) serves it, and `/healthz` and
/// `/readyz`, too (also asking for the token when one is set).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsConfig {
    pub token: Option<SecretString>,
    pub bind: Option<String>,
}

/// Where titles live beyond this machine (see the `storage` crate). Without `url`, the data
/// dir alone.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: Option<String>,
    /// The S3 endpoint, e.g. `http://127.0.0.1:3900`; AWS's when unset.
    pub endpoint: Option<String>,
    pub region: String,
    /// MiB of fetched objects kept in the data dir.
    pub cache_mib: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: None,
            endpoint: None,
            region: "us-east-1".into(),
            cache_mib: 10_240,
        }
    }
}

/// Shortest metrics token accepted.
pub const METRICS_TOKEN_MIN_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `leaktrace=debug,actix_web=info`.
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecretOverrides {
    /// Hex, at least 32 bytes.
    pub jwt_secret: Option<SecretString>,
    /// Hex, exactly 32 bytes.
    pub master_key: Option<SecretString>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database_url: None,
            server: ServerConfig {
                bind: DEFAULT_BIND.to_string(),
                shutdown_grace_seconds: DEFAULT_SHUTDOWN_GRACE_SECONDS,
                segment_cache_mib: DEFAULT_SEGMENT_CACHE_MIB,
            },
            log: LogConfig {
                format: LogFormat::Human,
                level: "info".to_string(),
            },
            secrets: SecretOverrides::default(),
            limits: MediaLimits::default(),
            monitoring: Monitoring::default(),
            analysis: Analysis::default(),
            evidence: Evidence::default(),
            jobs: Jobs::default(),
            packaging: Packaging::default(),
            reports: Reports::default(),
            metrics: MetricsConfig::default(),
            storage: StorageConfig::default(),
            deprecations: Vec::new(),
        }
    }
}

/// One layer of configuration: every field optional. The TOML file has this shape.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    #[serde(default)]
    pub server: PartialServer,
    #[serde(default)]
    pub log: PartialLog,
    #[serde(default)]
    pub secrets: PartialSecrets,
    #[serde(default)]
    pub limits: PartialLimits,
    #[serde(default)]
    pub monitoring: PartialMonitoring,
    #[serde(default)]
    pub analysis: PartialAnalysis,
    #[serde(default)]
    pub evidence: PartialEvidence,
    #[serde(default)]
    pub jobs: PartialJobs,
    #[serde(default)]
    pub packaging: PartialPackaging,
    #[serde(default)]
    pub reports: PartialReports,
    #[serde(default)]
    pub metrics: PartialMetrics,
    #[serde(default)]
    pub storage: PartialStorage,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialStorage {
    pub url: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub cache_mib: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialMetrics {
    pub token: Option<SecretString>,
    pub bind: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialPackaging {
    pub ladder: Option<Vec<u32>>,
    pub code: Option<CodeScheme>,
    pub unit_seconds: Option<f64>,
    pub segment_units: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialReports {
    pub organisation: Option<String>,
    pub tsa_url: Option<String>,
    pub tsa_certificate: Option<PathBuf>,
    pub bundle_suspect: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialJobs {
    pub workers: Option<u32>,
    pub lease_seconds: Option<u64>,
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialEvidence {
    pub max_upload_bytes: Option<u64>,
    pub inbox_dir: Option<PathBuf>,
    pub callback_hosts: Option<Vec<String>>,
    /// Deprecated: `jobs.workers`.
    pub workers: Option<u32>,
    /// Deprecated: `jobs.lease_seconds`.
    pub job_lease_seconds: Option<u64>,
    /// Deprecated: `jobs.max_attempts`.
    pub job_max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialAnalysis {
    pub false_positive_threshold: Option<f64>,
    pub reference_store: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialMonitoring {
    pub max_concurrent_sessions: Option<u32>,
    pub ripping_burst_seconds: Option<f64>,
    pub ripping_flag_speed: Option<f64>,
    pub ripping_limit_speed: Option<f64>,
    pub ripping_action: Option<RippingAction>,
    pub auth_failures_max: Option<u32>,
    pub auth_failures_window_seconds: Option<u64>,
    pub demo_api: Option<bool>,
    pub event_retention_days: Option<u32>,
    pub device_sign_in_hours: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialLimits {
    pub max_input_bytes: Option<u64>,
    pub max_media_seconds: Option<f64>,
    pub max_processing_seconds: Option<u64>,
    pub isolate_probe: Option<bool>,
    pub probe_memory_mib: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialServer {
    pub bind: Option<String>,
    pub shutdown_grace_seconds: Option<u64>,
    pub segment_cache_mib: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialLog {
    pub format: Option<LogFormat>,
    pub level: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialSecrets {
    pub jwt_secret: Option<SecretString>,
    pub master_key: Option<SecretString>,
}

impl PartialConfig {
    /// Reads a TOML layer. Relative paths in it are taken relative to the file's folder.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut layer: PartialConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        if let Some(base) = path.parent() {
            for file in [
                layer.data_dir.as_mut(),
                layer.reports.tsa_certificate.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                if file.is_relative() {
                    *file = base.join(&*file);
                }
            }
        }
        Ok(layer)
    }

    /// The `LEAKTRACE_*` layer. `DATABASE_URL` is honoured too (below `LEAKTRACE_DATABASE_URL`).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let format = get("LEAKTRACE_LOG_FORMAT")
            .map(|v| {
                v.parse::<LogFormat>()
                    .map_err(|message| ConfigError::Value {
                        key: "LEAKTRACE_LOG_FORMAT".into(),
                        message,
                    })
            })
            .transpose()?;
        Ok(PartialConfig {
            data_dir: get("LEAKTRACE_DATA_DIR").map(PathBuf::from),
            database_url: get("LEAKTRACE_DATABASE_URL").or_else(|| get("DATABASE_URL")),
            server: PartialServer {
                bind: get("LEAKTRACE_BIND"),
                shutdown_grace_seconds: parse_env(env, "LEAKTRACE_SHUTDOWN_GRACE_SECONDS")?,
                segment_cache_mib: parse_env(env, "LEAKTRACE_SEGMENT_CACHE_MIB")?,
            },
            log: PartialLog {
                format,
                level: get("LEAKTRACE_LOG_LEVEL"),
            },
            secrets: PartialSecrets {
                jwt_secret: get("LEAKTRACE_JWT_SECRET").map(SecretString),
                master_key: get("LEAKTRACE_MASTER_KEY").map(SecretString),
            },
            limits: PartialLimits {
                max_input_bytes: parse_env(env, "LEAKTRACE_MAX_INPUT_BYTES")?,
                max_media_seconds: parse_env(env, "LEAKTRACE_MAX_MEDIA_SECONDS")?,
                max_processing_seconds: parse_env(env, "LEAKTRACE_MAX_PROCESSING_SECONDS")?,
                isolate_probe: parse_env(env, "LEAKTRACE_ISOLATE_PROBE")?,
                probe_memory_mib: parse_env(env, "LEAKTRACE_PROBE_MEMORY_MIB")?,
            },
            monitoring: PartialMonitoring {
                max_concurrent_sessions: parse_env(env, "LEAKTRACE_MAX_CONCURRENT_SESSIONS")?,
                ripping_burst_seconds: parse_env(env, "LEAKTRACE_RIPPING_BURST_SECONDS")?,
                ripping_flag_speed: parse_env(env, "LEAKTRACE_RIPPING_FLAG_SPEED")?,
                ripping_limit_speed: parse_env(env, "LEAKTRACE_RIPPING_LIMIT_SPEED")?,
                ripping_action: parse_env(env, "LEAKTRACE_RIPPING_ACTION")?,
                auth_failures_max: parse_env(env, "LEAKTRACE_AUTH_FAILURES_MAX")?,
                auth_failures_window_seconds: parse_env(
                    env,
                    "LEAKTRACE_AUTH_FAILURES_WINDOW_SECONDS",
                )?,
                demo_api: parse_env(env, "LEAKTRACE_DEMO_API")?,
                event_retention_days: parse_env(env, "LEAKTRACE_EVENT_RETENTION_DAYS")?,
                device_sign_in_hours: parse_env(env, "LEAKTRACE_DEVICE_SIGN_IN_HOURS")?,
            },
            analysis: PartialAnalysis {
                false_positive_threshold: parse_env(env, "LEAKTRACE_FALSE_POSITIVE_THRESHOLD")?,
                reference_store: parse_env(env, "LEAKTRACE_REFERENCE_STORE")?,
            },
            evidence: PartialEvidence {
                max_upload_bytes: parse_env(env, "LEAKTRACE_MAX_UPLOAD_BYTES")?,
                inbox_dir: get("LEAKTRACE_INBOX_DIR").map(PathBuf::from),
                callback_hosts: get("LEAKTRACE_CALLBACK_HOSTS").map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|h| !h.is_empty())
                        .map(str::to_string)
                        .collect()
                }),
                ..PartialEvidence::default()
            },
            jobs: PartialJobs {
                workers: parse_env(env, "LEAKTRACE_WORKERS")?,
                lease_seconds: parse_env(env, "LEAKTRACE_JOB_LEASE_SECONDS")?,
                max_attempts: parse_env(env, "LEAKTRACE_JOB_MAX_ATTEMPTS")?,
            },
            packaging: PartialPackaging {
                // "none" (or an empty value) for one rendition, else heights with commas.
                ladder: env
                    .get("LEAKTRACE_PACKAGING_LADDER")
                    .map(|v| formats::package::parse_ladder(v))
                    .transpose()
                    .map_err(|message| ConfigError::Value {
                        key: "LEAKTRACE_PACKAGING_LADDER".into(),
                        message,
                    })?,
                code: parse_env(env, "LEAKTRACE_PACKAGING_CODE")?,
                unit_seconds: parse_env(env, "LEAKTRACE_PACKAGING_UNIT_SECONDS")?,
                segment_units: parse_env(env, "LEAKTRACE_PACKAGING_SEGMENT_UNITS")?,
            },
            reports: PartialReports {
                organisation: parse_env(env, "LEAKTRACE_REPORTS_ORGANISATION")?,
                tsa_url: get("LEAKTRACE_REPORTS_TSA_URL"),
                tsa_certificate: get("LEAKTRACE_REPORTS_TSA_CERTIFICATE").map(PathBuf::from),
                bundle_suspect: parse_env(env, "LEAKTRACE_REPORTS_BUNDLE_SUSPECT")?,
            },
            metrics: PartialMetrics {
                token: get("LEAKTRACE_METRICS_TOKEN").map(SecretString),
                bind: get("LEAKTRACE_METRICS_BIND"),
            },
            storage: PartialStorage {
                url: get("LEAKTRACE_STORAGE_URL"),
                endpoint: get("LEAKTRACE_STORAGE_ENDPOINT"),
                region: get("LEAKTRACE_STORAGE_REGION"),
                cache_mib: parse_env(env, "LEAKTRACE_STORAGE_CACHE_MIB")?,
            },
        })
    }
}

/// A typed environment variable (number, boolean, choice), if set.
fn parse_env<T: std::str::FromStr>(env: &Env, key: &str) -> Result<Option<T>, ConfigError>
where
    T::Err: fmt::Display,
{
    match env.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|e| ConfigError::Value {
            key: key.to_string(),
            message: format!("'{v}' is not accepted ({e})"),
        }),
    }
}

impl Config {
    /// Applies a layer over this configuration: every value the layer sets wins.
    pub fn apply(mut self, layer: PartialConfig) -> Self {
        if let Some(v) = layer.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = layer.database_url {
            self.database_url = Some(v);
        }
        if let Some(v) = layer.server.bind {
            self.server.bind = v;
        }
        if let Some(v) = layer.server.shutdown_grace_seconds {
            self.server.shutdown_grace_seconds = v;
        }
        if let Some(v) = layer.server.segment_cache_mib {
            self.server.segment_cache_mib = v;
        }
        if let Some(v) = layer.log.format {
            self.log.format = v;
        }
        if let Some(v) = layer.log.level {
            self.log.level = v;
        }
        if let Some(v) = layer.secrets.jwt_secret {
            self.secrets.jwt_secret = Some(v);
        }
        if let Some(v) = layer.secrets.master_key {
            self.secrets.master_key = Some(v);
        }
        if let Some(v) = layer.limits.max_input_bytes {
            self.limits.max_input_bytes = v;
        }
        if let Some(v) = layer.limits.max_media_seconds {
            self.limits.max_media_seconds = v;
        }
        if let Some(v) = layer.limits.max_processing_seconds {
            self.limits.max_processing_seconds = v;
        }
        if let Some(v) = layer.limits.isolate_probe {
            self.limits.isolate_probe = v;
        }
        if let Some(v) = layer.limits.probe_memory_mib {
            self.limits.probe_memory_mib = v;
        }
        let (m, l) = (&mut self.monitoring, layer.monitoring);
        if let Some(v) = l.max_concurrent_sessions {
            m.max_concurrent_sessions = v;
        }
        if let Some(v) = l.ripping_burst_seconds {
            m.ripping_burst_seconds = v;
        }
        if let Some(v) = l.ripping_flag_speed {
            m.ripping_flag_speed = v;
        }
        if let Some(v) = l.ripping_limit_speed {
            m.ripping_limit_speed = v;
        }
        if let Some(v) = l.ripping_action {
            m.ripping_action = v;
        }
        if let Some(v) = l.auth_failures_max {
            m.auth_failures_max = v;
        }
        if let Some(v) = l.auth_failures_window_seconds {
            m.auth_failures_window_seconds = v;
        }
        if let Some(v) = l.demo_api {
            m.demo_api = v;
        }
        if let Some(v) = l.event_retention_days {
            m.event_retention_days = v;
        }
        if let Some(v) = l.device_sign_in_hours {
            m.device_sign_in_hours = v;
        }
        if let Some(v) = layer.analysis.false_positive_threshold {
            self.analysis.false_positive_threshold = v;
        }
        if let Some(v) = layer.analysis.reference_store {
            self.analysis.reference_store = v;
        }
        if let Some(v) = layer.reports.organisation {
            self.reports.organisation = v;
        }
        if let Some(v) = layer.reports.tsa_url {
            // An empty value (e.g. an environment variable set to "") turns it off.
            self.reports.tsa_url = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = layer.packaging.ladder {
            self.packaging.ladder = v;
        }
        if let Some(v) = layer.packaging.code {
            self.packaging.code = v;
        }
        if let Some(v) = layer.packaging.unit_seconds {
            self.packaging.unit_seconds = v;
        }
        if let Some(v) = layer.packaging.segment_units {
            self.packaging.segment_units = v;
        }
        if let Some(v) = layer.reports.tsa_certificate {
            self.reports.tsa_certificate = Some(v);
        }
        if let Some(v) = layer.reports.bundle_suspect {
            self.reports.bundle_suspect = v;
        }
        if let Some(v) = layer.metrics.token {
            self.metrics.token = Some(v);
        }
        if let Some(v) = layer.metrics.bind {
            self.metrics.bind = Some(v);
        }
        let (st, l) = (&mut self.storage, layer.storage);
        if let Some(v) = l.url {
            st.url = Some(v);
        }
        if let Some(v) = l.endpoint {
            st.endpoint = Some(v);
        }
        if let Some(v) = l.region {
            st.region = v;
        }
        if let Some(v) = l.cache_mib {
            st.cache_mib = v;
        }
        let (e, l) = (&mut self.evidence, layer.evidence);
        if let Some(v) = l.max_upload_bytes {
            e.max_upload_bytes = v;
        }
        if let Some(v) = l.inbox_dir {
            e.inbox_dir = Some(v);
        }
        if let Some(v) = l.callback_hosts {
            e.callback_hosts = v;
        }
        // The old names of the job settings, under `[evidence]`: still read, each noticed;
        // the new name wins within one layer.
        let old = [
            ("evidence.workers", "jobs.workers", l.workers.is_some()),
            (
                "evidence.job_lease_seconds",
                "jobs.lease_seconds",
                l.job_lease_seconds.is_some(),
            ),
            (
                "evidence.job_max_attempts",
                "jobs.max_attempts",
                l.job_max_attempts.is_some(),
            ),
        ];
        for (name, new, given) in old {
            if given {
                self.deprecations
                    .push(format!("{name} is deprecated and will go: use {new}"));
            }
        }
        let (j, l) = (
            &mut self.jobs,
            PartialJobs {
                workers: layer.jobs.workers.or(l.workers),
                lease_seconds: layer.jobs.lease_seconds.or(l.job_lease_seconds),
                max_attempts: layer.jobs.max_attempts.or(l.job_max_attempts),
            },
        );
        if let Some(v) = l.workers {
            j.workers = v;
        }
        if let Some(v) = l.lease_seconds {
            j.lease_seconds = v;
        }
        if let Some(v) = l.max_attempts {
            j.max_attempts = v;
        }
        self
    }

    /// The whole assembly: defaults, then the config file (the flag's, else
    /// `LEAKTRACE_CONFIG`'s, else none), then the environment, then the flags.
    pub fn assemble(
        config_file: Option<&Path>,
        env: &Env,
        flags: PartialConfig,
    ) -> Result<Config, ConfigError> {
        let env_file = env
            .get("LEAKTRACE_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let mut config = Config::default();
        if let Some(path) = config_file.map(Path::to_path_buf).or(env_file) {
            config = config.apply(PartialConfig::from_file(&path)?);
        }
        let config = config.apply(PartialConfig::from_env(env)?).apply(flags);
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(64..=65_536).contains(&self.limits.probe_memory_mib) {
            return Err(ConfigError::Value {
                key: "limits.probe_memory_mib".into(),
                message: "must be 64 to 65536".into(),
            });
        }
        if !(1..=720).contains(&self.monitoring.device_sign_in_hours) {
            return Err(ConfigError::Value {
                key: "monitoring.device_sign_in_hours".into(),
                message: "must be 1 to 720 (30 days)".into(),
            });
        }
        if self.monitoring.event_retention_days > 36_500 {
            return Err(ConfigError::Value {
                key: "monitoring.event_retention_days".into(),
                message: "must be at most 36500 (0 keeps events forever)".into(),
            });
        }
        formats::package::check_ladder(&self.packaging.ladder).map_err(|message| {
            ConfigError::Value {
                key: "packaging.ladder".into(),
                message,
            }
        })?;
        let packaging = &self.packaging;
        formats::package::check_unit_seconds(packaging.unit_seconds).map_err(|message| {
            ConfigError::Value {
                key: "packaging.unit_seconds".into(),
                message,
            }
        })?;
        formats::package::check_segment_units(packaging.unit_seconds, packaging.segment_units)
            .map_err(|message| ConfigError::Value {
                key: "packaging.segment_units".into(),
                message,
            })?;
        let org = self.reports.organisation.trim();
        if org.is_empty() || org.chars().count() > 120 || org.chars().any(char::is_control) {
            return Err(ConfigError::Value {
                key: "reports.organisation".into(),
                message: "must be 1 to 120 printable characters".into(),
            });
        }
        if let Some(tsa) = &self.reports.tsa_url {
            let parsed = url::Url::parse(tsa.trim()).ok();
            if !parsed.is_some_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.has_host() && u.password().is_none()
            }) {
                return Err(ConfigError::Value {
                    key: "reports.tsa_url".into(),
                    message: "must be an http:// or https:// URL of a timestamp authority, \
                              without a password in it"
                        .into(),
                });
            }
            if self.reports.tsa_certificate.is_none() {
                return Err(ConfigError::Value {
                    key: "reports.tsa_certificate".into(),
                    message: "is required with reports.tsa_url: the authority's certificate \
                              (or its CA), so that no one else's timestamps are accepted"
                        .into(),
                });
            }
        }
        if self.limits.max_media_seconds.is_nan() || self.limits.max_media_seconds <= 0.0 {
            return Err(ConfigError::Value {
                key: "limits.max_media_seconds".into(),
                message: "must be positive".into(),
            });
        }
        if self.jobs.lease_seconds == 0 || self.jobs.max_attempts == 0 {
            return Err(ConfigError::Value {
                key: "jobs.lease_seconds / jobs.max_attempts".into(),
                message: "must be at least 1".into(),
            });
        }
        let t = self.analysis.false_positive_threshold;
        if !(t > 0.0 && t < 1.0) {
            return Err(ConfigError::Value {
                key: "analysis.false_positive_threshold".into(),
                message: "must be between 0 and 1 (exclusive)".into(),
            });
        }
        let m = &self.monitoring;
        let positive = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::Value {
                    key: format!("monitoring.{key}"),
                    message: "must be a positive number".into(),
                })
            }
        };
        positive("ripping_burst_seconds", m.ripping_burst_seconds)?;
        positive("ripping_flag_speed", m.ripping_flag_speed)?;
        positive("ripping_limit_speed", m.ripping_limit_speed)?;
        if m.ripping_limit_speed < m.ripping_flag_speed {
            return Err(ConfigError::Value {
                key: "monitoring.ripping_limit_speed".into(),
                message: "must not be below ripping_flag_speed".into(),
            });
        }
        if m.max_concurrent_sessions == 0 || m.auth_failures_max == 0 {
            return Err(ConfigError::Value {
                key: "monitoring".into(),
                message: "max_concurrent_sessions and auth_failures_max must be at least 1".into(),
            });
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Value {
                key: "data_dir".into(),
                message: "must not be empty".into(),
            });
        }
        let address = |key: &str, v: &str| {
            v.parse::<std::net::SocketAddr>()
                .map(|_| ())
                .map_err(|_| ConfigError::Value {
                    key: key.into(),
                    message: format!("'{v}' is not an address and port such as 127.0.0.1:8080"),
                })
        };
        address("server.bind", &self.server.bind)?;
        if self.server.shutdown_grace_seconds > 3600 {
            return Err(ConfigError::Value {
                key: "server.shutdown_grace_seconds".into(),
                message: "must be at most 3600".into(),
            });
        }
        for host in &self.evidence.callback_hosts {
            let plain = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
            if !plain {
                return Err(ConfigError::Value {
                    key: "evidence.callback_hosts".into(),
                    message: format!(
                        "'{host}' is not a host or host:port (no scheme, path or spaces)"
                    ),
                });
            }
        }
        if self.server.segment_cache_mib > 1 << 20 {
            return Err(ConfigError::Value {
                key: "server.segment_cache_mib".into(),
                message: "must be at most 1048576 (1 TiB)".into(),
            });
        }
        if let Some(bind) = &self.metrics.bind {
            address("metrics.bind", bind)?;
            if *bind == self.server.bind {
                return Err(ConfigError::Value {
                    key: "metrics.bind".into(),
                    message: "must differ from server.bind (set metrics.token to serve /metrics on the main address)".into(),
                });
            }
        }
        if let Some(url) = &self.storage.url {
            let bucket = url
                .strip_prefix("s3://")
                .map(|r| r.split('/').next().unwrap_or(""));
            if bucket.is_none_or(str::is_empty) {
                return Err(ConfigError::Value {
                    key: "storage.url".into(),
                    message: format!("'{url}' is not s3://bucket or s3://bucket/prefix"),
                });
            }
        }
        if self.storage.cache_mib < 64 {
            return Err(ConfigError::Value {
                key: "storage.cache_mib".into(),
                message: "must be at least 64".into(),
            });
        }
        if let Some(token) = &self.metrics.token {
            let t = token.expose();
            if t.len() < METRICS_TOKEN_MIN_LEN || !t.chars().all(|c| c.is_ascii_graphic()) {
                return Err(ConfigError::Value {
                    key: "metrics.token".into(),
                    message: format!(
                        "must be at least {METRICS_TOKEN_MIN_LEN} printable ASCII characters without spaces"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Where the database is: the configured URL, else SQLite inside the data dir.
    pub fn database_target(&self) -> Result<DatabaseTarget, DbError> {
        match &self.database_url {
            Some(url) => DatabaseTarget::parse(url),
            None => Ok(DatabaseTarget::default_sqlite(&self.data_dir)),
        }
    }

    /// The effective configuration as TOML, secrets and database password redacted.
    pub fn to_redacted_toml(&self) -> String {
        let database_url = match self.database_target() {
            Ok(t) => t.redacted_url(),
            Err(e) => format!("<invalid: {e}>"),
        };
        let secret = |s: &Option<SecretString>, file: &str| match s {
            Some(_) => "<redacted: set by configuration>".to_string(),
            None => format!(
                "<redacted: kept in {}>",
                self.layout().secrets().join(file).display()
            ),
        };
        #[derive(Serialize)]
        struct View<'a> {
            data_dir: String,
            database_url: String,
            server: ServerView<'a>,
            log: LogView<'a>,
            secrets: SecretsView,
            limits: MediaLimits,
            monitoring: Monitoring,
            analysis: Analysis,
            evidence: EvidenceView<'a>,
            jobs: Jobs,
            packaging: &'a Packaging,
            reports: &'a Reports,
            metrics: MetricsView<'a>,
            storage: StorageView<'a>,
        }
        #[derive(Serialize)]
        struct StorageView<'a> {
            url: &'a str,
            endpoint: &'a str,
            region: &'a str,
            cache_mib: u64,
        }
        #[derive(Serialize)]
        struct MetricsView<'a> {
            token: &'a str,
            bind: &'a str,
        }
        #[derive(Serialize)]
        struct EvidenceView<'a> {
            max_upload_bytes: u64,
            inbox_dir: String,
            callback_hosts: &'a [String],
        }
        #[derive(Serialize)]
        struct ServerView<'a> {
            bind: &'a str,
            shutdown_grace_seconds: u64,
            segment_cache_mib: u64,
        }
        #[derive(Serialize)]
        struct LogView<'a> {
            format: LogFormat,
            level: &'a str,
        }
        #[derive(Serialize)]
        struct SecretsView {
            jwt_secret: String,
            master_key: String,
        }
        let doc = View {
            data_dir: self.data_dir.display().to_string(),
            database_url,
            server: ServerView {
                bind: &self.server.bind,
                shutdown_grace_seconds: self.server.shutdown_grace_seconds,
                segment_cache_mib: self.server.segment_cache_mib,
            },
            log: LogView {
                format: self.log.format,
                level: &self.log.level,
            },
            secrets: SecretsView {
                jwt_secret: secret(&self.secrets.jwt_secret, crate::secrets::JWT_KEY_FILE),
                master_key: secret(&self.secrets.master_key, crate::secrets::MASTER_KEY_FILE),
            },
            limits: self.limits,
            monitoring: self.monitoring,
            analysis: self.analysis,
            evidence: EvidenceView {
                max_upload_bytes: self.evidence.max_upload_bytes,
                inbox_dir: self.inbox_dir().display().to_string(),
                callback_hosts: &self.evidence.callback_hosts,
            },
            jobs: self.jobs,
            packaging: &self.packaging,
            reports: &self.reports,
            metrics: MetricsView {
                token: match self.metrics.token {
                    Some(_) => "<redacted: set by configuration>",
                    None => "<none: /metrics is not served on the main address>",
                },
                bind: self
                    .metrics
                    .bind
                    .as_deref()
                    .unwrap_or("<none: no metrics listener>"),
            },
            storage: StorageView {
                url: self
                    .storage
                    .url
                    .as_deref()
                    .unwrap_or("<none: the data dir alone>"),
                endpoint: self.storage.endpoint.as_deref().unwrap_or("<AWS>"),
                region: &self.storage.region,
                cache_mib: self.storage.cache_mib,
            },
        };
        toml::to_string(&doc).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write_file(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("leaktrace.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults_apply_without_any_layer() {
        let c = Config::assemble(None, &Env::new(), PartialConfig::default()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert_eq!(
            c.database_target().unwrap(),
            DatabaseTarget::default_sqlite(Path::new("data"))
        );
    }

    #[test]
    fn each_layer_overrides_the_one_below() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "data_dir = \"/srv/file\"\n[server]\nbind = \"127.0.0.1:1001\"\n[log]\nlevel = \"debug\"\nformat = \"json\"\n",
        );
        // File only.
        let c = Config::assemble(Some(&file), &Env::new(), PartialConfig::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/file"));
        assert_eq!(c.server.bind, "127.0.0.1:1001");
        assert_eq!(c.log.format, LogFormat::Json);
        // Environment over file.
        let e = env(&[
            ("LEAKTRACE_BIND", "127.0.0.1:1002"),
            ("LEAKTRACE_LOG_FORMAT", "human"),
        ]);
        let c = Config::assemble(Some(&file), &e, PartialConfig::default()).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:1002");
        assert_eq!(c.log.format, LogFormat::Human);
        assert_eq!(c.log.level, "debug", "file value kept where env is silent");
        // Flags over environment.
        let flags = PartialConfig {
            server: PartialServer {
                bind: Some("127.0.0.1:1003".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = Config::assemble(Some(&file), &e, flags).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:1003");
        assert_eq!(c.data_dir, PathBuf::from("/srv/file"));
    }

    #[test]
    fn config_file_may_come_from_the_environment_and_flag_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let fa = write_file(a.path(), "[server]\nbind = \"127.0.0.1:2001\"\n");
        let fb = write_file(b.path(), "[server]\nbind = \"127.0.0.1:2002\"\n");
        let e = env(&[("LEAKTRACE_CONFIG", fa.to_str().unwrap())]);
        let c = Config::assemble(None, &e, PartialConfig::default()).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:2001");
        let c = Config::assemble(Some(&fb), &e, PartialConfig::default()).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:2002");
    }

    #[test]
    fn relative_data_dir_in_file_is_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), "data_dir = \"store\"\n");
        let c = Config::assemble(Some(&file), &Env::new(), PartialConfig::default()).unwrap();
        assert_eq!(c.data_dir, dir.path().join("store"));
    }

    #[test]
    fn database_url_sources_and_precedence() {
        let e = env(&[("DATABASE_URL", "postgres://u:p@h/a")]);
        let c = Config::assemble(None, &e, PartialConfig::default()).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://u:p@h/a"));
        let e = env(&[
            ("DATABASE_URL", "postgres://u:p@h/a"),
            ("LEAKTRACE_DATABASE_URL", "postgres://u:p@h/b"),
        ]);
        let c = Config::assemble(None, &e, PartialConfig::default()).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://u:p@h/b"));
    }

    #[test]
    fn bad_layers_are_reported_with_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let unknown = write_file(dir.path(), "datadir = \"x\"\n");
        let err =
            Config::assemble(Some(&unknown), &Env::new(), PartialConfig::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("datadir"), "{err}");

        let missing = dir.path().join("nope.toml");
        let err =
            Config::assemble(Some(&missing), &Env::new(), PartialConfig::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");

        let e = env(&[("LEAKTRACE_LOG_FORMAT", "xml")]);
        let err = Config::assemble(None, &e, PartialConfig::default()).unwrap_err();
        assert!(err.to_string().contains("LEAKTRACE_LOG_FORMAT"), "{err}");

        let e = env(&[("LEAKTRACE_BIND", "localhost")]);
        let err = Config::assemble(None, &e, PartialConfig::default()).unwrap_err();
        assert!(err.to_string().contains("server.bind"), "{err}");
    }

    #[test]
    fn redacted_rendering_hides_secrets_and_passwords() {
        let e = env(&[
            ("DATABASE_URL", "postgres://u:hunter22@db/leak"),
            (
                "LEAKTRACE_JWT_SECRET",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            ),
        ]);
        let c = Config::assemble(None, &e, PartialConfig::default()).unwrap();
        let text = c.to_redacted_toml();
        assert!(!text.contains("hunter22"), "{text}");
        assert!(!text.contains("00112233"), "{text}");
        assert!(text.contains("set by configuration"), "{text}");
        assert!(text.contains("master.key"), "{text}");
        assert!(text.contains("db"), "{text}");
        assert!(!format!("{c:?}").contains("00112233"));
    }

    #[test]
    fn limits_come_from_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "[limits]\nmax_input_bytes = 1000\nmax_media_seconds = 60.0\n",
        );
        let e = env(&[("LEAKTRACE_MAX_PROCESSING_SECONDS", "30")]);
        let c = Config::assemble(Some(&file), &e, PartialConfig::default()).unwrap();
        assert_eq!(c.limits.max_input_bytes, 1000);
        assert_eq!(c.limits.max_media_seconds, 60.0);
        assert_eq!(c.limits.max_processing_seconds, 30);
        assert!(
            c.limits.isolate_probe,
            "uploads are checked in a child process by default"
        );
        assert_eq!(c.limits.probe_memory_mib, 2048);
        let off = env(&[
            ("LEAKTRACE_ISOLATE_PROBE", "false"),
            ("LEAKTRACE_PROBE_MEMORY_MIB", "512"),
        ]);
        let in_process = Config::assemble(None, &off, PartialConfig::default()).unwrap();
        assert!(!in_process.limits.isolate_probe);
        assert_eq!(in_process.limits.probe_memory_mib, 512);
        let tiny = env(&[("LEAKTRACE_PROBE_MEMORY_MIB", "8")]);
        assert!(Config::assemble(None, &tiny, PartialConfig::default()).is_err());
        let bad = env(&[("LEAKTRACE_MAX_INPUT_BYTES", "lots")]);
        let err = Config::assemble(None, &bad, PartialConfig::default()).unwrap_err();
        assert!(
            err.to_string().contains("LEAKTRACE_MAX_INPUT_BYTES"),
            "{err}"
        );
        assert!(c.to_redacted_toml().contains("max_input_bytes = 1000"));
    }

    #[test]
    fn monitoring_comes_from_file_and_environment_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "[monitoring]\nmax_concurrent_sessions = 4\nripping_action = \"revoke\"\n",
        );
        let e = env(&[
            ("LEAKTRACE_RIPPING_LIMIT_SPEED", "8"),
            ("LEAKTRACE_DEMO_API", "false"),
            ("LEAKTRACE_DEVICE_SIGN_IN_HOURS", "24"),
        ]);
        let c = Config::assemble(Some(&file), &e, PartialConfig::default()).unwrap();
        assert_eq!(c.monitoring.max_concurrent_sessions, 4);
        assert_eq!(c.monitoring.device_sign_in_hours, 24);
        assert_eq!(Config::default().monitoring.device_sign_in_hours, 12);
        assert_eq!(c.monitoring.ripping_action, RippingAction::Revoke);
        assert_eq!(c.monitoring.ripping_limit_speed, 8.0);
        assert!(!c.monitoring.demo_api);
        assert!(
            !Config::default().monitoring.demo_api,
            "the demo API is off unless asked for"
        );
        assert_eq!(c.monitoring.auth_failures_max, 5, "default kept");
        assert!(c.to_redacted_toml().contains("ripping_action = \"revoke\""));
        for (key, value) in [
            ("LEAKTRACE_RIPPING_ACTION", "ignore"),
            ("LEAKTRACE_RIPPING_FLAG_SPEED", "-1"),
            ("LEAKTRACE_RIPPING_FLAG_SPEED", "9"),
            ("LEAKTRACE_MAX_CONCURRENT_SESSIONS", "0"),
            ("LEAKTRACE_DEMO_API", "maybe"),
            ("LEAKTRACE_DEVICE_SIGN_IN_HOURS", "0"),
            ("LEAKTRACE_DEVICE_SIGN_IN_HOURS", "721"),
        ] {
            let err = Config::assemble(None, &env(&[(key, value)]), PartialConfig::default())
                .expect_err(value);
            assert!(
                err.to_string().contains("monitoring") || err.to_string().contains(key),
                "{err}"
            );
        }
    }

    #[test]
    fn job_settings_moved_to_jobs_and_the_old_names_still_count_with_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        let old = write_file(
            dir.path(),
            "[evidence]\nworkers = 3\njob_lease_seconds = 9\njob_max_attempts = 4\n",
        );
        let c = Config::assemble(Some(&old), &env(&[]), PartialConfig::default()).unwrap();
        assert_eq!(
            c.jobs,
            Jobs {
                workers: 3,
                lease_seconds: 9,
                max_attempts: 4
            }
        );
        assert_eq!(c.deprecations.len(), 3, "{:?}", c.deprecations);
        assert!(c.deprecations[0].contains("use jobs.workers"));
        // The new name wins over the old in one file; the environment over both.
        let both = write_file(
            dir.path(),
            "[evidence]\nworkers = 3\n[jobs]\nworkers = 2\nlease_seconds = 7\n",
        );
        let c = Config::assemble(Some(&both), &env(&[]), PartialConfig::default()).unwrap();
        assert_eq!((c.jobs.workers, c.jobs.lease_seconds), (2, 7));
        assert_eq!(c.deprecations.len(), 1);
        let c = Config::assemble(
            Some(&both),
            &env(&[("LEAKTRACE_WORKERS", "5")]),
            PartialConfig::default(),
        )
        .unwrap();
        assert_eq!(c.jobs.workers, 5);
        // The new names alone: no notice.
        let new = write_file(dir.path(), "[jobs]\nmax_attempts = 1\n");
        let c = Config::assemble(Some(&new), &env(&[]), PartialConfig::default()).unwrap();
        assert_eq!((c.jobs.max_attempts, c.deprecations.len()), (1, 0));
        let zero = write_file(dir.path(), "[jobs]\nlease_seconds = 0\n");
        assert!(Config::assemble(Some(&zero), &env(&[]), PartialConfig::default()).is_err());
        assert!(Config::default().to_redacted_toml().contains("[jobs]"));
    }

    #[test]
    fn the_reference_store_setting_comes_from_file_and_environment() {
        assert!(Config::default().analysis.reference_store);
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), "[analysis]\nreference_store = false\n");
        let c = Config::assemble(Some(&file), &Env::new(), PartialConfig::default()).unwrap();
        assert!(!c.analysis.reference_store);
        assert!(c.to_redacted_toml().contains("reference_store = false"));
        let on = env(&[("LEAKTRACE_REFERENCE_STORE", "true")]);
        let c = Config::assemble(Some(&file), &on, PartialConfig::default()).unwrap();
        assert!(
            c.analysis.reference_store,
            "the environment wins over the file"
        );
        let bad = env(&[("LEAKTRACE_REFERENCE_STORE", "sometimes")]);
        let err = Config::assemble(None, &bad, PartialConfig::default()).unwrap_err();
        assert!(
            err.to_string().contains("LEAKTRACE_REFERENCE_STORE"),
            "{err}"
        );
    }

    #[test]
    fn the_rendition_ladder_comes_from_file_or_environment_and_is_checked() {
        assert_eq!(Config::default().packaging.ladder, [1080, 720, 480, 360]);
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), "[packaging]\nladder = [480, 360]\n");
        let c = Config::assemble(Some(&file), &Env::new(), PartialConfig::default()).unwrap();
        assert_eq!(c.packaging.ladder, [480, 360]);
        let none = env(&[("LEAKTRACE_PACKAGING_LADDER", "none")]);
        let c = Config::assemble(Some(&file), &none, PartialConfig::default()).unwrap();
        assert!(c.packaging.ladder.is_empty(), "the environment wins");
        let e = env(&[("LEAKTRACE_PACKAGING_LADDER", "720, 540")]);
        let c = Config::assemble(None, &e, PartialConfig::default()).unwrap();
        assert_eq!(c.packaging.ladder, [720, 540]);
        for bad in ["720,abc", "481", "64", "1,2,3,4,5,6,7,8,9"] {
            let e = env(&[("LEAKTRACE_PACKAGING_LADDER", bad)]);
            let err = Config::assemble(None, &e, PartialConfig::default()).unwrap_err();
            assert!(err.to_string().contains("LADDER"), "{bad}: {err}");
        }
        let odd = write_file(dir.path(), "[packaging]\nladder = [481]\n");
        let err = Config::assemble(Some(&odd), &Env::new(), PartialConfig::default()).unwrap_err();
        assert!(err.to_string().contains("packaging.ladder"), "{err}");
    }

    #[test]
    fn the_packaging_defaults_come_from_file_or_environment_and_are_checked() {
        let d = Config::default().packaging;
        assert_eq!(
            (d.code, d.unit_seconds, d.segment_units),
            (CodeScheme::Uniform, 1.0, 1)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "[packaging]\ncode = \"tardos-v2\"\nunit_seconds = 0.5\nsegment_units = 2\n",
        );
        let c = Config::assemble(Some(&file), &Env::new(), PartialConfig::default()).unwrap();
        let p = &c.packaging;
        assert_eq!(
            (p.code, p.unit_seconds, p.segment_units),
            (CodeScheme::Tardos, 0.5, 2)
        );
        let shown = c.to_redacted_toml();
        assert!(
            shown.contains("code = \"tardos-v2\"") && shown.contains("segment_units = 2"),
            "{shown}"
        );
        let e = env(&[
            ("LEAKTRACE_PACKAGING_CODE", "uniform-v1"),
            ("LEAKTRACE_PACKAGING_UNIT_SECONDS", "2"),
            ("LEAKTRACE_PACKAGING_SEGMENT_UNITS", "1"),
        ]);
        let c = Config::assemble(Some(&file), &e, PartialConfig::default()).unwrap();
        let p = &c.packaging;
        assert_eq!(
            (p.code, p.unit_seconds, p.segment_units),
            (CodeScheme::Uniform, 2.0, 1),
            "the environment wins"
        );
        // Each refusal names the setting that is wrong.
        for (vars, key) in [
            (
                &[("LEAKTRACE_PACKAGING_CODE", "tardos")][..],
                "LEAKTRACE_PACKAGING_CODE",
            ),
            (
                &[("LEAKTRACE_PACKAGING_UNIT_SECONDS", "0.25")],
                "packaging.unit_seconds",
            ),
            (
                &[("LEAKTRACE_PACKAGING_UNIT_SECONDS", "often")],
                "LEAKTRACE_PACKAGING_UNIT_SECONDS",
            ),
            (
                &[("LEAKTRACE_PACKAGING_SEGMENT_UNITS", "3")],
                "packaging.segment_units",
            ),
            (
                &[
                    ("LEAKTRACE_PACKAGING_UNIT_SECONDS", "3"),
                    ("LEAKTRACE_PACKAGING_SEGMENT_UNITS", "2"),
                ],
                "packaging.segment_units",
            ),
        ] {
            let err = Config::assemble(None, &env(vars), PartialConfig::default()).unwrap_err();
            assert!(err.to_string().contains(key), "{vars:?}: {err}");
        }
        let bad = write_file(dir.path(), "[packaging]\ncode = \"v3\"\n");
        assert!(Config::assemble(Some(&bad), &Env::new(), PartialConfig::default()).is_err());
    }

    #[test]
    fn a_timestamp_authority_comes_from_file_or_environment_and_must_be_http() {
        assert_eq!(Config::default().reports.tsa_url, None);
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "[reports]\ntsa_url = \"https://tsa.example/tsr\"\ntsa_certificate = \"tsa.pem\"\n",
        );
        let c = Config::assemble(Some(&file), &Env::new(), PartialConfig::default()).unwrap();
        assert_eq!(
            c.reports.tsa_certificate.as_deref(),
            Some(dir.path().join("tsa.pem").as_path()),
            "relative to the file"
        );
        assert_eq!(
            c.reports.tsa_url.as_deref(),
            Some("https://tsa.example/tsr")
        );
        assert!(c
            .to_redacted_toml()
            .contains("tsa_url = \"https://tsa.example/tsr\""));
        let e = env(&[("LEAKTRACE_REPORTS_TSA_URL", "http://127.0.0.1:3180/")]);
        let c = Config::assemble(Some(&file), &e, PartialConfig::default()).unwrap();
        assert_eq!(c.reports.tsa_url.as_deref(), Some("http://127.0.0.1:3180/"));
        let alone = env(&[("LEAKTRACE_REPORTS_TSA_URL", "https://tsa.example/")]);
        let err = Config::assemble(None, &alone, PartialConfig::default()).unwrap_err();
        assert!(err.to_string().contains("reports.tsa_certificate"), "{err}");
        let off = write_file(dir.path(), "[reports]\ntsa_url = \"\"\n");
        let c = Config::assemble(Some(&off), &Env::new(), PartialConfig::default()).unwrap();
        assert_eq!(c.reports.tsa_url, None, "an empty value turns it off");
        for bad in [
            "ftp://tsa.example/",
            "tsa.example",
            "https://user:pw@tsa.example/",
        ] {
            let e = env(&[
                ("LEAKTRACE_REPORTS_TSA_URL", bad),
                ("LEAKTRACE_REPORTS_TSA_CERTIFICATE", "/etc/tsa.pem"),
            ]);
            let err = Config::assemble(None, &e, PartialConfig::default()).unwrap_err();
            assert!(err.to_string().contains("reports.tsa_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn storage_is_the_data_dir_unless_a_bucket_is_named() {
        assert_eq!(Config::default().storage.url, None);
        let e = env(&[
            ("LEAKTRACE_STORAGE_URL", "s3://titles/prod"),
            ("LEAKTRACE_STORAGE_ENDPOINT", "http://127.0.0.1:3900"),
            ("LEAKTRACE_STORAGE_REGION", "garage"),
            ("LEAKTRACE_STORAGE_CACHE_MIB", "512"),
        ]);
        let c = Config::assemble(None, &e, PartialConfig::default()).unwrap();
        assert_eq!(c.storage.url.as_deref(), Some("s3://titles/prod"));
        assert_eq!(
            (c.storage.region.as_str(), c.storage.cache_mib),
            ("garage", 512)
        );
        assert!(c.to_redacted_toml().contains("s3://titles/prod"));
        for (key, value) in [
            ("LEAKTRACE_STORAGE_URL", "titles"),
            ("LEAKTRACE_STORAGE_URL", "s3:///prefix"),
            ("LEAKTRACE_STORAGE_CACHE_MIB", "1"),
        ] {
            let err = Config::assemble(None, &env(&[(key, value)]), PartialConfig::default())
                .unwrap_err();
            assert!(err.to_string().contains("storage."), "{value}: {err}");
        }
    }

    #[test]
    fn metrics_are_off_unless_a_token_or_a_listener_is_set() {
        let c = Config::default();
        assert_eq!(c.metrics, MetricsConfig::default());
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "[metrics]\ntoken = \"file-token-0123456789\"\nbind = \"127.0.0.1:9464\"\n",
        );
        let c = Config::assemble(Some(&file), &Env::new(), PartialConfig::default()).unwrap();
        assert_eq!(c.metrics.bind.as_deref(), Some("127.0.0.1:9464"));
        let shown = c.to_redacted_toml();
        assert!(!shown.contains("file-token"), "{shown}");
        assert!(shown.contains("127.0.0.1:9464"), "{shown}");
        let over = env(&[("LEAKTRACE_METRICS_TOKEN", "env-token-0123456789")]);
        let c = Config::assemble(Some(&file), &over, PartialConfig::default()).unwrap();
        assert_eq!(
            c.metrics.token.as_ref().map(SecretString::expose),
            Some("env-token-0123456789")
        );
        for (key, value, named) in [
            ("LEAKTRACE_METRICS_TOKEN", "short", "metrics.token"),
            (
                "LEAKTRACE_METRICS_TOKEN",
                "has a space 0123456789",
                "metrics.token",
            ),
            ("LEAKTRACE_METRICS_BIND", "localhost", "metrics.bind"),
            ("LEAKTRACE_METRICS_BIND", DEFAULT_BIND, "metrics.bind"),
        ] {
            let err = Config::assemble(None, &env(&[(key, value)]), PartialConfig::default())
                .unwrap_err();
            assert!(err.to_string().contains(named), "{value}: {err}");
        }
    }

    #[test]
    fn the_documented_example_file_is_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/leaktrace.example.toml");
        let c = Config::assemble(Some(&example), &Env::new(), PartialConfig::default()).unwrap();
        assert_eq!(c.server.bind, DEFAULT_BIND);
        assert_eq!(c.data_dir, example.parent().unwrap().join("data"));
        assert_eq!(c.packaging, Packaging::default(), "it shows the defaults");
    }
}
