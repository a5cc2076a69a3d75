//! Customer verification and the message outbox, end to end: the real daemon, a real redb
//! file, and a scripted fake WhatsApp Cloud API on loopback that succeeds, fails, throttles
//! and stalls.
mod common;

use std::time::Duration;

use common::TestServer;
use orderd_plugins::fake::{Fake, Flavor, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PHONE: &str = "+355691234567";

async fn server(fake: &Fake, f: impl FnOnce(&mut orderd::config::RawConfig)) -> TestServer {
    let url = fake.url();
    TestServer::start_with(move |c| {
        c.otp.required = true;
        c.whatsapp.enabled = true;
        c.whatsapp.base_url = url;
        c.whatsapp.phone_number_id = "1234".into();
        c.whatsapp.access_token.value = "test-token".into();
        c.messaging.base_backoff_ms = 200;
        c.messaging.max_backoff_ms = 1000;
        c.messaging.request_timeout_ms = 1000;
        f(c);
    })
    .await
}

/// Waits until the fake has seen `n` requests; returns them.
async fn wait_seen(fake: &Fake, n: usize, within: Duration) -> Vec<orderd_plugins::fake::Seen> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = fake.seen();
        if seen.len() >= n || tokio::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The code in a recorded authentication-template request (body and button both carry it).
fn code_of(body: &Value) -> String {
    let comps = &body["template"]["components"];
    let body_code = comps[0]["parameters"][0]["text"].as_str().unwrap();
    assert_eq!(comps[1]["sub_type"], "url");
    assert_eq!(
        comps[1]["parameters"][0]["text"], body_code,
        "code in the button too"
    );
    body_code.to_owned()
}

async fn request_code(s: &TestServer, phone: &str) -> (StatusCode, Value) {
    s.send(
        "POST",
        "/api/v1/otp/request",
        None,
        Some(json!({"phone": phone, "channel": "whatsapp", "lang": "sq"})),
    )
    .await
}

async fn verify(s: &TestServer, fake: &Fake, phone: &str) -> String {
    let before = fake.seen().len();
    let (st, v) = request_code(s, phone).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let seen = wait_seen(fake, before + 1, Duration::from_secs(5)).await;
    let code = code_of(&seen.last().unwrap().body);
    let (st, v) = s.check_code(phone, &code).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

/// Waits for a dead-lettered message; its id.
async fn loop_until_dead(s: &TestServer) -> u64 {
    for _ in 0..100 {
        let (_, dead) = s
            .send(
                "GET",
                "/api/v1/notifications?state=dead",
                Some(&s.admin),
                None,
            )
            .await;
        if let Some(id) = dead["data"][0]["id"].as_u64() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no dead-lettered message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_code_then_order_then_status_messages() {
    let fake = Fake::start(Flavor::WhatsApp).await.unwrap();
    let s = server(&fake, |_| {}).await;
    let table = s.table_token().await;
    let order = json!({"type": "dine_in", "table_token": table, "items": [{"item_id": "espresso", "quantity": 1}]});
    // Unverified: 401.
    let (st, v) = s
        .send("POST", "/api/v1/orders", None, Some(order.clone()))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(common::error_code(&v), "verification_required");

    let token = verify(&s, &fake, PHONE).await;
    let first = &fake.seen()[0];
    assert_eq!(first.path, "/v21.0/1234/messages");
    assert_eq!(first.authorization.as_deref(), Some("Bearer test-token"));
    assert_eq!(first.body["to"], "355691234567");
    assert_eq!(first.body["template"]["language"]["code"], "sq");
    // The code is not in the answer, and not stored in the clear once sent.
    let list = s
        .wait_get("/api/v1/notifications?state=sent", &s.admin, |v| {
            v["data"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await;
    assert_eq!(list["data"][0]["kind"], "code");
    assert!(!list.to_string().contains(&code_of(&first.body)));

    let (st, placed) = s
        .send("POST", "/api/v1/orders", Some(&token), Some(order))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{placed}");
    assert_eq!(
        placed["customer_phone"], PHONE,
        "the verified phone is recorded"
    );
    let id = placed["id"].as_str().unwrap();
    // Accepted and ready each send one status message, in the customer's language.
    for status in ["accepted", "preparing", "ready"] {
        let (st, v) = s.set_status(&s.admin, id, status).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let seen = wait_seen(&fake, 3, Duration::from_secs(5)).await;
    assert_eq!(seen.len(), 3, "one code and two status messages");
    let texts: Vec<String> = seen[1..]
        .iter()
        .map(|r| {
            r.body["template"]["components"][0]["parameters"][2]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, ["pranuar", "gati për t'u marrë"]);
    // `preparing` sends nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.seen().len(), 3);

    // The token reads its own order; another customer's token does not.
    let (st, _) = s
        .send("GET", &format!("/api/v1/orders/{id}"), Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, mine) = s.send("GET", "/api/v1/me/orders", Some(&token), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    let other = verify(&s, &fake, "+355699999999").await;
    let (st, _) = s
        .send("GET", &format!("/api/v1/orders/{id}"), Some(&other), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "another customer cannot read it");
    let (_, theirs) = s.send("GET", "/api/v1/me/orders", Some(&other), None).await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 0);
    // Revoked: the token stops working.
    let (st, _) = s
        .send("DELETE", "/api/v1/me/token", Some(&token), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.send("GET", "/api/v1/me/orders", Some(&token), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_lock_expire_and_are_rate_limited() {
    let fake = Fake::start(Flavor::WhatsApp).await.unwrap();
    let s = server(&fake, |_| {}).await;
    let (st, _) = request_code(&s, PHONE).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let code = code_of(&wait_seen(&fake, 1, Duration::from_secs(5)).await[0].body);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let (st, v) = s.check_code(PHONE, wrong).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(common::error_code(&v), "invalid_code");
    }
    let (st, _) = s.check_code(PHONE, &code).await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "five wrong codes lock the code"
    );

    // A fresh code expires after 5 minutes.
    let (st, _) = request_code(&s, PHONE).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let code = code_of(&wait_seen(&fake, 2, Duration::from_secs(5)).await[1].body);
    s.clock.advance_ms(301_000);
    let (st, _) = s.check_code(PHONE, &code).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "expired");
    // Unknown phones get the same answer.
    let (st, v) = s.check_code("+355600000001", "123456").await;
    assert_eq!(
        (st, common::error_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_code")
    );

    // Third send in the window is fine, the fourth is 429 with a wait.
    let (st, _) = request_code(&s, PHONE).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let (st, v) = request_code(&s, PHONE).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(common::error_code(&v), "too_many_codes");

    // Bad input.
    for body in [
        json!({"phone": "0691234567", "channel": "whatsapp"}),
        json!({"phone": PHONE, "channel": "pigeon"}),
        json!({"phone": PHONE, "channel": "telegram"}),
        json!({"phone": "+3556912345678901234", "channel": "whatsapp"}),
    ] {
        let (st, v) = s
            .send("POST", "/api/v1/otp/request", None, Some(body))
            .await;
        assert!(st.is_client_error(), "{st} {v}");
        assert!(v["error"]["code"].is_string());
    }
    for code in ["12345", "1234567", "abcdef", &"9".repeat(10_000)] {
        let (st, _) = s.check_code(PHONE, code).await;
        assert!(
            st == StatusCode::BAD_REQUEST || st == StatusCode::UNPROCESSABLE_ENTITY,
            "{st}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failures_are_retried_throttled_and_dead_lettered() {
    let fake = Fake::start(Flavor::WhatsApp).await.unwrap();
    let s = server(&fake, |c| c.messaging.breaker_failures = 100).await;
    // 500, 500, then success: delivered exactly once.
    fake.script([
        Reply::Fail(500, 1, "oops".into()),
        Reply::Fail(503, 2, "busy".into()),
    ]);
    let (st, _) = request_code(&s, PHONE).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let seen = wait_seen(&fake, 3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fake.seen().len(), 3, "no request after the success");
    assert_eq!(fake.delivered().len(), 1, "delivered exactly once");
    assert!(seen[2].at > seen[1].at);

    // 429 with Retry-After 2: nothing arrives before it runs out.
    fake.script([Reply::Throttle(2)]);
    let (st, _) = request_code(&s, "+355690000002").await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let seen = wait_seen(&fake, 5, Duration::from_secs(10)).await;
    assert_eq!(seen.len(), 5);
    assert!(
        seen[4].at.duration_since(seen[3].at) >= Duration::from_secs(2),
        "waited for Retry-After"
    );

    // A stalled provider is cut off by the timeout (1 s here) and retried.
    fake.script([Reply::Stall(Duration::from_secs(5))]);
    let (st, _) = request_code(&s, "+355690000003").await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let seen = wait_seen(&fake, 7, Duration::from_secs(10)).await;
    assert_eq!(seen.len(), 7, "retried after the stall");
    let (_, failed) = s
        .send("GET", "/api/v1/notifications", Some(&s.admin), None)
        .await;
    assert!(failed.to_string().contains("sent"));

    // A permanent 400 goes to the dead letter with the provider's reason.
    fake.script([Reply::Fail(400, 131_026, "Message undeliverable".into())]);
    let (st, _) = request_code(&s, "+355690000004").await;
    assert_eq!(st, StatusCode::ACCEPTED);
    wait_seen(&fake, 8, Duration::from_secs(5)).await;
    loop_until_dead(&s).await;
    let (_, dead) = s
        .send(
            "GET",
            "/api/v1/notifications?state=dead",
            Some(&s.admin),
            None,
        )
        .await;
    assert!(
        dead["data"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("undeliverable"),
        "{dead}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fake.seen().len(), 8, "a rejected message is not retried");
    // A dead code is never resent by hand either (the customer asks for a new one).
    let id = dead["data"][0]["id"].as_u64().unwrap();
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/notifications/{id}/retry"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("orderd_messages_total{channel=\"whatsapp\",outcome=\"dead\"} 1"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_accepted_while_the_provider_is_down_gets_its_message_when_it_returns() {
    let fake = Fake::start(Flavor::WhatsApp).await.unwrap();
    let s = server(&fake, |c| {
        c.messaging.breaker_failures = 2;
        c.messaging.breaker_pause_secs = 1;
    })
    .await;
    let token = verify(&s, &fake, PHONE).await;
    let table = s.table_token().await;
    let (st, placed) = s
        .send(
            "POST",
            "/api/v1/orders",
            Some(&token),
            Some(json!({"type": "dine_in", "table_token": table, "items": [{"item_id": "espresso", "quantity": 1}]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{placed}");
    fake.set_default(Reply::Fail(503, 0, "down".into()));
    let (st, _) = s
        .set_status(&s.admin, placed["id"].as_str().unwrap(), "accepted")
        .await;
    assert_eq!(st, StatusCode::OK);
    // The breaker opens after 2 failures and pauses; the provider comes back.
    wait_seen(&fake, 3, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = fake.seen().len();
    assert!(during <= 3, "paused by the breaker, not hammered: {during}");
    fake.set_default(Reply::Ok);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.delivered().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fake.delivered().len(),
        2,
        "the code and, once back, the status message"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.delivered().len(), 2, "exactly once");

    // A status message rejected for good can be resent by staff, once.
    fake.script([Reply::Fail(400, 131_026, "Message undeliverable".into())]);
    let (st, _) = s
        .set_status(&s.admin, placed["id"].as_str().unwrap(), "preparing")
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .set_status(&s.admin, placed["id"].as_str().unwrap(), "ready")
        .await;
    assert_eq!(st, StatusCode::OK);
    let dead = loop_until_dead(&s).await;
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/notifications/{dead}/retry"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fake.delivered().len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fake.delivered().len(), 3, "resent after the staff retry");
    s.stop().await;
}
