//! Orders: placing them (prices, tax, stock, numbers, idempotency, all server-side and in one
//! transaction), moving them through their lifecycle, recalling a mis-bump, and reading them
//! back through the indexes.

use std::collections::BTreeMap;

use orderd_protocol::{
    BumpAction, EventKind, LineDelta, Order, OrderLine, OrderSource, OrderStatus, OrderType,
    SelectedModifier, StationDelta, StatusChange,
};
use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::menu::Item;
use super::tables::Table;
use super::{Rules, id_text, new_id, parse_id};
use crate::error::TxResult;
use crate::error::{AppError, ErrorKind};
use crate::store::writer::Tx;
use crate::store::{StoreError, Stored, codec, tables as t};

/// The body of `POST /orders`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// `dine_in`, `takeaway` or `delivery`.
    #[serde(rename = "type")]
    pub order_type: OrderType,
    /// The table (staff, dine-in).
    #[serde(default)]
    pub table_id: Option<String>,
    /// The table's QR token (customers; staff may use it too).
    #[serde(default)]
    pub table_token: Option<String>,
    /// Delivery address.
    #[serde(default)]
    pub address: Option<String>,
    /// Customer's name.
    #[serde(default)]
    pub customer_name: Option<String>,
    /// Customer's phone, E.164.
    #[serde(default)]
    pub customer_phone: Option<String>,
    /// Note for the whole order.
    #[serde(default)]
    pub note: Option<String>,
    /// The guest's allergies, for the kitchen (every station must acknowledge it before its
    /// first bump). Blank is none.
    #[serde(default)]
    pub allergy: Option<String>,
    /// The lines.
    pub items: Vec<NewLine>,
}

/// One requested line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    /// Menu item id.
    pub item_id: String,
    /// How many (checked against the limits; signed so a negative number gets a clear answer).
    pub quantity: i64,
    /// Chosen option ids.
    #[serde(default)]
    pub modifiers: Vec<String>,
    /// Note for the kitchen.
    #[serde(default)]
    pub note: Option<String>,
}

/// An order with its status history, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredOrder {
    /// The order.
    pub order: Order,
    /// Every status change, oldest first; the first is the placement.
    pub history: Vec<StatusChange>,
    /// Seq of the last event about this order (retention waits until consumers pass it).
    pub last_event_seq: u64,
    /// The Idempotency-Key it was placed with, so the key can be forgotten when it expires
    /// without scanning every key.
    pub idem_key: Option<String>,
    /// The stations that finished their part (bumped it), with when and who (version 2).
    pub stations_done: Vec<StationMark>,
    /// The order's allergy note and the stations that acknowledged it (version 3).
    pub allergy: Option<Allergy>,
}

/// An order's allergy note, as the guest or a waiter wrote it, and who in the kitchen has
/// read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allergy {
    /// The note.
    pub note: String,
    /// Who wrote it.
    pub by: String,
    /// The stations that acknowledged it, with when and who.
    pub acked: Vec<StationMark>,
}

impl Allergy {
    /// Whether `station` acknowledged the note.
    pub fn acked_at(&self, station: &str) -> bool {
        self.acked.iter().any(|m| m.station == station)
    }
}

/// A station's bump of its part of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationMark {
    /// The station.
    pub station: String,
    /// When, ms.
    pub at: u64,
    /// Who.
    pub by: String,
}

/// An order as version 1 stored it (before per-station bumps).
#[derive(Deserialize)]
struct StoredOrderV1 {
    order: Order,
    history: Vec<StatusChange>,
    last_event_seq: u64,
    idem_key: Option<String>,
}

/// An order as version 2 stored it (before allergy notes).
#[derive(Deserialize)]
struct StoredOrderV2 {
    order: Order,
    history: Vec<StatusChange>,
    last_event_seq: u64,
    idem_key: Option<String>,
    stations_done: Vec<StationMark>,
}

impl Stored for StoredOrder {
    const WHAT: &'static str = "order";
    const VERSION: u8 = 3;

    fn migrate(version: u8, body: &[u8]) -> Result<Self, StoreError> {
        let codec_error = |e: postcard::Error| StoreError::Codec {
            what: Self::WHAT,
            detail: e.to_string(),
        };
        let v2 = match version {
            1 => {
                let v1: StoredOrderV1 = postcard::from_bytes(body).map_err(codec_error)?;
                StoredOrderV2 {
                    order: v1.order,
                    history: v1.history,
                    last_event_seq: v1.last_event_seq,
                    idem_key: v1.idem_key,
                    stations_done: Vec::new(),
                }
            }
            2 => postcard::from_bytes(body).map_err(codec_error)?,
            _ => {
                return Err(StoreError::UnknownVersion {
                    what: Self::WHAT,
                    version,
                });
            }
        };
        Ok(Self {
            order: v2.order,
            history: v2.history,
            last_event_seq: v2.last_event_seq,
            idem_key: v2.idem_key,
            stations_done: v2.stations_done,
            allergy: None,
        })
    }
}

impl StoredOrder {
    /// Whether `station` has bumped its part.
    pub fn done_at(&self, station: &str) -> bool {
        self.stations_done.iter().any(|m| m.station == station)
    }

    /// What the kitchen's boards keep of the order besides the order itself.
    pub fn kitchen_marks(&self) -> KitchenMarks {
        KitchenMarks {
            done: self
                .stations_done
                .iter()
                .map(|m| m.station.clone())
                .collect(),
            allergy: self.allergy.as_ref().map(|a| {
                (
                    a.note.clone(),
                    a.acked.iter().map(|m| m.station.clone()).collect(),
                )
            }),
        }
    }
}

/// What the kitchen's boards keep of an order besides the order: the stations that bumped
/// their part, and its allergy note with the stations that acknowledged it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KitchenMarks {
    /// Stations that bumped their part.
    pub done: Vec<String>,
    /// The allergy note and the stations that acknowledged it.
    pub allergy: Option<(String, Vec<String>)>,
}

/// What an `Idempotency-Key` remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdemRecord {
    /// The first 16 bytes of the SHA-256 of the canonical request body.
    pub body_hash: [u8; 16],
    /// The order it created.
    pub order_id: u128,
    /// When the key may be forgotten.
    pub expires_at: u64,
}

impl Stored for IdemRecord {
    const WHAT: &'static str = "idempotency record";
}

/// The result of placing an order.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The order.
    pub order: Order,
    /// Whether it was created earlier under the same Idempotency-Key.
    pub replayed: bool,
    /// Its allergy note (of a new order; a replayed one is read back whole).
    pub allergy: Option<Allergy>,
}

/// Who places or changes an order.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Username, `customer`, or a device id.
    pub name: String,
    /// Staff or customer.
    pub source: OrderSource,
    /// A customer verified by code: the phone the order records and where its status
    /// messages go, and the table the verification is bound to.
    pub verified: Option<(super::outbox::Contact, Option<String>)>,
}

fn text_ok(s: Option<&String>, max: usize) -> bool {
    s.is_none_or(|s| s.chars().count() <= max)
}

