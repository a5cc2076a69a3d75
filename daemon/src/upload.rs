//! Store-and-forward upload of the event log to the chain's collector.
//!
//! The uploader follows the log from its durable cursor (`upload`), cuts batches by count,
//! bytes and age, posts them (postcard, LZ4 by default) and moves the cursor only on the
//! collector's acknowledgement, so every event arrives exactly once and in order whatever
//! happens to the box, the link or the collector. Retention never prunes past the cursor.
//! Failures back off (capped, jittered), consecutive ones pause uploading (circuit breaker,
//! then one probe). The backlog is bounded: WARN from 80 % of the byte budget, and past it new
//! orders are refused (503) with an ERROR and a metric until the collector catches up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orderd_plugins::collector::{Collector, Posted};
use orderd_protocol::upload::Batch;
use serde::Serialize;

use crate::events::EventLog;
use crate::retry::{Backoff, Breaker};
use crate::shutdown::Shutdown;
use crate::state::AppStateRef;

/// The uploader's consumer name (its cursor in the log).
pub const CONSUMER: &str = "upload";

/// What `GET /api/v1/status` and `/metrics` show.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Uploading is configured.
    pub enabled: bool,
    /// Everything up to this seq is at the collector (the durable cursor).
    pub acked_seq: u64,
    /// Events not yet acknowledged: the log's last seq minus the cursor, when asked.
    pub backlog_events: u64,
    /// Their size (postcard bytes, estimated from the average event).
    pub backlog_bytes: u64,
    /// Commit time of the oldest unacknowledged event, ms.
    pub oldest_unacked_at: Option<u64>,
    /// Last acknowledged batch, ms.
    pub last_success_at: Option<u64>,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// New orders are being refused: the backlog is over its budget.
    pub refusing_orders: bool,
}

/// What the uploader reports between attempts.
#[derive(Debug, Default)]
struct Reported {
    last_success_at: Option<u64>,
    last_error: Option<String>,
}

/// Shared between the uploader, the API and the order path. The backlog is never a stored
/// figure: it is computed from the event log's last seq and the durable cursor each time it is
/// asked, so it moves while the uploader waits out a backoff.
#[derive(Debug)]
pub struct UploadState {
    enabled: AtomicBool,
    /// The durable cursor (set after it is stored).
    acked: AtomicU64,
    /// Average encoded bytes per event (f64 bits).
    avg_bytes: AtomicU64,
    budget_bytes: u64,
    reported: Mutex<Reported>,
}

impl UploadState {
    /// The state of an uploader with this backlog budget.
    pub fn new(budget_bytes: u64) -> Self {
        Self {
            enabled: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            avg_bytes: AtomicU64::new(300f64.to_bits()),
            budget_bytes,
            reported: Mutex::default(),
        }
    }

    fn backlog(&self, last_seq: u64) -> (u64, u64) {
        if !self.enabled.load(Ordering::Acquire) {
            return (0, 0);
        }
        let events = last_seq.saturating_sub(self.acked.load(Ordering::Acquire));
        let avg = f64::from_bits(self.avg_bytes.load(Ordering::Relaxed));
        (events, (events as f64 * avg) as u64)
    }

    /// The status now: the backlog from the log's last seq and the durable cursor.
    pub fn status(&self, log: &EventLog) -> Status {
        let last = log.last_seq();
        let (events, bytes) = self.backlog(last);
        let acked = self.acked.load(Ordering::Acquire);
        let oldest = if events > 0 {
            log.read(acked + 1, 1)
                .ok()
                .and_then(|e| e.first().map(|e| e.at))
        } else {
            None
        };
        let r = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Status {
            enabled: self.enabled.load(Ordering::Acquire),
            acked_seq: acked,
            backlog_events: events,
            backlog_bytes: bytes,
            oldest_unacked_at: oldest,
            last_success_at: r.last_success_at,
            last_error: r.last_error.clone(),
            refusing_orders: bytes > self.budget_bytes,
        }
    }

