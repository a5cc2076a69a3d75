//! Scripted fakes of the remote services (WhatsApp Cloud API, Telegram Bot API) on loopback,
//! for tests and benchmarks: each answer can succeed, fail, throttle (429 with its retry
//! hint) or stall. Every request is recorded with what it was answered.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Which service the fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// WhatsApp Cloud API: `{"messages":[{"id":…}]}`, errors as `{"error":{"code",…}}`.
    WhatsApp,
    /// Telegram Bot API: `{"ok":true,"result":…}`, errors with `parameters.retry_after`.
    Telegram,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Success.
    Ok,
    /// A failure with this HTTP status and provider error code (and message).
    Fail(u16, i64, String),
    /// 429 with a retry hint in seconds.
    Throttle(u64),
    /// No answer for this long (then success, if the caller still waits).
    Stall(Duration),
}

/// A recorded request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// The path, e.g. `/v21.0/123/messages` or `/bot<token>/SendMessage`.
    pub path: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The JSON body (or `null`).
    pub body: Value,
    /// What it was answered.
    pub reply: Reply,
}

#[derive(Debug)]
struct Inner {
    flavor: Flavor,
    script: VecDeque<Reply>,
    default: Reply,
    seen: Vec<Seen>,
    next_id: u64,
    /// Telegram updates for `getUpdates`, oldest first.
    updates: Vec<Value>,
    next_update: u64,
}

/// A running fake.
#[derive(Debug, Clone)]
pub struct Fake {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Fake {
    /// Starts a fake on a free loopback port; it answers [`Reply::Ok`] until scripted.
    pub async fn start(flavor: Flavor) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner {
            flavor,
            script: VecDeque::new(),
            default: Reply::Ok,
            seen: Vec::new(),
            next_id: 0,
            updates: Vec::new(),
            next_update: 1,
        }));
        let state = Arc::clone(&inner);
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = Arc::clone(&state);
            async move { answer(&state, &uri, &headers, &body).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inner })
    }

    /// The base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers the next requests with these, in order, then with the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// The answer once the script has run out.
    pub fn set_default(&self, reply: Reply) {
        self.lock().default = reply;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Telegram: queues a private-chat text from user `chat` (its chat id is its user id).
    pub fn push_text(&self, chat: i64, text: &str) {
        self.push_message(chat, json!({"text": text}));
    }

    /// Telegram: queues a shared contact, sent by user `chat`, of user `contact_user`.
    pub fn push_contact(&self, chat: i64, contact_user: Option<i64>, phone: &str) {
        let mut contact = json!({"phone_number": phone, "first_name": "Guest"});
        if let Some(u) = contact_user {
            contact["user_id"] = json!(u);
        }
        self.push_message(chat, json!({ "contact": contact }));
    }

    fn push_message(&self, chat: i64, content: Value) {
        let mut s = self.lock();
        let id = s.next_update;
        s.next_update += 1;
        let mut message = json!({
            "message_id": id,
            "date": 1_700_000_000,
            "chat": {"id": chat, "type": "private", "first_name": "Guest"},
            "from": {"id": chat, "is_bot": false, "first_name": "Guest"},
        });
        if let (Some(m), Value::Object(extra)) = (message.as_object_mut(), content) {
            m.extend(extra);
        }
        s.updates.push(json!({"update_id": id, "message": message}));
    }

    /// Requests answered with success.
    pub fn delivered(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| matches!(s.reply, Reply::Ok | Reply::Stall(_)))
            .collect()
    }
}

async fn answer(state: &Mutex<Inner>, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let method = uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if method == "getupdates" {
        return updates(state, body).await;
    }
    if method == "getme" {
        return axum::Json(json!({"ok": true, "result": {
            "id": 1, "is_bot": true, "first_name": "orderd", "username": "orderd_fake_bot",
            "can_join_groups": false, "can_read_all_group_messages": false,
            "supports_inline_queries": false, "can_connect_to_business": false,
            "has_main_web_app": false
        }}))
        .into_response();
    }
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (reply, flavor, id) = {
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        let reply = s.script.pop_front().unwrap_or_else(|| s.default.clone());
        s.next_id += 1;
        let id = s.next_id;
        s.seen.push(Seen {
            at: Instant::now(),
            path: uri.path().to_owned(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: request.clone(),
            reply: reply.clone(),
        });
        (reply, s.flavor, id)
    };
    match reply {
        Reply::Ok => ok(flavor, id, &request),
        Reply::Stall(d) => {
            tokio::time::sleep(d).await;
            ok(flavor, id, &request)
        }
        Reply::Fail(status, code, message) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let body = match flavor {
                Flavor::WhatsApp => {
                    json!({"error": {"message": message, "type": "OAuthException", "code": code}})
                }
                Flavor::Telegram => {
                    json!({"ok": false, "error_code": status.as_u16(), "description": message})
                }
            };
            (status, axum::Json(body)).into_response()
        }
        Reply::Throttle(secs) => {
            let body = match flavor {
                Flavor::WhatsApp => {
                    json!({"error": {"message": "rate limit hit", "code": 130_429}})
                }
                Flavor::Telegram => json!({
                    "ok": false, "error_code": 429,
                    "description": format!("Too Many Requests: retry after {secs}"),
                    "parameters": {"retry_after": secs}
                }),
            };
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
            resp
        }
    }
}

/// Telegram long polling: the queued updates from `offset` on, waiting up to 1 s for one
/// (shorter than a real poll, so tests stay quick; the client just asks again).
async fn updates(state: &Mutex<Inner>, body: &[u8]) -> Response {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let offset = body["offset"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let batch: Vec<Value> = {
            let s = state.lock().unwrap_or_else(PoisonError::into_inner);
            s.updates
                .iter()
                .filter(|u| u["update_id"].as_u64().unwrap_or(0) >= offset)
                .cloned()
                .collect()
        };
        if !batch.is_empty() || Instant::now() >= deadline {
            return axum::Json(json!({"ok": true, "result": batch})).into_response();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ok(flavor: Flavor, id: u64, request: &Value) -> Response {
    let body = match flavor {
        Flavor::WhatsApp => json!({
            "messaging_product": "whatsapp",
            "messages": [{"id": format!("wamid.fake{id}")}]
        }),
        Flavor::Telegram => json!({
            "ok": true,
            "result": {
                "message_id": id, "date": 1_700_000_000,
                "chat": {"id": request["chat_id"].as_i64().unwrap_or(1), "type": "private", "first_name": "Guest"},
                "from": {"id": 1, "is_bot": true, "first_name": "orderd"},
                "text": request["text"].as_str().unwrap_or("")
            }
        }),
    };
    axum::Json(body).into_response()
}
