//! Payments benchmark (issue #25): 64 clients record payments at once, each on its own checks,
//! with an `Idempotency-Key` each (so every payment is durable before its answer), timed from
//! send to answer; then a day of 5,000 settled checks is made and an X report and the Z report
//! over it are timed. Loopback only; stops by itself.
//!
//!   paybench --base http://127.0.0.1:8080 --admin-password-file DIR/initial-admin-password \
//!            [--clients 64] [--payments 20000] [--day-checks 5000]

#[path = "bench_util.rs"]
mod bench_util;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use bench_util::{Http, pct};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The daemon's HTTP base URL.
    #[arg(long)]
    base: String,
    /// The first-run admin password file.
    #[arg(long)]
    admin_password_file: std::path::PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Payments to record in all.
    #[arg(long, default_value_t = 20_000)]
    payments: usize,
    /// Settled checks in the day the X and Z reports sum.
    #[arg(long, default_value_t = 5_000)]
    day_checks: usize,
}

/// Payments one check takes in this benchmark: a table paying part cash, part card, in
/// shares (a check takes at most 200, but a real one a few).
const PER_CHECK: usize = 4;

/// Places a takeaway order and opens its check; the check id.
async fn new_check(http: &Http, items: &Value) -> anyhow::Result<u64> {
    let (st, o) = http
        .call(
            "POST",
            "/api/v1/orders",
            &json!({"type": "takeaway", "items": items}),
        )
        .await?;
    anyhow::ensure!(st == 201, "order: {st} {o}");
    let id = o["id"].as_str().context("order id")?;
    let (st, c) = http
        .call("POST", &format!("/api/v1/orders/{id}/check"), &Value::Null)
        .await?;
    anyhow::ensure!(st == 200, "check: {st} {c}");
    c["id"].as_u64().context("check id")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut http = Http::new(&args.base);
    http.login_admin(&args.admin_password_file).await?;
    let http = Arc::new(http);

    // --- payments at N concurrent clients ---
    let per_client = args.payments.div_ceil(args.clients);
    let big = json!([{"item_id": "lemonade", "quantity": 99}, {"item_id": "lemonade", "quantity": 99, "note": "b"}]);
    let mut plans = Vec::new();
    for _ in 0..args.clients {
        let mut checks = Vec::new();
        for _ in 0..per_client.div_ceil(PER_CHECK) {
            checks.push(new_check(&http, &big).await?);
        }
        plans.push(checks);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, checks) in plans.into_iter().enumerate() {
        let http = Arc::clone(&http);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            let mut errors = 0usize;
            for n in 0..per_client {
                let check = checks[n / PER_CHECK];
                let method = if n % 2 == 0 { "card" } else { "cash" };
                let t = Instant::now();
                let r = http
                    .post_idem(
                        &format!("/api/v1/checks/{check}/payments"),
                        &format!("b{c}-{n}"),
                        &json!({"method": method, "amount": 100, "tip": n % 3}),
                    )
                    .await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                if !matches!(r, Ok((201, _))) {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "payments: {} at {} clients in {secs:.2} s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {errors} errors",
        lat.len(),
        args.clients,
        lat.len() as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
    );

    // --- a day of settled checks ---
    let made = Instant::now();
    let per = args.day_checks.div_ceil(args.clients);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let http = Arc::clone(&http);
        let n = per.min(args.day_checks.saturating_sub(c * per));
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                let items = json!([{"item_id": "espresso", "quantity": 1 + i % 3}, {"item_id": "lemonade", "quantity": 1}]);
                let id = new_check(&http, &items).await?;
                let (_, chk) = http.call("GET", &format!("/api/v1/checks/{id}"), &Value::Null).await?;
                let due = chk["balance"].as_i64().context("balance")?;
                let method = ["cash", "card"][i % 2];
                let (st, v) = http
                    .post_idem(
                        &format!("/api/v1/checks/{id}/payments"),
                        &format!("d{c}-{i}"),
                        &json!({"method": method, "amount": due, "tip": 50}),
                    )
                    .await?;
                anyhow::ensure!(st == 201 && v["check"]["state"] == "closed", "{st} {v}");
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "day: {} checks settled in {:.1} s",
        args.day_checks,
        made.elapsed().as_secs_f64()
    );
    let mut xs = Vec::new();
    let mut report = Value::Null;
    for _ in 0..20 {
        let t = Instant::now();
        let (st, v) = http.call("GET", "/api/v1/reports/x", &Value::Null).await?;
        xs.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(st == 200, "X: {st} {v}");
        report = v;
    }
    xs.sort_by(f64::total_cmp);
    println!(
        "X report over {} closed checks and {} open: p50 {:.1} ms, max {:.1} ms",
        report["checks"],
        report["open_checks"].as_array().map_or(0, Vec::len),
        pct(&xs, 0.5),
        pct(&xs, 1.0)
    );
    let t = Instant::now();
    let (st, z) = http
        .call(
            "POST",
            "/api/v1/reports/z",
            &json!({"force_reason": "benchmark"}),
        )
        .await?;
    let z_ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(st == 201, "Z: {st} {z}");
    println!(
        "Z report {} over {} checks (net {}): {z_ms:.1} ms",
        z["number"], z["figures"]["checks"], z["figures"]["net"]
    );
    Ok(())
}
