//! The device registry API: admins add (password shown once), list (no secrets) and remove
//! kitchen devices; bad requests get JSON errors.
mod common;

use common::{TestServer, error_code};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_devices() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let printer =
        json!({"id": "p1", "kind": "printer", "stations": ["grill", "grill"], "backup": false});
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/devices",
            Some(&staff),
            Some(printer.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/devices",
            Some(&s.admin),
            Some(printer.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let password = v["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 32);
    assert_eq!(v["stations"], json!(["grill"]));
    assert_eq!(v["encoding"], "json");
    let (st, v) = s
        .send("POST", "/api/v1/devices", Some(&s.admin), Some(printer))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(error_code(&v), "device_exists");
    let buzzer = json!({"id": "bz", "kind": "buzzer", "encoding": "postcard"});
    assert_eq!(
        s.send("POST", "/api/v1/devices", Some(&s.admin), Some(buzzer))
            .await
            .0,
        StatusCode::CREATED
    );

    let (st, list) = s.send("GET", "/api/v1/devices", Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let text = list.to_string();
    assert!(
        !text.contains(&password) && !text.contains("argon2") && !text.contains("$7$"),
        "{text}"
    );
    // Staff see devices (the kitchen page's banner) but cannot change them.
    let (st, seen) = s.send("GET", "/api/v1/devices", Some(&staff), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(seen["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        s.send("DELETE", "/api/v1/devices/p1", Some(&staff), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    for (body, field) in [
        (
            json!({"id": "P 1", "kind": "printer", "stations": ["grill"]}),
            "id",
        ),
        (json!({"id": "d", "kind": "display"}), "stations"),
        (
            json!({"id": "d", "kind": "display", "stations": ["a/b"]}),
            "stations",
        ),
        (
            json!({"id": "d", "kind": "buzzer", "backup": true}),
            "backup",
        ),
    ] {
        let (st, v) = s
            .send("POST", "/api/v1/devices", Some(&s.admin), Some(body))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["error"]["details"]["field"], field);
    }
    let (st, _) = s
        .send(
            "POST",
            "/api/v1/devices",
            Some(&s.admin),
            Some(json!({"id": "d", "kind": "toaster", "stations": ["a"]})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(
        s.send("DELETE", "/api/v1/devices/p1", Some(&staff), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.send("DELETE", "/api/v1/devices/p1", Some(&s.admin), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.send("DELETE", "/api/v1/devices/p1", Some(&s.admin), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The registry survives a restart.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let (_, list) = s.send("GET", "/api/v1/devices", Some(&s.admin), None).await;
    assert_eq!(list["data"][0]["id"], "bz");
    assert_eq!(list["data"][0]["encoding"], "postcard");
    s.stop().await;
}
