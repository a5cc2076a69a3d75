//! Wire types shared by the orderd box, its kitchen devices and the chain's collector.
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

pub mod event;
pub mod order;

pub use event::{Event, EventKind};
pub use order::{
    Order, OrderLine, OrderSource, OrderStatus, OrderType, SelectedModifier, StatusChange,
};

/// The format version carried by every versioned payload of this crate.
pub const FORMAT_VERSION: u16 = 1;
