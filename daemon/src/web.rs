//! The pages the box serves itself: the customer's table page (`/t/{token}`), the kitchen
//! display (`/kitchen`), staff order entry (`/staff`) and admin (`/admin`), with their scripts
//! and styles compiled into the binary (`daemon/web/`), plus the printable QR sheet.
//!
//! Pages are static HTML with a small JSON "boot" block; everything else comes from the API and
//! its live streams, so the pages hold no authority of their own. Every page is sent with a
//! strict Content-Security-Policy (no inline script, nothing from another origin) and
//! `Referrer-Policy: no-referrer`, so a table token in the address never leaks.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::api::ApiStateRef;
use crate::api::extract::PathParam;
use crate::api::tables::escape;
use crate::domain::outbox::Channel;
use crate::error::AppError;

/// A compiled-in file: name, content type, bytes.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
}

/// An asset compiled in from `daemon/web/`.
macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_str!(concat!("../web/", $name)),
        }
    };
}

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const ASSETS: &[Asset] = &[
    asset!("app.css", CSS),
    asset!("common.js", JS),
    asset!("customer.js", JS),
    asset!("kitchen.js", JS),
    asset!("staff.js", JS),
    asset!("admin.js", JS),
];

const PAGE: &str = include_str!("../web/page.html");

/// The page routes (outside `/api/v1`, so not in the OpenAPI document).
pub fn router() -> Router<ApiStateRef> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/staff") }))
        .route("/t/{token}", get(customer))
        .route("/kitchen", get(kitchen))
        .route("/staff", get(staff))
        .route("/admin", get(admin))
        .route("/assets/{name}", get(asset))
        .route("/photos/{file}", get(photo))
}

/// `/photos/{item}.jpg`: an item's photo (`crate::photos`), cached for good: its URL carries
/// its version, and a new upload has a new one.
async fn photo(
    State(state): State<ApiStateRef>,
    PathParam(file): PathParam,
) -> Result<Response, AppError> {
    let path = file
        .strip_suffix(".jpg")
        .filter(|id| crate::config::is_slug(id, 64))
        .and_then(|id| state.photos.file(id))
        .ok_or_else(|| AppError::not_found("photo"))?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| AppError::not_found("photo"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

fn etag(body: &str) -> String {
    format!("\"{:08x}\"", crc32fast::hash(body.as_bytes()))
}

async fn asset(headers: HeaderMap, PathParam(name): PathParam) -> Result<Response, AppError> {
    let a = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| AppError::not_found("asset"))?;
    let tag = etag(a.body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.mime)], a.body).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    // Revalidate every time: after an upgrade the tablet must not run old scripts.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

/// Renders the page shell for one page with its boot data.
fn page(status: StatusCode, title: &str, script: &str, boot: &Value) -> Response {
    // `<` escaped so the JSON can never close its script element.
    let boot = boot.to_string().replace('<', "\\u003c");
    let html = PAGE
        .replace("{{title}}", &escape(title))
        .replace("{{script}}", script)
        .replace("{{boot}}", &boot);
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn common_boot(state: &ApiStateRef, page: &str) -> Value {
    let settings = &*state.settings;
    json!({
        "page": page,
        "site": settings.site.id,
        "restaurant": settings.site.name,
        "currency": state.rules.currency,
        "minor_digits": state.rules.billing.minor_digits,
        "default_lang": state.rules.default_language,
        "languages": settings.site.languages,
        "heartbeat_secs": settings.http.sse_heartbeat.as_secs(),
    })
}

/// `/t/{token}`: the customer's page for one table. A rotated or unknown token gets a page
/// that says so (and 404), never the menu.
async fn customer(
    State(state): State<ApiStateRef>,
    PathParam(token): PathParam,
) -> Result<Response, AppError> {
    let rtx = state.store.read()?;
    let table = crate::domain::tables::find_by_token(&rtx, &token)?;
    drop(rtx);
    let mut boot = common_boot(&state, "customer");
    let settings = &*state.settings;
    let Some(table) = table else {
        boot["invalid_token"] = json!(true);
        return Ok(page(StatusCode::NOT_FOUND, "Table", "customer.js", &boot));
    };
    let channels: Vec<&str> = [Channel::Whatsapp, Channel::Telegram]
        .into_iter()
        .filter(|c| crate::api::customers::channel_enabled(&state, *c))
        .map(Channel::as_str)
        .collect();
    boot["table"] = json!({ "label": table.label, "token": token });
    boot["otp_required"] = json!(state.settings.otp_required);
    boot["channels"] = json!(channels);
    boot["max_quantity"] = json!(settings.limits.max_quantity);
    boot["max_text"] = json!(settings.limits.max_text_chars);
    Ok(page(
        StatusCode::OK,
        &format!("Table {}", table.label),
        "customer.js",
        &boot,
    ))
}

async fn kitchen(State(state): State<ApiStateRef>) -> Response {
    let mut boot = common_boot(&state, "kitchen");
    let k = &state.settings.kitchen;
    boot["age_warn_secs"] = json!(k.age_warn_secs);
    boot["age_late_secs"] = json!(k.age_late_secs);
    boot["bump_keys"] = json!(k.bump_keys);
    page(StatusCode::OK, "Kitchen", "kitchen.js", &boot)
}

async fn staff(State(state): State<ApiStateRef>) -> Response {
    let mut boot = common_boot(&state, "staff");
    boot["max_quantity"] = json!(state.settings.limits.max_quantity);
    boot["max_text"] = json!(state.settings.limits.max_text_chars);
    page(StatusCode::OK, "Orders", "staff.js", &boot)
}

async fn admin(State(state): State<ApiStateRef>) -> Response {
    let boot = common_boot(&state, "admin");
    page(StatusCode::OK, "Admin", "admin.js", &boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_and_the_shell_has_its_slots() {
        for slot in ["{{title}}", "{{script}}", "{{boot}}"] {
            assert!(PAGE.contains(slot), "{slot}");
        }
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{}", a.name);
        }
    }
}
