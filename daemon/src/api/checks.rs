//! Check endpoints: the table's check, payments, discounts, comps and voids with a manager's
//! PIN, refunds, transfers, merges and splits, the printed bill, the guest's running bill, the
//! day's X and Z reports, the cash drawer, and manager PINs.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{
    Admin, Body, MaybeCustomer, MaybeStaff, PathParam, Q, Staff, idempotency_key,
};
use super::{ApiStateRef, live};
use crate::auth::{Role, Session};
use crate::domain::checks::{
    self as dom, Approval, CheckState, NewDiscount, NewPayment, NewRefund, NewVoid, StoredCheck,
};
use crate::domain::reports::{self, NewCash};
use crate::domain::{Rules, id_text, rfc3339};
use crate::error::Commit as _;
use crate::error::{AppError, ErrorKind};

/// The JSON shape of a check: its state, its lines as billed now, and every figure.
pub fn check_view(c: &StoredCheck, rules: &Rules) -> Value {
    let b = dom::bill(c, rules);
    let cash_due = rules.billing.round_cash(b.balance);
    json!({
        "id": c.check.id,
        "number": c.check.number,
        "business_day": c.check.day,
        "state": c.state.as_str(),
        "type": c.order_type.as_str(),
        "table_id": c.table_id,
        "table_label": c.table_label,
        "opened_by": c.opened_by,
        "opened_at": rfc3339(c.opened_at),
        "covers": c.covers,
        "orders": c.orders.iter().map(|o| id_text(*o)).collect::<Vec<_>>(),
        "lines": b.lines,
        "subtotal": b.subtotal,
        "discounts": b.discounts,
        "comps": b.comps,
        "voids": b.voids,
        "total": b.total,
        "vat": b.vat,
        "paid": b.paid,
        "tips": b.tips,
        "rounding": b.rounding,
        "refunded": b.refunded,
        "balance": b.balance,
        "cash_due": cash_due,
        "payments": c.payments.iter().map(|p| {
            let mut v = serde_json::to_value(&p.fact).unwrap_or(Value::Null);
            v["at"] = json!(rfc3339(p.at));
            v
        }).collect::<Vec<_>>(),
        "adjustments": c.adjustments.iter().map(|a| {
            let mut v = serde_json::to_value(&a.fact).unwrap_or(Value::Null);
            v["at"] = json!(rfc3339(a.at));
            v
        }).collect::<Vec<_>>(),
        "refunds": c.refunds.iter().map(|r| {
            let mut v = serde_json::to_value(&r.fact).unwrap_or(Value::Null);
            v["at"] = json!(rfc3339(r.at));
            v
        }).collect::<Vec<_>>(),
        "moves": c.moves.iter().map(|m| json!({
            "what": m.what, "other_check": m.other, "table_id": m.table_id,
            "lines": m.lines, "actor": m.actor, "at": rfc3339(m.at),
        })).collect::<Vec<_>>(),
        "bill_prints": c.bill_prints,
        "bill_requested_at": c.bill_requested_at.map(rfc3339),
        "closed_at": c.closed_at.map(rfc3339),
        "closed_by": c.closed_by,
        "void_reason": c.void_reason,
    })
}

fn check_id(s: &str) -> Result<u64, AppError> {
    s.parse::<u64>()
        .ok()
        .filter(|&id| id > 0)
        .ok_or_else(|| AppError::not_found("check"))
}

/// A manager's approval as sent: who approves, and their PIN.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalReq {
    /// The approving admin's username.
    pub manager: String,
    /// Their PIN (4-8 digits).
    pub pin: String,
}

fn pin_refused() -> AppError {
    AppError::new(
        ErrorKind::Forbidden,
        "approval_refused",
        "wrong manager or PIN",
    )
}

