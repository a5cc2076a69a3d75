//! Live updates as Server-Sent Events: every event for staff (`GET /events`), one order's
//! progress for its customer (`GET /orders/{id}/events`) and menu availability for the ordering
//! page (`GET /menu/events`).
//!
//! Each stream follows the durable event log from `Last-Event-ID` (or `?after=`), so a client
//! that reconnects misses nothing; the `id:` of every frame is the event's seq. A client gets a
//! bounded buffer of frames: one whose buffer stays full for `http.sse_stall_secs` is cut off
//! with an `end` event and resumes, and never holds back anyone else (each stream reads the log
//! on its own, so a stalled one holds only its own buffer). Streams
//! send a heartbeat comment when idle and end with `end` when the daemon stops.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderd_protocol::{Event, EventKind, OrderSource};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::ApiStateRef;
use super::extract::{MaybeCustomer, MaybeStaff, PathParam, Q, Staff};
use super::views::order_view;
use crate::domain::orders as dom;
use crate::domain::rfc3339;
use crate::error::{AppError, ErrorKind};

/// The live streams: how many are open, and the staff frames of recent events, built once and
/// shared by every staff stream (with 500 kitchen tablets and phones following the log, an event
/// is serialised once, not 500 times).
/// Each class of stream has its own count and cap (`[http]`), so a flood of anonymous menu
/// streams never refuses a kitchen display.
#[derive(Debug, Default)]
pub struct Live {
    staff: Arc<AtomicU32>,
    menu: Arc<AtomicU32>,
    order: Arc<AtomicU32>,
    staff_frames: Mutex<VecDeque<(u64, Bytes)>>,
}

/// Staff frames kept for streams that are a little behind.
const SHARED_FRAMES: usize = 64;

impl Live {
    /// The staff frame of `e`, built by the first stream that needs it.
    fn staff_frame(&self, e: &Event) -> Bytes {
        let lock = || {
            self.staff_frames
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some((_, f)) = lock().iter().find(|(seq, _)| *seq == e.seq) {
            return f.clone();
        }
        let data = json!({
            "seq": e.seq,
            "at": rfc3339(e.at),
            "type": e.kind.name(),
            "data": kind_json(&e.kind),
        });
        let f = frame(Some(e.seq), e.kind.name(), &data);
        let mut frames = lock();
        if !frames.iter().any(|(seq, _)| *seq == e.seq) {
            if frames.len() >= SHARED_FRAMES {
                frames.pop_front();
            }
            frames.push_back((e.seq, f.clone()));
        }
        f
    }

    /// Streams open now, of every class.
    pub fn open(&self) -> u32 {
        self.staff.load(Ordering::Relaxed)
            + self.menu.load(Ordering::Relaxed)
            + self.order.load(Ordering::Relaxed)
    }

    /// Streams open now per class: staff, menu, order.
    pub fn open_by_class(&self) -> (u32, u32, u32) {
        (
            self.staff.load(Ordering::Relaxed),
            self.menu.load(Ordering::Relaxed),
            self.order.load(Ordering::Relaxed),
        )
    }

    fn admit(&self, filter: &Filter, cfg: &crate::config::HttpSettings) -> Result<Slot, AppError> {
        let (count, max, what) = match filter {
            Filter::All => (&self.staff, cfg.max_sse_clients, "staff"),
            Filter::Menu => (&self.menu, cfg.max_menu_streams, "menu"),
            Filter::Order(_) => (&self.order, cfg.max_order_streams, "order"),
        };
        let prev = count.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(count));
        if prev >= max {
            drop(slot);
            let mut e = AppError::new(
                ErrorKind::Unavailable,
                "too_many_streams",
                format!("{max} {what} live streams are open; try again shortly"),
            );
            e.retry_after_secs = Some(5);
            return Err(e);
        }
        Ok(slot)
    }
}

