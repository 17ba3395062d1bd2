//! A small HTTP server on a free loopback port for the services the deployment calls out to
//! (a crawler's callback receiver, a timestamp authority): each request is kept and answered
//! by the test's function, one connection per request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the server got.
#[derive(Debug, Clone)]
pub struct Received {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, content type and body.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn empty(status: u16) -> Answer {
        Answer {
            status,
            content_type: "text/plain",
            body: Vec::new(),
        }
    }
}

pub struct Loopback {
    pub port: u16,
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Loopback {
    /// Serves until the test ends; `answer` gets the request's number (from 0) and itself.
    pub fn start(answer: impl Fn(usize, &Received) -> Answer + Send + 'static) -> Loopback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = got.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let len = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let received = Received {
                    request_line: request_line.trim_end().to_string(),
                    headers,
                    body,
                };
                let a = answer(n, &received);
                kept.lock().unwrap().push(received);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    a.status,
                    a.content_type,
                    a.body.len()
                );
                let _ = stream.write_all(&a.body);
            }
        });
        Loopback { port, got }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The first `count` requests, waiting up to `limit` for them.
    pub fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received();
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} requests after {limit:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A timestamp authority over HTTP: OpenSSL's `openssl ts -reply` (EC P-256 key) behind the
/// loopback server, as RFC 3161 section 3.4 transports it.
pub fn timestamp_authority() -> (Loopback, String) {
    let tsa = report::timestamp::testing::OpenSslTsa::new(false).unwrap();
    let certificate = tsa.certificate_pem();
    let server = Loopback::start(move |_, request| match tsa.reply(&request.body) {
        Ok(body) => Answer {
            status: 200,
            content_type: "application/timestamp-reply",
            body,
        },
        Err(why) => Answer {
            status: 500,
            content_type: "text/plain",
            body: why.into_bytes(),
        },
    });
    (server, certificate)
}
