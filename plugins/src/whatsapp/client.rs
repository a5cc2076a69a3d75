//! The Cloud API client: one POST per message, the answer classified into [`Outcome`].

use std::time::Duration;

use serde_json::{Value, json};

use super::Config;
use crate::messaging::{Outcome, retry_after_secs};

/// A configured WhatsApp sender.
#[derive(Clone)]
pub struct WhatsApp {
    http: reqwest::Client,
    url: String,
    token: String,
    cfg: Config,
}

impl std::fmt::Debug for WhatsApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsApp")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl crate::messaging::Provider for WhatsApp {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    /// Codes through the authentication template, status messages through the status template;
    /// staff alerts are not sent by WhatsApp (they go to a Telegram staff chat).
    fn send<'a>(&'a self, msg: crate::messaging::Outgoing<'a>) -> crate::messaging::Sending<'a> {
        use crate::messaging::Kind;
        Box::pin(async move {
            match msg.kind {
                Kind::Code(code) => self.send_code(msg.to, msg.lang, code).await,
                Kind::Status(params) => self.send_status(msg.to, msg.lang, &params).await,
                Kind::Alert => Outcome::Reject {
                    reason: "staff alerts go to Telegram only".into(),
                },
            }
        })
    }
}

impl WhatsApp {
    /// A sender from checked settings; `timeout` cuts off a stalled call.
    pub fn new(cfg: &Config, timeout: Duration) -> Result<Self, String> {
        let token = cfg
            .access_token
            .load()?
            .ok_or_else(|| "no WhatsApp access token".to_owned())?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            url: format!(
                "{}/{}/{}/messages",
                cfg.base_url.trim_end_matches('/'),
                cfg.api_version,
                cfg.phone_number_id
            ),
            token,
            cfg: cfg.clone(),
        })
    }

    fn template<'a>(
        map: &'a std::collections::BTreeMap<String, String>,
        lang: &str,
    ) -> (&'a str, &'a str) {
        map.get_key_value(lang)
            .or_else(|| map.get_key_value("en"))
            .map_or(("", "en"), |(l, n)| (n.as_str(), l.as_str()))
    }

    /// Sends a code with the authentication template: the code is the body parameter and
    /// again the copy-code (URL) button's parameter, as WhatsApp requires.
    pub async fn send_code(&self, to: &str, lang: &str, code: &str) -> Outcome {
        let (name, lang) = Self::template(&self.cfg.otp_template, lang);
        let body = json!({
            "messaging_product": "whatsapp",
            "to": to.trim_start_matches('+'),
            "type": "template",
            "template": {
                "name": name,
                "language": {"code": lang},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": code}]},
                    {"type": "button", "sub_type": "url", "index": "0",
                     "parameters": [{"type": "text", "text": code}]}
                ]
            }
        });
        self.post(&body).await
    }

    /// Sends an order-status template with its body parameters (restaurant, short number,
    /// status text).
    pub async fn send_status(&self, to: &str, lang: &str, params: &[&str]) -> Outcome {
        let (name, lang) = Self::template(&self.cfg.status_template, lang);
        let parameters: Vec<Value> = params
            .iter()
            .map(|p| json!({"type": "text", "text": p}))
            .collect();
        let body = json!({
            "messaging_product": "whatsapp",
            "to": to.trim_start_matches('+'),
            "type": "template",
            "template": {
                "name": name,
                "language": {"code": lang},
                "components": [{"type": "body", "parameters": parameters}]
            }
        });
        self.post(&body).await
    }

    async fn post(&self, body: &Value) -> Outcome {
        let resp = match self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: if e.is_timeout() {
                        "timeout".into()
                    } else {
                        format!("unreachable: {}", without_url(&e))
                    },
                };
            }
        };
        let status = resp.status().as_u16();
        let retry_after = retry_after_secs(
            resp.headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let body: Value = match resp.bytes().await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("reading the answer: {}", without_url(&e)),
                };
            }
        };
        classify(status, retry_after, &body)
    }
}

/// The error without the URL (which holds the phone-number id; tokens are never in it, but
/// logs stay shorter).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    s
}

/// Classifies a Cloud API answer. Throttling (HTTP 429, error 130429 and the other rate
/// codes), server errors and authentication failures (a token problem is the operator's to
/// fix, not the message's fault) are retried; other 4xx answers reject the message.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &Value) -> Outcome {
    if (200..300).contains(&status) {
        return match body["messages"][0]["id"].as_str() {
            Some(id) => Outcome::Sent {
                provider_id: id.to_owned(),
            },
            None => Outcome::Retry {
                after: None,
                reason: format!("HTTP {status} without a message id"),
            },
        };
    }
    let code = body["error"]["code"].as_i64().unwrap_or(0);
    let message = body["error"]["message"].as_str().unwrap_or("");
    let reason = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}, error {code}: {message}")
    };
    // 4 / 80007: app or account rate limit; 130429: throughput; 131048: spam rate limit;
    // 131056: too many messages to one recipient; 131000/131016: Meta-side errors.
    let transient = matches!(
        code,
        4 | 80007 | 130_429 | 131_048 | 131_056 | 131_000 | 131_016
    );
    if status == 429 || status >= 500 || status == 401 || status == 408 || transient {
        Outcome::Retry {
            after: retry_after,
            reason,
        }
    } else {
        Outcome::Reject { reason }
    }
}
