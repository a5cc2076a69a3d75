//! Owner reports: one business day, or a range of days.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;

use super::ApiStateRef;
use super::extract::{Admin, Q};
use crate::domain::analytics::{day_summary, range_summary};
use crate::domain::{date_of_day, day_number, parse_date};
use crate::error::AppError;

/// Query of `GET /analytics/daily`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyParams {
    /// Business day `YYYY-MM-DD` (default: today).
    #[serde(default)]
    pub date: Option<String>,
}

fn day_of(s: &str, field: &str) -> Result<u32, AppError> {
    parse_date(s)
        .map(day_number)
        .ok_or_else(|| AppError::invalid(field, "use YYYY-MM-DD"))
}

/// `GET /analytics/daily?date=`.
pub async fn daily(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    Q(p): Q<DailyParams>,
) -> Result<Json<Value>, AppError> {
    let day = match &p.date {
        Some(d) => day_of(d, "date")?,
        None => state.rules.business_day(state.now_ms()),
    };
    let rtx = state.store.read()?;
    let s = day_summary(&rtx, &state.rules, day)?;
    let mut v = s.view(&state.rules.currency);
    v["date"] = Value::String(date_of_day(day).map(|d| d.to_string()).unwrap_or_default());
    Ok(Json(v))
}

/// Query of `GET /analytics/summary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeParams {
    /// First business day, inclusive.
    pub from: String,
    /// Last business day, inclusive.
    pub to: String,
}

/// `GET /analytics/summary?from=&to=`.
pub async fn summary(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    Q(p): Q<RangeParams>,
) -> Result<Json<Value>, AppError> {
    let from = parse_date(&p.from).ok_or_else(|| AppError::invalid("from", "use YYYY-MM-DD"))?;
    let to = parse_date(&p.to).ok_or_else(|| AppError::invalid("to", "use YYYY-MM-DD"))?;
    // A range ending before it starts holds no day; any length is fine, since only days with
    // data are read.
    let days = if to < from {
        0
    } else {
        (to - from).get_days() + 1
    };
    let rtx = state.store.read()?;
    let total = range_summary(&rtx, &state.rules, day_number(from), day_number(to))?;
    let mut v = total.view(&state.rules.currency);
    v["from"] = Value::String(from.to_string());
    v["to"] = Value::String(to.to_string());
    v["days"] = Value::from(days);
    Ok(Json(v))
}
