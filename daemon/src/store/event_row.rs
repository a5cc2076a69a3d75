//! How an event is kept in the `events` table: whole, as it happened.
//!
//! An event is a fact and is never rebuilt from state that can change later. Up to 2026-12 an
//! `OrderPlaced` event was stored as a reference to its order and rebuilt from the *current*
//! order on read, so a later line edit leaked into "placed". Those legacy rows are still
//! read ([`EventRow::Placed`]), and `crate::events::freeze_legacy_rows` rewrites each of them
//! whole once at start-up, so none of them can drift again after an upgrade (an edit made
//! before the upgrade cannot be told apart any more; the collector still ends with the box's
//! lines and totals, because every later edit carries the order's complete lines).

use orderd_protocol::{Event, EventKind, FORMAT_VERSION, Order, OrderStatus};
use serde::{Deserialize, Serialize};

use super::{StoreError, Stored, codec};

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventRow {
    /// Stored whole.
    Full(Event),
    /// Legacy: an `OrderPlaced` event by reference to the order (no longer written).
    Placed {
        /// Protocol format version of the event.
        version: u16,
        /// Seq.
        seq: u64,
        /// Commit time.
        at: u64,
        /// Key of the order in the `orders` table.
        order: u128,
    },
}

impl Stored for EventRow {
    const WHAT: &'static str = "event";
}

impl EventRow {
    /// The row for an event: always the event whole.
    pub fn of(event: &Event) -> Self {
        Self::Full(event.clone())
    }

    /// The order a legacy reference row points at.
    pub fn legacy_order(&self) -> Option<u128> {
        match self {
            Self::Full(_) => None,
            Self::Placed { order, .. } => Some(*order),
        }
    }

    /// Commit time.
    pub fn at(&self) -> u64 {
        match self {
            Self::Full(e) => e.at,
            Self::Placed { at, .. } => *at,
        }
    }

    /// The event; a legacy reference row is rebuilt from the order as it is now, reset to its
    /// placement (see the module comment).
    pub fn into_event(
        self,
        order_of: impl FnOnce(u128) -> Result<Option<Order>, StoreError>,
    ) -> Result<Event, StoreError> {
        match self {
            Self::Full(e) => Ok(e),
            Self::Placed {
                version,
                seq,
                at,
                order,
            } => {
                let mut o = order_of(order)?.ok_or_else(|| StoreError::Codec {
                    what: "event",
                    detail: format!("event {seq} refers to an order that was pruned"),
                })?;
                o.status = OrderStatus::Placed;
                o.updated_at = o.created_at;
                o.accepted_at = None;
                o.preparing_at = None;
                o.ready_at = None;
                o.finished_at = None;
                o.out_for_delivery_at = None;
                o.cancel_reason = None;
                Ok(Event {
                    version: version.min(FORMAT_VERSION),
                    seq,
                    at,
                    kind: EventKind::OrderPlaced(Box::new(o)),
                })
            }
        }
    }
}

/// Encodes an event for the `events` table.
pub fn encode(event: &Event) -> Result<Vec<u8>, StoreError> {
    codec::encode(&EventRow::of(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placed_orders_are_stored_whole() {
        let order: Order = serde_json::from_value(serde_json::json!({
            "id": "0190f0f0-0000-7000-8000-000000000001", "number": "ORD-20261206-001",
            "business_day": 20_261_206, "daily_seq": 1, "order_type": "takeaway",
            "source": "staff", "status": "placed", "table_id": null, "table_label": null,
            "customer_name": null, "customer_phone": null, "note": null,
            "items": [{"item_id": "lemonade", "name": "Lemonade", "quantity": 1,
                       "unit_price": 300, "line_total": 300, "modifiers": [], "note": null,
                       "station": "bar"}],
            "subtotal": 300, "tax": 0, "total": 300, "currency": "EUR",
            "created_at": 1, "updated_at": 1, "accepted_at": null, "preparing_at": null,
            "ready_at": null, "finished_at": null, "out_for_delivery_at": null,
            "cancel_reason": null
        }))
        .unwrap_or_else(|e| panic!("sample order: {e}"));
        let event = Event {
            version: FORMAT_VERSION,
            seq: 1,
            at: 1,
            kind: EventKind::OrderPlaced(Box::new(order)),
        };
        let bytes = encode(&event).unwrap();
        let row: EventRow = codec::decode(&bytes).unwrap();
        assert_eq!(row.legacy_order(), None);
        // Read back without the order: nothing is looked up.
        let back = row
            .into_event(|_| panic!("a whole row needs no order"))
            .unwrap();
        assert_eq!(back, event);
    }
}