/// Whether `s` looks like an E.164 phone number.
pub fn is_e164(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or("");
    (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Checks requested lines: quantities, id and modifier lengths, notes.
fn check_lines(items: &[NewLine], rules: &Rules, field: &str) -> Result<(), AppError> {
    let max = rules.max_text;
    for (i, line) in items.iter().enumerate() {
        if line.quantity < 1 || line.quantity > i64::from(rules.max_quantity) {
            return Err(AppError::invalid(
                &format!("{field}[{i}].quantity"),
                format!("must be 1 to {}", rules.max_quantity),
            ));
        }
        if line.item_id.chars().count() > 64 || line.modifiers.len() > 50 {
            return Err(AppError::invalid(
                &format!("{field}[{i}]"),
                "item id too long or too many modifiers",
            ));
        }
        if line.modifiers.iter().any(|m| m.chars().count() > 64) {
            return Err(AppError::invalid(
                &format!("{field}[{i}].modifiers"),
                "modifier id too long",
            ));
        }
        if !text_ok(line.note.as_ref(), max) {
            return Err(AppError::invalid(
                &format!("{field}[{i}].note"),
                format!("at most {max} characters"),
            ));
        }
    }
    Ok(())
}

impl NewOrder {
    /// Checks everything that needs no store: counts, quantities, lengths, type rules.
    pub fn check_shape(&self, rules: &Rules, source: OrderSource) -> Result<(), AppError> {
        let max = rules.max_text;
        if self.items.is_empty() {
            return Err(AppError::invalid(
                "items",
                "an order needs at least one item",
            ));
        }
        if self.items.len() > rules.max_items {
            return Err(AppError::invalid(
                "items",
                format!("at most {} lines per order", rules.max_items),
            ));
        }
        check_lines(&self.items, rules, "items")?;
        for (field, value) in [
            ("note", &self.note),
            ("allergy", &self.allergy),
            ("customer_name", &self.customer_name),
            ("address", &self.address),
        ] {
            if !text_ok(value.as_ref(), max) {
                return Err(AppError::invalid(
                    field,
                    format!("at most {max} characters"),
                ));
            }
        }
        if self
            .table_id
            .as_ref()
            .is_some_and(|s| s.chars().count() > 64)
            || self
                .table_token
                .as_ref()
                .is_some_and(|s| s.chars().count() > 128)
        {
            return Err(AppError::invalid("table", "table id or token too long"));
        }
        if let Some(phone) = &self.customer_phone
            && !is_e164(phone)
        {
            return Err(AppError::invalid(
                "customer_phone",
                "must be in E.164 form, e.g. +355691234567",
            ));
        }
        match self.order_type {
            OrderType::DineIn => {
                if self.table_id.is_none() && self.table_token.is_none() {
                    return Err(AppError::invalid(
                        "table_id",
                        "a dine-in order needs table_id or table_token",
                    ));
                }
                if self.address.is_some() {
                    return Err(AppError::invalid(
                        "address",
                        "only delivery orders take an address",
                    ));
                }
            }
            OrderType::Takeaway => {
                if self.table_id.is_some() || self.address.is_some() {
                    return Err(AppError::invalid(
                        "type",
                        "a takeaway order has no table and no address",
                    ));
                }
            }
            OrderType::Delivery => {
                if self.address.as_ref().is_none_or(|a| a.trim().is_empty()) {
                    return Err(AppError::invalid(
                        "address",
                        "a delivery order needs an address",
                    ));
                }
                if self.table_id.is_some() {
                    return Err(AppError::invalid(
                        "table_id",
                        "a delivery order has no table",
                    ));
                }
            }
        }
        if source == OrderSource::Customer
            && (self.order_type != OrderType::DineIn || self.table_token.is_none())
        {
            // Allowed for staff, not for this caller.
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "customers_dine_in_only",
                "customers order dine-in through their table's QR code (table_token)",
            )
            .with_details(json!({ "field": "type" })));
        }
        Ok(())
    }

    /// The hash an `Idempotency-Key` remembers: of the caller's scope (staff user, verified
    /// phone or table) and the canonical body, so a key replayed by someone else never matches.
    pub fn body_hash(&self, scope: &str) -> [u8; 16] {
        super::body_hash(scope, self)
    }
}

/// Finds a table by QR token in constant time per comparison.
pub fn table_by_token(tx: &Tx<'_>, token: &str) -> TxResult<Option<Table>> {
    let mut tables = Vec::new();
    for row in tx.tables.iter()? {
        tables.push(codec::decode::<Table>(row?.1.value())?);
    }
    Ok(super::tables::matching(tables, token))
}

fn price_lines(tx: &Tx<'_>, rules: &Rules, items: &[NewLine]) -> TxResult<Vec<OrderLine>> {
    let menu = super::menu::arc_of(tx);
    let stock = &tx.stock;
    let lang = rules.default_language.as_str();
    let mut lines = Vec::with_capacity(items.len());
    for (i, line) in items.iter().enumerate() {
        let Some(item) = menu.item(&line.item_id) else {
            // The menu is state that changes under a client's feet: 409, not a malformed body.
            return Err(AppError::new(
                ErrorKind::Conflict,
                "unknown_item",
                format!("items[{i}]: no menu item {:?}", line.item_id),
            )
            .with_details(json!({ "line": i, "item_id": line.item_id }))
            .into());
        };
        let sold_out = stock.get(item.id.as_str())?.is_some_and(|v| v.value() == 0);
        if !item.available || sold_out {
            return Err(AppError::new(
                ErrorKind::Conflict,
                if sold_out {
                    "sold_out"
                } else {
                    "item_unavailable"
                },
                format!("items[{i}]: {:?} is not available now", item.id),
            )
            .with_details(json!({ "line": i, "item_id": item.id }))
            .into());
        }
        let modifiers = select_modifiers(item, &line.modifiers, lang).map_err(|msg| {
            AppError::new(
                ErrorKind::Conflict,
                "invalid_modifiers",
                format!("items[{i}]: {msg}"),
            )
            .with_details(json!({ "line": i, "item_id": item.id }))
        })?;
        let unit_price = modifiers
            .iter()
            .try_fold(item.price, |acc, m| acc.checked_add(m.price_delta))
            .filter(|p| *p >= 0)
            .ok_or_else(|| AppError::invalid(&format!("items[{i}]"), "price out of range"))?;
        let quantity = line.quantity as u32;
        let line_total = unit_price
            .checked_mul(i64::from(quantity))
            .ok_or_else(|| AppError::invalid(&format!("items[{i}]"), "total out of range"))?;
        lines.push(OrderLine {
            item_id: item.id.clone(),
            name: super::menu::localize(&item.name, lang, lang).to_owned(),
            quantity,
            unit_price,
            line_total,
            modifiers,
            note: line.note.clone(),
            station: item.station.clone(),
        });
    }
    Ok(lines)
}

