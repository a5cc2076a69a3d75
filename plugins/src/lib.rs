//! Integrations of orderd behind narrow traits: messaging providers (WhatsApp Cloud API,
//! Telegram), ESC/POS ticket rendering and collector sinks arrive here with their issues, each
//! in its own folder behind a cargo feature.
//!
//! This crate depends on `orderd-protocol` and never on the daemon: a plugin sees only the wire
//! types and the trait it implements, so it can be tested against scripted fakes and reused by
//! other tools. What every plugin must do is written in `docs/plugin-spec.md`.
//!
//! Plugins so far: `fiscal` (the seam a country's fiscal device would fill; the default
//! registers nothing), `escpos` (ticket and guest-check rendering, feature `escpos`, on by default), `whatsapp`
//! (Cloud API client, feature `whatsapp`), `telegram` (Bot API through teloxide,
//! feature `telegram`), `collector`
//! (the chain collector's upload client, feature `collector`), `fake` (scripted fakes of remote services for
//! tests, feature `fake`) and `printer_emu` (an ESC/POS printer on TCP, features `fake` and `escpos`).

pub use orderd_protocol as protocol;

pub mod fiscal;
pub mod messaging;

#[cfg(feature = "whatsapp")]
pub mod whatsapp;

#[cfg(feature = "telegram")]
pub mod telegram;

#[cfg(feature = "collector")]
pub mod collector;

#[cfg(feature = "fake")]
pub mod fake;

#[cfg(all(feature = "fake", feature = "escpos"))]
pub mod printer_emu;

#[cfg(feature = "escpos")]
pub mod escpos;
