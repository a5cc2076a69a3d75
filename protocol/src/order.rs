//! Orders as they travel between the box, its pages, its devices and the collector, and the
//! lifecycle rules every party agrees on.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// How the customer receives the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// Eaten at a table; needs a table.
    DineIn,
    /// Collected at the counter.
    Takeaway,
    /// Taken to an address; needs an address.
    Delivery,
}

impl OrderType {
    /// The `snake_case` name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DineIn => "dine_in",
            Self::Takeaway => "takeaway",
            Self::Delivery => "delivery",
        }
    }
}

/// Who placed the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderSource {
    /// A signed-in staff member.
    Staff,
    /// A customer at a table, through the table's QR code.
    Customer,
}

impl OrderSource {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::Customer => "customer",
        }
    }
}

/// Where an order is in its life.
///
/// The normal path is `placed → accepted → preparing → ready`, then `served` (dine-in),
/// `picked_up` (takeaway) or `out_for_delivery → delivered` (delivery). `cancelled` is allowed
/// from `placed`, `accepted` and `preparing`. `served`, `picked_up`, `delivered` and `cancelled`
/// are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Taken, not yet seen by the kitchen.
    Placed,
    /// The kitchen has accepted it.
    Accepted,
    /// Being cooked.
    Preparing,
    /// Ready at the pass.
    Ready,
    /// Brought to the table (dine-in; final).
    Served,
    /// Collected by the customer (takeaway; final).
    PickedUp,
    /// On its way (delivery).
    OutForDelivery,
    /// Handed over at the address (delivery; final).
    Delivered,
    /// Cancelled with a reason (final).
    Cancelled,
}

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 9] = [
        Self::Placed,
        Self::Accepted,
        Self::Preparing,
        Self::Ready,
        Self::Served,
        Self::PickedUp,
        Self::OutForDelivery,
        Self::Delivered,
        Self::Cancelled,
    ];

    /// The `snake_case` name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Accepted => "accepted",
            Self::Preparing => "preparing",
            Self::Ready => "ready",
            Self::Served => "served",
            Self::PickedUp => "picked_up",
            Self::OutForDelivery => "out_for_delivery",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A stable small number, used as a key prefix in indexes.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The inverse of [`Self::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Whether nothing can follow this status.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Served | Self::PickedUp | Self::Delivered | Self::Cancelled
        )
    }

    /// The statuses an order of `kind` may move to from this one.
    pub fn allowed_next(self, kind: OrderType) -> &'static [Self] {
        match (self, kind) {
            (Self::Placed, _) => &[Self::Accepted, Self::Cancelled],
            (Self::Accepted, _) => &[Self::Preparing, Self::Cancelled],
            (Self::Preparing, _) => &[Self::Ready, Self::Cancelled],
            (Self::Ready, OrderType::DineIn) => &[Self::Served],
            (Self::Ready, OrderType::Takeaway) => &[Self::PickedUp],
            (Self::Ready, OrderType::Delivery) => &[Self::OutForDelivery],
            (Self::OutForDelivery, OrderType::Delivery) => &[Self::Delivered],
            _ => &[],
        }
    }

    /// Whether `self → to` is a legal step for an order of `kind`.
    pub fn can_move_to(self, to: Self, kind: OrderType) -> bool {
        self.allowed_next(kind).contains(&to)
    }
}

/// One chosen modifier option, with its price at the time of ordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedModifier {
    /// The modifier group's id.
    pub group_id: String,
    /// The option's id.
    pub option_id: String,
    /// The option's name in the menu's default language.
    pub name: String,
    /// Added to the item's unit price, in minor units (may be negative).
    pub price_delta: i64,
}

/// One line of an order: a snapshot of the menu item when it was ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The menu item's stable id.
    pub item_id: String,
    /// The item's name in the menu's default language.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Base price plus modifier deltas, in minor units.
    pub unit_price: i64,
    /// `unit_price × quantity`, in minor units.
    pub line_total: i64,
    /// The chosen modifiers.
    pub modifiers: Vec<SelectedModifier>,
    /// The customer's or waiter's note for the kitchen.
    pub note: Option<String>,
    /// The kitchen station that makes it (grill, bar, cold …).
    pub station: String,
}

/// An order as the box knows it.
///
/// Times are milliseconds since the Unix epoch (UTC). Amounts are integer minor units of
/// `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Stable id (a `UUIDv7` in canonical text form).
    pub id: String,
    /// `PREFIX-YYYYMMDD-NNN`, unique per business day.
    pub number: String,
    /// The business day, as `YYYYMMDD`.
    pub business_day: u32,
    /// The `NNN` part of the number: the kitchen's short number.
    pub daily_seq: u32,
    /// Dine-in, takeaway or delivery.
    pub order_type: OrderType,
    /// Staff or customer.
    pub source: OrderSource,
    /// Current status.
    pub status: OrderStatus,
    /// The table, for dine-in.
    pub table_id: Option<String>,
    /// The table's label at ordering time.
    pub table_label: Option<String>,
    /// The delivery address.
    pub address: Option<String>,
    /// The customer's name.
    pub customer_name: Option<String>,
    /// The customer's phone, E.164.
    pub customer_phone: Option<String>,
    /// A note for the whole order.
    pub note: Option<String>,
    /// The lines.
    pub items: Vec<OrderLine>,
    /// Sum of the line totals.
    pub subtotal: i64,
    /// Tax contained in (or added to) the subtotal.
    pub tax: i64,
    /// What the customer pays.
    pub total: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When it was placed.
    pub created_at: u64,
    /// Last change.
    pub updated_at: u64,
    /// When it was accepted.
    pub accepted_at: Option<u64>,
    /// When preparation started.
    pub preparing_at: Option<u64>,
    /// When it was ready.
    pub ready_at: Option<u64>,
    /// When it was served, picked up or delivered, or cancelled.
    pub finished_at: Option<u64>,
    /// When it left for delivery.
    pub out_for_delivery_at: Option<u64>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
}