fn select_modifiers(
    item: &Item,
    chosen: &[String],
    lang: &str,
) -> Result<Vec<SelectedModifier>, String> {
    let mut out = Vec::with_capacity(chosen.len());
    let mut per_group: BTreeMap<&str, u32> = BTreeMap::new();
    for (k, id) in chosen.iter().enumerate() {
        if chosen[..k].contains(id) {
            return Err(format!("option {id:?} chosen twice"));
        }
        let Some((group, option)) = item.option(id) else {
            return Err(format!("{:?} has no option {id:?}", item.id));
        };
        *per_group.entry(group.id.as_str()).or_default() += 1;
        out.push(SelectedModifier {
            group_id: group.id.clone(),
            option_id: option.id.clone(),
            name: super::menu::localize(&option.name, lang, lang).to_owned(),
            price_delta: option.price_delta,
        });
    }
    for group in &item.modifier_groups {
        let n = per_group.get(group.id.as_str()).copied().unwrap_or(0);
        if n < group.min || n > group.max {
            return Err(format!(
                "group {:?} needs {} to {} choices, got {n}",
                group.id, group.min, group.max
            ));
        }
    }
    Ok(out)
}

/// Tax and total from a subtotal, rounding half up.
pub fn tax_and_total(subtotal: i64, rules: &Rules) -> (i64, i64) {
    let rate = i128::from(rules.tax_rate_bp);
    let sub = i128::from(subtotal);
    if rules.prices_include_tax {
        let denom = 10_000 + rate;
        let tax = (sub * rate * 2 + denom) / (denom * 2);
        (tax as i64, subtotal)
    } else {
        let tax = (sub * rate * 2 + 10_000) / 20_000;
        (tax as i64, subtotal + tax as i64)
    }
}

/// 409 `sold_out` / `insufficient_stock`: `requested` more of an item than the `level` left.
fn short_of_stock(item_id: &str, level: u32, requested: i64) -> AppError {
    AppError::new(
        ErrorKind::Conflict,
        if level == 0 {
            "sold_out"
        } else {
            "insufficient_stock"
        },
        format!("only {level} of {item_id:?} left"),
    )
    .with_details(json!({ "item_id": item_id, "available": level, "requested": requested }))
}

/// Places an order inside the batch: checks everything, then writes the order, its indexes,
/// the stock, the number counter, the idempotency record and the events. `idem` is the
/// `Idempotency-Key` and the caller's scope it belongs to.
pub fn place(
    tx: &mut Tx<'_>,
    rules: &Rules,
    req: &NewOrder,
    actor: &Actor,
    idem: Option<(&str, &str)>,
) -> TxResult<Placed> {
    let now = tx.now_ms();
    // --- check ---
    let idem_key = idem.map(|(key, _)| key);
    let body_hash = idem.map(|(_, scope)| req.body_hash(scope));
    if let (Some(key), Some(hash)) = (idem_key, body_hash)
        && let Some(v) = tx.idempotency.get(key)?
    {
        {
            let rec: IdemRecord = codec::decode(v.value())?;
            if rec.expires_at > now {
                if rec.body_hash != hash {
                    // Another body, or another caller: the same answer either way, which says
                    // nothing about the order the key made.
                    return Err(AppError::new(
                        ErrorKind::Conflict,
                        "idempotency_key_reused",
                        "this Idempotency-Key is already in use; send a new key",
                    )
                    .into());
                }
                // An order pruned by retention frees its key: then this is a new order.
                if let Some(stored) = get_in_tx(tx, rec.order_id)? {
                    return Ok(Placed {
                        order: stored.order,
                        replayed: true,
                        allergy: stored.allergy,
                    });
                }
            }
        }
    }
    let table = match (&req.table_token, &req.table_id) {
        (Some(token), _) => Some(table_by_token(tx, token)?.ok_or_else(|| {
            AppError::new(
                ErrorKind::Unauthorized,
                "invalid_table_token",
                "this table's QR code is no longer valid; scan the code on the table again",
            )
        })?),
        (None, Some(id)) => Some(match tx.tables.get(id.as_str())? {
            Some(v) => codec::decode::<Table>(v.value())?,
            None => {
                return Err(AppError::new(
                    ErrorKind::NotFound,
                    "table_not_found",
                    format!("no table {id:?}"),
                )
                .with_details(json!({ "field": "table_id" }))
                .into());
            }
        }),
        (None, None) => None,
    };
    if let Some((_, Some(bound))) = &actor.verified
        && table.as_ref().is_none_or(|t| &t.id != bound)
    {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            "token_table_mismatch",
            "this verification belongs to another table; verify again at this table",
        )
        .into());
    }
    let lines = price_lines(tx, rules, &req.items)?;
    let mut need: BTreeMap<&str, u32> = BTreeMap::new();
    for l in &lines {
        *need.entry(l.item_id.as_str()).or_default() += l.quantity;
    }
    let mut stock_after = Vec::new();
    for (&item_id, &qty) in &need {
        if let Some(level) = tx.stock.get(item_id)?.map(|v| v.value()) {
            if level < qty {
                return Err(short_of_stock(item_id, level, i64::from(qty)).into());
            }
            stock_after.push((item_id.to_owned(), level, level - qty));
        }
    }
    let subtotal = lines
        .iter()
        .try_fold(0i64, |acc, l| acc.checked_add(l.line_total))
        .ok_or_else(|| AppError::invalid("items", "order total out of range"))?;
    let (tax, total) = tax_and_total(subtotal, rules);
    // The day and its counter come from the last key of the day index, read and extended in
    // this same transaction, so concurrent orders never share a number. The clock never goes
    // back (`clock::GuardedClock`), and the day never precedes the last day used either (say,
    // after the day-start hour or time zone was changed): numbers stay in order.
    let (last_day, last_seq) = tx.idx_day.last()?.map_or((0, 0), |(k, _)| k.value());
    let today = rules.business_day(now);
    let (day, last) = if last_day >= today {
        (last_day, last_seq)
    } else {
        (today, 0)
    };
    let daily_seq_u32 = last
        .checked_add(1)
        .ok_or_else(|| AppError::new(ErrorKind::Conflict, "day_full", "order counter exhausted"))?;

    // Ids grow strictly in commit order (time-ordered, random low bits, bumped past the last
    // one if the clock stands still or went back), so the orders tree only ever appends and
    // its pages stay full.
    let last_id = tx.orders.last()?.map_or(0, |(k, _)| k.value());
    let candidate = new_id(now);
    let id = if candidate > last_id {
        candidate
    } else {
        last_id + 1 + u128::from(rand::random::<u32>())
    };

    // --- write ---
    let order = Order {
        id: id_text(id),
        number: rules.order_number(day, daily_seq_u32),
        business_day: day,
        daily_seq: daily_seq_u32,
        order_type: req.order_type,
        source: actor.source,
        status: OrderStatus::Placed,
        table_id: table.as_ref().map(|t| t.id.clone()),
        table_label: table.as_ref().map(|t| t.label.clone()),
        address: req.address.clone(),
        customer_name: req.customer_name.clone(),
        customer_phone: match &actor.verified {
            Some((contact, _)) => Some(contact.phone.clone()),
            None => req.customer_phone.clone(),
        },
        note: req.note.clone(),
        items: lines,
        subtotal,
        tax,
        total,
        currency: rules.currency.clone(),
        created_at: now,
        updated_at: now,
        accepted_at: None,
        preparing_at: None,
        ready_at: None,
        finished_at: None,
        out_for_delivery_at: None,
        cancel_reason: None,
    };
    let mut seq = tx.emit(EventKind::OrderPlaced(Box::new(order.clone())))?;
    // Right after its order, in the same transaction: the kitchen hub reads both in one burst.
    let allergy = req
        .allergy
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|note| Allergy {
            note: note.to_owned(),
            by: actor.name.clone(),
            acked: Vec::new(),
        });
    if let Some(a) = &allergy {
        seq = tx.emit(EventKind::AllergyNoted {
            order_id: order.id.clone(),
            number: order.number.clone(),
            note: a.note.clone(),
            actor: actor.name.clone(),
        })?;
    }
    for (item_id, before, after) in stock_after {
        tx.stock.insert(item_id.as_str(), after)?;
        stock_events(tx, &item_id, before, after)?;
    }
    let stored = StoredOrder {
        order,
        history: vec![StatusChange {
            from: None,
            to: OrderStatus::Placed,
            actor: actor.name.clone(),
            at: now,
            note: None,
            recall: false,
        }],
        last_event_seq: seq,
        idem_key: idem_key.map(str::to_owned),
        stations_done: Vec::new(),
        allergy,
    };
    write_order(tx, id, &stored)?;
    tx.idx_active.insert((OrderStatus::Placed.code(), id), ())?;
    tx.idx_day.insert((day, daily_seq_u32), id)?;
    if let Some(phone) = &stored.order.customer_phone {
        tx.idx_phone.insert((phone.as_str(), id), ())?;
    }
    if let Some((contact, _)) = &actor.verified {
        super::outbox::set_contact(tx, id, contact)?;
    }
    super::checks::join_placed(tx, rules, &stored.order, id)?;
    if let (Some(key), Some(body_hash)) = (idem_key, body_hash) {
        let rec = IdemRecord {
            body_hash,
            order_id: id,
            expires_at: now + rules.idempotency_ttl_ms,
        };
        tx.idempotency
            .insert(key, codec::encode(&rec)?.as_slice())?;
    }
    Ok(Placed {
        order: stored.order,
        replayed: false,
        allergy: stored.allergy,
    })
}

