//! Outbox benchmark (issue #4), by hand: starts the `orderd` binary against a scripted fake
//! WhatsApp Cloud API on loopback that answers in 5 ms, then
//!
//! 1. **outage**: queues `--messages` status messages (orders accepted by staff, each with a
//!    verified contact) while the fake answers 503 for `--outage-secs`, brings it back, and
//!    measures how fast the queue drains and that every message was delivered exactly once;
//! 2. **rate**: with `rate_per_sec = --rate`, sends `--rate-messages` and reports the busiest
//!    one-second window seen by the fake.
//!
//! Loopback only; stops by itself.

#[path = "bench_util.rs"]
mod bench_util;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bench_util::Http;
use clap::Parser;
use orderd_plugins::fake::{Fake, Flavor, Reply, Seen};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// The daemon binary.
    #[arg(long, default_value = "target/release/orderd")]
    bin: PathBuf,
    /// Status messages queued during the outage.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// How long the provider is down, seconds.
    #[arg(long, default_value_t = 60)]
    outage_secs: u64,
    /// Configured send rate for the rate check (messages/s).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Messages sent in the rate check.
    #[arg(long, default_value_t = 2_000)]
    rate_messages: usize,
}

const PHONE: &str = "+355690001234";
const ANSWER: Duration = Duration::from_millis(5);

/// A running daemon; killed when dropped.
struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(fake: &Fake, rate: u32) -> String {
    format!(
        "[otp]\nmax_requests_per_client = 1000\n\n\
         [messaging]\nconcurrency = 64\nbase_backoff_ms = 500\nmax_backoff_ms = 5000\n\
         breaker_failures = 5\nbreaker_pause_secs = 5\nmax_attempts = 1000\n\n\
         [whatsapp]\nenabled = true\nbase_url = \"{}\"\nphone_number_id = \"1\"\nrate_per_sec = {rate}\n\n\
         [whatsapp.access_token]\nvalue = \"bench\"\n",
        fake.url()
    )
}

async fn start(bin: &Path, fake: &Fake, rate: u32) -> anyhow::Result<(Daemon, Arc<Http>)> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("orderd.toml");
    std::fs::write(&cfg, config(fake, rate))?;
    let data = dir.path().join("data");
    let mut child = Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let out = child.stdout.take().context("stdout")?;
    let base = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(out).lines();
        let base = lines.by_ref().map_while(Result::ok).find_map(|l| {
            l.trim()
                .strip_prefix("API:")
                .map(|r| r.trim().trim_end_matches("/api/v1/").to_owned())
        });
        // Keep draining so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        base
    })
    .await?
    .context("the daemon printed no API line")?;
    let mut http = Http::new(&base);
    http.login_admin(&data.join("initial-admin-password"))
        .await?;
    Ok((Daemon { child, _dir: dir }, Arc::new(http)))
}

