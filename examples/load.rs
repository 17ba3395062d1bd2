//! A bounded load on a running server, as its users make it (`scripts/bench-load.sh`):
//! VIEWERS viewers each sign in, register a device with its proof key, open a session,
//! complete the key exchange, fetch the manifest and play UNITS units at real-time pace
//! (each decrypted and checked); CRAWLERS crawlers each submit a suspect file with an API key
//! and poll their case until it is done; one admin polls the console's lists every 2 s.
//! Arrivals are spread over RAMP seconds. Every request's route, status and latency is kept;
//! the summary (JSON on stdout) has, per route, the count, the statuses, p50/p95/p99/max.
//!
//! Usage: load BASE_URL VIDEO_ID UNIT_SECONDS UNITS VIEWERS CRAWLERS RAMP SUSPECT API_KEY ADMIN_TOKEN
//! Viewer accounts `load-0` ... `load-{VIEWERS-1}` with password `load password` must exist.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use shared::auth::device_key::{key_exchange_binding, DeviceKey, Purpose};
use streaming::crypto;

pub const PASSWORD: &str = "load password";

/// One request as measured.
struct Sample {
    route: &'static str,
    status: u16,
    micros: u64,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Sample>>>);

impl Log {
    fn add(&self, samples: Vec<Sample>) {
        if let Ok(mut all) = self.0.lock() {
            all.extend(samples);
        }
    }
}

/// A client of one simulated user: keeps its connections, measures every request.
struct Client {
    agent: ureq::Agent,
    base: String,
    samples: Vec<Sample>,
}

/// An answer: status and body (empty on a transport failure, status 0).
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn field(&self, name: &str) -> Result<String, String> {
        self.json()[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                format!(
                    "{}: {}",
                    self.status,
                    String::from_utf8_lossy(&self.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )
            })
    }
}

impl Client {
    fn new(base: &str) -> Client {
        Client {
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(120))
                .build(),
            base: base.to_string(),
            samples: Vec::new(),
        }
    }

    fn send(
        &mut self,
        route: &'static str,
        req: ureq::Request,
        body: Option<(&str, &[u8])>,
    ) -> Answer {
        let started = Instant::now();
        let result = match body {
            Some((content_type, bytes)) => req.set("Content-Type", content_type).send_bytes(bytes),
            None => req.call(),
        };
        let answer = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => {
                let status = r.status();
                let mut body = Vec::new();
                let _ = std::io::Read::read_to_end(&mut r.into_reader(), &mut body);
                Answer { status, body }
            }
            Err(_) => Answer {
                status: 0,
                body: Vec::new(),
            },
        };
        self.samples.push(Sample {
            route,
            status: answer.status,
            micros: started.elapsed().as_micros() as u64,
        });
        answer
    }

    fn post_json(
        &mut self,
        route: &'static str,
        path: &str,
        auth: Option<&str>,
        body: Value,
    ) -> Answer {
        let mut req = self.agent.post(&format!("{}{path}", self.base));
        if let Some(token) = auth {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let bytes = body.to_string().into_bytes();
        self.send(route, req, Some(("application/json", &bytes)))
    }

    fn get(&mut self, route: &'static str, path: &str, header: (&str, &str)) -> Answer {
        let req = self
            .agent
            .get(&format!("{}{path}", self.base))
            .set(header.0, header.1);
        self.send(route, req, None)
    }
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Viewer(usize),
    Crawler(usize),
}

struct Plan {
    base: String,
    video: String,
    unit_seconds: f64,
    units: u32,
}

