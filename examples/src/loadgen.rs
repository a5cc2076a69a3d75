//! Load generator for orderd: N keep-alive HTTP/1.1 clients place orders as fast as the daemon
//! answers (3 items, one with a modifier, a unique Idempotency-Key each) and report throughput,
//! latency percentiles, errors, and optionally the daemon's RSS and store size.
//!
//! It talks only to the address given (loopback by default), stops after `--orders` orders or
//! `--max-secs` seconds, whichever comes first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Place orders against a running orderd and measure"
)]
struct Args {
    /// Daemon address (host:port), loopback only.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Username to sign in with.
    #[arg(long, default_value = "admin")]
    user: String,
    /// File holding the password (e.g. <data_dir>/initial-admin-password).
    #[arg(long)]
    password_file: std::path::PathBuf,
    /// Concurrent keep-alive clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Orders to place in all.
    #[arg(long, default_value_t = 200_000)]
    orders: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    max_secs: u64,
    /// PID of the daemon, to sample its RSS during the run.
    #[arg(long)]
    pid: Option<u32>,
    /// The daemon's store file, to report bytes per order.
    #[arg(long)]
    store_file: Option<std::path::PathBuf>,
    /// Take every order through the kitchen after placing it (accepted, preparing, ready,
    /// picked up): five events per order, and the box ends with no open order, as after a day.
    #[arg(long)]
    lifecycle: bool,
}

/// The statuses `--lifecycle` walks a takeaway order through.
const LIFECYCLE: [&str; 4] = ["accepted", "preparing", "ready", "picked_up"];

async fn connect(
    addr: &str,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn login(addr: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let mut s = connect(addr).await?;
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    let req = Request::post("/api/v1/auth/login")
        .header("host", addr)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let resp = s.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("login failed: {status} {}", String::from_utf8_lossy(&bytes));
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    Ok(v["token"].as_str().context("no token")?.to_owned())
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx]) / 1000.0
}

/// Each order has a line for each of the demo menu's three stations: grill, cold and bar.
const BODY: &str = r#"{"type":"takeaway","items":[{"item_id":"burger","quantity":2,"modifiers":["medium"]},{"item_id":"greek_salad","quantity":1},{"item_id":"lemonade","quantity":1}]}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let password = std::fs::read_to_string(&args.password_file)
        .with_context(|| format!("reading {}", args.password_file.display()))?;
    let token = Arc::new(format!(
        "Bearer {}",
        login(&args.addr, &args.user, password.trim()).await?
    ));
    let run_id = std::process::id();
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let rss_start = args.pid.and_then(rss_kb);
    let peak = Arc::new(AtomicU64::new(rss_start.unwrap_or(0)));
    let sampling = Arc::new(AtomicBool::new(true));
    if let Some(pid) = args.pid {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kb) = rss_kb(pid) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (addr, token, next, errors) = (
            args.addr.clone(),
            token.clone(),
            next.clone(),
            errors.clone(),
        );
        let total = args.orders;
        let lifecycle = args.lifecycle;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity((total as usize / 64).max(16));
            let mut sender = connect(&addr).await?;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total || Instant::now() > deadline {
                    break;
                }
                let req = Request::post("/api/v1/orders")
                    .header("host", addr.as_str())
                    .header("content-type", "application/json")
                    .header("authorization", token.as_str())
                    .header("idempotency-key", format!("lg-{run_id}-{n}"))
                    .body(Full::new(Bytes::from_static(BODY.as_bytes())))?;
                let t = Instant::now();
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let body = resp.into_body().collect().await?.to_bytes();
                lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if status.as_u16() != 201 {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if !lifecycle {
                    continue;
                }
                let order: serde_json::Value = serde_json::from_slice(&body)?;
                let id = order["id"].as_str().context("no order id")?;
                for to in LIFECYCLE {
                    let req = Request::post(format!("/api/v1/orders/{id}/status"))
                        .header("host", addr.as_str())
                        .header("content-type", "application/json")
                        .header("authorization", token.as_str())
                        .body(Full::new(Bytes::from(format!(r#"{{"status":"{to}"}}"#))))?;
                    sender.ready().await?;
                    let resp = sender.send_request(req).await?;
                    let status = resp.status();
                    let _ = resp.into_body().collect().await?;
                    if status.as_u16() != 200 {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed();
    sampling.store(false, Ordering::Relaxed);
    all.sort_unstable();
    let done = all.len() as f64;
    println!("clients            {}", args.clients);
    println!("orders             {}", all.len());
    println!("errors (non-2xx)   {}", errors.load(Ordering::Relaxed));
    println!("elapsed            {:.2} s", elapsed.as_secs_f64());
    println!(
        "throughput         {:.0} orders/s",
        done / elapsed.as_secs_f64()
    );
    println!(
        "latency ms         p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        percentile(&all, 1.0)
    );
    if let Some(kb) = rss_start {
        println!(
            "daemon RSS         start {:.1} MB  peak {:.1} MB",
            kb as f64 / 1024.0,
            peak.load(Ordering::Relaxed) as f64 / 1024.0
        );
    }
    if let Some(path) = &args.store_file {
        let bytes = std::fs::metadata(path)?.len();
        println!("store file         {:.1} MB", bytes as f64 / 1_048_576.0);
    }
    Ok(())
}
