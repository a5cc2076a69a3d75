//! Printers on the LAN, driven by the box over raw TCP, against the ESC/POS printer emulator
//! (`orderd_plugins::printer_emu`): a job printed once, paper out failing over to the backup
//! marked REPRINT with the device's state reported, a printer without a backup keeping its
//! queue until it is back, a connection cut mid-job printed again
//! marked REPRINT, a stalled printer holding up nobody else, and registration checks; and
//! printers on USB, driven through a device path (the emulator behind a pseudo-terminal).

use std::time::Duration;

use orderd_plugins::escpos::status::PrinterState;
use orderd_plugins::printer_emu::Emulator;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, error_code, eventually};

const WAIT: Duration = Duration::from_secs(10);

async fn add_printer(s: &TestServer, id: &str, station: &str, emu: &Emulator, backup: bool) {
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/devices",
            Some(&s.admin),
            Some(json!({"id": id, "kind": "printer", "stations": [station],
                        "backup": backup, "tcp": emu.addr().to_string()})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["tcp"], emu.addr().to_string());
    assert!(
        v.get("password").is_none(),
        "a network printer has no MQTT password"
    );
    online(s, id).await;
}

/// Waits until the device shows online in the API.
async fn online(s: &TestServer, id: &str) -> Value {
    s.wait_device(id, "online", json!(true)).await
}

