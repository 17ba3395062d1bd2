//! A real browser for end-to-end tests: Debian's headless Chromium driven over the W3C
//! WebDriver protocol by `chromedriver` (both from apt, installed by the test script). The
//! client is the few commands the tests use, synchronous like the rest of the helpers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// WebDriver's codes for the Tab and Enter keys, for `type_into`.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

/// The key W3C WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A page element found by the driver.
#[derive(Clone, Debug)]
pub struct Element(String);

/// One browser (its own profile and download folder) and its driver; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
    pub downloads: PathBuf,
    pub artefacts: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn answer(result: Result<ureq::Response, ureq::Error>, what: &str) -> Value {
    match try_answer(result, what) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// The driver's answer, or its error as text. An element the page re-rendered between
/// finding and reading it answers "stale element reference": `is_stale` tells.
fn try_answer(result: Result<ureq::Response, ureq::Error>, what: &str) -> Result<Value, String> {
    let text = match result {
        Ok(r) => r.into_string().expect("driver answer"),
        Err(ureq::Error::Status(code, r)) => {
            let body = r.into_string().unwrap_or_default();
            return Err(format!("webdriver {what}: HTTP {code}: {body}"));
        }
        Err(e) => panic!("webdriver {what}: {e}"),
    };
    let v: Value = serde_json::from_str(&text).expect("driver JSON");
    Ok(v["value"].clone())
}

fn is_stale(error: &str) -> bool {
    error.contains("stale element reference") || error.contains("no such element")
}

impl Browser {
    /// Starts Chromium at `width` x `height` CSS pixels. Screenshots go to
    /// `target/browser-artefacts/<test>/`.
    pub fn start(test: &str, width: u32, height: u32) -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/test.sh installs chromium and chromium-driver"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = ureq::get(&format!("{base}/status"))
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == json!(true));
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("downloads dir");
        let artefacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("../browser-artefacts")
            .join(test);
        std::fs::create_dir_all(&artefacts).expect("artefacts dir");
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            format!("--window-size={width},{height}"),
            format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let started = answer(
            ureq::post(&format!("{base}/session")).send_json(caps),
            "new session",
        );
        let session = started["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        let b = Browser {
            driver,
            base,
            session,
            _profile: profile,
            downloads,
            artefacts,
        };
        b.cmd(
            "POST",
            "timeouts",
            json!({"script": 60_000, "pageLoad": 60_000, "implicit": 0}),
        );
        b
    }

    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        match self.try_cmd(method, path, body) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    fn try_cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(120));
        let result = if method == "GET" {
            req.call()
        } else {
            req.send_json(body)
        };
        try_answer(result, path)
    }

    /// Whether `e` is displayed; `None` when the page replaced it since it was found.
    fn displayed(&self, e: &Element) -> Option<bool> {
        match self.try_cmd("GET", &format!("element/{}/displayed", e.0), json!({})) {
            Ok(v) => Some(v == json!(true)),
            Err(e) if is_stale(&e) => None,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "url", json!({ "url": url }));
    }

    /// The first element matching `css`, if any.
    pub fn try_find(&self, css: &str) -> Option<Element> {
        let url = format!("{}/session/{}/elements", self.base, self.session);
        let found = answer(
            ureq::post(&url).send_json(json!({"using": "css selector", "value": css})),
            "find",
        );
        found
            .as_array()
            .and_then(|a| a.first())
            .and_then(|e| e[ELEMENT].as_str())
            .map(|id| Element(id.to_string()))
    }

    /// Waits (up to `limit`) for an element matching `css` that is displayed.
    pub fn wait_for(&self, css: &str, limit: Duration) -> Element {
        let deadline = Instant::now() + limit;
        loop {
            // Panels re-render as playback statistics arrive: an element replaced between
            // finding and asking is looked up again.
            if let Some(e) = self.try_find(css) {
                if self.displayed(&e) == Some(true) {
                    return e;
                }
            }
            if Instant::now() > deadline {
                self.screenshot("timeout");
                panic!(
                    "no visible {css} after {limit:?}; page log:\n{}",
                    self.console_log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The text of the displayed element matching `css`, read as one step: when the page
    /// re-renders it between finding and reading, it is found again (up to `limit`).
    pub fn wait_for_text(&self, css: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let e = self.wait_for(css, deadline.saturating_duration_since(Instant::now()));
            match self.try_cmd("GET", &format!("element/{}/text", e.0), json!({})) {
                Ok(v) => return v.as_str().unwrap_or_default().to_string(),
                Err(err) if is_stale(&err) && Instant::now() <= deadline => {}
                Err(err) => panic!("{err}"),
            }
        }
    }

    /// `css` by its `data-testid`.
    pub fn testid(id: &str) -> String {
        format!("[data-testid=\"{id}\"]")
    }

    /// Empties a field.
    pub fn clear(&self, e: &Element) {
        self.cmd("POST", &format!("element/{}/clear", e.0), json!({}));
    }

    /// The element that has the keyboard focus.
    pub fn active(&self) -> Element {
        let v = self.cmd("GET", "element/active", json!({}));
        Element(v[ELEMENT].as_str().expect("a focused element").to_string())
    }

    pub fn click(&self, e: &Element) {
        self.cmd("POST", &format!("element/{}/click", e.0), json!({}));
    }

    /// Types `text` into a field (or, for a file input, chooses the file at that path).
    pub fn type_into(&self, e: &Element, text: &str) {
        self.cmd(
            "POST",
            &format!("element/{}/value", e.0),
            json!({ "text": text }),
        );
    }

    pub fn text(&self, e: &Element) -> String {
        self.cmd("GET", &format!("element/{}/text", e.0), json!({}))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and answers its return value.
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// A Chrome DevTools protocol command (through chromedriver's `goog/cdp/execute`).
    pub fn cdp(&self, command: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "goog/cdp/execute",
            json!({ "cmd": command, "params": params }),
        )
    }

    /// Runs an asynchronous `script`: it calls `arguments[arguments.length - 1]` with its
    /// result.
    pub fn exec_async(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "execute/async",
            json!({ "script": script, "args": args }),
        )
    }

    /// Waits (up to `limit`) until `script` returns true.
    pub fn wait_until(&self, what: &str, limit: Duration, script: &str) {
        let deadline = Instant::now() + limit;
        while self.exec(script, json!([])) != json!(true) {
            if Instant::now() > deadline {
                self.screenshot("timeout");
                panic!(
                    "timed out waiting for {what}; page log:\n{}",
                    self.console_log()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Signs in through the page's form (data-testid username, password, login).
    pub fn sign_in(&self, user: &str, password: &str) {
        let limit = Duration::from_secs(20);
        let name = self.wait_for(&Self::testid("username"), limit);
        self.type_into(&name, user);
        self.type_into(&self.wait_for(&Self::testid("password"), limit), password);
        self.click(&self.wait_for(&Self::testid("login"), limit));
    }

    /// Saves a PNG of the viewport as `<name>.png` among the test's artefacts.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.cmd("GET", "screenshot", json!({}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("screenshot base64");
        let path = self.artefacts.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Scrolls the element matching `css` to the top of the viewport, then saves a screenshot.
    pub fn screenshot_at(&self, name: &str, css: &str) -> PathBuf {
        self.exec(
            "const e = document.querySelector(arguments[0]); if (e) e.scrollIntoView(); return !!e;",
            json!([css]),
        );
        self.screenshot(name)
    }

    /// What the page wrote to its console (errors included), for failure messages.
    pub fn console_log(&self) -> String {
        let url = format!("{}/session/{}/se/log", self.base, self.session);
        let entries = ureq::post(&url)
            .send_json(json!({"type": "browser"}))
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .map(|v| v["value"].clone())
            .unwrap_or(Value::Null);
        entries
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| format!("{} {}", e["level"], e["message"]))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// Waits for a finished download whose name ends with `suffix`.
    pub fn downloaded(&self, suffix: &str, limit: Duration) -> PathBuf {
        let deadline = Instant::now() + limit;
        loop {
            let done = std::fs::read_dir(&self.downloads)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(suffix));
            if let Some(p) = done {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "no download ending in {suffix}; page log:\n{}",
                self.console_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = ureq::delete(&url).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
