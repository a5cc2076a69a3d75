//! `[upload]` settings.

use orderd_protocol::upload::Compression;
use serde::{Deserialize, Serialize};

use crate::messaging::Secret;

/// `[upload]`: store-and-forward upload of the event log to the chain's collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Upload at all.
    pub enabled: bool,
    /// The collector's batch endpoint, e.g. `https://collector.example/v1/batches`.
    pub url: String,
    /// This site's upload token (from `orderd-collector site add`).
    pub token: Secret,
    /// This box's id within the site.
    pub box_id: String,
    /// Most events per batch.
    pub batch_events: u32,
    /// Most bytes of events per batch (before compression).
    pub batch_bytes: u32,
    /// A batch smaller than that waits at most this long for more events, ms.
    pub max_age_ms: u64,
    /// `lz4` or `none`.
    pub compression: Compression,
    /// One request's time limit, ms.
    pub request_timeout_ms: u64,
    /// First retry after, ms (doubling, jittered).
    pub base_backoff_ms: u64,
    /// Retries at most this far apart, ms.
    pub max_backoff_ms: u64,
    /// Consecutive failures that pause uploading (circuit breaker) …
    pub breaker_failures: u32,
    /// … for this long, then one probe.
    pub breaker_pause_secs: u64,
    /// While uploads fail, the collector's `/healthz` (same origin as `url`) is asked this
    /// often, ms; once it answers, the backlog is posted at once instead of waiting out the
    /// backoff or the breaker (0: never).
    pub probe_interval_ms: u64,
    /// Unacknowledged events may take at most this many bytes; past it new orders are refused
    /// (503) until the collector catches up. WARN from 80 %.
    pub backlog_budget_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            enabled: false,
            url: String::new(),
            token: Secret::default(),
            box_id: "main".into(),
            batch_events: 500,
            batch_bytes: 1024 * 1024,
            max_age_ms: 2000,
            compression: Compression::Lz4,
            request_timeout_ms: 10_000,
            base_backoff_ms: 1000,
            max_backoff_ms: 60_000,
            breaker_failures: 5,
            breaker_pause_secs: 30,
            probe_interval_ms: 1000,
            backlog_budget_bytes: 512 * 1024 * 1024,
        }
    }
}
