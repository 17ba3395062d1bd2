//! Helpers for end-to-end tests of the `leaktrace` binary: a private data dir and database
//! per test (SQLite or PostgreSQL, as `LEAKTRACE_TEST_BACKEND` asks), and a way to run the
//! real binary or a real server.

#![allow(dead_code)]

pub mod media;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use shared::db::Db;
use shared::testing::TestDatabase;

/// Environment variables of the developer's shell that must not leak into a test run.
const SCRUBBED_ENV: &[&str] = &[
    "DATABASE_URL",
    "LEAKTRACE_CONFIG",
    "LEAKTRACE_DATA_DIR",
    "LEAKTRACE_DATABASE_URL",
    "LEAKTRACE_BIND",
    "LEAKTRACE_LOG_FORMAT",
    "LEAKTRACE_LOG_LEVEL",
    "LEAKTRACE_JWT_SECRET",
    "LEAKTRACE_MASTER_KEY",
    "LEAKTRACE_PASSWORD",
];

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub database: TestDatabase,
}

impl Harness {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        Harness {
            dir,
            data_dir,
            database: TestDatabase::new(),
        }
    }

    /// The binary with this test's data dir and database.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_leaktrace"));
        for k in SCRUBBED_ENV {
            c.env_remove(k);
        }
        c.current_dir(self.dir.path())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--database-url")
            .arg(&self.database.url)
            .stdin(Stdio::null());
        c
    }

    /// Runs the binary with `args` and optional standard input.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut c = self.cmd();
        c.args(args);
        run_command(c, stdin)
    }

    /// The test's database, opened directly (for checking what the binary wrote).
    pub fn db(&self) -> Db {
        self.database.open()
    }

    /// Starts `leaktrace serve` on a free port and waits until it listens.
    pub fn serve(&self, extra: &[&str]) -> Server {
        let mut c = self.cmd();
        c.args(["--log-level", "warn", "serve", "--bind", "127.0.0.1:0"])
            .args(extra);
        Server::start(c)
    }
}

pub fn bare_cmd(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leaktrace"));
    for k in SCRUBBED_ENV {
        c.env_remove(k);
    }
    c.current_dir(dir).stdin(Stdio::null());
    c
}

pub fn run_command(mut c: Command, stdin: Option<&str>) -> Run {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().expect("spawn leaktrace");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    Run(child.wait_with_output().expect("wait for leaktrace"))
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(
            self.code(),
            0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    #[track_caller]
    pub fn fails_with(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr()
        );
        self
    }
}

/// A running `leaktrace serve`; killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(mut c: Command) -> Server {
        c.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = c.spawn().expect("spawn leaktrace serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("leaktrace listening on ") {
                    let _ = tx.send(rest.trim_end_matches('/').to_string());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(base) = rx.recv_timeout(Duration::from_millis(100)) {
                return Server { child, base };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("leaktrace serve exited early: {status}");
            }
            assert!(Instant::now() < deadline, "server did not start in time");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer, whatever its status.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn request(method: &str, url: &str) -> Reply {
    send(method, url, None, None)
}

pub fn get(url: &str) -> Reply {
    request("GET", url)
}

/// Sends a request with an optional bearer token and JSON body; any status is returned.
pub fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Reply {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    Reply {
        status: resp.status(),
        content_type: resp.header("content-type").unwrap_or_default().to_string(),
        body: resp.into_string().expect("body"),
    }
}

impl Reply {
    /// Asserts the documented error shape with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{}", self.body);
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}