/// Emits the stock events for a level change of a tracked item.
pub fn stock_events(tx: &mut Tx<'_>, item_id: &str, before: u32, after: u32) -> TxResult<()> {
    if after == 0 && before > 0 {
        tx.emit(EventKind::SoldOut {
            item_id: item_id.to_owned(),
        })?;
        tx.emit(EventKind::AvailabilityChanged {
            item_id: item_id.to_owned(),
            available: false,
        })?;
    } else if before == 0 && after > 0 {
        let on = super::menu::of(tx)
            .item(item_id)
            .is_some_and(|i| i.available);
        if on {
            tx.emit(EventKind::AvailabilityChanged {
                item_id: item_id.to_owned(),
                available: true,
            })?;
        }
    }
    if after > 0 {
        let threshold = super::menu::of(tx)
            .item(item_id)
            .and_then(|i| i.low_stock_threshold);
        if let Some(th) = threshold
            && after <= th
            && before > th
        {
            tx.emit(EventKind::StockLow {
                item_id: item_id.to_owned(),
                remaining: after,
            })?;
        }
    }
    Ok(())
}

fn write_order(tx: &mut Tx<'_>, id: u128, stored: &StoredOrder) -> TxResult<()> {
    tx.orders.insert(id, codec::encode(stored)?.as_slice())?;
    Ok(())
}

fn get_in_tx(tx: &Tx<'_>, id: u128) -> TxResult<Option<StoredOrder>> {
    Ok(match tx.orders.get(id)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    })
}

fn load(tx: &Tx<'_>, id: &str) -> TxResult<(u128, StoredOrder)> {
    let key = parse_id(id).ok_or_else(|| AppError::not_found("order"))?;
    let stored = get_in_tx(tx, key)?.ok_or_else(|| AppError::not_found("order"))?;
    Ok((key, stored))
}

fn stamp(order: &mut Order, status: OrderStatus, at: Option<u64>) {
    match status {
        OrderStatus::Placed => {}
        OrderStatus::Accepted => order.accepted_at = at,
        OrderStatus::Preparing => order.preparing_at = at,
        OrderStatus::Ready => order.ready_at = at,
        OrderStatus::OutForDelivery => order.out_for_delivery_at = at,
        OrderStatus::Served
        | OrderStatus::PickedUp
        | OrderStatus::Delivered
        | OrderStatus::Cancelled => order.finished_at = at,
    }
}

/// Moves an order to `to`, if the lifecycle allows it (409 listing the allowed ones otherwise).
pub fn transition(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: &str,
    to: OrderStatus,
    note: Option<String>,
    actor: &str,
) -> TxResult<Order> {
    let loaded = load(tx, id)?;
    transition_loaded(tx, rules, loaded, to, note, actor)
}

/// [`transition`] of an order already read in this transaction.
fn transition_loaded(
    tx: &mut Tx<'_>,
    rules: &Rules,
    (key, mut stored): (u128, StoredOrder),
    to: OrderStatus,
    note: Option<String>,
    actor: &str,
) -> TxResult<Order> {
    let now = tx.now_ms();
    let from = stored.order.status;
    if !from.can_move_to(to, stored.order.order_type) {
        let allowed: Vec<&str> = from
            .allowed_next(stored.order.order_type)
            .iter()
            .map(|s| s.as_str())
            .collect();
        return Err(AppError::new(
            ErrorKind::Conflict,
            "invalid_transition",
            format!(
                "a {} order cannot go from {} to {}",
                stored.order.order_type.as_str(),
                from.as_str(),
                to.as_str()
            ),
        )
        .with_details(json!({ "from": from.as_str(), "to": to.as_str(), "allowed": allowed }))
        .into());
    }
    if to == OrderStatus::Cancelled && note.as_ref().is_none_or(|n| n.trim().is_empty()) {
        return Err(AppError::invalid("note", "cancelling needs a reason in `note`").into());
    }
    if to == OrderStatus::Cancelled {
        super::checks::check_order_change(tx, rules, key, None)?;
    }
    // --- write ---
    let order = &mut stored.order;
    order.status = to;
    order.updated_at = now;
    stamp(order, to, Some(now));
    if to == OrderStatus::Cancelled {
        order.cancel_reason.clone_from(&note);
    }
    stored.history.push(StatusChange {
        from: Some(from),
        to,
        actor: actor.to_owned(),
        at: now,
        note: note.clone(),
        recall: false,
    });
    stored.last_event_seq = tx.emit(EventKind::StatusChanged {
        order_id: stored.order.id.clone(),
        number: stored.order.number.clone(),
        from,
        to,
        actor: actor.to_owned(),
        note,
        recall: false,
    })?;
    tx.idx_active.remove((from.code(), key))?;
    if to.is_final() {
        tx.idx_finished.insert((now, key), ())?;
    } else {
        tx.idx_active.insert((to.code(), key), ())?;
    }
    write_order(tx, key, &stored)?;
    if to == OrderStatus::Cancelled {
        super::checks::order_cancelled(tx, key)?;
    }
    let short = short_number(&stored.order);
    super::outbox::status_changed(tx, key, &stored.order.id, &short, to)?;
    Ok(stored.order)
}