/// Who does it and who approved it. An admin approves their own; a staff user needs an
/// admin's PIN, checked here (throttled like sign-in, reserved before the hash, compared in
/// constant time) so the writer never waits for argon2.
async fn approve(
    state: &ApiStateRef,
    session: &Session,
    approval: Option<ApprovalReq>,
    peer: std::net::IpAddr,
) -> Result<Approval, AppError> {
    if session.role == Role::Admin {
        return Ok(Approval {
            actor: session.username.clone(),
            approved_by: session.username.clone(),
        });
    }
    let Some(a) = approval else {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            "approval_required",
            "a manager must approve this: send approval {manager, pin}",
        ));
    };
    if a.manager.len() > 64 || a.pin.len() > 16 {
        return Err(pin_refused());
    }
    let now = state.now_ms();
    let permit = state
        .pin_throttle
        .reserve(&a.manager.to_lowercase(), peer, now)
        .map_err(|secs| AppError {
            retry_after_secs: Some(secs),
            ..AppError::new(
                ErrorKind::TooManyRequests,
                "too_many_attempts",
                format!("too many wrong PINs; try again in {secs} s"),
            )
        })?;
    let (hash, is_admin) = {
        let rtx = state.store.read()?;
        let user = crate::auth::get_user(&rtx, &a.manager)?;
        let hash = crate::auth::get_pin(&rtx, &a.manager)?;
        (hash, user.is_some_and(|u| u.role == Role::Admin))
    };
    let known = hash.is_some() && is_admin;
    let hash = hash.unwrap_or_else(|| crate::auth::dummy_hash().to_owned());
    let pin = a.pin;
    let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&hash, &pin))
        .await
        .unwrap_or(false);
    if !(ok && known) {
        permit.fail(state.now_ms());
        tracing::warn!(manager = %a.manager, by = %session.username, "approval refused");
        return Err(pin_refused());
    }
    permit.succeed(state.now_ms());
    Ok(Approval {
        actor: session.username.clone(),
        approved_by: a.manager,
    })
}

/// `GET /checks?state=open|closed&day=YYYY-MM-DD`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `open` (default) or `all` of a day.
    #[serde(default)]
    pub state: Option<String>,
    /// The business day (for `all`), default today.
    #[serde(default)]
    pub day: Option<String>,
}

/// `GET /checks`: the open checks, or every check of a day.
pub async fn list(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    Q(p): Q<ListParams>,
) -> Result<Json<Value>, AppError> {
    let day = match &p.day {
        Some(d) => crate::domain::parse_date(d)
            .map(crate::domain::day_number)
            .ok_or_else(|| AppError::invalid("day", "YYYY-MM-DD"))?,
        None => state.rules.business_day(state.now_ms()),
    };
    let rtx = state.store.read()?;
    let checks = match p.state.as_deref() {
        None | Some("open") => dom::open_checks(&rtx)?,
        Some("all") => dom::of_day(&rtx, day, 1000)?,
        Some(_) => return Err(AppError::invalid("state", "open or all")),
    };
    let data: Vec<Value> = checks.iter().map(|c| check_view(c, &state.rules)).collect();
    Ok(Json(json!({ "data": data })))
}

/// `GET /checks/{id}`.
pub async fn get_one(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    PathParam(id): PathParam,
) -> Result<Json<Value>, AppError> {
    let id = check_id(&id)?;
    let rtx = state.store.read()?;
    let c = dom::get(&rtx, id)?.ok_or_else(|| AppError::not_found("check"))?;
    Ok(Json(check_view(&c, &state.rules)))
}

/// `POST /orders/{id}/check`: the order's check (a takeaway or delivery order's is made now).
pub async fn of_order(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
) -> Result<Json<Value>, AppError> {
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let c = state
        .writer
        .run(move |tx| dom::for_order(tx, &rules, &id, &actor))
        .await?;
    Ok(Json(check_view(&c, &state.rules)))
}

/// Body of `POST /checks/{id}/covers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoversReq {
    /// Guests (0-999).
    pub covers: u32,
}

