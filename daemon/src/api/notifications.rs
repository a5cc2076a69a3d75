//! Staff view of the message outbox: `GET /notifications?state=&page=&limit=` (paged like
//! orders), `POST /notifications/{id}/retry`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;

use super::ApiStateRef;
use super::extract::{PathParam, Q, Staff};
use crate::domain::outbox::{self, State as MsgState};
use crate::error::AppError;
use crate::error::Commit as _;

/// `?state=&page=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// queued, sending, sent, failed or dead.
    #[serde(default)]
    pub state: Option<String>,
    /// 1-based page (default 1).
    #[serde(default)]
    pub page: Option<u32>,
    /// At most this many (1-500, default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /notifications` (staff).
pub async fn list(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    Q(p): Q<ListParams>,
) -> Result<Json<Value>, AppError> {
    let filter =
        match p.state.as_deref() {
            None => None,
            Some(s) => Some(MsgState::parse(s).ok_or_else(|| {
                AppError::invalid("state", "queued, sending, sent, failed or dead")
            })?),
        };
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(AppError::invalid("limit", "must be 1 to 500"));
    }
    let page = p.page.unwrap_or(1);
    if page == 0 {
        return Err(AppError::invalid("page", "pages start at 1"));
    }
    let (rows, total) = outbox::list(&state.store.read()?, filter, page, limit as usize)?;
    Ok(Json(super::extract::paginated(
        rows.iter().map(outbox::view).collect(),
        page,
        limit,
        total,
    )))
}

/// `POST /notifications/{id}/retry` (staff): a failed or dead message is queued again.
pub async fn retry(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    PathParam(id): PathParam,
) -> Result<Json<Value>, AppError> {
    let id: u64 = id
        .parse()
        .map_err(|_| AppError::not_found("notification"))?;
    let row = state.writer.run(move |tx| outbox::retry(tx, id)).await?;
    state.messaging.wake.notify_one();
    Ok(Json(outbox::view(&row)))
}
