//! The HTTP API under `/api/v1` plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Every route is declared once in [`routes`], which builds the router; a test keeps that list
//! equal to the OpenAPI document served at `/api/v1/openapi.json` (`docs/openapi.json`).
//! Every failure is answered as `{"error":{"code","message","details"?}}` (see
//! [`crate::error::AppError`]); nothing a client sends can produce a 5xx.

pub mod analytics;
pub mod auth;
pub mod checks;
pub mod customers;
pub mod devices;
pub mod extract;
pub mod kitchen;
pub mod live;
pub mod menu;
pub mod notifications;
pub mod ops;
pub mod orders;
pub mod serve;
pub mod site;
pub mod tables;
pub mod views;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use serde_json::json;

use crate::auth::{Sessions, Throttle};
use crate::error::{AppError, ErrorKind};
use crate::metrics::RouteLabels;
use crate::shutdown::Shutdown;
use crate::state::{AppState, AppStateRef};
use crate::tls::Https;

/// What a handler may use: the application's shared state (through `Deref`), and what only
/// the HTTP layer holds: sessions and sign-in limits, the one-time codes' keys and limits, live
/// streams, and the handles of the background tasks the API talks to.
pub struct ApiState {
    /// The application's shared state.
    pub app: AppStateRef,
    /// Live sessions.
    pub sessions: Arc<Sessions>,
    /// Staff sign-in limits (reserved before the hash; `crate::throttle`).
    pub throttle: crate::throttle::Throttle,
    /// Manager-PIN limits, the same as sign-in's, counted apart.
    pub pin_throttle: crate::throttle::Throttle,
    /// The HTTPS listener, when `[http.tls]` is on.
    pub https: std::sync::OnceLock<Https>,
    /// The kitchen hub's shared state (device health, reprint wake-up).
    pub kitchen: Arc<crate::hub::Kitchen>,
    /// Key of the one-time codes' keyed hash (from the data directory, never in the store).
    pub otp_key: [u8; 32],
    /// OTP requests per client address.
    pub otp_clients: Throttle,
    /// The `/metrics` bearer token, if one is configured.
    pub metrics_token: Option<String>,
    /// Code checks per client address.
    pub otp_verifies: Throttle,
    /// Codes sent per window in all and per number prefix.
    pub otp_budget: crate::throttle::Budget,
    /// The message sender's shared state (wake-up, provider health).
    pub messaging: Arc<crate::messaging::Messaging>,
    /// The uploader's status and the backlog's order refusal.
    pub upload: Arc<crate::upload::UploadState>,
    /// Live streams (SSE) open now.
    pub live: live::Live,
    /// Resolves when shutdown begins (live streams end then).
    pub shutdown: Shutdown,
    /// The menu's item photos, in the data directory.
    pub photos: Arc<crate::photos::Photos>,
    /// Asked to restart (to apply the restaurant's settings): `orderd run` stops gracefully
    /// and starts again.
    pub restart: Arc<tokio::sync::Notify>,
}

impl std::ops::Deref for ApiState {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.app
    }
}

/// Shared handle to the HTTP layer's state.
pub type ApiStateRef = Arc<ApiState>;

