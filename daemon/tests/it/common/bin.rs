//! The real `orderd` binary for end-to-end tests: started on free ports, its addresses read
//! from its own start-up output, its log lines collected.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_orderd");

/// Starts the daemon on a free port and returns it with its base URL, read from its own
/// start-up output (no sleeping, no fixed ports), and its log lines as they come.
pub async fn spawn_with(
    dir: &Path,
    config: Option<&Path>,
) -> (Child, String, Arc<std::sync::Mutex<String>>) {
    spawn_env(dir, config, &[]).await
}

pub async fn spawn_env(
    dir: &Path,
    config: Option<&Path>,
    envs: &[(&str, &str)],
) -> (Child, String, Arc<std::sync::Mutex<String>>) {
    let (child, base, _, logs) = spawn_full(dir, config, envs).await;
    (child, base, logs)
}

/// Like [`spawn_env`], also returning the embedded MQTT broker's address from the output.
pub async fn spawn_full(
    dir: &Path,
    config: Option<&Path>,
    envs: &[(&str, &str)],
) -> (
    Child,
    String,
    std::net::SocketAddr,
    Arc<std::sync::Mutex<String>>,
) {
    spawn_prefixed(&[], dir, config, envs).await
}

/// Like [`spawn_full`], run through `prefix` (e.g. `prlimit --nofile=1024:65536`).
pub async fn spawn_prefixed(
    prefix: &[&str],
    dir: &Path,
    config: Option<&Path>,
    envs: &[(&str, &str)],
) -> (
    Child,
    String,
    std::net::SocketAddr,
    Arc<std::sync::Mutex<String>>,
) {
    spawn_listening(prefix, dir, config, envs, ("127.0.0.1:0", "127.0.0.1:0")).await
}

/// Like [`spawn_full`], on fixed HTTP and MQTT addresses (a restart that devices reconnect to).
pub async fn spawn_on(
    dir: &Path,
    http: &str,
    mqtt: &str,
) -> (
    Child,
    String,
    std::net::SocketAddr,
    Arc<std::sync::Mutex<String>>,
) {
    spawn_listening(&[], dir, None, &[], (http, mqtt)).await
}

/// A free port on 127.0.0.1 (bound, then let go), for [`spawn_on`].
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn spawn_listening(
    prefix: &[&str],
    dir: &Path,
    config: Option<&Path>,
    envs: &[(&str, &str)],
    (http, mqtt): (&str, &str),
) -> (
    Child,
    String,
    std::net::SocketAddr,
    Arc<std::sync::Mutex<String>>,
) {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.envs(envs.iter().copied());
    cmd.arg("run")
        .arg("--config")
        .arg(with_small_budget(dir, config));
    let mut child = cmd
        .arg("--data-dir")
        .arg(dir)
        .args(["--http-listen", http, "--mqtt-listen", mqtt])
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logs = Arc::new(std::sync::Mutex::new(String::new()));
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let sink = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = err_lines.next_line().await {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (base, mqtt) = tokio::time::timeout(Duration::from_secs(30), async {
        let mut base = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.trim().strip_prefix("API:") {
                base = Some(rest.trim().trim_end_matches("/api/v1/").to_owned());
            }
            if let Some(rest) = line.trim().strip_prefix("MQTT:") {
                let addr = rest.trim().strip_prefix("mqtt://").unwrap();
                let addr = addr.split_whitespace().next().unwrap().parse().unwrap();
                return (base.expect("API line first"), addr);
            }
        }
        panic!("orderd exited before printing its addresses");
    })
    .await
    .expect("orderd printed its addresses in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base, mqtt, logs)
}

/// The test's config (or none) with [`super::SMALL_BUDGET`]: a CI machine's temporary
/// directory may have less free space than the shipped budget (32 MiB reserve, refusal below
/// 32 MiB) wants for every daemon a test suite runs at once.
fn with_small_budget(dir: &Path, config: Option<&Path>) -> std::path::PathBuf {
    let (min, warn, reserve) = super::SMALL_BUDGET;
    let budget = format!("min_free_mb = {min}\nwarn_free_mb = {warn}\nreserve_mb = {reserve}\n");
    let text = config.map_or_else(String::new, |c| std::fs::read_to_string(c).unwrap());
    let text = if text.lines().any(|l| l.trim() == "[store]") {
        text.replacen("[store]\n", &format!("[store]\n{budget}"), 1)
    } else {
        format!("{text}\n[store]\n{budget}")
    };
    let path = dir.with_extension("test.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub async fn spawn(dir: &Path) -> (Child, String) {
    let (child, base, _) = spawn_with(dir, None).await;
    (child, base)
}

pub async fn login(client: &reqwest::Client, base: &str, user: &str, pw: &str) -> String {
    let v: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned()
}

/// GET `path` with a bearer token; the JSON answer.
pub async fn get_json(client: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// GET `/metrics` from the box itself; the text exposition.
pub async fn metrics(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
