//! Menu endpoints: the public menu per language, the admin's whole-menu upload, item edits
//! (staff: availability only) and stock.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use orderd_protocol::EventKind;
use redb::ReadableTable;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiStateRef;
use super::extract::{Body, PathParam, Q, Staff};
use crate::auth::Role;
use crate::domain::menu::{self, Localized, Menu, ModifierGroup, StockLevels};
use crate::domain::menu_csv;
use crate::domain::orders::stock_events;
use crate::error::Commit as _;
use crate::error::{AppError, ErrorKind};
use crate::store::tables;

/// Query of `GET /menu`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuParams {
    /// Language code (falls back to the default language, then `en`).
    #[serde(default)]
    pub lang: Option<String>,
}

fn stock_levels(state: &ApiStateRef) -> Result<StockLevels, AppError> {
    let rtx = state.store.read()?;
    let t = rtx
        .open_table(tables::STOCK)
        .map_err(crate::store::StoreError::from)?;
    let mut out = BTreeMap::new();
    for row in t.iter().map_err(crate::store::StoreError::from)? {
        let (k, v) = row.map_err(crate::store::StoreError::from)?;
        out.insert(k.value().to_owned(), v.value());
    }
    Ok(out)
}

/// `GET /menu?lang=xx` (public).
pub async fn get_menu(
    State(state): State<ApiStateRef>,
    Q(params): Q<MenuParams>,
) -> Result<axum::response::Response, AppError> {
    let fallback = state.rules.default_language.as_str();
    let lang = params.lang.as_deref().unwrap_or(fallback);
    if !crate::config::is_slug(lang, 8) {
        return Err(AppError::invalid(
            "lang",
            "a language code such as en or sq",
        ));
    }
    // Read before the snapshot: a live stream resumed after it misses nothing.
    let seq = state.events.last_seq();
    let stock = stock_levels(&state)?;
    let m = menu::committed(&state.shared);
    let mut view = menu::view(&m, &stock, lang, fallback, &state.rules.currency);
    // Each item's photo, if it has one (lazy-loaded by the guest page).
    let photos = state.photos.urls();
    if let Some(cats) = view["categories"].as_array_mut() {
        for item in cats
            .iter_mut()
            .filter_map(|c| c["items"].as_array_mut())
            .flatten()
        {
            let url = item["id"].as_str().and_then(|id| photos.get(id)).cloned();
            item["photo"] = url.map_or(Value::Null, Value::String);
        }
    }
    Ok(super::live::with_seq(seq, Json(view)))
}

/// `PUT /menu` (admin): replaces the whole menu. Items with `stock` get that level; items
/// without stop being tracked.
pub async fn put_menu(
    State(state): State<ApiStateRef>,
    super::extract::Admin(_): super::extract::Admin,
    Body(new): Body<Menu>,
) -> Result<Json<Value>, AppError> {
    new.validate(state.rules.max_text)?;
    let count = replace_menu(&state, new).await?;
    Ok(Json(json!({ "items": count })))
}

/// `GET /menu/csv` (admin): the menu as a spreadsheet, one row per item
/// (`domain::menu_csv`), to edit and import again.
pub async fn get_menu_csv(
    State(state): State<ApiStateRef>,
    super::extract::Admin(_): super::extract::Admin,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let body = menu_csv::to_csv(
        &menu::committed(&state.shared),
        state.rules.billing.minor_digits,
    );
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"menu.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Largest spreadsheet `PUT /menu/csv` takes (a menu's JSON is small; a spreadsheet of a few
/// hundred items with their modifier groups is not).
pub const MENU_CSV_MAX_BYTES: usize = 1 << 20;

/// `PUT /menu/csv` (admin): replaces the whole menu from a spreadsheet, as `PUT /menu` does.
/// Nothing changes unless every row is right; every problem is listed with its row and column.
pub async fn put_menu_csv(
    State(state): State<ApiStateRef>,
    super::extract::Admin(_): super::extract::Admin,
    super::extract::RawBody(bytes): super::extract::RawBody,
) -> Result<Json<Value>, AppError> {
    let invalid = |problems: Vec<String>| {
        AppError::new(
            ErrorKind::Unprocessable,
            "invalid_csv",
            format!(
                "the spreadsheet has {} problem(s); see details",
                problems.len()
            ),
        )
        .with_details(json!({ "problems": problems }))
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        invalid(vec![
            "the file is not UTF-8 text (save it as CSV UTF-8)".into(),
        ])
    })?;
    let (new, rows) =
        menu_csv::from_csv(text, state.rules.billing.minor_digits).map_err(invalid)?;
    if let Err(e) = new.validate(state.rules.max_text) {
        let problems: Vec<String> = e
            .details
            .as_ref()
            .and_then(|d| d["problems"].as_array())
            .map_or_else(
                || vec![e.message.clone()],
                |p| {
                    p.iter()
                        .filter_map(Value::as_str)
                        .map(|p| menu_csv::row_of_path(p, &new, &rows))
                        .collect()
                },
            );
        return Err(invalid(problems));
    }
    let count = replace_menu(&state, new).await?;
    Ok(Json(json!({ "items": count })))
}

