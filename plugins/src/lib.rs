//! Integrations of orderd behind narrow traits: messaging providers (WhatsApp Cloud API,
//! Telegram), ESC/POS ticket rendering and collector sinks arrive here with their issues, each
//! in its own folder behind a cargo feature.
//!
//! This crate depends on `orderd-protocol` and never on the daemon: a plugin sees only the wire
//! types and the trait it implements, so it can be tested against scripted fakes and reused by
//! other tools. Until the first plugin lands it only re-exports the protocol it builds on.

pub use orderd_protocol as protocol;
