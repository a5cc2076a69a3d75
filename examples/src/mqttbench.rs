//! MQTT benchmark: orders at a fixed rate over HTTP, tickets timed at subscribed devices.
//!
//! Registers 20 printers, 10 displays and 20 buzzers (by default) on a running daemon, connects
//! them as real MQTT clients, places orders at `--rate` per second for `--secs`, and reports
//! the latency from the order's commit to its ticket arriving at each display of the station,
//! lost tickets, printed jobs and the daemon's peak RSS (`--pid`). The commit's time comes from
//! the daemon's own log (`--commit-log`: its writer's `batch durable` trace lines, which carry
//! the wall clock when each batch of events became durable); without it, two bounds are
//! reported instead; print jobs are timed from the commit to each printer the same way. The
//! displays run on a thread of their own, apart from the printer simulators, as separate
//! devices would. `--idle N` instead connects N idle devices and reports the daemon's RSS
//! before and after. Loopback only; stops by itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use orderd_protocol::{FORMAT_VERSION, JobState, JobStatus, PrintJob, TicketChange, TicketEvent};
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// HTTP base URL of the daemon (loopback).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// MQTT port of the daemon's broker (or of the external broker).
    #[arg(long, default_value_t = 1883)]
    mqtt_port: u16,
    /// Admin password (file written at first start).
    #[arg(long)]
    admin_password_file: std::path::PathBuf,
    /// Orders per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Duration of the load, seconds.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    #[arg(long, default_value_t = 20)]
    printers: usize,
    #[arg(long, default_value_t = 10)]
    displays: usize,
    #[arg(long, default_value_t = 20)]
    buzzers: usize,
    /// The daemon's pid, to sample its RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Connect this many idle displays and report the RSS they cost, instead of the load.
    #[arg(long)]
    idle: Option<usize>,
    /// Device id prefix (devices are registered once and reused).
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// A bump bar per station bumps its part of each order this many seconds after it was
    /// placed (the order is then ready), so boards hold what a busy kitchen has open; 0 = never.
    #[arg(long, default_value_t = 10)]
    ready_after: u64,
    /// The daemon's log, run with `RUST_LOG=orderd::store::writer=trace`: read after the load
    /// for the time each event became durable, to time tickets from their commit exactly.
    #[arg(long)]
    commit_log: Option<std::path::PathBuf>,
    /// Printers on the LAN the box drives itself: this many ESC/POS printer emulators on
    /// loopback, registered by address, on a thread of their own.
    #[arg(long, default_value_t = 0)]
    net_printers: usize,
}

#[path = "bench_util.rs"]
mod bench_util;
use bench_util::{Http, cpu_secs, pct, rss_kb};

/// (order number, arrival, display, ms since the ticket's batch clock reading, event seq,
/// arrival on the wall clock in µs)
type Arrival = (u64, Instant, String, f64, u64, u64);
/// Order number → (request sent, response received).
type Sent = HashMap<u64, (Instant, Option<Instant>)>;

const STATIONS: [&str; 3] = ["grill", "cold", "bar"];

async fn connect(
    port: u16,
    id: &str,
    pw: &str,
) -> anyhow::Result<(AsyncClient, rumqttc::EventLoop)> {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_credentials(id, pw)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1024 * 1024, 64 * 1024);
    let (client, mut el) = AsyncClient::new(opts, 64);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    loop {
        let ev = el
            .poll()
            .await
            .with_context(|| format!("connecting {id}"))?;
        if let Event::Incoming(Packet::ConnAck(_)) = ev {
            return Ok((client, el));
        }
    }
}

