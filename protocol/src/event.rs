//! Order events: what the box's event log holds, what the kitchen, the messaging worker and the
//! uploader consume, and what the collector ingests.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::check::{
    AdjustmentFact, BillPrint, CashFact, CheckClosed, CheckRef, PaymentFact, RefundFact, ZReport,
};
use crate::order::{Order, OrderLine, OrderStatus};
use crate::ticket::StationDelta;

/// One committed change, numbered by the box's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Format version of this payload ([`crate::FORMAT_VERSION`] when written).
    pub version: u16,
    /// Position in the box's event log: starts at 1, no gaps, never reused.
    pub seq: u64,
    /// Commit time, ms since the epoch (box clock).
    pub at: u64,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new order, as placed.
    OrderPlaced(Box<Order>),
    /// An order moved from one status to another (or was recalled to its previous status).
    StatusChanged {
        /// The order's id.
        order_id: String,
        /// The order's number.
        number: String,
        /// The status before.
        from: OrderStatus,
        /// The status after.
        to: OrderStatus,
        /// Who did it.
        actor: String,
        /// Reason or remark.
        note: Option<String>,
        /// Whether this undid the previous transition.
        recall: bool,
    },
    /// A menu item became available or unavailable (by hand, or through stock).
    AvailabilityChanged {
        /// The item's id.
        item_id: String,
        /// Whether customers can order it now.
        available: bool,
    },
    /// An item's stock fell to or below its low-stock threshold.
    StockLow {
        /// The item's id.
        item_id: String,
        /// Units left.
        remaining: u32,
    },
    /// An item's stock reached zero.
    SoldOut {
        /// The item's id.
        item_id: String,
    },
    /// The whole menu was replaced by an admin.
    MenuReplaced {
        /// How many items the new menu has.
        items: u32,
    },
    /// A kitchen device came online, went offline or reported a new state.
    DeviceStatus {
        /// Device id.
        device: String,
        /// Its availability.
        online: bool,
        /// Its last reported state (`ready`, `paper_out`, …; empty if none yet).
        state: String,
    },
    /// A print job could not be printed by its printer.
    PrintFailover {
        /// The job that failed.
        job_id: String,
        /// Its order.
        order_id: String,
        /// Its station.
        station: String,
        /// The printer that could not print it.
        from: String,
        /// The backup printer that got it as a REPRINT, or `None` when it waits for `from`.
        to: Option<String>,
        /// `offline`, `paper_out`, `cover_open`, `error` or `no_report`.
        reason: String,
    },
    /// Staff changed the lines of an order the kitchen has not finished (added, removed or
    /// requantified lines). Appended last: earlier variants keep their tags.
    LinesChanged {
        /// The order's id.
        order_id: String,
        /// The order's number.
        number: String,
        /// What changed, per station.
        changes: Vec<StationDelta>,
        /// The new subtotal, minor units.
        subtotal: i64,
        /// The new tax, minor units.
        tax: i64,
        /// The new total, minor units.
        total: i64,
        /// Who did it.
        actor: String,
    },
    /// Staff changed the lines of an order the kitchen has not finished: what changed per
    /// station, and every line of the order after the change, so the change is a fact on its
    /// own and a consumer never needs the order's current state to know what was ordered.
    /// Written instead of [`EventKind::LinesChanged`], which older logs still hold; appended
    /// last, so earlier variants keep their tags (an additive change, same format version).
    LinesEdited {
        /// The order's id.
        order_id: String,
        /// The order's number.
        number: String,
        /// What changed, per station.
        changes: Vec<StationDelta>,
        /// Every line of the order after the change.
        lines: Vec<OrderLine>,
        /// The new subtotal, minor units.
        subtotal: i64,
        /// The new tax, minor units.
        tax: i64,
        /// The new total, minor units.
        total: i64,
        /// Who did it.
        actor: String,
    },
    /// A payment was recorded on a check (variants from here on: issue #25, appended).
    PaymentRecorded {
        /// The check.
        check: CheckRef,
        /// The payment.
        payment: PaymentFact,
    },
    /// A discount, comp or void was given on an open check.
    CheckAdjusted {
        /// The check.
        check: CheckRef,
        /// What was given, with both people and the reason.
        adjustment: AdjustmentFact,
    },
    /// A check was settled (balance zero) or voided whole: its every figure.
    CheckClosed(Box<CheckClosed>),
    /// Money went back on a closed check.
    CheckRefunded(RefundFact),
    /// Lines or a whole check moved to another check or table (transfer, merge, split).
    CheckMoved {
        /// Where they came from.
        from: CheckRef,
        /// Where they went.
        to: CheckRef,
        /// The target's table.
        to_table: Option<String>,
        /// The lines moved (check line ids of `from`); empty when the whole check moved.
        lines: Vec<u32>,
        /// Who did it.
        actor: String,
    },
    /// Cash was put in or taken out of the drawer, or counted.
    CashMoved(CashFact),
    /// A guest check was sent to the bill printer.
    BillPrinted(Box<BillPrint>),
    /// A guest asked for the bill from the table's page.
    BillRequested {
        /// The check.
        check: CheckRef,
        /// Table id.
        table_id: String,
        /// Table label.
        table_label: String,
    },
    /// The business day was closed by a Z report.
    DayClosed(Box<ZReport>),
    /// A station finished its part of an order (its bump), or took it back (a recall). When
    /// every station is done the order moves to `ready` by its own `StatusChanged` events.
    StationDone {
        /// The order's id.
        order_id: String,
        /// The order's number.
        number: String,
        /// The station.
        station: String,
        /// Done, or taken back.
        done: bool,
        /// Who: a bump bar (`bump-bar@grill`) or a staff user.
        actor: String,
    },
    /// An order's allergy note, written by the guest or a waiter: in the same transaction as
    /// the `OrderPlaced` it belongs to, right after it. Every station with lines on the order
    /// must acknowledge it before its first bump.
    AllergyNoted {
        /// The order's id.
        order_id: String,
        /// The order's number.
        number: String,
        /// The note, as written.
        note: String,
        /// Who wrote it: `customer` or a staff user.
        actor: String,
    },
    /// A station acknowledged an order's allergy note (its cook has read it).
    AllergyAcked {
        /// The order's id.
        order_id: String,
        /// The order's number.
        number: String,
        /// The station.
        station: String,
        /// Who: a bump bar (`bump-bar@grill`) or a staff user.
        actor: String,
    },
}