/// One admitted stream; frees its place when dropped.
struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `?after=N`: resume after seq N (the same as the `Last-Event-ID` header, which wins).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// The last seq the client has seen.
    #[serde(default)]
    pub after: Option<u64>,
}

/// Which events a stream carries and how it shows them.
enum Filter {
    /// Everything, in full (staff).
    All,
    /// One order, reduced to what its customer may see.
    Order(String),
    /// Menu availability only (public).
    Menu,
}

impl Filter {
    fn frame(&self, live: &Live, e: &Event) -> Option<Bytes> {
        let data = match (self, &e.kind) {
            (Self::All, _) => return Some(live.staff_frame(e)),
            (Self::Order(id), EventKind::OrderPlaced(o)) if &o.id == id => {
                json!({ "seq": e.seq, "status": o.status.as_str(), "number": o.number })
            }
            (
                Self::Order(id),
                EventKind::StatusChanged {
                    order_id,
                    number,
                    to,
                    ..
                },
            ) if order_id == id => {
                json!({ "seq": e.seq, "status": to.as_str(), "number": number })
            }
            (
                Self::Order(id),
                EventKind::LinesChanged {
                    order_id, total, ..
                }
                | EventKind::LinesEdited {
                    order_id, total, ..
                },
            ) if order_id == id => {
                json!({ "seq": e.seq, "total": total })
            }
            (Self::Menu, EventKind::AvailabilityChanged { item_id, available }) => {
                json!({ "seq": e.seq, "item_id": item_id, "available": available })
            }
            (Self::Menu, EventKind::SoldOut { item_id }) => {
                json!({ "seq": e.seq, "item_id": item_id, "available": false })
            }
            (Self::Menu, EventKind::MenuReplaced { items }) => {
                json!({ "seq": e.seq, "items": items })
            }
            _ => return None,
        };
        Some(frame(Some(e.seq), e.kind.name(), &data))
    }
}

/// An event's own fields as JSON (an order in the API's order shape).
pub fn kind_json(kind: &EventKind) -> Value {
    if let EventKind::OrderPlaced(o) = kind {
        return json!({ "order": order_view(o) });
    }
    match serde_json::to_value(kind) {
        Ok(Value::Object(mut m)) => m.remove(kind.name()).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn frame(id: Option<u64>, event: &str, data: &Value) -> Bytes {
    let mut s = String::with_capacity(128);
    if let Some(id) = id {
        s.push_str("id: ");
        s.push_str(&id.to_string());
        s.push('\n');
    }
    s.push_str("event: ");
    s.push_str(event);
    s.push_str("\ndata: ");
    // serde_json never writes a raw newline inside a value.
    s.push_str(&data.to_string());
    s.push_str("\n\n");
    Bytes::from(s)
}

/// Where a stream starts: after `Last-Event-ID`, else after `?after=`, else after now.
fn resume_after(
    state: &ApiStateRef,
    headers: &HeaderMap,
    params: &StreamParams,
) -> Result<u64, AppError> {
    let header_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    AppError::new(
                        ErrorKind::BadRequest,
                        "invalid_last_event_id",
                        "Last-Event-ID must be the seq of an event (a whole number)",
                    )
                })?,
        ),
    };
    Ok(header_id
        .or(params.after)
        .unwrap_or_else(|| state.events.last_seq()))
}

/// `GET /events` (staff): every event.
pub async fn staff_events(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    headers: HeaderMap,
    Q(params): Q<StreamParams>,
) -> Result<Response, AppError> {
    let after = resume_after(&state, &headers, &params)?;
    open(&state, after, Filter::All)
}

/// `GET /menu/events` (public): availability changes for the ordering page.
pub async fn menu_events(
    State(state): State<ApiStateRef>,
    headers: HeaderMap,
    Q(params): Q<StreamParams>,
) -> Result<Response, AppError> {
    let after = resume_after(&state, &headers, &params)?;
    open(&state, after, Filter::Menu)
}

