//! The restaurant's settings in the admin page (admin): read and save `site.toml`, mark the
//! guided set-up finished, and restart the box to apply what was saved.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiStateRef;
use super::extract::{Admin, Body};
use crate::config::{PAGE_LANGUAGES, RawConfig};
use crate::error::AppError;
use crate::site::{self, SiteFile};

/// One change of `site.toml` at a time: each reads the file, changes it and writes it back
/// whole, so two at once would lose one's change (or race on the temporary file).
static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn writing() -> std::sync::MutexGuard<'static, ()> {
    WRITING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `PUT /site`: the values to keep; a missing one stays as saved.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteUpdate {
    name: Option<String>,
    address: Option<String>,
    tax_id: Option<String>,
    currency: Option<String>,
    minor_digits: Option<u8>,
    time_zone: Option<String>,
    default_language: Option<String>,
    languages: Option<Vec<String>>,
}

/// `PUT /site/setup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupUpdate {
    finished: bool,
}

/// The field of the page a configuration key is edited in.
fn field_of(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

fn values(raw: &RawConfig) -> Value {
    json!({
        "name": raw.site.name,
        "address": raw.billing.address,
        "tax_id": raw.billing.tax_id,
        "currency": raw.site.currency,
        "minor_digits": raw.billing.minor_digits,
        "time_zone": raw.site.time_zone,
        "default_language": raw.site.default_language,
        "languages": raw.site.languages,
    })
}

fn read_file(state: &ApiStateRef) -> Result<SiteFile, AppError> {
    site::read(state.settings.data_dir()).map_err(|p| {
        tracing::error!(file = %p.key, problem = %p.message, "site.toml cannot be read");
        AppError::internal()
    })
}

/// What the page shows: the values the next start uses, those in force now, and the choices.
fn view(state: &ApiStateRef, file: &SiteFile) -> Value {
    let running = state.settings.as_written();
    let mut next = running.clone();
    file.apply(&mut next);
    let (next, now) = (values(&next), values(running));
    let time_zones: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_owned())
        .collect();
    json!({
        "restart_needed": next != now,
        "settings": next,
        "running": now,
        "saved_keys": file.keys(),
        "setup": { "finished": file.setup.finished },
        "choices": { "languages": PAGE_LANGUAGES, "time_zones": time_zones },
    })
}

/// `GET /site` (admin).
pub async fn get_site(
    State(state): State<ApiStateRef>,
    _admin: Admin,
) -> Result<Json<Value>, AppError> {
    let file = read_file(&state)?;
    Ok(Json(view(&state, &file)))
}

/// `PUT /site` (admin): checks the values as the next start will, then saves them durably.
/// Nothing changes until the box restarts (`POST /restart`).
pub async fn put_site(
    State(state): State<ApiStateRef>,
    Admin(session): Admin,
    Body(req): Body<SiteUpdate>,
) -> Result<Json<Value>, AppError> {
    for (field, text) in [
        ("name", &req.name),
        ("address", &req.address),
        ("tax_id", &req.tax_id),
    ] {
        let line_breaks_ok = field == "address";
        if let Some(t) = text
            && t.chars()
                .any(|c| c.is_control() && !(line_breaks_ok && c == '\n'))
        {
            return Err(AppError::invalid(field, "must not hold control characters"));
        }
    }
    let _one_at_a_time = writing();
    let mut file = read_file(&state)?;
    let trim = |t: Option<String>| t.map(|t| t.trim().to_owned());
    let (s, b) = (&mut file.site, &mut file.billing);
    s.name = trim(req.name).or(s.name.take());
    s.currency = trim(req.currency).or(s.currency.take());
    s.time_zone = trim(req.time_zone).or(s.time_zone.take());
    s.default_language = trim(req.default_language).or(s.default_language.take());
    s.languages = req.languages.or(s.languages.take());
    b.address = trim(req.address).or(b.address.take());
    b.tax_id = trim(req.tax_id).or(b.tax_id.take());
    b.minor_digits = req.minor_digits.or(b.minor_digits.take());
    let mut next = state.settings.as_written().clone();
    file.apply(&mut next);
    if let Err(problems) = next.validate() {
        let fields: Vec<Value> = problems
            .0
            .iter()
            .map(|p| json!({ "field": field_of(&p.key), "message": p.message }))
            .collect();
        let first = &problems.0[0];
        return Err(
            AppError::invalid(field_of(&first.key), first.message.clone())
                .with_details(json!({ "field": field_of(&first.key), "problems": fields })),
        );
    }
    save(&state, &file)?;
    tracing::info!(by = %session.username, keys = ?file.keys(), "restaurant settings saved");
    Ok(Json(view(&state, &file)))
}

/// `PUT /site/setup` (admin): the guided set-up is finished (or skipped), or to be shown again.
pub async fn put_setup(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    Body(req): Body<SetupUpdate>,
) -> Result<Json<Value>, AppError> {
    let _one_at_a_time = writing();
    let mut file = read_file(&state)?;
    file.setup.finished = req.finished;
    save(&state, &file)?;
    Ok(Json(view(&state, &file)))
}

fn save(state: &ApiStateRef, file: &SiteFile) -> Result<(), AppError> {
    site::write(state.settings.data_dir(), file).map_err(|e| {
        tracing::error!(error = %e, "writing site.toml");
        AppError::internal()
    })
}

/// `POST /restart` (admin): stops gracefully and starts again, to apply saved settings. The
/// answer comes before the stop; the page waits for `/readyz` to answer again.
pub async fn restart(
    State(state): State<ApiStateRef>,
    Admin(session): Admin,
) -> (StatusCode, Json<Value>) {
    tracing::info!(by = %session.username, "restart asked for from the admin page");
    state.restart.notify_one();
    (StatusCode::ACCEPTED, Json(json!({ "restarting": true })))
}