/// Replaces the whole menu (checked): items with `stock` get that level; items without stop
/// being tracked. Returns how many items it has.
async fn replace_menu(state: &ApiStateRef, new: Menu) -> Result<u32, AppError> {
    let count = new.items().count() as u32;
    state
        .writer
        .run(move |tx| {
            let mut untracked: Vec<String> = Vec::new();
            for row in tx.stock.iter()? {
                let id = row?.0.value().to_owned();
                if new.item(&id).and_then(|i| i.stock).is_none() {
                    untracked.push(id);
                }
            }
            for id in &untracked {
                tx.stock.remove(id.as_str())?;
            }
            for item in new.items() {
                if let Some(n) = item.stock {
                    tx.stock.insert(item.id.as_str(), n)?;
                }
            }
            menu::replace(tx, new)?;
            tx.emit(EventKind::MenuReplaced { items: count })?;
            Ok(())
        })
        .await?;
    Ok(count)
}

/// Body of `PATCH /menu/items/{id}`. Staff may send only `available`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    /// Staff and admin.
    #[serde(default, deserialize_with = "present")]
    pub available: Option<bool>,
    /// Admin.
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Localized>,
    /// Admin.
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Localized>,
    /// Admin.
    #[serde(default, deserialize_with = "present")]
    pub price: Option<i64>,
    /// Admin.
    #[serde(default, deserialize_with = "present")]
    pub station: Option<String>,
    /// Admin.
    #[serde(default, deserialize_with = "present")]
    pub allergens: Option<Vec<String>>,
    /// Admin.
    #[serde(default, deserialize_with = "present")]
    pub modifier_groups: Option<Vec<ModifierGroup>>,
    /// Admin.
    #[serde(default, deserialize_with = "present")]
    pub low_stock_threshold: Option<u32>,
}

/// A field of a patch that is sent must carry a value: `null` is refused
/// (422) rather than read as "unchanged", so the document's types hold.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl ItemPatch {
    fn admin_only(&self) -> bool {
        self.name.is_some()
            || self.description.is_some()
            || self.price.is_some()
            || self.station.is_some()
            || self.allergens.is_some()
            || self.modifier_groups.is_some()
            || self.low_stock_threshold.is_some()
    }
}

fn item_json(item: &menu::Item, stock: Option<u32>) -> Value {
    let mut v = serde_json::to_value(item).unwrap_or(Value::Null);
    v["stock"] = json!(stock);
    v["available_now"] = json!(item.available && stock.is_none_or(|n| n > 0));
    v
}

/// `PATCH /menu/items/{id}`.
pub async fn patch_item(
    State(state): State<ApiStateRef>,
    Staff(session, _): Staff,
    PathParam(id): PathParam,
    Body(patch): Body<ItemPatch>,
) -> Result<Json<Value>, AppError> {
    if patch.admin_only() && session.role != Role::Admin {
        return Err(AppError::forbidden("admin")
            .with_details(json!({ "hint": "staff may change only `available`" })));
    }
    let max_text = state.rules.max_text;
    let out = state
        .writer
        .run(move |tx| {
            let mut m: Menu = menu::of(tx).clone();
            let item = m
                .item_mut(&id)
                .ok_or_else(|| AppError::not_found("menu item"))?;
            let was = item.available;
            if let Some(v) = patch.available {
                item.available = v;
            }
            if let Some(v) = patch.name {
                item.name = v;
            }
            if let Some(v) = patch.description {
                item.description = v;
            }
            if let Some(v) = patch.price {
                item.price = v;
            }
            if let Some(v) = patch.station {
                item.station = v;
            }
            if let Some(v) = patch.allergens {
                item.allergens = v;
            }
            if let Some(v) = patch.modifier_groups {
                item.modifier_groups = v;
            }
            let stock = tx.stock.get(id.as_str())?.map(|v| v.value());
            if let Some(v) = patch.low_stock_threshold {
                if stock.is_none() {
                    return Err(AppError::new(
                        ErrorKind::Conflict,
                        "stock_not_tracked",
                        "low_stock_threshold: set stock on the item first",
                    )
                    .with_details(json!({ "field": "low_stock_threshold" }))
                    .into());
                }
                item.low_stock_threshold = Some(v);
            }
            // Keep the menu's `stock` field meaning "tracked" consistent with the live table.
            item.stock = stock;
            let now = item.available;
            let view = item_json(item, stock);
            m.validate(max_text)?;
            menu::replace(tx, m)?;
            if was != now {
                tx.emit(EventKind::AvailabilityChanged {
                    item_id: id.clone(),
                    available: now,
                })?;
            }
            Ok(view)
        })
        .await?;
    Ok(Json(out))
}