/// `GET /orders/{id}/events`: the order's progress, for staff or the customer who placed it.
pub async fn order_events(
    State(state): State<ApiStateRef>,
    MaybeStaff(staff): MaybeStaff,
    MaybeCustomer(customer): MaybeCustomer,
    headers: HeaderMap,
    PathParam(id): PathParam,
    Q(params): Q<StreamParams>,
) -> Result<Response, AppError> {
    let after = resume_after(&state, &headers, &params)?;
    check_order_key_shape(&headers)?;
    let rtx = state.store.read()?;
    let stored = dom::get(&rtx, &id)?.ok_or_else(|| AppError::not_found("order"))?;
    drop(rtx);
    if !may_read(
        &state,
        staff.is_some(),
        customer.as_ref().map(|(_, c)| c.phone.as_str()),
        &headers,
        &stored.order,
    ) {
        return Err(
            if staff.is_none() && customer.is_none() && !headers.contains_key(ORDER_KEY) {
                AppError::unauthorized()
            } else {
                AppError::not_found("order")
            },
        );
    }
    open(&state, after, Filter::Order(stored.order.id))
}

/// The header a customer presents the order key in (given when the order was placed).
pub const ORDER_KEY: &str = "x-order-key";

/// A present `X-Order-Key` must look like one (32 lower-case hex digits), whoever sends it.
pub fn check_order_key_shape(headers: &HeaderMap) -> Result<(), AppError> {
    match headers.get(ORDER_KEY) {
        None => Ok(()),
        Some(v)
            if v.to_str().is_ok_and(|k| {
                k.len() == 32
                    && k.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }) =>
        {
            Ok(())
        }
        Some(_) => Err(AppError::new(
            ErrorKind::BadRequest,
            "invalid_order_key",
            "X-Order-Key must be the 32 hex digits given when the order was placed",
        )),
    }
}

/// Whether the caller may read this order: staff; the verified customer whose phone placed it;
/// or whoever holds the order's key (given only to the phone that placed it). Others — another
/// guest at the same table included — cannot tell the order exists.
pub fn may_read(
    state: &ApiStateRef,
    staff: bool,
    customer_phone: Option<&str>,
    headers: &HeaderMap,
    order: &orderd_protocol::Order,
) -> bool {
    if staff {
        return true;
    }
    if order.source != OrderSource::Customer {
        return false;
    }
    if let Some(phone) = customer_phone
        && order.customer_phone.as_deref() == Some(phone)
    {
        return true;
    }
    headers
        .get(ORDER_KEY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| crate::domain::otp::check_order_key(&state.otp_key, &order.id, k))
}

/// The header carrying the event seq a snapshot (menu, active orders, one order) reflects: a
/// live stream resumed after it misses nothing.
pub const EVENT_SEQ: &str = "x-event-seq";

/// Adds [`EVENT_SEQ`] to a response.
pub fn with_seq(seq: u64, resp: impl IntoResponse) -> Response {
    let mut resp = resp.into_response();
    resp.headers_mut().insert(EVENT_SEQ, HeaderValue::from(seq));
    resp
}

