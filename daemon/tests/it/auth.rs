//! Staff auth: every endpoint refuses a missing, forged or expired token and the wrong role;
//! the first-run admin password file is 0600 and works; logins are throttled; logout works.
use crate::common;

use std::os::unix::fs::PermissionsExt as _;

use common::{TestServer, error_code};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The least role each endpoint needs, with a body that would be valid.
fn protected() -> Vec<(&'static str, &'static str, &'static str, Option<Value>)> {
    let menu: Value = serde_json::from_str(orderd::demo::DEMO_MENU).unwrap();
    vec![
        ("POST", "/api/v1/auth/logout", "staff", None),
        ("GET", "/api/v1/users", "admin", None),
        (
            "POST",
            "/api/v1/users",
            "admin",
            Some(json!({"username": "zed", "password": "password-123", "role": "staff"})),
        ),
        ("PUT", "/api/v1/menu", "admin", Some(menu)),
        (
            "PATCH",
            "/api/v1/menu/items/espresso",
            "staff",
            Some(json!({"available": true})),
        ),
        (
            "POST",
            "/api/v1/menu/items/espresso/stock",
            "staff",
            Some(json!({"set": 10})),
        ),
        ("GET", "/api/v1/tables", "staff", None),
        (
            "POST",
            "/api/v1/tables",
            "admin",
            Some(json!({"label": "T99"})),
        ),
        ("DELETE", "/api/v1/tables/t6", "admin", None),
        ("POST", "/api/v1/tables/t5/rotate-token", "admin", None),
        (
            "POST",
            "/api/v1/orders",
            "staff",
            Some(json!({"type": "takeaway", "items": [{"item_id": "espresso", "quantity": 1}]})),
        ),
        ("GET", "/api/v1/orders/active", "staff", None),
        ("GET", "/api/v1/orders/recent", "staff", None),
        ("GET", "/api/v1/orders/history", "staff", None),
        ("GET", "/api/v1/orders/search?q=001", "staff", None),
        ("GET", "/api/v1/orders/{id}", "staff", None),
        ("GET", "/api/v1/orders/{id}/history", "staff", None),
        (
            "POST",
            "/api/v1/orders/{id}/status",
            "staff",
            Some(json!({"status": "accepted"})),
        ),
        ("POST", "/api/v1/orders/{id}/recall", "staff", None),
        ("GET", "/api/v1/devices", "staff", None),
        (
            "POST",
            "/api/v1/devices",
            "admin",
            Some(json!({"id": "p9", "kind": "printer", "stations": ["grill"]})),
        ),
        ("DELETE", "/api/v1/devices/p9", "admin", None),
        ("GET", "/api/v1/analytics/daily", "admin", None),
        (
            "GET",
            "/api/v1/analytics/summary?from=2026-11-01&to=2026-11-22",
            "admin",
            None,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_checks_token_and_role() {
    let s = TestServer::start_with(|c| c.auth.session_ttl_secs = 3600).await;
    let staff = s.user("anna", "staff").await;
    let (_, order) = s
        .order(&staff, json!([{"item_id": "espresso", "quantity": 1}]))
        .await;
    let id = order["id"].as_str().unwrap().to_owned();
    let forged = "f".repeat(64);
    for (method, path, role, body) in protected() {
        let path = path.replace("{id}", &id);
        // No token: orders without a table token, and everything else, are 401.
        let (st, v) = s.send(method, &path, None, body.clone()).await;
        assert_eq!(
            st,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token: {v}"
        );
        error_code(&v);
        // A forged token.
        let (st, v) = s.send(method, &path, Some(&forged), body.clone()).await;
        assert_eq!(
            st,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a forged token: {v}"
        );
        assert_eq!(error_code(&v), "invalid_token");
        // A malformed Authorization header.
        let (st, _) = s
            .send_with(
                method,
                &path,
                None,
                body.clone(),
                &[("authorization", "Basic YWRtaW46eA==")],
            )
            .await;
        assert_eq!(
            st,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with Basic auth"
        );
        // The wrong role.
        if role == "admin" {
            let (st, v) = s.send(method, &path, Some(&staff), body.clone()).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path} as staff: {v}");
            assert_eq!(error_code(&v), "forbidden");
        }
    }
    // Staff may toggle availability but not change prices.
    let (st, _) = s
        .send(
            "PATCH",
            "/api/v1/menu/items/espresso",
            Some(&staff),
            Some(json!({"price": 1})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = s
        .send(
            "PATCH",
            "/api/v1/menu/items/espresso",
            Some(&s.admin),
            Some(json!({"price": 180})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["price"], 180);

    // Expired tokens: an hour and a second later, both sessions are refused everywhere.
    s.clock.advance_ms(3_601_000);
    for (method, path, _, body) in protected() {
        let path = path.replace("{id}", &id);
        for token in [&staff, &s.admin] {
            let (st, v) = s.send(method, &path, Some(token), body.clone()).await;
            assert_eq!(
                st,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with an expired token: {v}"
            );
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_password_file_is_private_and_works() {
    let s = TestServer::start().await;
    let file = s.dir.path().join("initial-admin-password");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pw = std::fs::read_to_string(&file).unwrap();
    assert!(pw.trim().len() >= 16);
    let token = s.login("admin", pw.trim()).await;
    let (st, _) = s.send("GET", "/api/v1/tables", Some(&token), None).await;
    assert_eq!(st, StatusCode::OK);
    // The password is never logged or served.
    let (_, metrics) = s.send("GET", "/metrics", None, None).await;
    assert!(!metrics.to_string().contains(pw.trim()));
    // A restart does not create another admin or rewrite the file.
    let dir = s.stop().await;
    let before = std::fs::read_to_string(dir.path().join("initial-admin-password")).unwrap();
    let s = common::TestServer::start_in(dir, |_| {}).await;
    assert!(s.running.as_ref().unwrap().initial_password_file.is_none());
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("initial-admin-password")).unwrap(),
        before
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_throttled_and_logout_ends_the_session() {
    let s = TestServer::start_with(|c| {
        c.auth.login_max_failures = 3;
        c.auth.login_lockout_secs = 60;
    })
    .await;
    let staff = s.user("anna", "staff").await;
    for _ in 0..3 {
        let (st, v) = s
            .send(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "anna", "password": "nope-nope"})),
            )
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(&v), "invalid_credentials");
    }
    // Unknown users get the same answer.
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "ghost", "password": "nope-nope"})),
        )
        .await;
    assert!(
        st == StatusCode::UNAUTHORIZED || st == StatusCode::TOO_MANY_REQUESTS,
        "{v}"
    );
    // Now even the right password waits.
    let resp = s
        .client
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"username": "anna", "password": "password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    s.clock.advance_ms(61_000);
    let fresh = s.login("anna", "password-123").await;
    // Logout ends only that session.
    let (st, _) = s
        .send("POST", "/api/v1/auth/logout", Some(&fresh), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .send("GET", "/api/v1/orders/active", Some(&fresh), None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s
        .send("GET", "/api/v1/orders/active", Some(&staff), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    // Sessions survive a restart; logged-out ones stay dead.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    assert_eq!(
        s.send("GET", "/api/v1/orders/active", Some(&staff), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.send("GET", "/api/v1/orders/active", Some(&fresh), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_order_with_a_table_token_only() {
    let s = TestServer::start().await;
    let (_, tables) = s.send("GET", "/api/v1/tables", Some(&s.admin), None).await;
    let t1 = tables["data"][0].clone();
    let token = t1["qr_token"].as_str().unwrap().to_owned();
    let body = json!({"type": "dine_in", "table_token": token, "items": [{"item_id": "espresso", "quantity": 2}]});
    let (st, v) = s
        .send("POST", "/api/v1/orders", None, Some(body.clone()))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["source"], "customer");
    assert_eq!(v["table_id"], t1["id"]);
    // A customer cannot order takeaway (not this caller's to do) or use a made-up token.
    let (st, _) = s
        .send("POST", "/api/v1/orders", None, Some(json!({"type": "takeaway", "table_token": token, "items": [{"item_id": "espresso", "quantity": 1}]})))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = s
        .send("POST", "/api/v1/orders", None, Some(json!({"type": "dine_in", "table_token": "0".repeat(32), "items": [{"item_id": "espresso", "quantity": 1}]})))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&v), "invalid_table_token");
    // Rotating the token retires the old QR code.
    let (st, rotated) = s
        .send(
            "POST",
            &format!("/api/v1/tables/{}/rotate-token", t1["id"].as_str().unwrap()),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_ne!(rotated["qr_token"], t1["qr_token"]);
    assert_eq!(
        s.send("POST", "/api/v1/orders", None, Some(body)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Customers cannot read orders (that arrives with customer verification).
    let (st, _) = s
        .send("GET", &format!("/api/v1/orders/{}", v["id"]), None, None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

/// One raw `POST /api/v1/auth/login` with keep-alive off.
fn login_request(host: &str, user: &str, password: &str) -> Vec<u8> {
    let body = json!({"username": user, "password": password}).to_string();
    format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status code of a raw HTTP answer.
async fn status_of(mut stream: tokio::net::TcpStream) -> u16 {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut buf),
    )
    .await;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// 300 wrong passwords and the right one, written at once on pre-opened connections from one
/// address: no more password checks run than the limit allows (each check is a 401), the rest
/// are refused before any hash, the right one does not get in during the lock, and the owner is
/// slowed, not locked out: once the short delay has passed the right password works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cannot_outrun_the_throttle() {
    use tokio::io::AsyncWriteExt as _;
    let s = TestServer::start().await;
    s.user("anna", "staff").await;
    let host = s.url("").trim_start_matches("http://").to_owned();
    let mut conns = Vec::new();
    for i in 0..301 {
        let stream = tokio::net::TcpStream::connect(&host).await.unwrap();
        let pw = if i == 300 {
            "password-123"
        } else {
            "wrong-guess"
        };
        conns.push((stream, login_request(&host, "anna", pw)));
    }
    // Everything but the last byte of each request first, then the last bytes back to back.
    for (stream, req) in &mut conns {
        stream.write_all(&req[..req.len() - 1]).await.unwrap();
    }
    for (stream, req) in &mut conns {
        stream.write_all(&req[req.len() - 1..]).await.unwrap();
    }
    let mut answers = Vec::new();
    for (stream, _) in conns {
        answers.push(tokio::spawn(status_of(stream)));
    }
    let mut codes = Vec::new();
    for a in answers {
        codes.push(a.await.unwrap());
    }
    let checks = codes[..300].iter().filter(|&&c| c == 401).count();
    let refused = codes[..300].iter().filter(|&&c| c == 429).count();
    assert!(checks <= 5, "{checks} password checks ran; the limit is 5");
    assert_eq!(checks + refused, 300, "{codes:?}");
    if codes[300] == 200 {
        // The right password took one of the five places before the wrong ones used them all;
        // then the address never locked, which is the rule.
        assert!(
            checks < 5,
            "the right password got in while the address was locked"
        );
    } else {
        assert_eq!(codes[300], 429, "{codes:?}");
        assert_eq!(checks, 5, "locked with fewer than five failures: {codes:?}");
        // During the lock: refused before any check.
        let (st, v) = s
            .send(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "anna", "password": "password-123"})),
            )
            .await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");
    }
    // Gently: after the first delay (1 s, doubling per further failure) the owner gets in.
    s.clock.advance_ms(1_100);
    s.login("anna", "password-123").await;
    s.stop().await;
}

/// Wrong passwords for `admin` from many other addresses cannot lock out the owner, who signs
/// in from an address they have used before; strangers' addresses are refused meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_lock_out_the_owner() {
    let s = TestServer::start().await;
    let pw = std::fs::read_to_string(s.dir.path().join("initial-admin-password")).unwrap();
    let guess = |n: u8| {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, n]))
            .build()
            .unwrap();
        let url = s.url("/api/v1/auth/login");
        async move {
            client
                .post(url)
                .json(&json!({"username": "admin", "password": "not-it-at-all"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let mut checked = 0;
    for n in 2..40u8 {
        for _ in 0..5 {
            if guess(n).await == StatusCode::UNAUTHORIZED {
                checked += 1;
            }
        }
    }
    assert!(
        checked <= 20,
        "{checked} checks for one user from strangers; the budget is 20"
    );
    assert_eq!(guess(77).await, StatusCode::TOO_MANY_REQUESTS);
    // The owner signed in from 127.0.0.1 at start (TestServer) and still can, at once.
    s.login("admin", pw.trim()).await;
    s.stop().await;
}

/// `/metrics` shows the day's business: without a token it answers only the box's own address;
/// with one, only a request carrying it. The store's files are the daemon's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_store_files_are_private() {
    let from = |n: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, n]))
            .build()
            .unwrap()
    };
    let s = TestServer::start().await;
    let url = s.url("/metrics");
    assert_eq!(
        from(1).get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    let r = from(9).get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(error_code(&v), "metrics_local_only");
    for f in [
        "orderd.redb",
        "orderd.wal",
        "otp-key",
        "initial-admin-password",
    ] {
        let mode = std::fs::metadata(s.dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{f} is {mode:o}");
    }
    let dir = s.stop().await;

    let s = TestServer::start_in(dir, |c| {
        c.http.metrics_token.value = "a-metrics-token-for-prometheus".into();
    })
    .await;
    let url = s.url("/metrics");
    assert_eq!(
        from(1).get(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "with a token even the box itself shows it"
    );
    let ok = from(9)
        .get(&url)
        .bearer_auth("a-metrics-token-for-prometheus")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("orderd_orders_created_total")
    );
    s.stop().await;
}
