//! Kitchen hardware over MQTT, end to end: the real daemon with its embedded broker on port 0,
//! a real redb file, and real MQTT device clients (rumqttc).
use crate::common;
use orderd::error::Commit as _;

use std::time::Duration;

use common::TestServer;
use common::mqtt::{self, Msg};
use orderd_protocol::{Board, BuzzerSet, JobStatus, PrintJob, TicketChange, TicketEvent};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(700);

async fn place(s: &TestServer, items: Value) -> String {
    let (st, v) = s.order(&s.admin, items).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

fn grill_and_bar() -> Value {
    json!([{"item_id": "tave_kosi", "quantity": 2}, {"item_id": "espresso", "quantity": 1}])
}

fn job_of(bytes: &[u8]) -> PrintJob {
    serde_json::from_slice(bytes).unwrap()
}

async fn report(dev: &mqtt::Dev, id: &str, job: &str, status: &str) {
    let st = serde_json::to_vec(&json!({"version": 1, "job_id": job, "status": status})).unwrap();
    // The same shape the protocol crate decodes.
    let _: JobStatus = serde_json::from_slice(&st).unwrap();
    dev.publish(&format!("orderd/demo/printer/{id}/job/status"), st, false)
        .await;
}

/// Waits until the print job with this id has reached `state` in the API.
async fn job_state(s: &TestServer, job: &str, state: &str) -> Value {
    let find = |v: &Value| {
        v["data"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["job_id"] == job).cloned())
    };
    let jobs = s
        .wait_get(
            &format!("/api/v1/print-jobs?state={state}"),
            &s.admin,
            |v| find(v).is_some(),
        )
        .await;
    find(&jobs).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ticket_reaches_each_subscribed_station_once() {
    let s = TestServer::start().await;
    let (mut grill, _) = s
        .device_online("disp-grill", "display", &["grill"], false)
        .await;
    let (mut bar, _) = s
        .device_online("disp-bar", "display", &["bar"], false)
        .await;
    assert_eq!(grill.sub("orderd/demo/station/grill/ticket").await.len(), 1);
    bar.sub("orderd/demo/station/bar/ticket").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(place(&s, grill_and_bar()).await);
    }
    for (dev, station, qty) in [(&mut grill, "grill", 2), (&mut bar, "bar", 1)] {
        let got = dev.drain_on("/ticket", QUIET).await;
        let tickets: Vec<TicketEvent> = got
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect();
        let seen: Vec<&str> = tickets.iter().map(|t| t.ticket.as_str()).collect();
        assert_eq!(
            seen,
            ids.iter().map(String::as_str).collect::<Vec<_>>(),
            "{station}"
        );
        for t in &tickets {
            assert_eq!(t.station, station);
            match &t.change {
                TicketChange::New { lines } => {
                    assert_eq!(lines.len(), 1);
                    assert_eq!(lines[0].quantity, qty);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    // A cancellation reaches both stations once.
    let (st, _) = s.set_status(&s.admin, &ids[0], "cancelled").await;
    assert_eq!(st, StatusCode::OK);
    for dev in [&mut grill, &mut bar] {
        let got = dev.drain_on("/ticket", QUIET).await;
        assert_eq!(got.len(), 1);
        let t: TicketEvent = serde_json::from_slice(&got[0]).unwrap();
        assert!(matches!(t.change, TicketChange::Cancelled { .. }));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_display_gets_the_current_board() {
    let s = TestServer::start().await;
    let pw = s.device("disp", "display", &["grill"], false).await;
    let first = place(&s, grill_and_bar()).await;
    let second = place(&s, grill_and_bar()).await;
    s.set_status(&s.admin, &first, "accepted").await;
    s.set_status(&s.admin, &first, "preparing").await;
    s.set_status(&s.admin, &first, "ready").await;
    s.wait_hub().await;
    let mut d = s.connect_device("disp", &pw).await;
    d.sub("orderd/demo/station/grill/board").await;
    let (bytes, retained) = d.next_on("/board", WAIT).await.expect("retained board");
    assert!(retained);
    let board: Board = serde_json::from_slice(&bytes).unwrap();
    let open: Vec<&str> = board.tickets.iter().map(|t| t.ticket.as_str()).collect();
    assert_eq!(
        open,
        [second.as_str()],
        "the ready order has left the board"
    );
    d.disconnect().await;
    // Reconnect after a change: the new board, no refresh needed.
    let third = place(&s, grill_and_bar()).await;
    s.wait_hub().await;
    let mut d = s.connect_device("disp", &pw).await;
    d.sub("orderd/demo/station/grill/board").await;
    let board: Board = serde_json::from_slice(&d.next_on("/board", WAIT).await.unwrap().0).unwrap();
    let open: Vec<&str> = board.tickets.iter().map(|t| t.ticket.as_str()).collect();
    assert_eq!(open, [second.as_str(), third.as_str()]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused() {
    let s = TestServer::start().await;
    let pw = s.device("p1", "printer", &["grill"], false).await;
    assert!(
        mqtt::connect(s.mqtt(), "p1", "not-the-password", None)
            .await
            .is_err()
    );
    assert!(mqtt::connect(s.mqtt(), "nobody", &pw, None).await.is_err());
    assert!(
        mqtt::connect(s.mqtt(), "orderd-hub", "guess", None)
            .await
            .is_err()
    );
    assert!(mqtt::connect(s.mqtt(), "p1", &pw, None).await.is_ok());
    // A removed device is disconnected and cannot come back.
    let (st, _) = s
        .send("DELETE", "/api/v1/devices/p1", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(mqtt::connect(s.mqtt(), "p1", &pw, None).await.is_err());
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("orderd_mqtt_refused_total{what=\"login\"} 4"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_touch_only_their_own_topics() {
    let s = TestServer::start().await;
    let (mut p1, _) = s.device_online("p1", "printer", &["grill"], false).await;
    let (mut p2, _) = s.device_online("p2", "printer", &["bar"], false).await;
    let (mut disp, _) = s.device_online("disp", "display", &["grill"], false).await;
    // Subscribing to another printer's jobs or another station is refused.
    let codes = p1.sub("orderd/demo/printer/p2/job").await;
    assert_eq!(codes, [rumqttc::SubscribeReasonCode::Failure]);
    let codes = disp.sub("orderd/demo/station/bar/ticket").await;
    assert_eq!(codes, [rumqttc::SubscribeReasonCode::Failure]);
    assert_eq!(
        disp.sub("orderd/demo/#").await,
        [rumqttc::SubscribeReasonCode::Failure]
    );
    assert_eq!(disp.sub("orderd/demo/station/grill/board").await.len(), 1);
    let _ = disp.drain_on("/board", QUIET).await;
    p2.sub("orderd/demo/printer/p2/job").await;
    // Forged publishes to the hub's topics and another device's are dropped.
    p1.publish("orderd/demo/station/grill/board", "{\"forged\":1}", true)
        .await;
    p1.publish("orderd/demo/printer/p2/job", "{\"forged\":1}", false)
        .await;
    p1.publish("orderd/demo/device/p2/availability", "offline", true)
        .await;
    p1.publish("orderd/demo/hub/status", "offline", true).await;
    assert!(
        disp.drain_on("/board", QUIET).await.is_empty(),
        "forged board delivered"
    );
    assert!(
        p2.drain_on("/job", QUIET).await.is_empty(),
        "forged job delivered"
    );
    let (_, v) = s.send("GET", "/api/v1/devices", Some(&s.admin), None).await;
    let p2_view = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "p2")
        .unwrap()
        .clone();
    assert_eq!(p2_view["online"], true, "a forged offline must not count");
    // The hub's retained status is still its own: `online`.
    assert_eq!(disp.sub("orderd/demo/hub/status").await.len(), 1);
    let (status, retained) = disp.next_on("/hub/status", WAIT).await.expect("hub status");
    assert_eq!((status.as_slice(), retained), (&b"online"[..], true));
    // Its own topics still work.
    let _ = p1.sub("orderd/demo/printer/p1/job").await;
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("orderd_mqtt_refused_total{what=\"publish\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orderd_mqtt_refused_total{what=\"subscribe\"} 3"),
        "{metrics}"
    );
    // At shutdown the hub says goodbye, and the embedded broker passes it on before it
    // closes the devices' connections.
    s.stop().await;
    let (status, retained) = disp
        .next_on("/hub/status", WAIT)
        .await
        .expect("hub goodbye");
    assert_eq!((status.as_slice(), retained), (&b"offline"[..], false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_printer_gets_the_same_job_again_and_prints_it_once() {
    let s = TestServer::start_with(|c| c.kitchen.resend_secs = 1).await;
    let (mut p, pw) = s.device_online("p1", "printer", &["grill"], false).await;
    p.sub("orderd/demo/printer/p1/job").await;
    place(&s, grill_and_bar()).await;
    let first = job_of(&p.next_on("/job", WAIT).await.unwrap().0);
    // Drops off mid-job without reporting (socket gone; the will says offline).
    drop(p);
    let j = job_state(&s, &first.job_id, "waiting").await;
    assert_eq!(j["report"], "offline");
    let mut p = s.connect_device("p1", &pw).await;
    p.sub("orderd/demo/printer/p1/job").await;
    let again = job_of(&p.next_on("/job", WAIT).await.unwrap().0);
    assert_eq!(again.job_id, first.job_id, "same job id after reconnect");
    assert_eq!(again.data, first.data);
    // The printer prints once per id: it reports, and the resends stop.
    report(&p, "p1", &first.job_id, "printed").await;
    job_state(&s, &first.job_id, "printed").await;
    let _ = p.drain_on("/job", Duration::from_millis(300)).await;
    assert!(
        p.drain_on("/job", Duration::from_millis(2500))
            .await
            .is_empty(),
        "resent after printed"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rush_of_orders_rings_a_buzzer_once_while_it_still_sounds() {
    let s = TestServer::start().await;
    let (mut buzzer, _) = s.device_online("bz", "buzzer", &["grill"], false).await;
    buzzer.sub("orderd/demo/buzzer/bz/set").await;
    // Five orders at once: the first rings `double` (300 ms); the others come while it sounds.
    futures::future::join_all((0..5).map(|_| place(&s, grill_and_bar()))).await;
    let rings = buzzer.drain_on("/set", QUIET).await;
    assert!(
        !rings.is_empty() && rings.len() < 5,
        "{} rings for 5 orders placed at once",
        rings.len()
    );
    // Once it has stopped sounding, the next order rings again.
    place(&s, grill_and_bar()).await;
    let again: BuzzerSet =
        serde_json::from_slice(&buzzer.next_on("/set", WAIT).await.unwrap().0).unwrap();
    assert_eq!(again.pattern, orderd_protocol::BuzzPattern::Double);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_out_fails_over_to_the_backup_printer_with_an_alert() {
    let s = TestServer::start().await;
    let (mut main, _) = s
        .device_online("p-main", "printer", &["grill"], false)
        .await;
    let (mut backup, _) = s.device_online("p-back", "printer", &["grill"], true).await;
    let (mut buzzer, _) = s.device_online("bz", "buzzer", &["grill"], false).await;
    main.sub("orderd/demo/printer/p-main/job").await;
    backup.sub("orderd/demo/printer/p-back/job").await;
    buzzer.sub("orderd/demo/buzzer/bz/set").await;
    let order = place(&s, grill_and_bar()).await;
    let job = job_of(&main.next_on("/job", WAIT).await.unwrap().0);
    let ring: BuzzerSet =
        serde_json::from_slice(&buzzer.next_on("/set", WAIT).await.unwrap().0).unwrap();
    assert_eq!(
        ring.pattern,
        orderd_protocol::BuzzPattern::Double,
        "new-order ring"
    );
    assert!(
        backup.drain_on("/job", QUIET).await.is_empty(),
        "backup idle while main works"
    );
    report(&main, "p-main", &job.job_id, "paper_out").await;
    let moved = job_of(&backup.next_on("/job", WAIT).await.unwrap().0);
    assert_eq!(moved.copy, orderd_protocol::PrintCopy::Reprint);
    assert!(moved.data.windows(15).any(|w| w == b"*** REPRINT ***"));
    assert_ne!(moved.job_id, job.job_id);
    let alarm: BuzzerSet =
        serde_json::from_slice(&buzzer.next_on("/set", WAIT).await.unwrap().0).unwrap();
    assert_eq!(alarm.pattern, orderd_protocol::BuzzPattern::Alarm);
    let old = job_state(&s, &job.job_id, "failed_over").await;
    assert_eq!(old["replaced_by"], moved.job_id.as_str());
    assert_eq!(old["report"], "paper_out");
    // The alert is an event in the log, for staff messaging and the collector.
    common::eventually(
        "print_failover event in the log",
        Duration::from_secs(5),
        || async {
            let events = s.state().events.read(1, 10_000).unwrap();
            events
                .iter()
                .any(|e| {
                    matches!(&e.kind,
                orderd_protocol::EventKind::PrintFailover { to: Some(to), order_id, .. }
                    if to == "p-back" && *order_id == order)
                })
                .then_some(())
        },
    )
    .await;
    report(&backup, "p-back", &moved.job_id, "printed").await;
    job_state(&s, &moved.job_id, "printed").await;
    // While the main printer is known to be out of paper, a new ticket goes straight to the
    // backup (marked REPRINT), well before the 15 s silence timeout, and never to the main one.
    let asked = std::time::Instant::now();
    place(&s, grill_and_bar()).await;
    let next = job_of(&backup.next_on("/job", WAIT).await.unwrap().0);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "straight to the backup, not after the silence timeout: {:?}",
        asked.elapsed()
    );
    assert_eq!(next.copy, orderd_protocol::PrintCopy::Reprint);
    assert!(
        main.drain_on("/job", QUIET).await.is_empty(),
        "the printer out of paper is skipped"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_printer_times_out_and_does_not_hold_up_another() {
    let s = TestServer::start_with(|c| c.kitchen.job_timeout_secs = 2).await;
    let (mut silent, _) = s
        .device_online("p-grill", "printer", &["grill"], false)
        .await;
    let (mut backup, _) = s.device_online("p-back", "printer", &["grill"], true).await;
    let (mut bar, _) = s.device_online("p-bar", "printer", &["bar"], false).await;
    silent.sub("orderd/demo/printer/p-grill/job").await;
    backup.sub("orderd/demo/printer/p-back/job").await;
    bar.sub("orderd/demo/printer/p-bar/job").await;
    place(&s, grill_and_bar()).await;
    let bar_job = job_of(&bar.next_on("/job", WAIT).await.unwrap().0);
    report(&bar, "p-bar", &bar_job.job_id, "printed").await;
    job_state(&s, &bar_job.job_id, "printed").await;
    let grill_job = job_of(&silent.next_on("/job", WAIT).await.unwrap().0);
    let moved = job_of(
        &backup
            .next_on("/job", Duration::from_secs(6))
            .await
            .unwrap()
            .0,
    );
    assert_eq!(
        job_state(&s, &grill_job.job_id, "failed_over").await["report"],
        "no_report"
    );
    assert_eq!(moved.copy, orderd_protocol::PrintCopy::Reprint);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_can_reprint_and_list_jobs() {
    let s = TestServer::start().await;
    let (mut p, _) = s.device_online("p1", "printer", &["grill"], false).await;
    p.sub("orderd/demo/printer/p1/job").await;
    let order = place(&s, grill_and_bar()).await;
    let first = job_of(&p.next_on("/job", WAIT).await.unwrap().0);
    report(&p, "p1", &first.job_id, "printed").await;
    job_state(&s, &first.job_id, "printed").await;
    let waiter = s.user("wanda", "staff").await;
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/orders/{order}/reprint"),
            Some(&waiter),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let id = v["data"][0]["job_id"].as_str().unwrap().to_owned();
    let again = job_of(&p.next_on("/job", WAIT).await.unwrap().0);
    assert_eq!(again.job_id, id);
    assert_eq!(again.copy, orderd_protocol::PrintCopy::Reprint);
    job_state(&s, &id, "sent").await;
    // Errors are JSON, with the right status.
    let (st, v) = s
        .send("POST", "/api/v1/orders/nope/reprint", Some(&waiter), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = s
        .send("GET", "/api/v1/print-jobs?state=lost", Some(&waiter), None)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "validation_failed");
    let (st, _) = s.send("GET", "/api/v1/print-jobs", None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Pruning removes closed jobs only.
    let pruned = s
        .state()
        .writer
        .run(|tx| orderd::domain::print_jobs::prune(tx, u64::MAX, 100))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let (_, v) = s
        .send("GET", "/api/v1/print-jobs", Some(&waiter), None)
        .await;
    let left: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(left, [id.as_str()]);
    s.stop().await;
}

/// Waits (up to 2.5 s) for the order to reach `want`; returns the status it has then.
async fn wait_status(s: &TestServer, order: &str, want: &str) -> String {
    common::eventually(
        &format!("order {order} reached {want}"),
        Duration::from_millis(2500),
        || async { Some(status(s, order).await).filter(|st| st == want) },
    )
    .await
}

async fn status(s: &TestServer, order: &str) -> String {
    let (_, v) = s
        .send(
            "GET",
            &format!("/api/v1/orders/{order}"),
            Some(&s.admin),
            None,
        )
        .await;
    v["status"].as_str().unwrap().to_owned()
}

/// The tickets on a station's latest retained board, waiting until `done` says it is right.
async fn board_until(
    dev: &mut mqtt::Dev,
    station: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let suffix = format!("/station/{station}/board");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = Vec::new();
    while let Some((p, _)) = dev
        .next_on(
            &suffix,
            deadline.saturating_duration_since(tokio::time::Instant::now()),
        )
        .await
    {
        let board: orderd_protocol::Board = serde_json::from_slice(&p).unwrap();
        // A board with room carries every open ticket and says so.
        assert_eq!(board.total, board.tickets.len() as u64);
        assert!(!board.truncated);
        last = board.tickets.into_iter().map(|t| t.ticket).collect();
        if done(&last) {
            return last;
        }
    }
    panic!("the {station} board never came right: {last:?}");
}

async fn stations_done(s: &TestServer, order: &str) -> Value {
    let (_, v) = s
        .send(
            "GET",
            &format!("/api/v1/orders/{order}"),
            Some(&s.admin),
            None,
        )
        .await;
    v["stations_done"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_station_bumps_its_own_part_and_the_order_is_ready_when_all_are() {
    let s = TestServer::start().await;
    let (grill_bb, _) = s
        .device_online("bb-grill", "bump_bar", &["grill"], false)
        .await;
    let (bar_bb, _) = s.device_online("bb-bar", "bump_bar", &["bar"], false).await;
    let (cold_bb, _) = s
        .device_online("bb-cold", "bump_bar", &["cold"], false)
        .await;
    let (mut grill_d, _) = s
        .device_online("d-grill", "display", &["grill"], false)
        .await;
    let (mut bar_d, _) = s.device_online("d-bar", "display", &["bar"], false).await;
    grill_d.sub("orderd/demo/station/grill/board").await;
    bar_d.sub("orderd/demo/station/bar/board").await;
    let order = place(&s, grill_and_bar()).await;
    board_until(&mut grill_d, "grill", |t| t.contains(&order)).await;
    board_until(&mut bar_d, "bar", |t| t.contains(&order)).await;
    let bump = |action: &str| {
        serde_json::to_vec(&json!({"version": 1, "ticket": order, "action": action})).unwrap()
    };
    // The grill bumps: its board drops the ticket, the bar keeps its drinks, and the order is
    // being prepared.
    grill_bb
        .publish("orderd/demo/station/grill/bump", bump("bump"), false)
        .await;
    board_until(&mut grill_d, "grill", |t| !t.contains(&order)).await;
    assert_eq!(wait_status(&s, &order, "preparing").await, "preparing");
    assert_eq!(stations_done(&s, &order).await, json!(["grill"]));
    assert!(
        board_until(&mut bar_d, "bar", |_| true)
            .await
            .contains(&order)
    );
    // A bump bar of another station: refused by the broker (not its topic) and by the hub
    // (the order has nothing for the cold station).
    cold_bb
        .publish("orderd/demo/station/grill/bump", bump("bump"), false)
        .await;
    cold_bb
        .publish("orderd/demo/station/cold/bump", bump("bump"), false)
        .await;
    // Two quick presses at the grill: the second is refused (already done).
    grill_bb
        .publish("orderd/demo/station/grill/bump", bump("bump"), false)
        .await;
    common::quiet(QUIET).await;
    assert_eq!(status(&s, &order).await, "preparing");
    assert_eq!(stations_done(&s, &order).await, json!(["grill"]));
    // The grill takes its bump back: the ticket is on its board again.
    grill_bb
        .publish("orderd/demo/station/grill/bump", bump("recall"), false)
        .await;
    board_until(&mut grill_d, "grill", |t| t.contains(&order)).await;
    assert_eq!(stations_done(&s, &order).await, json!([]));
    // Both bump: the order is ready, off every board.
    grill_bb
        .publish("orderd/demo/station/grill/bump", bump("bump"), false)
        .await;
    bar_bb
        .publish("orderd/demo/station/bar/bump", bump("bump"), false)
        .await;
    assert_eq!(wait_status(&s, &order, "ready").await, "ready");
    board_until(&mut bar_d, "bar", |t| !t.contains(&order)).await;
    board_until(&mut grill_d, "grill", |t| !t.contains(&order)).await;
    // The bar takes its bump back: the order is being prepared again, back on the bar's board.
    bar_bb
        .publish("orderd/demo/station/bar/bump", bump("recall"), false)
        .await;
    assert_eq!(wait_status(&s, &order, "preparing").await, "preparing");
    board_until(&mut bar_d, "bar", |t| t.contains(&order)).await;
    assert_eq!(stations_done(&s, &order).await, json!(["grill"]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kitchen_page_bumps_a_station_over_http_and_the_expo_sees_which_are_done() {
    let s = TestServer::start().await;
    let order = place(&s, grill_and_bar()).await;
    let bump = |station: &'static str, action: &'static str| s.bump(&order, station, action);
    let (st, v) = bump("bar", "bump").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["stations_done"], json!(["bar"]));
    assert_eq!(v["status"], "preparing");
    // The active list (the expo's snapshot) says which stations are done.
    let (_, active) = s
        .send("GET", "/api/v1/orders/active", Some(&s.admin), None)
        .await;
    let listed = active["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == order.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["stations_done"], json!(["bar"]));
    for (station, action, code) in [
        ("bar", "bump", "already_done"),
        ("cold", "bump", "not_at_station"),
        ("grill", "recall", "nothing_to_recall"),
    ] {
        let (_, v) = bump(station, action).await;
        assert_eq!(v["error"]["code"], code, "{station} {action}: {v}");
    }
    let (st, v) = bump("grill", "sideways").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (st, v) = bump("grill", "bump").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "ready");
    // The station bump is in the event log with who did it.
    let events = s.state().events.read(1, 10_000).unwrap();
    assert!(events.iter().any(|e| matches!(&e.kind,
        orderd_protocol::EventKind::StationDone { order_id, station, done: true, actor, .. }
            if *order_id == order && station == "grill" && actor == "admin")));
    s.stop().await;
}

/// The next answer to a bump a bump bar gets.
async fn bump_answer(d: &mut common::mqtt::Dev) -> orderd_protocol::BumpResult {
    let (bytes, _) = d.next_on("/bump/result", WAIT).await.expect("an answer");
    serde_json::from_slice(&bytes).unwrap()
}

/// Every bump gets an answer on `station/{s}/bump/result` that the bump bar can show: done,
/// or refused with a code (unknown ticket, not at this station, unreadable payload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bump_gets_an_answer_the_bump_bar_can_show() {
    let s = TestServer::start().await;
    let (mut grill_bar, _) = s
        .device_online("bb-grill", "bump_bar", &["grill"], false)
        .await;
    let (mut cold_bar, _) = s
        .device_online("bb-cold", "bump_bar", &["cold"], false)
        .await;
    grill_bar.sub("orderd/demo/station/grill/bump/result").await;
    cold_bar.sub("orderd/demo/station/cold/bump/result").await;
    let order = place(&s, grill_and_bar()).await;
    let bump = |ticket: &str| {
        serde_json::to_vec(&json!({"version": 1, "ticket": ticket, "action": "bump"})).unwrap()
    };
    grill_bar
        .publish("orderd/demo/station/grill/bump", bump(&order), false)
        .await;
    let a = bump_answer(&mut grill_bar).await;
    assert!(a.ok && a.ticket == order && a.code.is_empty(), "{a:?}");
    assert_eq!(a.action, Some(orderd_protocol::BumpAction::Bump));

    grill_bar
        .publish(
            "orderd/demo/station/grill/bump",
            bump("no-such-order"),
            false,
        )
        .await;
    let a = bump_answer(&mut grill_bar).await;
    assert!(
        !a.ok && a.code == "not_found" && !a.message.is_empty(),
        "{a:?}"
    );

    grill_bar
        .publish(
            "orderd/demo/station/grill/bump",
            b"{not json".to_vec(),
            false,
        )
        .await;
    let a = bump_answer(&mut grill_bar).await;
    assert!(
        !a.ok && a.code == "bad_payload" && a.action.is_none(),
        "{a:?}"
    );

    // The order has nothing for the cold station: that bump bar is told so.
    cold_bar
        .publish("orderd/demo/station/cold/bump", bump(&order), false)
        .await;
    let a = bump_answer(&mut cold_bar).await;
    assert!(!a.ok && a.code == "not_at_station", "{a:?}");
    assert_eq!(
        status(&s, &order).await,
        "preparing",
        "only the grill's bump moved it"
    );
    // A second bump of the same part is refused, with a reason to show.
    grill_bar
        .publish("orderd/demo/station/grill/bump", bump(&order), false)
        .await;
    let a = bump_answer(&mut grill_bar).await;
    assert!(!a.ok && a.code == "already_done", "{a:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_inbound_payloads_leave_the_hub_running() {
    let s = TestServer::start().await;
    let (p, _) = s.device_online("p1", "printer", &["grill"], false).await;
    let (bb, _) = s.device_online("bb", "bump_bar", &["grill"], false).await;
    let (mut disp, _) = s.device_online("disp", "display", &["grill"], false).await;
    disp.sub("orderd/demo/station/grill/ticket").await;
    p.publish("orderd/demo/printer/p1/job/status", "not json", false)
        .await;
    p.publish(
        "orderd/demo/printer/p1/job/status",
        "{\"version\":1,\"job_id\":5,\"status\":[]}",
        false,
    )
    .await;
    p.publish("orderd/demo/printer/p1/job/status", vec![b'{'; 8000], false)
        .await;
    p.publish("orderd/demo/device/p1/state", vec![0xff, 0xfe], true)
        .await;
    p.publish("orderd/demo/device/p1/availability", "maybe", true)
        .await;
    bb.publish(
        "orderd/demo/station/grill/bump",
        "{\"version\":1,\"ticket\":\"x\",\"action\":\"explode\"}",
        false,
    )
    .await;
    bb.publish(
        "orderd/demo/station/grill/bump",
        "{\"version\":1,\"ticket\":\"no-such-order\",\"action\":\"bump\"}",
        false,
    )
    .await;
    common::quiet(QUIET).await;
    // Still routing tickets.
    let id = place(&s, grill_and_bar()).await;
    let t: TicketEvent =
        serde_json::from_slice(&disp.next_on("/ticket", WAIT).await.unwrap().0).unwrap();
    assert_eq!(t.ticket, id);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("orderd_mqtt_malformed_payloads_total 6"),
        "{metrics}"
    );
    // A packet larger than a device may send closes only that device's connection.
    p.publish("orderd/demo/device/p1/state", vec![b'x'; 64 * 1024], true)
        .await;
    common::quiet(QUIET).await;
    let id2 = place(&s, grill_and_bar()).await;
    let t: TicketEvent =
        serde_json::from_slice(&disp.next_on("/ticket", WAIT).await.unwrap().0).unwrap();
    assert_eq!(t.ticket, id2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_health_follows_availability_and_state() {
    let s = TestServer::start().await;
    let (p, _) = s.device_online("p1", "printer", &["grill"], false).await;
    p.publish("orderd/demo/device/p1/state", "paper_out", true)
        .await;
    let v = s
        .wait_get("/api/v1/devices", &s.admin, |v| {
            v["data"][0]["state"] == "paper_out"
        })
        .await;
    assert_eq!(v["data"][0]["online"], true);
    assert_eq!(v["data"][0]["state"], "paper_out");
    assert!(v["data"][0]["last_seen"].is_string());
    drop(p); // the will: offline
    let v = s
        .wait_get("/api/v1/devices", &s.admin, |v| {
            v["data"][0]["online"] == false
        })
        .await;
    assert_eq!(v["data"][0]["online"], false);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("orderd_device_online{device=\"p1\"} 0"),
        "{metrics}"
    );
    // The hub writes its alerts at its next flush.
    let statuses: Vec<(bool, String)> = common::eventually(
        "three device-status events",
        Duration::from_secs(10),
        || async {
            let events = s.state().events.read(1, 1000).unwrap();
            let statuses: Vec<(bool, String)> = events
                .iter()
                .filter_map(|e| match &e.kind {
                    orderd_protocol::EventKind::DeviceStatus {
                        device,
                        online,
                        state,
                    } if device == "p1" => Some((*online, state.clone())),
                    _ => None,
                })
                .collect();
            (statuses.len() >= 3).then_some(statuses)
        },
    )
    .await;
    assert_eq!(
        statuses,
        [
            (true, String::new()),
            (true, "paper_out".into()),
            (false, "paper_out".into())
        ]
    );
    let _ = Msg::SubAck(Vec::new());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_board_still_reaches_a_display() {
    let s = TestServer::start().await;
    let pw = s.device("disp", "display", &["grill"], false).await;
    let mut ids = Vec::new();
    let burger = || json!([{"item_id": "burger", "quantity": 1, "modifiers": ["medium"]}]);
    for _ in 0..201 {
        ids.push(place(&s, burger()).await);
    }
    s.wait_hub().await;
    let mut d = s.connect_device("disp", &pw).await;
    d.sub("orderd/demo/station/grill/ticket").await;
    d.sub("orderd/demo/station/grill/board").await;
    // Counted once the board was truncated; the next nine come after that count, and the
    // hub, idle between them, counts again by itself.
    let mut counted = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while counted < 201 && tokio::time::Instant::now() < deadline {
        if let Some((bytes, _)) = d.next_on("/grill/board", Duration::from_secs(1)).await {
            counted = serde_json::from_slice::<Board>(&bytes).unwrap().total;
        }
    }
    assert_eq!(counted, 201);
    for _ in 0..9 {
        ids.push(place(&s, burger()).await);
    }
    s.wait_hub().await;
    let mut d = s.connect_device("disp", &pw).await;
    d.sub("orderd/demo/station/grill/ticket").await;
    d.sub("orderd/demo/station/grill/board").await;
    let (bytes, _) = d.next_on("/board", WAIT).await.expect("retained board");
    let board: Board = serde_json::from_slice(&bytes).unwrap();
    // Capped at the 200 oldest, so a retained board stays a small message.
    assert_eq!(board.tickets.len(), 200, "{} bytes", bytes.len());
    assert_eq!(board.tickets[0].ticket, ids[0]);
    assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
    // It says so: truncated, and the station's total, counted in the store (within 10 s).
    assert!(board.truncated);
    let mut total = board.total;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while total != 210 && tokio::time::Instant::now() < deadline {
        if let Some((bytes, _)) = d.next_on("/grill/board", Duration::from_secs(1)).await {
            total = serde_json::from_slice::<Board>(&bytes).unwrap().total;
        }
    }
    assert_eq!(total, 210);
    // The compact board for small displays: the oldest 40, no lines, the same total.
    d.sub("orderd/demo/station/grill/board/compact").await;
    let (bytes, _) = d
        .next_on("/board/compact", WAIT)
        .await
        .expect("compact board");
    let compact: orderd_protocol::CompactBoard = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(compact.tickets.len(), orderd_protocol::COMPACT_TICKETS);
    assert_eq!(compact.tickets[0].ticket, ids[0]);
    assert_eq!(compact.tickets[0].items, 1);
    assert!(compact.truncated);
    assert!(bytes.len() < 8 * 1024, "{} bytes", bytes.len());
    s.stop().await;
}

/// Waits for a publish on a topic ending with `suffix` whose payload is `want`.
async fn until_payload(dev: &mut mqtt::Dev, suffix: &str, want: &str) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Some((p, _)) = dev
        .next_on(
            suffix,
            deadline.saturating_duration_since(tokio::time::Instant::now()),
        )
        .await
    {
        if p == want.as_bytes() {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_discovers_open_orders_and_device_availability() {
    let s = TestServer::start_with(|c| c.mqtt.home_assistant = true).await;
    s.wait_hub().await;
    let (printer, _) = s
        .device_online("p-grill", "printer", &["grill"], false)
        .await;
    let ha_pw = s.device("ha", "home_assistant", &[], false).await;
    let mut ha = mqtt::connect(s.mqtt(), "ha", &ha_pw, None).await.unwrap();
    // What Home Assistant subscribes to, and nothing more.
    assert_eq!(
        ha.sub("homeassistant/#").await,
        [rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]
    );
    for filter in ["orderd/demo/hub/#", "orderd/demo/device/+/availability"] {
        assert!(matches!(
            ha.sub(filter).await[..],
            [rumqttc::SubscribeReasonCode::Success(_)]
        ));
    }
    for filter in ["orderd/demo/printer/+/job", "orderd/demo/#", "#"] {
        assert_eq!(
            ha.sub(filter).await,
            [rumqttc::SubscribeReasonCode::Failure],
            "{filter}"
        );
    }

    // Discovery configs: the hub's open-order sensor and the printer's connectivity sensor.
    let mut sensor = None;
    let mut printer_cfg = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while sensor.is_none() || printer_cfg.is_none() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ha.next_msg(left).await.expect("discovery configs") {
            Msg::Publish { topic, payload, .. } if topic.ends_with("/config") => {
                let v: Value = serde_json::from_slice(&payload).unwrap();
                if topic == "homeassistant/sensor/orderd_demo/open_orders/config" {
                    sensor = Some(v);
                } else if topic == "homeassistant/binary_sensor/orderd_demo/p-grill/config" {
                    printer_cfg = Some(v);
                }
            }
            _ => {}
        }
    }
    let sensor = sensor.unwrap();
    assert_eq!(sensor["state_topic"], "orderd/demo/hub/open_orders");
    assert_eq!(sensor["availability_topic"], "orderd/demo/hub/status");
    let printer_cfg = printer_cfg.unwrap();
    assert_eq!(
        printer_cfg["state_topic"],
        "orderd/demo/device/p-grill/availability"
    );
    assert_eq!(printer_cfg["device_class"], "connectivity");

    // An order on two stations is one open order.
    let order = place(&s, grill_and_bar()).await;
    assert!(until_payload(&mut ha, "/hub/open_orders", "1").await);
    let (st, _) = s.set_status(&s.admin, &order, "cancelled").await;
    assert_eq!(st, StatusCode::OK);
    assert!(until_payload(&mut ha, "/hub/open_orders", "0").await);

    // The printer drops off: Home Assistant sees its will.
    drop(printer);
    assert!(until_payload(&mut ha, "/device/p-grill/availability", "offline").await);
    // A device registered later gets its config when it first comes online.
    let _buzzer = s.device_online("bz", "buzzer", &[], false).await;
    let (cfg, _) = ha
        .next_on("/binary_sensor/orderd_demo/bz/config", WAIT)
        .await
        .expect("config for the new device");
    assert_eq!(
        serde_json::from_slice::<Value>(&cfg).unwrap()["state_topic"],
        "orderd/demo/device/bz/availability"
    );
    s.stop().await;
}

/// The stock level of an item, as the menu shows it.
async fn stock_of(s: &TestServer, item: &str) -> u64 {
    let (_, menu) = s.send("GET", "/api/v1/menu", Some(&s.admin), None).await;
    let found = menu["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["items"].as_array().unwrap().iter())
        .find(|i| i["id"] == item)
        .unwrap_or_else(|| panic!("{menu}"));
    found["stock"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_changes_reach_the_stations_they_touch_as_deltas() {
    let s = TestServer::start().await;
    let (mut grill, _) = s
        .device_online("disp-grill", "display", &["grill"], false)
        .await;
    let (mut bar, _) = s
        .device_online("disp-bar", "display", &["bar"], false)
        .await;
    let (mut p, _) = s.device_online("p1", "printer", &["grill"], false).await;
    grill.sub("orderd/demo/station/grill/ticket").await;
    bar.sub("orderd/demo/station/bar/ticket").await;
    p.sub("orderd/demo/printer/p1/job").await;
    let id = place(&s, grill_and_bar()).await;
    assert_eq!(grill.drain_on("/ticket", QUIET).await.len(), 1);
    assert_eq!(bar.drain_on("/ticket", QUIET).await.len(), 1);
    let _ = p.next_on("/job", WAIT).await.expect("the new ticket's job");
    assert_eq!(stock_of(&s, "tave_kosi").await, 18);

    // Tavë kosi 2 → 3, espresso removed.
    let path = format!("/api/v1/orders/{id}/items");
    let (st, order) = s
        .send(
            "PATCH",
            &path,
            Some(&s.admin),
            Some(json!({"set": [{"line": 0, "quantity": 3}, {"line": 1, "quantity": 0}]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{order}");
    assert_eq!(order["items"].as_array().unwrap().len(), 1);
    assert_eq!(order["items"][0]["quantity"], 3);
    assert_eq!(
        order["total"].as_i64().unwrap(),
        3 * order["items"][0]["unit_price"].as_i64().unwrap()
    );
    assert_eq!(stock_of(&s, "tave_kosi").await, 17, "one more taken");

    for (dev, item, old, new) in [
        (&mut grill, "tave_kosi", 2, 3),
        (&mut bar, "espresso", 1, 0),
    ] {
        let got = dev.drain_on("/ticket", QUIET).await;
        assert_eq!(got.len(), 1, "one changed ticket per station");
        let t: TicketEvent = serde_json::from_slice(&got[0]).unwrap();
        assert_eq!(t.ticket, id);
        let TicketChange::Changed { deltas } = &t.change else {
            panic!("{:?}", t.change)
        };
        assert_eq!(deltas.len(), 1, "only this station's lines");
        assert_eq!(
            (
                deltas[0].item_id.as_str(),
                deltas[0].old_quantity,
                deltas[0].new_quantity
            ),
            (item, old, new)
        );
    }
    // The grill printer gets a change slip; the boards follow.
    let slip = job_of(&p.next_on("/job", WAIT).await.expect("a change slip").0);
    let text = String::from_utf8_lossy(&slip.data);
    assert!(text.contains("CHANGED") && text.contains("was 2"), "{text}");
    grill.sub("orderd/demo/station/grill/board").await;
    let board: Board =
        serde_json::from_slice(&grill.next_on("/board", WAIT).await.unwrap().0).unwrap();
    assert_eq!(board.tickets[0].lines[0].quantity, 3);
    bar.sub("orderd/demo/station/bar/board").await;
    let board: Board =
        serde_json::from_slice(&bar.next_on("/board", WAIT).await.unwrap().0).unwrap();
    assert!(board.tickets.is_empty(), "no line left at the bar");

    // Refusals: a line that does not exist, removing everything, a bad quantity, an empty
    // change, more than the stock, and any change once the order is ready.
    for (body, code) in [
        (json!({"set": [{"line": 7, "quantity": 1}]}), "no_such_line"),
        (json!({"set": [{"line": 0, "quantity": 0}]}), "last_line"),
        (
            json!({"set": [{"line": 0, "quantity": -1}]}),
            "validation_failed",
        ),
        (json!({}), "validation_failed"),
        (
            json!({"add": [{"item_id": "tave_kosi", "quantity": 18}]}),
            "insufficient_stock",
        ),
    ] {
        let (st, v) = s.send("PATCH", &path, Some(&s.admin), Some(body)).await;
        assert!(st.is_client_error(), "{st} {v}");
        assert_eq!(common::error_code(&v), code, "{v}");
    }
    assert_eq!(
        stock_of(&s, "tave_kosi").await,
        17,
        "refusals change nothing"
    );
    for status in ["accepted", "preparing", "ready"] {
        s.set_status(&s.admin, &id, status).await;
    }
    let (st, v) = s
        .send(
            "PATCH",
            &path,
            Some(&s.admin),
            Some(json!({"set": [{"line": 0, "quantity": 1}]})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(common::error_code(&v), "not_editable");
    // Customers cannot edit.
    let (st, _) = s
        .send(
            "PATCH",
            &path,
            None,
            Some(json!({"set": [{"line": 0, "quantity": 1}]})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

/// Orders left open past the end of their business day leave the kitchen boards when the next
/// day starts, are never closed by it, and are listed for the manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_left_open_from_yesterday_leave_the_boards_and_are_listed() {
    // A session that outlives the day this test skips.
    let s = TestServer::start_with(|c| c.auth.session_ttl_secs = 3 * 86_400).await;
    let (mut d, _) = s.device_online("kds", "display", &["grill"], false).await;
    d.sub("orderd/demo/station/grill/board").await;
    let old = place(&s, grill_and_bar()).await;
    // The board shows it (retained boards may arrive more than once; read until it is there).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let board: Board =
            serde_json::from_slice(&d.next_on("/board", WAIT).await.unwrap().0).unwrap();
        if board.tickets.iter().any(|t| t.ticket == old) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the order reached the board"
        );
    }
    let (st, v) = s
        .send("GET", "/api/v1/orders/left-open", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 0, "today's orders are not left open: {v}");
    // A day later the first order of the new day rolls the boards over.
    s.clock.advance_ms(86_400_000);
    let new = place(&s, grill_and_bar()).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let board: Board =
            serde_json::from_slice(&d.next_on("/board", WAIT).await.unwrap().0).unwrap();
        let ids: Vec<&str> = board.tickets.iter().map(|t| t.ticket.as_str()).collect();
        if ids == [new.as_str()] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the board rolled over: {ids:?}"
        );
    }
    let (st, v) = s
        .send("GET", "/api/v1/orders/left-open", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["data"][0]["id"], old.as_str());
    assert_eq!(
        v["data"][0]["status"], "placed",
        "listed, never closed by the roll-over"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lines_allergens_reach_the_ticket_the_board_and_the_printed_slip() {
    let s = TestServer::start().await;
    let (mut disp, _) = s.device_online("disp", "display", &["grill"], false).await;
    let (mut p, _) = s.device_online("p1", "printer", &["grill"], false).await;
    disp.sub("orderd/demo/station/grill/ticket").await;
    p.sub("orderd/demo/printer/p1/job").await;
    place(
        &s,
        json!([{"item_id": "burger", "quantity": 1, "modifiers": ["medium"]}]),
    )
    .await;
    let t: TicketEvent =
        serde_json::from_slice(&disp.next_on("/ticket", WAIT).await.unwrap().0).unwrap();
    let TicketChange::New { lines } = t.change else {
        panic!("a new ticket")
    };
    assert_eq!(lines[0].allergens, ["gluten", "milk", "mustard"]);
    disp.sub("orderd/demo/station/grill/board").await;
    let board: Board = loop {
        let (bytes, _) = disp
            .next_on("/grill/board", WAIT)
            .await
            .expect("a board with the ticket");
        let b: Board = serde_json::from_slice(&bytes).unwrap();
        if !b.tickets.is_empty() {
            break b;
        }
    };
    assert_eq!(
        board.tickets[0].lines[0].allergens,
        ["gluten", "milk", "mustard"]
    );
    let job: PrintJob = serde_json::from_slice(&p.next_on("/job", WAIT).await.unwrap().0).unwrap();
    let text = orderd_plugins::escpos::status::decode_text(&job.data);
    assert!(
        text.contains("ALLERGENS/ALERGJENE: gluten, milk, mustard"),
        "{text}"
    );
    s.stop().await;
}

/// Places a grill-and-bar takeaway order with an allergy note.
async fn place_with_allergy(s: &TestServer, note: &str) -> (StatusCode, Value) {
    s.send(
        "POST",
        "/api/v1/orders",
        Some(&s.admin),
        Some(json!({"type": "takeaway", "allergy": note, "items": grill_and_bar()})),
    )
    .await
}

/// The first board of `station` whose ticket `order` satisfies `want`.
async fn board_ticket_until(
    d: &mut common::mqtt::Dev,
    station: &str,
    order: &str,
    want: impl Fn(&orderd_protocol::BoardTicket) -> bool,
) -> orderd_protocol::BoardTicket {
    let mut last = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let Some((bytes, _)) = d.next_on(&format!("/{station}/board"), WAIT).await else {
            break;
        };
        let b: Board = serde_json::from_slice(&bytes).unwrap();
        if let Some(t) = b.tickets.into_iter().find(|t| t.ticket == order) {
            if want(&t) {
                return t;
            }
            last = Some(t);
        }
    }
    panic!("the {station} board never showed the ticket as wanted: {last:?}");
}

/// An order's allergy note, written when it is placed, reaches every station's ticket, board
/// and printed slip; each station must acknowledge it before it can bump, from a bump bar or
/// the kitchen page; the note and its acknowledgements are facts in the log and survive a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allergy_note_reaches_every_station_and_must_be_acknowledged_before_the_first_bump() {
    let s = TestServer::start().await;
    let (mut disp, disp_pw) = s.device_online("disp", "display", &["grill"], false).await;
    let (mut printer, _) = s.device_online("p1", "printer", &["grill"], false).await;
    let (mut bb, _) = s.device_online("bb", "bump_bar", &["grill"], false).await;
    disp.sub("orderd/demo/station/grill/ticket").await;
    disp.sub("orderd/demo/station/grill/board").await;
    printer.sub("orderd/demo/printer/p1/job").await;
    bb.sub("orderd/demo/station/grill/bump/result").await;
    // Too long a note is refused whole.
    let (st, v) = place_with_allergy(&s, &"x".repeat(2000)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["details"]["field"], "allergy", "{v}");
    let (st, v) = place_with_allergy(&s, "  peanuts, sesame ").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["allergy"],
        json!({"note": "peanuts, sesame", "acked": []})
    );
    let order = v["id"].as_str().unwrap().to_owned();
    // The ticket, the board and the printed slip carry it.
    let t: TicketEvent =
        serde_json::from_slice(&disp.next_on("/ticket", WAIT).await.unwrap().0).unwrap();
    assert_eq!(t.allergy.as_deref(), Some("peanuts, sesame"));
    let shown = board_ticket_until(&mut disp, "grill", &order, |t| t.allergy.is_some()).await;
    assert!(!shown.allergy_acked);
    let job: PrintJob =
        serde_json::from_slice(&printer.next_on("/job", WAIT).await.unwrap().0).unwrap();
    let text = orderd_plugins::escpos::status::decode_text(&job.data);
    assert!(text.contains("ALLERGY/ALERGJI: peanuts, sesame"), "{text}");
    // The bump bar's first bump is refused until the grill acknowledges the note.
    let press = |action: &str| {
        serde_json::to_vec(&json!({"version": 1, "ticket": order, "action": action})).unwrap()
    };
    bb.publish("orderd/demo/station/grill/bump", press("bump"), false)
        .await;
    let answer = bump_answer(&mut bb).await;
    assert!(
        !answer.ok && answer.code == "allergy_unacknowledged",
        "{answer:?}"
    );
    assert_eq!(status(&s, &order).await, "placed");
    bb.publish(
        "orderd/demo/station/grill/bump",
        press("ack_allergy"),
        false,
    )
    .await;
    let answer = bump_answer(&mut bb).await;
    assert!(answer.ok, "{answer:?}");
    assert_eq!(answer.action, Some(orderd_protocol::BumpAction::AckAllergy));
    board_ticket_until(&mut disp, "grill", &order, |t| t.allergy_acked).await;
    bb.publish(
        "orderd/demo/station/grill/bump",
        press("ack_allergy"),
        false,
    )
    .await;
    assert_eq!(bump_answer(&mut bb).await.code, "already_acknowledged");
    bb.publish("orderd/demo/station/grill/bump", press("bump"), false)
        .await;
    assert!(bump_answer(&mut bb).await.ok);
    assert_eq!(wait_status(&s, &order, "preparing").await, "preparing");
    // The kitchen page: the bar has not acknowledged, so its bump is refused; then it does.
    let http = |action: &'static str| s.bump(&order, "bar", action);
    let (st, v) = http("bump").await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "allergy_unacknowledged");
    let (st, v) = http("ack_allergy").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["allergy"]["acked"], json!(["grill", "bar"]));
    let (st, v) = http("bump").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "ready");
    // An order without a note has nothing to acknowledge.
    let plain = place(&s, grill_and_bar()).await;
    let (_, v) = s.bump(&plain, "bar", "ack_allergy").await;
    assert_eq!(v["error"]["code"], "no_allergy", "{v}");
    // Facts in the log, in order: the note right after its placement, then each
    // acknowledgement with who gave it.
    let events = s.state().events.read(1, 10_000).unwrap();
    let placed_at = events
        .iter()
        .position(
            |e| matches!(&e.kind, orderd_protocol::EventKind::OrderPlaced(o) if o.id == order),
        )
        .unwrap();
    assert!(matches!(&events[placed_at + 1].kind,
        orderd_protocol::EventKind::AllergyNoted { order_id, note, actor, .. }
            if *order_id == order && note == "peanuts, sesame" && actor == "admin"));
    let acks: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            orderd_protocol::EventKind::AllergyAcked {
                order_id,
                station,
                actor,
                ..
            } if *order_id == order => Some((station.clone(), actor.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        acks,
        [
            ("grill".to_owned(), "bump-bar@grill".to_owned()),
            ("bar".to_owned(), "admin".to_owned())
        ]
    );
    // A second order with a note, open across a restart: its board ticket still has it.
    let (_, v) = place_with_allergy(&s, "milk").await;
    let open = v["id"].as_str().unwrap().to_owned();
    drop((disp, printer, bb));
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let mut disp = s.connect_device("disp", &disp_pw).await;
    disp.sub("orderd/demo/station/grill/board").await;
    let t = board_ticket_until(&mut disp, "grill", &open, |t| t.allergy.is_some()).await;
    assert_eq!(t.allergy.as_deref(), Some("milk"));
    assert!(!t.allergy_acked);
    let (_, v) = s
        .send(
            "GET",
            &format!("/api/v1/orders/{order}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(
        v["allergy"],
        json!({"note": "peanuts, sesame", "acked": ["grill", "bar"]})
    );
    s.stop().await;
}