/// The body of `PATCH /orders/{id}/items`: new quantities of existing lines (by index; 0
/// removes the line) and lines to add.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditLines {
    /// New quantities.
    #[serde(default)]
    pub set: Vec<SetQuantity>,
    /// New lines.
    #[serde(default)]
    pub add: Vec<NewLine>,
}

/// One new quantity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetQuantity {
    /// The line's index in the order's items.
    pub line: u32,
    /// The new quantity (0 removes the line).
    pub quantity: i64,
}

impl EditLines {
    /// Checks everything that needs no store.
    pub fn check_shape(&self, rules: &Rules) -> Result<(), AppError> {
        if self.set.is_empty() && self.add.is_empty() {
            return Err(AppError::invalid(
                "set",
                "nothing to change: give `set` or `add`",
            ));
        }
        if self.set.len() > rules.max_items || self.add.len() > rules.max_items {
            return Err(AppError::invalid(
                "set",
                format!("at most {} changes", rules.max_items),
            ));
        }
        for (i, s) in self.set.iter().enumerate() {
            if s.quantity < 0 || s.quantity > i64::from(rules.max_quantity) {
                return Err(AppError::invalid(
                    &format!("set[{i}].quantity"),
                    format!("must be 0 (remove) to {}", rules.max_quantity),
                ));
            }
        }
        check_lines(&self.add, rules, "add")
    }
}

/// The kitchen's name of a line: the item and, after a dash, its modifiers.
fn delta_name(line: &OrderLine) -> String {
    if line.modifiers.is_empty() {
        return line.name.clone();
    }
    let mods: Vec<&str> = line.modifiers.iter().map(|m| m.name.as_str()).collect();
    // A plain hyphen: the small fonts of displays and printers often lack the long dash.
    format!("{} - {}", line.name, mods.join(", "))
}

/// Changes the lines of an order the kitchen has not finished (placed, accepted or
/// preparing): quantities, removals and additions, with stock, totals and one
/// `lines_edited` event carrying the per-station deltas and every line after the change.
pub fn edit_lines(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: &str,
    req: &EditLines,
    actor: &str,
) -> TxResult<Order> {
    if let Some(key) = parse_id(id) {
        super::checks::check_editable(tx, key)?;
    }
    edit_lines_unchecked(tx, rules, id, req, actor)
}

/// [`edit_lines`] without asking the order's check (a void on the check uses it).
pub fn edit_lines_unchecked(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: &str,
    req: &EditLines,
    actor: &str,
) -> TxResult<Order> {
    let now = tx.now_ms();
    let (key, mut stored) = load(tx, id)?;
    let status = stored.order.status;
    if !matches!(
        status,
        OrderStatus::Placed | OrderStatus::Accepted | OrderStatus::Preparing
    ) {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "not_editable",
            format!(
                "a {} order can no longer change; place a new order",
                status.as_str()
            ),
        )
        .with_details(json!({ "status": status.as_str() }))
        .into());
    }
    let mut items = stored.order.items.clone();
    let mut changes: Vec<StationDelta> = Vec::new();
    // Net units per item, for the stock: positive takes, negative gives back.
    let mut need: BTreeMap<String, i64> = BTreeMap::new();
    // A line named twice takes its last quantity.
    let last_per_line = req
        .set
        .iter()
        .enumerate()
        .filter(|(i, s)| !req.set[i + 1..].iter().any(|o| o.line == s.line));
    for (i, s) in last_per_line {
        let Some(line) = items.get_mut(s.line as usize) else {
            // The order as it is now decides: 409.
            return Err(AppError::new(
                ErrorKind::Conflict,
                "no_such_line",
                format!(
                    "set[{i}].line: the order has {} lines",
                    stored.order.items.len()
                ),
            )
            .with_details(json!({ "field": format!("set[{i}].line") }))
            .into());
        };
        let new = s.quantity as u32;
        if new == line.quantity {
            continue;
        }
        *need.entry(line.item_id.clone()).or_default() += i64::from(new) - i64::from(line.quantity);
        changes.push(StationDelta {
            station: line.station.clone(),
            delta: LineDelta {
                item_id: line.item_id.clone(),
                name: delta_name(line),
                old_quantity: line.quantity,
                new_quantity: new,
            },
        });
        line.quantity = new;
        line.line_total = line
            .unit_price
            .checked_mul(i64::from(new))
            .ok_or_else(|| AppError::invalid(&format!("set[{i}]"), "total out of range"))?;
    }
    for line in price_lines(tx, rules, &req.add)? {
        *need.entry(line.item_id.clone()).or_default() += i64::from(line.quantity);
        changes.push(StationDelta {
            station: line.station.clone(),
            delta: LineDelta {
                item_id: line.item_id.clone(),
                name: delta_name(&line),
                old_quantity: 0,
                new_quantity: line.quantity,
            },
        });
        items.push(line);
    }
    items.retain(|l| l.quantity > 0);
    if items.is_empty() {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "last_line",
            "an order keeps at least one line; cancel it instead",
        )
        .with_details(json!({ "field": "set" }))
        .into());
    }
    if items.len() > rules.max_items {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "too_many_lines",
            format!("an order has at most {} lines", rules.max_items),
        )
        .with_details(json!({ "field": "add" }))
        .into());
    }
    let mut stock_after = Vec::new();
    for (item_id, &delta) in &need {
        let Some(level) = tx.stock.get(item_id.as_str())?.map(|v| v.value()) else {
            continue;
        };
        let after = i64::from(level) - delta;
        if after < 0 {
            return Err(short_of_stock(item_id, level, delta).into());
        }
        stock_after.push((
            item_id.clone(),
            level,
            u32::try_from(after).unwrap_or(u32::MAX),
        ));
    }
    let subtotal = items
        .iter()
        .try_fold(0i64, |acc, l| acc.checked_add(l.line_total))
        .ok_or_else(|| AppError::invalid("items", "order total out of range"))?;
    let (tax, total) = tax_and_total(subtotal, rules);
    super::checks::check_order_change(tx, rules, key, Some(&items))?;
    // --- write ---
    // A station whose lines changed has new work: its bump no longer stands.
    stored
        .stations_done
        .retain(|m| !changes.iter().any(|c| c.station == m.station));
    let order = &mut stored.order;
    order.items = items;
    order.subtotal = subtotal;
    order.tax = tax;
    order.total = total;
    order.updated_at = now;
    stored.last_event_seq = tx.emit(EventKind::LinesEdited {
        order_id: order.id.clone(),
        number: order.number.clone(),
        changes,
        lines: order.items.clone(),
        subtotal,
        tax,
        total,
        actor: actor.to_owned(),
    })?;
    for (item_id, before, after) in stock_after {
        tx.stock.insert(item_id.as_str(), after)?;
        stock_events(tx, &item_id, before, after)?;
    }
    write_order(tx, key, &stored)?;
    super::checks::order_edited(tx, rules, &stored.order, key)?;
    Ok(stored.order)
}

