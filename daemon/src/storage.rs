//! The storage budget: free space on the data directory's filesystem, a WARN as it fills up,
//! new orders refused (507) only when it is really full, and recovery by itself once space is
//! back — no restart.
//!
//! Levels: `ok`; `low` below `store.warn_free_mb` or below the store file's size (redb grows by
//! doubling, so it may need that much again); `full` below `store.min_free_mb`. Only `full`
//! refuses anything, and only new orders: orders already placed can still be finished, in the
//! space the budget keeps back. The store's own reserve (`store::backend::Reserve`) covers its
//! growth on a disk that filled up between two checks; it is recreated here once there is room.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::shutdown::Shutdown;
use crate::store::backend::Reserve;

/// How full the disk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Enough space.
    Ok = 0,
    /// Filling up: WARN.
    Low = 1,
    /// Really full: new orders refused.
    Full = 2,
}

impl Level {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Ok,
            1 => Self::Low,
            _ => Self::Full,
        }
    }

    /// Its name in the status.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Low => "low",
            Self::Full => "full",
        }
    }
}

/// Free space of one filesystem, in bytes: (available to us, total).
pub fn free_space(dir: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::statvfs(dir)?;
    Ok((
        st.f_bavail.saturating_mul(st.f_frsize),
        st.f_blocks.saturating_mul(st.f_frsize),
    ))
}

/// The budget and the last reading.
#[derive(Debug)]
pub struct Storage {
    dir: std::path::PathBuf,
    warn_bytes: u64,
    min_bytes: u64,
    reserve: Option<Arc<Reserve>>,
    level: AtomicU8,
    free: AtomicU64,
    total: AtomicU64,
    /// Monotonic ms (since `epoch`) of the last check.
    checked_at: AtomicU64,
    epoch: Instant,
}

impl Storage {
    /// The budget of `settings` for the store in `dir`.
    pub fn new(
        dir: &std::path::Path,
        cfg: &crate::config::StoreConfig,
        reserve: Option<Arc<Reserve>>,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            warn_bytes: cfg.warn_free_mb * 1024 * 1024,
            min_bytes: cfg.min_free_mb * 1024 * 1024,
            reserve,
            level: AtomicU8::new(Level::Ok as u8),
            free: AtomicU64::new(u64::MAX),
            total: AtomicU64::new(0),
            checked_at: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The level of the last check.
    pub fn level(&self) -> Level {
        Level::from_u8(self.level.load(Ordering::Acquire))
    }

    /// Reads the free space, moves the level (logging each change once), and puts the store's
    /// reserve back when there is room for it (which writes the reserve file: not on a request
    /// path).
    pub fn check(&self, store_bytes: u64) -> Level {
        let level = self.measure(store_bytes);
        if let Some(r) = &self.reserve
            && self.free.load(Ordering::Acquire) >= self.min_bytes.saturating_add(r.bytes())
            && !r.in_place()
        {
            match r.ensure() {
                Ok(true) => tracing::info!("storage reserve restored"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not restore the storage reserve"),
            }
            return self.measure(store_bytes);
        }
        level
    }

    /// Reads the free space and moves the level, logging each change once.
    fn measure(&self, store_bytes: u64) -> Level {
        self.checked_at.store(
            u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
        let (free, total) = match free_space(&self.dir) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot read the free space of the data directory");
                return self.level();
            }
        };
        self.free.store(free, Ordering::Release);
        self.total.store(total, Ordering::Release);
        let level = if free < self.min_bytes {
            Level::Full
        } else if free < self.warn_bytes.max(store_bytes) {
            Level::Low
        } else {
            Level::Ok
        };
        let before = Level::from_u8(self.level.swap(level as u8, Ordering::AcqRel));
        if before != level {
            let free_mb = free / (1024 * 1024);
            let min_mb = self.min_bytes / (1024 * 1024);
            match level {
                Level::Full => tracing::error!(
                    free_mb,
                    min_mb,
                    "the data disk is full: new orders are refused (507) until space is freed; orders already placed can be finished"
                ),
                Level::Low => tracing::warn!(
                    free_mb,
                    store_mb = store_bytes / (1024 * 1024),
                    warn_mb = self.warn_bytes / (1024 * 1024),
                    "the data disk is filling up; free space before it is full (new orders stop below {min_mb} MiB)"
                ),
                Level::Ok => tracing::info!(free_mb, "the data disk has room again"),
            }
            if before == Level::Full {
                tracing::info!(free_mb, "new orders are accepted again");
            }
        }
        level
    }

    /// Whether new orders must be refused. Rechecks at most once a second, so orders resume
    /// as soon as space is freed.
    /// `store_bytes` is asked only when a reading is due.
    pub fn refusing(&self, store_bytes: impl FnOnce() -> u64) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(self.checked_at.load(Ordering::Acquire)) >= 1000 {
            self.measure(store_bytes());
        }
        self.level() == Level::Full
    }

    /// The `storage` part of the status.
    pub fn status(&self) -> Value {
        json!({
            "level": self.level().name(),
            "free_bytes": self.free.load(Ordering::Acquire),
            "total_bytes": self.total.load(Ordering::Acquire),
            "warn_free_bytes": self.warn_bytes,
            "min_free_bytes": self.min_bytes,
            "reserve_in_place": self.reserve.as_ref().map(|r| r.in_place()),
            "reserve_released": self.reserve.as_ref().map_or(0, |r| r.released()),
        })
    }
}

/// Checks the budget every `every` until shutdown, and feeds the metrics.
pub async fn run(
    storage: Arc<Storage>,
    store: crate::store::Store,
    metrics: Arc<crate::metrics::Metrics>,
    every: Duration,
    mut shutdown: Shutdown,
) {
    loop {
        let budget = Arc::clone(&storage);
        let store_bytes = store.file_bytes();
        // statvfs and the reserve's file writes block: off the async threads.
        let level = tokio::task::spawn_blocking(move || budget.check(store_bytes))
            .await
            .unwrap_or(Level::Ok);
        metrics
            .storage_free_bytes
            .set(i64::try_from(storage.free.load(Ordering::Acquire)).unwrap_or(i64::MAX));
        metrics.storage_level.set(level as i64);
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => return,
        }
    }
}
