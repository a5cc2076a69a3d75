//! Test harness: the real daemon (`orderd::start`) on a port-0 listener, a real redb file in a
//! temp dir, a manual clock, and a real HTTP client.
#![allow(dead_code, missing_docs)]

pub mod bin;
pub mod mqtt;
pub mod pg;
pub mod sse;

use orderd::error::Commit as _;
use std::sync::Arc;

use orderd::clock::ManualClock;
use orderd::config::{RawConfig, Settings};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// 2026-11-22T12:00:00Z — 13:00 in Tirana (UTC+1), well inside a business day.
pub const T0_MS: u64 = 1_795_348_800_000;

pub struct TestServer {
    pub running: Option<orderd::Running>,
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    pub admin: String,
}

/// The storage budget of every daemon the tests start, as (`min_free_mb`, `warn_free_mb`,
/// `reserve_mb`): orders refused only below 1 MiB free, and no `orderd.reserve`. These tests are
/// about other things; the budget itself is tested on a real full disk in `disk_full.rs`.
pub const SMALL_BUDGET: (u64, u64, u64) = (1, 2, 0);

pub fn settings(dir: &std::path::Path, f: impl FnOnce(&mut RawConfig)) -> Settings {
    let mut raw = RawConfig::default();
    raw.store.data_dir = dir.to_path_buf();
    raw.http.listen = "127.0.0.1:0".into();
    raw.mqtt.listen = "127.0.0.1:0".into();
    // Most tests order as customers with a table token only; the OTP tests turn it on.
    raw.otp.required = orderd::config::OtpRequired::Off;
    // The small storage budget (as `bin` gives the binary): a CI machine's temporary
    // directory may be short of space. The disk-full tests set their own budget.
    (
        raw.store.min_free_mb,
        raw.store.warn_free_mb,
        raw.store.reserve_mb,
    ) = SMALL_BUDGET;
    f(&mut raw);
    // As `orderd run` does: what the admin page saved wins (a restart in the same directory).
    orderd::site::read(dir).unwrap().apply(&mut raw);
    raw.validate().expect("test settings are valid")
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut RawConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, f).await
    }

    pub async fn start_in(dir: tempfile::TempDir, f: impl FnOnce(&mut RawConfig)) -> Self {
        Self::start_at(dir, T0_MS, f).await
    }

    /// Starts with the manual clock standing at `clock_ms`.
    pub async fn start_at(
        dir: tempfile::TempDir,
        clock_ms: u64,
        f: impl FnOnce(&mut RawConfig),
    ) -> Self {
        let clock = Arc::new(ManualClock::new(clock_ms));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = orderd::start(settings(dir.path(), f), listener, clock.clone())
            .await
            .unwrap();
        let base = format!("http://{}", running.addr);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap();
        let mut s = Self {
            running: Some(running),
            base,
            client,
            clock,
            dir,
            admin: String::new(),
        };
        let pw = std::fs::read_to_string(s.dir.path().join("initial-admin-password")).unwrap();
        s.admin = s.login("admin", pw.trim()).await;
        s
    }

    pub fn state(&self) -> &orderd::api::ApiStateRef {
        &self.running.as_ref().unwrap().state
    }

    /// Waits until the kitchen hub has durably handled every event so far.
    pub async fn wait_hub(&self) {
        let log = &self.state().events;
        eventually(
            "the kitchen hub caught up",
            std::time::Duration::from_secs(5),
            || async { (log.cursor("kitchen").unwrap() >= Some(log.last_seq())).then_some(()) },
        )
        .await;
    }

    /// Runs one retention sweep through the writer (after the kitchen hub has caught up, so
    /// only the consumers a test controls hold retention back).
    pub async fn sweep(&self) -> orderd::domain::retention::Swept {
        self.wait_hub().await;
        let rules = self.state().rules.clone();
        self.state()
            .writer
            .run(move |tx| orderd::workers::sweep(tx, &rules))
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn login(&self, user: &str, password: &str) -> String {
        let (st, v) = self
            .send(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": user, "password": password})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "login {user}: {v}");
        v["token"].as_str().unwrap().to_owned()
    }

    /// Creates a user through the API and signs in.
    pub async fn user(&self, name: &str, role: &str) -> String {
        let (st, v) = self
            .send(
                "POST",
                "/api/v1/users",
                Some(&self.admin),
                Some(json!({"username": name, "password": "password-123", "role": role})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        self.login(name, "password-123").await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.send_with(method, path, token, body, &[]).await
    }

    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A station's bump, recall or allergy acknowledgement, as the kitchen page sends it.
    pub async fn bump(&self, order: &str, station: &str, action: &str) -> (StatusCode, Value) {
        self.send(
            "POST",
            &format!("/api/v1/orders/{order}/bump"),
            Some(&self.admin),
            Some(json!({"station": station, "action": action})),
        )
        .await
    }

    /// Places a simple takeaway order.
    pub async fn order(&self, token: &str, items: Value) -> (StatusCode, Value) {
        self.send(
            "POST",
            "/api/v1/orders",
            Some(token),
            Some(json!({"type": "takeaway", "items": items})),
        )
        .await
    }

    /// Marks a menu item available or sold out.
    pub async fn set_available(
        &self,
        token: &str,
        item: &str,
        available: bool,
    ) -> (StatusCode, Value) {
        self.send(
            "PATCH",
            &format!("/api/v1/menu/items/{item}"),
            Some(token),
            Some(json!({ "available": available })),
        )
        .await
    }

    pub async fn set_status(&self, token: &str, id: &str, status: &str) -> (StatusCode, Value) {
        self.send(
            "POST",
            &format!("/api/v1/orders/{id}/status"),
            Some(token),
            Some(json!({"status": status, "note": "test"})),
        )
        .await
    }

    /// The QR token of the first table.
    pub async fn table_token(&self) -> String {
        let (_, tables) = self
            .send("GET", "/api/v1/tables", Some(&self.admin), None)
            .await;
        tables["data"][0]["qr_token"].as_str().unwrap().to_owned()
    }

    /// `POST /otp/verify`.
    pub async fn check_code(&self, phone: &str, code: &str) -> (StatusCode, Value) {
        self.send(
            "POST",
            "/api/v1/otp/verify",
            None,
            Some(json!({"phone": phone, "code": code})),
        )
        .await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// GETs `path` until `done` holds for the answer (for state a worker records just after
    /// the fact a test observed); returns the last answer, failing after 10 s.
    pub async fn wait_get(&self, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        eventually(
            &format!("GET {path} reached the expected state"),
            std::time::Duration::from_secs(10),
            || async { Some(self.send("GET", path, Some(token), None).await.1).filter(&done) },
        )
        .await
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        self.running.take().unwrap().stop().await.unwrap();
        self.dir
    }
}

/// Polls `check` every 20 ms until it gives `Some`, failing the test with `what` once
/// `within` has passed: how a test waits for something to happen (never a fixed sleep).
pub async fn eventually<T, F, Fut>(what: &str, within: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A negative check's window: the caller then asserts that nothing happened in it (a message
/// not sent again, an order not moved). Not a way to wait for something: use [`eventually`].
pub async fn quiet(window: std::time::Duration) {
    tokio::time::sleep(window).await;
}

/// Asserts the JSON error shape and returns the code.
pub fn error_code(v: &Value) -> &str {
    let e = &v["error"];
    assert!(e["message"].is_string(), "not an error body: {v}");
    e["code"].as_str().expect("error.code")
}

impl TestServer {
    /// The embedded broker's address.
    pub fn mqtt(&self) -> std::net::SocketAddr {
        self.running
            .as_ref()
            .unwrap()
            .mqtt_addr
            .expect("embedded broker")
    }

    /// Waits (up to 10 s) until `GET /devices` shows device `id` with `field` equal to `want`
    /// (`online`, `state`, …); returns the device.
    pub async fn wait_device(&self, id: &str, field: &str, want: Value) -> Value {
        let v = self
            .wait_get("/api/v1/devices", &self.admin, |v| {
                v["data"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|d| d["id"] == id && d[field] == want))
            })
            .await;
        let device = v["data"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["id"] == id && d[field] == want))
            .cloned();
        device.unwrap_or_else(|| panic!("device {id} never had {field} = {want}: {v}"))
    }

    /// Registers a device through the API; returns its generated password.
    pub async fn device(&self, id: &str, kind: &str, stations: &[&str], backup: bool) -> String {
        let (st, v) = self
            .send(
                "POST",
                "/api/v1/devices",
                Some(&self.admin),
                Some(json!({"id": id, "kind": kind, "stations": stations, "backup": backup})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["password"].as_str().unwrap().to_owned()
    }

    /// Registers a device and connects it (with its availability last will), announcing
    /// `online`.
    pub async fn device_online(
        &self,
        id: &str,
        kind: &str,
        stations: &[&str],
        backup: bool,
    ) -> (mqtt::Dev, String) {
        let pw = self.device(id, kind, stations, backup).await;
        let dev = self.connect_device(id, &pw).await;
        (dev, pw)
    }

    pub async fn connect_device(&self, id: &str, pw: &str) -> mqtt::Dev {
        let avail = format!("orderd/demo/device/{id}/availability");
        let dev = mqtt::connect(self.mqtt(), id, pw, Some(&avail))
            .await
            .unwrap();
        dev.publish(&avail, "online", true).await;
        dev
    }
}