    /// Whether new orders must be refused (backlog over budget), as of now.
    pub fn refusing(&self, last_seq: u64) -> bool {
        self.backlog(last_seq).1 > self.budget_bytes
    }

    fn update(&self, f: impl FnOnce(&mut Reported)) {
        let mut r = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut r);
    }

    fn set_acked(&self, seq: u64) {
        self.acked.store(seq, Ordering::Release);
    }
}

/// What the uploader uses: the application's state and its own status.
struct Uploader {
    app: AppStateRef,
    upload: Arc<UploadState>,
}

impl std::ops::Deref for Uploader {
    type Target = crate::state::AppState;

    fn deref(&self) -> &crate::state::AppState {
        &self.app
    }
}

/// Runs the uploader until shutdown (when uploading is off: releases its cursor and ends).
pub async fn run(app: AppStateRef, upload: Arc<UploadState>, mut shutdown: Shutdown) {
    let state = Uploader { app, upload };
    let cfg = state.settings.upload.clone();
    if !cfg.enabled {
        // A box that stopped uploading must not hold retention back.
        if let Ok(Some(_)) = state.events.cursor(CONSUMER) {
            let _ = state.events.unregister(CONSUMER).await;
            tracing::info!("upload disabled: its cursor is released");
        }
        return;
    }
    let Ok(Some(token)) = cfg.token.load() else {
        tracing::error!("upload: no token; nothing is uploaded");
        return;
    };
    let client = match Collector::new(
        &cfg.url,
        &token,
        Duration::from_millis(cfg.request_timeout_ms),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "upload: cannot build the HTTP client");
            return;
        }
    };
    let mut cursor = match state.events.register(CONSUMER).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e.message, "upload: cannot register the cursor");
            return;
        }
    };
    let compression = cfg.compression;
    let site_id = state.settings.site.id.clone();
    let mut limit = cfg.batch_events as usize;
    // The shared retry policy (`crate::retry`): backoff, and a breaker whose pause follows
    // breaker_failures failures in a row.
    let mut failures = Breaker::new(
        cfg.breaker_failures,
        Duration::from_secs(cfg.breaker_pause_secs),
    );
    let mut avg_bytes = 300.0f64;
    let mut last_error_log: Option<Instant> = None;
    let mut warned = false;
    let mut refused = false;
    let mut waiting: Option<(u64, Instant)> = None;
    state.upload.set_acked(cursor);
    state.upload.enabled.store(true, Ordering::Release);
    let probe_every = Duration::from_millis(cfg.probe_interval_ms);
    // Woken by each commit's events (the log is the truth; this is only the wake-up), so an
    // idle box does not poll. The minute's timeout keeps the backlog figures fresh.
    let mut commits = state.shared.events.subscribe();
    loop {
        let last = state.events.last_seq();
        report(&state, avg_bytes, &mut warned, &mut refused);
        if last <= cursor {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = commits.recv() => {}
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
            continue;
        }
        let events = match state.events.read(cursor + 1, limit) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "upload: reading the event log failed");
                if pause(&mut shutdown, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        // Each event is encoded once: its size cuts the batch at the byte limit (at least one
        // event), and the same bytes make the batch.
        let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(events.len());
        let mut size = 0usize;
        for e in &events {
            let bytes = postcard::to_allocvec(e).unwrap_or_default();
            if !encoded.is_empty() && size + bytes.len() > cfg.batch_bytes as usize {
                break;
            }
            size += bytes.len();
            encoded.push(bytes);
        }
        let events = &events[..encoded.len()];
        if events.is_empty() {
            if pause(&mut shutdown, Duration::from_millis(200)).await {
                return;
            }
            continue;
        }
        avg_bytes = 0.9 * avg_bytes + 0.1 * (size as f64 / events.len() as f64);
        let full = events.len() >= limit || size * 2 >= cfg.batch_bytes as usize;
        // Age on the monotonic clock, from when this batch's first event was first seen (the
        // box's wall clock may be unset or jump).
        let head = events[0].seq;
        let since = match waiting {
            Some((seq, at)) if seq == head => at,
            _ => {
                let now = Instant::now();
                waiting = Some((head, now));
                now
            }
        };
        let age = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !full && failures.failures() == 0 && age < cfg.max_age_ms {
            let wait = Duration::from_millis((cfg.max_age_ms - age).min(200));
            if pause(&mut shutdown, wait).await {
                return;
            }
            continue;
        }
        let seqs = (events[0].seq, events[events.len() - 1].seq);
        let mut plain = postcard::to_allocvec(&encoded.len()).unwrap_or_default();
        plain.reserve(size);
        for bytes in &encoded {
            plain.extend_from_slice(bytes);
        }
        let batch = Batch::from_plain(&site_id, &cfg.box_id, seqs, &plain, compression);
        let Ok(batch) = postcard::to_allocvec(&batch) else {
            tracing::error!("upload: a batch could not be encoded");
            if pause(&mut shutdown, Duration::from_secs(5)).await {
                return;
            }
            continue;
        };
        let last_in_batch = seqs.1;
        let posted = tokio::select! {
            () = shutdown.wait() => return,
            p = client.post(batch) => p,
        };
        let outcome = match &posted {
            Posted::Acked(_) => "acked",
            Posted::Gap(_) => "gap",
            Posted::Refused(_) => "refused",
            Posted::TooLarge => "too_large",
            Posted::Rejected(_) => "rejected",
            Posted::Retry { .. } => "retry",
        };
        state
            .metrics
            .upload_batches
            .get_or_create(&crate::metrics::OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        // A collector that could not be reached, or answered 5xx without a Retry-After, is
        // probed while the uploader waits, so the backlog moves as soon as it is back.
        let probe = matches!(posted, Posted::Retry { after: None, .. });
        let wait = match posted {
            Posted::Acked(seq) => {
                let to = seq.min(last_in_batch);
                if to > cursor {
                    if let Err(e) = state.events.set_cursor(CONSUMER, to).await {
                        tracing::error!(error = %e.message, "upload: storing the cursor failed");
                    } else {
                        state.upload.set_acked(to);
                    }
                    cursor = to;
                }
                failures.success();
                limit = cfg.batch_events as usize;
                let now = state.now_ms();
                state.upload.update(|s| {
                    s.last_success_at = Some(now);
                    s.last_error = None;
                });
                None
            }
            Posted::Gap(expected) => {
                let want = expected.saturating_sub(1);
                if want <= state.events.last_seq() {
                    tracing::warn!(
                        from = expected,
                        cursor,
                        "upload: the collector asks to resend from another seq"
                    );
                    if let Err(e) = state.events.set_cursor(CONSUMER, want).await {
                        tracing::error!(error = %e.message, "upload: storing the cursor failed");
                    } else {
                        state.upload.set_acked(want);
                    }
                    cursor = want;
                    None
                } else {
                    Some(fail(
                        &state,
                        &mut failures,
                        &mut last_error_log,
                        &cfg,
                        format!(
                            "the collector has events up to {want}, past this box's log ({}): was the box restored from an old backup?",
                            state.events.last_seq()
                        ),
                        None,
                    ))
                }
            }
            Posted::TooLarge => {
                limit = (limit / 2).max(1);
                tracing::warn!(limit, "upload: batch too large for the collector; halving");
                None
            }
            Posted::Refused(reason) => Some(fail(
                &state,
                &mut failures,
                &mut last_error_log,
                &cfg,
                format!(
                    "the collector refused this box's token ({reason}); fix [upload] token — the backlog is kept"
                ),
                None,
            )),
            Posted::Rejected(reason) => Some(fail(
                &state,
                &mut failures,
                &mut last_error_log,
                &cfg,
                format!("the collector rejected a batch: {reason}"),
                None,
            )),
            Posted::Retry { after, reason } => Some(fail(
                &state,
                &mut failures,
                &mut last_error_log,
                &cfg,
                reason,
                after,
            )),
        };
        if let Some(wait) = wait {
            let done = if probe && !probe_every.is_zero() {
                pause_probing(&mut shutdown, wait, &client, probe_every).await
            } else {
                pause(&mut shutdown, wait).await
            };
            if done {
                return;
            }
        }
    }
}

