//! The event log: every committed change appends a typed event in the same transaction;
//! subscribers replay from any seq and then follow live; cursors are durable; retention
//! prunes only what every registered consumer has passed, and keeps daily summaries.
use crate::common;

use std::time::Duration;

use common::TestServer;
use orderd_protocol::EventKind;
use reqwest::StatusCode;
use serde_json::json;

async fn next(sub: &mut orderd::events::Subscription) -> orderd_protocol::Event {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("an event in time")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_replays_then_follows_live() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let (_, o1) = s
        .order(&staff, json!([{"item_id": "tave_kosi", "quantity": 16}]))
        .await;
    let id = o1["id"].as_str().unwrap().to_owned();
    s.set_status(&staff, &id, "accepted").await;
    let (st, _) = s.set_available(&staff, "espresso", false).await;
    assert_eq!(st, StatusCode::OK);

    // Replay from the start.
    let log = &s.state().events;
    let mut sub = log.subscribe(1);
    let e1 = next(&mut sub).await;
    assert_eq!(e1.seq, 1);
    let EventKind::OrderPlaced(placed) = &e1.kind else {
        panic!("{e1:?}")
    };
    assert_eq!(placed.id, id);
    assert_eq!(placed.total, 16 * 1100);
    // The event shows the order as it was placed, though it has been accepted since.
    assert_eq!(placed.status, orderd_protocol::OrderStatus::Placed);
    assert!(placed.accepted_at.is_none());
    assert_eq!(placed.updated_at, placed.created_at);
    let original: serde_json::Value = o1.clone();
    assert_eq!(
        original["items"].as_array().unwrap().len(),
        placed.items.len()
    );
    assert_eq!(original["number"], placed.number.as_str());
    let e2 = next(&mut sub).await;
    assert!(
        matches!(e2.kind, EventKind::StockLow { ref item_id, remaining: 4 } if item_id == "tave_kosi"),
        "{e2:?}"
    );
    let e3 = next(&mut sub).await;
    assert!(
        matches!(
            e3.kind,
            EventKind::StatusChanged {
                to: orderd_protocol::OrderStatus::Accepted,
                ..
            }
        ),
        "{e3:?}"
    );
    let e4 = next(&mut sub).await;
    assert!(
        matches!(
            e4.kind,
            EventKind::AvailabilityChanged {
                available: false,
                ..
            }
        ),
        "{e4:?}"
    );
    // Then live.
    // `sub` was subscribed when it was made: an event committed from now on reaches it.
    let waiter = tokio::spawn(async move { next(&mut sub).await });
    s.order(&staff, json!([{"item_id": "tave_kosi", "quantity": 4}]))
        .await;
    let e5 = waiter.await.unwrap();
    assert_eq!(e5.seq, 5);
    assert!(matches!(e5.kind, EventKind::OrderPlaced(_)));
    // A subscriber starting in the middle sees the rest, in order, without gaps.
    let mut mid = log.subscribe(3);
    let seqs: Vec<u64> = [
        next(&mut mid).await,
        next(&mut mid).await,
        next(&mut mid).await,
        next(&mut mid).await,
    ]
    .iter()
    .map(|e| e.seq)
    .collect();
    assert_eq!(seqs, [3, 4, 5, 6]);
    assert!(matches!(
        next(&mut mid).await.kind,
        EventKind::AvailabilityChanged {
            available: false,
            ..
        }
    ));
    drop(mid);
    // Seqs survive a restart: the next event continues the log.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let staff = s.login("anna", "password-123").await;
    let before = s.state().events.last_seq();
    assert_eq!(before, 7);
    s.order(
        &staff,
        json!([{"item_id": "burger", "quantity": 1, "modifiers": ["medium"]}]),
    )
    .await;
    assert_eq!(s.state().events.read(before + 1, 10).unwrap()[0].seq, 8);
    s.stop().await;
}

