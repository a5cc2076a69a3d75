//! Concurrency through the group-commit writer: idempotency, stock, order numbers.
use crate::common;

use std::collections::BTreeSet;

use common::{TestServer, error_code};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_with_one_key_create_one_order() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let body = json!({"type": "takeaway", "items": [{"item_id": "burger", "quantity": 1, "modifiers": ["medium"]}]});
    let results = join_all((0..50).map(|_| {
        s.send_with(
            "POST",
            "/api/v1/orders",
            Some(&staff),
            Some(body.clone()),
            &[("Idempotency-Key", "retry-me")],
        )
    }))
    .await;
    let ids: BTreeSet<_> = results
        .iter()
        .map(|(st, v)| {
            assert_eq!(*st, StatusCode::CREATED, "{v}");
            v["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one order for one key");
    let (_, active) = s
        .send("GET", "/api/v1/orders/active", Some(&staff), None)
        .await;
    assert_eq!(active["pagination"]["total"], 1);
    // Same key, different body → 409; new key → a new order.
    let other = json!({"type": "takeaway", "items": [{"item_id": "espresso", "quantity": 1}]});
    let (st, v) = s
        .send_with(
            "POST",
            "/api/v1/orders",
            Some(&staff),
            Some(other.clone()),
            &[("Idempotency-Key", "retry-me")],
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(error_code(&v), "idempotency_key_reused");
    let (st, v) = s
        .send_with(
            "POST",
            "/api/v1/orders",
            Some(&staff),
            Some(other),
            &[("Idempotency-Key", "another")],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert!(!ids.contains(v["id"].as_str().unwrap()));
    // A retry after a restart still finds the key.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let staff = s.login("anna", "password-123").await;
    let (st, v) = s
        .send_with(
            "POST",
            "/api/v1/orders",
            Some(&staff),
            Some(body),
            &[("Idempotency-Key", "retry-me")],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    assert!(ids.contains(v["id"].as_str().unwrap()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_never_oversells() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/menu/items/greek_salad/stock",
            Some(&staff),
            Some(json!({"set": 50})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut events = s.state().events.subscribe(s.state().events.last_seq() + 1);
    let results = join_all(
        (0..200).map(|_| s.order(&staff, json!([{"item_id": "greek_salad", "quantity": 1}]))),
    )
    .await;
    let ok = results
        .iter()
        .filter(|(st, _)| *st == StatusCode::CREATED)
        .count();
    let refused: Vec<_> = results
        .iter()
        .filter(|(st, _)| *st != StatusCode::CREATED)
        .collect();
    assert_eq!(ok, 50);
    assert_eq!(refused.len(), 150);
    for (st, v) in refused {
        assert_eq!(*st, StatusCode::CONFLICT, "{v}");
        assert!(matches!(error_code(v), "sold_out" | "insufficient_stock"));
    }
    let (_, menu) = s.send("GET", "/api/v1/menu", None, None).await;
    let item = menu["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["items"].as_array().unwrap())
        .find(|i| i["id"] == "greek_salad")
        .unwrap()
        .clone();
    assert_eq!(item["stock"], 0);
    assert_eq!(item["available"], false);
    // The sold-out and availability events were logged once.
    let mut kinds = Vec::new();
    while kinds.iter().filter(|k| *k == "order_placed").count() < 50
        || !kinds.contains(&"availability_changed".to_owned())
    {
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap();
        kinds.push(e.kind.name().to_owned());
    }
    assert_eq!(kinds.iter().filter(|k| *k == "sold_out").count(), 1);
    drop(events);
    // Restocking makes it available again.
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/menu/items/greek_salad/stock",
            Some(&staff),
            Some(json!({"adjust": 5})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["stock"], 5);
    assert_eq!(
        s.order(&staff, json!([{"item_id": "greek_salad", "quantity": 5}]))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.order(&staff, json!([{"item_id": "greek_salad", "quantity": 1}]))
            .await
            .0,
        StatusCode::CONFLICT
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_orders_get_consecutive_numbers_and_the_day_rolls_over() {
    // Sessions must outlive the jump to the next day.
    let s = TestServer::start_with(|c| c.auth.session_ttl_secs = 2 * 86_400).await;
    let staff = s.user("anna", "staff").await;
    let results = join_all(
        (0..1000).map(|_| s.order(&staff, json!([{"item_id": "espresso", "quantity": 1}]))),
    )
    .await;
    let mut seqs: Vec<u64> = results
        .iter()
        .map(|(st, v)| {
            assert_eq!(*st, StatusCode::CREATED, "{v}");
            let number = v["number"].as_str().unwrap();
            assert!(number.starts_with("ORD-20261122-"), "{number}");
            assert_eq!(
                number.rsplit('-').next().unwrap().parse::<u64>().unwrap(),
                v["daily_seq"].as_u64().unwrap()
            );
            v["daily_seq"].as_u64().unwrap()
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=1000).collect::<Vec<_>>());
    // The next business day starts at 04:00 local (03:00 UTC): 12:00 + 15 h = 03:00 UTC.
    s.clock.advance_ms(15 * 3_600_000 - 1000);
    let (_, v) = s
        .order(&staff, json!([{"item_id": "espresso", "quantity": 1}]))
        .await;
    assert_eq!(
        v["number"], "ORD-20261122-1001",
        "still the same business day at 03:59 local"
    );
    s.clock.advance_ms(2000);
    let (_, v) = s
        .order(&staff, json!([{"item_id": "espresso", "quantity": 1}]))
        .await;
    assert_eq!(v["number"], "ORD-20261123-001");
    // Short-number search finds today's order.
    let (_, found) = s
        .send("GET", "/api/v1/orders/search?q=001", Some(&staff), None)
        .await;
    assert_eq!(found["data"][0]["number"], "ORD-20261123-001");
    let (_, hist) = s
        .send(
            "GET",
            "/api/v1/orders/history?date=2026-11-22&limit=10&page=3",
            Some(&staff),
            None,
        )
        .await;
    assert_eq!(hist["pagination"]["total"], 1001);
    assert_eq!(hist["data"][0]["number"], "ORD-20261122-021");
    assert_eq!(hist["pagination"]["has_next"], true);
    assert_eq!(hist["pagination"]["has_prev"], true);
    s.stop().await;
}

/// No RTC: the clock may jump back at boot, or NTP may step it back. Numbers stay unique,
/// business days never go back, and orders keep their placement order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_jumping_back_keeps_numbers_unique_and_in_order() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let espresso = || json!([{"item_id": "espresso", "quantity": 1}]);
    let number = |v: &serde_json::Value| v["number"].as_str().unwrap().to_owned();
    // RFC 3339 with the milliseconds always written, so the texts sort as times.
    let created = |v: &serde_json::Value| {
        let t = v["created_at"].as_str().unwrap();
        if t.contains('.') {
            t.to_owned()
        } else {
            t.replace('Z', ".000Z")
        }
    };
    let (_, first) = s.order(&staff, espresso()).await;
    s.clock.set_ms(common::T0_MS - 30 * 60_000); // half an hour back, same day
    let (_, earlier) = s.order(&staff, espresso()).await;
    let (_, status) = s.send("GET", "/api/v1/status", Some(&staff), None).await;
    assert_eq!(status["clock"]["behind"], true, "{status}");
    assert_eq!(status["clock_unset"], false);
    assert!(status["status"].as_str().unwrap().contains("CLOCK BEHIND"));
    s.clock.set_ms(common::T0_MS - 3 * 86_400_000); // three days back
    let (_, days_back) = s.order(&staff, espresso()).await;
    s.clock.set_ms(common::T0_MS + 86_400_000); // NTP: the next day
    let staff = s.login("anna", "password-123").await; // yesterday's session has expired
    let (_, next_day) = s.order(&staff, espresso()).await;
    let (_, status) = s.send("GET", "/api/v1/status", Some(&staff), None).await;
    assert_eq!(status["clock"]["behind"], false, "{status}");
    assert_eq!(
        [
            number(&first),
            number(&earlier),
            number(&days_back),
            number(&next_day)
        ],
        [
            "ORD-20261122-001",
            "ORD-20261122-002",
            "ORD-20261122-003",
            "ORD-20261123-001"
        ]
    );
    // Times never go back either: each order was placed no earlier than the one before.
    let times = [&first, &earlier, &days_back, &next_day].map(created);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // Placement order is kept whatever the clock said.
    let (_, active) = s
        .send("GET", "/api/v1/orders/active", Some(&staff), None)
        .await;
    let ids: Vec<_> = active["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [
            first["id"].clone(),
            earlier["id"].clone(),
            days_back["id"].clone(),
            next_day["id"].clone()
        ]
    );
    s.stop().await;
}

/// A Pi booting at 1970 (no RTC, no NTP yet): the box keeps taking orders on the last known
/// business day, flags the clock in its status, and uses the right day once the clock is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_clock_at_boot_keeps_orders_going_and_is_flagged() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let espresso = || json!([{"item_id": "espresso", "quantity": 1}]);
    let (st, before) = s.order(&staff, espresso()).await;
    assert_eq!(st, StatusCode::CREATED, "{before}");
    assert_eq!(before["number"], "ORD-20261122-001");
    let dir = s.stop().await;

    // Reboot with the clock at the epoch.
    let s = TestServer::start_at(dir, 0, |_| {}).await;
    let staff = s.login("anna", "password-123").await;
    let (st, during) = s.order(&staff, espresso()).await;
    assert_eq!(st, StatusCode::CREATED, "{during}");
    assert_eq!(during["number"], "ORD-20261122-002");
    assert!(during["id"].as_str().unwrap() > before["id"].as_str().unwrap());
    let (_, status) = s.send("GET", "/api/v1/status", Some(&staff), None).await;
    assert_eq!(status["clock_unset"], true, "{status}");
    assert_eq!(status["clock"]["unset"], true);
    assert_eq!(status["clock"]["wall_ms"], 0);
    assert!(status["status"].as_str().unwrap().contains("CLOCK NOT SET"));

    // NTP syncs: the next morning.
    s.clock.set_ms(common::T0_MS + 86_400_000);
    let staff = s.login("anna", "password-123").await; // yesterday's session has expired
    let (_, after) = s.order(&staff, espresso()).await;
    assert_eq!(after["number"], "ORD-20261123-001");
    let (_, status) = s.send("GET", "/api/v1/status", Some(&staff), None).await;
    assert_eq!(status["clock_unset"], false, "{status}");
    assert_eq!(status["clock"]["behind"], false);
    s.stop().await;
}

/// An `Idempotency-Key` belongs to its caller: another user replaying the same key and body
/// gets a 409 that reveals nothing of the order, and the owner's retry still replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_replayed_by_another_caller_reveals_nothing() {
    let s = TestServer::start().await;
    let anna = s.user("anna", "staff").await;
    let ben = s.user("ben", "staff").await;
    let body = json!({"type": "takeaway", "customer_name": "Arta", "note": "call 0691234567",
        "items": [{"item_id": "espresso", "quantity": 2}]});
    let send = |token: String| {
        let body = body.clone();
        let s = &s;
        async move {
            s.send_with(
                "POST",
                "/api/v1/orders",
                Some(&token),
                Some(body),
                &[("Idempotency-Key", "shared-key")],
            )
            .await
        }
    };
    let (st, placed) = send(anna.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{placed}");
    let (st, v) = send(ben).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(error_code(&v), "idempotency_key_reused");
    let text = v.to_string();
    for secret in [
        "Arta",
        "0691234567",
        placed["id"].as_str().unwrap(),
        placed["number"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "{text}");
    }
    let (st, again) = send(anna).await;
    assert_eq!(st, StatusCode::CREATED, "{again}");
    assert_eq!(again["id"], placed["id"], "the owner's retry replays");
    s.stop().await;
}
