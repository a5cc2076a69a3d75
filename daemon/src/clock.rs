//! Wall-clock time behind a trait, so tests can move time (recall windows, business days,
//! session expiry, retention) without sleeping, and the guard that keeps the daemon's time from
//! ever going backwards when a Pi boots without a real-time clock.

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

/// What the guarded clock knows about the wall clock, for the status and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ClockState {
    /// The wall clock's last reading.
    pub wall_ms: u64,
    /// The time the box uses (never earlier than any time it used before).
    pub now_ms: u64,
    /// The wall clock reads before this release was built.
    pub unset: bool,
    /// The wall clock is behind the time the box already used (by `now_ms - wall_ms`), so the
    /// box carries its own time forward instead.
    pub behind: bool,
    /// Times the wall clock was found behind the box's time since the daemon started.
    pub times_behind: u64,
}

#[derive(Debug)]
struct Floor {
    /// The last time handed out while the wall clock was good (or the last event's time, at
    /// start).
    ms: u64,
    /// When `ms` was read.
    at: std::time::Instant,
    /// Whether the wall clock is behind `ms` and time is carried forward from it.
    behind: bool,
    /// Whether the wall clock looked unset at the last reading (for logging transitions).
    unset: bool,
    /// Switches to `behind` since start.
    times_behind: u64,
    wall: u64,
    now: u64,
}

/// The clock every part of the daemon reads: the wall clock, except that it never goes
/// backwards.
///
/// A Pi has no real-time clock, so it may boot at 1970 or at its last shutdown until NTP
/// syncs, and NTP may step it back. While the wall clock reads earlier than a time already
/// used (the last event's time, at start), this clock carries on from that time at the pace of
/// the monotonic clock; as soon as the wall clock catches up, it is used again. So event times
/// and order ids only grow, and business days (derived from them) never go back. The switch
/// each way is logged once; [`GuardedClock::state`] feeds the status.
pub struct GuardedClock {
    wall: std::sync::Arc<dyn Clock>,
    floor: std::sync::Mutex<Floor>,
}

impl std::fmt::Debug for GuardedClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedClock")
            .field("floor", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl GuardedClock {
    /// Guards `wall`, never going below `floor_ms` (the last time the store recorded).
    pub fn new(wall: std::sync::Arc<dyn Clock>, floor_ms: u64) -> Self {
        let clock = Self {
            wall,
            floor: std::sync::Mutex::new(Floor {
                ms: floor_ms,
                at: std::time::Instant::now(),
                behind: false,
                unset: false,
                times_behind: 0,
                wall: 0,
                now: floor_ms,
            }),
        };
        clock.now_ms();
        clock
    }

    /// The last reading, with the flags the status shows.
    pub fn state(&self) -> ClockState {
        self.now_ms();
        let f = self.lock();
        ClockState {
            wall_ms: f.wall,
            now_ms: f.now,
            unset: f.unset,
            behind: f.behind,
            times_behind: f.times_behind,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Floor> {
        self.floor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for GuardedClock {
    fn now_ms(&self) -> u64 {
        let mut f = self.lock();
        // Read under the lock: read before it, a thread holding an older reading would find
        // the floor already moved past it by another and take that for the clock going back.
        let wall = self.wall.now_ms();
        let carried = if f.behind {
            f.ms.saturating_add(u64::try_from(f.at.elapsed().as_millis()).unwrap_or(u64::MAX))
        } else {
            f.ms
        };
        let now = if wall >= carried {
            if f.behind {
                tracing::info!(
                    wall_ms = wall,
                    "the wall clock caught up with the box's time; using it again"
                );
            }
            f.ms = wall;
            f.at = std::time::Instant::now();
            f.behind = false;
            wall
        } else {
            if !f.behind {
                f.behind = true;
                f.times_behind += 1;
                tracing::warn!(
                    wall_ms = wall,
                    box_ms = carried,
                    behind_ms = carried - wall,
                    "the wall clock went back (or is unset): carrying the box's time forward; order numbers and business days do not go back"
                );
            }
            carried
        };
        let unset = looks_unset(wall);
        if unset != f.unset {
            if unset {
                tracing::warn!(
                    wall_ms = wall,
                    "the clock is not set (it reads before this release was built); orders go on, business days follow the box's last known time until it is set"
                );
            } else {
                tracing::info!(wall_ms = wall, "the clock is set");
            }
            f.unset = unset;
        }
        f.wall = wall;
        f.now = now;
        now
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_guarded_clock_never_goes_back_and_returns_to_the_wall_clock() {
        let wall = Arc::new(ManualClock::new(EARLIEST_PLAUSIBLE_MS + 10_000));
        let clock = GuardedClock::new(wall.clone(), 0);
        assert_eq!(clock.now_ms(), EARLIEST_PLAUSIBLE_MS + 10_000);
        assert!(!clock.state().behind);

        // NTP steps the clock back a minute: time carries on from where it was.
        wall.set_ms(EARLIEST_PLAUSIBLE_MS - 50_000);
        let a = clock.now_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = clock.now_ms();
        assert!(a >= EARLIEST_PLAUSIBLE_MS + 10_000 && b >= a + 5, "{a} {b}");
        let st = clock.state();
        assert!(st.behind && st.unset && st.times_behind == 1, "{st:?}");
        assert_eq!(st.wall_ms, EARLIEST_PLAUSIBLE_MS - 50_000);

        // The wall clock catches up: it is used again, exactly.
        wall.set_ms(EARLIEST_PLAUSIBLE_MS + 3_600_000);
        assert_eq!(clock.now_ms(), EARLIEST_PLAUSIBLE_MS + 3_600_000);
        let st = clock.state();
        assert!(!st.behind && !st.unset, "{st:?}");
    }

    /// A wall clock one millisecond later at every reading, as a busy box sees it.
    struct Ticking(AtomicU64);

    impl Clock for Ticking {
        fn now_ms(&self) -> u64 {
            self.0.fetch_add(1, Ordering::SeqCst)
        }
    }

    #[test]
    fn readings_from_many_threads_are_not_taken_for_the_clock_going_back() {
        let clock = Arc::new(GuardedClock::new(
            Arc::new(Ticking(AtomicU64::new(EARLIEST_PLAUSIBLE_MS))),
            0,
        ));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..20_000 {
                        let now = clock.now_ms();
                        assert!(now > last);
                        last = now;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let st = clock.state();
        assert_eq!(st.times_behind, 0, "{st:?}");
        assert!(!st.behind);
    }

    #[test]
    fn the_guarded_clock_starts_no_earlier_than_the_store() {
        let wall = Arc::new(ManualClock::new(0));
        let clock = GuardedClock::new(wall, EARLIEST_PLAUSIBLE_MS);
        assert!(clock.now_ms() >= EARLIEST_PLAUSIBLE_MS);
        assert!(clock.state().unset);
    }
}
