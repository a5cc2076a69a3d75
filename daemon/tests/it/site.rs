//! The restaurant's own settings: saved from the admin page into `site.toml`, checked as the
//! next start will check them, applied at that start, and the guided set-up's state.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, error_code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_settings_are_checked_saved_and_applied_at_the_next_start() {
    let s = TestServer::start().await;
    let (st, v) = s.send("GET", "/api/v1/site", Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["settings"]["name"], "Demo Restaurant");
    assert_eq!(v["setup"]["finished"], false);
    assert_eq!(v["restart_needed"], false);
    assert!(
        v["choices"]["time_zones"]
            .as_array()
            .unwrap()
            .iter()
            .any(|z| z == "Europe/Tirane")
    );
    // Admins only, on the server.
    let waiter = s.user("ana", "staff").await;
    for (method, path) in [
        ("GET", "/api/v1/site"),
        ("PUT", "/api/v1/site"),
        ("PUT", "/api/v1/site/setup"),
        ("POST", "/api/v1/restart"),
    ] {
        let body = (method == "PUT").then(|| json!({"finished": true}));
        let (st, _) = s.send(method, path, Some(&waiter), body.clone()).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}");
        let (st, _) = s.send(method, path, None, body).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // Wrong values are named at their field, and nothing is saved.
    let site_file = s.dir.path().join("site.toml");
    for (body, field) in [
        (json!({"currency": "euro"}), "currency"),
        (json!({"time_zone": "Europe/Vlora"}), "time_zone"),
        (json!({"languages": ["de"]}), "languages"),
        (
            json!({"languages": ["en"], "default_language": "sq"}),
            "default_language",
        ),
        (json!({"minor_digits": 4}), "minor_digits"),
        (json!({"name": " "}), "name"),
        (json!({"name": "Bar\u{7}"}), "name"),
        (json!({"tax_id": "x".repeat(51)}), "tax_id"),
    ] {
        let (st, v) = s
            .send("PUT", "/api/v1/site", Some(&s.admin), Some(body.clone()))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(error_code(&v), "validation_failed");
        assert_eq!(v["error"]["details"]["field"], field, "{body}: {v}");
    }
    let (st, v) = s
        .send(
            "PUT",
            "/api/v1/site",
            Some(&s.admin),
            Some(json!({"colour": "red"})),
        )
        .await;
    assert!(st.is_client_error(), "{v}");
    assert!(!site_file.exists(), "a refused change wrote the file");
    // Saved: the running box is unchanged until it restarts.
    let (st, v) = s
        .send(
            "PUT",
            "/api/v1/site",
            Some(&s.admin),
            Some(json!({
                "name": " Trattoria Vlora ",
                "address": "Rruga Ismail Qemali 12\nVlorë",
                "tax_id": "L91234567B",
                "currency": "ALL",
                "minor_digits": 0,
                "default_language": "sq",
                "languages": ["sq", "en"],
            })),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["restart_needed"], true);
    assert_eq!(v["settings"]["name"], "Trattoria Vlora");
    assert_eq!(v["running"]["name"], "Demo Restaurant");
    assert_eq!(s.state().rules.currency, "EUR");
    // A later change keeps what it does not name.
    let (st, v) = s
        .send(
            "PUT",
            "/api/v1/site",
            Some(&s.admin),
            Some(json!({"time_zone": "Europe/Rome"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["settings"]["currency"], "ALL");
    assert_eq!(v["settings"]["time_zone"], "Europe/Rome");
    // The restart is asked for; `orderd run` acts on it (the browser test sees it happen).
    let (st, v) = s
        .send("POST", "/api/v1/restart", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    tokio::time::timeout(Duration::from_secs(5), s.state().restart.notified())
        .await
        .expect("the restart was asked for");
    // The next start runs on them: pages, the bill's header, money and time.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let (st, v) = s.send("GET", "/api/v1/site", Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["restart_needed"], false);
    assert_eq!(v["running"]["name"], "Trattoria Vlora");
    let rules = &s.state().rules;
    assert_eq!(rules.currency, "ALL");
    assert_eq!(rules.billing.minor_digits, 0);
    assert_eq!(rules.billing.address, "Rruga Ismail Qemali 12\nVlorë");
    assert_eq!(rules.billing.tax_id, "L91234567B");
    assert_eq!(rules.default_language, "sq");
    assert_eq!(s.state().settings.site.time_zone, "Europe/Rome");
    let (st, v) = s.send("GET", "/api/v1/billing", Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["currency"], "ALL");
    let (st, v) = s.send("GET", "/api/v1/tables", Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::OK);
    let token = v["data"][0]["qr_token"].as_str().unwrap().to_owned();
    let page = s
        .client
        .get(s.url(&format!("/t/{token}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Trattoria Vlora"), "{page}");
    assert!(page.contains(r#""languages":["sq","en"]"#), "{page}");
    // The guided set-up: finished, and asked for again.
    for finished in [true, false, true] {
        let (st, v) = s
            .send(
                "PUT",
                "/api/v1/site/setup",
                Some(&s.admin),
                Some(json!({ "finished": finished })),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["setup"]["finished"], finished);
        assert_eq!(
            v["restart_needed"], false,
            "the set-up's state needs no restart"
        );
    }
    // Saves that arrive together are each kept whole, one after another.
    let saves = (0..24).map(|i| {
        let (path, body) = if i % 2 == 0 {
            ("/api/v1/site/setup", json!({ "finished": true }))
        } else {
            ("/api/v1/site", json!({ "tax_id": format!("L{i:08}A") }))
        };
        let s = &s;
        async move { s.send("PUT", path, Some(&s.admin), Some(body)).await }
    });
    for (st, v) in futures::future::join_all(saves).await {
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let text = std::fs::read_to_string(s.dir.path().join("site.toml")).unwrap();
    assert!(text.contains("finished = true"), "{text}");
    assert!(text.contains("name = \"Trattoria Vlora\""), "{text}");
    assert!(!s.dir.path().join("site.toml.tmp").exists());
}