impl EventKind {
    /// The order and per-station changes of a line edit (either form), if this is one.
    pub fn line_changes(&self) -> Option<(&str, &[StationDelta])> {
        match self {
            Self::LinesChanged {
                order_id, changes, ..
            }
            | Self::LinesEdited {
                order_id, changes, ..
            } => Some((order_id.as_str(), changes.as_slice())),
            _ => None,
        }
    }

    /// A short stable name, for logs and metrics.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::OrderPlaced(_) => "order_placed",
            Self::StatusChanged { .. } => "status_changed",
            Self::AvailabilityChanged { .. } => "availability_changed",
            Self::StockLow { .. } => "stock_low",
            Self::SoldOut { .. } => "sold_out",
            Self::MenuReplaced { .. } => "menu_replaced",
            Self::DeviceStatus { .. } => "device_status",
            Self::PrintFailover { .. } => "print_failover",
            Self::LinesChanged { .. } => "lines_changed",
            Self::LinesEdited { .. } => "lines_edited",
            Self::PaymentRecorded { .. } => "payment_recorded",
            Self::CheckAdjusted { .. } => "check_adjusted",
            Self::CheckClosed(_) => "check_closed",
            Self::CheckRefunded(_) => "check_refunded",
            Self::CheckMoved { .. } => "check_moved",
            Self::CashMoved(_) => "cash_moved",
            Self::BillPrinted(_) => "bill_printed",
            Self::BillRequested { .. } => "bill_requested",
            Self::DayClosed(_) => "day_closed",
            Self::StationDone { .. } => "station_done",
            Self::AllergyNoted { .. } => "allergy_noted",
            Self::AllergyAcked { .. } => "allergy_acked",
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn sample() -> Event {
        Event {
            version: crate::FORMAT_VERSION,
            seq: 7,
            at: 1_700_000_000_000,
            kind: EventKind::StatusChanged {
                order_id: "o1".to_string(),
                number: "ORD-20261122-001".to_string(),
                from: OrderStatus::Placed,
                to: OrderStatus::Accepted,
                actor: "anna".to_string(),
                note: None,
                recall: false,
            },
        }
    }

