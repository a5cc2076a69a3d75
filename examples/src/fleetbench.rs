//! Collector fleet benchmark (issue #5), by hand: `--sites` simulated boxes post a batch of
//! `--rate` events every second each (postcard + LZ4, like a box) to a running
//! `orderd-collector` for `--secs`, and the batch latencies are reported with what the
//! collector acknowledged. Site tokens come from `--tokens` (a JSON map site → token, written by
//! `scripts/bench-upload.sh`). Loopback only; stops by itself.

#[path = "bench_util.rs"]
mod bench_util;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bench_util::{Http, pct};
use clap::Parser;
use orderd_protocol::upload::{Ack, Batch, Compression, POSTCARD_MEDIA_TYPE};
use orderd_protocol::{
    Event, EventKind, FORMAT_VERSION, Order, OrderLine, OrderSource, OrderStatus, OrderType,
};

#[derive(Parser)]
struct Args {
    /// The collector's base URL (loopback).
    #[arg(long)]
    collector: String,
    /// JSON file: site id → upload token.
    #[arg(long)]
    tokens: std::path::PathBuf,
    /// Events per second per site.
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// Duration, seconds.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Instead of the fleet: post this many events for one site back to back, in batches of
    /// `--batch`, and report the collector's ingest rate (batches are encoded beforehand).
    #[arg(long)]
    drain: Option<u64>,
    /// Events per batch in `--drain` mode.
    #[arg(long, default_value_t = 5000)]
    batch: u64,
}

fn order(site: &str, n: u64, at: u64) -> Order {
    let line = |item: &str, qty: u32, price: i64| OrderLine {
        item_id: item.into(),
        name: item.into(),
        quantity: qty,
        unit_price: price,
        line_total: price * i64::from(qty),
        modifiers: Vec::new(),
        note: None,
        station: "grill".into(),
    };
    Order {
        id: format!("{site}-{n}"),
        number: format!("ORD-20261122-{n:03}"),
        business_day: 20_261_122,
        daily_seq: (n % 999) as u32 + 1,
        order_type: OrderType::Takeaway,
        source: OrderSource::Staff,
        status: OrderStatus::Placed,
        table_id: None,
        table_label: None,
        address: None,
        customer_name: None,
        customer_phone: None,
        note: None,
        items: vec![line("burger", 1, 1200), line("espresso", 2, 150)],
        subtotal: 1500,
        tax: 250,
        total: 1500,
        currency: "ALL".into(),
        created_at: at,
        updated_at: at,
        accepted_at: None,
        preparing_at: None,
        ready_at: None,
        finished_at: None,
        out_for_delivery_at: None,
        cancel_reason: None,
    }
}

/// `n` events from `seq`: orders placed, every other one accepted right after.
fn events(site: &str, seq: u64, n: u64) -> Vec<Event> {
    let at = 1_795_348_800_000;
    (seq..seq + n)
        .map(|s| Event {
            version: FORMAT_VERSION,
            seq: s,
            at,
            kind: if s % 2 == 1 {
                EventKind::OrderPlaced(Box::new(order(site, s, at)))
            } else {
                EventKind::StatusChanged {
                    order_id: format!("{site}-{}", s - 1),
                    number: String::new(),
                    from: OrderStatus::Placed,
                    to: OrderStatus::Accepted,
                    actor: "bench".into(),
                    note: None,
                    recall: false,
                }
            },
        })
        .collect()
}

/// One site's backlog, posted back to back: the collector's and PostgreSQL's ingest rate.
async fn drain(http: &Http, site: &str, token: &str, total: u64, batch: u64) -> anyhow::Result<()> {
    let mut bodies = Vec::new();
    let mut seq = 1;
    while seq <= total {
        let n = batch.min(total - seq + 1);
        let b = Batch::new(site, "main", &events(site, seq, n), Compression::Lz4)?;
        bodies.push(postcard::to_allocvec(&b)?);
        seq += n;
    }
    let t0 = Instant::now();
    let mut lat = Vec::new();
    for body in bodies {
        let t = Instant::now();
        let (status, b) = http
            .post_bytes("/v1/batches", token, POSTCARD_MEDIA_TYPE, body)
            .await?;
        anyhow::ensure!(
            status == 200,
            "status {status}: {}",
            String::from_utf8_lossy(&b)
        );
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "drained {total} events in {secs:.2} s: {:.0} events/s; batch p50 {:.1} ms p99 {:.1} ms",
        total as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tokens: HashMap<String, String> =
        serde_json::from_slice(&std::fs::read(&args.tokens).context("reading --tokens")?)?;
    let http = Arc::new(Http::new(&args.collector));
    if let Some(total) = args.drain {
        let (site, token) = tokens.iter().next().context("no site in --tokens")?;
        return drain(&http, site, token, total, args.batch).await;
    }
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(500);
    let mut tasks = Vec::new();
    for (i, (site, token)) in tokens.into_iter().enumerate() {
        let (http, latencies, failures, acked) = (
            Arc::clone(&http),
            Arc::clone(&latencies),
            Arc::clone(&failures),
            Arc::clone(&acked),
        );
        let (rate, secs) = (args.rate, args.secs);
        // Sites spread over the second, as real boxes would be.
        let offset = Duration::from_millis((i as u64 * 997) % 1000);
        tasks.push(tokio::spawn(async move {
            let mut seq = 1;
            for tick in 0..secs {
                tokio::time::sleep_until((start + offset + Duration::from_secs(tick)).into()).await;
                let evs = events(&site, seq, rate);
                let Ok(batch) = Batch::new(&site, "main", &evs, Compression::Lz4) else {
                    continue;
                };
                let body = postcard::to_allocvec(&batch).unwrap_or_default();
                let t = Instant::now();
                match http
                    .post_bytes("/v1/batches", &token, POSTCARD_MEDIA_TYPE, body)
                    .await
                {
                    Ok((200, b)) if postcard::from_bytes::<Ack>(&b).is_ok() => {
                        latencies
                            .lock()
                            .unwrap()
                            .push(t.elapsed().as_secs_f64() * 1000.0);
                        acked.fetch_add(rate, std::sync::atomic::Ordering::Relaxed);
                        seq += rate;
                    }
                    _ => {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "batches {} ok, {} failed; events acked {} ({:.0}/s over {elapsed:.0} s)",
        lat.len(),
        failures.load(std::sync::atomic::Ordering::Relaxed),
        acked.load(std::sync::atomic::Ordering::Relaxed),
        acked.load(std::sync::atomic::Ordering::Relaxed) as f64 / elapsed
    );
    println!(
        "batch latency: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
