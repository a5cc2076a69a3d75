//! The client: posts one batch over HTTPS with the site's token and classifies the answer once.

use std::time::Duration;

use orderd_protocol::upload::{Ack, POSTCARD_MEDIA_TYPE};

use crate::messaging::retry_after_secs;

/// What the collector made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// Stored up to this seq.
    Acked(u64),
    /// It would leave a gap: resend from this seq.
    Gap(u64),
    /// The token was refused (401/403): an operator must fix it; keep the backlog.
    Refused(String),
    /// Too large (413): send smaller batches.
    TooLarge,
    /// The batch itself was refused (400, or 409 other than a gap): not retried as is.
    Rejected(String),
    /// Transient (network, timeout, 5xx, 429): retry, not before `after` if given.
    Retry {
        /// The collector's `Retry-After`.
        after: Option<Duration>,
        /// What went wrong.
        reason: String,
    },
}

/// A configured collector client.
#[derive(Clone)]
pub struct Collector {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// A client posting to `url` (e.g. `https://collector.example/v1/batches`).
    pub fn new(url: &str, token: &str, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            url: url.to_owned(),
            token: token.to_owned(),
        })
    }

    /// Whether the collector answers its `/healthz` (same origin as the batch URL) with a
    /// success, within the connect and request timeouts.
    pub async fn healthy(&self) -> bool {
        let Ok(mut url) = reqwest::Url::parse(&self.url) else {
            return false;
        };
        url.set_path("/healthz");
        url.set_query(None);
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    /// Posts one postcard-encoded batch.
    pub async fn post(&self, body: Vec<u8>) -> Posted {
        let resp = match self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, POSTCARD_MEDIA_TYPE)
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return Posted::Retry {
                    after: None,
                    reason: if e.is_timeout() {
                        "the collector did not answer in time".into()
                    } else {
                        format!("cannot reach the collector: {e}")
                    },
                };
            }
        };
        let status = resp.status().as_u16();
        let after = retry_after_secs(
            resp.headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let Ok(bytes) = resp.bytes().await else {
            return Posted::Retry {
                after,
                reason: format!("the collector's answer ({status}) was cut off"),
            };
        };
        classify(status, after, &bytes)
    }
}

/// Classifies an answer: status, `Retry-After`, body.
pub fn classify(status: u16, after: Option<Duration>, body: &[u8]) -> Posted {
    let error: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let message = error["error"]["message"].as_str().map_or_else(
        || format!("HTTP {status}"),
        |m| format!("HTTP {status}: {m}"),
    );
    match status {
        200 => match postcard::take_from_bytes::<Ack>(body) {
            Ok((ack, [])) => Posted::Acked(ack.acked_seq),
            _ => Posted::Retry {
                after: None,
                reason: "the collector's acknowledgement could not be read".into(),
            },
        },
        409 if error["error"]["code"] == "gap" => {
            match error["error"]["details"]["expected_seq"].as_u64() {
                Some(seq) => Posted::Gap(seq),
                None => Posted::Rejected(message),
            }
        }
        401 | 403 => Posted::Refused(message),
        413 => Posted::TooLarge,
        408 | 429 | 500..=599 => Posted::Retry {
            after,
            reason: message,
        },
        _ => Posted::Rejected(message),
    }
}