async fn place(s: &TestServer, items: Value) -> Value {
    let (st, v) = s.order(&s.admin, items).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

async fn printed(emu: &Emulator, n: usize) -> Vec<String> {
    eventually(&format!("{n} jobs printed"), WAIT, || async {
        let p = emu.printed();
        (p.len() >= n).then_some(p)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_printer_prints_each_job_once_and_its_state_reaches_the_box() {
    let s = TestServer::start_with(|c| c.kitchen.resend_secs = 1).await;
    let emu = Emulator::start().await.unwrap();
    add_printer(&s, "lan1", "grill", &emu, false).await;
    let order = place(&s, json!([{"item_id": "tave_kosi", "quantity": 2}])).await;
    let jobs = printed(&emu, 1).await;
    let short = format!("{:03}", order["daily_seq"].as_u64().unwrap());
    assert!(jobs[0].contains(&short), "{}", jobs[0]);
    assert!(jobs[0].contains("2x Baked lamb"), "{}", jobs[0]);
    assert!(!jobs[0].contains("REPRINT"));
    // Reported printed: no resend prints it again.
    eventually("the job printed", WAIT, || async {
        let (_, v) = s
            .send(
                "GET",
                "/api/v1/print-jobs?state=printed",
                Some(&s.admin),
                None,
            )
            .await;
        (v["data"].as_array()?.len() == 1).then_some(())
    })
    .await;
    crate::common::quiet(Duration::from_millis(2500)).await;
    assert_eq!(emu.printed().len(), 1);
    // Out of paper, found by the idle poll: the box shows the device's state.
    emu.set_state(PrinterState::PaperOut);
    eventually("paper_out shown", WAIT, || async {
        let (_, v) = s.send("GET", "/api/v1/devices", Some(&s.admin), None).await;
        v["data"]
            .as_array()?
            .iter()
            .any(|d| d["id"] == "lan1" && d["state"] == "paper_out")
            .then_some(())
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_out_fails_over_to_the_backup_marked_reprint() {
    let s = TestServer::start().await;
    let main = Emulator::start().await.unwrap();
    let backup = Emulator::start().await.unwrap();
    add_printer(&s, "main", "grill", &main, false).await;
    add_printer(&s, "back", "grill", &backup, true).await;
    // The paper runs out as the first job ends: the box cannot tell it printed whole, so the
    // backup prints it again, marked REPRINT (printed twice, never lost). The next job goes
    // straight to the backup.
    main.paper_out_after(1);
    place(&s, json!([{"item_id": "tave_kosi", "quantity": 1}])).await;
    printed(&main, 1).await;
    place(
        &s,
        json!([{"item_id": "greek_salad", "quantity": 1}, {"item_id": "tave_kosi", "quantity": 3}]),
    )
    .await;
    let jobs = printed(&backup, 2).await;
    assert!(jobs.iter().all(|j| j.contains("REPRINT")), "{jobs:?}");
    assert!(jobs.iter().any(|j| j.contains("1x Baked lamb")), "{jobs:?}");
    assert!(jobs.iter().any(|j| j.contains("3x Baked lamb")), "{jobs:?}");
    assert_eq!(main.printed().len(), 1, "nothing printed without paper");
    // The failover is in the event log, with its reason.
    eventually("the failover recorded", WAIT, || async {
        let events = s.state().events.read(1, 10_000).ok()?;
        events
            .iter()
            .any(|e| {
                matches!(&e.kind,
                    orderd_protocol::EventKind::PrintFailover { from, to: Some(to), reason, .. }
                        if from == "main" && to == "back" && reason == "paper_out")
            })
            .then_some(())
    })
    .await;
    s.stop().await;
}

/// A printer with no backup that runs out of paper: staff are alerted (the device's state is
/// an event for staff messaging), its jobs wait for it, and when paper is back each prints
/// once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_without_a_backup_keeps_its_queue_until_it_is_back() {
    let s = TestServer::start().await;
    let emu = Emulator::start().await.unwrap();
    add_printer(&s, "solo", "grill", &emu, false).await;
    place(&s, json!([{"item_id": "tave_kosi", "quantity": 1}])).await;
    printed(&emu, 1).await;
    // Counted as printed only once the printer said it was fine afterwards; paper running out
    // before that answer would (rightly) print it again, marked REPRINT.
    s.wait_get("/api/v1/print-jobs?state=printed", &s.admin, |v| {
        v["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    emu.set_state(PrinterState::PaperOut);
    s.wait_device("solo", "state", json!("paper_out")).await;
    for n in [2, 3] {
        place(&s, json!([{"item_id": "tave_kosi", "quantity": n}])).await;
    }
    eventually("the paper-out alert", WAIT, || async {
        let events = s.state().events.read(1, 10_000).ok()?;
        events
            .iter()
            .any(|e| {
                matches!(&e.kind,
                    orderd_protocol::EventKind::DeviceStatus { device, state, .. }
                        if device == "solo" && state == "paper_out")
            })
            .then_some(())
    })
    .await;
    crate::common::quiet(Duration::from_millis(700)).await;
    assert_eq!(emu.printed().len(), 1, "nothing printed without paper");
    emu.set_state(PrinterState::Ready);
    let jobs = printed(&emu, 3).await;
    assert!(jobs[1].contains("2x Baked lamb"), "{jobs:?}");
    assert!(jobs[2].contains("3x Baked lamb"), "{jobs:?}");
    crate::common::quiet(Duration::from_millis(700)).await;
    assert_eq!(emu.printed().len(), 3, "each job once");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_job_is_printed_again_marked_reprint() {
    let s = TestServer::start_with(|c| c.kitchen.resend_secs = 1).await;
    let emu = Emulator::start().await.unwrap();
    add_printer(&s, "lan1", "grill", &emu, false).await;
    emu.drop_next_job_midway();
    place(&s, json!([{"item_id": "tave_kosi", "quantity": 1}])).await;
    let jobs = printed(&emu, 1).await;
    assert_eq!(emu.partial(), 1, "the first try was cut short");
    assert!(jobs[0].contains("REPRINT"), "{}", jobs[0]);
    assert!(emu.connections() >= 2, "the box connected again");
    crate::common::quiet(Duration::from_millis(2500)).await;
    assert_eq!(emu.printed().len(), 1, "printed once the whole way");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_printer_holds_up_no_other_printer() {
    let s = TestServer::start().await;
    let grill = Emulator::start().await.unwrap();
    let bar = Emulator::start().await.unwrap();
    add_printer(&s, "grill1", "grill", &grill, false).await;
    add_printer(&s, "bar1", "bar", &bar, false).await;
    grill.stall(true);
    let started = std::time::Instant::now();
    place(
        &s,
        json!([{"item_id": "tave_kosi", "quantity": 1}, {"item_id": "espresso", "quantity": 2}]),
    )
    .await;
    let jobs = printed(&bar, 1).await;
    assert!(jobs[0].contains("2x Espresso"), "{}", jobs[0]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(grill.printed().is_empty());
    // Back from its stall, the grill printer gets its ticket.
    grill.stall(false);
    let jobs = printed(&grill, 1).await;
    assert!(jobs[0].contains("Baked lamb"), "{}", jobs[0]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_printers_are_added_by_address_and_only_by_ip() {
    let s = TestServer::start().await;
    for (body, field) in [
        (
            json!({"id": "bz", "kind": "buzzer", "tcp": "10.0.0.5"}),
            "tcp",
        ),
        (
            json!({"id": "p9", "kind": "printer", "stations": ["grill"], "tcp": "printer.local"}),
            "tcp",
        ),
        (
            json!({"id": "p9", "kind": "printer", "stations": ["grill"], "tcp": "10.0.0.5:0"}),
            "tcp",
        ),
    ] {
        let (st, v) = s
            .send("POST", "/api/v1/devices", Some(&s.admin), Some(body))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(error_code(&v), "validation_failed");
        assert_eq!(v["error"]["details"]["field"], field);
    }
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/devices",
            Some(&s.admin),
            Some(json!({"id": "p9", "kind": "printer", "stations": ["grill"], "tcp": "10.0.0.5"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["tcp"], "10.0.0.5:9100", "the raw port by default");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_print_from_the_api_and_the_command_line_shows_the_box_and_the_printer() {
    use crate::common::bin::{login, spawn_with};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, base, _logs) = spawn_with(&data, None).await;
    let client = reqwest::Client::new();
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let token = login(&client, &base, "admin", pw.trim()).await;
    let emu = Emulator::start().await.unwrap();
    let r = client
        .post(format!("{base}/api/v1/devices"))
        .bearer_auth(&token)
        .json(&json!({"id": "lan1", "kind": "printer", "stations": ["grill"], "tcp": emu.addr().to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client
        .post(format!("{base}/api/v1/devices/lan1/test-print"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let jobs = printed(&emu, 1).await;
    for want in [
        "orderd test print",
        "Printer: lan1",
        "Stations: grill",
        "Box: http://",
        "ë ç Ë Ç",
        "€",
    ] {
        assert!(jobs[0].contains(want), "{want:?} missing in\n{}", jobs[0]);
    }
    assert!(
        jobs[0].contains(&format!("network {}", emu.addr())),
        "{}",
        jobs[0]
    );
    // The command line asks the running daemon.
    let out = std::process::Command::new(crate::common::bin::BIN)
        .args(["device", "test-print", "lan1", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(printed(&emu, 2).await.len(), 2);
    let out = std::process::Command::new(crate::common::bin::BIN)
        .args(["device", "test-print", "nope", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such device"));
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// Registers a printer on USB at the emulator's device path.
async fn add_usb_printer(s: &TestServer, id: &str, station: &str, emu: &Emulator, backup: bool) {
    let path = emu.path().unwrap().display().to_string();
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/devices",
            Some(&s.admin),
            Some(json!({"id": id, "kind": "printer", "stations": [station],
                        "backup": backup, "usb": path})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["usb"], path.as_str());
    assert!(
        v.get("password").is_none(),
        "a USB printer has no MQTT password"
    );
    online(s, id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usb_printer_prints_each_job_once_and_paper_out_fails_over() {
    let s = TestServer::start_with(|c| c.kitchen.resend_secs = 1).await;
    let usb = Emulator::start_device().unwrap();
    let backup = Emulator::start().await.unwrap();
    add_usb_printer(&s, "usb1", "grill", &usb, false).await;
    add_printer(&s, "back", "grill", &backup, true).await;
    let order = place(&s, json!([{"item_id": "tave_kosi", "quantity": 2}])).await;
    let jobs = printed(&usb, 1).await;
    let short = format!("{:03}", order["daily_seq"].as_u64().unwrap());
    assert!(
        jobs[0].contains(&short) && jobs[0].contains("2x Baked lamb"),
        "{}",
        jobs[0]
    );
    crate::common::quiet(Duration::from_millis(2500)).await;
    assert_eq!(
        usb.printed().len(),
        1,
        "printed once, not again on a resend"
    );
    // Out of paper: the device says so on DLE EOT, the box shows it and the backup prints.
    usb.set_state(PrinterState::PaperOut);
    s.wait_device("usb1", "state", json!("paper_out")).await;
    place(&s, json!([{"item_id": "tave_kosi", "quantity": 5}])).await;
    let jobs = printed(&backup, 1).await;
    assert!(jobs[0].contains("5x Baked lamb"), "{}", jobs[0]);
    assert_eq!(usb.printed().len(), 1);
    // Paper back in: its own jobs come back to it.
    usb.set_state(PrinterState::Ready);
    s.wait_device("usb1", "state", json!("ready")).await;
    place(&s, json!([{"item_id": "tave_kosi", "quantity": 7}])).await;
    let jobs = printed(&usb, 2).await;
    assert!(jobs[1].contains("7x Baked lamb"), "{}", jobs[1]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usb_printer_is_a_device_path_and_a_missing_one_is_offline() {
    let s = TestServer::start().await;
    for (body, field) in [
        (
            json!({"id": "p9", "kind": "printer", "stations": ["grill"], "usb": "/var/lib/orderd/orderd.redb"}),
            "usb",
        ),
        (
            json!({"id": "p9", "kind": "printer", "stations": ["grill"], "usb": "/dev/../etc/passwd"}),
            "usb",
        ),
        (
            json!({"id": "p9", "kind": "printer", "stations": ["grill"], "usb": "/dev/usb/lp0", "tcp": "10.0.0.5"}),
            "usb",
        ),
        (
            json!({"id": "bz", "kind": "buzzer", "usb": "/dev/usb/lp0"}),
            "usb",
        ),
    ] {
        let (st, v) = s
            .send("POST", "/api/v1/devices", Some(&s.admin), Some(body))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["details"]["field"], field, "{v}");
    }
    // A printer not plugged in: registered, shown offline, and its station's jobs fail over.
    let backup = Emulator::start().await.unwrap();
    add_printer(&s, "back", "grill", &backup, true).await;
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/devices",
            Some(&s.admin),
            Some(json!({"id": "usb9", "kind": "printer", "stations": ["grill"], "usb": "/dev/usb/lp-not-plugged"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    s.wait_device("usb9", "online", json!(false)).await;
    place(&s, json!([{"item_id": "tave_kosi", "quantity": 4}])).await;
    let jobs = printed(&backup, 1).await;
    assert!(jobs[0].contains("4x Baked lamb"), "{}", jobs[0]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_box_prints_its_address_on_the_first_printer_that_comes_online() {
    let s = TestServer::start_with(|c| c.kitchen.print_address_at_boot = true).await;
    let emu = Emulator::start().await.unwrap();
    add_printer(&s, "lan1", "grill", &emu, false).await;
    let slips = printed(&emu, 1).await;
    assert!(slips[0].contains("orderd test print"), "{}", slips[0]);
    assert!(slips[0].contains("Box: http://"), "{}", slips[0]);
    assert!(slips[0].contains("Printer: lan1"), "{}", slips[0]);
    // Once, on one printer: a second printer and more time bring no second slip.
    let other = Emulator::start().await.unwrap();
    add_printer(&s, "lan2", "bar", &other, false).await;
    crate::common::quiet(Duration::from_millis(1500)).await;
    assert_eq!(emu.printed().len(), 1);
    assert!(other.printed().is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_printer_prints_in_its_own_code_page_and_width() {
    let s = TestServer::start().await;
    let narrow = Emulator::start().await.unwrap();
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/devices",
            Some(&s.admin),
            Some(
                json!({"id": "win", "kind": "printer", "stations": ["grill"],
                        "tcp": narrow.addr().to_string(), "codepage": "wpc1252", "columns": 32}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["codepage"].as_str(), v["columns"].as_u64()),
        (Some("wpc1252"), Some(32))
    );
    online(&s, "win").await;
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/devices/win/test-print",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let slip = printed(&narrow, 1).await.remove(0);
    // Read back in the page the slip selected (ESC t 16): the letters and the euro sign.
    assert!(slip.contains("ë ç Ë Ç  euro: €"), "{slip}");
    assert!(slip.contains("32 columns; code page WPC1252"), "{slip}");
    place(&s, json!([{"item_id": "tave_kosi", "quantity": 1}])).await;
    let ticket = printed(&narrow, 2).await.remove(1);
    assert!(
        ticket.contains(&format!("{}\n", "-".repeat(32))),
        "{ticket}"
    );
    assert!(!ticket.contains(&"-".repeat(33)), "{ticket}");
    // Settings a printer cannot have are refused.
    for (body, field) in [
        (
            json!({"id": "x1", "kind": "printer", "stations": ["grill"], "codepage": "utf8"}),
            "codepage",
        ),
        (
            json!({"id": "x2", "kind": "printer", "stations": ["grill"], "columns": 40}),
            "columns",
        ),
        (
            json!({"id": "x3", "kind": "display", "stations": ["grill"], "codepage": "pc858"}),
            "codepage",
        ),
    ] {
        let (st, v) = s
            .send("POST", "/api/v1/devices", Some(&s.admin), Some(body))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["details"]["field"], field, "{v}");
    }
    s.stop().await;
}
