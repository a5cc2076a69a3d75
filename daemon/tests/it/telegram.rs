//! Telegram end to end: the real daemon and a scripted fake Bot API on loopback (long polling
//! included). A customer proves a phone by opening the bot through the code's deep link and
//! sharing that phone as their own contact; only then does the code go out. Staff alerts go to
//! the staff chat and honour Telegram's `retry_after`; a box with Telegram unreachable starts.
use crate::common;

use std::time::Duration;

use common::TestServer;
use orderd_plugins::fake::{Fake, Flavor, Reply, Seen};
use reqwest::StatusCode;
use serde_json::json;

const PHONE: &str = "+355691234567";
const CHAT: i64 = 777_001;
const STAFF_CHAT: i64 = -100_500;

async fn server(fake_url: String, staff_chat: i64) -> TestServer {
    TestServer::start_with(move |c| {
        c.otp.required = orderd::config::OtpRequired::On;
        c.telegram.enabled = true;
        c.telegram.api_url = fake_url;
        c.telegram.bot_username = "orderd_test_bot".into();
        c.telegram.token.value = "123:secret".into();
        c.telegram.staff_chat_id = staff_chat;
        c.messaging.base_backoff_ms = 200;
        c.messaging.max_backoff_ms = 1000;
        c.messaging.request_timeout_ms = 1000;
    })
    .await
}

/// Messages the bot sent to `chat`.
fn sent_to(fake: &Fake, chat: i64) -> Vec<Seen> {
    fake.seen()
        .into_iter()
        .filter(|s| s.body["chat_id"].as_i64() == Some(chat))
        .collect()
}

/// Waits until `chat` got `n` messages; returns them.
async fn wait_sent(fake: &Fake, chat: i64, n: usize) -> Vec<Seen> {
    common::eventually(
        &format!("chat {chat} got {n} messages"),
        Duration::from_secs(5),
        || async { Some(sent_to(fake, chat)).filter(|got| got.len() >= n) },
    )
    .await
}

fn text(s: &Seen) -> &str {
    s.body["text"].as_str().unwrap_or("")
}