/// Records a failure and returns how long to wait: backoff, the collector's `Retry-After` if
/// later, or the breaker's pause. Logs at most once per wait.
fn fail(
    state: &Uploader,
    failures: &mut Breaker,
    last_log: &mut Option<Instant>,
    cfg: &orderd_plugins::collector::Config,
    reason: String,
    after: Option<Duration>,
) -> Duration {
    failures.failure();
    let backoff = Backoff {
        base_ms: cfg.base_backoff_ms,
        cap_ms: cfg.max_backoff_ms,
    };
    let mut wait = backoff.wait(failures.failures(), after);
    if failures.is_open() {
        wait = wait.max(failures.pause());
    }
    if last_log.is_none_or(|t| t.elapsed() >= wait.min(failures.pause())) {
        tracing::error!(
            failures = failures.failures(),
            retry_in_ms = wait.as_millis() as u64,
            "upload failed: {reason}"
        );
        *last_log = Some(Instant::now());
    }
    state.upload.update(|s| s.last_error = Some(reason));
    wait
}

/// Logs the backlog's crossings of its budget and sets the gauges (the figures themselves are
/// computed when asked, see [`UploadState::status`]).
fn report(state: &Uploader, avg_bytes: f64, warned: &mut bool, refused: &mut bool) {
    state
        .upload
        .avg_bytes
        .store(avg_bytes.to_bits(), Ordering::Relaxed);
    let s = state.upload.status(&state.events);
    let budget = state.settings.upload.backlog_budget_bytes;
    let bytes = s.backlog_bytes;
    if bytes > budget / 10 * 8 && !*warned {
        tracing::warn!(
            backlog_bytes = bytes,
            budget,
            "upload backlog above 80 % of its budget: is the collector reachable?"
        );
        *warned = true;
    } else if bytes < budget / 10 * 7 {
        *warned = false;
    }
    if s.refusing_orders && !*refused {
        tracing::error!(
            backlog_bytes = bytes,
            budget,
            "upload backlog over its budget: new orders are refused until the collector catches up"
        );
    }
    *refused = s.refusing_orders;
    set_gauges(state, &s);
}

