//! Table endpoints (admin): list, add, remove, rotate the QR token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppStateRef;
use super::extract::{Admin, Body, PathParam};
use crate::domain::tables::{self as dom, NewTable, Table};
use crate::error::AppError;

fn view(t: &Table) -> Value {
    json!({ "id": t.id, "label": t.label, "zone": t.zone, "qr_token": t.qr_token })
}

/// `GET /tables`.
pub async fn list(
    State(state): State<AppStateRef>,
    _admin: Admin,
) -> Result<Json<Value>, AppError> {
    let rtx = state.store.read()?;
    let data: Vec<Value> = dom::list(&rtx)?.iter().map(view).collect();
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