/// The six digits at the start of a code message.
fn code_in(s: &Seen) -> String {
    let code: String = text(s).chars().take(6).collect();
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{}", text(s));
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_code_needs_the_customers_own_phone_then_status_follows() {
    let fake = Fake::start(Flavor::Telegram).await.unwrap();
    let s = server(fake.url(), 0).await;
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/otp/request",
            None,
            Some(json!({"phone": PHONE, "channel": "telegram", "lang": "en"})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let link = v["deep_link"].as_str().unwrap();
    let payload = link
        .strip_prefix("https://t.me/orderd_test_bot?start=")
        .unwrap_or_else(|| panic!("{link}"));
    assert!(payload.len() <= 64 && payload.bytes().all(|b| b.is_ascii_alphanumeric()));

    // A stranger's /start with a made-up payload gets no prompt.
    fake.push_text(42, "/start not-a-link");
    let expired = wait_sent(&fake, 42, 1).await;
    assert!(text(&expired[0]).contains("no longer valid"));

    // Nothing reaches the customer before they open the bot.
    common::quiet(Duration::from_millis(400)).await;
    assert!(sent_to(&fake, CHAT).is_empty());

    fake.push_text(CHAT, &format!("/start {payload}"));
    let prompt = wait_sent(&fake, CHAT, 1).await;
    let button = &prompt[0].body["reply_markup"]["keyboard"][0][0];
    assert_eq!(button["request_contact"], true, "{}", prompt[0].body);
    // teloxide posts PascalCase method names; the token is in the path.
    assert!(
        prompt[0]
            .path
            .eq_ignore_ascii_case("/bot123:secret/sendmessage"),
        "{}",
        prompt[0].path
    );

    // Someone else's contact, then the account's own contact with another number: refused.
    fake.push_contact(CHAT, Some(CHAT + 1), &PHONE[1..]);
    let got = wait_sent(&fake, CHAT, 2).await;
    assert!(
        text(&got[1]).contains("your own phone number"),
        "{}",
        text(&got[1])
    );
    fake.push_contact(CHAT, Some(CHAT), "+355 69 000 0000");
    let got = wait_sent(&fake, CHAT, 3).await;
    assert!(
        text(&got[2]).contains("not the number"),
        "{}",
        text(&got[2])
    );
    common::quiet(Duration::from_millis(300)).await;
    assert_eq!(sent_to(&fake, CHAT).len(), 3, "no code for a wrong contact");

    // The customer's own contact (Telegram gives it without `+`): linked, and the code follows.
    fake.push_contact(CHAT, Some(CHAT), &PHONE[1..]);
    let got = wait_sent(&fake, CHAT, 5).await;
    let code_msg = got[3..]
        .iter()
        .find(|m| text(m).contains("verification code"))
        .expect("the code message");
    let code = code_in(code_msg);
    let (st, v) = s.check_code(PHONE, &code).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();

    // An order with that token hears "accepted" in the same chat.
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
    let (st, _) = s
        .set_status(&s.admin, placed["id"].as_str().unwrap(), "accepted")
        .await;
    assert_eq!(st, StatusCode::OK);
    let got = wait_sent(&fake, CHAT, 6).await;
    assert!(text(&got[5]).contains("is accepted"), "{}", text(&got[5]));
    // The worker records "sent" just after the provider answered: wait for it.
    let sent = s
        .wait_get("/api/v1/notifications?state=sent", &s.admin, |v| {
            v["data"].as_array().is_some_and(|d| d.len() == 2)
        })
        .await;
    assert_eq!(sent["data"].as_array().unwrap().len(), 2, "{sent}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_alerts_reach_the_staff_chat_after_retry_after() {
    let fake = Fake::start(Flavor::Telegram).await.unwrap();
    let s = server(fake.url(), STAFF_CHAT).await;
    fake.script([Reply::Throttle(2)]);
    // Stock falls under its threshold, then runs out: two alerts, written with the events.
    for level in [4, 0] {
        let (st, v) = s
            .send(
                "POST",
                "/api/v1/menu/items/tave_kosi/stock",
                Some(&s.admin),
                Some(json!({ "set": level })),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let got = wait_sent(&fake, STAFF_CHAT, 3).await;
    let throttled_at = got[0].at;
    assert!(matches!(got[0].reply, Reply::Throttle(2)));
    for later in &got[1..] {
        assert!(
            later.at.duration_since(throttled_at) >= Duration::from_secs(2),
            "a request arrived before retry_after ran out"
        );
    }
    let texts: Vec<&str> = got[1..].iter().map(text).collect();
    assert!(
        texts.iter().any(|t| t.contains("low on stock (4 left)")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("is sold out")), "{texts:?}");
    common::quiet(Duration::from_millis(300)).await;
    assert_eq!(fake.delivered().len(), 2, "each alert once");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_starts_and_takes_requests_with_telegram_unreachable() {
    // Nothing listens on port 9 of loopback: every poll and send fails at once.
    let s = server("http://127.0.0.1:9".into(), STAFF_CHAT).await;
    let (st, _) = s.send("GET", "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/otp/request",
            None,
            Some(json!({"phone": PHONE, "channel": "telegram"})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let (st, _) = s
        .send(
            "POST",
            "/api/v1/menu/items/tave_kosi/stock",
            Some(&s.admin),
            Some(json!({ "set": 0 })),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // The alert waits in the outbox, retried, never lost.
    // The alert is retried.
    let failed = s
        .wait_get("/api/v1/notifications?state=failed", &s.admin, |q| {
            q["data"][0].is_object()
        })
        .await;
    let row = &failed["data"][0];
    assert_eq!(row["kind"], "alert");
    assert_eq!(row["detail"]["key"], "alert_sold_out");
    s.stop().await;
}
