//! Order endpoints: place, read, list, search, change status, recall.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderd_protocol::{BumpAction, Order, OrderSource, OrderStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{
    Body, MaybeCustomer, MaybeStaff, PageParams, PathParam, Q, Staff, idempotency_key, paginated,
};
use super::views::order_view;
use super::{ApiStateRef, live};
use crate::domain::orders::{self as dom, Actor, EditLines, NewOrder};
use crate::domain::{parse_date, rfc3339};
use crate::error::Commit as _;
use crate::error::{AppError, ErrorKind};
use crate::metrics::TransitionLabels;

/// An order as stored, in the API's shape, with `stations_done`: the stations that bumped
/// their part (the expo view shows them), and `allergy`: its allergy note with the stations
/// that acknowledged it.
pub fn stored_view(s: &dom::StoredOrder) -> Value {
    let mut v = order_view(&s.order);
    if let Some(m) = v.as_object_mut() {
        m.insert(
            "stations_done".into(),
            s.stations_done.iter().map(|d| d.station.clone()).collect(),
        );
        m.insert("allergy".into(), allergy_view(s.allergy.as_ref()));
    }
    v
}

/// An allergy note in the API's shape: `{note, acked: [station]}`, or null.
fn allergy_view(a: Option<&dom::Allergy>) -> Value {
    a.map_or(Value::Null, |a| {
        json!({
            "note": a.note,
            "acked": a.acked.iter().map(|m| m.station.as_str()).collect::<Vec<_>>(),
        })
    })
}

