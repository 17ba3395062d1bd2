//! The configured RFC 3161 timestamp authority (`reports.tsa_url`), reached over HTTP as
//! RFC 3161 section 3.4 describes: the DER request POSTed as `application/timestamp-query`,
//! the DER answer read back as `application/timestamp-reply`.

use std::io::Read;
use std::time::Duration;

use report::signing::SigningError;
use report::timestamp::TimestampAuthority;

use crate::error::AppError;

/// How long a timestamp may take (the report waits for it).
const TIMEOUT: Duration = Duration::from_secs(20);
/// The largest answer read (a token with a long certificate chain is a few KB).
const MAX_ANSWER_BYTES: u64 = 256 << 10;

/// The authority `reports.tsa_url` names, if any, trusting the certificates of
/// `reports.tsa_certificate` (which the configuration requires with it).
pub fn configured(config: &shared::config::Config) -> Result<Option<HttpTsa>, AppError> {
    let Some(url) = config.reports.tsa_url.as_deref() else {
        return Ok(None);
    };
    let anchors = configured_anchors(config)?;
    Ok(Some(
        HttpTsa::new(url, anchors).map_err(SigningError::Timestamp)?,
    ))
}

/// The certificates (DER) of `reports.tsa_certificate`; none when it is not set.
pub fn configured_anchors(config: &shared::config::Config) -> Result<Vec<Vec<u8>>, AppError> {
    let Some(path) = config.reports.tsa_certificate.as_deref() else {
        return Ok(Vec::new());
    };
    // The message names the setting, never the server's path.
    let unreadable = || {
        SigningError::Timestamp(
            "the timestamp authority's certificate (reports.tsa_certificate) is unreadable or \
             holds no certificate"
                .into(),
        )
    };
    let pem = std::fs::read_to_string(path).map_err(|_| unreadable())?;
    let anchors = report::signing::certificates_der(&pem);
    if anchors.is_empty() {
        return Err(unreadable().into());
    }
    Ok(anchors)
}

/// Hands the authority to the signer.
pub fn as_authority(tsa: &Option<HttpTsa>) -> Option<&dyn TimestampAuthority> {
    tsa.as_ref().map(|t| t as &dyn TimestampAuthority)
}

pub struct HttpTsa {
    url: url::Url,
    agent: ureq::Agent,
    anchors: Vec<Vec<u8>>,
}

impl HttpTsa {
    /// The authority at `url` (checked by the configuration: http or https, with a host)
    /// whose tokens must be signed under `anchors` (DER certificates).
    pub fn new(url: &str, anchors: Vec<Vec<u8>>) -> Result<HttpTsa, String> {
        let url = url::Url::parse(url.trim()).map_err(|e| e.to_string())?;
        let agent = ureq::AgentBuilder::new()
            .timeout(TIMEOUT)
            .redirects(0)
            .build();
        Ok(HttpTsa {
            url,
            agent,
            anchors,
        })
    }
}

impl TimestampAuthority for HttpTsa {
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, String> {
        let host = self.url.host_str().unwrap_or("?").to_string();
        let answer = self
            .agent
            .request_url("POST", &self.url)
            .set("Content-Type", "application/timestamp-query")
            .set("Accept", "application/timestamp-reply")
            .send_bytes(request)
            // The host and the kind of failure only: the URL may carry a token.
            .map_err(|e| match e {
                ureq::Error::Status(code, _) => format!("the TSA at {host} answered HTTP {code}"),
                ureq::Error::Transport(t) => {
                    format!("the TSA at {host} is unreachable ({})", t.kind())
                }
            })?;
        let mut bytes = Vec::new();
        answer
            .into_reader()
            .take(MAX_ANSWER_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("the TSA at {host} broke off its answer: {e}"))?;
        if bytes.len() as u64 > MAX_ANSWER_BYTES {
            return Err(format!(
                "the TSA at {host} sent more than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        Ok(bytes)
    }

    fn anchors(&self) -> Vec<Vec<u8>> {
        self.anchors.clone()
    }
}