/// One viewer from sign-in to the last unit; an error ends it early (its requests stay
/// counted).
fn viewer(plan: &Plan, index: usize, client: &mut Client) -> Result<(), String> {
    let user = format!("load-{index}");
    let login = client.post_json(
        "login",
        "/api/auth/login/",
        None,
        json!({"username": user, "password": PASSWORD}),
    );
    let user_token = login.field("user_token")?;
    let key = DeviceKey::generate();
    let registered = client.post_json(
        "register_device",
        "/api/register-device/",
        Some(&user_token),
        json!({"device_fingerprint": format!("{:064x}", index + 1), "device_public_key": key.public_key()}),
    );
    let token = registered.field("device_token")?;
    let device_id = registered.field("device_id")?;
    let opened = client.post_json(
        "request_stream",
        "/api/request-stream/",
        Some(&token),
        json!({"video_id": plan.video}),
    );
    let session = opened.field("session_id")?;
    let server_key = crypto::decode_public_key(&opened.field("server_public_key")?)
        .map_err(|e| e.to_string())?;
    let (secret, public) = crypto::generate_keypair();
    let client_key = crypto::encode_public_key(&public);
    let proof = key.prove(
        Purpose::KeyExchange,
        &device_id,
        &key_exchange_binding(&session, &client_key),
    );
    let keyed = client.post_json(
        "key_exchange",
        "/api/complete-key-exchange/",
        Some(&token),
        json!({"session_id": session, "client_public_key": client_key, "device_proof": proof}),
    );
    let session_key =
        crypto::derive_session_key(&secret, &server_key, &session).map_err(|e| e.to_string())?;
    let cek = crypto::unwrap_cek(&session_key, &session, &keyed.field("encrypted_cek")?)
        .map_err(|e| e.to_string())?;
    let bearer = format!("Bearer {token}");
    let manifest = client.get(
        "manifest",
        &format!("/api/video/manifest/{session}/"),
        ("Authorization", &bearer),
    );
    if manifest.status != 200 {
        return Err(format!("manifest: {}", manifest.status));
    }
    let started = Instant::now();
    for (k, name) in std::iter::once("init".to_string())
        .chain((1..=plan.units).map(|k| k.to_string()))
        .enumerate()
    {
        // Real time: unit k is due (k - 1) unit lengths after the first.
        let due = Duration::from_secs_f64(plan.unit_seconds * k.saturating_sub(1) as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let segment = client.get(
            "segment",
            &format!("/api/video/stream/{session}/{name}/"),
            ("Authorization", &bearer),
        );
        if segment.status != 200 {
            return Err(format!("segment {name}: {}", segment.status));
        }
        let aad = crypto::segment_aad(&session, &name);
        crypto::open(&cek, aad.as_bytes(), &segment.body)
            .map_err(|e| format!("segment {name} does not decrypt: {e}"))?;
    }
    Ok(())
}

const BOUNDARY: &str = "leaktrace-load-boundary";

fn crawler(
    base: &str,
    suspect: &[u8],
    index: usize,
    key: &str,
    client: &mut Client,
) -> Result<(), String> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"copy-{index}.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(suspect);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let req = client
        .agent
        .post(&format!("{base}/api/verify-watermark/"))
        .set("X-API-Key", key);
    let submitted = client.send(
        "submit",
        req,
        Some((&format!("multipart/form-data; boundary={BOUNDARY}"), &body)),
    );
    let case = submitted.field("case_id")?;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let status = client.get(
            "case_status",
            &format!("/api/cases/{case}/"),
            ("X-API-Key", key),
        );
        match status.json()["status"].as_str() {
            Some("done") => return Ok(()),
            Some("failed") => return Err(format!("case {case} failed")),
            Some(_) => {}
            None => return Err(format!("case status: {}", status.status)),
        }
    }
}

