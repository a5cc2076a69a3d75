//! Settling the bill over real HTTP: first table's check gathers its orders, split tender with first
//! tip frees the table, racing payments never pass the balance, discounts, voids and refunds
//! need first manager's PIN, bad input gets clear errors, and the day closes with first Z that
//! balances.

use orderd::error::Commit as _;
use std::sync::Arc;

use orderd::domain::checks::{self, NewDiscount, NewPayment, NewRefund, NewVoid};
use orderd::domain::reports;
use orderd_protocol::EventKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, error_code};

async fn table_order(s: &TestServer, token: &str, table: &str, items: Value) -> Value {
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/orders",
            Some(token),
            Some(json!({"type": "dine_in", "table_id": table, "items": items})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

async fn check_of(s: &TestServer, token: &str, order_id: &str) -> Value {
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/orders/{order_id}/check"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

async fn pay(s: &TestServer, token: &str, check: u64, body: Value) -> (StatusCode, Value) {
    s.send(
        "POST",
        &format!("/api/v1/checks/{check}/payments"),
        Some(token),
        Some(body),
    )
    .await
}

async fn table_status(s: &TestServer, table: &str) -> Value {
    let (st, v) = s
        .send("GET", "/api/v1/tables/status", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == table)
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_check_gathers_its_orders_and_split_tender_with_a_tip_frees_the_table() {
    let s = TestServer::start().await;
    let waiter = s.user("ana", "staff").await;
    assert_eq!(table_status(&s, "t1").await["status"], "free");
    let first = table_order(
        &s,
        &waiter,
        "t1",
        json!([{"item_id": "burger", "quantity": 2, "modifiers": ["medium"]}]),
    )
    .await;
    // A guest at the same table orders from the QR page: the same check.
    let token = s.table_token().await;
    let (st, second) = s
        .send(
            "POST",
            "/api/v1/orders",
            None,
            Some(json!({"type": "dine_in", "table_token": token,
                        "items": [{"item_id": "lemonade", "quantity": 3}]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{second}");
    let check = check_of(&s, &waiter, first["id"].as_str().unwrap()).await;
    let id = check["id"].as_u64().unwrap();
    assert_eq!(check["state"], "open");
    assert_eq!(check["opened_by"], "ana");
    assert_eq!(check["orders"].as_array().unwrap().len(), 2, "{check}");
    assert_eq!(check["total"], 2 * 850 + 3 * 300);
    assert_eq!(check["balance"], 2600);
    let busy = table_status(&s, "t1").await;
    assert_eq!(busy["status"], "occupied", "{busy}");
    assert_eq!(busy["total"], 2600);
    assert_eq!(busy["minutes_seated"], 0);
    // The guest's page shows the running bill (with the order's key), and asks for it.
    let key = second["order_key"].as_str().unwrap().to_owned();
    let bid = second["id"].as_str().unwrap();
    let (st, bill) = s
        .send_with(
            "GET",
            &format!("/api/v1/orders/{bid}/bill"),
            None,
            None,
            &[("x-order-key", &key)],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{bill}");
    assert_eq!(bill["total"], 2600);
    assert!(bill.get("opened_by").is_none(), "no staff names for guests");
    let (st, _) = s
        .send("GET", &format!("/api/v1/orders/{bid}/bill"), None, None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, v) = s
        .send_with(
            "POST",
            &format!("/api/v1/orders/{bid}/bill-request"),
            None,
            Some(json!({"lang": "sq"})),
            &[("x-order-key", &key)],
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(table_status(&s, "t1").await["bill_requested"], true);
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{id}/covers"),
            Some(&waiter),
            Some(json!({"covers": 3})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{id}/print"),
            Some(&waiter),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(table_status(&s, "t1").await["status"], "bill_printed");
    // Part cash with change, the rest by card with first tip.
    let (st, v) = pay(
        &s,
        &waiter,
        id,
        json!({"method": "cash", "amount": 1000, "tendered": 2000}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["payment"]["change"], 1000);
    assert_eq!(v["check"]["balance"], 1600);
    assert_eq!(v["check"]["state"], "open");
    let (st, v) = pay(
        &s,
        &waiter,
        id,
        json!({"method": "card", "amount": 1600, "tip": 200, "reference": "TRM-81"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["check"]["state"], "closed");
    assert_eq!(v["check"]["balance"], 0);
    assert_eq!(v["check"]["tips"], 200);
    assert_eq!(v["check"]["covers"], 3);
    assert_eq!(table_status(&s, "t1").await["status"], "paid");
    // A later payment is refused; the next order at the table opens first new check.
    let (st, v) = pay(&s, &waiter, id, json!({"method": "cash", "amount": 1})).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(error_code(&v), "check_not_open");
    let c = table_order(
        &s,
        &waiter,
        "t1",
        json!([{"item_id": "espresso", "quantity": 1}]),
    )
    .await;
    let next = check_of(&s, &waiter, c["id"].as_str().unwrap()).await;
    assert_ne!(next["id"], check["id"]);
    assert_eq!(next["number"], check["number"].as_u64().unwrap() + 1);
    assert_eq!(next["total"], 150);
    // The events tell the whole story, as facts.
    let events = s.state().events.read(1, 10_000).unwrap();
    let closed: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CheckClosed(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].total, 2600);
    assert_eq!(closed[0].covers, 3);
    assert_eq!(closed[0].payments.len(), 2);
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::BillRequested { .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::BillPrinted(p) if !p.copy))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_waiters_racing_fifty_payments_each_never_pass_the_balance() {
    let s = TestServer::start().await;
    let w1 = s.user("ana", "staff").await;
    let w2 = s.user("ben", "staff").await;
    let ord = table_order(
        &s,
        &w1,
        "t2",
        json!([{"item_id": "burger", "quantity": 2, "modifiers": ["medium"]},
               {"item_id": "lemonade", "quantity": 11}]),
    )
    .await;
    let check = check_of(&s, &w1, ord["id"].as_str().unwrap()).await;
    let id = check["id"].as_u64().unwrap();
    assert_eq!(check["total"], 5000);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = s.client.clone();
        let url = s.url(&format!("/api/v1/checks/{id}/payments"));
        let token = if i % 2 == 0 { w1.clone() } else { w2.clone() };
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", format!("pay-{i}"))
                .json(&json!({"method": if i % 3 == 0 { "cash" } else { "card" }, "amount": 100}))
                .send()
                .await
                .unwrap();
            let st = r.status();
            let v: Value = r.json().await.unwrap();
            (st, v)
        }));
    }
    let mut accepted = 0i64;
    let mut refused = 0;
    for t in tasks {
        let (st, v) = t.await.unwrap();
        match st {
            StatusCode::CREATED => accepted += v["payment"]["amount"].as_i64().unwrap(),
            StatusCode::CONFLICT => {
                assert!(
                    matches!(error_code(&v), "over_balance" | "check_not_open"),
                    "{v}"
                );
                refused += 1;
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!(accepted, 5000);
    assert_eq!(refused, 50);
    let (_, after) = s
        .send("GET", &format!("/api/v1/checks/{id}"), Some(&w1), None)
        .await;
    assert_eq!(after["state"], "closed");
    assert_eq!(after["paid"], 5000);
    assert_eq!(after["balance"], 0);
    assert_eq!(after["payments"].as_array().unwrap().len(), 50);

    // A double tap with one key records one payment.
    let ord = table_order(
        &s,
        &w1,
        "t3",
        json!([{"item_id": "espresso", "quantity": 4}]),
    )
    .await;
    let id = check_of(&s, &w1, ord["id"].as_str().unwrap()).await["id"]
        .as_u64()
        .unwrap();
    let body = json!({"method": "card", "amount": 300});
    let path = format!("/api/v1/checks/{id}/payments");
    let (first, second) = tokio::join!(
        s.send_with(
            "POST",
            &path,
            Some(&w1),
            Some(body.clone()),
            &[("idempotency-key", "tap")]
        ),
        s.send_with(
            "POST",
            &path,
            Some(&w1),
            Some(body.clone()),
            &[("idempotency-key", "tap")]
        ),
    );
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    assert_eq!(second.0, StatusCode::CREATED, "{}", second.1);
    assert_eq!(first.1["payment"], second.1["payment"]);
    let (_, c) = s
        .send("GET", &format!("/api/v1/checks/{id}"), Some(&w1), None)
        .await;
    assert_eq!(c["payments"].as_array().unwrap().len(), 1);
    assert_eq!(c["balance"], 300);
    // The same key with another body is refused.
    let (st, v) = s
        .send_with(
            "POST",
            &path,
            Some(&w1),
            Some(json!({"method": "card", "amount": 200})),
            &[("idempotency-key", "tap")],
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(error_code(&v), "idempotency_key_reused");
    s.stop().await;
}

async fn set_pin(s: &TestServer, user: &str, pin: &str) {
    let (st, v) = s
        .send(
            "PUT",
            &format!("/api/v1/users/{user}/pin"),
            Some(&s.admin),
            Some(json!({"pin": pin})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discounts_comps_voids_and_refunds_need_a_managers_pin_and_name_both_people() {
    let s = TestServer::start().await;
    let waiter = s.user("ana", "staff").await;
    let _boss = s.user("boss", "admin").await;
    set_pin(&s, "boss", "4821").await;
    // A PIN is only for admins, and only digits.
    let (st, v) = s
        .send(
            "PUT",
            "/api/v1/users/ana/pin",
            Some(&s.admin),
            Some(json!({"pin": "1234"})),
        )
        .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::CONFLICT, "not_a_manager")
    );
    let (st, _) = s
        .send(
            "PUT",
            "/api/v1/users/boss/pin",
            Some(&s.admin),
            Some(json!({"pin": "12a4"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = s
        .send(
            "PUT",
            "/api/v1/users/boss/pin",
            Some(&waiter),
            Some(json!({"pin": "1234"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let ord = table_order(
        &s,
        &waiter,
        "t4",
        json!([{"item_id": "tave_kosi", "quantity": 1},
               {"item_id": "espresso", "quantity": 2},
               {"item_id": "lemonade", "quantity": 2}]),
    )
    .await;
    let check = check_of(&s, &waiter, ord["id"].as_str().unwrap()).await;
    let id = check["id"].as_u64().unwrap();
    let lines = check["lines"].as_array().unwrap().clone();
    let line_of = |item: &str| {
        lines.iter().find(|l| l["item_id"] == item).unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let disc = format!("/api/v1/checks/{id}/discounts");
    // Without approval, or with first wrong PIN: refused, nothing changes.
    let (st, v) = s
        .send(
            "POST",
            &disc,
            Some(&waiter),
            Some(json!({"percent_bp": 1000, "reason": "Regular guest"})),
        )
        .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::FORBIDDEN, "approval_required")
    );
    for (path, body) in [
        (
            disc.clone(),
            json!({"line": line_of("espresso"), "comp": true, "reason": "x"}),
        ),
        (
            format!("/api/v1/checks/{id}/voids"),
            json!({"line": line_of("espresso"), "reason": "x"}),
        ),
        (format!("/api/v1/checks/{id}/void"), json!({"reason": "x"})),
    ] {
        let (st, v) = s.send("POST", &path, Some(&waiter), Some(body)).await;
        assert_eq!(
            (st, error_code(&v)),
            (StatusCode::FORBIDDEN, "approval_required"),
            "{path}"
        );
    }
    let (st, v) = s
        .send(
            "POST",
            &disc,
            Some(&waiter),
            Some(json!({"percent_bp": 1000, "reason": "Regular guest",
                        "approval": {"manager": "boss", "pin": "0000"}})),
        )
        .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::FORBIDDEN, "approval_refused")
    );
    // A staff user cannot approve, even with first PIN-shaped guess.
    let (st, v) = s
        .send(
            "POST",
            &disc,
            Some(&waiter),
            Some(json!({"percent_bp": 1000, "reason": "Regular guest",
                        "approval": {"manager": "ana", "pin": "4821"}})),
        )
        .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::FORBIDDEN, "approval_refused")
    );
    // With the manager's PIN: first comp of the espressos and 10 % off the check.
    let (st, v) = s
        .send(
            "POST",
            &disc,
            Some(&waiter),
            Some(
                json!({"line": line_of("espresso"), "comp": true, "reason": "Wrong order",
                        "approval": {"manager": "boss", "pin": "4821"}}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["comps"], 300);
    let (st, v) = s
        .send(
            "POST",
            &disc,
            Some(&waiter),
            Some(json!({"percent_bp": 1000, "reason": "Regular guest",
                        "approval": {"manager": "boss", "pin": "4821"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // 1100 + 600 = 1700 after the comp; 10 % off = 170.
    assert_eq!(v["discounts"], 170);
    assert_eq!(v["total"], 1530);
    let adj = v["adjustments"].as_array().unwrap();
    assert_eq!(adj[1]["actor"], "ana");
    assert_eq!(adj[1]["approved_by"], "boss");
    assert_eq!(adj[1]["reason"], "Regular guest");
    // A void of one lemonade while the kitchen still has the order: the order loses it too
    // (the station's REMOVED slip), and the check follows.
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{id}/voids"),
            Some(&waiter),
            Some(
                json!({"line": line_of("lemonade"), "quantity": 1, "reason": "Guest changed mind",
                        "approval": {"manager": "boss", "pin": "4821"}}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["voids"], 300);
    let (_, order) = s
        .send(
            "GET",
            &format!("/api/v1/orders/{}", ord["id"].as_str().unwrap()),
            Some(&waiter),
            None,
        )
        .await;
    let lemonade = order["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["item_id"] == "lemonade")
        .unwrap()
        .clone();
    assert_eq!(lemonade["quantity"], 1);
    let events = s.state().events.read(1, 10_000).unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::LinesEdited { changes, .. }
        if changes.iter().any(|c| c.delta.item_id == "lemonade" && c.delta.new_quantity == 1)))
    );
    // (1100 + 300) − 10 % of 1400 = 1260
    assert_eq!(v["total"], 1260, "{v}");
    let (st, v) = pay(&s, &waiter, id, json!({"method": "card", "amount": 1260})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["check"]["state"], "closed");
    // A refund: staff need the PIN; more than was paid by that method is refused.
    let refunds = format!("/api/v1/checks/{id}/refunds");
    let (st, v) = s
        .send(
            "POST",
            &refunds,
            Some(&waiter),
            Some(json!({"amount": 500, "method": "card", "reason": "Cold food"})),
        )
        .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::FORBIDDEN, "approval_required")
    );
    let (st, v) = s
        .send(
            "POST",
            &refunds,
            Some(&waiter),
            Some(
                json!({"amount": 5000, "method": "card", "reason": "Cold food",
                        "approval": {"manager": "boss", "pin": "4821"}}),
            ),
        )
        .await;
    assert_eq!((st, error_code(&v)), (StatusCode::CONFLICT, "over_refund"));
    let (st, v) = s
        .send(
            "POST",
            &refunds,
            Some(&waiter),
            Some(
                json!({"amount": 500, "method": "card", "reason": "Cold food",
                        "approval": {"manager": "boss", "pin": "4821"}}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["refunded"], 500);
    assert_eq!(v["refunds"][0]["approved_by"], "boss");
    // A staff user cannot take X or Z reports, nor move cash.
    for (m, p, second) in [
        ("GET", "/api/v1/reports/x", None),
        (
            "POST",
            "/api/v1/reports/z",
            Some(json!({"force_reason": "end"})),
        ),
        (
            "POST",
            "/api/v1/cash",
            Some(json!({"kind": "float", "amount": 100})),
        ),
    ] {
        let (st, _) = s.send(m, p, Some(&waiter), second).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{m} {p}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pins_sent_all_at_once_are_held_by_the_throttle() {
    let s = TestServer::start().await;
    let waiter = s.user("ana", "staff").await;
    let _boss = s.user("boss", "admin").await;
    set_pin(&s, "boss", "4821").await;
    let ord = table_order(
        &s,
        &waiter,
        "t5",
        json!([{"item_id": "espresso", "quantity": 1}]),
    )
    .await;
    let id = check_of(&s, &waiter, ord["id"].as_str().unwrap()).await["id"]
        .as_u64()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = s.client.clone();
        let url = s.url(&format!("/api/v1/checks/{id}/discounts"));
        let token = waiter.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"amount": 10, "reason": "x",
                              "approval": {"manager": "boss", "pin": format!("{:04}", 1000 + i)}}))
                .send()
                .await
                .unwrap();
            r.status()
        }));
    }
    let mut tried = 0;
    let mut throttled = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::FORBIDDEN => tried += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("{other}"),
        }
    }
    let limits = s.state().settings.auth.limits();
    assert!(
        tried <= limits.per_source as usize,
        "{tried} PINs were tried"
    );
    assert_eq!(tried + throttled, 40);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payments_and_discounts_get_clear_errors() {
    let s = TestServer::start().await;
    let admin = s.admin.clone();
    let ord = table_order(
        &s,
        &admin,
        "t6",
        json!([{"item_id": "espresso", "quantity": 2}]),
    )
    .await;
    let c = check_of(&s, &admin, ord["id"].as_str().unwrap()).await;
    let id = c["id"].as_u64().unwrap();
    let ord2 = table_order(
        &s,
        &admin,
        "t5",
        json!([{"item_id": "lemonade", "quantity": 1}]),
    )
    .await;
    let other = check_of(&s, &admin, ord2["id"].as_str().unwrap()).await;
    let other_line = other["lines"][0]["id"].as_u64().unwrap() + 100;
    for (body, status, code) in [
        (
            json!({"method": "cash", "amount": 0}),
            422,
            "validation_failed",
        ),
        (
            json!({"method": "cash", "amount": -5}),
            422,
            "validation_failed",
        ),
        (
            json!({"method": "bitcoin", "amount": 5}),
            422,
            "validation_failed",
        ),
        (
            json!({"method": "card", "amount": 301}),
            409,
            "over_balance",
        ),
        (
            json!({"method": "card", "amount": 10, "tendered": 50}),
            422,
            "validation_failed",
        ),
        (
            json!({"method": "cash", "amount": 100, "tip": 10, "tendered": 50}),
            409,
            "tendered_short",
        ),
        (
            json!({"method": "card", "amount": 5, "extra": 1}),
            422,
            "invalid_body",
        ),
    ] {
        let (st, v) = pay(&s, &admin, id, body.clone()).await;
        assert_eq!(st.as_u16(), status, "{body}: {v}");
        assert_eq!(error_code(&v), code, "{body}: {v}");
    }
    let disc = format!("/api/v1/checks/{id}/discounts");
    for (body, status, code) in [
        (
            json!({"percent_bp": 10001, "reason": "x"}),
            422,
            "validation_failed",
        ),
        (
            json!({"percent_bp": 0, "reason": "x"}),
            422,
            "validation_failed",
        ),
        (
            json!({"percent_bp": 100, "amount": 5, "reason": "x"}),
            422,
            "validation_failed",
        ),
        (
            json!({"percent_bp": 100, "reason": " "}),
            422,
            "validation_failed",
        ),
        (json!({"amount": 301, "reason": "x"}), 409, "over_discount"),
        (
            json!({"line": other_line, "comp": true, "reason": "x"}),
            409,
            "no_such_line",
        ),
    ] {
        let (st, v) = s
            .send("POST", &disc, Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(st.as_u16(), status, "{body}: {v}");
        assert_eq!(error_code(&v), code, "{body}: {v}");
    }
    let (st, _) = pay(&s, &admin, 999, json!({"method": "cash", "amount": 5})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .send("GET", "/api/v1/checks/nope", Some(&admin), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .send("GET", &format!("/api/v1/checks/{id}"), None, None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Settle, then: first closed check takes nothing more.
    let (st, _) = pay(&s, &admin, id, json!({"method": "card", "amount": 300})).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = s
        .send(
            "POST",
            &disc,
            Some(&admin),
            Some(json!({"amount": 10, "reason": "x"})),
        )
        .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::CONFLICT, "check_not_open")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_move_between_tables_merge_and_split() {
    let s = TestServer::start().await;
    let waiter_token = s.user("ana", "staff").await;
    let first = table_order(
        &s,
        &waiter_token,
        "t1",
        json!([{"item_id": "burger", "quantity": 1, "modifiers": ["medium"]},
               {"item_id": "lemonade", "quantity": 2}]),
    )
    .await;
    let ca = check_of(&s, &waiter_token, first["id"].as_str().unwrap()).await;
    let ida = ca["id"].as_u64().unwrap();
    // The whole check moves to first free table.
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{ida}/transfer"),
            Some(&waiter_token),
            Some(json!({"table_id": "t2"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["table_id"], "t2");
    assert_eq!(table_status(&s, "t1").await["status"], "free");
    assert_eq!(table_status(&s, "t2").await["status"], "occupied");
    // An order at t3, merged into t2's check.
    let second = table_order(
        &s,
        &waiter_token,
        "t3",
        json!([{"item_id": "espresso", "quantity": 1}]),
    )
    .await;
    let idb = check_of(&s, &waiter_token, second["id"].as_str().unwrap()).await["id"]
        .as_u64()
        .unwrap();
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{ida}/merge"),
            Some(&waiter_token),
            Some(json!({"check_id": idb})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 850 + 600 + 150);
    assert_eq!(table_status(&s, "t3").await["status"], "free");
    let (_, merged) = s
        .send(
            "GET",
            &format!("/api/v1/checks/{idb}"),
            Some(&waiter_token),
            None,
        )
        .await;
    assert_eq!(merged["state"], "voided");
    assert_eq!(merged["moves"][0]["what"], "merged_into");
    assert_eq!(merged["moves"][0]["actor"], "ana");
    // Split the lemonades off: two checks at t2, each paid on its own.
    let lemonade = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["item_id"] == "lemonade")
        .unwrap()["id"]
        .clone();
    let (st, part) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{ida}/split"),
            Some(&waiter_token),
            Some(json!({"lines": [lemonade]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{part}");
    assert_eq!(part["total"], 600);
    assert_eq!(part["table_id"], "t2");
    let idp = part["id"].as_u64().unwrap();
    let (_, even) = s
        .send(
            "GET",
            &format!("/api/v1/checks/{ida}/split?parts=3"),
            Some(&waiter_token),
            None,
        )
        .await;
    assert_eq!(even["parts"], json!([334, 333, 333]));
    for amount in [334, 333, 333] {
        let (st, v) = pay(
            &s,
            &waiter_token,
            ida,
            json!({"method": "card", "amount": amount}),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    assert_eq!(
        table_status(&s, "t2").await["status"],
        "occupied",
        "the split part is still open"
    );
    let (st, _) = pay(
        &s,
        &waiter_token,
        idp,
        json!({"method": "cash", "amount": 600}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(table_status(&s, "t2").await["status"], "paid");
    // Line edits of an order whose lines were moved are refused, with first clear code.
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_day_closes_with_a_z_that_balances_and_is_numbered() {
    let s = TestServer::start_with(|c| {
        c.billing.cash_rounding = 5;
    })
    .await;
    let admin = s.admin.clone();
    let (st, _) = s
        .send(
            "POST",
            "/api/v1/cash",
            Some(&admin),
            Some(json!({"kind": "float", "amount": 10000})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/cash",
            Some(&admin),
            Some(json!({"kind": "paid_out", "amount": 500})),
        )
        .await;
    assert_eq!(
        (st, error_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    let (st, _) = s
        .send(
            "POST",
            "/api/v1/cash",
            Some(&admin),
            Some(json!({"kind": "paid_out", "amount": 500, "reason": "Ice"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    // 850 + 150 + 150 = 1150 ... with cash rounding to 5 first 1153 bill would round; use first
    // discount of 3 to make it 1147 → cash 1145 (rounding −2).
    let ord = table_order(
        &s,
        &admin,
        "t1",
        json!([{"item_id": "burger", "quantity": 1, "modifiers": ["medium"]},
               {"item_id": "espresso", "quantity": 2}]),
    )
    .await;
    let id = check_of(&s, &admin, ord["id"].as_str().unwrap()).await["id"]
        .as_u64()
        .unwrap();
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{id}/discounts"),
            Some(&admin),
            Some(json!({"amount": 3, "reason": "Regular guest"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["balance"], 1147);
    assert_eq!(v["cash_due"], 1145);
    let (st, v) = pay(
        &s,
        &admin,
        id,
        json!({"method": "cash", "amount": 1145, "tip": 55, "tendered": 1500}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["payment"]["rounding"], -2);
    assert_eq!(v["payment"]["change"], 300);
    assert_eq!(v["check"]["state"], "closed");
    // A second check stays open: the Z is refused.
    let ord2 = table_order(
        &s,
        &admin,
        "t2",
        json!([{"item_id": "lemonade", "quantity": 1}]),
    )
    .await;
    let id2 = check_of(&s, &admin, ord2["id"].as_str().unwrap()).await["id"]
        .as_u64()
        .unwrap();
    let (st, x) = s.send("GET", "/api/v1/reports/x", Some(&admin), None).await;
    assert_eq!(st, StatusCode::OK, "{x}");
    assert_eq!(x["checks"], 1);
    assert_eq!(x["net"], 1147);
    assert_eq!(x["open_checks"].as_array().unwrap().len(), 1);
    let (st, v) = s
        .send("POST", "/api/v1/reports/z", Some(&admin), Some(json!({})))
        .await;
    assert_eq!((st, error_code(&v)), (StatusCode::CONFLICT, "checks_open"));
    assert_eq!(v["error"]["details"]["open_checks"][0]["id"], id2);
    let (st, _) = s
        .send(
            "POST",
            "/api/v1/cash",
            Some(&admin),
            Some(json!({"kind": "count", "amount": 10700})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, zrep) = s
        .send(
            "POST",
            "/api/v1/reports/z",
            Some(&admin),
            Some(json!({"force_reason": "T2 left unpaid; settled tomorrow"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{zrep}");
    assert_eq!(zrep["number"], 1);
    let fig = &zrep["figures"];
    assert_eq!(fig["sales"], 1150);
    assert_eq!(fig["discounts"], 3);
    assert_eq!(fig["net"], 1147);
    assert_eq!(fig["tips"], 55);
    assert_eq!(fig["rounding"], -2);
    let cash = fig["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "cash")
        .unwrap()
        .clone();
    assert_eq!(cash["amount"], 1147);
    // Drawer: 10000 float + (1147 − 2 + 55) received − 500 out = 10700 expected; counted 10700.
    assert_eq!(fig["cash"]["expected"], 10_700);
    assert_eq!(fig["cash"]["variance"], 0);
    assert_eq!(fig["open_checks"][0]["check"]["id"], id2);
    assert_eq!(zrep["forced"], "T2 left unpaid; settled tomorrow");
    // VAT at 20 % contained in 1147: 191.
    assert_eq!(fig["vat"][0]["rate_bp"], 2000);
    assert_eq!(fig["vat"][0]["vat"], 191);
    // The open check paid after the Z counts on the next day, in Z number 2.
    let (st, _) = pay(&s, &admin, id2, json!({"method": "card", "amount": 300})).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, z2) = s
        .send("POST", "/api/v1/reports/z", Some(&admin), Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{z2}");
    assert_eq!(z2["number"], 2);
    assert_eq!(z2["figures"]["net"], 300);
    assert_ne!(z2["figures"]["business_day"], fig["business_day"]);
    let (st, csv) = s
        .send("GET", "/api/v1/reports/z/1?format=csv", Some(&admin), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let csv = csv.as_str().unwrap().to_owned();
    assert!(csv.contains("sales,\"net\",\"1147\""), "{csv}");
    let (_, list) = s.send("GET", "/api/v1/reports/z", Some(&admin), None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    s.stop().await;
}

/// One step of first generated day.
#[derive(Debug, Clone)]
enum Op {
    Order {
        table: usize,
        item: usize,
        qty: u32,
    },
    Takeaway {
        item: usize,
        qty: u32,
    },
    Discount {
        check: usize,
        line: Option<usize>,
        percent: Option<u32>,
        amount: i64,
        comp: bool,
    },
    Void {
        check: usize,
        line: usize,
        qty: u32,
    },
    Pay {
        check: usize,
        method: usize,
        part: u32,
        tip: i64,
    },
    Split {
        check: usize,
        line: usize,
    },
    Refund {
        check: usize,
        amount: i64,
    },
    Cancel {
        order: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..5usize, 1..4u32).prop_map(|(table, item, qty)| Op::Order { table, item, qty }),
        1 => (0..5usize, 1..3u32).prop_map(|(item, qty)| Op::Takeaway { item, qty }),
        2 => (0..8usize, proptest::option::of(0..6usize), proptest::option::of(1..10_000u32), 1..500i64, any::<bool>())
            .prop_map(|(check, line, percent, amount, comp)| Op::Discount { check, line, percent, amount, comp }),
        1 => (0..8usize, 0..6usize, 1..3u32).prop_map(|(check, line, qty)| Op::Void { check, line, qty }),
        4 => (0..8usize, 0..3usize, 1..4u32, 0..300i64).prop_map(|(check, method, part, tip)| Op::Pay { check, method, part, tip }),
        1 => (0..8usize, 0..6usize).prop_map(|(check, line)| Op::Split { check, line }),
        1 => (0..8usize, 1..2000i64).prop_map(|(check, amount)| Op::Refund { check, amount }),
        1 => (0..20usize).prop_map(|order| Op::Cancel { order }),
    ]
}

/// Random days of orders, edits, discounts, comps, voids, splits, payments, tips and refunds:
/// at every step no balance is negative, and each day's Z balances (per method: payments =
/// sales − discounts − comps, plus tips, minus refunds) and equals the sum of the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_generated_day_closes_with_a_z_that_balances() {
    let s = TestServer::start_with(|c| {
        c.billing.payment_methods = vec!["cash".into(), "card".into(), "voucher".into()];
        c.billing.category_tax_rates.insert("drinks".into(), 1000);
    })
    .await;
    let state = Arc::clone(s.state());
    let clock = Arc::clone(&s.clock);
    tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: 24,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&proptest::collection::vec(op(), 5..40), |ops| {
            run_day(&state, &clock, &ops);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    })
    .await
    .unwrap();
    s.stop().await;
}

fn run_day(state: &orderd::api::ApiStateRef, clock: &orderd::clock::ManualClock, ops: &[Op]) {
    use futures::executor::block_on;
    const ITEMS: [(&str, &[&str]); 5] = [
        ("burger", &["medium"]),
        ("tave_kosi", &[]),
        ("greek_salad", &[]),
        ("espresso", &[]),
        ("lemonade", &[]),
    ];
    const METHODS: [&str; 3] = ["cash", "card", "voucher"];
    let rules = Arc::clone(&state.rules);
    let writer = &state.writer;
    let mut orders: Vec<String> = Vec::new();
    let mut seen_checks: Vec<u64> = Vec::new();
    let first_seq = state.events.last_seq() + 1;
    let boss = checks::Approval {
        actor: "admin".into(),
        approved_by: "admin".into(),
    };
    for op in ops {
        clock.advance_ms(30_000);
        let r = rules.clone();
        match op.clone() {
            Op::Order { table, item, qty } => {
                let t = format!("t{}", table + 1);
                if let Some((id, c)) = place(state, "dine_in", Some(&t), ITEMS[item], qty) {
                    if !seen_checks.contains(&c) {
                        seen_checks.push(c);
                    }
                    orders.push(id);
                }
            }
            Op::Takeaway { item, qty } => {
                if let Some((id, c)) = place(state, "takeaway", None, ITEMS[item], qty) {
                    seen_checks.push(c);
                    orders.push(id);
                }
            }
            Op::Discount {
                check,
                line,
                percent,
                amount,
                comp,
            } => {
                let Some(&id) = seen_checks.get(check) else {
                    continue;
                };
                let line_id = line.and_then(|l| line_id_of(state, id, l));
                let d = NewDiscount {
                    line: line_id,
                    percent_bp: if comp { None } else { percent },
                    amount: if comp || percent.is_some() {
                        None
                    } else {
                        Some(amount)
                    },
                    comp: comp && line_id.is_some(),
                    reason: "Regular guest".into(),
                };
                if d.check_shape().is_ok() {
                    let who = boss.clone();
                    let _ = block_on(writer.run(move |tx| checks::discount(tx, &r, id, &d, &who)));
                }
            }
            Op::Void { check, line, qty } => {
                let Some(&id) = seen_checks.get(check) else {
                    continue;
                };
                let Some(line) = line_id_of(state, id, line) else {
                    continue;
                };
                let v = NewVoid {
                    line,
                    quantity: Some(qty),
                    reason: "Wrong order".into(),
                };
                let who = boss.clone();
                let _ = block_on(writer.run(move |tx| checks::void_line(tx, &r, id, &v, &who)));
            }
            Op::Pay {
                check,
                method,
                part,
                tip,
            } => {
                let Some(&id) = seen_checks.get(check) else {
                    continue;
                };
                let Some(c) = read_check(state, id) else {
                    continue;
                };
                let balance = checks::bill(&c, &rules).balance;
                if balance <= 0 {
                    continue;
                }
                let amount = if part == 1 {
                    balance
                } else {
                    (balance / i64::from(part)).max(1)
                };
                let p = NewPayment {
                    method: METHODS[method].into(),
                    amount,
                    tip,
                    tendered: None,
                    reference: None,
                };
                let _ = block_on(writer.run(move |tx| checks::pay(tx, &r, id, &p, "ana", None)));
            }
            Op::Split { check, line } => {
                let Some(&id) = seen_checks.get(check) else {
                    continue;
                };
                let Some(line) = line_id_of(state, id, line) else {
                    continue;
                };
                if let Ok(c) =
                    block_on(writer.run(move |tx| checks::split_lines(tx, &r, id, &[line], "ana")))
                {
                    seen_checks.push(c.check.id);
                }
            }
            Op::Refund { check, amount } => {
                let Some(&id) = seen_checks.get(check) else {
                    continue;
                };
                let Some(c) = read_check(state, id) else {
                    continue;
                };
                let Some(p) = c.payments.first() else {
                    continue;
                };
                let req = NewRefund {
                    amount,
                    method: p.fact.method.clone(),
                    reason: "Cold food".into(),
                };
                let who = boss.clone();
                let _ = block_on(writer.run(move |tx| checks::refund(tx, &r, id, &req, &who)));
            }
            Op::Cancel { order } => {
                let Some(id) = orders.get(order).cloned() else {
                    continue;
                };
                let _ = block_on(writer.run(move |tx| {
                    orderd::domain::orders::transition(
                        tx,
                        &r,
                        &id,
                        orderd_protocol::OrderStatus::Cancelled,
                        Some("Guest left".into()),
                        "ana",
                    )
                }));
            }
        }
        // No balance is ever below zero.
        for &id in &seen_checks {
            if let Some(c) = read_check(state, id) {
                let second = checks::bill(&c, &rules);
                assert!(second.balance >= 0, "check {id}: {second:?}");
                assert!(second.total >= 0);
            }
        }
    }
    // Settle what is open, then close the day.
    let rtx = state.store.read().unwrap();
    let open = checks::open_checks(&rtx).unwrap();
    drop(rtx);
    for c in open {
        let second = checks::bill(&c, &rules);
        let id = c.check.id;
        let r = rules.clone();
        if second.balance > 0 {
            let p = NewPayment {
                method: "card".into(),
                amount: second.balance,
                tip: 0,
                tendered: None,
                reference: None,
            };
            block_on(writer.run(move |tx| checks::pay(tx, &r, id, &p, "ana", None))).unwrap();
        } else {
            block_on(writer.run(move |tx| checks::close_settled(tx, &r, id, "ana"))).unwrap();
        }
    }
    let r = rules.clone();
    let zrep = block_on(writer.run(move |tx| reports::close_day(tx, &r, "admin", None))).unwrap();
    let fig = &zrep.figures;
    // Per method and in all: what was taken off balances is the net sales.
    let taken: i64 = fig.methods.iter().map(|m| m.amount).sum();
    assert_eq!(taken, fig.net, "{fig:?}");
    assert_eq!(fig.net, fig.sales - fig.discounts - fig.comps, "{fig:?}");
    assert_eq!(fig.methods.iter().map(|m| m.tips).sum::<i64>(), fig.tips);
    assert_eq!(
        fig.methods.iter().map(|m| m.refunds).sum::<i64>(),
        fig.refunds
    );
    // payments received − refunds = net + tips + rounding − refunds
    let received: i64 = fig
        .methods
        .iter()
        .map(|m| m.amount + m.tips + m.rounding)
        .sum();
    assert_eq!(
        received - fig.refunds,
        fig.net + fig.tips + fig.rounding - fig.refunds
    );
    let vat_gross: i64 = fig.vat.iter().map(|v| v.gross).sum();
    assert_eq!(vat_gross, fig.net);
    // The Z equals the sum of the day's events.
    let events = state.events.read(first_seq, 1_000_000).unwrap();
    let (mut net, mut tips, mut refunds, mut paid) = (0i64, 0i64, 0i64, 0i64);
    for e in &events {
        match &e.kind {
            EventKind::CheckClosed(c) if c.ledger_day == fig.business_day && !c.voided => {
                net += c.total;
                tips += c.payments.iter().map(|p| p.tip).sum::<i64>();
            }
            EventKind::CheckRefunded(r) if r.ledger_day == fig.business_day => refunds += r.amount,
            EventKind::PaymentRecorded { payment, .. } => paid += payment.amount,
            _ => {}
        }
    }
    assert_eq!((net, tips, refunds), (fig.net, fig.tips, fig.refunds));
    assert_eq!(
        paid, taken,
        "every payment of the day is on first check closed that day"
    );
    // The next generated day starts on first new business day.
    clock.advance_ms(24 * 3_600_000);
}

/// Places an order through the domain and opens its check; `None` when it was refused.
fn place(
    state: &orderd::api::ApiStateRef,
    ty: &str,
    table: Option<&str>,
    (item, mods): (&str, &[&str]),
    qty: u32,
) -> Option<(String, u64)> {
    use futures::executor::block_on;
    let rules = Arc::clone(&state.rules);
    let req: orderd::domain::orders::NewOrder = serde_json::from_value(json!({
        "type": ty, "table_id": table,
        "items": [{"item_id": item, "quantity": qty, "modifiers": mods}],
    }))
    .unwrap();
    let actor = orderd::domain::orders::Actor {
        name: "ana".into(),
        source: orderd_protocol::OrderSource::Staff,
        verified: None,
    };
    let r = Arc::clone(&rules);
    let placed = block_on(
        state
            .writer
            .run(move |tx| orderd::domain::orders::place(tx, &r, &req, &actor, None)),
    )
    .ok()?;
    let id = placed.order.id.clone();
    let oid = id.clone();
    let c = block_on(
        state
            .writer
            .run(move |tx| checks::for_order(tx, &rules, &oid, "ana")),
    )
    .ok()?;
    Some((id, c.check.id))
}

fn read_check(state: &orderd::api::ApiStateRef, id: u64) -> Option<checks::StoredCheck> {
    let rtx = state.store.read().ok()?;
    checks::get(&rtx, id).ok()?
}

fn line_id_of(state: &orderd::api::ApiStateRef, check: u64, nth: usize) -> Option<u32> {
    let c = read_check(state, check)?;
    let live: Vec<u32> = c
        .lines
        .iter()
        .filter(|l| !l.cancelled)
        .map(|l| l.id)
        .collect();
    live.get(nth % live.len().max(1)).copied()
}

/// Text of ESC/POS bytes: the commands the renderer uses are skipped, PC858 decoded.
fn escpos_text(bytes: &[u8]) -> String {
    let mut high = std::collections::HashMap::new();
    for c in ('\u{a0}'..='\u{ff}').chain(['ë', 'Ë', 'ç', 'Ç']) {
        if let [b] = orderd_plugins::escpos::encode_text(&c.to_string())[..]
            && b >= 0x80
        {
            high.entry(b).or_insert(c);
        }
    }
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x1b if bytes.get(i + 1) == Some(&b'@') => i += 2,
            0x1b | 0x1d if bytes.get(i + 1) == Some(&b'V') => i += 4,
            0x1b | 0x1d => i += 3,
            b if b >= 0x80 => {
                out.push(*high.get(&b).unwrap_or(&'?'));
                i += 1;
            }
            b => {
                out.push(b as char);
                i += 1;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_check_prints_on_the_bill_printer_in_both_languages_and_a_reprint_says_copy() {
    let s = TestServer::start_with(|c| {
        c.billing.tax_id = "L12345678A".into();
        c.billing.address = "Rruga e Durrësit 1".into();
        c.billing.category_tax_rates.insert("drinks".into(), 1000);
    })
    .await;
    let (mut printer, _) = s.device_online("bill1", "printer", &["pass"], false).await;
    printer.sub("orderd/demo/printer/bill1/job").await;
    let waiter = s.user("ana", "staff").await;
    let ord = table_order(
        &s,
        &waiter,
        "t4",
        json!([{"item_id": "tave_kosi", "quantity": 2}, {"item_id": "lemonade", "quantity": 1}]),
    )
    .await;
    let id = check_of(&s, &waiter, ord["id"].as_str().unwrap()).await["id"]
        .as_u64()
        .unwrap();
    let (st, _) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{id}/covers"),
            Some(&waiter),
            Some(json!({"covers": 2})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{id}/print"),
            Some(&waiter),
            Some(json!({"lang": "sq"})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let job: orderd_protocol::PrintJob = serde_json::from_slice(
        &printer
            .next_on("/job", std::time::Duration::from_secs(5))
            .await
            .expect("a bill job")
            .0,
    )
    .unwrap();
    assert_eq!(job.copy, orderd_protocol::PrintCopy::Original);
    let text = escpos_text(&job.data);
    for want in [
        "Demo Restaurant",
        "Rruga e Durrësit 1",
        "NIPT L12345678A",
        "Tavolina T4",
        "Klientë 2",
        "Kamarieri: ana",
        "2x Tavë kosi",
        "22.00",
        "1x Limonadë",
        "3.00",
        "TOTALI EUR",
        "25.00",
        // 2200 at 20 % holds 367; 300 at 10 % holds 27.
        "TVSH 10% (3.00)",
        "0.27",
        "TVSH 20% (22.00)",
        "3.67",
        "Për të paguar",
        "NUK ËSHTË KUPON FISKAL",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }
    // Paid, then printed again in English: a COPY with the payment and the change.
    let (st, _) = pay(
        &s,
        &waiter,
        id,
        json!({"method": "cash", "amount": 2500, "tendered": 3000}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{id}/print"),
            Some(&waiter),
            Some(json!({"lang": "en"})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let again: orderd_protocol::PrintJob = serde_json::from_slice(
        &printer
            .next_on("/job", std::time::Duration::from_secs(5))
            .await
            .expect("a second bill job")
            .0,
    )
    .unwrap();
    assert_ne!(again.job_id, job.job_id);
    assert_eq!(again.copy, orderd_protocol::PrintCopy::Reprint);
    let text = escpos_text(&again.data);
    for want in [
        "*** COPY ***",
        "Table T4",
        "TOTAL EUR",
        "Paid cash",
        "Change",
        "5.00",
        "NOT A FISCAL RECEIPT",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }
    assert!(!text.contains("To pay"), "{text}");
    // Closing the day prints the Z report at the same printer.
    let (st, z) = s
        .send("POST", "/api/v1/reports/z", Some(&s.admin), Some(json!({})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{z}");
    let zjob: orderd_protocol::PrintJob = serde_json::from_slice(
        &printer
            .next_on("/job", std::time::Duration::from_secs(5))
            .await
            .expect("a Z job")
            .0,
    )
    .unwrap();
    let text = escpos_text(&zjob.data);
    for want in [
        "Z 1",
        "Checks",
        "NET",
        "25.00",
        "card (0)",
        "cash (1)",
        "Cash expected",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }
    // A table in a zone with a bill station of its own prints there.
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_with_its_own_bill_station_prints_its_tables_checks_there() {
    let s = TestServer::start_with(|c| {
        c.billing
            .zone_bill_stations
            .insert("terrace".into(), "terrace-pass".into());
    })
    .await;
    let (mut pass, _) = s.device_online("bill1", "printer", &["pass"], false).await;
    pass.sub("orderd/demo/printer/bill1/job").await;
    let (mut terrace, _) = s
        .device_online("bill2", "printer", &["terrace-pass"], false)
        .await;
    terrace.sub("orderd/demo/printer/bill2/job").await;
    let admin = s.admin.clone();
    for (table, printer) in [("t5", &mut terrace), ("t1", &mut pass)] {
        let ord = table_order(
            &s,
            &admin,
            table,
            json!([{"item_id": "espresso", "quantity": 1}]),
        )
        .await;
        let id = check_of(&s, &admin, ord["id"].as_str().unwrap()).await["id"]
            .as_u64()
            .unwrap();
        let (st, _) = s
            .send(
                "POST",
                &format!("/api/v1/checks/{id}/print"),
                Some(&admin),
                Some(json!({})),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED);
        let job: orderd_protocol::PrintJob = serde_json::from_slice(
            &printer
                .next_on("/job", std::time::Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("{table}'s bill at its zone's printer"))
                .0,
        )
        .unwrap();
        assert!(escpos_text(&job.data).contains(&format!("Table T{}", &table[1..])));
    }
    // And neither printer got the other's.
    assert!(
        pass.drain_on("/job", std::time::Duration::from_millis(300))
            .await
            .is_empty()
    );
    assert!(
        terrace
            .drain_on("/job", std::time::Duration::from_millis(300))
            .await
            .is_empty()
    );
    s.stop().await;
}

/// The real binary SIGKILLed while 16 waiters record payments (checkpoints off, so every
/// acknowledged payment comes back only through the write-ahead log): after the restart every
/// acknowledged payment is on its check as it was answered, and sending each again with its
/// key records nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_paying_loses_no_acknowledged_payment_and_records_none_twice() {
    use crate::common::bin::{login, spawn_with};
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
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
    // One check per waiter, each worth far more than the payments made on it.
    let mut checks = Vec::new();
    for _ in 0..16 {
        let order: Value = client
            .post(format!("{base}/api/v1/orders"))
            .bearer_auth(&token)
            .json(&json!({"type": "takeaway", "items": [
                {"item_id": "lemonade", "quantity": 99},
                {"item_id": "lemonade", "quantity": 99, "note": "no ice"}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let check: Value = client
            .post(format!(
                "{base}/api/v1/orders/{}/check",
                order["id"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        checks.push(check["id"].as_u64().unwrap());
    }
    let acked: Arc<std::sync::Mutex<BTreeMap<(u64, String), Value>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (w, &check) in checks.iter().enumerate() {
        let (client, base, token, acked, stop) = (
            client.clone(),
            base.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 190 {
                n += 1;
                let key = format!("w{w}-{n}");
                let resp = client
                    .post(format!("{base}/api/v1/checks/{check}/payments"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", &key)
                    .json(&json!({"method": if n % 2 == 0 { "cash" } else { "card" }, "amount": 100 + n}))
                    .send()
                    .await;
                let Ok(resp) = resp else { break };
                if resp.status() == 201
                    && let Ok(v) = resp.json::<Value>().await
                {
                    acked.lock().unwrap().insert((check, key), v["payment"].clone());
                }
            }
        }));
    }
    let enough = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while acked.lock().unwrap().len() < 400 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(enough.is_ok(), "{}", logs.lock().unwrap());
    child.start_kill().unwrap(); // SIGKILL, requests in flight
    child.wait().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let (mut child, base, logs) = spawn_with(&data, Some(&config)).await;
    assert!(
        logs.lock()
            .unwrap()
            .contains("replayed the write-ahead log"),
        "{}",
        logs.lock().unwrap()
    );
    let token = login(&client, &base, "admin", pw.trim()).await;
    let mut before = BTreeMap::new();
    for &check in &checks {
        let c: Value = client
            .get(format!("{base}/api/v1/checks/{check}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let payments = c["payments"].as_array().unwrap().clone();
        let paid: i64 = payments.iter().map(|p| p["amount"].as_i64().unwrap()).sum();
        assert_eq!(c["paid"].as_i64().unwrap(), paid);
        assert_eq!(
            c["balance"].as_i64().unwrap(),
            c["total"].as_i64().unwrap() - paid
        );
        before.insert(check, payments);
    }
    for ((check, key), sent) in &acked {
        let stored = before[check]
            .iter()
            .find(|p| p["id"] == sent["id"])
            .unwrap_or_else(|| panic!("payment {sent} of check {check} lost"));
        for k in ["method", "amount", "tip", "actor"] {
            assert_eq!(stored[k], sent[k], "{k} of {sent}");
        }
        // The same request again, with its key: the same payment, not a second one.
        let n: i64 = key.rsplit('-').next().unwrap().parse().unwrap();
        let resp = client
            .post(format!("{base}/api/v1/checks/{check}/payments"))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(&json!({"method": if n % 2 == 0 { "cash" } else { "card" }, "amount": 100 + n}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["idempotent-replayed"], "true");
        let again: Value = resp.json().await.unwrap();
        assert_eq!(&again["payment"], sent);
    }
    for &check in &checks {
        let c: Value = client
            .get(format!("{base}/api/v1/checks/{check}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            c["payments"],
            Value::Array(before[&check].clone()),
            "nothing recorded twice"
        );
    }
    // The day closes with the checks still open (forced), and `orderd export --what
    // z-reports` asks the running daemon for it.
    let z: Value = client
        .post(format!("{base}/api/v1/reports/z"))
        .bearer_auth(&token)
        .json(&json!({"force_reason": "test day"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        z["figures"]["open_checks"].as_array().unwrap().len(),
        16,
        "{z}"
    );
    let out = std::process::Command::new(crate::common::bin::BIN)
        .args([
            "export",
            "--what",
            "z-reports",
            "--from",
            "2000-01-01",
            "--to",
            "2099-12-31",
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[0].starts_with("number,business_day,closed_at,closed_by,forced"),
        "{csv}"
    );
    assert!(rows[1].starts_with("1,"), "{csv}");
    assert!(rows[1].contains("test day"), "{csv}");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