/// `POST /checks/{id}/covers`.
pub async fn set_covers(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    PathParam(id): PathParam,
    Body(req): Body<CoversReq>,
) -> Result<Json<Value>, AppError> {
    let id = check_id(&id)?;
    let c = state
        .writer
        .run(move |tx| dom::set_covers(tx, id, req.covers))
        .await?;
    Ok(Json(check_view(&c, &state.rules)))
}

/// `POST /checks/{id}/payments`: one payment per `Idempotency-Key`; never past the balance.
pub async fn pay(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
    headers: HeaderMap,
    Body(req): Body<NewPayment>,
) -> Result<Response, AppError> {
    let id = check_id(&id)?;
    req.check_shape(&state.rules.billing)?;
    let key = idempotency_key(&headers)?;
    let rules = Arc::clone(&state.rules);
    let actor = session.username.clone();
    let scope = format!("staff:{}", session.username);
    let paid = state
        .writer
        .run(move |tx| {
            dom::pay(
                tx,
                &rules,
                id,
                &req,
                &actor,
                key.as_deref().map(|k| (k, scope.as_str())),
            )
        })
        .await?;
    if !paid.replayed {
        tracing::info!(check = paid.check.check.id, amount = paid.payment.amount, method = %paid.payment.method, "payment recorded");
    }
    let body = json!({
        "payment": paid.payment,
        "check": check_view(&paid.check, &state.rules),
    });
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if paid.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// Body of `POST /checks/{id}/discounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscountReq {
    /// A check line id, or none for the whole check.
    #[serde(default)]
    pub line: Option<u32>,
    /// Percent off in basis points (1-10000).
    #[serde(default)]
    pub percent_bp: Option<u32>,
    /// Minor units off.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Give the line away (at zero).
    #[serde(default)]
    pub comp: bool,
    /// Why.
    pub reason: String,
    /// A manager's approval (staff users).
    #[serde(default)]
    pub approval: Option<ApprovalReq>,
}

/// `POST /checks/{id}/discounts`: a discount or comp (staff need a manager's PIN).
pub async fn discount(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    PathParam(id): PathParam,
    Body(req): Body<DiscountReq>,
) -> Result<Json<Value>, AppError> {
    let id = check_id(&id)?;
    let d = NewDiscount {
        line: req.line,
        percent_bp: req.percent_bp,
        amount: req.amount,
        comp: req.comp,
        reason: req.reason,
    };
    d.check_shape()?;
    let who = approve(&state, &session, req.approval, peer.ip()).await?;
    let rules = Arc::clone(&state.rules);
    let c = state
        .writer
        .run(move |tx| dom::discount(tx, &rules, id, &d, &who))
        .await?;
    Ok(Json(check_view(&c, &state.rules)))
}

/// Body of `POST /checks/{id}/voids`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidReq {
    /// The check line.
    pub line: u32,
    /// Units (default all).
    #[serde(default)]
    pub quantity: Option<u32>,
    /// Why.
    pub reason: String,
    /// A manager's approval (staff users).
    #[serde(default)]
    pub approval: Option<ApprovalReq>,
}

/// `POST /checks/{id}/voids`: voids units of a line (staff need a manager's PIN).
pub async fn void_line(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    PathParam(id): PathParam,
    Body(req): Body<VoidReq>,
) -> Result<Json<Value>, AppError> {
    let id = check_id(&id)?;
    dom::check_reason(&req.reason)?;
    let who = approve(&state, &session, req.approval, peer.ip()).await?;
    let v = NewVoid {
        line: req.line,
        quantity: req.quantity,
        reason: req.reason,
    };
    let rules = Arc::clone(&state.rules);
    let c = state
        .writer
        .run(move |tx| dom::void_line(tx, &rules, id, &v, &who))
        .await?;
    Ok(Json(check_view(&c, &state.rules)))
}

/// Body of `POST /checks/{id}/void` and of refunds' approval-only calls.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidCheckReq {
    /// Why.
    pub reason: String,
    /// A manager's approval (staff users).
    #[serde(default)]
    pub approval: Option<ApprovalReq>,
}