/// One entry of an order's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The status before (`None` for the placement itself).
    pub from: Option<OrderStatus>,
    /// The status after.
    pub to: OrderStatus,
    /// Who did it (a username, `customer`, or a device id).
    pub actor: String,
    /// When, in ms since the epoch.
    pub at: u64,
    /// Free text: the cancel reason, a remark.
    pub note: Option<String>,
    /// Whether this entry undid the previous one.
    pub recall: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses_have_no_successor() {
        let kinds = [OrderType::DineIn, OrderType::Takeaway, OrderType::Delivery];
        for st in OrderStatus::ALL {
            if st.is_final() {
                assert!(
                    kinds.iter().all(|&k| st.allowed_next(k).is_empty()),
                    "{st:?}"
                );
            } else {
                assert!(
                    kinds.iter().any(|&k| !st.allowed_next(k).is_empty()),
                    "{st:?}"
                );
            }
        }
    }

    #[test]
    fn each_type_ends_in_its_own_final_status() {
        assert!(OrderStatus::Ready.can_move_to(OrderStatus::Served, OrderType::DineIn));
        assert!(!OrderStatus::Ready.can_move_to(OrderStatus::Served, OrderType::Takeaway));
        assert!(OrderStatus::Ready.can_move_to(OrderStatus::PickedUp, OrderType::Takeaway));
        assert!(OrderStatus::Ready.can_move_to(OrderStatus::OutForDelivery, OrderType::Delivery));
        assert!(!OrderStatus::Ready.can_move_to(OrderStatus::Cancelled, OrderType::DineIn));
    }

    #[test]
    fn codes_and_names_round_trip() {
        for st in OrderStatus::ALL {
            assert_eq!(OrderStatus::from_code(st.code()), Some(st));
            assert_eq!(OrderStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(OrderStatus::parse("eaten"), None);
    }
}
