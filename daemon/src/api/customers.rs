//! Customer verification and the customer's own orders: `POST /otp/request`,
//! `POST /otp/verify`, `GET /me/orders`, `DELETE /me/token`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiStateRef;
use super::extract::{Body, MaybeCustomer};
use super::views::order_view;
use crate::domain::orders::{self as dom, is_e164};
use crate::domain::otp::{self, Verified};
use crate::domain::outbox::Channel;
use crate::domain::{orders::table_by_token, rfc3339};
use crate::error::Commit as _;
use crate::error::{AppError, ErrorKind};

/// Body of `POST /otp/request`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpRequest {
    /// E.164 phone.
    pub phone: String,
    /// `whatsapp` or `telegram`.
    pub channel: String,
    /// `en` or `sq` (others fall back to English).
    #[serde(default)]
    pub lang: Option<String>,
    /// The table's QR token, when the customer came from a table.
    #[serde(default)]
    pub table_token: Option<String>,
}

/// Whether a messaging channel is set up on this box.
pub fn channel_enabled(state: &ApiStateRef, ch: Channel) -> bool {
    match ch {
        Channel::Whatsapp => state.settings.whatsapp.enabled,
        Channel::Telegram => state.settings.telegram.enabled,
    }
}

/// `POST /otp/request`: 202 with the expiry. Never says whether the phone is known.
pub async fn request(
    State(state): State<ApiStateRef>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Body(req): Body<OtpRequest>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    if !is_e164(&req.phone) {
        return Err(AppError::invalid(
            "phone",
            "an international number in E.164 form, such as +355691234567",
        ));
    }
    let channel = Channel::parse(&req.channel)
        .ok_or_else(|| AppError::invalid("channel", "must be whatsapp or telegram"))?;
    if !channel_enabled(&state, channel) {
        // How this box is set up, not a malformed request.
        return Err(AppError::new(
            ErrorKind::Conflict,
            "channel_unavailable",
            format!(
                "this restaurant does not send codes by {}",
                channel.as_str()
            ),
        )
        .with_details(json!({"field": "channel"})));
    }
    let lang = match req.lang.as_deref() {
        None => state.rules.default_language.clone(),
        Some(l) if l.len() <= 8 && l.bytes().all(|b| b.is_ascii_lowercase()) => l.to_owned(),
        Some(_) => {
            return Err(AppError::invalid(
                "lang",
                "a language code such as en or sq",
            ));
        }
    };
    if req
        .table_token
        .as_ref()
        .is_some_and(|t| t.chars().count() > 128)
    {
        return Err(AppError::invalid("table_token", "too long"));
    }
    let now = state.now_ms();
    let client = format!("otp:{}", peer.ip());
    if let Err(secs) = state.otp_clients.take(&client, now) {
        let mut e = AppError::new(
            ErrorKind::TooManyRequests,
            "too_many_requests",
            "too many code requests from this device; try again later",
        );
        e.retry_after_secs = Some(secs);
        return Err(e);
    }
    let cfg = state.settings.otp.clone();
    // The send budget over all phones and per number prefix, against pumping from many
    // addresses (`crate::throttle::Budget`).
    let prefix: String = req
        .phone
        .chars()
        .take(1 + cfg.prefix_digits as usize)
        .collect();
    if let Err(spent) = state.otp_budget.take(&prefix, now) {
        return Err(budget_spent(&state, spent, &cfg).await);
    }
    let key = state.otp_key;
    let phone = req.phone.clone();
    let table_token = req.table_token.clone();
    let issued = state
        .writer
        .run(move |tx| {
            let table_id = match &table_token {
                Some(token) => Some(
                    table_by_token(tx, token)?
                        .ok_or_else(|| {
                            AppError::new(
                                ErrorKind::Unauthorized,
                                "invalid_table_token",
                                "this table's QR code is no longer valid; scan the code on the table again",
                            )
                        })?
                        .id,
                ),
                None => None,
            };
            otp::request(tx, &cfg, &key, &phone, channel, &lang, table_id)
        })
        .await?;
    state.messaging.wake.notify_one();
    let mut answer = json!({
        "channel": channel.as_str(),
        "expires_at": rfc3339(issued.expires_at),
    });
    if let Some(link) = issued.tg_link {
        // The bot can write to a customer only after they open it; the link says which code.
        answer["deep_link"] = json!(format!(
            "https://t.me/{}?start={link}",
            state.settings.telegram.bot_username
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// The 429 for a spent code budget; the staff are alerted (once a window) when it is the
/// budget over all phones.
async fn budget_spent(
    state: &ApiStateRef,
    spent: crate::throttle::Spent,
    cfg: &crate::config::OtpConfig,
) -> AppError {
    use crate::throttle::Spent;
    let (secs, message) = match spent {
        Spent::Total(secs, alert) => {
            if alert {
                tracing::error!(
                    sends = cfg.max_sends_total,
                    window_secs = cfg.send_window_secs,
                    "one-time code budget spent: new code requests are refused until the window moves on"
                );
                alert_staff_budget(state, cfg).await;
            }
            (
                secs,
                "the restaurant has sent many codes just now; try again later or ask the staff to take your order",
            )
        }
        Spent::Key(secs) => (
            secs,
            "too many codes were sent to numbers like this one; try again later or ask the staff",
        ),
    };
    let mut e = AppError::new(ErrorKind::TooManyRequests, "too_many_codes", message);
    e.retry_after_secs = Some(secs);
    e
}

/// Queues the staff alert of a spent code budget, when staff alerts are set up.
async fn alert_staff_budget(state: &ApiStateRef, cfg: &crate::config::OtpConfig) {
    let tg = &state.settings.telegram;
    if !tg.enabled || tg.staff_chat_id == 0 {
        return;
    }
    let chat = tg.staff_chat_id.to_string();
    let lang = tg.staff_lang.clone();
    let vars = vec![
        ("sends".to_owned(), cfg.max_sends_total.to_string()),
        (
            "minutes".to_owned(),
            (cfg.send_window_secs / 60).to_string(),
        ),
    ];
    let queued = state
        .writer
        .run(move |tx| {
            crate::domain::outbox::enqueue(
                tx,
                Channel::Telegram,
                &chat,
                &lang,
                crate::domain::outbox::Message::Alert {
                    key: "alert_otp_budget".into(),
                    vars,
                },
            )
        })
        .await;
    if let Err(e) = queued {
        tracing::error!(error = %e.message, "the staff alert of the code budget could not be queued");
    }
    state.messaging.wake.notify_one();
}

/// Body of `POST /otp/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpVerify {
    /// E.164 phone.
    pub phone: String,
    /// The 6 digits.
    pub code: String,
}

/// `POST /otp/verify`: the customer token (shown once).
pub async fn verify(
    State(state): State<ApiStateRef>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Body(req): Body<OtpVerify>,
) -> Result<Json<Value>, AppError> {
    let now = state.now_ms();
    let client = format!("verify:{}", peer.ip());
    if let Err(secs) = state.otp_verifies.take(&client, now) {
        let mut e = AppError::new(
            ErrorKind::TooManyRequests,
            "too_many_requests",
            "too many code checks from this device; try again later",
        );
        e.retry_after_secs = Some(secs);
        return Err(e);
    }
    if !is_e164(&req.phone) {
        return Err(AppError::invalid(
            "phone",
            "an international number in E.164 form",
        ));
    }
    if req.code.len() != 6 || !req.code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::invalid("code", "the 6 digits of the code"));
    }
    let cfg = state.settings.otp.clone();
    let key = state.otp_key;
    let verified = state
        .writer
        .run(move |tx| otp::verify(tx, &cfg, &key, &req.phone, &req.code))
        .await?;
    match verified {
        Verified::Ok(token, ct) => Ok(Json(json!({
            "token": token,
            "phone": ct.phone,
            "table_id": ct.table_id,
            "expires_at": rfc3339(ct.expires_at),
        }))),
        // The code is a credential: a wrong, expired or used one is 401.
        Verified::Refused => Err(AppError::new(
            ErrorKind::Unauthorized,
            "invalid_code",
            "the code is wrong, expired or used up; request a new one",
        )),
    }
}

/// `GET /me/orders`: the verified customer's own orders, newest first (at most 50).
pub async fn my_orders(
    State(state): State<ApiStateRef>,
    MaybeCustomer(customer): MaybeCustomer,
) -> Result<Json<Value>, AppError> {
    let (_, ct) = customer.ok_or_else(AppError::unauthorized)?;
    let rtx = state.store.read()?;
    let data: Vec<Value> = dom::customer_orders(&rtx, &ct.phone, 50)?
        .iter()
        .map(order_view)
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `DELETE /me/token`: the customer signs out; the token stops working at once.
pub async fn revoke(
    State(state): State<ApiStateRef>,
    MaybeCustomer(customer): MaybeCustomer,
) -> Result<StatusCode, AppError> {
    let (token, _) = customer.ok_or_else(AppError::unauthorized)?;
    state.writer.run(move |tx| otp::revoke(tx, &token)).await?;
    Ok(StatusCode::NO_CONTENT)
}