    #[test]
    fn json_round_trip() {
        let ev = sample();
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), ev);
        assert!(json.contains("\"status_changed\""), "{json}");
    }

    #[test]
    fn line_changes_round_trip_in_both_encodings() {
        let ev = Event {
            version: crate::FORMAT_VERSION,
            seq: 9,
            at: 1_700_000_000_000,
            kind: EventKind::LinesChanged {
                order_id: "o1".to_string(),
                number: "ORD-20261122-001".to_string(),
                changes: vec![StationDelta {
                    station: "grill".to_string(),
                    delta: crate::LineDelta {
                        item_id: "burger".to_string(),
                        name: "Burger — Medium".to_string(),
                        old_quantity: 1,
                        new_quantity: 2,
                    },
                }],
                subtotal: 2400,
                tax: 400,
                total: 2400,
                actor: "anna".to_string(),
            },
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.contains("\"lines_changed\""), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), ev);
        let bytes = postcard::to_allocvec(&ev).unwrap();
        assert_eq!(postcard::from_bytes::<Event>(&bytes).unwrap(), ev);
        // Appended last: its tag follows the eight earlier kinds.
        assert_eq!(bytes[8], 8);
    }

    #[test]
    fn allergy_kinds_keep_their_tags_and_golden_bytes() {
        let noted = Event {
            version: crate::FORMAT_VERSION,
            seq: 10,
            at: 1_700_000_000_000,
            kind: EventKind::AllergyNoted {
                order_id: "o1".to_string(),
                number: "N".to_string(),
                note: "nuts".to_string(),
                actor: "k".to_string(),
            },
        };
        let acked = Event {
            kind: EventKind::AllergyAcked {
                order_id: "o1".to_string(),
                number: "N".to_string(),
                station: "bar".to_string(),
                actor: "k".to_string(),
            },
            ..noted.clone()
        };
        let head = [1u8, 10, 128, 208, 149, 255, 188, 49];
        // Tag 20 and 21, after the twenty earlier kinds; then their fields in order.
        let mut golden = head.to_vec();
        golden.extend_from_slice(&[
            20, 2, b'o', b'1', 1, b'N', 4, b'n', b'u', b't', b's', 1, b'k',
        ]);
        assert_eq!(postcard::to_allocvec(&noted).unwrap(), golden);
        let mut golden = head.to_vec();
        golden.extend_from_slice(&[21, 2, b'o', b'1', 1, b'N', 3, b'b', b'a', b'r', 1, b'k']);
        assert_eq!(postcard::to_allocvec(&acked).unwrap(), golden);
        for ev in [noted, acked] {
            let json = serde_json::to_string(&ev).unwrap();
            assert!(json.contains(ev.kind.name()), "{json}");
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), ev);
        }
    }

    #[test]
    fn a_station_bump_keeps_its_tag_and_golden_bytes() {
        let ev = Event {
            version: crate::FORMAT_VERSION,
            seq: 10,
            at: 1_700_000_000_000,
            kind: EventKind::StationDone {
                order_id: "o1".to_string(),
                number: "N".to_string(),
                station: "bar".to_string(),
                done: true,
                actor: "k".to_string(),
            },
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.contains("\"station_done\""), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), ev);
        let bytes = postcard::to_allocvec(&ev).unwrap();
        // Tag 19, after the nineteen earlier kinds; then its fields in order.
        let mut golden = vec![
            1u8, 10, 128, 208, 149, 255, 188, 49, 19, 2, b'o', b'1', 1, b'N',
        ];
        golden.extend_from_slice(&[3, b'b', b'a', b'r', 1, 1, b'k']);
        assert_eq!(bytes, golden);
        assert_eq!(postcard::from_bytes::<Event>(&bytes).unwrap(), ev);
    }

    #[test]
    fn line_edits_carry_every_line_and_keep_their_tag() {
        let line = crate::OrderLine {
            item_id: "espresso".to_string(),
            name: "Espresso".to_string(),
            quantity: 5,
            unit_price: 150,
            line_total: 750,
            modifiers: vec![],
            note: Some("hot".to_string()),
            station: "bar".to_string(),
        };
        let ev = Event {
            version: crate::FORMAT_VERSION,
            seq: 10,
            at: 1_700_000_000_000,
            kind: EventKind::LinesEdited {
                order_id: "o1".to_string(),
                number: "ORD-20261122-001".to_string(),
                changes: vec![],
                lines: vec![line],
                subtotal: 750,
                tax: 0,
                total: 750,
                actor: "anna".to_string(),
            },
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.contains("\"lines_edited\""), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), ev);
        let bytes = postcard::to_allocvec(&ev).unwrap();
        assert_eq!(postcard::from_bytes::<Event>(&bytes).unwrap(), ev);
        // Golden: version 1, seq 10, the time, then tag 9 (after the nine earlier kinds).
        assert_eq!(&bytes[..9], &[1, 10, 128, 208, 149, 255, 188, 49, 9]);
        assert_eq!(ev.kind.line_changes().map(|(id, _)| id), Some("o1"));
    }

    #[test]
    fn postcard_golden_bytes() {
        // Golden bytes: a change here breaks every stored event log and device. Do not update
        // this vector; add a new FORMAT_VERSION instead.
        let bytes = postcard::to_allocvec(&sample()).unwrap();
        let mut golden = vec![1u8, 7, 128, 208, 149, 255, 188, 49, 1, 2, b'o', b'1', 16];
        golden.extend_from_slice(b"ORD-20261122-001");
        golden.extend_from_slice(&[0, 1, 4]);
        golden.extend_from_slice(b"anna");
        golden.extend_from_slice(&[0, 0]);
        assert_eq!(bytes, golden);
        assert_eq!(postcard::from_bytes::<Event>(&bytes).unwrap(), sample());
    }
}
