//! systemd integration: `READY=1` once the store and the HTTP listener are up, a one-line
//! `STATUS=`, and `WATCHDOG=1` only while a real health check passes — a round trip through
//! the writer thread, which proves both the writer and the async runtime are alive, not a
//! blind timer. Without `NOTIFY_SOCKET` every message is a no-op.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redb::ReadableTableMetadata as _;
use sd_notify::NotifyState;

use crate::shutdown::Shutdown;
use crate::state::AppStateRef;
use crate::store::tables;

/// Sends states to systemd (ignoring a missing socket).
pub fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// How often to check health and ping: half the watchdog period systemd asked for, or every
/// 10 s for the status line alone.
pub fn check_interval() -> (Duration, bool) {
    // As sd_watchdog_enabled(3): WATCHDOG_USEC set, and WATCHDOG_PID unset or ours.
    let usec = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&u| u > 0);
    let ours = std::env::var("WATCHDOG_PID")
        .ok()
        .is_none_or(|p| p.parse::<u32>().ok() == Some(std::process::id()));
    match usec {
        Some(u) if ours => (Duration::from_micros(u / 2), true),
        _ => (Duration::from_secs(10), false),
    }
}

/// The one-line summary: open orders, last event, requests waiting for the writer, and a flag
/// when the clock is unset or behind or the disk is filling up.
pub fn status_line(state: &crate::state::AppState) -> String {
    let open = state
        .store
        .read()
        .ok()
        .and_then(|rtx| rtx.open_table(tables::IDX_ACTIVE).ok())
        .and_then(|t| t.len().ok())
        .unwrap_or(0);
    let clock = state.clock.state();
    let flag = if clock.unset {
        "; CLOCK NOT SET"
    } else if clock.behind {
        "; CLOCK BEHIND"
    } else {
        ""
    };
    let disk = match state.storage.level() {
        crate::storage::Level::Ok => "",
        crate::storage::Level::Low => "; DISK LOW",
        crate::storage::Level::Full => "; DISK FULL, NEW ORDERS REFUSED",
    };
    let http = if state.accepting.load(Ordering::Acquire) {
        ""
    } else {
        "; HTTP CANNOT ACCEPT CONNECTIONS"
    };
    format!(
        "open orders {open}; event seq {}; writer queue {}{flag}{disk}{http}",
        state.events.last_seq(),
        state.writer.queued()
    )
}

/// Checks health every `interval` until shutdown; `notify` receives the states to send.
/// A check that does not finish within `interval`, or an HTTP listener that cannot accept
/// (out of file descriptors), sends no watchdog ping, so systemd restarts a daemon that
/// cannot serve.
pub async fn supervise(
    state: AppStateRef,
    mut shutdown: Shutdown,
    interval: Duration,
    watchdog: bool,
    notify: impl Fn(&[NotifyState<'_>]) + Send,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.wait() => return,
        }
        let writer = matches!(
            tokio::time::timeout(interval, state.writer.ping()).await,
            Ok(Ok(()))
        );
        let accepting = state.accepting.load(Ordering::Acquire);
        let healthy = writer && accepting && state.ready.load(Ordering::Acquire);
        let status = status_line(&state);
        if healthy && watchdog {
            notify(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
        } else if healthy {
            notify(&[NotifyState::Status(&status)]);
        } else {
            let why = if writer {
                "HTTP cannot accept connections"
            } else {
                "writer not answering"
            };
            tracing::error!(%status, "health check failed: {why}; withholding the watchdog ping");
            notify(&[NotifyState::Status(&format!("UNHEALTHY: {why}; {status}"))]);
        }
    }
}
