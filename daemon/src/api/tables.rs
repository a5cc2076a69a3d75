//! Table endpoints (admin): list, add, remove, rotate the QR token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppStateRef;
use super::extract::{Admin, Body, PathParam, Staff};
use crate::auth::Role;
use crate::domain::tables::{self as dom, NewTable, Table};
use crate::error::AppError;

fn view(t: &Table) -> Value {
    json!({ "id": t.id, "label": t.label, "zone": t.zone, "qr_token": t.qr_token })
}

/// `GET /tables`: staff (to pick a table when taking an order) see ids, labels and zones;
/// only admins see the QR tokens.
pub async fn list(
    State(state): State<AppStateRef>,
    Staff(session, _): Staff,
) -> Result<Json<Value>, AppError> {
    let rtx = state.store.read()?;
    let admin = session.role == Role::Admin;
    let data: Vec<Value> = dom::list(&rtx)?
        .iter()
        .map(|t| {
            let mut v = view(t);
            if !admin && let Some(m) = v.as_object_mut() {
                m.remove("qr_token");
            }
            v
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `POST /tables`.
pub async fn create(
    State(state): State<AppStateRef>,
    _admin: Admin,
    Body(req): Body<NewTable>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let t = state.writer.run(move |tx| dom::add(tx, &req)).await?;
    Ok((StatusCode::CREATED, Json(view(&t))))
}

/// `DELETE /tables/{id}`.
pub async fn remove(
    State(state): State<AppStateRef>,
    _admin: Admin,
    PathParam(id): PathParam,
) -> Result<StatusCode, AppError> {
    state.writer.run(move |tx| dom::delete(tx, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /tables/{id}/rotate-token`.
pub async fn rotate(
    State(state): State<AppStateRef>,
    _admin: Admin,
    PathParam(id): PathParam,
) -> Result<Json<Value>, AppError> {
    let t = state.writer.run(move |tx| dom::rotate(tx, &id)).await?;
    Ok(Json(view(&t)))
}

/// `GET /tables/qr-sheet.svg` (admin): every table's QR code on one printable sheet, each
/// pointing at `<public base URL>/t/<token>`.
pub async fn qr_sheet(
    State(state): State<AppStateRef>,
    _admin: Admin,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse as _;
    let base = crate::web::base_url(&state, &headers);
    let rtx = state.store.read()?;
    let tables: Vec<(String, String)> = dom::list(&rtx)?
        .into_iter()
        .map(|t| (t.label, format!("{base}/t/{}", t.qr_token)))
        .collect();
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        crate::web::qr_sheet(&tables),
    )
        .into_response())
}