/// The short number the kitchen calls out and customers are told: the day's number, `NNN`.
pub fn short_number(order: &Order) -> String {
    format!("{:03}", order.daily_seq)
}

/// Whether an order in this status is still work for the kitchen (it is on the station
/// boards, and a bump bar moves it on).
pub fn in_kitchen(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Placed | OrderStatus::Accepted | OrderStatus::Preparing
    )
}

/// A station's bump: the station's part of the order is done (a `StationDone` event), so its
/// board drops the ticket while other stations keep theirs. When every station with lines on
/// the order is done, the order moves on to `ready`; before that, a first bump moves a placed
/// or accepted order to `preparing`. With `recall`, the station takes its bump back, within
/// the recall window, and an order that became ready with it goes back to `preparing`. Read and
/// decided in the same transaction as the change, so two quick presses never bump twice.
/// Refused when the order has nothing for the station, has left the kitchen, or the station
/// already bumped it.
pub fn bump(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: &str,
    station: &str,
    recall: bool,
    actor: &str,
) -> TxResult<Order> {
    let (key, mut stored) = load(tx, id)?;
    let stations: std::collections::BTreeSet<String> = stored
        .order
        .items
        .iter()
        .map(|l| l.station.clone())
        .collect();
    if !stations.contains(station) {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            "not_at_station",
            format!("the order has nothing for the {station} station"),
        )
        .into());
    }
    let status = stored.order.status;
    let now = tx.now_ms();
    if recall {
        let Some(pos) = stored
            .stations_done
            .iter()
            .position(|m| m.station == station)
            .filter(|_| in_kitchen(status) || status == OrderStatus::Ready)
        else {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "nothing_to_recall",
                format!("the {station} station has no bump of this order to take back"),
            )
            .into());
        };
        if now.saturating_sub(stored.stations_done[pos].at) > rules.recall_window_ms {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "recall_window_passed",
                format!(
                    "the bump is older than the {} s recall window",
                    rules.recall_window_ms / 1000
                ),
            )
            .into());
        }
        stored.stations_done.remove(pos);
        mark_station(tx, key, &mut stored, station, false, actor)?;
        if status == OrderStatus::Ready {
            let loaded = load(tx, id)?;
            return recall_loaded(tx, rules, loaded, actor);
        }
        return Ok(stored.order);
    }
    if !in_kitchen(status) {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "left_kitchen",
            "the order has left the kitchen",
        )
        .into());
    }
    if stored.done_at(station) {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "already_done",
            format!("the {station} station has already bumped this order"),
        )
        .into());
    }
    if stored
        .allergy
        .as_ref()
        .is_some_and(|a| !a.acked_at(station))
    {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "allergy_unacknowledged",
            "the order has an allergy note: acknowledge it before the first bump",
        )
        .into());
    }
    stored.stations_done.push(StationMark {
        station: station.to_owned(),
        at: now,
        by: actor.to_owned(),
    });
    let all_done = stations.iter().all(|s| stored.done_at(s));
    mark_station(tx, key, &mut stored, station, true, actor)?;
    let target = if all_done {
        OrderStatus::Ready
    } else {
        OrderStatus::Preparing
    };
    let mut order = stored.order;
    while in_kitchen(order.status) && order.status != target {
        let Some(next) = order
            .status
            .allowed_next(order.order_type)
            .iter()
            .copied()
            .find(|s| *s != OrderStatus::Cancelled)
        else {
            break;
        };
        let loaded = load(tx, id)?;
        order = transition_loaded(tx, rules, loaded, next, None, actor)?;
    }
    Ok(order)
}

/// What a station asks of its ticket: a bump, a recall of its bump, or an acknowledgement
/// of the order's allergy note (a bump bar's payload and the kitchen page's buttons alike).
pub fn station_act(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: &str,
    station: &str,
    action: BumpAction,
    actor: &str,
) -> TxResult<Order> {
    match action {
        BumpAction::Bump => bump(tx, rules, id, station, false, actor),
        BumpAction::Recall => bump(tx, rules, id, station, true, actor),
        BumpAction::AckAllergy => ack_allergy(tx, id, station, actor),
    }
}

/// A station acknowledges the order's allergy note: its cook has read it, and may bump.
/// Refused when the order has no note, nothing for the station, has left the kitchen, or the
/// station already acknowledged it.
pub fn ack_allergy(tx: &mut Tx<'_>, id: &str, station: &str, actor: &str) -> TxResult<Order> {
    let (key, mut stored) = load(tx, id)?;
    if !stored.order.items.iter().any(|l| l.station == station) {
        return Err(AppError::new(
            ErrorKind::Forbidden,
            "not_at_station",
            format!("the order has nothing for the {station} station"),
        )
        .into());
    }
    if !in_kitchen(stored.order.status) {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "left_kitchen",
            "the order has left the kitchen",
        )
        .into());
    }
    let now = tx.now_ms();
    let Some(allergy) = stored.allergy.as_mut() else {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "no_allergy",
            "the order has no allergy note",
        )
        .into());
    };
    if allergy.acked_at(station) {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "already_acknowledged",
            format!("the {station} station has already acknowledged the allergy note"),
        )
        .into());
    }
    allergy.acked.push(StationMark {
        station: station.to_owned(),
        at: now,
        by: actor.to_owned(),
    });
    stored.last_event_seq = tx.emit(EventKind::AllergyAcked {
        order_id: stored.order.id.clone(),
        number: stored.order.number.clone(),
        station: station.to_owned(),
        actor: actor.to_owned(),
    })?;
    write_order(tx, key, &stored)?;
    Ok(stored.order)
}

/// Records a station's bump (or its recall) as an event and writes the order.
fn mark_station(
    tx: &mut Tx<'_>,
    key: u128,
    stored: &mut StoredOrder,
    station: &str,
    done: bool,
    actor: &str,
) -> TxResult<()> {
    stored.last_event_seq = tx.emit(EventKind::StationDone {
        order_id: stored.order.id.clone(),
        number: stored.order.number.clone(),
        station: station.to_owned(),
        done,
        actor: actor.to_owned(),
    })?;
    write_order(tx, key, stored)?;
    Ok(())
}

/// Undoes the last transition, within the recall window. A cancellation cannot be recalled.
pub fn recall(tx: &mut Tx<'_>, rules: &Rules, id: &str, actor: &str) -> TxResult<Order> {
    let loaded = load(tx, id)?;
    recall_loaded(tx, rules, loaded, actor)
}