impl ApiState {
    /// What `GET /api/v1/status` and `orderd status` show.
    pub fn status(&self) -> serde_json::Value {
        let (staff, menu, order) = self.live.open_by_class();
        crate::status::view(
            &self.app,
            &self.upload,
            self.https.get(),
            crate::status::Streams {
                open: self.live.open(),
                staff,
                menu,
                order,
            },
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(d) = self.details {
            body["error"]["details"] = d;
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Every route: method, path, handler. The router and the OpenAPI test both read this list.
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<ApiStateRef>)> {
    vec![
        ("POST", "/api/v1/auth/login", post(auth::login)),
        ("POST", "/api/v1/auth/logout", post(auth::logout)),
        ("GET", "/api/v1/users", get(auth::list_users)),
        ("POST", "/api/v1/users", post(auth::add_user)),
        ("GET", "/api/v1/events", get(live::staff_events)),
        ("GET", "/api/v1/menu", get(menu::get_menu)),
        ("GET", "/api/v1/menu/events", get(live::menu_events)),
        ("PUT", "/api/v1/menu", put(menu::put_menu)),
        ("GET", "/api/v1/menu/csv", get(menu::get_menu_csv)),
        (
            "PUT",
            "/api/v1/menu/csv",
            put(menu::put_menu_csv).layer(DefaultBodyLimit::max(menu::MENU_CSV_MAX_BYTES)),
        ),
        ("PATCH", "/api/v1/menu/items/{id}", patch(menu::patch_item)),
        (
            "PUT",
            "/api/v1/menu/items/{id}/photo",
            put(menu::put_photo).layer(DefaultBodyLimit::max(menu::PHOTO_MAX_BYTES)),
        ),
        (
            "DELETE",
            "/api/v1/menu/items/{id}/photo",
            delete(menu::delete_photo),
        ),
        (
            "POST",
            "/api/v1/menu/items/{id}/stock",
            post(menu::set_stock),
        ),
        ("GET", "/api/v1/tables", get(tables::list)),
        ("POST", "/api/v1/tables", post(tables::create)),
        ("GET", "/api/v1/tables/qr-sheet.svg", get(tables::qr_sheet)),
        ("DELETE", "/api/v1/tables/{id}", delete(tables::remove)),
        (
            "POST",
            "/api/v1/tables/{id}/rotate-token",
            post(tables::rotate),
        ),
        ("POST", "/api/v1/orders", post(orders::create)),
        ("GET", "/api/v1/orders/active", get(orders::active)),
        ("GET", "/api/v1/orders/left-open", get(orders::left_open)),
        ("GET", "/api/v1/orders/recent", get(orders::recent)),
        ("GET", "/api/v1/orders/history", get(orders::history)),
        ("GET", "/api/v1/orders/search", get(orders::search)),
        ("GET", "/api/v1/orders/{id}", get(orders::get_one)),
        ("GET", "/api/v1/orders/{id}/events", get(live::order_events)),
        (
            "GET",
            "/api/v1/orders/{id}/history",
            get(orders::status_history),
        ),
        (
            "POST",
            "/api/v1/orders/{id}/status",
            post(orders::set_status),
        ),
        ("POST", "/api/v1/orders/{id}/recall", post(orders::recall)),
        ("POST", "/api/v1/orders/{id}/bump", post(orders::bump)),
        (
            "PATCH",
            "/api/v1/orders/{id}/items",
            patch(orders::edit_items),
        ),
        (
            "POST",
            "/api/v1/orders/{id}/reprint",
            post(kitchen::reprint),
        ),
        ("GET", "/api/v1/print-jobs", get(kitchen::list)),
        ("POST", "/api/v1/otp/request", post(customers::request)),
        ("POST", "/api/v1/otp/verify", post(customers::verify)),
        ("GET", "/api/v1/me/orders", get(customers::my_orders)),
        ("DELETE", "/api/v1/me/token", delete(customers::revoke)),
        ("GET", "/api/v1/notifications", get(notifications::list)),
        (
            "POST",
            "/api/v1/notifications/{id}/retry",
            post(notifications::retry),
        ),
        ("GET", "/api/v1/analytics/daily", get(analytics::daily)),
        ("GET", "/api/v1/analytics/summary", get(analytics::summary)),
        ("GET", "/api/v1/devices", get(devices::list)),
        ("POST", "/api/v1/devices", post(devices::create)),
        ("DELETE", "/api/v1/devices/{id}", delete(devices::remove)),
        (
            "POST",
            "/api/v1/devices/{id}/test-print",
            post(devices::test_print),
        ),
        ("GET", "/api/v1/tables/status", get(checks::table_status)),
        ("GET", "/api/v1/billing", get(checks::settings)),
        ("GET", "/api/v1/checks", get(checks::list)),
        ("GET", "/api/v1/checks/{id}", get(checks::get_one)),
        ("POST", "/api/v1/orders/{id}/check", post(checks::of_order)),
        ("GET", "/api/v1/orders/{id}/bill", get(checks::guest_bill)),
        (
            "POST",
            "/api/v1/orders/{id}/bill-request",
            post(checks::request_bill),
        ),
        (
            "POST",
            "/api/v1/checks/{id}/covers",
            post(checks::set_covers),
        ),
        ("POST", "/api/v1/checks/{id}/payments", post(checks::pay)),
        (
            "POST",
            "/api/v1/checks/{id}/discounts",
            post(checks::discount),
        ),
        ("POST", "/api/v1/checks/{id}/voids", post(checks::void_line)),
        ("POST", "/api/v1/checks/{id}/void", post(checks::void_check)),
        ("POST", "/api/v1/checks/{id}/refunds", post(checks::refund)),
        (
            "POST",
            "/api/v1/checks/{id}/transfer",
            post(checks::transfer),
        ),
        ("POST", "/api/v1/checks/{id}/merge", post(checks::merge)),
        ("POST", "/api/v1/checks/{id}/split", post(checks::split)),
        ("GET", "/api/v1/checks/{id}/split", get(checks::even_split)),
        ("POST", "/api/v1/checks/{id}/print", post(checks::print)),
        ("POST", "/api/v1/checks/{id}/close", post(checks::close)),
        ("GET", "/api/v1/reports/x", get(checks::x_report)),
        ("GET", "/api/v1/reports/z", get(checks::z_list)),
        ("POST", "/api/v1/reports/z", post(checks::close_day)),
        ("GET", "/api/v1/reports/z/{id}", get(checks::z_one)),
        ("POST", "/api/v1/cash", post(checks::cash)),
        ("PUT", "/api/v1/users/{id}/pin", put(checks::set_pin)),
        ("GET", "/api/v1/site", get(site::get_site)),
        ("PUT", "/api/v1/site", put(site::put_site)),
        ("PUT", "/api/v1/site/setup", put(site::put_setup)),
        ("POST", "/api/v1/restart", post(site::restart)),
        ("GET", "/api/v1/", get(ops::index)),
        ("GET", "/api/v1/openapi.json", get(ops::openapi)),
        ("GET", "/healthz", get(ops::healthz)),
        ("GET", "/readyz", get(ops::readyz)),
        ("GET", "/api/v1/status", get(ops::status)),
        ("GET", "/metrics", get(ops::metrics)),
    ]
}

/// The application router: every API route, then `pages` (the web pages' routes, which use
/// the API and so are built above it), with the API's fallback, metrics and body limit.
pub fn router(state: ApiStateRef, pages: Router<ApiStateRef>) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    let limit = state.settings.limits.max_body_bytes as usize;
    router
        .merge(pages)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::new(
        ErrorKind::NotFound,
        "route_not_found",
        "no such endpoint; see /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        ErrorKind::MethodNotAllowed,
        "method_not_allowed",
        "this endpoint does not take that method; see /api/v1/openapi.json",
    )
}

/// Records latency per route.
async fn observe(State(state): State<ApiStateRef>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let resp = next.run(req).await;
    let class = format!("{}xx", resp.status().as_u16() / 100);
    state
        .metrics
        .request_seconds
        .get_or_create(&RouteLabels {
            method,
            route,
            class,
        })
        .observe(start.elapsed().as_secs_f64());
    resp
}
