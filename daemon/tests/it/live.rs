//! Live streams (SSE) against the real daemon: resume with `Last-Event-ID` misses nothing, a
//! customer follows only an order whose key it holds, sold-out reaches the ordering page, a slow
//! client is cut off without holding back the others, heartbeats, shutdown, and the limit.
use crate::common;

use std::time::{Duration, Instant};

use common::sse::Sse;
use common::{TestServer, error_code};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn addr(s: &TestServer) -> std::net::SocketAddr {
    s.running.as_ref().unwrap().addr
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn place(s: &TestServer, token: &str) -> Value {
    let (st, o) = s
        .order(token, json!([{"item_id": "espresso", "quantity": 1}]))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{o}");
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_staff_stream_misses_no_event() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let auth = bearer(&staff);

    // No session: 401 in the API's error shape; a bad Last-Event-ID: 400.
    let mut anon = Sse::open(addr(&s), "/api/v1/events", &[], None).await;
    assert_eq!(anon.status, 401);
    assert_eq!(error_code(&anon.error_body().await), "unauthorized");
    let mut bad = Sse::open(
        addr(&s),
        "/api/v1/events",
        &[("authorization", &auth), ("last-event-id", "x")],
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(error_code(&bad.error_body().await), "invalid_last_event_id");

    let mut sse = Sse::open(
        addr(&s),
        "/api/v1/events",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(sse.status, 200);
    assert!(sse.head.contains("text/event-stream"), "{}", sse.head);
    let hello = sse.next().await.unwrap();
    assert_eq!(hello.event, "hello");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let o = place(&s, &staff).await;
        let f = sse.event(5).await.expect("order_placed arrives live");
        assert_eq!(f.event, "order_placed");
        assert_eq!(f.data["data"]["order"]["id"], o["id"]);
        assert_eq!(f.data["seq"].as_u64(), f.id);
        ids.push(f.id.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[1] > w[0]));
    drop(sse);

    // While the client is away: two orders and a status change.
    let a = place(&s, &staff).await;
    let b = place(&s, &staff).await;
    let (st, _) = s
        .set_status(&staff, a["id"].as_str().unwrap(), "accepted")
        .await;
    assert_eq!(st, StatusCode::OK);
    let last = ids.last().unwrap().to_string();
    let mut sse = Sse::open(
        addr(&s),
        "/api/v1/events",
        &[("authorization", &auth), ("last-event-id", &last)],
        None,
    )
    .await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let f = sse.event(5).await.expect("the missed events are replayed");
        got.push(f);
    }
    let seqs: Vec<u64> = got.iter().map(|f| f.id.unwrap()).collect();
    let first = ids.last().unwrap() + 1;
    // Stock events may sit between orders; what matters is order, no gap, and all three.
    assert!(
        seqs[0] >= first && seqs.windows(2).all(|w| w[1] > w[0]),
        "{seqs:?}"
    );
    let kinds: Vec<&str> = got.iter().map(|f| f.event.as_str()).collect();
    assert_eq!(
        kinds,
        ["order_placed", "order_placed", "status_changed"],
        "{got:?}"
    );
    assert_eq!(got[0].data["data"]["order"]["id"], a["id"]);
    assert_eq!(got[1].data["data"]["order"]["id"], b["id"]);
    assert_eq!(got[2].data["data"]["to"], "accepted");
    // `?after=` does the same for clients that cannot set headers.
    let mut q = Sse::open(
        addr(&s),
        &format!("/api/v1/events?after={last}"),
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(q.event(5).await.unwrap().id, got[0].id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_follows_only_the_order_it_placed() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let token = s.table_token().await;
    let body = json!({"type": "dine_in", "table_token": token,
        "items": [{"item_id": "espresso", "quantity": 1}]});
    let (st, first) = s
        .send("POST", "/api/v1/orders", None, Some(body.clone()))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let (_, second) = s.send("POST", "/api/v1/orders", None, Some(body)).await;
    let (a_id, a_key) = (
        first["id"].as_str().unwrap(),
        first["order_key"].as_str().unwrap(),
    );
    let (b_id, b_key) = (
        second["id"].as_str().unwrap(),
        second["order_key"].as_str().unwrap(),
    );
    assert_ne!(a_key, b_key);
    // Staff orders carry no key.
    let by_staff = place(&s, &staff).await;
    assert!(by_staff.get("order_key").is_none(), "{by_staff}");

    // Guest A reads A with A's key, not B — B's order is simply not found.
    let (st, v) = s
        .send_with(
            "GET",
            &format!("/api/v1/orders/{a_id}"),
            None,
            None,
            &[("x-order-key", a_key)],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = s
        .send_with(
            "GET",
            &format!("/api/v1/orders/{b_id}"),
            None,
            None,
            &[("x-order-key", a_key)],
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .send("GET", &format!("/api/v1/orders/{a_id}"), None, None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let mut other = Sse::open(
        addr(&s),
        &format!("/api/v1/orders/{b_id}/events"),
        &[("x-order-key", a_key)],
        None,
    )
    .await;
    assert_eq!(other.status, 404);
    assert_eq!(error_code(&other.error_body().await), "not_found");
    // The table token alone reads nothing.
    let (st, _) = s
        .send_with(
            "GET",
            &format!("/api/v1/orders/{a_id}"),
            None,
            None,
            &[("x-order-key", &token)],
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let mut sse = Sse::open(
        addr(&s),
        &format!("/api/v1/orders/{a_id}/events"),
        &[("x-order-key", a_key)],
        None,
    )
    .await;
    assert_eq!(sse.status, 200);
    // B moves first, then A: A's stream shows only A, with no staff names.
    assert_eq!(
        s.set_status(&staff, b_id, "accepted").await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.set_status(&staff, a_id, "accepted").await.0,
        StatusCode::OK
    );
    let f = sse.event(5).await.unwrap();
    assert_eq!(f.event, "status_changed");
    assert_eq!(f.data["status"], "accepted");
    assert_eq!(f.data["number"], first["number"]);
    assert!(f.data.get("actor").is_none(), "{:?}", f.data);
    assert!(!f.data.to_string().contains(b_id));
    assert_eq!(
        s.set_status(&staff, a_id, "preparing").await.0,
        StatusCode::OK
    );
    assert_eq!(sse.event(5).await.unwrap().data["status"], "preparing");
    let _ = b_key;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sold_out_reaches_the_ordering_page_stream() {
    let s = TestServer::start().await;
    let staff = s.user("anna", "staff").await;
    let (st, menu) = s.send("GET", "/api/v1/menu", None, None).await;
    assert_eq!(st, StatusCode::OK, "{menu}");
    let mut sse = Sse::open(addr(&s), "/api/v1/menu/events", &[], None).await;
    assert_eq!(sse.status, 200);
    // Orders are not on the public stream; availability is.
    place(&s, &staff).await;
    let (st, v) = s.set_available(&staff, "espresso", false).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let f = sse.event(5).await.unwrap();
    assert_eq!(f.event, "availability_changed");
    assert_eq!(f.data["item_id"], "espresso");
    assert_eq!(f.data["available"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_cut_off_without_stalling_the_others() {
    let s = TestServer::start_with(|c| {
        c.http.sse_buffer_events = 8;
        c.http.sse_stall_secs = 2;
        c.limits.max_text_chars = 4000;
        c.limits.max_body_bytes = 1024 * 1024;
    })
    .await;
    let staff = s.user("anna", "staff").await;
    let auth = bearer(&staff);
    // A client that never reads, with a tiny receive buffer, and one that keeps up.
    let mut slow = Sse::open(
        addr(&s),
        "/api/v1/events",
        &[("authorization", &auth)],
        Some(4096),
    )
    .await;
    let mut fast = Sse::open(
        addr(&s),
        "/api/v1/events",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!((slow.status, fast.status), (200, 200));
    let note = "x".repeat(4000);
    let lines: Vec<Value> = (0..10)
        .map(|_| json!({"item_id": "espresso", "quantity": 1, "note": note}))
        .collect();
    // ~40 KB per event, 400 events: far more than the slow client's socket buffers hold.
    let total = 400;
    let reader = tokio::spawn(async move {
        let start = Instant::now();
        let mut n = 0;
        let mut worst = Duration::ZERO;
        while n < total {
            let t = Instant::now();
            let f = fast
                .event(20)
                .await
                .expect("the fast client keeps receiving");
            worst = worst.max(t.elapsed());
            if f.event == "order_placed" {
                n += 1;
            }
        }
        (start.elapsed(), worst)
    });
    for chunk in 0..total / 20 {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let c = s.client.clone();
            let url = s.url("/api/v1/orders");
            let body = json!({"type": "takeaway", "items": lines});
            let auth = auth.clone();
            tasks.push(tokio::spawn(async move {
                c.post(url)
                    .header("authorization", auth)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::CREATED, "chunk {chunk}");
        }
    }
    let (took, worst) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the fast client got every event")
        .unwrap();
    assert!(
        worst < Duration::from_secs(10),
        "worst gap {worst:?} over {took:?}"
    );
    // The cut happens once the slow client's buffer has stayed full for sse_stall_secs.
    common::eventually(
        "the slow client was cut off",
        Duration::from_secs(30),
        || async {
            s.metrics()
                .await
                .contains("orderd_sse_slow_clients_cut_total 1")
                .then_some(())
        },
    )
    .await;
    // The slow client, reading at last, finds what was buffered and then a clear end.
    let mut last_id = 0;
    let end = loop {
        let f = slow
            .event(20)
            .await
            .expect("the slow client gets an end event");
        if f.event == "end" {
            break f;
        }
        last_id = f.id.unwrap_or(last_id);
    };
    assert_eq!(end.data["reason"], "slow_client");
    let resume = end.data["resume_after"].as_u64().unwrap();
    assert!(resume >= last_id);
    assert!(slow.next().await.is_none(), "the stream ends after `end`");
    // And it resumes from there, missing nothing.
    let mut again = Sse::open(
        addr(&s),
        "/api/v1/events",
        &[
            ("authorization", &auth),
            ("last-event-id", &resume.to_string()),
        ],
        None,
    )
    .await;
    let f = again.event(10).await.unwrap();
    assert_eq!(f.id, Some(resume + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_a_limit_and_a_clean_end_at_shutdown() {
    let s = TestServer::start_with(|c| {
        c.http.sse_heartbeat_secs = 1;
        c.http.max_menu_streams = 1;
    })
    .await;
    let staff = s.user("anna", "staff").await;
    let auth = bearer(&staff);
    let mut one = Sse::open(
        addr(&s),
        "/api/v1/events",
        &[("authorization", &auth)],
        None,
    )
    .await;
    let _two = Sse::open(addr(&s), "/api/v1/menu/events", &[], None).await;
    let mut three = Sse::open(addr(&s), "/api/v1/menu/events", &[], None).await;
    assert_eq!(three.status, 503);
    assert_eq!(error_code(&three.error_body().await), "too_many_streams");
    assert!(s.metrics().await.contains("orderd_sse_streams 2"));
    let beat = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let f = one.next().await.unwrap();
            if f.event == ":" {
                return f;
            }
        }
    })
    .await
    .expect("a heartbeat within 5 s");
    assert_eq!(beat.event, ":");
    // Shutdown ends open streams with `end` and is not held up by them.
    let started = Instant::now();
    let stop = tokio::spawn(async move { s.stop().await });
    let end = one.event(10).await.expect("an end event at shutdown");
    assert_eq!(end.event, "end");
    assert_eq!(end.data["reason"], "shutting_down");
    stop.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A flood of one class of stream never refuses another: 1,000 anonymous menu streams (from 20
/// addresses, under the per-address connection cap) fill the menu class, the next menu stream
/// is refused with 503, and a kitchen display's staff stream still opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_menu_streams_do_not_starve_the_kitchen() {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let mut lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    lim.current = lim.maximum;
    rustix::process::setrlimit(rustix::process::Resource::Nofile, lim).unwrap();
    let s = TestServer::start().await;
    let staff = s.user("kds", "staff").await;
    let to = addr(&s);
    let mut streams = Vec::new();
    for i in 0..1000u32 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(std::net::SocketAddr::new(
            std::net::IpAddr::from([127, 0, 4, (i / 50) as u8 + 1]),
            0,
        ))
        .unwrap();
        let mut stream = sock.connect(to).await.unwrap();
        stream
            .write_all(b"GET /api/v1/menu/events HTTP/1.1\r\nhost: box\r\naccept: text/event-stream\r\n\r\n")
            .await
            .unwrap();
        let mut r = tokio::io::BufReader::new(stream);
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert!(line.contains(" 200 "), "menu stream {i}: {line}");
        streams.push(r);
    }
    let mut refused = Sse::open(to, "/api/v1/menu/events", &[], None).await;
    assert_eq!(refused.status, 503);
    assert_eq!(error_code(&refused.error_body().await), "too_many_streams");
    let auth = bearer(&staff);
    let kitchen = Sse::open(to, "/api/v1/events", &[("authorization", &auth)], None).await;
    assert_eq!(kitchen.status, 200, "{}", kitchen.head);
    drop(streams);
    drop(kitchen);
    s.stop().await;
}