/// [`recall`] of an order already read in this transaction.
fn recall_loaded(
    tx: &mut Tx<'_>,
    rules: &Rules,
    (key, mut stored): (u128, StoredOrder),
    actor: &str,
) -> TxResult<Order> {
    let now = tx.now_ms();
    let Some(last) = stored.history.last().cloned() else {
        return Err(AppError::not_found("order").into());
    };
    let prev = match last.from {
        Some(prev) if !last.recall && last.to != OrderStatus::Cancelled => prev,
        _ => {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "nothing_to_recall",
                "only the last status change can be recalled, once, and never a cancellation",
            )
            .into());
        }
    };
    if now.saturating_sub(last.at) > rules.recall_window_ms {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "recall_window_passed",
            format!(
                "the last change is older than the {} s recall window",
                rules.recall_window_ms / 1000
            ),
        )
        .into());
    }
    // --- write ---
    let cur = last.to;
    let finished_at = stored.order.finished_at;
    let order = &mut stored.order;
    order.status = prev;
    order.updated_at = now;
    stamp(order, cur, None);
    stored.history.push(StatusChange {
        from: Some(cur),
        to: prev,
        actor: actor.to_owned(),
        at: now,
        note: None,
        recall: true,
    });
    stored.last_event_seq = tx.emit(EventKind::StatusChanged {
        order_id: stored.order.id.clone(),
        number: stored.order.number.clone(),
        from: cur,
        to: prev,
        actor: actor.to_owned(),
        note: None,
        recall: true,
    })?;
    if cur.is_final() {
        if let Some(at) = finished_at {
            tx.idx_finished.remove((at, key))?;
        }
    } else {
        tx.idx_active.remove((cur.code(), key))?;
    }
    tx.idx_active.insert((prev.code(), key), ())?;
    write_order(tx, key, &stored)?;
    Ok(stored.order)
}

// ---------------------------------------------------------------- reads

