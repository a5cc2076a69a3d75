//! Store-and-forward upload, end to end: the real daemon, the real `orderd-collector` binary
//! and a real PostgreSQL (a throwaway cluster per test), with a loopback fault proxy between
//! box and collector where a test needs the link to misbehave.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::TestServer;
use common::pg::Pg;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const REPORTS: &str = "head-office-test-token";

/// The collector binary beside the daemon's, brought up to date once per test run (cargo
/// builds only the package under test, and a stale collector would test old code).
fn collector_bin() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = std::process::Command::new(cargo)
            .args(["build", "-q", "-p", "orderd-collector"])
            .status()
            .unwrap();
        assert!(st.success(), "building orderd-collector");
    });
    Path::new(env!("CARGO_BIN_EXE_orderd")).with_file_name("orderd-collector")
}

/// A collector process on a fixed port (so the box's URL survives restarts).
struct Collector {
    child: Option<Child>,
    config: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Collector {
    async fn start(pg: &Pg, max_batch_bytes: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("collector.toml");
        std::fs::write(
            &config,
            format!(
                "max_batch_bytes = {max_batch_bytes}\npool_size = 4\n\n[database]\nvalue = \"{}\"\n\n[reports_token]\nvalue = \"{REPORTS}\"\n",
                pg.url()
            ),
        )
        .unwrap();
        let mut c = Self {
            child: None,
            config,
            port: common::pg::free_port(),
            _dir: dir,
        };
        c.spawn().await;
        c
    }

    async fn spawn(&mut self) {
        let mut child = Command::new(collector_bin())
            .arg("--config")
            .arg(&self.config)
            .args(["run", "--listen", &format!("127.0.0.1:{}", self.port)])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(l) = lines.next_line().await.unwrap() {
                if l.contains("listening on") {
                    return;
                }
            }
            panic!("the collector exited");
        })
        .await
        .expect("the collector started");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// SIGKILL.
    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.start_kill().unwrap();
            c.wait().await.unwrap();
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(collector_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds a site; its token.
    fn add_site(&self, id: &str) -> String {
        let out = self.cli(&["site", "add", id]);
        out.lines().last().unwrap().trim().to_owned()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Between box and collector: forwards, or answers 500 after forwarding (the collector stored
/// the batch, the box never hears so), or is down.
#[derive(Clone, Default)]
struct Proxy {
    fail_after_forward: Arc<AtomicU32>,
    down: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(target: String) -> (Self, String) {
        let proxy = Self::default();
        let p = proxy.clone();
        let client = reqwest::Client::new();
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (p, client, target) = (p.clone(), client.clone(), target.clone());
                async move {
                    use axum::response::IntoResponse as _;
                    if p.down.load(Ordering::SeqCst) {
                        return (StatusCode::BAD_GATEWAY, "down").into_response();
                    }
                    let mut req = client.post(format!("{target}/v1/batches")).body(body);
                    for h in ["authorization", "content-type"] {
                        if let Some(v) = headers.get(h) {
                            req = req.header(h, v.as_bytes());
                        }
                    }
                    let Ok(resp) = req.send().await else {
                        return (StatusCode::BAD_GATEWAY, "collector unreachable").into_response();
                    };
                    let status = resp.status();
                    let ct = resp.headers().get("content-type").cloned();
                    let bytes = resp.bytes().await.unwrap_or_default();
                    if p.fail_after_forward
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return (StatusCode::INTERNAL_SERVER_ERROR, "injected").into_response();
                    }
                    let mut r = (status, bytes).into_response();
                    if let Some(ct) = ct {
                        r.headers_mut().insert("content-type", ct);
                    }
                    r
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (proxy, format!("http://{addr}/v1/batches"))
    }
}

async fn box_with(url: String, token: String) -> TestServer {
    TestServer::start_with(move |c| {
        c.upload.enabled = true;
        c.upload.url = url;
        c.upload.token.value = token;
        c.upload.max_age_ms = 50;
        c.upload.batch_events = 50;
        c.upload.base_backoff_ms = 100;
        c.upload.max_backoff_ms = 400;
        c.upload.breaker_failures = 1000;
        c.upload.request_timeout_ms = 2000;
    })
    .await
}

async fn place(s: &TestServer, n: usize) {
    for _ in 0..n {
        let (st, v) = s
            .order(&s.admin, json!([{"item_id": "espresso", "quantity": 2}]))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
}

async fn upload_status(s: &TestServer) -> Value {
    let (st, v) = s.send("GET", "/api/v1/status", Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["upload"].clone()
}

/// Batches the collector did not take (refused, failed or unanswered), from `/metrics`.
async fn failed_uploads(s: &TestServer) -> u64 {
    s.metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("orderd_upload_batches_total{") && !l.contains("\"acked\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits until the collector holds the box's whole log; checks it is there exactly once.
async fn caught_up(s: &TestServer, pg: &Pg) {
    let last = s.state().events.last_seq();
    common::eventually(
        "the box caught up",
        Duration::from_secs(15),
        || async move { (upload_status(s).await["acked_seq"] == last).then_some(()) },
    )
    .await;
    assert_eq!(
        pg.query("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM events WHERE site_id = 'demo'"),
        format!("{last}|{last}|1|{last}"),
        "every event once, no gap"
    );
    assert_eq!(
        pg.query("SELECT acked_seq FROM site_cursors WHERE site_id = 'demo'"),
        last.to_string()
    );
    projected(pg).await;
}

/// Waits until the collector's projector has folded every stored event into the orders tables.
async fn projected(pg: &Pg) {
    common::eventually(
        "the projector caught up",
        Duration::from_secs(15),
        || async {
            let pending = pg.query("SELECT coalesce(sum(pending_events), 0) FROM report_lag");
            (pending == "0").then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_and_500s_lose_and_duplicate_nothing() {
    let pg = Pg::start();
    let mut collector = Collector::start(&pg, 8 * 1024 * 1024).await;
    let token = collector.add_site("demo");
    let (proxy, url) = Proxy::start(collector.url()).await;
    let s = box_with(url, token).await;
    place(&s, 30).await;
    caught_up(&s, &pg).await;

    // The collector is down for a while: the box keeps taking orders and keeps the backlog.
    collector.kill().await;
    place(&s, 30).await;
    common::eventually(
        "the uploader reports the outage",
        Duration::from_secs(10),
        || async {
            let st = upload_status(&s).await;
            (st["backlog_events"].as_u64().unwrap() >= 30 && st["last_error"].is_string())
                .then_some(())
        },
    )
    .await;
    collector.spawn().await;
    caught_up(&s, &pg).await;

    // 500s after the collector stored the batch: resent, stored once.
    proxy.fail_after_forward.store(3, Ordering::SeqCst);
    place(&s, 30).await;
    caught_up(&s, &pg).await;
    assert_eq!(proxy.fail_after_forward.load(Ordering::SeqCst), 0);
    // And a link that is simply down.
    proxy.down.store(true, Ordering::SeqCst);
    let failed_before = upload_status(&s).await["last_error"].clone();
    place(&s, 5).await;
    // Down until the uploader has met it (a new error), then up again.
    common::eventually(
        "the uploader meets the link down",
        Duration::from_secs(10),
        || async {
            let st = upload_status(&s).await;
            (st["last_error"].is_string() && st["last_error"] != failed_before).then_some(())
        },
    )
    .await;
    proxy.down.store(false, Ordering::SeqCst);
    caught_up(&s, &pg).await;
    assert_eq!(
        pg.query("SELECT count(*) FROM orders WHERE site_id = 'demo'"),
        "95"
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.order_id)"),
        "0"
    );
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("orderd_upload_batches_total{outcome=\"retry\"}"),
        "{metrics}"
    );

    // Reports: orders, revenue and top items of the day, for the head office only.
    let http = reqwest::Client::new();
    let day = pg.query("SELECT min(business_day)::text FROM orders");
    // The orders tables are derived: emptied, they are folded again from the stored events,
    // and a report asked for right away waits for that rather than count too little.
    pg.query(
        "BEGIN; DELETE FROM order_lines; DELETE FROM orders; DELETE FROM order_index;
         UPDATE projections SET projected_seq = 0; COMMIT",
    );
    let summary: Value = http
        .get(format!(
            "{}/v1/summary?from={day}&to={day}",
            collector.url()
        ))
        .bearer_auth(REPORTS)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(summary["orders"], 95, "{summary}");
    assert_eq!(summary["pending_events"], 0, "{summary}");
    let revenue = pg.query("SELECT sum(total) FROM orders");
    assert_eq!(summary["revenue"].to_string(), revenue);
    assert_eq!(summary["top_items"][0]["item_id"], "espresso");
    assert_eq!(summary["top_items"][0]["quantity"], 190);
    let r = http
        .get(format!(
            "{}/v1/summary?from={day}&to={day}",
            collector.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_killed_mid_stream_leaves_no_partial_batch() {
    let pg = Pg::start();
    let mut collector = Collector::start(&pg, 8 * 1024 * 1024).await;
    let token = collector.add_site("demo");
    let s = box_with(format!("{}/v1/batches", collector.url()), token).await;
    // Orders flow while the collector is killed three times: each time once it has taken new
    // batches (so at whatever point of a stream it is), and started again once the box has
    // seen it gone.
    let s = Arc::new(s);
    let stop = Arc::new(AtomicBool::new(false));
    let flow = {
        let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut placed = 0;
            while !stop.load(Ordering::Relaxed) {
                place(&s, 1).await;
                placed += 1;
            }
            placed
        })
    };
    let stored = || {
        pg.query("SELECT count(*) FROM events")
            .parse::<u64>()
            .unwrap()
    };
    for round in 0..3 {
        let before = stored();
        common::eventually(
            "the collector takes batches",
            Duration::from_secs(15),
            || async { (stored() > before).then_some(()) },
        )
        .await;
        collector.kill().await;
        let failures = failed_uploads(&s).await;
        common::eventually(
            &format!("the box saw the collector gone ({round})"),
            Duration::from_secs(10),
            || async { (failed_uploads(&s).await > failures).then_some(()) },
        )
        .await;
        collector.spawn().await;
    }
    stop.store(true, Ordering::Relaxed);
    let placed = flow.await.unwrap();
    caught_up(&s, &pg).await;
    assert_eq!(pg.query("SELECT count(*) FROM orders"), placed.to_string());
    assert_eq!(
        pg.query("SELECT count(*) FROM order_lines"),
        placed.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_gaps_bad_batches_and_sites_are_kept_apart() {
    let pg = Pg::start();
    let collector = Collector::start(&pg, 64 * 1024).await;
    let token = collector.add_site("demo");
    let other = collector.add_site("other");

    // A wrong token: 401, the backlog is kept, the status says why.
    let s = box_with(format!("{}/v1/batches", collector.url()), "os_wrong".into()).await;
    place(&s, 5).await;
    let st = common::eventually(
        "the uploader reports the refused token",
        Duration::from_secs(10),
        || async {
            let st = upload_status(&s).await;
            st["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("token"))
                .then_some(st)
        },
    )
    .await;
    assert_eq!(st["acked_seq"], 0);
    assert!(st["backlog_events"].as_u64().unwrap() >= 5);
    assert_eq!(pg.query("SELECT count(*) FROM events"), "0");
    let dir = s.stop().await;

    // The same box with the right token uploads its whole backlog.
    let s = TestServer::start_in(dir, {
        let url = format!("{}/v1/batches", collector.url());
        move |c| {
            c.upload.enabled = true;
            c.upload.url = url;
            c.upload.token.value = token;
            c.upload.max_age_ms = 50;
            c.upload.base_backoff_ms = 100;
            c.upload.max_backoff_ms = 400;
        }
    })
    .await;
    caught_up(&s, &pg).await;

    // The collector loses its tail (restored from an older backup): the next batch would leave
    // a gap, is refused with the seq to resend from, and the box rewinds to it.
    pg.query(
        "BEGIN; DELETE FROM events WHERE site_id = 'demo' AND seq > 3;
         UPDATE site_cursors SET acked_seq = 3 WHERE site_id = 'demo';
         UPDATE projections SET projected_seq = 3 WHERE site_id = 'demo'; COMMIT",
    );
    place(&s, 2).await;
    caught_up(&s, &pg).await;

    // Bad batches: garbage, too large, the wrong site, a gap — each with its reason.
    let http = reqwest::Client::new();
    let post = |token: &str, ct: &str, body: Vec<u8>| {
        http.post(format!("{}/v1/batches", collector.url()))
            .bearer_auth(token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = post(&other, "application/x-orderd-batch", vec![0xff; 10])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "bad_batch"
    );
    let r = post(&other, "application/json", vec![b' '; 100 * 1024])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let ev = |seq: u64| {
        json!({"version": 1, "seq": seq, "at": 1_795_348_800_000u64,
                              "kind": {"sold_out": {"item_id": "x"}}})
    };
    let batch = |site: &str, first: u64, n: u64| {
        serde_json::to_vec(&json!({"format_version": 1, "site_id": site, "box_id": "b",
            "first_seq": first, "last_seq": first + n - 1,
            "events": (first..first + n).map(ev).collect::<Vec<_>>()}))
        .unwrap()
    };
    let r = post(&other, "application/json", batch("demo", 1, 1))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "another site's data");
    let r = post(&other, "application/json", batch("other", 4, 2))
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "gap");
    assert_eq!(v["error"]["details"]["expected_seq"], 1);
    let r = post(&other, "application/json", batch("other", 1, 3))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["acked_seq"], 3);
    // A replay is acknowledged and stores nothing twice.
    let r = post(&other, "application/json", batch("other", 1, 3))
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["acked_seq"], 3);
    assert_eq!(
        pg.query("SELECT count(*) FROM events WHERE site_id = 'other'"),
        "3"
    );
    // The sites never touch each other's rows.
    let last = s.state().events.last_seq();
    assert_eq!(
        pg.query("SELECT count(*) FROM events WHERE site_id = 'demo'"),
        last.to_string()
    );
    let r = http
        .get(format!(
            "{}/v1/sites/demo/summary?from=2026-01-01&to=2026-12-31",
            collector.url()
        ))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a site reads only its own summary"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_killed_mid_upload_resumes_from_its_cursor() {
    use common::bin::{login, spawn_with};
    let pg = Pg::start();
    let collector = Collector::start(&pg, 8 * 1024 * 1024).await;
    let token = collector.add_site("demo");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("orderd.toml");
    std::fs::write(
        &config,
        format!(
            "[upload]\nenabled = true\nurl = \"{}/v1/batches\"\nmax_age_ms = 20\nbatch_events = 10\n\
             base_backoff_ms = 100\nmax_backoff_ms = 400\n\n[upload.token]\nvalue = \"{token}\"\n",
            collector.url()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    let status = |base: String, admin: String| {
        let http = http.clone();
        async move { common::bin::get_json(&http, &base, &admin, "/api/v1/status").await }
    };
    let (mut child, base, _) = spawn_with(&data, Some(&config)).await;
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let admin = login(&http, &base, "admin", pw.trim()).await;
    // Orders keep coming; the kill lands while batches are in flight.
    for i in 0..80 {
        let r = http
            .post(format!("{base}/api/v1/orders"))
            .bearer_auth(&admin)
            .json(
                &json!({"type": "takeaway", "customer_name": format!("k{i}"),
                          "items": [{"item_id": "espresso", "quantity": 1}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let acked_before = status(base.clone(), admin.clone()).await["upload"]["acked_seq"]
        .as_u64()
        .unwrap();
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();

    let (mut child, base, _) = spawn_with(&data, Some(&config)).await;
    let admin = login(&http, &base, "admin", pw.trim()).await;
    let st = common::eventually(
        "the restarted box uploaded its whole log",
        Duration::from_secs(10),
        || async {
            let st = status(base.clone(), admin.clone()).await;
            (st["upload"]["acked_seq"] == st["event_seq"]).then_some(st)
        },
    )
    .await;
    let last = st["event_seq"].as_u64().unwrap();
    assert!(
        st["upload"]["acked_seq"].as_u64().unwrap() >= acked_before,
        "resumed from its cursor, never before it"
    );
    assert_eq!(
        pg.query("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM events"),
        format!("{last}|{last}|1|{last}")
    );
    projected(&pg).await;
    assert_eq!(pg.query("SELECT count(*) FROM orders"), "80");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_logs_one_clear_error_per_backoff_period() {
    use common::bin::{login, spawn_with};
    let pg = Pg::start();
    let collector = Collector::start(&pg, 8 * 1024 * 1024).await;
    collector.add_site("demo");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("orderd.toml");
    std::fs::write(
        &config,
        format!(
            "[upload]\nenabled = true\nurl = \"{}/v1/batches\"\nmax_age_ms = 20\n\
             base_backoff_ms = 400\nmax_backoff_ms = 800\n\n[upload.token]\nvalue = \"os_not-the-token\"\n",
            collector.url()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let (mut child, base, logs) = spawn_with(&data, Some(&config)).await;
    let http = reqwest::Client::new();
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let admin = login(&http, &base, "admin", pw.trim()).await;
    let r = http
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&admin)
        .json(&json!({"type": "takeaway", "items": [{"item_id": "espresso", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // A window of 3 s of refusals; the log is then read for how often they were reported.
    common::quiet(Duration::from_secs(3)).await;
    let errors: Vec<String> = logs
        .lock()
        .unwrap()
        .lines()
        .filter(|l| l.contains("upload failed"))
        .map(str::to_owned)
        .collect();
    // Backoff from 400 ms (jittered down to half) capped at 800 ms: at most ~8 periods in 3 s.
    assert!(
        !errors.is_empty() && errors.len() <= 9,
        "one error per backoff period, got {}: {errors:?}",
        errors.len()
    );
    assert!(errors.iter().all(|l| l.contains("token")), "{errors:?}");
    assert!(
        !errors.iter().any(|l| l.contains("os_not-the-token")),
        "the token is never logged"
    );
    let st = common::bin::get_json(&http, &base, &admin, "/api/v1/status").await;
    assert_eq!(st["upload"]["acked_seq"], 0, "{st}");
    assert!(
        st["upload"]["backlog_events"].as_u64().unwrap() >= 1,
        "backlog kept: {st}"
    );
    assert_eq!(pg.query("SELECT count(*) FROM events"), "0");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// The box's figures, read back through its API, against the collector's tables, line by line.
async fn same_lines_at_the_collector(s: &TestServer, pg: &Pg, ids: &[String]) {
    for id in ids {
        let (st, o) = s
            .send("GET", &format!("/api/v1/orders/{id}"), Some(&s.admin), None)
            .await;
        assert_eq!(st, StatusCode::OK, "{o}");
        let want: Vec<String> = o["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                format!(
                    "{}|{}|{}",
                    l["item_id"].as_str().unwrap(),
                    l["quantity"],
                    l["line_total"]
                )
            })
            .collect();
        let got = pg.query(&format!(
            "SELECT coalesce(string_agg(item_id || '|' || quantity || '|' || line_total, ',' ORDER BY line_no), '')
             FROM order_lines WHERE site_id = 'demo' AND order_id = '{id}'"
        ));
        assert_eq!(got, want.join(","), "order {id}: box {o}");
        let totals = pg.query(&format!(
            "SELECT subtotal || '|' || tax || '|' || total FROM orders WHERE site_id = 'demo' AND order_id = '{id}'"
        ));
        assert_eq!(
            totals,
            format!("{}|{}|{}", o["subtotal"], o["tax"], o["total"]),
            "order {id}"
        );
    }
}

/// Reads the status and checks its backlog against the log at that moment.
async fn backlog_matches_the_log(s: &TestServer) -> Value {
    let before = s.state().events.last_seq();
    let st = upload_status(s).await;
    let after = s.state().events.last_seq();
    let acked = st["acked_seq"].as_u64().unwrap();
    let backlog = st["backlog_events"].as_u64().unwrap();
    assert!(
        (before.saturating_sub(acked)..=after.saturating_sub(acked)).contains(&backlog),
        "backlog {backlog} is the log's last seq ({before}..{after}) minus the cursor {acked}: {st}"
    );
    st
}

/// An edit is an event of its own: whatever the timing of uploads (the collector down, up,
/// SIGKILLed mid-stream), the collector ends with the box's lines and totals, and `order_placed`
/// arrives as it was placed. The upload status is computed from the log whenever it is read, and
/// the box is sending again within 2 s of the collector answering, with the shipped backoff and
/// breaker (the health probe ends their wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_while_the_collector_is_away_reach_it_as_they_happened() {
    let pg = Pg::start();
    let mut collector = Collector::start(&pg, 8 * 1024 * 1024).await;
    let token = collector.add_site("demo");
    let url = format!("{}/v1/batches", collector.url());
    let s = TestServer::start_with(move |c| {
        c.upload.enabled = true;
        c.upload.url = url;
        c.upload.token.value = token;
        c.upload.max_age_ms = 50;
        c.upload.batch_events = 50;
        c.upload.request_timeout_ms = 2000;
    })
    .await;
    let lemonade = || json!([{"item_id": "lemonade", "quantity": 1}]);
    let edit = async |s: &TestServer, id: String| {
        s.send(
            "PATCH",
            &format!("/api/v1/orders/{id}/items"),
            Some(&s.admin),
            Some(json!({"add": [{"item_id": "espresso", "quantity": 5}]})),
        )
        .await
    };
    let mut ids = Vec::new();
    let place_one = async |s: &TestServer| {
        let (st, v) = s.order(&s.admin, lemonade()).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    };
    // Uploaded as placed, then edited while the collector is away.
    let mut early = Vec::new();
    for _ in 0..10 {
        early.push(place_one(&s).await);
    }
    caught_up(&s, &pg).await;
    collector.kill().await;
    for id in &early[..5] {
        let (st, v) = edit(&s, id.clone()).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    // Placed and edited while the collector is away: "placed" must not carry the edit.
    let mut offline = Vec::new();
    for _ in 0..10 {
        let id = place_one(&s).await;
        let (st, v) = edit(&s, id.clone()).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        offline.push(id);
        backlog_matches_the_log(&s).await;
    }
    // The failures have opened the breaker (5 in a row) and grown the backoff meanwhile.
    let st = common::eventually(
        "the uploader kept failing while the collector was away",
        Duration::from_secs(30),
        || async {
            let st = backlog_matches_the_log(&s).await;
            s.metrics()
                .await
                .lines()
                .find(|l| l.starts_with("orderd_upload_batches_total{outcome=\"retry\"}"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .is_some_and(|n| n >= 5)
                .then_some(st)
        },
    )
    .await;
    assert!(st["backlog_events"].as_u64().unwrap() >= 20, "{st}");
    let acked_before = upload_status(&s).await["acked_seq"].as_u64().unwrap();
    collector.spawn().await;
    common::eventually(
        "the backlog started draining after the collector answered",
        Duration::from_secs(2),
        || async {
            (upload_status(&s).await["acked_seq"].as_u64().unwrap() > acked_before).then_some(())
        },
    )
    .await;
    // More edits and orders while the collector is SIGKILLed mid-stream, then back.
    for id in &early[5..] {
        let (st, v) = edit(&s, id.clone()).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    collector.kill().await;
    for id in &offline[..3] {
        let (st, v) = s
            .send(
                "PATCH",
                &format!("/api/v1/orders/{id}/items"),
                Some(&s.admin),
                Some(json!({"set": [{"line": 0, "quantity": 0}]})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "the lemonade removed: {v}");
    }
    collector.spawn().await;
    caught_up(&s, &pg).await;
    ids.extend(early);
    ids.extend(offline.iter().cloned());
    same_lines_at_the_collector(&s, &pg, &ids).await;
    // Each order_placed at the collector is the order as placed: one lemonade, no espresso.
    for id in &offline {
        let placed = pg.query(&format!(
            "SELECT count(*), count(*) FILTER (WHERE body::text LIKE '%espresso%')
             FROM events WHERE site_id = 'demo' AND kind = 'order_placed' AND body::text LIKE '%{id}%'"
        ));
        assert_eq!(
            placed, "1|0",
            "one order_placed for {id}, without the later edit"
        );
    }
    // The chain's item figures equal the box's.
    let day = pg.query("SELECT min(business_day)::text FROM orders");
    let (st, mine) = s
        .send(
            "GET",
            &format!("/api/v1/analytics/daily?date={day}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{mine}");
    for item in mine["top_items"].as_array().unwrap() {
        let theirs = pg.query(&format!(
            "SELECT coalesce(sum(quantity), 0) FROM item_daily WHERE site_id = 'demo' AND item_id = '{}'",
            item["item_id"].as_str().unwrap()
        ));
        assert_eq!(theirs, item["quantity"].to_string(), "{item}");
    }
    s.stop().await;
}

/// The collector stops gracefully on SIGTERM (what systemd sends), not only on ctrl-c: it
/// exits by itself with status 0 instead of being killed at the stop timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_stops_on_sigterm() {
    let pg = Pg::start();
    let mut collector = Collector::start(&pg, 1024 * 1024).await;
    let mut child = collector.child.take().unwrap();
    let pid = child.id().unwrap().to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the collector exited by itself on SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// A day of checks (split tender, tips, a discount, a comp, a void, a refund, cash rounding)
/// closed by a Z on the box: the collector's money for that day — per method, tips, discounts,
/// voids, refunds and the Z itself — equals the box's Z to the minor unit, also when its
/// tables are folded again from the stored events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collectors_money_for_a_day_equals_the_boxs_z() {
    let pg = Pg::start();
    let collector = Collector::start(&pg, 8 * 1024 * 1024).await;
    let token = collector.add_site("demo");
    let s = box_with(format!("{}/v1/batches", collector.url()), token).await;
    let admin = s.admin.clone();
    let send = |row: &'static str, p: String, b: Value| {
        let s = &s;
        let admin = admin.clone();
        async move {
            let (st, v) = s.send(row, &p, Some(&admin), Some(b)).await;
            assert!(st.is_success(), "{row} {p}: {st} {v}");
            v
        }
    };
    let mut checks = Vec::new();
    for (table, items) in [
        (
            "t1",
            json!([{"item_id": "burger", "quantity": 2, "modifiers": ["medium"]}, {"item_id": "lemonade", "quantity": 3}]),
        ),
        (
            "t2",
            json!([{"item_id": "greek_salad", "quantity": 1}, {"item_id": "espresso", "quantity": 4}]),
        ),
        (
            "t3",
            json!([{"item_id": "tave_kosi", "quantity": 1}, {"item_id": "lemonade", "quantity": 1}]),
        ),
    ] {
        let ord = send(
            "POST",
            "/api/v1/orders".into(),
            json!({"type": "dine_in", "table_id": table, "items": items}),
        )
        .await;
        let chk = send(
            "POST",
            format!("/api/v1/orders/{}/check", ord["id"].as_str().unwrap()),
            Value::Null,
        )
        .await;
        checks.push(chk);
    }
    let id = |i: usize| checks[i]["id"].as_u64().unwrap();
    let line = |i: usize, item: &str| {
        checks[i]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["item_id"] == item)
            .unwrap()["id"]
            .clone()
    };
    send(
        "POST",
        "/api/v1/cash".into(),
        json!({"kind": "float", "amount": 5000}),
    )
    .await;
    // Check 1: 10 % off, split tender with a card tip.
    send(
        "POST",
        format!("/api/v1/checks/{}/discounts", id(0)),
        json!({"percent_bp": 1000, "reason": "Regular guest"}),
    )
    .await;
    let chk = send(
        "POST",
        format!("/api/v1/checks/{}/payments", id(0)),
        json!({"method": "cash", "amount": 1000, "tendered": 2000}),
    )
    .await;
    let rest = chk["check"]["balance"].as_i64().unwrap();
    send(
        "POST",
        format!("/api/v1/checks/{}/payments", id(0)),
        json!({"method": "card", "amount": rest, "tip": 250}),
    )
    .await;
    // Check 2: the salad comped, one espresso voided, paid by card; then 100 refunded.
    send(
        "POST",
        format!("/api/v1/checks/{}/discounts", id(1)),
        json!({"line": line(1, "greek_salad"), "comp": true, "reason": "Wrong order"}),
    )
    .await;
    let chk = send(
        "POST",
        format!("/api/v1/checks/{}/voids", id(1)),
        json!({"line": line(1, "espresso"), "quantity": 1, "reason": "Not ordered"}),
    )
    .await;
    let due = chk["balance"].as_i64().unwrap();
    send(
        "POST",
        format!("/api/v1/checks/{}/payments", id(1)),
        json!({"method": "card", "amount": due}),
    )
    .await;
    send(
        "POST",
        format!("/api/v1/checks/{}/refunds", id(1)),
        json!({"amount": 100, "method": "card", "reason": "Cold coffee"}),
    )
    .await;
    // Check 3: all cash, with a tip.
    let chk = send("GET", format!("/api/v1/checks/{}", id(2)), Value::Null).await;
    let due = chk["balance"].as_i64().unwrap();
    send(
        "POST",
        format!("/api/v1/checks/{}/payments", id(2)),
        json!({"method": "cash", "amount": due, "tip": 100}),
    )
    .await;
    let zrep = send("POST", "/api/v1/reports/z".into(), json!({})).await;
    let fig = &zrep["figures"];
    assert_eq!(fig["checks"], 3);
    caught_up(&s, &pg).await;
    projected(&pg).await;
    let day = fig["business_day"].as_u64().unwrap();
    let date = format!("{}-{:02}-{:02}", day / 10_000, day / 100 % 100, day % 100);
    let http = reqwest::Client::new();
    let compare = |summary: &Value| {
        let money = summary["money_per_site_day"].as_array().unwrap();
        assert_eq!(money.len(), 1, "{summary}");
        let row = &money[0];
        for k in [
            "checks",
            "covers",
            "sales",
            "discounts",
            "comps",
            "voids",
            "net",
            "tips",
            "refunds",
        ] {
            assert_eq!(row[k], fig[k], "{k}: collector {row} box {fig}");
        }
        for theirs in summary["payments_per_site_day"].as_array().unwrap() {
            let mine = fig["methods"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["method"] == theirs["method"])
                .unwrap();
            for (a, b) in [
                ("amount", "amount"),
                ("tips", "tips"),
                ("rounding", "rounding"),
                ("refunds", "refunds"),
                ("payments", "count"),
            ] {
                assert_eq!(theirs[a], mine[b], "{a} of {}", theirs["method"]);
            }
        }
        let zs = summary["z_reports"].as_array().unwrap();
        assert_eq!(zs.len(), 1);
        assert_eq!(zs[0]["number"], zrep["number"]);
        assert_eq!(zs[0]["net"], fig["net"]);
        assert_eq!(zs[0]["tips"], fig["tips"]);
        assert_eq!(zs[0]["refunds"], fig["refunds"]);
    };
    let get = || async {
        http.get(format!(
            "{}/v1/summary?from={date}&to={date}",
            collector.url()
        ))
        .bearer_auth(REPORTS)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
    };
    compare(&get().await);
    // The money tables are derived too: folded again from the events, the same figures.
    pg.query(
        "BEGIN; DELETE FROM payments; DELETE FROM check_closings; DELETE FROM refunds;
         DELETE FROM z_reports; DELETE FROM order_lines; DELETE FROM orders;
         DELETE FROM order_index; UPDATE projections SET projected_seq = 0; COMMIT",
    );
    compare(&get().await);
    s.stop().await;
}
