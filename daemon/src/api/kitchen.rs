//! Kitchen endpoints: reprint an order's tickets, and see print jobs by state.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orderd_protocol::PrintCopy;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppStateRef;
use super::extract::{PathParam, Q, Staff};
use crate::domain::devices::{self, DeviceKind};
use crate::domain::print_jobs::{self, JobState, PrintJobRow};
use crate::domain::{orders, random_hex};
use crate::error::AppError;
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
    State(state): State<AppStateRef>,
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
    let max = state.settings.raw.limits.max_page_size;
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
    State(state): State<AppStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let rtx = state.store.read()?;
    let stored = orders::get(&rtx, &id)?.ok_or_else(|| AppError::not_found("order"))?;
    let all = devices::list(&rtx)?;
    drop(rtx);
    let order = stored.order;
    let settings = &state.settings;
    let width = if settings.raw.kitchen.paper_width_mm == 58 {
        orderd_plugins::escpos::PaperWidth::Mm58
    } else {
        orderd_plugins::escpos::PaperWidth::Mm80
    };
    let time = jiff::Timestamp::from_millisecond(i64::try_from(order.created_at).unwrap_or(0))
        .map(|ts| {
            ts.to_zoned(settings.time_zone.clone())
                .strftime("%H:%M")
                .to_string()
        })
        .unwrap_or_default();
    let now = state.now_ms();
    let mut jobs = Vec::new();
    for (station, lines) in station_lines(&order) {
        let printers_of = |backup: bool| -> Vec<String> {
            all.iter()
                .filter(|d| {
                    d.kind == DeviceKind::Printer
                        && d.backup == backup
                        && d.stations.contains(&station)
                })
                .map(|d| d.id.clone())
                .collect()
        };
        let mut printers = printers_of(false);
        if printers.is_empty() {
            printers = printers_of(true);
        }
        let short = format!("{:03}", order.daily_seq);
        let doc = orderd_plugins::escpos::TicketDoc {
            short: &short,
            number: &order.number,
            station: &station,
            order_type: order.order_type,
            table: order.table_label.as_deref(),
            time: &time,
            lines: &lines,
            note: order.note.as_deref(),
            copy: PrintCopy::Reprint,
        };
        let data = orderd_plugins::escpos::render(
            &doc,
            &orderd_plugins::escpos::EscPosConfig { width, cut: true },
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
