//! What the benchmarks share: a small JSON-over-HTTP client with the admin's bearer token, the
//! daemon's RSS from `/proc`, and percentiles. Included with `#[path]` by each benchmark.
#![allow(dead_code)]

use anyhow::Context as _;
use serde_json::{Value, json};

/// A JSON client of the daemon's API.
pub struct Http {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    /// `http://host:port`.
    pub base: String,
    /// Bearer token sent with every call (empty: none).
    pub token: String,
}

impl Http {
    /// A client of `base`, without a token.
    pub fn new(base: &str) -> Self {
        Self {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
            base: base.trim_end_matches('/').to_owned(),
            token: String::new(),
        }
    }

    /// Logs in as `admin` with the password in `password_file` and keeps the token.
    pub async fn login_admin(&mut self, password_file: &std::path::Path) -> anyhow::Result<()> {
        let pw = std::fs::read_to_string(password_file)
            .with_context(|| format!("reading {}", password_file.display()))?;
        let (_, v) = self
            .call(
                "POST",
                "/api/v1/auth/login",
                &json!({"username": "admin", "password": pw.trim()}),
            )
            .await?;
        v["token"]
            .as_str()
            .context("login")?
            .clone_into(&mut self.token);
        Ok(())
    }

    /// Moves an order to `status`; fails unless answered 200.
    pub async fn set_status(&self, id: &str, status: &str) -> anyhow::Result<()> {
        let (st, v) = self
            .call(
                "POST",
                &format!("/api/v1/orders/{id}/status"),
                &json!({ "status": status }),
            )
            .await?;
        anyhow::ensure!(st == 200, "{status} {id}: {st} {v}");
        Ok(())
    }

    /// One call; the status and the JSON body (`null` if none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        self.call_as(&self.token, method, path, body).await
    }

    /// A GET answered with text (e.g. `/metrics`).
    pub async fn text(&self, path: &str) -> anyhow::Result<String> {
        use http_body_util::BodyExt as _;
        let req = hyper::Request::builder()
            .uri(format!("{}{path}", self.base))
            .body(http_body_util::Full::new(bytes::Bytes::new()))?;
        let resp = self.client.request(req).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A POST of raw bytes with a bearer token and content type; the status and body.
    pub async fn post_bytes(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, bytes::Bytes)> {
        use http_body_util::BodyExt as _;
        let req = hyper::Request::builder()
            .method("POST")
            .uri(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        let resp = self.client.request(req).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    /// A POST with an `Idempotency-Key`; the status and the JSON body.
    pub async fn post_idem(
        &self,
        path: &str,
        key: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        use http_body_util::BodyExt as _;
        let req = hyper::Request::builder()
            .method("POST")
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.token))
            .header("idempotency-key", key)
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))?;
        let resp = self.client.request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// One call with another bearer token.
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        use http_body_util::BodyExt as _;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if !token.is_empty() {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req.body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))?;
        let resp = self.client.request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

/// A process's resident set size in KiB (0 if unknown).
pub fn rss_kb(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A process's CPU time (user + system) in seconds, from `/proc/{pid}/stat` (`self` if `None`).
pub fn cpu_secs(pid: Option<u32>) -> f64 {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}
