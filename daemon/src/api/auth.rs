//! Staff sign-in and sign-out, and user management for admins.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiStateRef;
use super::extract::{Admin, Body, Staff};
use crate::auth::{self as dom, Role, Session};
use crate::domain::{random_hex, rfc3339};
use crate::error::Commit as _;
use crate::error::{AppError, ErrorKind};
use crate::store::codec;

/// Body of `POST /auth/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginReq {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

fn too_many(secs: u64) -> AppError {
    AppError {
        retry_after_secs: Some(secs),
        ..AppError::new(
            ErrorKind::TooManyRequests,
            "too_many_attempts",
            format!("too many failed sign-ins; try again in {secs} s"),
        )
    }
}

/// `POST /auth/login` → `{token, role, expires_at}`.
pub async fn login(
    State(state): State<ApiStateRef>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Body(req): Body<LoginReq>,
) -> Result<Json<Value>, AppError> {
    let now = state.now_ms();
    if req.username.len() > 64 || req.password.len() > 256 {
        return Err(AppError::invalid("username", "too long"));
    }
    // Reserved before the hash: concurrent guesses cannot all slip in before a failure counts.
    let permit = state
        .throttle
        .reserve(&req.username.to_lowercase(), peer.ip(), now)
        .map_err(too_many)?;
    let user = dom::get_user(&state.store.read()?, &req.username)?;
    let hash = user
        .as_ref()
        .map_or_else(|| dom::dummy_hash().to_owned(), |u| u.password_hash.clone());
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || dom::verify_password(&hash, &password))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        permit.fail(state.now_ms());
        tracing::warn!(username = %req.username, "sign-in refused");
        return Err(AppError::new(
            ErrorKind::Unauthorized,
            "invalid_credentials",
            "wrong username or password",
        ));
    };
    permit.succeed(state.now_ms());
    let token = random_hex(32);
    let key = dom::token_key(&token);
    let session = Session {
        username: user.username.clone(),
        role: user.role,
        created_at: now,
        expires_at: now + state.settings.auth.session_ttl_secs * 1000,
    };
    let sessions = Arc::clone(&state.sessions);
    let s = session.clone();
    state
        .writer
        .run(move |tx| {
            tx.sessions.insert(key, codec::encode(&s)?.as_slice())?;
            tx.after_commit(move || sessions.insert(key, s));
            Ok(())
        })
        .await?;
    tracing::info!(username = %session.username, role = session.role.as_str(), "signed in");
    Ok(Json(json!({
        "token": token,
        "role": session.role.as_str(),
        "username": session.username,
        "expires_at": rfc3339(session.expires_at),
    })))
}

/// `POST /auth/logout`: ends the presented session.
pub async fn logout(
    State(state): State<ApiStateRef>,
    Staff(_, token): Staff,
) -> Result<StatusCode, AppError> {
    let key = dom::token_key(&token);
    let sessions = Arc::clone(&state.sessions);
    state
        .writer
        .run(move |tx| {
            tx.sessions.remove(key)?;
            tx.after_commit(move || sessions.remove(&[key]));
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /users` (admin).
pub async fn list_users(
    State(state): State<ApiStateRef>,
    _admin: Admin,
) -> Result<Json<Value>, AppError> {
    let users = dom::list_users(&state.store.read()?)?;
    let data: Vec<Value> = users
        .iter()
        .map(|u| json!({ "username": u.username, "role": u.role.as_str(), "created_at": rfc3339(u.created_at) }))
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// Body of `POST /users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// Password (8+ characters).
    pub password: String,
    /// `admin` or `staff`.
    pub role: Role,
}

/// `POST /users` (admin).
pub async fn add_user(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    Body(req): Body<NewUser>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    dom::check_credentials(&req.username, &req.password)?;
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || dom::hash_password(&password))
        .await
        .map_err(|_| AppError::unavailable())??;
    let (username, role) = (req.username, req.role);
    let user = state
        .writer
        .run(move |tx| dom::add_user(tx, &username, role, hash))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "username": user.username, "role": user.role.as_str() })),
    ))
}
