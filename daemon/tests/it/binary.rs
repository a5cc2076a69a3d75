//! End-to-end tests of the real `orderd` binary: the CLI, and a crash (SIGKILL) under load.
use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use common::bin::{BIN, get_json, login, spawn, spawn_env, spawn_full, spawn_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_order() {
    stop_under_load(Stop::Kill).await;
}

/// SIGTERM mid-load: a graceful stop within the deadline (exit status 0), then every
/// acknowledged order is there after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_order() {
    stop_under_load(Stop::Term).await;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill,
    Term,
}

async fn stop_under_load(how: Stop) {
    let dir = tempfile::tempdir().unwrap();
    // No checkpoint during the run: every acknowledged order is durable only through the
    // write-ahead log, so the restart must replay all of it.
    let config = dir.path().join("orderd.toml");
    std::fs::write(
        &config,
        "[store]\ncheckpoint_interval_ms = 600000\ncheckpoint_batches = 1000000\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let (mut child, base, logs) = spawn_with(&data, Some(&config)).await;
    let client = reqwest::Client::new();
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let token = login(&client, &base, "admin", pw.trim()).await;

    let acked: Arc<std::sync::Mutex<BTreeMap<String, Value>>> = Arc::default();
    let refusals = Refusals::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..16 {
        let (client, base, token, acked, stop, refusals) = (
            client.clone(),
            base.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
            refusals.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"type": "takeaway", "customer_name": format!("w{w}-{n}"), "items": [
                    {"item_id": "burger", "quantity": 2, "modifiers": ["medium", "bacon"]},
                    {"item_id": "espresso", "quantity": 1},
                    {"item_id": "lemonade", "quantity": 3, "note": "cold"}]});
                let resp = client
                    .post(format!("{base}/api/v1/orders"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("w{w}-{n}"))
                    .json(&body)
                    .send()
                    .await;
                let Ok(resp) = resp else { break };
                if resp.status() != 201 {
                    refusals.note(resp).await;
                } else if let Ok(v) = resp.json::<Value>().await {
                    acked.lock().unwrap().insert(v["id"].as_str().unwrap().to_owned(), v);
                }
            }
        }));
    }
    // Kill once a good number of orders have been acknowledged, while requests are in flight.
    let enough = tokio::time::timeout(Duration::from_secs(60), async {
        while acked.lock().unwrap().len() < 400 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    refusals.assert_ok(enough.is_ok(), acked.lock().unwrap().len(), &logs);
    if how == Stop::Kill {
        child.start_kill().unwrap(); // SIGKILL
        child.wait().await.unwrap();
    } else {
        let pid = child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = tokio::time::timeout(Duration::from_secs(25), child.wait())
            .await
            .expect("stopped within the shutdown deadline")
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // Restart on the same data: every acknowledged order is there, whole.
    let (mut child, base, logs) = spawn_with(&data, Some(&config)).await;
    // A kill leaves the batches in the log; a graceful stop checkpoints them into redb.
    assert_eq!(
        logs.lock()
            .unwrap()
            .contains("replayed the write-ahead log"),
        how == Stop::Kill,
        "{}",
        logs.lock().unwrap()
    );
    let token = login(&client, &base, "admin", pw.trim()).await;
    for (id, sent) in &acked {
        let got = get_json(&client, &base, &token, &format!("/api/v1/orders/{id}")).await;
        assert_eq!(&got, sent, "order {id} differs after the crash");
    }
    // No half-written order: every order of the day loads, numbers have no gaps, totals add up.
    let mut all = Vec::new();
    for page in 1.. {
        let v: Value = client
            .get(format!(
                "{base}/api/v1/orders/history?limit=200&page={page}"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        all.extend(v["data"].as_array().unwrap().iter().cloned());
        if v["pagination"]["has_next"] != true {
            assert_eq!(
                v["pagination"]["total"].as_u64().unwrap() as usize,
                all.len()
            );
            break;
        }
    }
    assert!(
        all.len() >= acked.len(),
        "{} stored < {} acknowledged",
        all.len(),
        acked.len()
    );
    for (i, o) in all.iter().enumerate() {
        assert_eq!(
            o["daily_seq"].as_u64().unwrap() as usize,
            i + 1,
            "numbers are consecutive"
        );
        let items = o["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        let sum: i64 = items
            .iter()
            .map(|l| l["line_total"].as_i64().unwrap())
            .sum();
        assert_eq!(sum, o["subtotal"].as_i64().unwrap());
    }
    // The store still takes orders and continues the numbering.
    let v: Value = client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&token)
        .json(&json!({"type": "takeaway", "items": [{"item_id": "espresso", "quantity": 1}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["daily_seq"].as_u64().unwrap() as usize,
        all.len() + 1,
        "{v}"
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// Why orders were refused during a load, so a load that stalls says why (the status, the
/// error body) instead of only timing out.
#[derive(Clone, Default)]
struct Refusals(Arc<std::sync::Mutex<(usize, String)>>);

impl Refusals {
    async fn note(&self, resp: reqwest::Response) {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let mut r = self.0.lock().unwrap();
        r.0 += 1;
        r.1 = format!("{status} {body}");
    }

    fn assert_ok(&self, enough: bool, acked: usize, logs: &std::sync::Mutex<String>) {
        let r = self.0.lock().unwrap();
        assert!(
            enough,
            "only {acked} orders acknowledged in 60 s; {} refused, the last: {}\ndaemon log:\n{}",
            r.0,
            r.1,
            logs.lock().unwrap()
        );
    }
}

/// `orderd export` of every business day, as CSV text (asserting it succeeded).
fn export_all(data_dir: &Path) -> String {
    let out = run_cli(
        &[
            "export",
            "--from",
            "2000-01-01",
            "--to",
            "2099-12-31",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts a CLI run succeeded and printed nothing on standard error (no progress line when
/// not on a terminal); returns its standard output.
fn quiet_success(out: &std::process::Output) -> String {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_cli(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// On an installed box root runs the admin commands, and the service runs as its own user:
/// check-config judges secret files as that user (the owner of the data directory) would read
/// them, and what a command writes into the store goes back to that user with its mode.
#[test]
fn commands_run_as_root_judge_and_leave_files_as_the_service_user() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let d = data.to_str().unwrap();
    let token = dir.path().join("metrics-token");
    std::fs::write(&token, "0123456789abcdef0123").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("orderd.toml");
    std::fs::write(
        &config,
        format!(
            "[http.metrics_token]\nfile = {:?}\n",
            token.display().to_string()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let check = || run_cli(&["check-config", "--config", c, "--data-dir", d], None);
    let add = |name: &str| {
        run_cli(
            &["user", "add", name, "--password-stdin", "--data-dir", d],
            Some("s3cret-pass\n"),
        )
    };
    let (uid, gid) = if rustix::process::geteuid().is_root() {
        // The service's user owns the data directory; root's 0600 token is not for it.
        std::os::unix::fs::chown(&data, Some(4242), Some(4243)).unwrap();
        let out = check();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("http.metrics_token")
                && err.contains("uid 4242 cannot read")
                && err.contains("chgrp 4243"),
            "{err}"
        );
        // root:<its group> 0640, as the README says: accepted.
        std::os::unix::fs::chown(&token, Some(0), Some(4243)).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
        (4242, 4243)
    } else {
        // Not root: the command checks as itself, and its files are its own.
        let me = std::fs::metadata(dir.path()).unwrap();
        (me.uid(), me.gid())
    };
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["mira", "bora"] {
        let out = add(name);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut seen = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (uid, gid),
            "{} is not the service user's",
            entry.path().display()
        );
        assert_eq!(
            meta.mode() & 0o077,
            0,
            "{} is not private",
            entry.path().display()
        );
        seen += 1;
    }
    assert!(seen >= 1, "the commands wrote no store");
}

#[test]
fn check_config_reports_every_problem_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    // Writes `toml`, checks it, and returns the report (the command must refuse it).
    let refused = |toml: &str| {
        std::fs::write(&bad, toml).unwrap();
        let out = run_cli(&["check-config", "--config", bad.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(
        "[site]\ncurrency = \"euro\"\ntime_zone = \"Nowhere/Land\"\n[http]\nlisten = \"eighty\"\n[limits]\nmax_quantity = 0\n",
    );
    for key in [
        "site.currency",
        "site.time_zone",
        "http.listen",
        "limits.max_quantity",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(err.contains("4 problem(s)"), "{err}");
    // An unknown key, a wrong type and two bad values: all four in one run, each with its line,
    // and the unknown key does not hide the others.
    let err = refused(
        "[site]\nname = \"Kafe\"\ncurency = \"EUR\"\n\n[store]\nmax_batch = \"lots\"\n[otp]\nttl_secs = 5\n[limits]\nmax_page_size = 0\n",
    );
    for want in [
        "site.curency (line 3): unknown key",
        "store.max_batch (line 6):",
        "otp.ttl_secs (line 8): must be 30-3600",
        "limits.max_page_size (line 10): must be 1-1000",
    ] {
        assert!(err.contains(want), "{want:?} missing from:\n{err}");
    }
    assert!(err.contains("4 problem(s)"), "{err}");
    // The shipped file passes, and init-config prints it.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/orderd.toml");
    let out = run_cli(&["check-config", "--config", shipped], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_cli(&["init-config"], None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(shipped).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_manage_accounts_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run_cli(
        &[
            "user",
            "add",
            "mira",
            "--role",
            "admin",
            "--password-stdin",
            "--data-dir",
            d,
        ],
        Some("s3cret-pass\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_cli(&["user", "add", "bora", "--data-dir", d], None);
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    let bora_pw = printed
        .rsplit("password: ")
        .next()
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(bora_pw.len(), 24, "{printed}");
    let out = run_cli(
        &["user", "add", "mira", "--password-stdin", "--data-dir", d],
        Some("another-pass\n"),
    );
    assert!(!out.status.success(), "duplicate user refused");
    let out = run_cli(
        &["user", "add", "x", "--password-stdin", "--data-dir", d],
        Some("short\n"),
    );
    assert!(!out.status.success(), "short password refused");
    let out = run_cli(
        &[
            "user",
            "passwd",
            "bora",
            "--password-stdin",
            "--data-dir",
            d,
        ],
        Some("new-password-1\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_cli(&["user", "list", "--data-dir", d], None);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.contains("mira\tadmin") && list.contains("bora\tstaff"),
        "{list}"
    );

    // An approval PIN is an admin's, and only digits.
    let out = run_cli(
        &["user", "pin", "bora", "--pin-stdin", "--data-dir", d],
        Some("4821\n"),
    );
    assert!(!out.status.success(), "a staff user gets no PIN");
    let out = run_cli(
        &["user", "pin", "mira", "--pin-stdin", "--data-dir", d],
        Some("48x1\n"),
    );
    assert!(!out.status.success(), "letters refused");
    let out = run_cli(
        &["user", "pin", "mira", "--pin-stdin", "--data-dir", d],
        Some("4821\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The daemon accepts them; with users present it creates no admin and no password file.
    let (mut child, base) = spawn(dir.path()).await;
    assert!(!dir.path().join("initial-admin-password").exists());
    let client = reqwest::Client::new();
    login(&client, &base, "mira", "s3cret-pass").await;
    let bora = login(&client, &base, "bora", "new-password-1").await;
    // The PIN set offline approves bora's comp of a check line.
    let order: serde_json::Value = client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&bora)
        .json(&serde_json::json!({"type": "dine_in", "table_id": "t1",
            "items": [{"item_id": "espresso", "quantity": 1}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let check: serde_json::Value = client
        .post(format!(
            "{base}/api/v1/orders/{}/check",
            order["id"].as_str().unwrap()
        ))
        .bearer_auth(&bora)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let line = check["lines"][0]["id"].clone();
    let resp = client
        .post(format!("{base}/api/v1/checks/{}/discounts", check["id"]))
        .bearer_auth(&bora)
        .json(
            &serde_json::json!({"line": line, "comp": true, "reason": "Wrong order",
            "approval": {"manager": "mira", "pin": "4821"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    // While it runs, the CLI says why it cannot open the store.
    let out = run_cli(&["user", "list", "--data-dir", d], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("open in another process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SIGTERM: a graceful stop, exit status 0, well inside systemd's stop timeout.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("stopped in time")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// systemd's notify protocol, with the test as the service manager: READY=1 once the daemon
/// serves, STATUS= lines, WATCHDOG=1 pings at half the watchdog period, STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaks_systemd_notify() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut child, base, _) = spawn_env(
        &dir.path().join("data"),
        None,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .await;
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(seen.contains("READY=1")
        && seen.contains("STATUS=open orders")
        && seen.matches("WATCHDOG=1").count() >= 2)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "missing notifications; got:\n{seen}"
        );
        let n = sock.recv(&mut buf).expect("a notification in time");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    // READY comes only once the API answers.
    assert_eq!(
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    loop {
        let n = sock.recv(&mut buf).expect("STOPPING=1 in time");
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            break;
        }
    }
    assert!(child.wait().await.unwrap().success());
}

/// `orderd backup` while orders pour in, then `orderd restore` into a new data directory: every
/// order acknowledged before the backup began is in it, whole, with no gap in the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, base, _) = spawn_with(&data, None).await;
    let client = reqwest::Client::new();
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let token = login(&client, &base, "admin", pw.trim()).await;
    let place = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        move |n: u32| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            async move {
                let v: Value = client
                .post(format!("{base}/api/v1/orders"))
                .bearer_auth(&token)
                .json(&json!({"type": "takeaway", "customer_name": format!("c{n}"), "items": [{"item_id": "espresso", "quantity": 1}]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
                v["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("order {n} not placed: {v}"))
                    .to_owned()
            }
        }
    };
    let mut before = Vec::new();
    for n in 0..50 {
        before.push(place(n).await);
    }
    // Keep ordering while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let place = place.clone();
        tokio::spawn(async move {
            let mut n = 1000;
            while !stop.load(Ordering::Relaxed) {
                place(n).await;
                n += 1;
            }
        })
    };
    let file = dir.path().join("snapshot.redb");
    let d = data.to_str().unwrap().to_owned();
    let f = file.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || run_cli(&["backup", &f, "--data-dir", &d], None))
        .await
        .unwrap();
    // Not on a terminal: no progress line, only the result.
    assert!(quiet_success(&out).starts_with("backup written to "));
    // CSV export through the running daemon.
    let csv = export_all(&data);
    assert!(
        csv.starts_with("number,business_day,created_at,type,"),
        "{csv}"
    );
    assert!(csv.lines().count() > 50);
    assert!(csv.contains(",1x Espresso,"), "{csv}");
    let status = run_cli(&["status", "--data-dir", data.to_str().unwrap()], None);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("open orders"),
        "{status:?}"
    );
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    // Restore into a new directory and start on it.
    let restored = dir.path().join("restored");
    let out = run_cli(
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        None,
    );
    assert!(quiet_success(&out).starts_with("restored "));
    // On a terminal (a pty through script(1)), the restore shows its progress.
    let on_tty = dir.path().join("restored-on-a-terminal");
    let out = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{BIN} restore {} --data-dir {}",
            file.display(),
            on_tty.display()
        ))
        .arg("/dev/null")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("restore: ") && shown.contains("(100%)"),
        "{shown}"
    );
    let (mut child, base, _) = spawn_with(&restored, None).await;
    let token = login(&client, &base, "admin", pw.trim()).await;
    for id in &before {
        let st = client
            .get(format!("{base}/api/v1/orders/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(st, 200, "order {id} missing from the backup");
    }
    let v: Value = client
        .get(format!("{base}/api/v1/orders/history?limit=200"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seqs: Vec<u64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["daily_seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.len() >= 50);
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap, no half-written order"
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // CSV export straight from the store of a stopped daemon: one row per order.
    let csv = export_all(&restored);
    let total = v["pagination"]["total"].as_u64().unwrap() as usize;
    assert_eq!(csv.lines().count(), total + 1);
    // Compaction of the stopped store keeps every order.
    let out = run_cli(&["compact", "--data-dir", restored.to_str().unwrap()], None);
    assert!(quiet_success(&out).starts_with("compacted "));
    assert_eq!(export_all(&restored), csv);
}

/// Completions and the man page come from the CLI definition itself.
#[test]
fn completions_and_man_page_cover_every_command() {
    let bash = run_cli(&["completions", "bash"], None);
    assert!(bash.status.success());
    let bash = String::from_utf8(bash.stdout).unwrap();
    for cmd in [
        "backup",
        "restore",
        "export",
        "compact",
        "status",
        "check-config",
    ] {
        assert!(bash.contains(cmd), "bash completion lacks {cmd}");
    }
    let zsh = run_cli(&["completions", "zsh"], None);
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef orderd"));
    let man = run_cli(&["man"], None);
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(man.contains(".TH orderd 1"), "{man}");
    assert!(man.contains("compact"), "{man}");
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(&["man", "--dir", dir.path().to_str().unwrap()], None);
    assert!(out.status.success());
    assert!(dir.path().join("orderd-backup.1").exists());
    let bad = run_cli(&["completions", "tcsh"], None);
    assert!(!bad.status.success());
}

use common::mqtt;

/// SIGKILL while orders flow to a display and a printer: after the restart the hub resumes
/// from its cursor, every acknowledged order has reached the display (as a ticket before or
/// after the crash, or on the retained board it gets on reconnecting: the embedded broker dies
/// with the daemon, so a ticket in flight at the kill can only come back that way), and every
/// job resent after the restart carries the id it had before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_the_hub_resumes_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let add = |id: &str, kind: &str| {
        let out = run_cli(
            &[
                "device",
                "add",
                id,
                "--kind",
                kind,
                "--station",
                "grill",
                "--data-dir",
                data_s,
            ],
            None,
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .rsplit("password: ")
            .next()
            .unwrap()
            .to_owned()
    };
    let (disp_pw, printer_pw) = (add("disp", "display"), add("p1", "printer"));
    let (mut child, base, mqtt_addr, logs) = spawn_full(&data, None, &[]).await;
    let mut disp = mqtt::connect(mqtt_addr, "disp", &disp_pw, None)
        .await
        .unwrap();
    disp.sub("orderd/demo/station/grill/ticket").await;
    let mut printer = mqtt::connect(mqtt_addr, "p1", &printer_pw, None)
        .await
        .unwrap();
    printer.sub("orderd/demo/printer/p1/job").await;
    let client = reqwest::Client::new();
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let token = login(&client, &base, "admin", pw.trim()).await;

    // (id, number) of every acknowledged order.
    let acked: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
    let refusals = Refusals::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (client, base, token, acked, stop, refusals) = (
            client.clone(),
            base.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
            refusals.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let resp = client
                    .post(format!("{base}/api/v1/orders"))
                    .bearer_auth(&token)
                    .json(&json!({"type": "takeaway", "items": [{"item_id": "burger", "quantity": 1, "modifiers": ["medium"]}]}))
                    .send()
                    .await;
                let Ok(resp) = resp else { break };
                if resp.status() != 201 {
                    refusals.note(resp).await;
                } else if let Ok(v) = resp.json::<Value>().await {
                    acked.lock().unwrap().push((
                        v["id"].as_str().unwrap().to_owned(),
                        v["number"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }));
    }
    let enough = tokio::time::timeout(Duration::from_secs(60), async {
        while acked.lock().unwrap().len() < 150 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    refusals.assert_ok(enough.is_ok(), acked.lock().unwrap().len(), &logs);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let mut tickets = std::collections::BTreeSet::new();
    for bytes in disp.drain_on("/ticket", Duration::from_millis(300)).await {
        let t: orderd_protocol::TicketEvent = serde_json::from_slice(&bytes).unwrap();
        tickets.insert(t.ticket);
    }
    let mut job_ids: BTreeMap<String, String> = BTreeMap::new();
    for bytes in printer.drain_on("/job", Duration::from_millis(300)).await {
        let j: orderd_protocol::PrintJob = serde_json::from_slice(&bytes).unwrap();
        job_ids.insert(j.order, j.job_id);
    }
    drop((disp, printer));
    assert!(!job_ids.is_empty());

    let (mut child, _base, mqtt_addr, _) = spawn_full(&data, None, &[]).await;
    let mut disp = mqtt::connect(mqtt_addr, "disp", &disp_pw, None)
        .await
        .unwrap();
    disp.sub("orderd/demo/station/grill/ticket").await;
    disp.sub("orderd/demo/station/grill/board").await;
    let mut printer = mqtt::connect(mqtt_addr, "p1", &printer_pw, None)
        .await
        .unwrap();
    printer.sub("orderd/demo/printer/p1/job").await;
    let mut resent: BTreeMap<String, String> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline
        && acked
            .iter()
            .any(|(id, number)| !resent.contains_key(number) || !tickets.contains(id))
    {
        while let Some(msg) = printer.next_msg(Duration::from_millis(50)).await {
            if let mqtt::Msg::Publish { payload, .. } = msg {
                let j: orderd_protocol::PrintJob = serde_json::from_slice(&payload).unwrap();
                resent.insert(j.order, j.job_id);
            }
        }
        while let Some(msg) = disp.next_msg(Duration::from_millis(20)).await {
            match msg {
                mqtt::Msg::Publish { topic, payload, .. } if topic.ends_with("/board") => {
                    let b: orderd_protocol::Board = serde_json::from_slice(&payload).unwrap();
                    tickets.extend(b.tickets.into_iter().map(|t| t.ticket));
                }
                mqtt::Msg::Publish { payload, .. } => {
                    let t: orderd_protocol::TicketEvent = serde_json::from_slice(&payload).unwrap();
                    tickets.insert(t.ticket);
                }
                mqtt::Msg::SubAck(_) => {}
            }
        }
    }
    // The display has every acknowledged order: as a ticket before or after the crash, or on
    // the retained board it got on reconnecting (the embedded broker dies with the daemon, so
    // a ticket in flight at the kill can only come back that way).
    let not_shown: Vec<_> = acked
        .iter()
        .filter(|(id, _)| !tickets.contains(id))
        .collect();
    assert!(
        not_shown.is_empty(),
        "orders the display never showed: {not_shown:?}"
    );
    // No ticket is missing at the printer either: every acknowledged order's job reaches it
    // after the restart (nothing was printed, so every job is still open and resent) …
    let missing: Vec<_> = acked
        .iter()
        .filter(|(_, number)| !resent.contains_key(number))
        .collect();
    assert!(
        missing.is_empty(),
        "orders that never reached the kitchen: {missing:?}"
    );
    // … and a job sent before the crash comes back with its original id.
    for (order, id) in &job_ids {
        assert_eq!(
            resent.get(order),
            Some(id),
            "job of {order} resent with another id"
        );
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// The outbox's rule for codes across a crash: a code whose provider call was under way at a
/// SIGKILL is dead-lettered as `interrupted` at the restart and never resent (status messages
/// are, see `tests/messaging.rs`); a code still queued at the kill is sent exactly once after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_send_never_resends_a_code() {
    use orderd_plugins::fake::{Fake, Flavor, Reply};
    let fake = Fake::start(Flavor::WhatsApp).await.unwrap();
    // The provider takes the first call and never answers while the box is up.
    fake.set_default(Reply::Stall(Duration::from_secs(120)));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("orderd.toml");
    std::fs::write(
        &config,
        format!(
            "[otp]\nrequired = false\n\n[messaging]\nrequest_timeout_ms = 120000\nconcurrency = 1\n\n\
             [whatsapp]\nenabled = true\nbase_url = \"{}\"\nphone_number_id = \"1\"\n\n\
             [whatsapp.access_token]\nvalue = \"t\"\n",
            fake.url()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let client = reqwest::Client::new();
    let (mut child, base, _) = spawn_with(&data, Some(&config)).await;
    let ask = |phone: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client
                .post(format!("{base}/api/v1/otp/request"))
                .json(&json!({"phone": phone, "channel": "whatsapp"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
    };
    ask("+355690000001").await;
    common::eventually(
        "the first code reached the provider",
        Duration::from_secs(10),
        || async { (!fake.seen().is_empty()).then_some(()) },
    )
    .await;
    // A second message queues behind the stalled call (one call at a time).
    ask("+355690000002").await;
    common::quiet(Duration::from_millis(300)).await;
    assert_eq!(fake.seen().len(), 1);
    child.start_kill().unwrap(); // SIGKILL mid-call
    child.wait().await.unwrap();

    fake.set_default(Reply::Ok);
    let (mut child, base, _) = spawn_with(&data, Some(&config)).await;
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let token = login(&client, &base, "admin", pw.trim()).await;
    let list = |state: &'static str| {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        async move {
            let path = format!("/api/v1/notifications?state={state}");
            let v = get_json(&client, &base, &token, &path).await;
            v["data"].as_array().unwrap().clone()
        }
    };
    let sent = common::eventually(
        "the queued message was sent after the restart",
        Duration::from_secs(10),
        || async { Some(list("sent").await).filter(|sent| !sent.is_empty()) },
    )
    .await;
    let dead = list("dead").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{dead:?}"
    );
    assert_eq!(sent.len(), 1);
    assert_ne!(sent[0]["id"], dead[0]["id"]);
    // Give a resend every chance to happen, then count provider calls per phone.
    common::quiet(Duration::from_millis(1500)).await;
    let calls = |to: &str| fake.seen().iter().filter(|s| s.body["to"] == to).count();
    assert_eq!(
        calls("355690000001"),
        1,
        "the interrupted message is not resent"
    );
    assert_eq!(calls("355690000002"), 1, "the queued message is sent once");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// Opens `n` TCP connections to `addr` from `from`, sending nothing.
async fn idle_sockets(
    addr: std::net::SocketAddr,
    from: std::net::IpAddr,
    n: usize,
) -> Vec<tokio::net::TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(std::net::SocketAddr::new(from, 0)).unwrap();
        out.push(sock.connect(addr).await.unwrap());
    }
    out
}

/// Whether the server closed `s` (EOF or reset) within `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 64];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// 2,000 idle sockets from 40 addresses and a slowloris, against the real binary started with
/// the unit's file limit (soft 1,024, hard 65,536, as `LimitNOFILE` leaves a process that does
/// not raise it): `/readyz`, a staff request, a kitchen live stream and a device's MQTT session
/// keep working throughout; the idle sockets and the slowloris are closed by the header-read
/// timeout; one address cannot hold more than its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_and_a_slowloris_do_not_take_the_box_offline() {
    use tokio::io::AsyncWriteExt as _;
    // This test holds about 2,200 sockets itself.
    let mut lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    lim.current = lim.maximum;
    rustix::process::setrlimit(rustix::process::Resource::Nofile, lim).unwrap();
    let hard = lim.maximum.map_or(65_536, |h| h.min(65_536));
    assert!(
        hard >= 4096,
        "the test needs a hard file limit of at least 4096"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("orderd.toml");
    std::fs::write(&cfg, "[http]\nheader_read_timeout_secs = 3\n").unwrap();
    let nofile = format!("--nofile=1024:{hard}");
    let (mut child, base, mqtt, _logs) =
        common::bin::spawn_prefixed(&["prlimit", &nofile, "--"], &data, Some(&cfg), &[]).await;
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let client = reqwest::Client::new();
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let admin = login(&client, &base, "admin", pw.trim()).await;
    let v: Value = client
        .post(format!("{base}/api/v1/devices"))
        .bearer_auth(&admin)
        .json(&json!({"id": "kds-1", "kind": "display", "stations": ["grill"], "backup": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_pw = v["password"].as_str().unwrap().to_owned();

    // The flood: 50 idle sockets from each of 40 addresses, and a slowloris.
    let mut idle = Vec::new();
    for n in 0..40u8 {
        idle.extend(idle_sockets(addr, std::net::IpAddr::from([127, 0, 1, n + 1]), 50).await);
    }
    assert_eq!(idle.len(), 2000);
    let mut loris = idle_sockets(addr, std::net::IpAddr::from([127, 0, 2, 1]), 1)
        .await
        .remove(0);
    let loris_task = tokio::spawn(async move {
        let req = b"GET /api/v1/menu HTTP/1.1\r\nhost: box\r\nx-slow: ";
        for b in req.iter().chain(std::iter::repeat(&b'a')) {
            if loris.write_all(&[*b]).await.is_err() {
                return true; // closed by the server
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });

    // Everything that matters keeps working while the flood is held.
    let t = tokio::time::Instant::now();
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let staff = client
        .get(format!("{base}/api/v1/orders/active"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(staff.status(), 200);
    let auth = format!("Bearer {admin}");
    let mut sse =
        common::sse::Sse::open(addr, "/api/v1/events", &[("authorization", &auth)], None).await;
    assert_eq!(sse.status, 200, "{}", sse.head);
    let mut dev = common::mqtt::connect(mqtt, "kds-1", &device_pw, None)
        .await
        .expect("a device's MQTT session");
    dev.sub("orderd/demo/station/grill/ticket").await;
    let order = client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&admin)
        .header("idempotency-key", "flood-1")
        .json(&json!({"type": "takeaway", "items": [{"item_id": "burger", "quantity": 1, "modifiers": ["medium"]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), 201);
    assert!(
        dev.next_on("/ticket", Duration::from_secs(10))
            .await
            .is_some(),
        "the display got the ticket"
    );
    let mut saw_event = false;
    while let Some(f) = sse.event(10).await {
        if f.event == "order_placed" {
            saw_event = true;
            break;
        }
    }
    assert!(saw_event, "the kitchen stream got the order");
    assert!(t.elapsed() < Duration::from_secs(10));

    // One address holds at most its share (64): the rest are closed at once.
    let mut extra = idle_sockets(addr, std::net::IpAddr::from([127, 0, 1, 1]), 30).await;
    let mut shut = 0;
    for s in &mut extra {
        if closed_within(s, Duration::from_millis(500)).await {
            shut += 1;
        }
    }
    assert!(
        shut >= 16,
        "{shut} of 30 over the per-address cap were closed"
    );
    // The header-read timeout closes the idle sockets and the slowloris.
    let mut closed = 0;
    for s in idle.iter_mut().step_by(50) {
        if closed_within(s, Duration::from_secs(10)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 40, "idle sockets closed by the header-read timeout");
    assert!(
        tokio::time::timeout(Duration::from_secs(10), loris_task)
            .await
            .expect("the slowloris ended")
            .unwrap(),
        "the server closed the slowloris"
    );
    // The live stream is not a header read: still open, still live.
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    drop(sse);
    dev.disconnect().await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// The daemon's resident memory in MiB (from /proc).
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// A guard, not a benchmark: 20,000 orders left open (a kitchen that prints tickets and never
/// bumps) against the test build, with the embedded broker and the kitchen hub running. The
/// boards hold only what they show, so the resident memory after the run stays under a
/// generous ceiling instead of growing by ~3 KB per open order (about 60 MB here before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_with_many_open_orders() {
    const ORDERS: usize = 20_000;
    const CEILING_MIB: f64 = 80.0;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, base, _) = spawn_with(&data, None).await;
    let pid = child.id().unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let token = login(&client, &base, "admin", pw.trim()).await;
    let before = rss_mib(pid);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (client, base, token, next) =
            (client.clone(), base.clone(), token.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= ORDERS {
                    return;
                }
                let r = client
                    .post(format!("{base}/api/v1/orders"))
                    .bearer_auth(&token)
                    .json(&json!({"type": "takeaway", "items": [
                        {"item_id": "burger", "quantity": 1, "modifiers": ["medium"]},
                        {"item_id": "greek_salad", "quantity": 1},
                        {"item_id": "espresso", "quantity": 2}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "order {n}");
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    // The hub has taken every order (its cursor is at the log's end).
    common::eventually("the hub caught up", Duration::from_secs(60), || async {
        let m = common::bin::metrics(&client, &base).await;
        let seq = |name: &str| -> u64 {
            m.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        (seq("orderd_hub_event_seq ") >= seq("orderd_event_seq ") && seq("orderd_event_seq ") > 0)
            .then_some(())
    })
    .await;
    let after = rss_mib(pid);
    eprintln!("RSS {before:.1} MiB before, {after:.1} MiB after {ORDERS} open orders");
    assert!(
        after < CEILING_MIB,
        "RSS {after:.1} MiB after {ORDERS} open orders (ceiling {CEILING_MIB} MiB; {before:.1} before)"
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// Changing the admin's password retires the first-run password: its file is removed, and the
/// next start's banner no longer points at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_admin_password_removes_the_first_run_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _base) = spawn(dir.path()).await;
    let file = dir.path().join("initial-admin-password");
    assert!(file.exists());
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run_cli(
        &[
            "user",
            "passwd",
            "admin",
            "--password-stdin",
            "--data-dir",
            d,
        ],
        Some("the-owners-own-pass\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("first-run password"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!file.exists(), "the first-run password file is gone");
    let mut cmd = tokio::process::Command::new(BIN);
    let mut child = cmd
        .args([
            "run",
            "--data-dir",
            d,
            "--http-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let banner = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncBufReadExt as _;
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).await.unwrap() == 0 {
                return all;
            }
            all.push_str(&line);
            if line.contains("Sign in") {
                return all;
            }
        }
    })
    .await
    .expect("the banner in time");
    assert!(
        banner.contains("Sign in with an existing account"),
        "{banner}"
    );
    assert!(!banner.contains("initial-admin-password"), "{banner}");
    let client = reqwest::Client::new();
    let base = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("API:"))
        .map(|a| a.trim().trim_end_matches("/api/v1/").to_owned())
        .unwrap();
    login(&client, &base, "admin", "the-owners-own-pass").await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// Tickets reach a subscribed display across a restart of the box (issue #24). The box is
/// SIGKILLed under load; its embedded broker, with the display's session, goes with it. The
/// display reconnects 0.5 s after the box is back, as real displays take seconds, while orders
/// go on. Every acknowledged order's ticket must still reach it as a ticket, not only on the
/// board: the hub sends a display that comes back what it may have missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_reach_a_display_across_a_restart_of_the_box() {
    use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
    use std::collections::HashSet;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = run_cli(
        &[
            "device",
            "add",
            "d1",
            "--kind",
            "display",
            "--station",
            "grill",
            "--data-dir",
            d,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added = String::from_utf8_lossy(&out.stdout).into_owned();
    let password = added.rsplit("password: ").next().unwrap().trim().to_owned();
    let http = format!("127.0.0.1:{}", common::bin::free_port());
    let mqtt = format!("127.0.0.1:{}", common::bin::free_port());
    let (mut child, base, mqtt_addr, _logs) = common::bin::spawn_on(&data, &http, &mqtt).await;

    // The display: subscribes, then says it is online, on every (re)connect; 0.5 s between tries.
    let seen: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
    let display = {
        let seen = seen.clone();
        let mut opts = MqttOptions::new("d1", mqtt_addr.ip().to_string(), mqtt_addr.port());
        let avail = orderd_protocol::topics::device_availability("demo", "d1");
        opts.set_credentials("d1", password)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1024 * 1024, 64 * 1024)
            .set_last_will(LastWill::new(&avail, "offline", QoS::AtLeastOnce, true));
        let (client, mut el) = AsyncClient::new(opts, 64);
        tokio::spawn(async move {
            let tickets = orderd_protocol::topics::station_ticket("demo", "grill");
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client.try_subscribe(&tickets, QoS::AtLeastOnce).unwrap();
                        client
                            .try_publish(&avail, QoS::AtLeastOnce, true, "online")
                            .unwrap();
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == tickets => {
                        let t: orderd_protocol::TicketEvent =
                            serde_json::from_slice(&p.payload).unwrap();
                        seen.lock().unwrap().insert(t.ticket);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        })
    };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let token = login(&client, &base, "admin", pw.trim()).await;
    // Places one order, retrying with the same key until the box answers; its id.
    let place = move |n: usize| {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        async move {
            let body = json!({"type": "takeaway", "items": [
                {"item_id": "burger", "quantity": 1, "modifiers": ["medium"]}]});
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                assert!(
                    std::time::Instant::now() < deadline,
                    "order {n} never answered"
                );
                let resp = client
                    .post(format!("{base}/api/v1/orders"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("restart-{n}"))
                    .json(&body)
                    .send()
                    .await;
                if let Ok(r) = resp
                    && r.status().is_success()
                {
                    let v: Value = r.json().await.unwrap();
                    return v["id"].as_str().unwrap().to_owned();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // The display is subscribed once a first ticket reaches it.
    let first = place(0).await;
    common::eventually(
        "the display got a ticket",
        Duration::from_secs(15),
        || async { seen.lock().unwrap().contains(&first).then_some(()) },
    )
    .await;

    // Orders go on from two clients while the box is killed and started again.
    let acked: Arc<std::sync::Mutex<Vec<String>>> = Arc::new(std::sync::Mutex::new(vec![first]));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (acked, next, stop, place) = (acked.clone(), next.clone(), stop.clone(), place.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let id = place(n).await;
                acked.lock().unwrap().push(id);
            }
        }));
    }
    let wait_acked = |count: usize| {
        let acked = acked.clone();
        async move {
            common::eventually("the load went on", Duration::from_secs(30), || async {
                (acked.lock().unwrap().len() >= count).then_some(())
            })
            .await;
        }
    };
    wait_acked(150).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let (mut child, _, _, _logs) = common::bin::spawn_on(&data, &http, &mqtt).await;
    let after = acked.lock().unwrap().len();
    wait_acked(after + 300).await;
    // Then until the display is back and gets tickets live again, and 50 more on top.
    common::eventually("the display came back", Duration::from_secs(20), || async {
        let last = acked.lock().unwrap().last().cloned().unwrap();
        seen.lock().unwrap().contains(&last).then_some(())
    })
    .await;
    let back = acked.lock().unwrap().len();
    wait_acked(back + 50).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let missing: Vec<String> = {
            let seen = seen.lock().unwrap();
            acked
                .iter()
                .filter(|id| !seen.contains(*id))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} acknowledged orders never reached the display as a ticket across the restart (positions {:?}; restart after {after}, display back after {back})",
            missing.len(),
            acked.len(),
            acked
                .iter()
                .enumerate()
                .filter(|(_, id)| missing.contains(*id))
                .map(|(i, _)| i)
                .take(12)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    display.abort();
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[test]
fn check_config_names_what_the_admin_page_set_and_refuses_a_broken_site_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(&site, "[site]\nname = \"Kafe Drini\"\ncurrency = \"ALL\"\n").unwrap();
    let out = run_cli(&["check-config", "--data-dir", d], None);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("winning over the file: site.name, site.currency"),
        "{said}"
    );
    // A value the box would not start with, and a key it does not know: both named.
    std::fs::write(&site, "[site]\ncurrency = \"lek\"\n").unwrap();
    let out = run_cli(&["check-config", "--data-dir", d], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "site.currency: \"lek\" must be an ISO 4217 code such as EUR (set in the admin page"
        ),
        "{err}"
    );
    std::fs::write(&site, "[site]\ncolour = \"red\"\n").unwrap();
    let out = run_cli(&["check-config", "--data-dir", d], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("site.toml") && err.contains("colour"), "{err}");
}
