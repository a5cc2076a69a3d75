//! Orders: placing them (prices, tax, stock, numbers, idempotency, all server-side and in one
//! transaction), moving them through their lifecycle, recalling a mis-bump, and reading them
//! back through the indexes.
//!
//! Here: the request and stored types, their checks, and the helpers every part shares;
//! `place` places an order, `change` moves, edits, bumps and recalls it, `reads` reads orders.

mod change;
mod place;
mod reads;

pub use change::*;
pub use place::*;
pub use reads::*;

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
        crate::domain::body_hash(scope, self)
    }
}

pub(super) fn write_order(tx: &mut Tx<'_>, id: u128, stored: &StoredOrder) -> TxResult<()> {
    tx.orders.insert(id, codec::encode(stored)?.as_slice())?;
    Ok(())
}

pub(super) fn get_in_tx(tx: &Tx<'_>, id: u128) -> TxResult<Option<StoredOrder>> {
    Ok(match tx.orders.get(id)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    })
}

pub(super) fn load(tx: &Tx<'_>, id: &str) -> TxResult<(u128, StoredOrder)> {
    let key = parse_id(id).ok_or_else(|| AppError::not_found("order"))?;
    let stored = get_in_tx(tx, key)?.ok_or_else(|| AppError::not_found("order"))?;
    Ok((key, stored))
}

pub(super) fn stamp(order: &mut Order, status: OrderStatus, at: Option<u64>) {
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
