//! The command line, as docs/PROTOCOL.md and the README document it. Global flags form the
//! top configuration layer.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use shared::config::{LogFormat, PartialConfig, PartialLog, PartialServer};
use shared::domain::Role;

#[derive(Debug, Parser)]
#[command(
    name = "leaktrace",
    version,
    about = "Protected video streaming with forensic leak tracing"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Folder for media, secrets, uploads, reports and the default SQLite database [default: ./data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// postgres://user:password@host:port/db for PostgreSQL, or a SQLite file path
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// A TOML configuration file (also LEAKTRACE_CONFIG)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: human (default) or json
    #[arg(long, global = true, value_name = "FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. info or leaktrace=debug
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations
    Migrate,
    /// Manage users
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API keys for crawlers
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Package a title: embed the forensic watermark, write A/B CMAF units
    Package(PackageArgs),
    /// Analyse a suspect copy: find the title, extract the watermark, name the leaking session
    /// (records a case)
    Extract(ExtractArgs),
    /// Print the effective configuration (secrets redacted)
    Config,
    /// Issue the signed PDF evidence report of a finished case
    Report {
        case_id: String,
        /// Where to write it [default: reports/CASE_ID.pdf]
        #[arg(long, value_name = "PATH")]
        out: Option<std::path::PathBuf>,
    },
    /// Write the evidence bundle of a finished case: a zip with the signed report, the case's
    /// audit entries, the CA certificate, the suspect's hash (and the file when
    /// `reports.bundle_suspect` allows), and a signed manifest of them all
    Bundle {
        case_id: String,
        /// Where to write it [default: bundles/CASE_ID.zip]
        #[arg(long, value_name = "PATH")]
        out: Option<std::path::PathBuf>,
    },
    /// Check an evidence bundle offline (no database, no server): exit status 0 when every
    /// check passes against the CA given with --ca, 1 when one fails, 2 when the file is no
    /// zip, 3 when every check passes but only against the CA inside the bundle
    VerifyBundle {
        file: std::path::PathBuf,
        /// The deployment's CA certificate (PEM), obtained apart from the bundle
        /// (`/api/reports/ca.pem`); without it, the CA in the bundle is used and its
        /// fingerprint printed to compare
        #[arg(long, value_name = "PEM")]
        ca: Option<std::path::PathBuf>,
        /// The timestamp authority's certificate or its CA (PEM): timestamps must be signed
        /// under it; without it, their authority is only shown by fingerprint
        #[arg(long, value_name = "PEM")]
        tsa_cert: Option<std::path::PathBuf>,
        /// Print the checks as JSON
        #[arg(long)]
        json: bool,
    },
    /// Run analysis workers only (no HTTP): they share the job queue with every other worker
    /// and server on the same database
    Worker {
        /// Worker threads [default: 1]
        #[arg(long, default_value_t = 1, value_name = "N")]
        threads: u32,
    },
    /// Internal: check an uploaded file in a child process with resource limits (run by the
    /// server itself when `limits.isolate_probe` is on)
    #[command(hide = true, name = "probe-media")]
    ProbeMedia(ProbeArgs),
    /// Find what crashes left behind (unfinished packagings, cut-off uploads, scratch files,
    /// files no row names, stale job leases, a broken audit chain); exit 1 while any remains
    Doctor {
        /// Remove what can be removed (every file or folder finding)
        #[arg(long)]
        clean: bool,
        /// Leave alone files changed within this many seconds (work under way elsewhere)
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        grace_seconds: u64,
        /// Print the findings as JSON
        #[arg(long)]
        json: bool,
    },
    /// The evidence audit trail
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Where titles, uploads and reports live (`storage.url`)
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Run the HTTP server
    Serve {
        /// Address and port to listen on [default: 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The suspect video (any format FFmpeg reads)
    pub suspect: PathBuf,
    /// Compare with this title only (default: find the title among all packaged ones)
    #[arg(long = "video", value_name = "ID")]
    pub video: Option<String>,
    /// Print one JSON object: the extract JSON of docs/PROTOCOL.md
    #[arg(long)]
    pub json: bool,
}

/// A rendition ladder given on the command line (one value, so that clap does not take the
/// heights for repeated arguments).
#[derive(Debug, Clone)]
pub struct Ladder(pub Vec<u32>);

impl Ladder {
    fn parse(text: &str) -> Result<Ladder, String> {
        formats::package::parse_ladder(text).map(Ladder)
    }
}

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Any video FFmpeg reads (mp4, mkv, webm, MPEG-2, ...)
    pub input: PathBuf,
    /// The title viewers see; must be unique
    #[arg(long)]
    pub title: String,
    /// Length of one watermark unit (one bit of a session's code), 0.5 to 4 seconds
    /// [default: packaging.unit_seconds, 1]
    #[arg(long, value_name = "SECONDS")]
    pub unit_seconds: Option<f64>,
    /// Watermark units per segment (one closed GOP): 1, or 2 (every segment in four variants,
    /// so half-second units keep GOPs of two units, for twice the encoding time and storage);
    /// unit-seconds x segment-units at most 4 [default: packaging.segment_units, 1]
    #[arg(long, value_name = "1|2")]
    pub segment_units: Option<u32>,
    /// libx264 constant rate factor of both variants
    #[arg(long, default_value_t = forensics::media::encode::DEFAULT_CRF)]
    pub crf: u8,
    /// libx264 preset of both variants
    #[arg(long, default_value = forensics::media::encode::DEFAULT_PRESET)]
    pub preset: String,
    /// Watermark strength (luma levels at unit mask gain); higher is more robust, less invisible
    #[arg(long, default_value_t = forensics::watermark::embed::DEFAULT_STRENGTH)]
    pub strength: f32,
    /// How the sessions' codes are built: uniform-v1 (unbiased bits, strongest for a single
    /// leaker) or tardos-v2 (biased bits that colluders mixing copies cannot cancel)
    /// [default: packaging.code, uniform-v1]
    #[arg(long, value_name = "uniform-v1|tardos-v2")]
    pub code: Option<formats::codes::CodeScheme>,
    /// Lower renditions for adaptive streaming, by height (e.g. 720,480,360), or none: each
    /// in both variants, scaled from the marked frames; heights at or above the source's are
    /// left out [default: packaging.ladder, 1080,720,480,360]
    #[arg(long, value_name = "HEIGHTS|none", value_parser = Ladder::parse)]
    pub ladder: Option<Ladder>,
    /// Print one JSON object instead of a summary
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (password from --password-stdin or LEAKTRACE_PASSWORD)
    Add {
        name: String,
        /// viewer, analyst, legal or admin
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users
    List,
    /// Prevent a user from signing in
    Disable { name: String },
    /// Allow a disabled user to sign in again
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Upload everything this data dir holds (titles and their reference stores, suspects,
    /// reports, sources of queued packagings) into the bucket `storage.url` names
    Migrate {
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain; prints the head hash, or where the chain breaks (exit 1)
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key; it is printed once, alone on the last line
    Create { name: String },
    /// List keys (never the keys themselves)
    List,
    /// Revoke a key
    Revoke { name: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
        .map_err(|e: shared::domain::ValidationError| e.to_string())
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    s.parse()
}

impl Cli {
    /// The flags' configuration layer (the topmost).
    pub fn config_layer(&self) -> PartialConfig {
        let bind = match &self.command {
            Command::Serve { bind } => bind.clone(),
            _ => None,
        };
        PartialConfig {
            data_dir: self.global.data_dir.clone(),
            database_url: self.global.database_url.clone(),
            server: PartialServer {
                bind,
                ..Default::default()
            },
            log: PartialLog {
                format: self.global.log_format,
                level: self.global.log_level.clone(),
            },
            ..Default::default()
        }
    }
}

/// The limits of `leaktrace probe-media` (see `crate::probe`).
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    #[arg(long)]
    pub memory_bytes: u64,
    #[arg(long)]
    pub cpu_seconds: u64,
    #[arg(long)]
    pub max_input_bytes: u64,
    #[arg(long)]
    pub max_media_seconds: f64,
    #[arg(long)]
    pub wall_seconds: u64,
    pub file: std::path::PathBuf,
}

impl ProbeArgs {
    pub fn limits(&self) -> crate::probe::ChildLimits {
        crate::probe::ChildLimits {
            memory_bytes: self.memory_bytes,
            cpu_seconds: self.cpu_seconds,
            media: forensics::media::decode::Limits {
                max_input_bytes: self.max_input_bytes,
                max_duration_seconds: self.max_media_seconds,
                max_wall_time: std::time::Duration::from_secs(self.wall_seconds),
            },
        }
    }
}
