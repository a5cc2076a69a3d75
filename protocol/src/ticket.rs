//! Kitchen tickets: what a station is told about an order (new, changed as a delta, cancelled),
//! and the station's retained board of open tickets for displays that reboot.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::order::{OrderStatus, OrderType};

/// One line of a ticket: only what the station cooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketLine {
    /// Menu item id.
    pub item_id: String,
    /// Name, in the kitchen's language.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Modifier names ("Medium", "No onion").
    pub modifiers: Vec<String>,
    /// Note for the kitchen.
    pub note: Option<String>,
    /// The item's allergens (codes such as `gluten`, `milk`), from the menu when the ticket
    /// was made.
    pub allergens: Vec<String>,
}

/// A quantity change on a line of an order already sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDelta {
    /// Menu item id.
    pub item_id: String,
    /// Name, with the line's modifiers after a hyphen ("Burger - Medium, Bacon") so the kitchen
    /// can tell two lines of one item apart.
    pub name: String,
    /// Quantity before.
    pub old_quantity: u32,
    /// Quantity now (0: removed).
    pub new_quantity: u32,
}

/// A line change routed to the station that cooks it (in the `lines_changed` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationDelta {
    /// The station.
    pub station: String,
    /// The change.
    pub delta: LineDelta,
}

/// What happened to the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketChange {
    /// A new ticket with its lines.
    New {
        /// The station's lines.
        lines: Vec<TicketLine>,
    },
    /// Lines changed (only the differences).
    Changed {
        /// Old → new quantities.
        deltas: Vec<LineDelta>,
    },
    /// The order was cancelled: stop cooking.
    Cancelled {
        /// Why.
        reason: Option<String>,
    },
}

/// `station/{station}/ticket`: one ticket event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEvent {
    /// Format version ([`crate::FORMAT_VERSION`]).
    pub version: u16,
    /// The ticket id (the order's id: one ticket per order and station).
    pub ticket: String,
    /// The order's number, `PREFIX-YYYYMMDD-NNN`.
    pub number: String,
    /// The short number the kitchen calls out (`NNN`).
    pub short: String,
    /// The station.
    pub station: String,
    /// Dine-in, takeaway or delivery.
    pub order_type: OrderType,
    /// Table label, for dine-in.
    pub table: Option<String>,
    /// When the order was placed, ms since the Unix epoch (UTC).
    pub placed_at: u64,
    /// The event's seq in the box's event log (devices may use it to drop repeats).
    pub seq: u64,
    /// What happened.
    pub change: TicketChange,
    /// The order's allergy note, on a new ticket (the cook must acknowledge it before the
    /// first bump).
    pub allergy: Option<String>,
}

/// One open ticket on a board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardTicket {
    /// Ticket id (order id).
    pub ticket: String,
    /// Short number.
    pub short: String,
    /// Order status.
    pub status: OrderStatus,
    /// Order type.
    pub order_type: OrderType,
    /// Table label.
    pub table: Option<String>,
    /// When the order was placed, ms since the Unix epoch (UTC).
    pub placed_at: u64,
    /// The station's lines.
    pub lines: Vec<TicketLine>,
    /// The order's allergy note.
    pub allergy: Option<String>,
    /// Whether this station acknowledged the allergy note (a bump waits for it).
    pub allergy_acked: bool,
}

/// `station/{station}/board` (retained): the station's open tickets, oldest first, at most
/// 200 (about 49 KB of JSON when full; `board/compact` is the small form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    /// Format version.
    pub version: u16,
    /// The station.
    pub station: String,
    /// Event-log seq this board reflects.
    pub seq: u64,
    /// Open tickets, the oldest ones.
    pub tickets: Vec<BoardTicket>,
    /// How many tickets are open at the station: `tickets.len()` unless `truncated`. While the
    /// board is truncated the box counts them in its store at most every 10 s, so the figure
    /// may be that old.
    pub total: u64,
    /// More tickets are open than the board carries (the newest wait in the box).
    pub truncated: bool,
}

/// One ticket of a compact board: who, what state, how many items; no lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactTicket {
    /// Ticket id (the order id).
    pub ticket: String,
    /// The kitchen's short number.
    pub short: String,
    /// The order's status.
    pub status: OrderStatus,
    /// Table label, for dine-in.
    pub table: Option<String>,
    /// When the order was placed, ms since the Unix epoch.
    pub placed_at: u64,
    /// Items at the station (the sum of the lines' quantities).
    pub items: u32,
    /// The order has an allergy note this station has not acknowledged yet.
    pub allergy: bool,
}

/// `station/{station}/board/compact` (retained): the board for small displays: the oldest
/// [`COMPACT_TICKETS`] open tickets without their lines, about 4 KB of JSON at most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactBoard {
    /// Format version.
    pub version: u16,
    /// The station.
    pub station: String,
    /// Event-log seq this board reflects.
    pub seq: u64,
    /// Open tickets, the oldest ones.
    pub tickets: Vec<CompactTicket>,
    /// How many tickets are open at the station (as on the full board).
    pub total: u64,
    /// More tickets are open than this board carries.
    pub truncated: bool,
}

/// How many tickets a compact board carries.
pub const COMPACT_TICKETS: usize = 40;
