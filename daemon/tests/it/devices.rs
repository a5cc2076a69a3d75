//! The device registry API: admins add (password shown once), list (no secrets) and remove
//! kitchen devices; bad requests get JSON errors.
use crate::common;

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

/// Device logins follow the staff sign-in rule: a flood of wrong passwords from one address
/// runs a handful of hash checks, then is refused before any hash; the device itself still
/// connects with its password from an address it has used. An unknown device id is refused
/// like a wrong password and costs as much, so ids cannot be enumerated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_logins_are_throttled_and_unknown_ids_cost_the_same() {
    use std::time::{Duration, Instant};
    let s = TestServer::start().await;
    let (dev, pw) = s
        .device_online("printer-1", "printer", &["grill"], false)
        .await;
    dev.disconnect().await;
    let addr = s.mqtt();
    let timed = |id: &'static str, pw: &'static str| async move {
        let t = Instant::now();
        let r = common::mqtt::connect(addr, id, pw, None).await;
        (r.is_err(), t.elapsed())
    };
    // Unknown ids and wrong passwords: refused, and within the same order of time.
    let (refused, wrong) = timed("printer-1", "not-the-password").await;
    assert!(refused);
    let (refused, unknown) = timed("printer-9", "not-the-password").await;
    assert!(refused);
    assert!(
        unknown * 3 >= wrong && wrong * 3 >= unknown,
        "an unknown id took {unknown:?}, a wrong password {wrong:?}"
    );
    // A flood: after the limit, refusals come before any hash (much faster than a check).
    let mut slow = 0;
    let started = Instant::now();
    for _ in 0..40 {
        let (refused, took) = timed("printer-1", "not-the-password").await;
        assert!(refused);
        if took >= wrong / 2 {
            slow += 1;
        }
    }
    assert!(
        slow <= 5,
        "{slow} of 40 refusals ran a hash check (limit 5 per address)"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // The device itself: its own address, its own password (verified before, no hash).
    let dev = common::mqtt::connect(addr, "printer-1", &pw, None)
        .await
        .expect("the device still connects");
    dev.disconnect().await;
    s.stop().await;
}
