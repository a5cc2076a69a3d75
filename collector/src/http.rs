//! The collector's HTTP API: `POST /v1/batches` (a box's upload, site token), the reports
//! `GET /v1/summary` (head-office token) and `GET /v1/sites/{site}/summary` (head-office or
//! that site's token), and `GET /healthz`. Every refusal is `{"error":{"code","message"}}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use deadpool_postgres::Pool;
use orderd_protocol::upload::{Ack, Batch, JsonBatch, POSTCARD_MEDIA_TYPE};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use crate::config::Config;
use crate::ingest::{self, Stored};
use crate::project::Projector;
use crate::{reports, sites};

/// What the handlers share.
pub struct App {
    /// The database.
    pub pool: Pool,
    /// Folds stored events into the orders tables.
    pub projector: Arc<Projector>,
    /// Settings.
    pub cfg: Config,
    /// The head office's report token, if set.
    pub reports_token: Option<String>,
}

/// A refusal.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    fn unavailable(e: &anyhow::Error) -> Self {
        tracing::error!(error = %e, "database unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the collector cannot reach its database; retry later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({"code": self.code, "message": self.message});
        if let Some(d) = self.details {
            err["details"] = d;
        }
        (self.status, axum::Json(json!({ "error": err }))).into_response()
    }
}

/// Serves the collector on `listener` until `shutdown` resolves, then finishes the requests
/// under way (a batch in flight is stored or rolled back whole, never cut).
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/batches", post(batches))
        .route("/v1/summary", get(summary))
        .route("/v1/sites/{site}/summary", get(site_summary))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .with_state(app)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required",
    )
}

async fn site_of(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = bearer(headers).ok_or_else(unauthorized)?;
    sites::authenticate(&app.pool, token)
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(unauthorized)
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_batch", message)
}

async fn batches(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    match take_batch(&app, &headers, body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn take_batch(app: &App, headers: &HeaderMap, body: Body) -> Result<Response, Response> {
    let site = site_of(app, headers)
        .await
        .map_err(IntoResponse::into_response)?;
    let limit = app.cfg.max_batch_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a batch may have at most {limit} bytes; send smaller batches"),
        )
        .into_response()
    })?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (batch_site, box_id, events) = if json {
        let b: JsonBatch = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not a JSON batch: {e}")).into_response())?;
        b.check().map_err(|e| bad(e.to_string()).into_response())?;
        (b.site_id, b.box_id, b.events)
    } else {
        let b: Batch = postcard::from_bytes(&bytes)
            .map_err(|_| bad("not a postcard batch").into_response())?;
        // A compressed batch may not expand past ten times the body limit.
        let events = b
            .events(limit.saturating_mul(10))
            .map_err(|e| bad(e.to_string()).into_response())?;
        (b.site_id, b.box_id, events)
    };
    if batch_site != site {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_site",
            "this token uploads for another site",
        )
        .into_response());
    }
    if events.len() > app.cfg.max_batch_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            format!("at most {} events per batch", app.cfg.max_batch_events),
        )
        .into_response());
    }
    if box_id.is_empty() || box_id.len() > 64 {
        return Err(bad("box_id: 1 to 64 characters").into_response());
    }
    let stored = ingest::store(&app.pool, &site, &box_id, &events)
        .await
        .map_err(|e| ApiError::unavailable(&e).into_response())?;
    if matches!(stored, Stored::Acked(_)) {
        app.projector.wake();
    }
    match stored {
        Stored::Acked(seq) => {
            let ack = Ack { acked_seq: seq };
            Ok(if json {
                axum::Json(ack).into_response()
            } else {
                let body = postcard::to_allocvec(&ack).unwrap_or_default();
                ([(header::CONTENT_TYPE, POSTCARD_MEDIA_TYPE)], body).into_response()
            })
        }
        Stored::Gap { expected } => {
            let mut e = ApiError::new(
                StatusCode::CONFLICT,
                "gap",
                format!("this batch would leave a gap; resend from seq {expected}"),
            );
            e.details = Some(json!({ "expected_seq": expected }));
            Err(e.into_response())
        }
        Stored::OtherBox => Err(ApiError::new(
            StatusCode::CONFLICT,
            "box_mismatch",
            "another box already uploads for this site; register the new box as its own site",
        )
        .into_response()),
    }
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD`.
#[derive(Debug, Deserialize)]
pub struct Range {
    from: String,
    to: String,
}

fn check_range(r: &Range) -> Result<(), ApiError> {
    let ok = |d: &str| {
        d.len() == 10
            && d.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    if ok(&r.from) && ok(&r.to) && r.from <= r.to {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_range",
            "from and to are dates YYYY-MM-DD, from <= to",
        ))
    }
}

fn is_head_office(app: &App, headers: &HeaderMap) -> bool {
    match (&app.reports_token, bearer(headers)) {
        (Some(want), Some(got)) => bool::from(want.as_bytes().ct_eq(got.as_bytes())),
        _ => false,
    }
}

async fn summary(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(r): Query<Range>,
) -> Result<axum::Json<Value>, ApiError> {
    if !is_head_office(&app, &headers) {
        return Err(unauthorized());
    }
    check_range(&r)?;
    reports::summary(&app.pool, &app.projector, None, &r.from, &r.to)
        .await
        .map(axum::Json)
        .map_err(|e| ApiError::unavailable(&e))
}

async fn site_summary(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(site): Path<String>,
    Query(r): Query<Range>,
) -> Result<axum::Json<Value>, ApiError> {
    if !is_head_office(&app, &headers) {
        let own = site_of(&app, &headers).await?;
        if own != site {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_site",
                "a site token reads its own site only",
            ));
        }
    }
    check_range(&r)?;
    reports::summary(&app.pool, &app.projector, Some(&site), &r.from, &r.to)
        .await
        .map(axum::Json)
        .map_err(|e| ApiError::unavailable(&e))
}
