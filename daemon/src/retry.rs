//! One retry policy for the box's outbound calls (the uploader, the message sender, and the
//! driver of network printers reconnecting): a capped exponential backoff with jitter that
//! honours the other side's `Retry-After`, and a circuit breaker that pauses a failing peer and
//! lets one probe through after the pause.
//! Both keep time on tokio's clock, so tests run them on a paused clock.

use std::time::Duration;

use rand::Rng as _;
use tokio::time::Instant;

/// Capped exponential backoff with jitter in its upper half.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first wait, ms (doubles per failure).
    pub base_ms: u64,
    /// The longest wait, ms.
    pub cap_ms: u64,
}

impl Backoff {
    /// The wait after `failures` failures in a row (1 for the first): `base × 2^(failures-1)`,
    /// capped, a random point in its upper half; at least `after` when the peer asked for it.
    pub fn wait(&self, failures: u32, after: Option<Duration>) -> Duration {
        let exp = self
            .base_ms
            .saturating_mul(1u64 << failures.saturating_sub(1).min(30))
            .min(self.cap_ms);
        let low = exp / 2;
        let jittered = Duration::from_millis(rand::thread_rng().gen_range(low..=exp.max(low)));
        after.map_or(jittered, |a| jittered.max(a))
    }
}

/// What a breaker lets through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Closed: call as often as pacing allows.
    Closed,
    /// Open, its pause over: this one call is the probe that decides.
    Probe,
    /// Open: no call until then (or a probe is already out).
    Wait(Option<Instant>),
}

/// A circuit breaker: `threshold` failures in a row open it for `pause`; then one probe; a
/// success closes it, a failure opens it again.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    pause: Duration,
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, pause: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            pause,
            failures: 0,
            open_until: None,
            probing: false,
        }
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the breaker is open (the peer is paused, or probed).
    pub fn is_open(&self) -> bool {
        self.failures >= self.threshold
    }

    /// Whether [`Breaker::allow`] would let a call through now (without taking the probe).
    pub fn ready(&self) -> bool {
        !self.is_open() || (!self.probing && self.open_until.is_none_or(|t| t <= Instant::now()))
    }

    /// Whether a call may go out now; a [`Allow::Probe`] is counted as out until its outcome.
    pub fn allow(&mut self) -> Allow {
        if !self.is_open() {
            return Allow::Closed;
        }
        if self.probing {
            return Allow::Wait(None);
        }
        match self.open_until {
            Some(t) if t > Instant::now() => Allow::Wait(Some(t)),
            _ => {
                self.probing = true;
                Allow::Probe
            }
        }
    }

    /// A call succeeded; whether the peer had been failing (so what waited for it may go now).
    pub fn success(&mut self) -> bool {
        let was_failing = self.failures > 0;
        self.failures = 0;
        self.open_until = None;
        self.probing = false;
        was_failing
    }

    /// A call failed; whether this failure opened the breaker (to log it once).
    pub fn failure(&mut self) -> bool {
        self.failures += 1;
        self.probing = false;
        if self.failures >= self.threshold {
            self.open_until = Some(Instant::now() + self.pause);
            return self.failures == self.threshold;
        }
        false
    }

    /// A call that never reached the peer (held back, say): neither success nor failure.
    pub fn release(&mut self) {
        self.probing = false;
    }

    /// The breaker's pause.
    pub fn pause(&self) -> Duration {
        self.pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_jittered_and_honours_retry_after() {
        let b = Backoff {
            base_ms: 1000,
            cap_ms: 60_000,
        };
        for failures in 1..40 {
            let w = b.wait(failures, None).as_millis() as u64;
            let exp = (1000u64 << (failures - 1).min(30)).min(60_000);
            assert!(w >= exp / 2 && w <= exp, "failure {failures}: {w}");
        }
        let samples: std::collections::HashSet<Duration> =
            (0..50).map(|_| b.wait(5, None)).collect();
        assert!(samples.len() > 1, "jittered");
        assert_eq!(
            b.wait(1, Some(Duration::from_secs(90))),
            Duration::from_secs(90),
            "the peer's Retry-After wins when later"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_breaker_opens_pauses_probes_once_and_closes() {
        let mut b = Breaker::new(3, Duration::from_secs(2));
        assert_eq!(b.allow(), Allow::Closed);
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.failure(), "the third failure opens it");
        assert!(b.is_open());
        assert!(matches!(b.allow(), Allow::Wait(Some(_))), "paused");
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(matches!(b.allow(), Allow::Wait(Some(_))));
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(b.allow(), Allow::Probe, "one probe after the pause");
        assert_eq!(b.allow(), Allow::Wait(None), "only one at a time");
        assert!(!b.failure(), "a failed probe opens it again, not newly");
        assert!(matches!(b.allow(), Allow::Wait(Some(_))));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.allow(), Allow::Probe);
        assert!(b.success(), "it had been failing");
        assert_eq!(b.allow(), Allow::Closed);
        assert!(!b.success());
    }
}