/// `POST /orders`: by staff, or by a customer presenting a table token.
pub async fn create(
    State(state): State<ApiStateRef>,
    MaybeStaff(session): MaybeStaff,
    MaybeCustomer(customer): MaybeCustomer,
    headers: HeaderMap,
    Body(req): Body<NewOrder>,
) -> Result<Response, AppError> {
    if state.storage.refusing(|| state.store.file_bytes()) {
        state.metrics.storage_refused_orders.inc();
        return Err(AppError::new(
            ErrorKind::InsufficientStorage,
            "storage_full",
            "the box's disk is full: new orders are refused until space is freed; orders already placed can still be finished",
        ));
    }
    if state.upload.refusing(state.events.last_seq()) {
        state.metrics.upload_refused_orders.inc();
        let mut e = AppError::new(
            ErrorKind::Unavailable,
            "upload_backlog_full",
            "this box cannot reach the chain's collector and its upload backlog is full; orders resume when it catches up",
        );
        e.retry_after_secs = Some(60);
        return Err(e);
    }
    let key = idempotency_key(&headers)?;
    let actor = match (&session, customer) {
        (Some(s), _) => Actor {
            name: s.username.clone(),
            source: OrderSource::Staff,
            verified: None,
        },
        (None, Some((_, ct))) => Actor {
            name: "customer".into(),
            source: OrderSource::Customer,
            verified: Some((
                crate::domain::outbox::Contact {
                    phone: ct.phone,
                    channel: ct.channel,
                    lang: ct.lang,
                },
                ct.table_id,
            )),
        },
        (None, None) if req.table_token.is_some() => {
            if state.settings.otp_required {
                return Err(AppError::new(
                    ErrorKind::Unauthorized,
                    "verification_required",
                    "verify your phone first (POST /api/v1/otp/request, then /otp/verify) and send the customer token",
                ));
            }
            Actor {
                name: "customer".into(),
                source: OrderSource::Customer,
                verified: None,
            }
        }
        (None, None) => return Err(AppError::unauthorized()),
    };
    req.check_shape(&state.rules, actor.source)?;
    // A key belongs to its caller: the staff user, the verified phone, or the table.
    let scope = match (&session, &actor.verified, &req.table_token) {
        (Some(s), _, _) => format!("staff:{}", s.username),
        (None, Some((contact, _)), _) => format!("customer:{}", contact.phone),
        (None, None, Some(token)) => format!("table:{token}"),
        (None, None, None) => String::from("anonymous"),
    };
    let rules = Arc::clone(&state.rules);
    let placed = state
        .writer
        .run(move |tx| {
            dom::place(
                tx,
                &rules,
                &req,
                &actor,
                key.as_deref().map(|k| (k, scope.as_str())),
            )
        })
        .await?;
    if !placed.replayed {
        state.metrics.orders_created.inc();
        tracing::debug!(order_id = %placed.order.id, number = %placed.order.number, total = placed.order.total, "order placed");
    }
    // A new order has no station done; a replayed one is shown as it is now.
    let mut view = if placed.replayed {
        let rtx = state.store.read()?;
        dom::get(&rtx, &placed.order.id)?
            .map_or_else(|| order_view(&placed.order), |s| stored_view(&s))
    } else {
        let mut v = order_view(&placed.order);
        v["stations_done"] = json!([]);
        v["allergy"] = allergy_view(placed.allergy.as_ref());
        v
    };
    if session.is_none() {
        // The customer's key to follow this order (GET /orders/{id}, its live stream).
        view["order_key"] = json!(crate::domain::otp::order_key(
            &state.otp_key,
            &placed.order.id
        ));
    }
    let mut resp = (StatusCode::CREATED, Json(view)).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/v1/orders/{}", placed.order.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    if placed.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// `GET /orders/{id}`: staff, the verified customer who placed it, or whoever holds its
/// `X-Order-Key` (anyone else gets 404, so order ids cannot be probed). `X-Event-Seq` says
/// which event the answer reflects.
pub async fn get_one(
    State(state): State<ApiStateRef>,
    MaybeStaff(staff): MaybeStaff,
    MaybeCustomer(customer): MaybeCustomer,
    headers: HeaderMap,
    PathParam(id): PathParam,
) -> Result<Response, AppError> {
    live::check_order_key_shape(&headers)?;
    if staff.is_none() && customer.is_none() && !headers.contains_key(live::ORDER_KEY) {
        return Err(AppError::unauthorized());
    }
    let seq = state.events.last_seq();
    let rtx = state.store.read()?;
    let stored = dom::get(&rtx, &id)?.ok_or_else(|| AppError::not_found("order"))?;
    let phone = customer.as_ref().map(|(_, ct)| ct.phone.as_str());
    if !live::may_read(&state, staff.is_some(), phone, &headers, &stored.order) {
        return Err(AppError::not_found("order"));
    }
    Ok(live::with_seq(seq, Json(stored_view(&stored))))
}

/// `GET /orders/{id}/history`.
pub async fn status_history(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    PathParam(id): PathParam,
) -> Result<Json<Value>, AppError> {
    let rtx = state.store.read()?;
    let stored = dom::get(&rtx, &id)?.ok_or_else(|| AppError::not_found("order"))?;
    let data: Vec<Value> = stored
        .history
        .iter()
        .map(|h| {
            json!({
                "from": h.from.map(OrderStatus::as_str),
                "to": h.to.as_str(),
                "actor": h.actor,
                "at": rfc3339(h.at),
                "note": h.note,
                "recall": h.recall,
            })
        })
        .collect();
    Ok(Json(json!({ "order_id": stored.order.id, "data": data })))
}

/// Body of `POST /orders/{id}/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReq {
    /// Target status.
    pub status: String,
    /// Reason (required to cancel) or remark.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /orders/{id}/status`.
pub async fn set_status(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
    Body(req): Body<StatusReq>,
) -> Result<Json<Value>, AppError> {
    let to = OrderStatus::parse(&req.status).ok_or_else(|| {
        AppError::invalid("status", format!("unknown status {:?}", req.status)).with_details(
            json!({ "field": "status", "known": OrderStatus::ALL.map(OrderStatus::as_str) }),
        )
    })?;
    if req
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > state.rules.max_text)
    {
        return Err(AppError::invalid("note", "too long"));
    }
    let actor = session.username;
    let rules = Arc::clone(&state.rules);
    let order = state
        .writer
        .run(move |tx| dom::transition(tx, &rules, &id, to, req.note, &actor))
        .await?;
    state
        .metrics
        .transitions
        .get_or_create(&TransitionLabels {
            to: to.as_str().into(),
        })
        .inc();
    tracing::info!(order_id = %order.id, number = %order.number, status = to.as_str(), "order status changed");
    Ok(Json(order_view(&order)))
}

/// `PATCH /orders/{id}/items` (staff): change quantities, remove or add lines while the
/// kitchen has not finished; the kitchen gets the differences as `changed` tickets.
pub async fn edit_items(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
    Body(req): Body<EditLines>,
) -> Result<Json<Value>, AppError> {
    req.check_shape(&state.rules)?;
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let order = state
        .writer
        .run(move |tx| dom::edit_lines(tx, &rules, &id, &req, &actor))
        .await?;
    tracing::info!(order_id = %order.id, number = %order.number, "order lines changed");
    Ok(Json(order_view(&order)))
}

/// Body of `POST /orders/{id}/bump`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BumpReq {
    /// The station whose part is done (or taken back).
    pub station: String,
    /// `bump` (default), `recall` or `ack_allergy`.
    #[serde(default)]
    pub action: Option<String>,
}

