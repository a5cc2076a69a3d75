//! Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::ApiStateRef;
use super::extract::Staff;
use crate::error::AppError;

/// The OpenAPI 3 document of this API.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// `GET /api/v1/`: a small index that points to the API's description.
pub async fn index() -> Json<Value> {
    Json(json!({
        "name": "orderd",
        "version": env!("CARGO_PKG_VERSION"),
        "openapi": "/api/v1/openapi.json",
        "health": "/healthz",
        "ready": "/readyz",
        "pages": { "kitchen": "/kitchen", "staff": "/staff", "admin": "/admin" },
    }))
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: start-up finished, HTTP accepts connections and the writer commits (a
/// no-op round trip through it).
pub async fn readyz(State(state): State<ApiStateRef>) -> Result<Json<Value>, AppError> {
    if !state.ready.load(Ordering::Acquire) {
        return Err(AppError::unavailable());
    }
    if !state.accepting.load(Ordering::Acquire) {
        let mut e = AppError::new(
            crate::error::ErrorKind::Unavailable,
            "not_accepting",
            "the box cannot accept new connections (out of file descriptors); it recovers as connections close",
        );
        e.retry_after_secs = Some(5);
        return Err(e);
    }
    state.writer.ping().await?;
    Ok(Json(json!({
        "status": "ready",
        "event_seq": state.events.last_seq(),
    })))
}

/// `GET /api/v1/status` (staff).
pub async fn status(State(state): State<ApiStateRef>, _staff: Staff) -> Json<Value> {
    Json(state.status())
}

/// `GET /metrics` (Prometheus text format): with the configured bearer token, or from the box's
/// own address when none is configured (the day's business is in it).
pub async fn metrics(
    State(state): State<ApiStateRef>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    let allowed = match &state.metrics_token {
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.as_bytes()).into()
            }),
        None => super::serve::is_own(peer.ip()),
    };
    if !allowed {
        return Err(if state.metrics_token.is_some() {
            AppError::unauthorized()
        } else {
            AppError::new(
                crate::error::ErrorKind::Forbidden,
                "metrics_local_only",
                "/metrics answers only the box itself; set [http.metrics_token] to read it from elsewhere",
            )
        });
    }
    let m = &state.metrics;
    m.store_bytes.set(state.store.file_bytes() as i64);
    m.event_seq.set(state.events.last_seq() as i64);
    m.sse_open.set(i64::from(state.live.open()));
    let upload = state.upload.status(&state.events);
    crate::upload::set_gauges(&state, &upload);
    m.upload_acked_seq
        .set(i64::try_from(upload.acked_seq).unwrap_or(i64::MAX));
    if let Ok(rtx) = state.store.read()
        && let Ok(counts) = crate::domain::outbox::outcome_counts(&rtx)
    {
        for (ch, outcome, n) in counts {
            m.messages_stored
                .get_or_create(&crate::metrics::MessageLabels {
                    channel: ch.as_str().into(),
                    outcome: outcome.into(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    ))
}