/// `POST /checks/{id}/void`: voids a whole unpaid check.
pub async fn void_check(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    PathParam(id): PathParam,
    Body(req): Body<VoidCheckReq>,
) -> Result<Json<Value>, AppError> {
    let id = check_id(&id)?;
    dom::check_reason(&req.reason)?;
    let who = approve(&state, &session, req.approval, peer.ip()).await?;
    let rules = Arc::clone(&state.rules);
    let reason = req.reason;
    let c = state
        .writer
        .run(move |tx| dom::void_check(tx, &rules, id, &reason, &who))
        .await?;
    Ok(Json(check_view(&c, &state.rules)))
}

/// Body of `POST /checks/{id}/refunds`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundReq {
    /// Minor units back.
    pub amount: i64,
    /// Method the money goes back by.
    pub method: String,
    /// Why.
    pub reason: String,
    /// A manager's approval (staff users).
    #[serde(default)]
    pub approval: Option<ApprovalReq>,
}

/// `POST /checks/{id}/refunds`: money back on a settled check (staff need a manager's PIN).
pub async fn refund(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    PathParam(id): PathParam,
    Body(req): Body<RefundReq>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let id = check_id(&id)?;
    dom::check_reason(&req.reason)?;
    if req.amount <= 0 || req.amount > dom::MAX_AMOUNT {
        return Err(AppError::invalid("amount", "1 to 10^12 minor units"));
    }
    let who = approve(&state, &session, req.approval, peer.ip()).await?;
    let r = NewRefund {
        amount: req.amount,
        method: req.method,
        reason: req.reason,
    };
    let rules = Arc::clone(&state.rules);
    let c = state
        .writer
        .run(move |tx| dom::refund(tx, &rules, id, &r, &who))
        .await?;
    Ok((StatusCode::CREATED, Json(check_view(&c, &state.rules))))
}

/// Body of `POST /checks/{id}/transfer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferReq {
    /// The table to move to.
    pub table_id: String,
    /// Line ids to move; none moves the whole check.
    #[serde(default)]
    pub lines: Vec<u32>,
}

/// `POST /checks/{id}/transfer`: the whole check, or chosen lines, to another table.
pub async fn transfer(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
    Body(req): Body<TransferReq>,
) -> Result<Json<Value>, AppError> {
    let id = check_id(&id)?;
    if req.lines.len() > dom::MAX_LINES {
        return Err(AppError::invalid("lines", "too many lines"));
    }
    if req.table_id.is_empty() || req.table_id.chars().count() > 64 {
        return Err(AppError::invalid("table_id", "1-64 characters"));
    }
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let c = state
        .writer
        .run(move |tx| dom::transfer(tx, &rules, id, &req.table_id, &req.lines, &actor))
        .await?;
    Ok(Json(check_view(&c, &state.rules)))
}

/// Body of `POST /checks/{id}/merge`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeReq {
    /// The check merged into this one.
    pub check_id: u64,
}

/// `POST /checks/{id}/merge`: another check's lines and payments join this one.
pub async fn merge(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
    Body(req): Body<MergeReq>,
) -> Result<Json<Value>, AppError> {
    let id = check_id(&id)?;
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let c = state
        .writer
        .run(move |tx| dom::merge(tx, &rules, id, req.check_id, &actor))
        .await?;
    Ok(Json(check_view(&c, &state.rules)))
}

/// Body of `POST /checks/{id}/split`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitReq {
    /// Line ids that form the new check.
    pub lines: Vec<u32>,
}

/// `POST /checks/{id}/split`: chosen lines become a check of their own at the same table.
pub async fn split(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
    Body(req): Body<SplitReq>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let id = check_id(&id)?;
    if req.lines.len() > dom::MAX_LINES {
        return Err(AppError::invalid("lines", "too many lines"));
    }
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let c = state
        .writer
        .run(move |tx| dom::split_lines(tx, &rules, id, &req.lines, &actor))
        .await?;
    Ok((StatusCode::CREATED, Json(check_view(&c, &state.rules))))
}

