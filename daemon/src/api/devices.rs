//! Device registry endpoints (admin): list, add (the password is shown once), remove.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ApiStateRef;
use super::extract::{Admin, Body, PathParam, Staff};
use crate::auth::hash_password;
use crate::domain::devices::{self as dom, NewDevice};
use crate::error::AppError;
use crate::error::Commit as _;

/// `GET /devices` (staff: the kitchen page shows offline and paper-out devices).
pub async fn list(
    State(state): State<ApiStateRef>,
    _staff: Staff,
) -> Result<Json<Value>, AppError> {
    let rtx = state.store.read()?;
    let data: Vec<Value> = dom::list(&rtx)?
        .iter()
        .map(|d| {
            let mut v = dom::view(d);
            let h = state.kitchen.health_of(&d.id);
            v["online"] = json!(h.online);
            v["state"] = json!(h.state);
            v["last_seen"] = json!(h.last_seen.map(crate::domain::rfc3339));
            v
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `POST /devices` → 201 with the device and its generated `password` (shown only here).
pub async fn create(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    Body(req): Body<NewDevice>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    req.check()?;
    let password = dom::new_password();
    let pw = password.clone();
    let (argon, mosquitto) = tokio::task::spawn_blocking(move || {
        hash_password(&pw).map(|h| (h, dom::mosquitto_hash(&pw)))
    })
    .await
    .map_err(|_| AppError::unavailable())??;
    let device = state
        .writer
        .run(move |tx| dom::add(tx, &req, argon, mosquitto))
        .await?;
    state.kitchen.devices_changed.notify_one();
    let mut v = dom::view(&device);
    if device.tcp.is_none() && device.usb.is_none() {
        v["password"] = Value::String(password);
    }
    Ok((StatusCode::CREATED, Json(v)))
}

/// `DELETE /devices/{id}`.
pub async fn remove(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    PathParam(id): PathParam,
) -> Result<StatusCode, AppError> {
    let gone = id.clone();
    state.writer.run(move |tx| dom::remove(tx, &id)).await?;
    // Its credentials are gone: so is its connection.
    state.kitchen.kick(&gone);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /devices/{id}/test-print` (admin) → 202: a test slip (the box's address, the
/// printer's settings, ë ç €) queued for the printer.
pub async fn test_print(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    PathParam(id): PathParam,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let job = crate::hub::test_print(
        &state.store,
        &state.writer,
        &state.kitchen,
        &state.settings,
        &id,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(crate::domain::print_jobs::view(&job)),
    ))
}