/// Verifies the bench phone through the fake and returns the customer token.
async fn customer(http: &Http, fake: &Fake) -> anyhow::Result<String> {
    let before = fake.seen().len();
    let (st, v) = http
        .call_as(
            "",
            "POST",
            "/api/v1/otp/request",
            &json!({"phone": PHONE, "channel": "whatsapp"}),
        )
        .await?;
    anyhow::ensure!(st == 202, "otp request: {st} {v}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = fake.seen().get(before) {
            break s.body["template"]["components"][0]["parameters"][0]["text"]
                .as_str()
                .context("code")?
                .to_owned();
        }
        anyhow::ensure!(Instant::now() < deadline, "no code arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (st, v) = http
        .call_as(
            "",
            "POST",
            "/api/v1/otp/verify",
            &json!({"phone": PHONE, "code": code}),
        )
        .await?;
    anyhow::ensure!(st == 200, "otp verify: {st} {v}");
    Ok(v["token"].as_str().context("token")?.to_owned())
}

/// Places `n` orders with the customer token (16 at a time); their ids.
async fn place(http: &Arc<Http>, token: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let (_, tables) = http
        .call("GET", "/api/v1/tables", &serde_json::Value::Null)
        .await?;
    let table = tables["data"][0]["qr_token"]
        .as_str()
        .context("a table")?
        .to_owned();
    run_parallel(n, |_| {
        let (http, token, table) = (Arc::clone(http), token.to_owned(), table.clone());
        async move {
            let (st, v) = http
                .call_as(
                    &token,
                    "POST",
                    "/api/v1/orders",
                    &json!({"type": "dine_in", "table_token": table,
                            "items": [{"item_id": "espresso", "quantity": 1}]}),
                )
                .await?;
            anyhow::ensure!(st == 201, "order: {st} {v}");
            Ok(v["id"].as_str().context("id")?.to_owned())
        }
    })
    .await
}

/// Accepts every order as staff (16 at a time): one status message each.
async fn accept(http: &Arc<Http>, ids: &[String]) -> anyhow::Result<()> {
    run_parallel(ids.len(), |i| {
        let (http, id) = (Arc::clone(http), ids[i].clone());
        async move { http.set_status(&id, "accepted").await }
    })
    .await?;
    Ok(())
}

async fn run_parallel<T, F, Fut>(n: usize, f: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = Arc::clone(&sem).acquire_owned().await?;
        let fut = f(i);
        tasks.push(tokio::spawn(async move {
            let out = fut.await;
            drop(permit);
            out
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

/// Successful status-message calls the fake answered.
fn delivered_status(fake: &Fake) -> Vec<Seen> {
    fake.delivered()
        .into_iter()
        .filter(|s| s.body["template"]["name"] == "orderd_status")
        .collect()
}

async fn wait_delivered(fake: &Fake, n: usize, within: Duration) -> anyhow::Result<Vec<Seen>> {
    let deadline = Instant::now() + within;
    loop {
        let got = delivered_status(fake);
        if got.len() >= n {
            return Ok(got);
        }
        if Instant::now() > deadline {
            bail!("only {} of {n} delivered", got.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum of a metric's samples whose line starts with `name`.
async fn metric(http: &Http, name: &str) -> anyhow::Result<f64> {
    let text = http.text("/metrics").await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fake = Fake::start(Flavor::WhatsApp).await?;
    fake.set_default(Reply::Stall(ANSWER));

    println!(
        "== outage: {} status messages, provider down for {} s",
        args.messages, args.outage_secs
    );
    let (d, http) = start(&args.bin, &fake, 1000).await?;
    let token = customer(&http, &fake).await?;
    let ids = place(&http, &token, args.messages).await?;
    fake.set_default(Reply::Fail(503, 0, "Service Unavailable".into()));
    let down_at = Instant::now();
    let t = Instant::now();
    accept(&http, &ids).await?;
    println!(
        "queued {} messages in {:.1} s (accepts over HTTP)",
        ids.len(),
        t.elapsed().as_secs_f64()
    );
    let up_at = down_at + Duration::from_secs(args.outage_secs);
    tokio::time::sleep_until(up_at.into()).await;
    let calls_in_outage = fake.seen().len();
    fake.set_default(Reply::Stall(ANSWER));
    let up = Instant::now();
    let got = wait_delivered(&fake, args.messages, Duration::from_secs(600)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got_after = delivered_status(&fake).len();
    let first = got
        .iter()
        .map(|s| s.at)
        .filter(|&a| a >= up)
        .min()
        .context("first")?;
    let last = got.iter().map(|s| s.at).max().context("last")?;
    let drain = (last - first).as_secs_f64();
    let sent_metric = metric(
        &http,
        "orderd_messages_total{channel=\"whatsapp\",outcome=\"sent\"}",
    )
    .await?;
    println!("provider calls during the outage: {calls_in_outage} (breaker open most of it)");
    println!(
        "first delivery {:.2} s after the provider came back",
        (first - up).as_secs_f64()
    );
    println!(
        "drained {} messages in {drain:.2} s: {:.0} messages/s (target >= 500)",
        got.len(),
        got.len() as f64 / drain
    );
    println!(
        "exactly once: {got_after} status deliveries at the fake for {} messages; daemon counted {sent_metric} sent (incl. 1 code)",
        args.messages
    );
    anyhow::ensure!(
        got_after == args.messages,
        "duplicate or missing deliveries"
    );
    drop(d);

    println!(
        "== rate: {} messages at rate_per_sec = {}",
        args.rate_messages, args.rate
    );
    let fake = Fake::start(Flavor::WhatsApp).await?;
    fake.set_default(Reply::Stall(ANSWER));
    let (_daemon, http) = start(&args.bin, &fake, args.rate).await?;
    let token = customer(&http, &fake).await?;
    let ids = place(&http, &token, args.rate_messages).await?;
    accept(&http, &ids).await?;
    let got = wait_delivered(&fake, args.rate_messages, Duration::from_secs(600)).await?;
    let mut at: Vec<Instant> = got.iter().map(|s| s.at).collect();
    at.sort();
    let mut busiest = 0;
    let mut lo = 0;
    for hi in 0..at.len() {
        while at[hi] - at[lo] >= Duration::from_secs(1) {
            lo += 1;
        }
        busiest = busiest.max(hi - lo + 1);
    }
    let span = (at[at.len() - 1] - at[0]).as_secs_f64();
    println!(
        "mean {:.1} messages/s over {span:.1} s; busiest 1-second window {busiest} (configured {})",
        (at.len() - 1) as f64 / span,
        args.rate
    );
    anyhow::ensure!(
        busiest as u32 <= args.rate + 1,
        "the configured rate was exceeded"
    );
    Ok(())
}