/// `GET /checks/{id}/split?parts=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvenParams {
    /// Parts (2-50).
    pub parts: u32,
}

/// `GET /checks/{id}/split`: the balance in N even parts, each paid on its own.
pub async fn even_split(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    PathParam(id): PathParam,
    Q(p): Q<EvenParams>,
) -> Result<Json<Value>, AppError> {
    let id = check_id(&id)?;
    if !(2..=50).contains(&p.parts) {
        return Err(AppError::invalid("parts", "2 to 50"));
    }
    let rtx = state.store.read()?;
    let c = dom::get(&rtx, id)?.ok_or_else(|| AppError::not_found("check"))?;
    let b = dom::bill(&c, &state.rules);
    Ok(Json(json!({
        "check_id": id,
        "balance": b.balance,
        "parts": dom::even_split(b.balance, p.parts),
    })))
}

/// Body of `POST /checks/{id}/print`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrintReq {
    /// `en` or `sq` (default: the guest's, else the site's).
    #[serde(default)]
    pub lang: Option<String>,
}

/// `POST /checks/{id}/print`: the guest check to the bill printer (a reprint says COPY).
pub async fn print(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
    Body(req): Body<PrintReq>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let id = check_id(&id)?;
    if let Some(l) = &req.lang
        && !matches!(l.as_str(), "en" | "sq")
    {
        return Err(AppError::invalid("lang", "en or sq"));
    }
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let c = state
        .writer
        .run(move |tx| dom::print_bill(tx, &rules, id, req.lang.as_deref(), &actor))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(check_view(&c, &state.rules))))
}

/// `POST /checks/{id}/close`: closes a check with nothing left to pay (all comped, say).
pub async fn close(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
) -> Result<Json<Value>, AppError> {
    let id = check_id(&id)?;
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let c = state
        .writer
        .run(move |tx| dom::close_settled(tx, &rules, id, &actor))
        .await?;
    Ok(Json(check_view(&c, &state.rules)))
}

/// The guest's view of their table's bill: lines and totals, no staff names.
fn guest_view(c: &StoredCheck, rules: &Rules) -> Value {
    let b = dom::bill(c, rules);
    json!({
        "number": c.check.number,
        "state": c.state.as_str(),
        "table_label": c.table_label,
        "lines": b.lines.iter().map(|l| json!({
            "name": l.name, "quantity": l.quantity, "net": l.net, "gross": l.gross,
        })).collect::<Vec<_>>(),
        "subtotal": b.subtotal,
        "discounts": b.discounts + b.comps,
        "total": b.total,
        "vat": b.vat,
        "paid": b.paid,
        "balance": b.balance,
        "bill_requested": c.bill_requested_at.is_some(),
        "currency": rules.currency,
        "minor_digits": rules.billing.minor_digits,
    })
}

fn guest_may_read(
    state: &ApiStateRef,
    staff: bool,
    customer: Option<&(String, crate::domain::otp::CustomerToken)>,
    headers: &HeaderMap,
    order_id: &str,
) -> Result<(), AppError> {
    live::check_order_key_shape(headers)?;
    if !staff && customer.is_none() && !headers.contains_key(live::ORDER_KEY) {
        return Err(AppError::unauthorized());
    }
    let rtx = state.store.read()?;
    let stored =
        crate::domain::orders::get(&rtx, order_id)?.ok_or_else(|| AppError::not_found("order"))?;
    let phone = customer.map(|(_, ct)| ct.phone.as_str());
    if !live::may_read(state, staff, phone, headers, &stored.order) {
        return Err(AppError::not_found("order"));
    }
    Ok(())
}

/// `GET /orders/{id}/bill`: the running bill of the order's check, for the guest holding the
/// order's key (or staff).
pub async fn guest_bill(
    State(state): State<ApiStateRef>,
    MaybeStaff(staff): MaybeStaff,
    MaybeCustomer(customer): MaybeCustomer,
    headers: HeaderMap,
    PathParam(id): PathParam,
) -> Result<Json<Value>, AppError> {
    guest_may_read(&state, staff.is_some(), customer.as_ref(), &headers, &id)?;
    let rtx = state.store.read()?;
    let c = dom::of_order(&rtx, &id)?.ok_or_else(|| AppError::not_found("check"))?;
    Ok(Json(guest_view(&c, &state.rules)))
}

