//! Crawler callbacks: a crawler may give a `callback_url` with its submission; when the case
//! ends, leaktrace POSTs the verdict there (the `deliver_callback` job, retried with backoff).
//!
//! - Only hosts the deployment allows (`evidence.callback_hosts`, `host` for its scheme's
//!   default port or `host:port`) are ever called, over http or https, without credentials in
//!   the URL, and no redirect is followed; a listed name must resolve to public addresses
//!   (an internal receiver is listed by its address): a callback cannot be turned into a
//!   request to an arbitrary or private address.
//! - The body is signed: `X-Leaktrace-Signature: sha256=<hex HMAC-SHA256>` over
//!   `<X-Leaktrace-Timestamp>.<body>`, keyed with the submitting key's callback secret
//!   (`shared::auth::api_key::callback_secret`: derived from the key, which only the crawler
//!   holds; leaktrace keeps it sealed under the master key). A receiver checks the MAC and
//!   refuses timestamps far from its clock (a replayed callback).

use std::time::Duration;

use formats::case::{CaseStatus, CrawlerResult};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use shared::config::Config;

/// Header carrying the Unix time (seconds) the callback was signed at.
pub const TIMESTAMP_HEADER: &str = "X-Leaktrace-Timestamp";
/// Header carrying `sha256=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "X-Leaktrace-Signature";
/// Longest a receiver may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest URL accepted.
const MAX_URL: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("callback_url is not an absolute http or https URL without credentials")]
    Malformed,
    #[error(
        "callback_url names a host this deployment does not call back (evidence.callback_hosts)"
    )]
    NotAllowed,
    #[error("callback_url is for API-key submissions (crawlers)")]
    NotACrawler,
    #[error(
        "this API key was created before callbacks were signed; create a new key to use \
         callback_url"
    )]
    KeyTooOld,
}

impl CallbackError {
    pub fn code(&self) -> &'static str {
        match self {
            CallbackError::Malformed => "invalid_callback_url",
            CallbackError::NotAllowed => "callback_not_allowed",
            CallbackError::NotACrawler => "callback_for_keys_only",
            CallbackError::KeyTooOld => "callback_needs_new_key",
        }
    }
}

/// `url` if it may be called back under `config`: absolute http(s), no user or password,
/// its host (or host:port) among `evidence.callback_hosts`.
pub fn allowed(config: &Config, url: &str) -> Result<url::Url, CallbackError> {
    if url.len() > MAX_URL {
        return Err(CallbackError::Malformed);
    }
    let parsed = url::Url::parse(url).map_err(|_| CallbackError::Malformed)?;
    let plain = matches!(parsed.scheme(), "http" | "https")
        && parsed.username().is_empty()
        && parsed.password().is_none();
    let Some(host) = parsed.host_str().filter(|_| plain) else {
        return Err(CallbackError::Malformed);
    };
    // A bare `host` allows its scheme's default port only; `host:port` that port.
    let default_port = parsed.port().is_none();
    let port = parsed.port_or_known_default().unwrap_or_default();
    let with_port = format!("{host}:{port}");
    let listed = config.evidence.callback_hosts.iter().any(|allowed| {
        (default_port && allowed.eq_ignore_ascii_case(host))
            || allowed.eq_ignore_ascii_case(&with_port)
    });
    if !listed {
        return Err(CallbackError::NotAllowed);
    }
    Ok(parsed)
}

/// What a callback says: the case's end as its crawler may see it.
#[derive(Debug, Serialize)]
pub struct CallbackBody {
    pub case_id: String,
    pub status: CaseStatus,
    /// The verdict and the accused sessions' references (done cases).
    pub result: Option<CrawlerResult>,
    /// Why the case failed (failed cases).
    pub error: Option<String>,
    pub status_url: String,
}

/// The `sha256=<hex>` signature of `body` sent at `timestamp` under a key's callback secret.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// How one POST went.
#[derive(Debug)]
pub enum Sent {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// It answered something else.
    Refused(u16),
    /// No answer (connection refused, timeout, TLS).
    Unreachable(String),
}

/// Whether `ip` is an address on the public internet (not loopback, private, link-local,
/// shared, unique-local, multicast or unspecified).
fn public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// Resolves a callback's `host:port`: an address written in the URL was listed as such by the
/// operator and is used as it is; a name must resolve to public addresses only (a name whose
/// DNS points inside the network is refused, so a crawler controlling its DNS cannot aim
/// callbacks at internal services).
fn resolve(netloc: &str) -> std::io::Result<Vec<std::net::SocketAddr>> {
    use std::net::ToSocketAddrs;
    let host = netloc.rsplit_once(':').map_or(netloc, |(h, _)| h);
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    let addrs: Vec<_> = netloc.to_socket_addrs()?.collect();
    if literal {
        return Ok(addrs);
    }
    let public_only: Vec<_> = addrs.into_iter().filter(|a| public(a.ip())).collect();
    if public_only.is_empty() {
        return Err(std::io::Error::other(format!(
            "{host} resolves to no public address; list an internal receiver by its address"
        )));
    }
    Ok(public_only)
}