/// `POST /orders/{id}/bump` (staff): a station's bump from the kitchen page, as a bump bar's:
/// the station's part is done; the order is ready when every station's is. `recall` takes the
/// station's bump back within the recall window; `ack_allergy` acknowledges the order's
/// allergy note, which a bump waits for.
pub async fn bump(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
    Body(req): Body<BumpReq>,
) -> Result<Json<Value>, AppError> {
    if !orderd_protocol::topics::is_valid_id(&req.station) {
        return Err(AppError::invalid("station", "a station id like \"grill\""));
    }
    let action = match req.action.as_deref() {
        None | Some("bump") => BumpAction::Bump,
        Some("recall") => BumpAction::Recall,
        Some("ack_allergy") => BumpAction::AckAllergy,
        Some(_) => return Err(AppError::invalid("action", "bump, recall or ack_allergy")),
    };
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let station = req.station;
    let order = state
        .writer
        .run(move |tx| dom::station_act(tx, &rules, &id, &station, action, &actor))
        .await?;
    let rtx = state.store.read()?;
    let stored = dom::get(&rtx, &order.id)?.ok_or_else(|| AppError::not_found("order"))?;
    Ok(Json(stored_view(&stored)))
}

/// `POST /orders/{id}/recall`: undo the last status change within the recall window.
pub async fn recall(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
) -> Result<Json<Value>, AppError> {
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let order = state
        .writer
        .run(move |tx| dom::recall(tx, &rules, &id, &actor))
        .await?;
    state
        .metrics
        .transitions
        .get_or_create(&TransitionLabels {
            to: "recall".into(),
        })
        .inc();
    Ok(Json(order_view(&order)))
}

#[allow(clippy::needless_pass_by_value)] // consumed by every caller
fn page_json(page: dom::Page<Order>, p: u32, limit: u32) -> Json<Value> {
    Json(paginated(
        page.data.iter().map(order_view).collect(),
        p,
        limit,
        page.total,
    ))
}

/// `GET /orders/left-open` (staff): orders not finished from business days before today,
/// oldest first (at most 200; `total` counts all). The kitchen views drop them when a new
/// business day starts; nothing closes them but staff.
pub async fn left_open(
    State(state): State<ApiStateRef>,
    _staff: Staff,
) -> Result<Json<Value>, AppError> {
    let today = state.rules.business_day(state.now_ms());
    let rtx = state.store.read()?;
    let active = dom::active(&rtx, 1, u32::MAX)?;
    let old: Vec<&dom::StoredOrder> = active
        .data
        .iter()
        .filter(|o| o.order.business_day < today)
        .collect();
    Ok(Json(json!({
        "data": old.iter().take(200).map(|o| stored_view(o)).collect::<Vec<_>>(),
        "total": old.len(),
    })))
}

/// `GET /orders/active`.
pub async fn active(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    Q(params): Q<PageParams>,
) -> Result<Response, AppError> {
    let (p, limit) = params.resolve(state.settings.limits.max_page_size)?;
    let seq = state.events.last_seq();
    let rtx = state.store.read()?;
    let page = dom::active(&rtx, p, limit)?;
    Ok(live::with_seq(
        seq,
        Json(paginated(
            page.data.iter().map(stored_view).collect(),
            p,
            limit,
            page.total,
        )),
    ))
}

/// `GET /orders/recent`: finished in the last 24 hours, newest first.
pub async fn recent(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    Q(params): Q<PageParams>,
) -> Result<Json<Value>, AppError> {
    let (p, limit) = params.resolve(state.settings.limits.max_page_size)?;
    let since = state.now_ms().saturating_sub(86_400_000);
    let rtx = state.store.read()?;
    Ok(page_json(dom::recent(&rtx, since, p, limit)?, p, limit))
}

/// Query of `GET /orders/history`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Business day `YYYY-MM-DD` (default: today).
    #[serde(default)]
    pub date: Option<String>,
    /// Page.
    #[serde(default)]
    pub page: Option<u32>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /orders/history?date=YYYY-MM-DD`.
pub async fn history(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    Q(params): Q<HistoryParams>,
) -> Result<Json<Value>, AppError> {
    let (p, limit) = PageParams {
        page: params.page,
        limit: params.limit,
    }
    .resolve(state.settings.limits.max_page_size)?;
    let day = match &params.date {
        Some(d) => parse_date(d)
            .map(crate::domain::day_number)
            .ok_or_else(|| AppError::invalid("date", "use YYYY-MM-DD"))?,
        None => state.rules.business_day(state.now_ms()),
    };
    let rtx = state.store.read()?;
    Ok(page_json(dom::by_day(&rtx, day, p, limit)?, p, limit))
}

/// Query of `GET /orders/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Number, short number, phone or name.
    pub q: String,
    /// Page.
    #[serde(default)]
    pub page: Option<u32>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /orders/search?q=`.
pub async fn search(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    Q(params): Q<SearchParams>,
) -> Result<Json<Value>, AppError> {
    let (p, limit) = PageParams {
        page: params.page,
        limit: params.limit,
    }
    .resolve(state.settings.limits.max_page_size)?;
    if params.q.trim().is_empty() || params.q.len() > 100 {
        return Err(AppError::invalid("q", "1 to 100 characters"));
    }
    let rtx = state.store.read()?;
    let page = dom::search(&rtx, &state.rules, state.now_ms(), &params.q, p, limit)?;
    Ok(page_json(page, p, limit))
}