/// Registers (or reuses, from `<prefix>-passwords.json`) a device; returns its password.
async fn device(
    http: &Http,
    store: &mut HashMap<String, String>,
    id: &str,
    kind: &str,
    station: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(pw) = store.get(id) {
        return Ok(pw.clone());
    }
    let stations: Vec<&str> = station.into_iter().collect();
    let (st, v) = http
        .call(
            "POST",
            "/api/v1/devices",
            &json!({"id": id, "kind": kind, "stations": stations}),
        )
        .await?;
    anyhow::ensure!(st == 201, "registering {id}: {st} {v}");
    let pw = v["password"].as_str().context("password")?.to_owned();
    store.insert(id.to_owned(), pw.clone());
    Ok(pw)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut http = Http::new(&args.base);
    http.login_admin(&args.admin_password_file).await?;
    let http = Arc::new(http);
    let pw_file = std::path::PathBuf::from(format!("{}-passwords.json", args.prefix));
    let mut store: HashMap<String, String> = std::fs::read(&pw_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();

    if let Some(n) = args.idle {
        let mut ids = Vec::new();
        for i in 0..n {
            let id = format!("{}-idle-{i}", args.prefix);
            let pw = device(&http, &mut store, &id, "display", Some("grill")).await?;
            ids.push((id, pw));
        }
        std::fs::write(&pw_file, serde_json::to_vec(&store)?)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = rss_kb(args.pid);
        let mut conns = Vec::new();
        let mut errors = 0;
        for (id, pw) in &ids {
            match connect(args.mqtt_port, id, pw).await {
                Ok((c, mut el)) => {
                    c.subscribe("orderd/demo/station/grill/board", QoS::AtLeastOnce)
                        .await?;
                    conns.push((
                        c,
                        tokio::spawn(async move { while el.poll().await.is_ok() {} }),
                    ));
                }
                Err(e) => {
                    errors += 1;
                    eprintln!("{e:#}");
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = rss_kb(args.pid);
        println!(
            "idle devices: {} connected, {errors} errors; daemon RSS {:.1} MB -> {:.1} MB (+{:.1} MB, {:.1} KB per device)",
            conns.len(),
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            (after as f64 - before as f64) / 1024.0,
            (after as f64 - before as f64) / conns.len().max(1) as f64
        );
        return Ok(());
    }

    // Devices.
    // Sized for the whole run up front: growing them mid-run (copying megabytes under the lock
    // every display task takes) showed up as slow tickets that the daemon never caused.
    let total = u64::from(args.rate) * args.secs;
    let capacity = usize::try_from(total).unwrap_or(0);
    let arrivals: Arc<Mutex<Vec<Arrival>>> = Arc::new(Mutex::new(Vec::with_capacity(
        capacity.saturating_mul(args.displays),
    )));
    let printed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut per_station = HashMap::new();
    let mut net_per_station: HashMap<&str, u64> = HashMap::new();
    // Displays run on a thread of their own: on a kitchen each is a device with its own CPU,
    // and here they must not wait for a thread of the benchmark's runtime behind the printer
    // simulators' work (that wait would be counted as ticket latency).
    let displays = display_thread(args.mqtt_port, arrivals.clone());
    for i in 0..args.displays {
        let station = STATIONS[i % STATIONS.len()];
        *per_station.entry(station).or_insert(0u64) += 1;
        let id = format!("{}-d{i}", args.prefix);
        let pw = device(&http, &mut store, &id, "display", Some(station)).await?;
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        displays
            .send((id, pw, station, ready_tx))
            .map_err(|_| anyhow::anyhow!("the display thread stopped"))?;
        ready.await??;
    }
    // (event seq, first arrival on the wall clock in µs) of every job at every printer; the
    // seq is the first part of the job id.
    let jobs_at: Arc<Mutex<Vec<(u64, u64)>>> = Arc::new(Mutex::new(Vec::with_capacity(
        capacity.saturating_mul(args.printers),
    )));
    for i in 0..args.printers {
        let station = STATIONS[i % STATIONS.len()];
        let id = format!("{}-p{i}", args.prefix);
        let pw = device(&http, &mut store, &id, "printer", Some(station)).await?;
        let (c, mut el) = connect(args.mqtt_port, &id, &pw).await?;
        c.subscribe(format!("orderd/demo/printer/{id}/job"), QoS::AtLeastOnce)
            .await?;
        c.publish(
            format!("orderd/demo/device/{id}/availability"),
            QoS::AtLeastOnce,
            true,
            "online",
        )
        .await?;
        let printed = printed.clone();
        let jobs_at = jobs_at.clone();
        tasks.push(tokio::spawn(async move {
            // Sized for the run: growing it rehashes every id seen so far, and 20 printers
            // doing that at once held up the whole benchmark (its display timestamps too).
            let mut seen = std::collections::HashSet::with_capacity(capacity);
            while let Ok(ev) = el.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = ev
                    && let Ok(job) = serde_json::from_slice::<PrintJob>(&p.payload)
                {
                    if seen.insert(job.job_id.clone()) {
                        if let Some(seq) = job.job_id.split('-').next().and_then(|s| s.parse().ok())
                        {
                            jobs_at.lock().unwrap().push((seq, wall_us()));
                        }
                        printed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let r = JobStatus {
                        version: FORMAT_VERSION,
                        job_id: job.job_id,
                        status: JobState::Printed,
                    };
                    let _ = c.try_publish(
                        format!("orderd/demo/printer/{id}/job/status"),
                        QoS::AtLeastOnce,
                        false,
                        serde_json::to_vec(&r).unwrap(),
                    );
                }
            }
        }));
    }
    let emulators = net_printer_thread(args.net_printers)?;
    for (i, emu) in emulators.iter().enumerate() {
        let station = STATIONS[i % STATIONS.len()];
        *net_per_station.entry(station).or_insert(0u64) += 1;
        let id = format!("{}-np{i}", args.prefix);
        let (st, v) = http
            .call(
                "POST",
                "/api/v1/devices",
                &json!({"id": id, "kind": "printer", "stations": [station], "tcp": emu.addr().to_string()}),
            )
            .await?;
        anyhow::ensure!(st == 201 || st == 409, "registering {id}: {st} {v}");
    }
    let rings = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for i in 0..args.buzzers {
        let station = STATIONS[i % STATIONS.len()];
        let id = format!("{}-b{i}", args.prefix);
        let pw = device(&http, &mut store, &id, "buzzer", Some(station)).await?;
        let (c, mut el) = connect(args.mqtt_port, &id, &pw).await?;
        c.subscribe(format!("orderd/demo/buzzer/{id}/set"), QoS::AtMostOnce)
            .await?;
        let rings = rings.clone();
        tasks.push(tokio::spawn(async move {
            let _keep = c;
            while let Ok(ev) = el.poll().await {
                if let Event::Incoming(Packet::Publish(_)) = ev {
                    rings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    // The kitchen: a bump bar per station that bumps its part of each order `ready_after`
    // seconds after it was placed; with every station's part done the order is ready.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, String)>();
    if args.ready_after > 0 {
        let mut bars = Vec::new();
        for station in STATIONS {
            let id = format!("{}-bb-{station}", args.prefix);
            let pw = device(&http, &mut store, &id, "bump_bar", Some(station)).await?;
            let (c, mut el) = connect(args.mqtt_port, &id, &pw).await?;
            c.publish(
                format!("orderd/demo/device/{id}/availability"),
                QoS::AtLeastOnce,
                true,
                "online",
            )
            .await?;
            tasks.push(tokio::spawn(
                async move { while el.poll().await.is_ok() {} },
            ));
            bars.push((c, format!("orderd/demo/station/{station}/bump")));
        }
        let after = Duration::from_secs(args.ready_after);
        tasks.push(tokio::spawn(async move {
            while let Some((placed, order)) = done_rx.recv().await {
                tokio::time::sleep_until((placed + after).into()).await;
                for (c, topic) in &bars {
                    let bump =
                        json!({"version": FORMAT_VERSION, "ticket": order, "action": "bump"});
                    let _ = c
                        .publish(topic, QoS::AtLeastOnce, false, bump.to_string())
                        .await;
                }
            }
        }));
    }
    std::fs::write(&pw_file, serde_json::to_vec(&store)?)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "devices connected: {} printers, {} network printers, {} displays, {} buzzers",
        args.printers, args.net_printers, args.displays, args.buzzers
    );

    // Load.
    let sent: Arc<Mutex<Sent>> = Arc::new(Mutex::new(HashMap::with_capacity(capacity)));
    let start = Instant::now();
    let cpu_start = (cpu_secs(args.pid), cpu_secs(None));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_kb(args.pid)));
    // Peak RSS per minute of the run, to see whether it levels off.
    let per_minute: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sampler = {
        let (peak, per_minute) = (peak.clone(), per_minute.clone());
        let pid = args.pid;
        tokio::spawn(async move {
            loop {
                let rss = rss_kb(pid);
                peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                let minute = (start.elapsed().as_secs() / 60) as usize;
                {
                    let mut pm = per_minute.lock().unwrap();
                    if pm.len() <= minute {
                        pm.resize(minute + 1, 0);
                    }
                    pm[minute] = pm[minute].max(rss);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut reqs = Vec::new();
    for n in 0..total {
        tick.tick().await;
        let (http, sent, failed, done) =
            (http.clone(), sent.clone(), failed.clone(), done_tx.clone());
        reqs.push(tokio::spawn(async move {
            let body = json!({"type": "takeaway", "items": [
                {"item_id": "burger", "quantity": 1, "modifiers": ["medium"], "note": format!("b{n}")},
                {"item_id": "greek_salad", "quantity": 1, "note": format!("b{n}")},
                {"item_id": "espresso", "quantity": 1, "note": format!("b{n}")}]});
            let placed = Instant::now();
            sent.lock().unwrap().insert(n, (placed, None));
            match http.call("POST", "/api/v1/orders", &body).await {
                Ok((201, v)) => {
                    if let Some(s) = sent.lock().unwrap().get_mut(&n) {
                        s.1 = Some(Instant::now());
                    }
                    if let Some(id) = v["id"].as_str() {
                        let _ = done.send((placed, id.to_owned()));
                    }
                }
                _ => {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for r in reqs {
        let _ = r.await;
    }
    let load_secs = start.elapsed().as_secs_f64();
    let cpu = (
        cpu_secs(args.pid) - cpu_start.0,
        cpu_secs(None) - cpu_start.1,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    sampler.abort();
    let sent = sent.lock().unwrap().clone();
    let arrivals = arrivals.lock().unwrap().clone();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut lat: Vec<f64> = arrivals
        .iter()
        .filter_map(|(n, at, ..)| Some(ms(at.duration_since(sent.get(n)?.0))))
        .collect();
    lat.sort_by(f64::total_cmp);
    // Response -> ticket: the commit happened before the response was sent, so this is a lower
    // bound of commit -> ticket (negative when the ticket beat the response).
    let mut after_response: Vec<f64> = arrivals
        .iter()
        .filter_map(|(n, at, ..)| {
            let r = sent.get(n)?.1?;
            Some(if *at >= r { ms(*at - r) } else { -ms(r - *at) })
        })
        .collect();
    after_response.sort_by(f64::total_cmp);
    // The batch's clock reading (ms, taken before the commit) → arrival: an upper bound of
    // commit → ticket that includes the commit itself and up to 1 ms of truncation.
    let mut since_batch: Vec<f64> = arrivals.iter().map(|a| a.3).collect();
    since_batch.sort_by(f64::total_cmp);
    // Exact: the event's durable time (from the daemon's log) → arrival, same wall clock.
    let durable = match &args.commit_log {
        Some(path) => durable_times(path)?,
        None => HashMap::new(),
    };
    // Milliseconds from the event's durable moment to `at_us` (negative if before).
    let since_durable = |seq: u64, at_us: u64| {
        let d = *durable.get(&seq)?;
        Some((at_us as f64 - d as f64) / 1000.0)
    };
    let exact_of = |a: &Arrival| since_durable(a.4, a.5);
    let mut exact: Vec<f64> = arrivals.iter().filter_map(exact_of).collect();
    exact.sort_by(f64::total_cmp);
    // The same for print jobs at the printers (their simulators share the benchmark's
    // runtime, so this includes waiting for one of its threads).
    let mut job_exact: Vec<f64> = jobs_at
        .lock()
        .unwrap()
        .iter()
        .filter_map(|&(seq, at)| since_durable(seq, at))
        .collect();
    job_exact.sort_by(f64::total_cmp);
    let expected: u64 = total * per_station.values().sum::<u64>();
    let mut unique = std::collections::HashSet::new();
    for (n, _, dev, ..) in &arrivals {
        unique.insert((*n, dev.clone()));
    }
    println!(
        "orders {total} at {}/s ({} failed); tickets expected {expected}, received {} ({} unique), lost {}",
        args.rate,
        failed.load(std::sync::atomic::Ordering::Relaxed),
        arrivals.len(),
        unique.len(),
        expected.saturating_sub(unique.len() as u64)
    );
    println!(
        "order sent -> ticket at display: p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 0.999),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    if args.commit_log.is_some() {
        println!(
            "commit (durable) -> ticket at display, {} of {} timed: p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            exact.len(),
            arrivals.len(),
            pct(&exact, 0.5),
            pct(&exact, 0.99),
            pct(&exact, 0.999),
            exact.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "commit (durable) -> print job at printer, {} timed: p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            job_exact.len(),
            pct(&job_exact, 0.5),
            pct(&job_exact, 0.99),
            pct(&job_exact, 0.999),
            job_exact.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!(
        "batch clock -> ticket at display (>= commit -> ticket): p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        pct(&since_batch, 0.5),
        pct(&since_batch, 0.99),
        pct(&since_batch, 0.999),
        since_batch.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "response -> ticket at display (<= commit -> ticket): p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        pct(&after_response, 0.5),
        pct(&after_response, 0.99),
        pct(&after_response, 0.999),
        after_response.last().copied().unwrap_or(f64::NAN)
    );
    // The slowest tickets, to tell a slow commit (request -> response) from a slow hub or broker.
    // Slowest by the exact figure when there is one, else by the upper bound.
    let key = |a: &Arrival| exact_of(a).unwrap_or(a.3);
    let mut slow: Vec<&Arrival> = arrivals.iter().collect();
    slow.sort_by(|a, b| key(b).total_cmp(&key(a)));
    let mut listed = std::collections::HashSet::new();
    slow.retain(|a| listed.insert(a.0)); // each order once, at its slowest display
    for a in slow.into_iter().take(8) {
        let (n, at, dev, since_batch, ..) = a;
        let Some((s, r)) = sent.get(n) else { continue };
        println!(
            "  slow: order {n} at {:.1} s to {dev}: request -> response {} ms, request -> ticket {:.1} ms, batch clock -> ticket {since_batch:.1} ms, commit -> ticket {}",
            ms(s.duration_since(start)) / 1000.0,
            r.map_or_else(|| "-".to_owned(), |r| format!("{:.1}", ms(r - *s))),
            ms(*at - *s),
            exact_of(a).map_or_else(|| "-".to_owned(), |e| format!("{e:.1} ms")),
        );
    }
    println!(
        "CPU over the load: daemon {:.2} cores, benchmark {:.2} cores",
        cpu.0 / load_secs,
        cpu.1 / load_secs
    );
    println!(
        "jobs printed (unique ids): {}; buzzer commands received: {}",
        printed.load(std::sync::atomic::Ordering::Relaxed),
        rings.load(std::sync::atomic::Ordering::Relaxed)
    );
    if args.pid.is_some() {
        println!(
            "daemon peak RSS {:.1} MB",
            peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0
        );
        let pm = per_minute.lock().unwrap();
        let list: Vec<String> = pm
            .iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect();
        println!("daemon peak RSS per minute (MB): {}", list.join(" "));
    }
    if !emulators.is_empty() {
        // Each ticket carries its order's `b{n}` note: the order it prints. The last byte's
        // time against the request (an upper bound of commit -> last byte) and against the
        // response (a lower bound: the commit came before the response).
        let mut upper = Vec::new();
        let mut lower = Vec::new();
        let mut unique = std::collections::HashSet::new();
        for (p, emu) in emulators.iter().enumerate() {
            for (text, at_us) in emu.printed_with_times() {
                let Some(n) = text
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix('b').and_then(|d| d.parse::<u64>().ok()))
                else {
                    continue;
                };
                if !unique.insert((p, n)) {
                    continue;
                }
                let Some((placed, responded)) = sent.get(&n) else {
                    continue;
                };
                let at = wall_to_instant(at_us);
                upper.push(signed_ms(at, *placed));
                if let Some(r) = responded {
                    lower.push(signed_ms(at, *r));
                }
            }
        }
        upper.sort_by(f64::total_cmp);
        lower.sort_by(f64::total_cmp);
        let expected: u64 = total * net_per_station.values().sum::<u64>();
        println!(
            "network printers: jobs expected {expected}, printed {} unique, lost {}",
            unique.len(),
            expected.saturating_sub(unique.len() as u64)
        );
        let spread = |v: &[f64]| {
            format!(
                "p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
                pct(v, 0.5),
                pct(v, 0.99),
                pct(v, 0.999),
                v.last().copied().unwrap_or(f64::NAN)
            )
        };
        println!(
            "order sent -> last byte at a network printer (>= commit -> last byte): {}",
            spread(&upper)
        );
        println!(
            "response -> last byte at a network printer (<= commit -> last byte): {}",
            spread(&lower)
        );
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// Milliseconds from `from` to `to`, negative when `to` came first.
fn signed_ms(to: Instant, from: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64() * 1000.0
    } else {
        -(from - to).as_secs_f64() * 1000.0
    }
}

/// The monotonic instant of a wall-clock time (µs since the epoch), by the offset now.
fn wall_to_instant(at_us: u64) -> Instant {
    let now_us = wall_us();
    let now = Instant::now();
    if at_us <= now_us {
        now.checked_sub(Duration::from_micros(now_us - at_us))
            .unwrap_or(now)
    } else {
        now + Duration::from_micros(at_us - now_us)
    }
}

/// Starts `n` printer emulators on loopback, served by a runtime on a thread of their own (a
/// printer has its own CPU; here they must not wait behind the benchmark's other work).
fn net_printer_thread(n: usize) -> anyhow::Result<Vec<orderd_plugins::printer_emu::Emulator>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the printers' runtime starts");
        rt.block_on(async move {
            let mut emus = Vec::new();
            for _ in 0..n {
                match orderd_plugins::printer_emu::Emulator::start().await {
                    Ok(e) => emus.push(e),
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::anyhow!("printer emulator: {e}")));
                        return;
                    }
                }
            }
            let _ = tx.send(Ok(emus));
            std::future::pending::<()>().await;
        });
    });
    rx.recv()?
}

/// A display simulator to start: id, password, station, and where to say it has subscribed.
type DisplaySpec = (
    String,
    String,
    &'static str,
    tokio::sync::oneshot::Sender<anyhow::Result<()>>,
);

/// Starts the thread the display simulators run on (a runtime of its own) and returns where to
/// send the displays to start. Each records every ticket it receives in `arrivals`.
fn display_thread(
    port: u16,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
) -> tokio::sync::mpsc::UnboundedSender<DisplaySpec> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DisplaySpec>();
    let thread = move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the display runtime starts");
        rt.block_on(async move {
            while let Some((id, pw, station, ready)) = rx.recv().await {
                let arrivals = arrivals.clone();
                tokio::spawn(async move {
                    let subscribed = async {
                        let (c, el) = connect(port, &id, &pw).await?;
                        c.subscribe(
                            format!("orderd/demo/station/{station}/ticket"),
                            QoS::AtLeastOnce,
                        )
                        .await?;
                        anyhow::Ok((c, el))
                    };
                    let (c, el) = match subscribed.await {
                        Ok(v) => v,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    display(c, el, id, &arrivals).await;
                });
            }
            // The process ends with `main`; the displays run until then.
            std::future::pending::<()>().await;
        });
    };
    std::thread::Builder::new()
        .name("displays".into())
        .spawn(thread)
        .expect("the display thread starts");
    tx
}

/// A display: records each ticket it receives, with its order number, seq and arrival time.
async fn display(
    _client: AsyncClient,
    mut el: rumqttc::EventLoop,
    id: String,
    arrivals: &Mutex<Vec<Arrival>>,
) {
    while let Ok(ev) = el.poll().await {
        if let Event::Incoming(Packet::Publish(p)) = ev {
            let now = Instant::now();
            let wall_us = wall_us();
            let arrived_ms = wall_us as f64 / 1000.0;
            if let Ok(t) = serde_json::from_slice::<TicketEvent>(&p.payload)
                && let TicketChange::New { lines } = &t.change
                && let Some(n) = lines
                    .iter()
                    .find_map(|l| l.note.as_deref()?.strip_prefix('b')?.parse().ok())
            {
                let since_batch = arrived_ms - t.placed_at as f64;
                arrivals
                    .lock()
                    .unwrap()
                    .push((n, now, id.clone(), since_batch, t.seq, wall_us));
            }
        }
    }
}

/// Now on the wall clock, in µs (the daemon's `durable_us` is on the same clock).
fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Event seq → when it became durable (wall clock, µs), from the writer's `batch durable` trace
/// lines in the daemon's log (colour codes, if any, are skipped).
fn durable_times(path: &std::path::Path) -> anyhow::Result<HashMap<u64, u64>> {
    let log =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::new();
    for line in log.lines().filter(|l| l.contains("batch durable")) {
        let mut plain = String::with_capacity(line.len());
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // CSI … letter
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                plain.push(c);
            }
        }
        let field = |name: &str| -> Option<u64> {
            plain
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
        };
        if let (Some(first), Some(last), Some(at)) =
            (field("first_seq"), field("last_seq"), field("durable_us"))
        {
            for seq in first..=last {
                out.insert(seq, at);
            }
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no `batch durable` lines with seqs in {} (run the daemon with RUST_LOG=orderd::store::writer=trace)",
        path.display()
    );
    Ok(out)
}
