//! Customer verification and the message outbox, end to end: the real daemon, a real redb
//! file, and a scripted fake WhatsApp Cloud API on loopback that succeeds, fails, throttles
//! and stalls.
use crate::common;

use std::time::Duration;

use common::TestServer;
use orderd_plugins::fake::{Fake, Flavor, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PHONE: &str = "+355691234567";

async fn server(fake: &Fake, f: impl FnOnce(&mut orderd::config::RawConfig)) -> TestServer {
    let url = fake.url();
    TestServer::start_with(move |c| {
        c.otp.required = orderd::config::OtpRequired::On;
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
    common::eventually(
        &format!("the provider saw {n} requests"),
        within,
        || async {
            let seen = fake.seen();
            (seen.len() >= n).then_some(seen)
        },
    )
    .await
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

/// Waits for a dead-lettered message; the dead letters then.
async fn dead_letters(s: &TestServer) -> serde_json::Value {
    s.wait_get("/api/v1/notifications?state=dead", &s.admin, |v| {
        v["data"][0]["id"].is_u64()
    })
    .await
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
    common::quiet(Duration::from_millis(500)).await;
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
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        assert_eq!(common::error_code(&v), "invalid_code");
    }
    let (st, _) = s.check_code(PHONE, &code).await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "five wrong codes lock the code"
    );

    // A fresh code expires after 5 minutes.
    let (st, _) = request_code(&s, PHONE).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let code = code_of(&wait_seen(&fake, 2, Duration::from_secs(5)).await[1].body);
    s.clock.advance_ms(301_000);
    let (st, _) = s.check_code(PHONE, &code).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "expired");
    // Unknown phones get the same answer.
    let (st, v) = s.check_code("+355600000001", "123456").await;
    assert_eq!(
        (st, common::error_code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_code")
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
    common::quiet(Duration::from_millis(800)).await;
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
    let dead = dead_letters(&s).await;
    assert!(
        dead["data"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("undeliverable"),
        "{dead}"
    );
    common::quiet(Duration::from_millis(600)).await;
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
    common::quiet(Duration::from_millis(300)).await;
    let during = fake.seen().len();
    assert!(during <= 3, "paused by the breaker, not hammered: {during}");
    fake.set_default(Reply::Ok);
    common::eventually(
        "delivered once the provider is back",
        Duration::from_secs(10),
        || async { (fake.delivered().len() >= 2).then_some(()) },
    )
    .await;
    assert_eq!(
        fake.delivered().len(),
        2,
        "the code and, once back, the status message"
    );
    common::quiet(Duration::from_millis(500)).await;
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
    let dead = dead_letters(&s).await["data"][0]["id"].as_u64().unwrap();
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/notifications/{dead}/retry"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    common::eventually(
        "resent after the staff retry",
        Duration::from_secs(5),
        || async { (fake.delivered().len() >= 3).then_some(()) },
    )
    .await;
    assert_eq!(fake.delivered().len(), 3, "resent after the staff retry");
    s.stop().await;
}

/// Polls `GET /notifications` until no message is open (queued, sending or failed); every row.
async fn settled(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    within: Duration,
) -> Vec<Value> {
    common::eventually("no message left open", within, || async {
        let v = common::bin::get_json(client, base, token, "/api/v1/notifications?limit=500").await;
        let rows = v["data"].as_array().cloned().unwrap_or_default();
        let open = rows
            .iter()
            .filter(|r| matches!(r["state"].as_str(), Some("queued" | "sending" | "failed")))
            .count();
        (open == 0).then_some(rows)
    })
    .await
}

/// The stored outcome counter of `/metrics` for a channel and outcome.
fn stored_count(metrics: &str, channel: &str, outcome: &str) -> u64 {
    let prefix = format!("orderd_messages_stored{{channel=\"{channel}\",outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_replaced_or_expired_during_an_outage_is_never_sent() {
    let fake = Fake::start(Flavor::WhatsApp).await.unwrap();
    let s = server(&fake, |c| {
        c.messaging.breaker_failures = 2;
        c.messaging.breaker_pause_secs = 1;
    })
    .await;
    fake.set_default(Reply::Fail(503, 0, "down".into()));
    let (st, v) = request_code(&s, PHONE).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let first = wait_seen(&fake, 1, Duration::from_secs(5)).await;
    assert!(
        !first.is_empty(),
        "the first code was tried while the provider was down"
    );
    let first_code = code_of(&first[0].body);
    let (st, v) = request_code(&s, PHONE).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    fake.set_default(Reply::Ok);
    let rows = s
        .wait_get("/api/v1/notifications", &s.admin, |v| {
            v["data"].as_array().is_some_and(|r| {
                r.iter()
                    .all(|r| matches!(r["state"].as_str(), Some("sent" | "dead")))
            })
        })
        .await;
    let delivered = fake.delivered();
    assert_eq!(delivered.len(), 1, "only the current code goes out: {rows}");
    let code = code_of(&delivered[0].body);
    assert!(
        fake.seen()
            .iter()
            .filter(|r| matches!(r.reply, Reply::Ok))
            .all(|r| code_of(&r.body) != first_code || first_code == code),
        "the replaced code never reached the customer"
    );
    let (st, v) = s.check_code(PHONE, &code).await;
    assert_eq!(st, StatusCode::OK, "the code that arrived works: {v}");
    let dead: Vec<&Value> = rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "dead")
        .collect();
    assert_eq!(dead.len(), 1, "{rows}");
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("superseded"),
        "{rows}"
    );

    // A code whose provider is down past its lifetime is never sent.
    let other_phone = "+355697654321";
    fake.set_default(Reply::Fail(503, 0, "down".into()));
    let before = fake.seen().len();
    let (st, v) = request_code(&s, other_phone).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    wait_seen(&fake, before + 1, Duration::from_secs(5)).await;
    s.clock.advance_ms(301_000);
    fake.set_default(Reply::Ok);
    let rows = s
        .wait_get("/api/v1/notifications?state=dead", &s.admin, |v| {
            v["data"].as_array().is_some_and(|r| r.len() == 2)
        })
        .await;
    assert!(
        rows["data"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{rows}"
    );
    assert_eq!(fake.delivered().len(), 1, "the expired code never went out");
    let m = s.metrics().await;
    assert_eq!(stored_count(&m, "whatsapp", "sent"), 1);
    assert_eq!(stored_count(&m, "whatsapp", "dead"), 2);
    s.stop().await;
}

/// The config of a box whose provider is the fake.
fn provider_config(fake: &Fake, flavor: Flavor) -> String {
    let provider = match flavor {
        Flavor::WhatsApp => format!(
            "[whatsapp]\nenabled = true\nbase_url = \"{}\"\nphone_number_id = \"1234\"\n\n[whatsapp.access_token]\nvalue = \"test-token\"\n",
            fake.url()
        ),
        Flavor::Telegram => format!(
            "[telegram]\nenabled = true\napi_url = \"{}\"\nbot_username = \"orderd_test_bot\"\nstaff_chat_id = -100500\n\n[telegram.token]\nvalue = \"123:secret\"\n",
            fake.url()
        ),
    };
    format!(
        "[otp]\nrequired = true\n\n[messaging]\nbase_backoff_ms = 200\nmax_backoff_ms = 1000\nrequest_timeout_ms = 30000\n\n{provider}"
    )
}

/// Requests on the fake that carry `needle` in their body.
fn carrying(fake: &Fake, needle: &str) -> Vec<orderd_plugins::fake::Seen> {
    fake.seen()
        .into_iter()
        .filter(|s| s.body.to_string().contains(needle))
        .collect()
}

/// The box is SIGKILLed while its provider stalls on a status message (or staff alert) and a
/// code. After the restart the status message reaches the provider again (at least once), the
/// code does not (it may have arrived; the customer asks for a new one), and the outbox's
/// rows and its stored counters balance.
async fn killed_while_the_provider_stalls(flavor: Flavor) {
    let fake = Fake::start(flavor).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("orderd.toml");
    std::fs::write(&config, provider_config(&fake, flavor)).unwrap();
    let (mut child, base, _logs) = common::bin::spawn_with(&data, Some(&config)).await;
    let client = reqwest::Client::new();
    let pw = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let admin = common::bin::login(&client, &base, "admin", pw.trim()).await;
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut r = client.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await.unwrap();
            let st = r.status();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // What must reach the provider again after the restart, and the code that must not.
    let (resend, stalled_code_to) = match flavor {
        Flavor::WhatsApp => {
            let (st, v) = post(
                "/api/v1/otp/request",
                None,
                json!({"phone": PHONE, "channel": "whatsapp", "lang": "en"}),
            )
            .await;
            assert_eq!(st, StatusCode::ACCEPTED, "{v}");
            let seen = wait_seen(&fake, 1, Duration::from_secs(10)).await;
            let code = code_of(&seen[0].body);
            let (st, v) = post(
                "/api/v1/otp/verify",
                None,
                json!({"phone": PHONE, "code": code}),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            let customer = v["token"].as_str().unwrap().to_owned();
            let tables = common::bin::get_json(&client, &base, &admin, "/api/v1/tables").await;
            let table = tables["data"][0]["qr_token"].as_str().unwrap();
            let (st, order) = post(
                "/api/v1/orders",
                Some(&customer),
                json!({"type": "dine_in", "table_token": table, "items": [{"item_id": "espresso", "quantity": 1}]}),
            )
            .await;
            assert_eq!(st, StatusCode::CREATED, "{order}");
            fake.set_default(Reply::Stall(Duration::from_secs(60)));
            let id = order["id"].as_str().unwrap();
            let (st, v) = post(
                &format!("/api/v1/orders/{id}/status"),
                Some(&admin),
                json!({"status": "accepted"}),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            (
                format!("\"{}\"", PHONE.trim_start_matches('+')),
                "+355697654321",
            )
        }
        Flavor::Telegram => {
            fake.set_default(Reply::Stall(Duration::from_secs(60)));
            // A staff alert: tave kosi runs out.
            let (st, v) = post(
                "/api/v1/menu/items/tave_kosi/stock",
                Some(&admin),
                json!({"set": 0}),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            ("-100500".to_owned(), "+355697654321")
        }
    };
    // WhatsApp: a code that stalls as well. (A Telegram code goes out only once the phone is
    // proven in the bot, so the Telegram case stalls on a staff alert alone.)
    if flavor == Flavor::WhatsApp {
        let (st, v) = post(
            "/api/v1/otp/request",
            None,
            json!({"phone": stalled_code_to, "channel": "whatsapp", "lang": "en"}),
        )
        .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    }
    let other = stalled_code_to.trim_start_matches('+');
    let expect_stalled = if flavor == Flavor::WhatsApp { 2 } else { 1 };
    // The calls are out and stalled at the provider.
    common::eventually(
        "the calls stalled at the provider",
        Duration::from_secs(10),
        || async {
            let stalled = fake
                .seen()
                .iter()
                .filter(|s| matches!(s.reply, Reply::Stall(_)))
                .filter(|s| {
                    let b = s.body.to_string();
                    b.contains(&resend) || b.contains(other)
                })
                .count();
            (stalled >= expect_stalled).then_some(())
        },
    )
    .await;
    let before_kill = carrying(&fake, &resend).len();
    let code_calls = |fake: &Fake| carrying(fake, other).len();
    let codes_before = code_calls(&fake);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    fake.set_default(Reply::Ok);
    let (mut child, base, _logs) = common::bin::spawn_with(&data, Some(&config)).await;
    let admin = common::bin::login(&client, &base, "admin", pw.trim()).await;
    let rows = settled(&client, &base, &admin, Duration::from_secs(20)).await;
    assert!(
        carrying(&fake, &resend).len() > before_kill,
        "the interrupted status message or alert reached the provider again: {rows:?}"
    );
    assert_eq!(
        code_calls(&fake),
        codes_before,
        "the interrupted code was not sent again"
    );
    let dead: Vec<&Value> = rows.iter().filter(|r| r["state"] == "dead").collect();
    if flavor == Flavor::WhatsApp {
        assert!(
            dead.iter().any(|r| r["kind"] == "code"
                && r["last_error"].as_str().unwrap().contains("interrupted")),
            "{rows:?}"
        );
    }
    let metrics = common::bin::metrics(&client, &base).await;
    let ch = if flavor == Flavor::WhatsApp {
        "whatsapp"
    } else {
        "telegram"
    };
    let sent = rows.iter().filter(|r| r["state"] == "sent").count() as u64;
    assert_eq!(stored_count(&metrics, ch, "sent"), sent, "{rows:?}");
    assert_eq!(
        stored_count(&metrics, ch, "dead"),
        dead.len() as u64,
        "{rows:?}"
    );
    assert_eq!(
        sent + dead.len() as u64,
        rows.len() as u64,
        "every row sent or dead"
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_killed_while_whatsapp_stalls_sends_status_again_and_no_code() {
    killed_while_the_provider_stalls(Flavor::WhatsApp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_killed_while_telegram_stalls_sends_alerts_again_and_no_code() {
    killed_while_the_provider_stalls(Flavor::Telegram).await;
}

/// Turns on Telegram at `url`, with a staff chat for alerts.
fn staff_chat_on(c: &mut orderd::config::RawConfig, url: String) {
    c.telegram.enabled = true;
    c.telegram.api_url = url;
    c.telegram.bot_username = "orderd_test_bot".into();
    c.telegram.token.value = "123:secret".into();
    c.telegram.staff_chat_id = -100_500;
}

/// A provider that stalls until the request timeout holds back only its own messages: staff
/// alerts on Telegram go out while every WhatsApp call hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_provider_does_not_hold_back_the_other() {
    let wa = Fake::start(Flavor::WhatsApp).await.unwrap();
    let tg = Fake::start(Flavor::Telegram).await.unwrap();
    let tg_url = tg.url();
    let s = server(&wa, move |c| {
        c.messaging.request_timeout_ms = 30_000;
        staff_chat_on(c, tg_url);
    })
    .await;
    wa.set_default(Reply::Stall(Duration::from_secs(60)));
    let (st, v) = request_code(&s, PHONE).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    wait_seen(&wa, 1, Duration::from_secs(5)).await;
    let stalled_at = tokio::time::Instant::now();
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/menu/items/tave_kosi/stock",
            Some(&s.admin),
            Some(json!({"set": 0})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let alerts = wait_seen(&tg, 1, Duration::from_secs(5)).await;
    assert!(
        alerts
            .iter()
            .any(|a| a.body["chat_id"].as_i64() == Some(-100_500)),
        "{alerts:?}"
    );
    assert!(
        stalled_at.elapsed() < Duration::from_secs(5),
        "the alert went out while WhatsApp still hung"
    );
    assert_eq!(wa.seen().len(), 1, "the WhatsApp call is still out");
    // The outbox is paged like orders.
    let (st, page) = s
        .send(
            "GET",
            "/api/v1/notifications?page=2&limit=1",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert_eq!(page["pagination"]["total"], 2, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["data"][0]["kind"], "code", "newest first: {page}");
    let (st, _) = s
        .send("GET", "/api/v1/notifications?page=0", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    s.stop().await;
}

/// A code pump from many addresses stops at the budget over all phones: no more codes reach the
/// provider than the budget, the rest are 429, and the staff chat hears about it once. Code
/// checks are limited per address too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_pump_from_many_addresses_stops_at_the_budget() {
    let wa = Fake::start(Flavor::WhatsApp).await.unwrap();
    let tg = Fake::start(Flavor::Telegram).await.unwrap();
    let tg_url = tg.url();
    let s = server(&wa, move |c| {
        c.otp.max_sends_total = 20;
        c.otp.max_verifies_per_client = 5;
        staff_chat_on(c, tg_url);
    })
    .await;
    let mut accepted = 0;
    let mut refused = 0;
    for n in 0..60u32 {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 6, (n % 10) as u8 + 1]))
            .build()
            .unwrap();
        // Numbers in many prefixes, so only the budget over all phones stops them.
        let phone = format!("+3{:02}69{:07}", n % 90 + 10, 1_000_000 + n);
        let r = client
            .post(s.url("/api/v1/otp/request"))
            .json(&json!({"phone": phone, "channel": "whatsapp"}))
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["error"]["code"], "too_many_codes", "{v}");
                refused += 1;
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!((accepted, refused), (20, 40));
    let alerts = wait_seen(&tg, 1, Duration::from_secs(5)).await;
    let budget: Vec<_> = alerts
        .iter()
        .filter(|a| {
            a.body["text"]
                .as_str()
                .unwrap_or("")
                .contains("verification codes were sent")
        })
        .collect();
    assert_eq!(budget.len(), 1, "the staff are alerted once: {alerts:?}");
    let sent = wait_seen(&wa, 20, Duration::from_secs(10)).await;
    assert_eq!(
        sent.len(),
        20,
        "no more codes than the budget reached the provider"
    );
    // Code checks are limited per address.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(s.check_code(PHONE, "123456").await.0);
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|&&st| st == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2,
        "{statuses:?}"
    );
    s.stop().await;
}

/// A guest who verified a phone gets the e-receipt of the settled check through the outbox,
/// in their language (WhatsApp sends it through the status template), once per phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_guest_gets_the_e_receipt_when_the_check_is_settled() {
    let fake = Fake::start(Flavor::WhatsApp).await.unwrap();
    let s = server(&fake, |_| {}).await;
    let table = s.table_token().await;
    let token = verify(&s, &fake, PHONE).await;
    let mut orders = Vec::new();
    for item in ["espresso", "lemonade"] {
        let (st, placed) = s
            .send(
                "POST",
                "/api/v1/orders",
                Some(&token),
                Some(json!({"type": "dine_in", "table_token": table, "items": [{"item_id": item, "quantity": 1}]})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{placed}");
        orders.push(placed["id"].as_str().unwrap().to_owned());
    }
    let (st, check) = s
        .send(
            "POST",
            &format!("/api/v1/orders/{}/check", orders[0]),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{check}");
    assert_eq!(check["total"], 450);
    let before = fake.seen().len();
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/checks/{}/payments", check["id"]),
            Some(&s.admin),
            Some(json!({"method": "card", "amount": 450})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let seen = wait_seen(&fake, before + 1, Duration::from_secs(5)).await;
    let receipt = &seen[before];
    assert_eq!(receipt.body["to"], "355691234567");
    assert_eq!(receipt.body["template"]["language"]["code"], "sq");
    let params = &receipt.body["template"]["components"][0]["parameters"];
    assert_eq!(params[1]["text"], check["number"].to_string());
    assert_eq!(params[2]["text"], "paguar: 4.50 EUR");
    // Two orders from the same phone: one receipt.
    common::quiet(Duration::from_millis(500)).await;
    assert_eq!(fake.seen().len(), before + 1);
    let list = s
        .wait_get("/api/v1/notifications?state=sent", &s.admin, |v| {
            v["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|n| n["kind"] == "receipt"))
        })
        .await;
    let row = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "receipt")
        .unwrap()
        .clone();
    assert_eq!(row["detail"]["total"], "4.50 EUR", "{row}");
    assert_eq!(row["detail"]["paid"], "card 4.50 EUR", "{row}");
    s.stop().await;
}