/// Body of `POST /orders/{id}/bill-request`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillRequestReq {
    /// The guest's language (`en`, `sq`).
    #[serde(default)]
    pub lang: Option<String>,
}

/// `POST /orders/{id}/bill-request`: the guest asks for the bill; the waiter is alerted.
pub async fn request_bill(
    State(state): State<ApiStateRef>,
    MaybeStaff(staff): MaybeStaff,
    MaybeCustomer(customer): MaybeCustomer,
    headers: HeaderMap,
    PathParam(id): PathParam,
    Body(req): Body<BillRequestReq>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    guest_may_read(&state, staff.is_some(), customer.as_ref(), &headers, &id)?;
    if let Some(l) = &req.lang
        && !matches!(l.as_str(), "en" | "sq")
    {
        return Err(AppError::invalid("lang", "en or sq"));
    }
    let c = state
        .writer
        .run(move |tx| dom::request_bill(tx, &id, req.lang.as_deref()))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(guest_view(&c, &state.rules))))
}

/// `GET /tables/status`: every table as free, occupied (minutes seated, check total), bill
/// printed, or paid (its last check settled in the last 15 minutes and no new one since).
pub async fn table_status(
    State(state): State<ApiStateRef>,
    _staff: Staff,
) -> Result<Json<Value>, AppError> {
    let now = state.now_ms();
    let rtx = state.store.read()?;
    let tables = crate::domain::tables::list(&rtx)?;
    let open = dom::open_checks(&rtx)?;
    let today = state.rules.business_day(now);
    let recent = dom::of_day(&rtx, today, 1000)?;
    let data: Vec<Value> = tables
        .iter()
        .map(|t| {
            let mine: Vec<&StoredCheck> = open
                .iter()
                .filter(|c| c.table_id.as_deref() == Some(t.id.as_str()))
                .collect();
            if let Some(first) = mine.iter().min_by_key(|c| c.opened_at) {
                let total: i64 = mine.iter().map(|c| dom::bill(c, &state.rules).total).sum();
                let balance: i64 = mine
                    .iter()
                    .map(|c| dom::bill(c, &state.rules).balance)
                    .sum();
                let printed = mine.iter().all(|c| c.bill_prints > 0);
                return json!({
                    "id": t.id, "label": t.label, "zone": t.zone,
                    "status": if printed { "bill_printed" } else { "occupied" },
                    "checks": mine.iter().map(|c| c.check.id).collect::<Vec<_>>(),
                    "minutes_seated": now.saturating_sub(first.opened_at) / 60_000,
                    "total": total,
                    "balance": balance,
                    "bill_requested": mine.iter().any(|c| c.bill_requested_at.is_some()),
                });
            }
            let paid = recent.iter().any(|c| {
                c.table_id.as_deref() == Some(t.id.as_str())
                    && c.state == CheckState::Closed
                    && c.closed_at
                        .is_some_and(|at| now.saturating_sub(at) < 15 * 60_000)
            });
            json!({
                "id": t.id, "label": t.label, "zone": t.zone,
                "status": if paid { "paid" } else { "free" },
                "checks": [], "minutes_seated": null, "total": 0, "balance": 0,
                "bill_requested": false,
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `GET /billing`: what the pages need to take payments (methods, reasons, rounding).
pub async fn settings(
    State(state): State<ApiStateRef>,
    _staff: Staff,
) -> Result<Json<Value>, AppError> {
    let b = &state.rules.billing;
    Ok(Json(json!({
        "currency": state.rules.currency,
        "minor_digits": b.minor_digits,
        "cash_rounding": b.cash_rounding,
        "payment_methods": b.methods,
        "reasons": b.reasons,
    })))
}

/// `GET /reports/x?day=YYYY-MM-DD`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XParams {
    /// The business day (default: the one payments count in now).
    #[serde(default)]
    pub day: Option<String>,
}

/// `GET /reports/x` (admin): a day's figures now.
pub async fn x_report(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    Q(p): Q<XParams>,
) -> Result<Json<Value>, AppError> {
    let rtx = state.store.read()?;
    let day = match &p.day {
        Some(d) => crate::domain::parse_date(d)
            .map(crate::domain::day_number)
            .ok_or_else(|| AppError::invalid("day", "YYYY-MM-DD"))?,
        None => reports::current_day(&rtx, &state.rules, state.now_ms())?,
    };
    let f = reports::x_report(&rtx, &state.rules, day)?;
    Ok(Json(serde_json::to_value(f).unwrap_or(Value::Null)))
}

/// Body of `POST /reports/z`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZReq {
    /// Close the day although checks are open (they are listed on it).
    #[serde(default)]
    pub force_reason: Option<String>,
}

/// `POST /reports/z` (admin): closes the oldest open business day.
pub async fn close_day(
    State(state): State<ApiStateRef>,
    Admin(session): Admin,
    Body(req): Body<ZReq>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let z = state
        .writer
        .run(move |tx| reports::close_day(tx, &rules, &actor, req.force_reason.as_deref()))
        .await?;
    tracing::info!(
        number = z.number,
        day = z.figures.business_day,
        net = z.figures.net,
        "day closed (Z)"
    );
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(z).unwrap_or(Value::Null)),
    ))
}

