//! Helpers for end-to-end tests of the `leaktrace` binary: a private data dir and database
//! per test (SQLite or PostgreSQL, as `LEAKTRACE_TEST_BACKEND` asks), and a way to run the
//! real binary or a real server.

#![allow(dead_code)]

pub mod browser;
pub mod contract;
pub mod evidence;
pub mod garage;
pub mod jobs;
pub mod leaks;
pub mod loopback;
pub mod media;
pub mod viewer;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use shared::db::Db;
use shared::testing::TestDatabase;

/// Removes the developer's shell settings (`LEAKTRACE_*`, `DATABASE_URL`) from a command, so
/// that only what the test sets reaches the binary.
fn scrub_env(c: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if name.starts_with("LEAKTRACE_") || name == "DATABASE_URL" {
            c.env_remove(&k);
        }
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub database: std::rc::Rc<TestDatabase>,
    /// Environment every command of this harness gets (`LEAKTRACE_*`, `AWS_*`).
    env: Vec<(String, String)>,
}

/// The bucket every harness puts its deployment in when the run asks for one
/// (`LEAKTRACE_TEST_STORAGE_URL`, e.g. `s3://leaktrace`, with `LEAKTRACE_TEST_STORAGE_ENDPOINT`,
/// `LEAKTRACE_TEST_STORAGE_KEY_ID` and `LEAKTRACE_TEST_STORAGE_SECRET`: scripts/test.sh runs
/// the suite a second time so, against one Garage), each under a prefix of its own; none when
/// unset (the data dir alone, the default).
fn test_bucket_env() -> Vec<(String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(url) = var("LEAKTRACE_TEST_STORAGE_URL") else {
        return Vec::new();
    };
    let prefix = format!("t{:016x}", rand::random::<u64>());
    let mut env = vec![(
        "LEAKTRACE_STORAGE_URL".to_string(),
        format!("{}/{prefix}", url.trim_end_matches('/')),
    )];
    for (from, to) in [
        (
            "LEAKTRACE_TEST_STORAGE_ENDPOINT",
            "LEAKTRACE_STORAGE_ENDPOINT",
        ),
        ("LEAKTRACE_TEST_STORAGE_REGION", "LEAKTRACE_STORAGE_REGION"),
        ("LEAKTRACE_TEST_STORAGE_KEY_ID", "AWS_ACCESS_KEY_ID"),
        ("LEAKTRACE_TEST_STORAGE_SECRET", "AWS_SECRET_ACCESS_KEY"),
    ] {
        if let Some(v) = var(from) {
            env.push((to.to_string(), v));
        }
    }
    env
}

/// True when this run keeps every harness's files in a bucket (see [`test_bucket_env`]): a
/// test of what the data dir alone does (a file removed from it stays removed) says so and
/// returns early.
pub fn bucket_run() -> bool {
    std::env::var("LEAKTRACE_TEST_STORAGE_URL").is_ok_and(|v| !v.is_empty())
}