fn open(state: &ApiStateRef, after: u64, filter: Filter) -> Result<Response, AppError> {
    let cfg = &state.settings.http;
    let slot = state.live.admit(&filter, cfg)?;
    let sub = state.events.subscribe(after + 1);
    let (tx, rx) = mpsc::channel(cfg.sse_buffer_events as usize);
    let (end_tx, end_rx) = oneshot::channel();
    let hello = frame(
        None,
        "hello",
        &json!({ "after": after, "last_seq": state.events.last_seq() }),
    );
    let _ = tx.try_send(Bytes::from_static(b"retry: 2000\n\n"));
    let _ = tx.try_send(hello);
    if after > state.events.last_seq() {
        // The client saw events this box does not have (it was restored from a backup).
        let _ = tx.try_send(frame(None, "reset", &json!({ "reason": "unknown_seq" })));
    }
    tokio::spawn(pump(Arc::clone(state), sub, filter, tx, end_tx, slot));
    let body = futures_util::stream::unfold((rx, Some(end_rx)), |(mut rx, mut end)| async move {
        if let Some(b) = rx.recv().await {
            return Some((Ok::<_, Infallible>(b), (rx, end)));
        }
        let b = end.take()?.await.ok()?;
        Some((Ok(b), (rx, None)))
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// Follows the log for one client until it goes away, falls behind, or the daemon stops.
async fn pump(
    state: ApiStateRef,
    mut sub: crate::events::Subscription,
    filter: Filter,
    tx: mpsc::Sender<Bytes>,
    end_tx: oneshot::Sender<Bytes>,
    _slot: Slot,
) {
    let heartbeat = state.settings.http.sse_heartbeat;
    let stall = state.settings.http.sse_stall;
    let mut shutdown = state.shutdown.clone();
    let mut expected = sub.position();
    // The last seq the client has been handed (what it resumes after).
    let mut handed = expected - 1;
    let reason = loop {
        let frame = tokio::select! {
            r = sub.next() => match r {
                Ok(ev) => {
                    if ev.seq != expected
                        && tx.send(frame(None, "reset", &json!({ "reason": "pruned" }))).await.is_err()
                    {
                        return;
                    }
                    expected = ev.seq + 1;
                    let f = filter.frame(&state.live, &ev).map(|f| (f, ev.seq));
                    if f.is_none() {
                        handed = ev.seq;
                    }
                    f
                }
                Err(_) => break "shutting_down",
            },
            () = tokio::time::sleep(heartbeat) => Some((Bytes::from_static(b": heartbeat\n\n"), handed)),
            () = tx.closed() => return,
            () = shutdown.wait() => break "shutting_down",
        };
        if let Some((f, seq)) = frame {
            // A full buffer is a burst or a slow client: wait a while for room, then cut.
            match tx.try_send(f) {
                Ok(()) => handed = seq,
                Err(mpsc::error::TrySendError::Full(f)) => {
                    tokio::select! {
                        r = tokio::time::timeout(stall, tx.send(f)) => match r {
                            Ok(Ok(())) => handed = seq,
                            Ok(Err(_)) => return,
                            Err(_) => break "slow_client",
                        },
                        () = shutdown.wait() => break "shutting_down",
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    };
    if reason == "slow_client" {
        state.metrics.sse_cut.inc();
    }
    let _ = end_tx.send(frame(
        None,
        "end",
        &json!({ "reason": reason, "resume_after": handed }),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> Event {
        Event {
            version: orderd_protocol::FORMAT_VERSION,
            seq,
            at: 1_795_348_800_000,
            kind: EventKind::SoldOut {
                item_id: "espresso".into(),
            },
        }
    }

    #[test]
    fn a_staff_frame_is_built_once_and_shared() {
        let live = Live::default();
        let a = live.staff_frame(&event(7));
        let b = live.staff_frame(&event(7));
        // The same allocation: the second stream got the first one's bytes.
        assert_eq!(a.as_ptr(), b.as_ptr());
        let text = std::str::from_utf8(&a).unwrap();
        assert!(
            text.starts_with("id: 7\nevent: sold_out\ndata: {"),
            "{text}"
        );
        assert!(text.ends_with("}\n\n") && text.contains("\"item_id\":\"espresso\""));
        // Bounded: old frames are dropped, and rebuilt equal if a late stream asks.
        for seq in 8..8 + SHARED_FRAMES as u64 {
            live.staff_frame(&event(seq));
        }
        assert_eq!(live.staff_frames.lock().unwrap().len(), SHARED_FRAMES);
        let again = live.staff_frame(&event(7));
        assert_ne!(again.as_ptr(), a.as_ptr());
        assert_eq!(again, a);
    }
}
