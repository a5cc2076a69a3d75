//! Live-stream benchmark (issue #6): N staff clients follow `GET /api/v1/events`; the bench
//! changes an order's status once per round and measures how long each change takes to reach
//! every client (from just before the request is sent, so commit included), and the daemon's
//! RSS before and after the clients connect. Loopback only; stops by itself.
//!
//!   ssebench --base http://127.0.0.1:8080 --admin-password-file DIR/initial-admin-password \
//!            --pid PID [--clients 500] [--rounds 100]

#[path = "bench_util.rs"]
mod bench_util;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_util::{Http, pct, rss_kb};
use clap::Parser;
use http_body_util::BodyExt as _;
use serde_json::json;
use tokio::sync::{Mutex, mpsc};

#[derive(Parser)]
struct Args {
    /// The daemon's HTTP base URL.
    #[arg(long)]
    base: String,
    /// The first-run admin password file.
    #[arg(long)]
    admin_password_file: std::path::PathBuf,
    /// The daemon's pid (for RSS).
    #[arg(long)]
    pid: Option<u32>,
    /// Live clients.
    #[arg(long, default_value_t = 500)]
    clients: usize,
    /// Status changes to time.
    #[arg(long, default_value_t = 100)]
    rounds: usize,
}

/// Follows the staff stream and reports `(order_id, arrival)` for every status change.
async fn follow(
    base: String,
    token: String,
    tx: mpsc::UnboundedSender<(String, Instant)>,
    ready: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = hyper::Request::builder()
        .uri(format!("{base}/api/v1/events"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::new())?;
    let resp = client.request(req).await?;
    anyhow::ensure!(resp.status() == 200, "stream answered {}", resp.status());
    let mut body = resp.into_body();
    let mut buf = String::new();
    let mut told = false;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&data));
        while let Some(i) = buf.find("\n\n") {
            let chunk: String = buf.drain(..i + 2).collect();
            if !told && chunk.contains("event: hello") {
                told = true;
                let _ = ready.send(());
            }
            if chunk.contains("event: status_changed")
                && let Some(d) = chunk.lines().find_map(|l| l.strip_prefix("data: "))
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(d)
                && let Some(id) = v["data"]["order_id"].as_str()
            {
                let _ = tx.send((id.to_owned(), now));
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut http = Http::new(&args.base);
    http.login_admin(&args.admin_password_file).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kb(args.pid);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    for _ in 0..args.clients {
        tokio::spawn(follow(
            http.base.clone(),
            http.token.clone(),
            tx.clone(),
            ready_tx.clone(),
        ));
    }
    drop(tx);
    for _ in 0..args.clients {
        tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("a client could not connect"))?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = rss_kb(args.pid);
    println!(
        "{} clients connected; RSS {} → {} KiB (+{} KiB)",
        args.clients,
        rss_before,
        rss_connected,
        rss_connected.saturating_sub(rss_before)
    );

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let collector = {
        let sent = Arc::clone(&sent);
        let expected = args.clients * args.rounds;
        tokio::spawn(async move {
            let mut arrivals: Vec<(String, Instant)> = Vec::with_capacity(expected);
            while arrivals.len() < expected {
                match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
                    Ok(Some(a)) => arrivals.push(a),
                    _ => break,
                }
            }
            let sent = sent.lock().await;
            let mut ms: Vec<f64> = arrivals
                .iter()
                .filter_map(|(id, at)| {
                    sent.get(id)
                        .map(|t0| at.duration_since(*t0).as_secs_f64() * 1000.0)
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            ms
        })
    };
    for _ in 0..args.rounds {
        let (st, o) = http
            .call(
                "POST",
                "/api/v1/orders",
                &json!({"type": "takeaway", "items": [{"item_id": "espresso", "quantity": 1}]}),
            )
            .await?;
        anyhow::ensure!(st == 201, "order: {st} {o}");
        let id = o["id"].as_str().unwrap_or_default().to_owned();
        sent.lock().await.insert(id.clone(), Instant::now());
        http.set_status(&id, "accepted").await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ms = collector.await?;
    let rss_after = rss_kb(args.pid);
    println!(
        "status change → {} clients × {} rounds: {} deliveries (expected {}); p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.clients,
        args.rounds,
        ms.len(),
        args.clients * args.rounds,
        pct(&ms, 0.50),
        pct(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "RSS: idle {rss_before} KiB, {} clients connected {rss_connected} KiB, after the rounds {rss_after} KiB (growth {} KiB)",
        args.clients,
        rss_after.max(rss_connected).saturating_sub(rss_before)
    );
    Ok(())
}
