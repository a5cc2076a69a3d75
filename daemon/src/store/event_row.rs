//! How an event is kept in the `events` table.
//!
//! Most events are stored whole. `OrderPlaced` carries the whole order, which the `orders`
//! table already holds; storing it twice was a third of the store. So it is stored as a
//! reference to the order and rebuilt on read: everything an order is placed with (lines,
//! prices, totals, table, customer, times of creation) never changes afterwards, and the rest
//! (status, later stamps, cancel reason) is reset to its state at placement. Retention keeps an
//! order until every consumer cursor has passed its events, so a consumer always finds it.

use orderd_protocol::{Event, EventKind, FORMAT_VERSION, Order, OrderStatus};
use serde::{Deserialize, Serialize};

use super::{StoreError, Stored, codec};

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventRow {
    /// Stored whole.
    Full(Event),
    /// An `OrderPlaced` event, by reference to the order.
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
    /// The row for an event.
    pub fn of(event: &Event) -> Self {
        if let EventKind::OrderPlaced(order) = &event.kind
            && let Some(key) = crate::domain::parse_id(&order.id)
        {
            return Self::Placed {
                version: event.version,
                seq: event.seq,
                at: event.at,
                order: key,
            };
        }
        Self::Full(event.clone())
    }

    /// Commit time.
    pub fn at(&self) -> u64 {
        match self {
            Self::Full(e) => e.at,
            Self::Placed { at, .. } => *at,
        }
    }

    /// The event, rebuilding a placed order from the current one.
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