/// `try_next` hands over what is committed already, in order and without gaps, and `None`
/// without waiting once caught up (the kitchen hub takes a burst of events this way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_next_takes_what_is_committed_without_waiting() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let log = &s.state().events;
    let mut caught_up = log.subscribe(log.last_seq() + 1);
    assert!(caught_up.try_next().unwrap().is_none());
    for _ in 0..3 {
        s.order(&staff, json!([{"item_id": "espresso", "quantity": 1}]))
            .await;
    }
    let last = log.last_seq();
    // From the log (an old position) and from the wake-ups (a live one) alike.
    for from in [1, last - 2] {
        let mut sub = log.subscribe(from);
        let mut seqs = Vec::new();
        while let Some(e) = sub.try_next().unwrap() {
            seqs.push(e.seq);
        }
        assert_eq!(seqs, (from..=last).collect::<Vec<_>>());
        assert!(sub.try_next().unwrap().is_none());
    }
    let mut seqs = Vec::new();
    while let Some(e) = caught_up.try_next().unwrap() {
        assert!(matches!(e.kind, EventKind::OrderPlaced(_)), "{e:?}");
        seqs.push(e.seq);
    }
    assert_eq!(seqs, [last - 2, last - 1, last]);
    // Nothing new: `None` at once, and `next` still waits for the next commit.
    assert!(caught_up.try_next().unwrap().is_none());
    s.order(&staff, json!([{"item_id": "espresso", "quantity": 1}]))
        .await;
    assert_eq!(next(&mut caught_up).await.seq, last + 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_waits_for_every_consumer_and_keeps_summaries() {
    let s = TestServer::start_with(|c| {
        c.auth.session_ttl_secs = 30 * 86_400 - 1;
        c.orders.retention_days = 20;
    })
    .await;
    let staff = s.user("anna", "staff").await;
    let log = s.state().events.clone();
    log.register("uploader").await.unwrap();
    // Two finished orders and one still open on day one.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (_, o) = s
            .order(&staff, json!([{"item_id": "espresso", "quantity": 2}]))
            .await;
        let id = o["id"].as_str().unwrap().to_owned();
        for st in ["accepted", "preparing", "ready", "picked_up"] {
            assert_eq!(s.set_status(&staff, &id, st).await.0, StatusCode::OK);
        }
        ids.push(id);
    }
    let (_, open) = s
        .order(&staff, json!([{"item_id": "espresso", "quantity": 1}]))
        .await;
    let open_id = open["id"].as_str().unwrap().to_owned();
    // 21 days later, the open order and the consumer's cursor both hold the day back.
    s.clock.advance_ms(21 * 86_400_000);
    assert_eq!(s.sweep().await.orders, 0);
    assert_eq!(
        s.set_status(&staff, &open_id, "cancelled").await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.sweep().await.orders,
        0,
        "the uploader has not passed these events"
    );
    log.set_cursor("uploader", log.last_seq()).await.unwrap();
    let swept = s.sweep().await;
    assert_eq!(swept.orders, 3, "{swept:?}");
    assert!(swept.events > 0);
    let (st, _) = s
        .send(
            "GET",
            &format!("/api/v1/orders/{}", ids[0]),
            Some(&staff),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // The report of that day survives the pruning.
    let (st, report) = s
        .send(
            "GET",
            "/api/v1/analytics/daily?date=2026-11-22",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // "orders" leaves cancelled ones out, as at the collector; "orders_placed" counts all.
    assert_eq!(report["orders"], 2);
    assert_eq!(report["orders_placed"], 3);
    assert_eq!(report["cancelled"], 1);
    assert_eq!(report["revenue"], 2 * 2 * 150);
    assert_eq!(report["top_items"][0]["item_id"], "espresso");
    // Events newer than the cursor are never pruned.
    let keep = log.last_seq();
    assert_eq!(
        s.order(&staff, json!([{"item_id": "espresso", "quantity": 1}]))
            .await
            .0,
        StatusCode::CREATED
    );
    s.clock.advance_ms(21 * 86_400_000);
    s.sweep().await;
    assert!(!log.read(keep + 1, 10).unwrap().is_empty());
    drop(log); // holds a writer handle
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_report_the_day() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let (_, a) = s
        .order(
            &staff,
            json!([{"item_id": "burger", "quantity": 2, "modifiers": ["medium", "bacon"]}]),
        )
        .await;
    let (_, b) = s
        .order(&staff, json!([{"item_id": "espresso", "quantity": 3}]))
        .await;
    let a = a["id"].as_str().unwrap().to_owned();
    s.set_status(&staff, &a, "accepted").await;
    s.clock.advance_ms(600_000);
    s.set_status(&staff, &a, "preparing").await;
    s.set_status(&staff, &a, "ready").await;
    s.set_status(&staff, b["id"].as_str().unwrap(), "cancelled")
        .await;
    let (st, r) = s
        .send("GET", "/api/v1/analytics/daily", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["orders"], 1, "the cancelled order is not counted: {r}");
    assert_eq!(r["orders_placed"], 2);
    assert_eq!(r["revenue"], 2000);
    assert_eq!(r["average_order_value"], 2000);
    assert_eq!(r["orders_by_status"]["ready"], 1);
    assert_eq!(r["orders_by_status"]["cancelled"], 1);
    assert_eq!(r["peak_hour"], 13, "12:00 UTC is 13:00 in Tirana");
    assert_eq!(r["orders_by_hour"][13], 2);
    assert_eq!(r["average_prep_secs"], 600);
    let (_, sum) = s
        .send(
            "GET",
            "/api/v1/analytics/summary?from=2026-11-20&to=2026-11-22",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(sum["orders"], 1);
    assert_eq!(sum["orders_placed"], 2);
    assert_eq!(sum["days"], 3);
    // Finished orders leave the active list and show in recent.
    assert_eq!(
        s.set_status(&staff, &a, "picked_up").await.0,
        StatusCode::OK
    );
    let (_, active) = s
        .send("GET", "/api/v1/orders/active", Some(&staff), None)
        .await;
    assert_eq!(active["pagination"]["total"], 0);
    let (_, recent) = s
        .send("GET", "/api/v1/orders/recent", Some(&staff), None)
        .await;
    assert_eq!(recent["pagination"]["total"], 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_forgotten_after_their_lifetime() {
    let s = TestServer::start_with(|c| {
        c.orders.idempotency_ttl_secs = 3600;
        c.auth.session_ttl_secs = 86_400;
    })
    .await;
    let staff = s.user("anna", "staff").await;
    let a = json!({"type": "takeaway", "items": [{"item_id": "espresso", "quantity": 1}]});
    let b = json!({"type": "takeaway", "items": [{"item_id": "espresso", "quantity": 2}]});
    let post = |body: serde_json::Value, key: &'static str| {
        let s = &s;
        let staff = staff.clone();
        async move {
            s.send_with(
                "POST",
                "/api/v1/orders",
                Some(&staff),
                Some(body),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };
    let (st, first) = post(a.clone(), "k1").await;
    assert_eq!(st, StatusCode::CREATED);
    post(a.clone(), "k2").await;
    // Within the lifetime the key holds, even across a sweep.
    s.clock.advance_ms(3_000_000);
    assert_eq!(s.sweep().await.expired, 0);
    assert_eq!(post(a.clone(), "k1").await.1["id"], first["id"]);
    assert_eq!(post(b.clone(), "k1").await.0, StatusCode::CONFLICT);
    // After it, the sweep forgets both keys and k1 is free for a new order.
    s.clock.advance_ms(700_000);
    assert_eq!(s.sweep().await.expired, 2);
    assert_eq!(s.sweep().await.expired, 0, "each key is forgotten once");
    let (st, again) = post(b, "k1").await;
    assert_eq!(st, StatusCode::CREATED);
    assert_ne!(again["id"], first["id"]);
    s.stop().await;
}

/// An `order_placed` stored the old way (a reference to the order, rebuilt on read) is frozen
/// whole at the next start, so a later edit of the order never changes it; the edit is an
/// event of its own that carries every line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_placed_events_are_frozen_before_any_later_edit() {
    use orderd::store::event_row::EventRow;
    use orderd::store::{Store, codec, tables};
    use redb::ReadableTable as _;

    let s = TestServer::start().await;
    let (st, placed) = s
        .order(&s.admin, json!([{"item_id": "lemonade", "quantity": 1}]))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{placed}");
    let id = placed["id"].as_str().unwrap().to_owned();
    let dir = s.stop().await;

    // Write the placed event back in the legacy form, as a box before the upgrade had it.
    let seq = {
        let store = Store::open(dir.path(), 4 << 20).unwrap();
        let wtx = store.db().begin_write().unwrap();
        let seq = {
            let mut events = wtx.open_table(tables::EVENTS).unwrap();
            let (seq, event) = events
                .iter()
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    let row: EventRow = codec::decode(v.value()).unwrap();
                    (k.value(), row.into_event(|_| Ok(None)).unwrap())
                })
                .find(|(_, e)| matches!(&e.kind, EventKind::OrderPlaced(o) if o.id == id))
                .unwrap();
            let key = orderd::domain::parse_id(&id).unwrap();
            let legacy = EventRow::Placed {
                version: event.version,
                seq,
                at: event.at,
                order: key,
            };
            events
                .insert(seq, codec::encode(&legacy).unwrap().as_slice())
                .unwrap();
            let mut counters = wtx.open_table(tables::COUNTERS).unwrap();
            counters.remove("events_whole").unwrap();
            seq
        };
        wtx.commit().unwrap();
        seq
    };

    let s = TestServer::start_in(dir, |_| {}).await;
    let (st, v) = s
        .send(
            "PATCH",
            &format!("/api/v1/orders/{id}/items"),
            Some(&s.admin),
            Some(json!({"add": [{"item_id": "espresso", "quantity": 5}]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let log = &s.state().events;
    let events = log.read(seq, 100).unwrap();
    let EventKind::OrderPlaced(o) = &events[0].kind else {
        panic!("{:?}", events[0]);
    };
    assert_eq!(o.items.len(), 1, "placed as placed: {o:?}");
    assert_eq!((o.items[0].item_id.as_str(), o.total), ("lemonade", 300));
    let edit = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::LinesEdited {
                order_id,
                lines,
                total,
                ..
            } if *order_id == id => Some((lines.clone(), *total)),
            _ => None,
        })
        .expect("the edit is an event of its own");
    assert_eq!(edit.0.len(), 2);
    assert_eq!(edit.1, v["total"].as_i64().unwrap());
    s.stop().await;
}
