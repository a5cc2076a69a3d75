//! Kitchen endpoints: reprint an order's tickets, and see print jobs by state.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orderd_protocol::PrintCopy;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiStateRef;
use super::extract::{PathParam, Q, Staff};
use crate::domain::devices;
use crate::domain::print_jobs::{self, JobState, PrintJobRow};
use crate::domain::{orders, random_hex};
use crate::error::AppError;
use crate::error::Commit as _;
use crate::hub::printing;
use crate::hub::tickets::station_lines;

/// Query of `GET /print-jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// queued, sent, waiting, printed or failed_over.
    pub state: Option<String>,
    /// At most this many, newest first (default 50).
    pub limit: Option<u32>,
}

/// `GET /print-jobs?state=&limit=`.
pub async fn list(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    Q(q): Q<JobsQuery>,
) -> Result<Json<Value>, AppError> {
    let wanted = match q.state.as_deref() {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            AppError::invalid(
                "state",
                "one of queued, sent, waiting, printed, failed_over",
            )
        })?),
    };
    let max = state.settings.limits.max_page_size;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > max {
        return Err(AppError::invalid("limit", format!("1-{max}")));
    }
    let rtx = state.store.read()?;
    let jobs = print_jobs::list(&rtx, wanted, limit as usize)?;
    let data: Vec<Value> = jobs.iter().map(print_jobs::view).collect();
    Ok(Json(json!({ "data": data })))
}

/// `POST /orders/{id}/reprint` → 202 with the queued jobs: one REPRINT per station printer.
pub async fn reprint(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let rtx = state.store.read()?;
    let stored = orders::get(&rtx, &id)?.ok_or_else(|| AppError::not_found("order"))?;
    let all = devices::list(&rtx)?;
    drop(rtx);
    let allergy = stored.allergy.map(|a| a.note);
    let order = stored.order;
    let now = state.now_ms();
    let mut jobs = Vec::new();
    let by_id: std::collections::BTreeMap<String, devices::Device> =
        all.iter().map(|d| (d.id.clone(), d.clone())).collect();
    let kitchen = &state.settings.kitchen;
    let menu = crate::domain::menu::committed(&state.shared);
    for (station, mut lines) in station_lines(&order) {
        crate::hub::tickets::add_allergens(&mut lines, &menu);
        let printers = printing::ticket_printers(&all, &station);
        for (cfg, printers) in printing::by_config(kitchen, &by_id, printers) {
            let data = printing::render(
                &order,
                &station,
                &lines,
                printing::Slip {
                    note: order.note.as_deref(),
                    allergy: allergy.as_deref(),
                    copy: PrintCopy::Reprint,
                    banner: None,
                },
                &cfg,
                &state.settings.time_zone,
            );
            for printer in printers {
                jobs.push(PrintJobRow {
                    job_id: format!("rp{}-{station}-{printer}", random_hex(6)),
                    order_id: order.id.clone(),
                    order_number: order.number.clone(),
                    station: station.clone(),
                    printer,
                    copy: PrintCopy::Reprint,
                    format: orderd_protocol::PrintFormat::EscPos,
                    data: data.clone(),
                    state: JobState::Queued,
                    report: Some(format!("reprint requested by {}", session.username)),
                    replaced_by: None,
                    replaces: None,
                    created_at: now,
                    updated_at: now,
                });
            }
        }
    }
    if jobs.is_empty() {
        return Err(AppError::new(
            crate::error::ErrorKind::Conflict,
            "no_printer",
            "no printer serves this order's stations; register one with `orderd device add`",
        ));
    }
    let stored_jobs = jobs.clone();
    state
        .writer
        .run(move |tx| {
            for j in &stored_jobs {
                print_jobs::put(tx, j)?;
            }
            Ok(())
        })
        .await?;
    state.kitchen.wake.notify_one();
    tracing::info!(order_id = %order.id, jobs = jobs.len(), user = %session.username, "reprint queued");
    let data: Vec<Value> = jobs.iter().map(print_jobs::view).collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "data": data }))))
}