impl Harness {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        Harness {
            dir,
            data_dir,
            database: std::rc::Rc::new(TestDatabase::new()),
            env: test_bucket_env(),
        }
    }

    /// A harness whose files stay in its data dir whatever the run asks for: the tests that
    /// bring their own bucket, or that need a deployment without one.
    pub fn folder() -> Self {
        let mut h = Harness::new();
        h.env.clear();
        h
    }

    /// The bucket behind this harness's data dir, when its deployment has one.
    pub fn bucket(&self) -> Option<storage::Storage> {
        let get = |name: &str| {
            self.env
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let url = get("LEAKTRACE_STORAGE_URL")?;
        let settings = storage::Settings {
            url: Some(url),
            endpoint: get("LEAKTRACE_STORAGE_ENDPOINT"),
            region: get("LEAKTRACE_STORAGE_REGION").unwrap_or_else(|| "us-east-1".into()),
            cache_bytes: 1 << 30,
            credentials: get("AWS_ACCESS_KEY_ID").zip(get("AWS_SECRET_ACCESS_KEY")),
        };
        Some(storage::Storage::open(&settings, &self.data_dir).expect("open the bucket"))
    }

    /// Every command of this harness also gets `env`.
    pub fn with_env(mut self, env: &[(String, String)]) -> Self {
        self.env.extend(env.iter().cloned());
        self
    }

    /// Another machine of the same deployment: its own data dir (so its own files), the same
    /// database and environment.
    pub fn another_machine(&self) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        Harness {
            dir,
            data_dir,
            database: self.database.clone(),
            env: self.env.clone(),
        }
    }

    /// The binary with this test's data dir and database.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_leaktrace"));
        scrub_env(&mut c);
        c.current_dir(self.dir.path())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--database-url")
            .arg(&self.database.url)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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
        self.serve_with_env(extra, &[])
    }

    /// [`Harness::serve`] with extra environment (`LEAKTRACE_*` settings).
    pub fn serve_with_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut c = self.cmd();
        c.args(["--log-level", "warn", "serve", "--bind", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied());
        Server::start(c)
    }

    /// Packages `input` as `title` through the CLI (`extra`: more package flags); returns
    /// the command's JSON object.
    pub fn package(&self, input: &Path, title: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec![
            "package",
            input.to_str().unwrap(),
            "--title",
            title,
            "--json",
        ];
        args.extend(extra);
        let out = self.run(&args, None);
        out.success();
        let line = out.stdout();
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("--json output ({e}): {line}"))
    }

    /// Adds a user with `role` and `password` through the CLI.
    pub fn add_user(&self, name: &str, role: &str, password: &str) {
        self.run(
            &["user", "add", name, "--role", role, "--password-stdin"],
            Some(&format!("{password}\n")),
        )
        .success();
    }

    /// A server secret kept as hex in the data dir (`master.key`, `jwt.key`).
    pub fn secret_key(&self, file: &str) -> Vec<u8> {
        hex_file(&self.data_dir.join("secrets").join(file))
    }

    /// The master key.
    pub fn master_key(&self) -> [u8; 32] {
        self.secret_key("master.key")
            .try_into()
            .expect("a 32-byte master key")
    }
}

/// The bytes of a file holding one hex string.
pub fn hex_file(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("key file");
    hex::decode(text.trim()).expect("hex key")
}

pub fn bare_cmd(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leaktrace"));
    scrub_env(&mut c);
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

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        terminate(&self.child);
    }

    /// Waits up to `limit` for the process to exit; its status, `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        wait_exit(&mut self.child, limit)
    }
}

/// Sends SIGTERM to `child`.
pub fn terminate(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -TERM failed");
}

/// Waits up to `limit` for `child` to exit.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
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
    pub retry_after: Option<u64>,
    /// The `Link` header (a list's next page).
    pub link: Option<String>,
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
    reply(method, result).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// The reply of a finished `method` request, whatever its status; `Err` when there was none.
/// Every reply is checked against the OpenAPI document (see [`contract`]).
pub fn reply(method: &str, result: Result<ureq::Response, ureq::Error>) -> Result<Reply, String> {
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let url = resp.get_url().to_string();
    let reply = Reply {
        status: resp.status(),
        content_type: resp.header("content-type").unwrap_or_default().to_string(),
        retry_after: resp.header("retry-after").and_then(|v| v.parse().ok()),
        link: resp.header("link").map(str::to_string),
        body: resp.into_string().expect("body"),
    };
    contract::check(method, &url, reply.status, &reply.content_type, &reply.body);
    Ok(reply)
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

/// A GET sent byte for byte as given (no URL normalisation: `..` and `%2e` stay as written),
/// for probing how the server treats hostile paths.
pub fn raw_get(server: &Server, path: &str) -> Reply {
    use std::io::Read;
    let host = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    Reply {
        status,
        content_type: header("content-type").unwrap_or_default(),
        retry_after: header("retry-after").and_then(|v| v.parse().ok()),
        link: header("link"),
        body: body.to_string(),
    }
}
