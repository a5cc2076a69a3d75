//! The integration tests, built as one test binary (one link instead of one per file): each
//! module was a test file of its own and keeps its own `//!` line. `common` holds the shared
//! helpers: the in-process server, the real binary, MQTT devices, PostgreSQL and SSE.

mod common;

mod auth;
mod bad_input;
mod binary;
mod checks;
mod concurrency;
mod devices;
mod disk_full;
mod events;
mod fixture;
mod kitchen;
mod layers;
mod lifecycle;
mod live;
mod menu_csv;
mod messaging;
mod mosquitto;
mod netprint;
mod openapi;
mod photos;
mod relays;
mod site;
mod telegram;
mod transports;
mod upload;
mod watchdog;
