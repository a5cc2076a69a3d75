//! Table endpoints (admin): list, add, remove, rotate the QR token.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::ApiStateRef;
use super::extract::{Admin, Body, PathParam, Staff};
use crate::auth::Role;
use crate::domain::tables::{self as dom, NewTable, Table};
use crate::error::AppError;
use crate::error::Commit as _;

fn view(t: &Table) -> Value {
    json!({ "id": t.id, "label": t.label, "zone": t.zone, "qr_token": t.qr_token })
}

/// `GET /tables`: staff (to pick a table when taking an order) see ids, labels and zones;
/// only admins see the QR tokens.
pub async fn list(
    State(state): State<ApiStateRef>,
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
    State(state): State<ApiStateRef>,
    _admin: Admin,
    Body(req): Body<NewTable>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let t = state.writer.run(move |tx| dom::add(tx, &req)).await?;
    Ok((StatusCode::CREATED, Json(view(&t))))
}

/// `DELETE /tables/{id}`.
pub async fn remove(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    PathParam(id): PathParam,
) -> Result<StatusCode, AppError> {
    state.writer.run(move |tx| dom::delete(tx, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /tables/{id}/rotate-token`.
pub async fn rotate(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    PathParam(id): PathParam,
) -> Result<Json<Value>, AppError> {
    let t = state.writer.run(move |tx| dom::rotate(tx, &id)).await?;
    Ok(Json(view(&t)))
}

/// `GET /tables/qr-sheet.svg` (admin): every table's QR code on one printable sheet, each
/// pointing at `<public base URL>/t/<token>`.
pub async fn qr_sheet(
    State(state): State<ApiStateRef>,
    _admin: Admin,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse as _;
    let base = base_url(&state, &headers);
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
        sheet_svg(&tables),
    )
        .into_response())
}

/// The base of table links: `http.public_base_url`, else the address the admin used.
fn base_url(state: &ApiStateRef, headers: &HeaderMap) -> String {
    if let Some(configured) = &state.settings.http.public_base_url {
        return configured.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .map_or_else(|| state.settings.http.listen.to_string(), str::to_owned);
    format!("http://{host}")
}

/// A printable sheet of table QR codes as one SVG (A4 proportions, three codes per row).
fn sheet_svg(tables: &[(String, String)]) -> String {
    use std::fmt::Write as _;
    const COLS: usize = 3;
    const CELL_W: usize = 70;
    const CELL_H: usize = 92;
    const QR: usize = 56;
    let rows = tables.len().div_ceil(COLS).max(1);
    let (w, h) = (COLS * CELL_W, rows * CELL_H);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}mm\" height=\"{h}mm\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
    );
    for (i, (label, url)) in tables.iter().enumerate() {
        let x0 = (i % COLS) * CELL_W;
        let y0 = (i / COLS) * CELL_H;
        let Ok(code) =
            qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        else {
            continue;
        };
        let n = code.width();
        // A quiet zone of 4 modules on each side.
        let scale = QR as f64 / (n + 8) as f64;
        let ox = x0 as f64 + (CELL_W - QR) as f64 / 2.0;
        let oy = y0 as f64 + 6.0;
        let mut path = String::new();
        for (k, c) in code.to_colors().iter().enumerate() {
            if *c == qrcode::Color::Dark {
                let (cx, cy) = (k % n + 4, k / n + 4);
                let _ = write!(path, "M{cx} {cy}h1v1h-1z");
            }
        }
        let _ = write!(
            out,
            "<g><path transform=\"translate({ox:.2} {oy:.2}) scale({scale:.4})\" d=\"{path}\" fill=\"#000\"/>\n<text x=\"{tx}\" y=\"{ly}\" text-anchor=\"middle\" font-size=\"9\" font-weight=\"bold\">{label}</text>\n<text x=\"{tx}\" y=\"{uy}\" text-anchor=\"middle\" font-size=\"2.6\">{url}</text></g>\n",
            tx = x0 + CELL_W / 2,
            ly = y0 + QR + 16,
            uy = y0 + QR + 22,
            label = escape(label),
            url = escape(url),
        );
    }
    out.push_str("</svg>\n");
    out
}

/// `s` with the characters XML and HTML give a meaning escaped (the QR sheet, the pages).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_sheet_has_one_code_per_table_and_escapes_labels() {
        let svg = sheet_svg(&[
            ("T1".into(), "http://box/t/abc".into()),
            ("<T2>".into(), "http://box/t/def".into()),
        ]);
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("&lt;T2&gt;") && !svg.contains("<T2>"));
        assert!(svg.contains("http://box/t/def"));
    }
}