/// POSTs `body` to `url` with its signature headers; follows no redirect.
pub fn post(url: &url::Url, body: &[u8], timestamp: i64, signature: &str) -> Sent {
    let agent = ureq::AgentBuilder::new()
        .timeout(TIMEOUT)
        .redirects(0)
        .resolver(resolve)
        .build();
    let sent = agent
        .request_url("POST", url)
        .set("Content-Type", "application/json")
        .set(TIMESTAMP_HEADER, &timestamp.to_string())
        .set(SIGNATURE_HEADER, signature)
        .send_bytes(body);
    match sent {
        Ok(r) if (200..300).contains(&r.status()) => Sent::Delivered(r.status()),
        Ok(r) => Sent::Refused(r.status()),
        Err(ureq::Error::Status(code, _)) => Sent::Refused(code),
        Err(e) => Sent::Unreachable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hosts: &[&str]) -> Config {
        let mut c = Config::default();
        c.evidence.callback_hosts = hosts.iter().map(|h| h.to_string()).collect();
        c
    }

    #[test]
    fn only_listed_hosts_over_http_are_called_back() {
        let c = config(&["hooks.example.org", "127.0.0.1:9000"]);
        assert!(allowed(&c, "https://hooks.example.org/leaktrace?x=1").is_ok());
        assert!(allowed(&c, "http://HOOKS.example.org/a").is_ok());
        assert!(allowed(&c, "https://hooks.example.org:443/a").is_ok());
        assert!(allowed(&c, "http://127.0.0.1:9000/cb").is_ok());
        for (url, why) in [
            ("http://127.0.0.1:9001/cb", CallbackError::NotAllowed),
            ("http://hooks.example.org:8080/a", CallbackError::NotAllowed),
            ("http://127.0.0.1/cb", CallbackError::NotAllowed),
            ("http://169.254.169.254/latest", CallbackError::NotAllowed),
            (
                "https://hooks.example.org.evil.test/",
                CallbackError::NotAllowed,
            ),
            ("http://[::1]:9000/", CallbackError::NotAllowed),
            ("ftp://hooks.example.org/", CallbackError::Malformed),
            ("file:///etc/passwd", CallbackError::Malformed),
            (
                "https://user:pw@hooks.example.org/",
                CallbackError::Malformed,
            ),
            ("/relative", CallbackError::Malformed),
            ("", CallbackError::Malformed),
        ] {
            assert_eq!(allowed(&c, url).unwrap_err(), why, "{url}");
        }
        let long = format!("https://hooks.example.org/{}", "a".repeat(MAX_URL));
        assert_eq!(allowed(&c, &long).unwrap_err(), CallbackError::Malformed);
        assert_eq!(
            allowed(&config(&[]), "https://hooks.example.org/").unwrap_err(),
            CallbackError::NotAllowed
        );
    }

    #[test]
    fn names_must_resolve_to_public_addresses_listed_addresses_are_taken_as_they_are() {
        use std::net::IpAddr;
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!public(internal.parse::<IpAddr>().unwrap()), "{internal}");
        }
        for outside in ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"] {
            assert!(public(outside.parse::<IpAddr>().unwrap()), "{outside}");
        }
        // "localhost" is a name: refused even though the operator could list it.
        assert!(resolve("localhost:80").is_err());
        assert_eq!(
            resolve("127.0.0.1:9000").unwrap(),
            vec!["127.0.0.1:9000".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:9000").unwrap(),
            vec!["[::1]:9000".parse().unwrap()]
        );
    }

    #[test]
    fn the_signature_is_an_hmac_of_timestamp_and_body_under_the_callback_secret() {
        let secret = shared::auth::api_key::callback_secret("ltk_example");
        // The secret as a crawler derives it from its key.
        let mut derive = Hmac::<Sha256>::new_from_slice(b"ltk_example").unwrap();
        derive.update(b"leaktrace/callback-signing/v1");
        assert_eq!(&secret[..], &derive.finalize().into_bytes()[..]);
        let sig = signature(&secret, 1_764_800_000, b"{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(b"1764800000.{}");
        assert_eq!(
            sig,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(sig, signature(&secret, 1_764_800_001, b"{}"));
        assert_ne!(
            sig,
            signature(b"another key's secret", 1_764_800_000, b"{}")
        );
    }
}