/// `GET /reports/z` (admin): the Z reports, newest first.
pub async fn z_list(
    State(state): State<ApiStateRef>,
    _admin: Admin,
) -> Result<Json<Value>, AppError> {
    let rtx = state.store.read()?;
    let list = reports::z_reports(&rtx, 400)?;
    Ok(Json(json!({ "data": list })))
}

/// `GET /reports/z/{number}` (admin): one Z report; `?format=csv` for CSV.
pub async fn z_one(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    PathParam(n): PathParam,
    Q(p): Q<FormatParams>,
) -> Result<Response, AppError> {
    let n: u32 = n.parse().map_err(|_| AppError::not_found("Z report"))?;
    let rtx = state.store.read()?;
    let z = reports::z_report(&rtx, n)?.ok_or_else(|| AppError::not_found("Z report"))?;
    match p.format.as_deref() {
        None | Some("json") => {
            Ok(Json(serde_json::to_value(z).unwrap_or(Value::Null)).into_response())
        }
        Some("csv") => {
            let mut resp = reports::z_csv(&z).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            Ok(resp)
        }
        Some(_) => Err(AppError::invalid("format", "json or csv")),
    }
}

/// `?format=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatParams {
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// `POST /cash` (admin): the opening float, cash paid in or out, or the count.
pub async fn cash(
    State(state): State<ApiStateRef>,
    Admin(session): Admin,
    Body(req): Body<NewCash>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let rules = Arc::clone(&state.rules);
    let actor = session.username;
    let fact = state
        .writer
        .run(move |tx| reports::cash(tx, &rules, &req, &actor))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(fact).unwrap_or(Value::Null)),
    ))
}

/// Body of `PUT /users/{username}/pin`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinReq {
    /// 4-8 digits.
    pub pin: String,
}

/// `PUT /users/{username}/pin` (admin): sets an admin's approval PIN.
pub async fn set_pin(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    PathParam(username): PathParam,
    Body(req): Body<PinReq>,
) -> Result<StatusCode, AppError> {
    crate::auth::check_pin(&req.pin)?;
    let pin = req.pin;
    let hash = tokio::task::spawn_blocking(move || crate::auth::hash_password(&pin))
        .await
        .map_err(|_| AppError::invalid("pin", "cannot be hashed"))??;
    state
        .writer
        .run(move |tx| crate::auth::set_pin(tx, &username, &hash))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