/// A customer's own orders (placed by a customer with this verified phone), newest first.
pub fn customer_orders(
    rtx: &ReadTransaction,
    phone: &str,
    max: usize,
) -> Result<Vec<Order>, StoreError> {
    let idx = rtx.open_table(t::IDX_PHONE)?;
    let mut out = Vec::new();
    for entry in idx.range((phone, 0u128)..=(phone, u128::MAX))?.rev() {
        let key = entry?.0.value().1;
        if let Some(stored) = get_by_key(rtx, key)?
            && stored.order.source == OrderSource::Customer
        {
            out.push(stored.order);
        }
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// Reads one order with its history.
pub fn get(rtx: &ReadTransaction, id: &str) -> Result<Option<StoredOrder>, StoreError> {
    let Some(key) = parse_id(id) else {
        return Ok(None);
    };
    get_by_key(rtx, key)
}

/// Reads one order by key.
pub fn get_by_key(rtx: &ReadTransaction, key: u128) -> Result<Option<StoredOrder>, StoreError> {
    let t = rtx.open_table(t::ORDERS)?;
    Ok(match t.get(key)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    })
}

/// A page of results and the total count.
pub struct Page<T> {
    /// The items on this page.
    pub data: Vec<T>,
    /// How many there are in all.
    pub total: u64,
}

fn load_keys(rtx: &ReadTransaction, keys: &[u128]) -> Result<Vec<Order>, StoreError> {
    Ok(load_stored(rtx, keys)?
        .into_iter()
        .map(|s| s.order)
        .collect())
}

fn load_stored(rtx: &ReadTransaction, keys: &[u128]) -> Result<Vec<StoredOrder>, StoreError> {
    let t = rtx.open_table(t::ORDERS)?;
    let mut out = Vec::with_capacity(keys.len());
    for &k in keys {
        if let Some(v) = t.get(k)? {
            out.push(codec::decode::<StoredOrder>(v.value())?);
        }
    }
    Ok(out)
}

fn page_of(keys: &[u128], page: u32, limit: u32) -> &[u128] {
    let start = (page.saturating_sub(1) as usize).saturating_mul(limit as usize);
    if start >= keys.len() {
        return &[];
    }
    let end = (start + limit as usize).min(keys.len());
    &keys[start..end]
}

/// Orders not finished yet, oldest first, with the stations that bumped their part.
pub fn active(
    rtx: &ReadTransaction,
    page: u32,
    limit: u32,
) -> Result<Page<StoredOrder>, StoreError> {
    let idx = rtx.open_table(t::IDX_ACTIVE)?;
    let mut keys = Vec::new();
    for row in idx.iter()? {
        keys.push(row?.0.value().1);
    }
    keys.sort_unstable();
    let data = load_stored(rtx, page_of(&keys, page, limit))?;
    Ok(Page {
        data,
        total: keys.len() as u64,
    })
}

/// Orders the kitchen still works on (placed, accepted, preparing) whose key is past `after`,
/// oldest first, handed to `f` one at a time, with their kitchen marks (bumps, allergy), until
/// it returns false. A merge of the active
/// index's three status ranges: the kitchen's boards load only what they show, however many
/// orders stay open.
pub fn kitchen_after(
    rtx: &ReadTransaction,
    after: Option<u128>,
    mut f: impl FnMut(Order, KitchenMarks) -> bool,
) -> Result<(), StoreError> {
    let idx = rtx.open_table(t::IDX_ACTIVE)?;
    let orders = rtx.open_table(t::ORDERS)?;
    let from = after.map_or(0, |a| a.saturating_add(1));
    let mut ranges = Vec::new();
    for status in [
        OrderStatus::Placed,
        OrderStatus::Accepted,
        OrderStatus::Preparing,
    ] {
        let code = status.code();
        ranges.push(idx.range((code, from)..=(code, u128::MAX))?.peekable());
    }
    loop {
        // The smallest next key over the three ranges.
        let mut best: Option<(usize, u128)> = None;
        for (i, r) in ranges.iter_mut().enumerate() {
            if let Some(Ok(row)) = r.peek() {
                let key = row.0.value().1;
                if best.is_none_or(|(_, k)| key < k) {
                    best = Some((i, key));
                }
            } else if let Some(Err(_)) = r.peek() {
                // Surface the storage error.
                r.next().transpose()?;
            }
        }
        let Some((i, key)) = best else {
            return Ok(());
        };
        ranges[i].next();
        if let Some(v) = orders.get(key)? {
            let stored: StoredOrder = codec::decode(v.value())?;
            let marks = stored.kitchen_marks();
            if !f(stored.order, marks) {
                return Ok(());
            }
        }
    }
}

/// Orders finished since `since_ms`, newest first.
pub fn recent(
    rtx: &ReadTransaction,
    since_ms: u64,
    page: u32,
    limit: u32,
) -> Result<Page<Order>, StoreError> {
    let idx = rtx.open_table(t::IDX_FINISHED)?;
    let mut keys = Vec::new();
    for row in idx.range((since_ms, 0u128)..)?.rev() {
        keys.push(row?.0.value().1);
    }
    let data = load_keys(rtx, page_of(&keys, page, limit))?;
    Ok(Page {
        data,
        total: keys.len() as u64,
    })
}

/// Keys of every order of a business day, in number order.
pub fn day_keys(rtx: &ReadTransaction, day: u32) -> Result<Vec<u128>, StoreError> {
    let idx = rtx.open_table(t::IDX_DAY)?;
    let mut keys = Vec::new();
    for row in idx.range((day, 0u32)..=(day, u32::MAX))? {
        keys.push(row?.1.value());
    }
    Ok(keys)
}

/// Orders of a business day, in number order.
pub fn by_day(
    rtx: &ReadTransaction,
    day: u32,
    page: u32,
    limit: u32,
) -> Result<Page<Order>, StoreError> {
    let keys = day_keys(rtx, day)?;
    let data = load_keys(rtx, page_of(&keys, page, limit))?;
    Ok(Page {
        data,
        total: keys.len() as u64,
    })
}

/// Searches by order number (whole, or today's short number), phone (prefix) or customer name
/// (substring, over the last 7 business days), newest first.
pub fn search(
    rtx: &ReadTransaction,
    rules: &Rules,
    now_ms: u64,
    q: &str,
    page: u32,
    limit: u32,
) -> Result<Page<Order>, StoreError> {
    let q = q.trim();
    let mut keys: Vec<u128> = Vec::new();
    let today = rules.business_day(now_ms);
    if q.contains('-') {
        // PREFIX-YYYYMMDD-NNN: the day and number locate it in the day index.
        let mut parts = q.rsplit('-');
        let seq = parts.next().and_then(|s| s.parse::<u32>().ok());
        let day = parts.next().and_then(|s| s.parse::<u32>().ok());
        if let (Some(seq), Some(day)) = (seq, day) {
            let idx = rtx.open_table(t::IDX_DAY)?;
            if let Some(v) = idx.get((day, seq))? {
                let key = v.value();
                let number_matches =
                    get_by_key(rtx, key)?.is_some_and(|o| o.order.number.eq_ignore_ascii_case(q));
                if number_matches {
                    keys.push(key);
                }
            }
        }
    } else if !q.is_empty() && q.len() <= 5 && q.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = q.parse().unwrap_or(0);
        let idx = rtx.open_table(t::IDX_DAY)?;
        if let Some(v) = idx.get((today, n))? {
            keys.push(v.value());
        }
    } else if q.starts_with('+') || (q.len() > 5 && q.bytes().all(|b| b.is_ascii_digit())) {
        let prefix = if q.starts_with('+') {
            q.to_owned()
        } else {
            format!("+{q}")
        };
        let idx = rtx.open_table(t::IDX_PHONE)?;
        for row in idx.range((prefix.as_str(), 0u128)..)? {
            let (k, ()) = (row?.0, ());
            let (phone, id) = k.value();
            if !phone.starts_with(prefix.as_str()) {
                break;
            }
            keys.push(id);
        }
    } else if !q.is_empty() {
        let needle = q.to_lowercase();
        let orders = rtx.open_table(t::ORDERS)?;
        let mut day = today;
        for _ in 0..7 {
            for k in day_keys(rtx, day)? {
                if let Some(v) = orders.get(k)? {
                    let o: StoredOrder = codec::decode(v.value())?;
                    if o.order
                        .customer_name
                        .as_ref()
                        .is_some_and(|n| n.to_lowercase().contains(&needle))
                    {
                        keys.push(k);
                    }
                }
            }
            day = super::date_of_day(day)
                .and_then(|d| d.yesterday().ok())
                .map_or(0, super::day_number);
        }
    }
    keys.sort_unstable_by(|a, b| b.cmp(a));
    keys.dedup();
    let data = load_keys(rtx, page_of(&keys, page, limit))?;
    Ok(Page {
        data,
        total: keys.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn tax_included_and_added() {
        let mut r = Rules::from_settings(&Settings::defaults());
        r.tax_rate_bp = 2000;
        r.prices_include_tax = true;
        assert_eq!(tax_and_total(1200, &r), (200, 1200));
        assert_eq!(tax_and_total(1000, &r), (167, 1000));
        r.prices_include_tax = false;
        assert_eq!(tax_and_total(1000, &r), (200, 1200));
        assert_eq!(tax_and_total(1003, &r), (201, 1204));
    }

    #[test]
    fn e164() {
        assert!(is_e164("+355691234567"));
        assert!(!is_e164("355691234567"));
        assert!(!is_e164("+0123456"));
        assert!(!is_e164("+12 3456789"));
    }

    #[test]
    fn stored_order_golden_v1() {
        // Bytes written by format version 1. Never update: add a version and a migration.
        let stored = StoredOrder {
            order: Order {
                id: "i".into(),
                number: "N".into(),
                business_day: 20_261_122,
                daily_seq: 1,
                order_type: OrderType::Takeaway,
                source: OrderSource::Staff,
                status: OrderStatus::Placed,
                table_id: None,
                table_label: None,
                address: None,
                customer_name: None,
                customer_phone: None,
                note: None,
                items: vec![],
                subtotal: 5,
                tax: 1,
                total: 5,
                currency: "EUR".into(),
                created_at: 1,
                updated_at: 1,
                accepted_at: None,
                preparing_at: None,
                ready_at: None,
                finished_at: None,
                out_for_delivery_at: None,
                cancel_reason: None,
            },
            history: vec![],
            last_event_seq: 3,
            idem_key: None,
            stations_done: vec![],
            allergy: None,
        };
        let golden: &[u8] = &[
            1, 1, b'i', 1, b'N', 130, 210, 212, 9, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 2, 10, 3,
            b'E', b'U', b'R', 1, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0,
        ];
        let back: StoredOrder = codec::decode(golden).unwrap();
        assert_eq!(back.order, stored.order);
        assert!(back.stations_done.is_empty());
        // Version 2 appended the stations that bumped their part; its bytes, as it wrote them.
        let mut v2_bytes = vec![2u8];
        v2_bytes.extend_from_slice(&golden[1..]);
        v2_bytes.extend_from_slice(&[1, 3, b'b', b'a', b'r', 5, 1, b'k']);
        let bar = StationMark {
            station: "bar".into(),
            at: 5,
            by: "k".into(),
        };
        let back: StoredOrder = codec::decode(&v2_bytes).unwrap();
        assert_eq!(back.order, stored.order);
        assert_eq!(back.stations_done, vec![bar.clone()]);
        assert!(back.allergy.is_none());
        // Version 3 appends the allergy note with its acknowledgements.
        let mut v3 = back.clone();
        v3.allergy = Some(Allergy {
            note: "nuts".into(),
            by: "k".into(),
            acked: vec![bar],
        });
        let bytes = codec::encode(&v3).unwrap();
        let mut want = vec![3u8];
        want.extend_from_slice(&v2_bytes[1..]);
        want.extend_from_slice(&[1, 4, b'n', b'u', b't', b's', 1, b'k']);
        want.extend_from_slice(&[1, 3, b'b', b'a', b'r', 5, 1, b'k']);
        assert_eq!(bytes, want);
        let back: StoredOrder = codec::decode(&bytes).unwrap();
        assert_eq!(back.allergy, v3.allergy);
        assert_eq!(back.stations_done, v3.stations_done);
    }
}
