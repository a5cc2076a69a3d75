//! The application's shared state: what every part of the running daemon reads (settings,
//! rules, the store and its writer, the event log, metrics, time, the storage budget).
//!
//! Background tasks (the kitchen hub, the message sender, the uploader, the storage watch, the
//! systemd supervisor, retention, the control socket) each take this and the one handle of
//! their own they need, never the HTTP layer's state (`api::ApiState`, which derefs to it).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::clock::{Clock, GuardedClock};
use crate::config::Settings;
use crate::domain::Rules;
use crate::events::EventLog;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::writer::{Shared, Writer};

/// What every part of the daemon shares.
pub struct AppState {
    /// Checked settings.
    pub settings: Arc<Settings>,
    /// Domain rules derived from the settings.
    pub rules: Arc<Rules>,
    /// The store, for reads.
    pub store: Store,
    /// The writer, for writes.
    pub writer: Writer,
    /// Committed state shared with the writer.
    pub shared: Arc<Shared>,
    /// The event log.
    pub events: EventLog,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Time.
    pub clock: Arc<GuardedClock>,
    /// The storage budget (free space; refuses new orders when the disk is full).
    pub storage: Arc<crate::storage::Storage>,
    /// Set once start-up has finished; cleared when shutdown begins.
    pub ready: AtomicBool,
    /// False while the HTTP listener cannot accept connections (out of file descriptors):
    /// `/readyz` and the watchdog say so.
    pub accepting: Arc<AtomicBool>,
}

/// Shared handle to the state.
pub type AppStateRef = Arc<AppState>;

impl AppState {
    /// Now, ms.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}