/// The upload gauges of `/metrics`, from a status computed now.
pub fn set_gauges(state: &crate::state::AppState, s: &Status) {
    let now = state.now_ms();
    let m = &state.metrics;
    m.upload_backlog_events
        .set(i64::try_from(s.backlog_events).unwrap_or(i64::MAX));
    m.upload_backlog_bytes
        .set(i64::try_from(s.backlog_bytes).unwrap_or(i64::MAX));
    m.upload_oldest_seconds
        .set(s.oldest_unacked_at.map_or(0, |at| {
            i64::try_from(now.saturating_sub(at) / 1000).unwrap_or(0)
        }));
    m.upload_last_success_seconds.set(
        s.last_success_at
            .map_or(0, |t| i64::try_from(t / 1000).unwrap_or(0)),
    );
}

/// Waits `d` like [`pause`], asking the collector's health every `every` meanwhile; ends early
/// (false) once it answers. True when shutdown came first.
async fn pause_probing(
    shutdown: &mut Shutdown,
    d: Duration,
    client: &Collector,
    every: Duration,
) -> bool {
    let until = tokio::time::Instant::now() + d;
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            return false;
        }
        let step = every.min(until - now);
        if pause(shutdown, step).await {
            return true;
        }
        let healthy = tokio::select! {
            () = shutdown.wait() => return true,
            h = client.healthy() => h,
        };
        if healthy {
            tracing::info!("upload: the collector answers again; sending the backlog");
            return false;
        }
    }
}

/// Sleeps; true when shutdown came first.
async fn pause(shutdown: &mut Shutdown, d: Duration) -> bool {
    tokio::select! {
        () = shutdown.wait() => true,
        () = tokio::time::sleep(d) => false,
    }
}
