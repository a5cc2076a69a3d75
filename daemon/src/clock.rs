//! Wall-clock time behind a trait, so tests can move time (recall windows, business days,
//! session expiry, retention) without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};

/// No correct clock reads earlier than this (2026-11-01, before this release was built). A Pi
/// has no real-time clock: until NTP syncs it may boot at 1970 or at its last shutdown.
pub const EARLIEST_PLAUSIBLE_MS: u64 = 1_793_491_200_000;

/// Whether `now_ms` is obviously wrong (earlier than this release).
pub fn looks_unset(now_ms: u64) -> bool {
    now_ms < EARLIEST_PLAUSIBLE_MS
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch (UTC).
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock standing at `ms`.
    pub fn new(ms: u64) -> Self {
        Self(AtomicU64::new(ms))
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set_ms(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
