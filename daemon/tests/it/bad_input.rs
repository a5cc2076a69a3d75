//! Bad input gets a 4xx with a JSON error, never a 5xx: malformed JSON, wrong types, unknown
//! fields, unknown items and modifiers, modifier counts outside min/max, bad quantities, huge
//! orders and bodies, invalid UTF-8 — and the store is unchanged afterwards. A body outside the
//! documented limits is 422; one that names what the menu or the tables do not hold now
//! (an unknown item or modifier choice) is 409, and an unknown table 404.
use crate::common;

use common::{TestServer, error_code};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[allow(clippy::needless_pass_by_value)]
fn order(items: Value) -> Value {
    json!({"type": "takeaway", "items": items})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_orders_are_refused_with_json_errors() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "wrong type",
            json!({"type": "takeaway", "items": "burger"}),
            422,
            "invalid_body",
        ),
        (
            "unknown field",
            json!({"type": "takeaway", "items": [], "price": 1}),
            422,
            "invalid_body",
        ),
        (
            "unknown line field",
            order(json!([{"item_id": "espresso", "quantity": 1, "unit_price": 1}])),
            422,
            "invalid_body",
        ),
        (
            "unknown order type",
            json!({"type": "drive_through", "items": []}),
            422,
            "invalid_body",
        ),
        ("no items", order(json!([])), 422, "validation_failed"),
        (
            "unknown item",
            order(json!([{"item_id": "caviar", "quantity": 1}])),
            409,
            "unknown_item",
        ),
        (
            "unknown modifier",
            order(
                json!([{"item_id": "burger", "quantity": 1, "modifiers": ["medium", "gold_leaf"]}]),
            ),
            409,
            "invalid_modifiers",
        ),
        (
            "modifier of another item",
            order(json!([{"item_id": "espresso", "quantity": 1, "modifiers": ["large"]}])),
            409,
            "invalid_modifiers",
        ),
        (
            "below group min",
            order(json!([{"item_id": "burger", "quantity": 1}])),
            409,
            "invalid_modifiers",
        ),
        (
            "above group max",
            order(
                json!([{"item_id": "burger", "quantity": 1, "modifiers": ["medium", "well_done"]}]),
            ),
            409,
            "invalid_modifiers",
        ),
        (
            "same option twice",
            order(
                json!([{"item_id": "burger", "quantity": 1, "modifiers": ["medium", "bacon", "bacon"]}]),
            ),
            409,
            "invalid_modifiers",
        ),
        (
            "quantity 0",
            order(json!([{"item_id": "espresso", "quantity": 0}])),
            422,
            "validation_failed",
        ),
        (
            "negative quantity",
            order(json!([{"item_id": "espresso", "quantity": -3}])),
            422,
            "validation_failed",
        ),
        (
            "huge quantity",
            order(json!([{"item_id": "espresso", "quantity": 1_000_000_000_000i64}])),
            422,
            "validation_failed",
        ),
        (
            "quantity beyond i64",
            order(json!([{"item_id": "espresso", "quantity": 1e30}])),
            422,
            "invalid_body",
        ),
        (
            "fractional quantity",
            order(json!([{"item_id": "espresso", "quantity": 1.5}])),
            422,
            "invalid_body",
        ),
        (
            "51 lines",
            order(Value::Array(vec![
                json!({"item_id": "espresso", "quantity": 1});
                51
            ])),
            422,
            "validation_failed",
        ),
        (
            "dine-in without table",
            json!({"type": "dine_in", "items": [{"item_id": "espresso", "quantity": 1}]}),
            422,
            "validation_failed",
        ),
        (
            "unknown table",
            json!({"type": "dine_in", "table_id": "t404", "items": [{"item_id": "espresso", "quantity": 1}]}),
            404,
            "table_not_found",
        ),
        (
            "delivery without address",
            json!({"type": "delivery", "items": [{"item_id": "espresso", "quantity": 1}]}),
            422,
            "validation_failed",
        ),
        (
            "bad phone",
            json!({"type": "takeaway", "customer_phone": "call me", "items": [{"item_id": "espresso", "quantity": 1}]}),
            422,
            "validation_failed",
        ),
        (
            "long note",
            json!({"type": "takeaway", "note": "x".repeat(501), "items": [{"item_id": "espresso", "quantity": 1}]}),
            422,
            "validation_failed",
        ),
        ("null body", Value::Null, 422, "invalid_body"),
    ];
    for (name, body, status, code) in cases {
        let (st, v) = s
            .send("POST", "/api/v1/orders", Some(&staff), Some(body))
            .await;
        assert_eq!(st.as_u16(), status, "{name}: {v}");
        assert_eq!(error_code(&v), code, "{name}: {v}");
    }
    let raw: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            b"{\"type\": \"takeaway\", ".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "not JSON at all",
            b"burger please".to_vec(),
            400,
            "malformed_json",
        ),
        ("empty body", Vec::new(), 400, "malformed_json"),
        (
            "invalid UTF-8",
            b"{\"type\": \"takeaway\", \"note\": \"\xff\xfe\", \"items\": []}".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "10,000 items",
            serde_json::to_vec(&order(Value::Array(vec![
                json!({"item_id": "espresso", "quantity": 1});
                10_000
            ])))
            .unwrap(),
            413,
            "body_too_large",
        ),
        (
            "oversize body",
            format!(
                "{{\"type\":\"takeaway\",\"note\":\"{}\",\"items\":[]}}",
                "a".repeat(70_000)
            )
            .into_bytes(),
            413,
            "body_too_large",
        ),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            400,
            "malformed_json",
        ),
    ];
    for (name, body, status, code) in raw {
        let (st, v) = s.raw("POST", "/api/v1/orders", Some(&staff), body).await;
        assert_eq!(st.as_u16(), status, "{name}: {v}");
        assert_eq!(error_code(&v), code, "{name}: {v}");
    }
    // A 10,000-item order that fits the body limit is refused by the item limit.
    let s2 = TestServer::start_with(|c| c.limits.max_body_bytes = 4 * 1024 * 1024).await;
    let staff2 = s2.user("anna", "staff").await;
    let (st, v) = s2
        .order(
            &staff2,
            Value::Array(vec![json!({"item_id": "espresso", "quantity": 1}); 10_000]),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    s2.stop().await;
    // Nothing was stored by any of it.
    let (_, active) = s
        .send("GET", "/api/v1/orders/active", Some(&staff), None)
        .await;
    assert_eq!(active["pagination"]["total"], 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_endpoints_refuse_bad_input_too() {
    let s = TestServer::start().await;
    let a = s.admin.clone();
    let cases: Vec<(&str, &str, Option<Value>, u16)> = vec![
        ("GET", "/api/v1/orders/not-a-uuid", None, 404),
        (
            "GET",
            "/api/v1/orders/01a20162-403a-78e2-b8b3-2945606d54c2",
            None,
            404,
        ),
        (
            "POST",
            "/api/v1/orders/nope/status",
            Some(json!({"status": "accepted"})),
            404,
        ),
        ("GET", "/api/v1/orders/active?page=0", None, 422),
        ("GET", "/api/v1/orders/active?limit=100000", None, 422),
        ("GET", "/api/v1/orders/active?page=abc", None, 400),
        ("GET", "/api/v1/orders/active?color=red", None, 400),
        ("GET", "/api/v1/orders/history?date=22-11-2026", None, 422),
        ("GET", "/api/v1/orders/search?q=", None, 422),
        ("GET", "/api/v1/analytics/summary", None, 400),
        ("GET", "/api/v1/menu?lang=../../etc", None, 422),
        (
            "PUT",
            "/api/v1/menu",
            Some(
                json!({"categories": [{"id": "x", "name": {}, "items": [{"id": "Bad Id", "name": {"en": "a"}, "price": -5, "station": ""}]}]}),
            ),
            422,
        ),
        (
            "PUT",
            "/api/v1/menu",
            Some(json!({"categories": [], "extra": 1})),
            422,
        ),
        (
            "PATCH",
            "/api/v1/menu/items/nothing",
            Some(json!({"available": false})),
            404,
        ),
        (
            "PATCH",
            "/api/v1/menu/items/espresso",
            Some(json!({"price": -1})),
            422,
        ),
        (
            "PATCH",
            "/api/v1/menu/items/espresso",
            Some(json!({"available": false, "low_stock_threshold": null})),
            422,
        ),
        (
            "POST",
            "/api/v1/menu/items/espresso/stock",
            Some(json!({"set": 1, "adjust": 1})),
            422,
        ),
        (
            "POST",
            "/api/v1/menu/items/espresso/stock",
            Some(json!({"adjust": 1})),
            409,
        ),
        (
            "POST",
            "/api/v1/menu/items/tave_kosi/stock",
            Some(json!({"adjust": -1000})),
            409,
        ),
        ("POST", "/api/v1/tables", Some(json!({"label": ""})), 422),
        ("POST", "/api/v1/tables", Some(json!({"label": "t1"})), 409),
        ("DELETE", "/api/v1/tables/t404", None, 404),
        (
            "POST",
            "/api/v1/users",
            Some(json!({"username": "Bad Name", "password": "password-123", "role": "staff"})),
            422,
        ),
        (
            "POST",
            "/api/v1/users",
            Some(json!({"username": "bob", "password": "short", "role": "staff"})),
            422,
        ),
        (
            "POST",
            "/api/v1/users",
            Some(json!({"username": "bob", "password": "password-123", "role": "root"})),
            422,
        ),
        (
            "POST",
            "/api/v1/users",
            Some(json!({"username": "admin", "password": "password-123", "role": "staff"})),
            409,
        ),
        (
            "POST",
            "/api/v1/auth/login",
            Some(json!({"username": "admin"})),
            422,
        ),
        ("GET", "/api/v1/nothing-here", None, 404),
        ("DELETE", "/api/v1/orders/active", None, 405),
    ];
    for (method, path, body, status) in cases {
        let (st, v) = s.send(method, path, Some(&a), body).await;
        assert_eq!(st.as_u16(), status, "{method} {path}: {v}");
        error_code(&v);
    }
    // Ranges are not bad input: one ending before it starts holds no day, and a long one reads
    // only the days that have data.
    for (path, days) in [
        ("/api/v1/analytics/summary?from=2026-11-22&to=2026-11-01", 0),
        (
            "/api/v1/analytics/summary?from=2020-01-01&to=2026-11-01",
            2497,
        ),
    ] {
        let (st, v) = s.send("GET", path, Some(&a), None).await;
        assert_eq!(st, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["days"], days, "{path}: {v}");
        assert_eq!(v["orders"], 0, "{path}: {v}");
    }
    // The menu is unchanged by the refused uploads.
    let (_, menu) = s.send("GET", "/api/v1/menu", None, None).await;
    assert_eq!(menu["categories"].as_array().unwrap().len(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integer_written_as_a_float_is_that_integer() {
    let s = TestServer::start().await;
    // JSON has one number type: 4500859623537826.0 is an integer (JSON Schema agrees), and it
    // must be read exactly, not as its neighbour 4500859623537825.5.
    for body in [
        r#"{"check_id": 4500859623537826.0}"#,
        r#"{"check_id": 2.0}"#,
        r#"{"check_id": 2e0}"#,
    ] {
        let (st, v) = s
            .raw(
                "POST",
                "/api/v1/checks/1/merge",
                Some(&s.admin),
                body.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{body}: {v}");
    }
    let (st, v) = s
        .raw(
            "POST",
            "/api/v1/checks/1/merge",
            Some(&s.admin),
            br#"{"check_id": 2.5}"#.to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(error_code(&v), "invalid_body");
}
