//! Wire types shared by the orderd box, its kitchen devices and the chain's collector: orders and
//! their events, MQTT topics, and the payloads of tickets, boards, print jobs, buzzers, bump bars
//! and device state (see `docs/mqtt.md`), and the upload batches a box posts to the collector
//! (see `docs/upload.md`).
//!
//! This crate is `no_std` + `alloc` so that ESP32-class device firmware can use it, and it does
//! no I/O: it only says what goes on the wire. Every type serializes with serde, so the same
//! value travels as JSON (the default) or postcard (compact, for constrained devices and for the
//! box's own store and uploads).
//!
//! Rules for changing anything here (see `docs/ARCHITECTURE.md`):
//! - changes are additive; a removed or retyped field needs a new `FORMAT_VERSION`;
//! - no `skip_serializing_if`, `flatten` or internally tagged enums: postcard is not
//!   self-describing and would silently mis-decode them.
#![no_std]

extern crate alloc;

pub mod check;
pub mod device;
pub mod encoding;
pub mod event;
pub mod order;
pub mod printer;
pub mod relay;
pub mod ticket;
pub mod topics;
pub mod upload;

pub use check::{
    AdjustmentFact, AdjustmentKind, BillPrint, BilledLine, CashFact, CashKind, CashUp, CheckClosed,
    CheckRef, DayFigures, MethodFigures, OpenCheck, PaymentFact, RefundFact, VatLine, ZReport,
};
pub use device::{Availability, Bump, BumpAction, BumpResult, BuzzPattern, BuzzerSet, DeviceState};
pub use encoding::{CodecError, Encoding, decode, encode};
pub use event::{Event, EventKind};
pub use order::{
    Order, OrderLine, OrderSource, OrderStatus, OrderType, SelectedModifier, StatusChange,
};
pub use printer::{JobState, JobStatus, PrintCopy, PrintFormat, PrintJob};
pub use relay::Flavour;
pub use ticket::{
    Board, BoardTicket, COMPACT_TICKETS, CompactBoard, CompactTicket, LineDelta, StationDelta,
    TicketChange, TicketEvent, TicketLine,
};

/// The format version carried by every versioned payload of this crate.
pub const FORMAT_VERSION: u16 = 1;
