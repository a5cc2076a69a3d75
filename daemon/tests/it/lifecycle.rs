//! Order lifecycle: every allowed transition works, every other is a 409 listing the allowed
//! ones, final statuses are final, recall works inside the window and not after.
use crate::common;

use common::{TestServer, error_code};
use orderd_protocol::{OrderStatus, OrderType};
use reqwest::StatusCode;
use serde_json::json;

async fn place(s: &TestServer, token: &str, kind: OrderType) -> String {
    let body = match kind {
        OrderType::DineIn => {
            json!({"type": "dine_in", "table_id": "t1", "items": [{"item_id": "espresso", "quantity": 1}]})
        }
        OrderType::Takeaway => {
            json!({"type": "takeaway", "items": [{"item_id": "espresso", "quantity": 1}]})
        }
        OrderType::Delivery => {
            json!({"type": "delivery", "address": "Rruga e Durresit 1", "items": [{"item_id": "espresso", "quantity": 1}]})
        }
    };
    let (st, v) = s
        .send("POST", "/api/v1/orders", Some(token), Some(body))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// Walks an order to `target` along the normal path.
async fn walk(s: &TestServer, token: &str, kind: OrderType, target: OrderStatus) -> String {
    let id = place(s, token, kind).await;
    let path: &[OrderStatus] = match kind {
        OrderType::DineIn => &[
            OrderStatus::Accepted,
            OrderStatus::Preparing,
            OrderStatus::Ready,
            OrderStatus::Served,
        ],
        OrderType::Takeaway => &[
            OrderStatus::Accepted,
            OrderStatus::Preparing,
            OrderStatus::Ready,
            OrderStatus::PickedUp,
        ],
        OrderType::Delivery => &[
            OrderStatus::Accepted,
            OrderStatus::Preparing,
            OrderStatus::Ready,
            OrderStatus::OutForDelivery,
            OrderStatus::Delivered,
        ],
    };
    if target == OrderStatus::Placed {
        return id;
    }
    if target == OrderStatus::Cancelled {
        let (st, _) = s.set_status(token, &id, "cancelled").await;
        assert_eq!(st, StatusCode::OK);
        return id;
    }
    for &step in path {
        let (st, v) = s.set_status(token, &id, step.as_str()).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if step == target {
            return id;
        }
    }
    panic!("{target:?} not on the path of {kind:?}");
}

fn reachable(kind: OrderType) -> Vec<OrderStatus> {
    OrderStatus::ALL
        .into_iter()
        .filter(|s| match kind {
            OrderType::DineIn => !matches!(
                s,
                OrderStatus::PickedUp | OrderStatus::OutForDelivery | OrderStatus::Delivered
            ),
            OrderType::Takeaway => !matches!(
                s,
                OrderStatus::Served | OrderStatus::OutForDelivery | OrderStatus::Delivered
            ),
            OrderType::Delivery => !matches!(s, OrderStatus::Served | OrderStatus::PickedUp),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_is_checked() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let mut allowed_seen = 0;
    for kind in [OrderType::DineIn, OrderType::Takeaway, OrderType::Delivery] {
        for from in reachable(kind) {
            for to in OrderStatus::ALL {
                let id = walk(&s, &staff, kind, from).await;
                let (st, v) = s.set_status(&staff, &id, to.as_str()).await;
                if from.can_move_to(to, kind) {
                    allowed_seen += 1;
                    assert_eq!(st, StatusCode::OK, "{kind:?} {from:?}->{to:?}: {v}");
                    assert_eq!(v["status"], to.as_str());
                } else {
                    assert_eq!(st, StatusCode::CONFLICT, "{kind:?} {from:?}->{to:?}: {v}");
                    assert_eq!(error_code(&v), "invalid_transition");
                    let allowed: Vec<&str> =
                        from.allowed_next(kind).iter().map(|s| s.as_str()).collect();
                    assert_eq!(v["error"]["details"]["allowed"], json!(allowed));
                }
            }
            if from.is_final() {
                // Final: nothing at all is allowed.
                assert!(from.allowed_next(kind).is_empty());
            }
        }
    }
    // placed/accepted/preparing each allow 2 per type, ready 1, out_for_delivery 1 (delivery).
    assert_eq!(allowed_seen, 3 * (2 + 2 + 2 + 1) + 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_stamps_are_recorded() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let id = walk(&s, &staff, OrderType::DineIn, OrderStatus::Ready).await;
    let (_, o) = s
        .send("GET", &format!("/api/v1/orders/{id}"), Some(&staff), None)
        .await;
    assert!(
        o["accepted_at"].is_string() && o["preparing_at"].is_string() && o["ready_at"].is_string()
    );
    assert!(o["finished_at"].is_null());
    let (st, h) = s
        .send(
            "GET",
            &format!("/api/v1/orders/{id}/history"),
            Some(&staff),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let steps: Vec<_> = h["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(steps, ["placed", "accepted", "preparing", "ready"]);
    assert!(
        h["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "anna")
    );
    // Cancelling needs a reason.
    let id2 = place(&s, &staff, OrderType::Takeaway).await;
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/orders/{id2}/status"),
            Some(&staff),
            Some(json!({"status": "cancelled"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/orders/{id2}/status"),
            Some(&staff),
            Some(json!({"status": "cancelled", "note": "customer left"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["cancel_reason"], "customer left");
    // Unknown status is a 422 that lists the known ones.
    let (st, v) = s.set_status(&staff, &id, "eaten").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["error"]["details"]["known"].is_array());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_inside_the_window_only() {
    let s = TestServer::start_with(|c| c.orders.recall_window_secs = 60).await;
    let staff = s.user("anna", "staff").await;
    let recall = |id: String| {
        let s = &s;
        let staff = staff.clone();
        async move {
            s.send(
                "POST",
                &format!("/api/v1/orders/{id}/recall"),
                Some(&staff),
                None,
            )
            .await
        }
    };
    // Mis-bump ready -> served, recalled within the window.
    let id = walk(&s, &staff, OrderType::DineIn, OrderStatus::Served).await;
    s.clock.advance_ms(59_000);
    let (st, v) = recall(id.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "ready");
    assert!(v["finished_at"].is_null());
    let (_, active) = s
        .send("GET", "/api/v1/orders/active", Some(&staff), None)
        .await;
    assert!(
        active["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == id.as_str()),
        "recalled order is active again"
    );
    // Only one undo.
    let (st, v) = recall(id.clone()).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(error_code(&v), "nothing_to_recall");
    // After the window: refused.
    let id = walk(&s, &staff, OrderType::DineIn, OrderStatus::Accepted).await;
    s.clock.advance_ms(61_000);
    let (st, v) = recall(id.clone()).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(error_code(&v), "recall_window_passed");
    // A fresh order has nothing to recall; a cancellation cannot be recalled.
    let id = place(&s, &staff, OrderType::Takeaway).await;
    assert_eq!(recall(id.clone()).await.0, StatusCode::CONFLICT);
    s.set_status(&staff, &id, "cancelled").await;
    assert_eq!(recall(id).await.0, StatusCode::CONFLICT);
    s.stop().await;
}