fn admin(token: &str, client: &mut Client, stop: &AtomicBool) {
    let bearer = format!("Bearer {token}");
    while !stop.load(Ordering::Relaxed) {
        for (route, path) in [
            ("admin_events", "/api/admin/security-events/?limit=50"),
            ("admin_jobs", "/api/admin/jobs/"),
            ("admin_cases", "/api/cases/?limit=50"),
            ("admin_titles", "/api/admin/titles/"),
        ] {
            client.get(route, path, ("Authorization", &bearer));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[derive(Serialize)]
struct RouteSummary {
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Serialize)]
struct Summary {
    viewers: usize,
    viewers_completed: usize,
    crawlers: usize,
    crawlers_completed: usize,
    seconds: f64,
    /// Answers other than 2xx and the designed 429s, and transport failures (status 0).
    errors: usize,
    throttled_429: usize,
    routes: BTreeMap<&'static str, RouteSummary>,
    failures: Vec<String>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn run(args: &[String]) -> Result<Summary, String> {
    let [base, video, unit_seconds, units, viewers, crawlers, ramp, suspect, api_key, admin_token] =
        args
    else {
        return Err("usage: load BASE_URL VIDEO_ID UNIT_SECONDS UNITS VIEWERS CRAWLERS RAMP SUSPECT API_KEY ADMIN_TOKEN".into());
    };
    let number = |name: &str, v: &str| v.parse::<f64>().map_err(|e| format!("{name}: {e}"));
    let plan = Arc::new(Plan {
        base: base.clone(),
        video: video.clone(),
        unit_seconds: number("UNIT_SECONDS", unit_seconds)?,
        units: number("UNITS", units)? as u32,
    });
    let (viewers, crawlers) = (
        number("VIEWERS", viewers)? as usize,
        number("CRAWLERS", crawlers)? as usize,
    );
    let ramp = Duration::from_secs_f64(number("RAMP", ramp)?);
    let suspect = Arc::new(std::fs::read(suspect).map_err(|e| format!("SUSPECT: {e}"))?);
    let log = Log::default();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let admin_thread = {
        let (base, token, log, stop) =
            (base.clone(), admin_token.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut client = Client::new(&base);
            admin(&token, &mut client, &stop);
            log.add(client.samples);
        })
    };
    // Viewers and crawlers interleaved, so that they arrive together over the ramp.
    let total = viewers + crawlers;
    let roles: Vec<Role> = {
        let (mut v, mut c) = (0, 0);
        (0..total)
            .map(|i| {
                // The crawler share of arrivals so far stays close to crawlers / total.
                if c < crawlers && (c * total <= i * crawlers || v == viewers) {
                    c += 1;
                    Role::Crawler(c - 1)
                } else {
                    v += 1;
                    Role::Viewer(v - 1)
                }
            })
            .collect()
    };
    let mut threads = Vec::new();
    for (i, role) in roles.into_iter().enumerate() {
        let (plan, log, failures, suspect, key) = (
            plan.clone(),
            log.clone(),
            failures.clone(),
            suspect.clone(),
            api_key.clone(),
        );
        let start_at = ramp.mul_f64(i as f64 / total.max(1) as f64);
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                std::thread::sleep(start_at);
                let mut client = Client::new(&plan.base);
                let outcome = match role {
                    Role::Crawler(n) => {
                        crawler(&plan.base, &suspect, n, &key, &mut client).map(|_| true)
                    }
                    Role::Viewer(n) => viewer(&plan, n, &mut client).map(|_| false),
                };
                log.add(std::mem::take(&mut client.samples));
                if let Err(e) = &outcome {
                    if let Ok(mut f) = failures.lock() {
                        f.push(e.clone());
                    }
                }
                outcome
            })
            .map_err(|e| format!("cannot start a client thread: {e}"))?;
        threads.push(spawned);
    }
    let (mut viewers_completed, mut crawlers_completed) = (0, 0);
    for t in threads {
        match t.join() {
            Ok(Ok(true)) => crawlers_completed += 1,
            Ok(Ok(false)) => viewers_completed += 1,
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = admin_thread.join();
    let seconds = started.elapsed().as_secs_f64();
    let samples = std::mem::take(&mut *log.0.lock().map_err(|_| "poisoned log")?);
    let mut by_route: BTreeMap<&'static str, Vec<&Sample>> = BTreeMap::new();
    for s in &samples {
        by_route.entry(s.route).or_default().push(s);
    }
    let routes = by_route
        .into_iter()
        .map(|(route, list)| {
            let mut micros: Vec<u64> = list.iter().map(|s| s.micros).collect();
            micros.sort_unstable();
            let mut statuses = BTreeMap::new();
            for s in &list {
                *statuses.entry(s.status).or_insert(0) += 1;
            }
            (
                route,
                RouteSummary {
                    requests: list.len(),
                    statuses,
                    p50_ms: percentile(&micros, 0.50),
                    p95_ms: percentile(&micros, 0.95),
                    p99_ms: percentile(&micros, 0.99),
                    max_ms: micros.last().copied().unwrap_or(0) as f64 / 1000.0,
                },
            )
        })
        .collect();
    let errors = samples
        .iter()
        .filter(|s| !(200..300).contains(&s.status) && s.status != 429)
        .count();
    let throttled_429 = samples.iter().filter(|s| s.status == 429).count();
    let failures = std::mem::take(&mut *failures.lock().map_err(|_| "poisoned failures")?);
    Ok(Summary {
        viewers,
        viewers_completed,
        crawlers,
        crawlers_completed,
        seconds,
        errors,
        throttled_429,
        routes,
        failures: failures.into_iter().take(20).collect(),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(summary) => match serde_json::to_string_pretty(&summary) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("load: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}
