//! The kitchen hub: turns the event log into what kitchen devices see.
//!
//! So far: [`tickets`], the pure routing of orders to station tickets and the station boards.
//! The MQTT side (embedded broker, publishing, printers, buzzers, bump bars) is the rest of
//! issue #3; it will consume `EventLog::subscribe` from a durable cursor and feed these
//! functions.

pub mod tickets;