/// Body of `POST /menu/items/{id}/stock`: exactly one of `set` or `adjust`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockReq {
    /// New level (starts tracking the item).
    #[serde(default)]
    pub set: Option<u32>,
    /// Change of a tracked level (+ delivery, − waste).
    #[serde(default)]
    pub adjust: Option<i64>,
}

/// `POST /menu/items/{id}/stock` (staff).
pub async fn set_stock(
    State(state): State<ApiStateRef>,
    _staff: Staff,
    PathParam(id): PathParam,
    Body(req): Body<StockReq>,
) -> Result<Json<Value>, AppError> {
    if req.set.is_some() == req.adjust.is_some() {
        return Err(AppError::invalid(
            "set",
            "send exactly one of `set` or `adjust`",
        ));
    }
    if req.set.is_some_and(|n| n > 1_000_000) || req.adjust.is_some_and(|d| d.abs() > 1_000_000) {
        return Err(AppError::invalid("set", "at most 1000000"));
    }
    let out = state
        .writer
        .run(move |tx| {
            let available = menu::of(tx)
                .item(&id)
                .map(|i| i.available)
                .ok_or_else(|| AppError::not_found("menu item"))?;
            let before = tx.stock.get(id.as_str())?.map(|v| v.value());
            let after = match (req.set, req.adjust, before) {
                (Some(n), _, _) => n,
                (None, Some(d), Some(b)) => {
                    let n = i64::from(b) + d;
                    u32::try_from(n).map_err(|_| {
                        AppError::new(
                            ErrorKind::Conflict,
                            "negative_stock",
                            format!("only {b} in stock; cannot take away {}", -d),
                        )
                    })?
                }
                _ => {
                    return Err(AppError::new(
                        ErrorKind::Conflict,
                        "stock_not_tracked",
                        "this item's stock is not tracked; use `set` first",
                    )
                    .into());
                }
            };
            tx.stock.insert(id.as_str(), after)?;
            // Untracked counts as plenty.
            stock_events(tx, &id, before.unwrap_or(u32::MAX), after)?;
            Ok(json!({ "item_id": id, "stock": after, "available": available && after > 0 }))
        })
        .await?;
    Ok(Json(out))
}

/// Largest picture `PUT /menu/items/{id}/photo` takes (a phone's photo, before the box
/// shrinks it).
pub const PHOTO_MAX_BYTES: usize = 8 << 20;

/// `PUT /menu/items/{id}/photo` (admin): the item's photo, any JPEG, PNG or WebP as the body;
/// the box shrinks it (`crate::photos`) and the guest page shows it.
pub async fn put_photo(
    State(state): State<ApiStateRef>,
    super::extract::Admin(_): super::extract::Admin,
    PathParam(id): PathParam,
    super::extract::RawBody(bytes): super::extract::RawBody,
) -> Result<Json<Value>, AppError> {
    use crate::photos::PhotoError;
    if menu::committed(&state.shared).item(&id).is_none() {
        return Err(AppError::not_found("menu item"));
    }
    let photos = Arc::clone(&state.photos);
    let item = id.clone();
    let stored = tokio::task::spawn_blocking(move || photos.store(&item, &bytes))
        .await
        .map_err(|_| AppError::unavailable())?;
    match stored {
        Ok((url, size)) => Ok(Json(json!({ "item_id": id, "photo": url, "bytes": size }))),
        Err(e @ PhotoError::Unreadable(_)) => Err(AppError::new(
            ErrorKind::Unprocessable,
            "invalid_photo",
            e.to_string(),
        )),
        Err(e @ PhotoError::OverBudget { .. }) => Err(AppError::new(
            ErrorKind::Conflict,
            "photos_budget_full",
            e.to_string(),
        )),
        Err(e @ PhotoError::Io(_)) => {
            tracing::error!(item = %id, error = %e, "storing a photo failed");
            Err(AppError::new(
                ErrorKind::InsufficientStorage,
                "photo_not_stored",
                e.to_string(),
            ))
        }
    }
}

/// `DELETE /menu/items/{id}/photo` (admin): removes the item's photo.
pub async fn delete_photo(
    State(state): State<ApiStateRef>,
    super::extract::Admin(_): super::extract::Admin,
    PathParam(id): PathParam,
) -> Result<axum::http::StatusCode, AppError> {
    match state.photos.remove(&id) {
        Ok(true) => Ok(axum::http::StatusCode::NO_CONTENT),
        Ok(false) => Err(AppError::not_found("photo")),
        Err(e) => {
            tracing::error!(item = %id, error = %e, "removing a photo failed");
            Err(AppError::unavailable())
        }
    }
}
