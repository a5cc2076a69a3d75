//! Password-guessing limits for staff sign-in and device logins, which races cannot bypass,
//! and the send budget of one-time codes.
//!
//! An attempt is *reserved* before its password hash is checked, under one lock, and the
//! reservation counts against every limit until its outcome is known. So however requests are
//! interleaved — 300 written at once on pre-opened connections — no more hash checks run than
//! the limits allow; the rest are refused at once, before any hash.
//!
//! The limits, each per `window_ms`:
//! - **per source** (one username or device id from one client address): `per_source`
//!   failures, then an exponential delay (`base_delay_ms`, doubling per further failure, capped
//!   at the window) before the next single attempt. The owner on their own device is slowed
//!   gently, never locked out for long.
//! - **per address** (any username): `per_address` failures, then the same delay, so one
//!   address cannot spray usernames.
//! - **per account** (one username or device id, from addresses it has not signed in from):
//!   `per_account` failures. An address where the account signed in within `trust_ms` keeps its
//!   own budget, so an attacker's failures from other addresses cannot spend the real user's.
//!
//! Memory is bounded: stale entries are dropped once a map passes 100,000 keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The limits of one throttle.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures per (account, address) before delays start.
    pub per_source: u32,
    /// Failures per address, over all accounts, before delays start.
    pub per_address: u32,
    /// Failures per account from untrusted addresses before it refuses them for the window.
    pub per_account: u32,
    /// First delay after the per-source or per-address limit, ms (doubles per failure).
    pub base_delay_ms: u64,
    /// The window failures are counted in, ms (also the longest delay).
    pub window_ms: u64,
    /// How long an address stays trusted for an account after a success, ms.
    pub trust_ms: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    failures: u32,
    pending: u32,
    /// Start of the window, ms.
    since: u64,
    /// No new attempt before this, ms (once over the limit).
    next_at: u64,
}

impl Count {
    fn roll(&mut self, now: u64, window: u64) {
        if self.since + window <= now && self.pending == 0 {
            *self = Self {
                since: now,
                ..Self::default()
            };
        }
    }

    /// Ms to wait before another attempt, if any, for a limit of `max` failures.
    fn wait(&self, max: u32, now: u64, window: u64) -> Option<u64> {
        if self.failures + self.pending < max {
            return None;
        }
        if self.failures >= max && self.pending == 0 && self.next_at <= now {
            return None;
        }
        Some(
            self.next_at
                .max(now + 1)
                .min(self.since + window)
                .max(now + 1)
                - now,
        )
    }

    fn fail(&mut self, max: u32, now: u64, base: u64, window: u64) {
        self.pending = self.pending.saturating_sub(1);
        self.failures += 1;
        if self.failures >= max {
            let doublings = (self.failures - max).min(30);
            let delay = base.saturating_mul(1 << doublings).min(window);
            self.next_at = now + delay;
        }
    }
}

#[derive(Debug, Default)]
struct State {
    sources: HashMap<(String, IpAddr), Count>,
    addresses: HashMap<IpAddr, Count>,
    accounts: HashMap<String, Count>,
    /// (account, address) → trusted until, ms.
    trusted: HashMap<(String, IpAddr), u64>,
}

/// A throttle shared by every attempt of one kind (staff sign-in, admin PIN, device login).
#[derive(Debug)]
pub struct Throttle {
    limits: Limits,
    state: Arc<Mutex<State>>,
}

/// A reserved attempt: settle it with [`Permit::succeed`] or [`Permit::fail`]. Dropped
/// unsettled (the check could not be made), it gives its place back without counting.
#[derive(Debug)]
pub struct Permit {
    limits: Limits,
    state: Arc<Mutex<State>>,
    account: String,
    addr: IpAddr,
    trusted: bool,
    settled: bool,
}

const MAX_KEYS: usize = 100_000;

impl Throttle {
    /// A throttle with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Arc::default(),
        }
    }

    /// Reserves an attempt by `account` from `addr`, or says how many seconds to wait.
    pub fn reserve(&self, account: &str, addr: IpAddr, now: u64) -> Result<Permit, u64> {
        let l = self.limits;
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let s = &mut *guard;
        if s.sources.len() > MAX_KEYS || s.accounts.len() > MAX_KEYS || s.trusted.len() > MAX_KEYS {
            let w = l.window_ms;
            s.sources
                .retain(|_, c| c.pending > 0 || c.since + w > now || c.next_at > now);
            s.addresses
                .retain(|_, c| c.pending > 0 || c.since + w > now || c.next_at > now);
            s.accounts
                .retain(|_, c| c.pending > 0 || c.since + w > now || c.next_at > now);
            s.trusted.retain(|_, until| *until > now);
        }
        let key = (account.to_owned(), addr);
        let trusted = s.trusted.get(&key).is_some_and(|&until| until > now);
        let source = s.sources.entry(key).or_insert(Count {
            since: now,
            ..Count::default()
        });
        source.roll(now, l.window_ms);
        let mut wait = source.wait(l.per_source, now, l.window_ms);
        let address = s.addresses.entry(addr).or_insert(Count {
            since: now,
            ..Count::default()
        });
        address.roll(now, l.window_ms);
        if !trusted {
            wait = wait.max(address.wait(l.per_address, now, l.window_ms));
            let acct = s.accounts.entry(account.to_owned()).or_insert(Count {
                since: now,
                ..Count::default()
            });
            acct.roll(now, l.window_ms);
            if acct.failures + acct.pending >= l.per_account {
                wait = wait.max(Some((acct.since + l.window_ms).saturating_sub(now).max(1)));
            }
        }
        if let Some(ms) = wait {
            return Err(ms.div_ceil(1000).max(1));
        }
        let key = (account.to_owned(), addr);
        if let Some(c) = s.sources.get_mut(&key) {
            c.pending += 1;
        }
        if !trusted {
            if let Some(c) = s.addresses.get_mut(&addr) {
                c.pending += 1;
            }
            if let Some(c) = s.accounts.get_mut(account) {
                c.pending += 1;
            }
        }
        Ok(Permit {
            limits: l,
            state: Arc::clone(&self.state),
            account: account.to_owned(),
            addr,
            trusted,
            settled: false,
        })
    }
}

impl Permit {
    /// The password was right: the source is cleared and the address trusted for the account.
    pub fn succeed(mut self, now: u64) {
        self.settled = true;
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (self.account.clone(), self.addr);
        s.sources.remove(&key);
        s.trusted.insert(key, now + self.limits.trust_ms);
        if !self.trusted {
            if let Some(c) = s.addresses.get_mut(&self.addr) {
                c.pending = c.pending.saturating_sub(1);
            }
            if let Some(c) = s.accounts.get_mut(&self.account) {
                c.pending = c.pending.saturating_sub(1);
            }
        }
    }

    /// The password was wrong (or the account unknown): counted against every limit.
    pub fn fail(mut self, now: u64) {
        self.settled = true;
        let l = self.limits;
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (self.account.clone(), self.addr);
        if let Some(c) = s.sources.get_mut(&key) {
            c.fail(l.per_source, now, l.base_delay_ms, l.window_ms);
        }
        if !self.trusted {
            if let Some(c) = s.addresses.get_mut(&self.addr) {
                c.fail(l.per_address, now, l.base_delay_ms, l.window_ms);
            }
            if let Some(c) = s.accounts.get_mut(&self.account) {
                c.fail(l.per_account, now, l.base_delay_ms, l.window_ms);
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (self.account.clone(), self.addr);
        if let Some(c) = s.sources.get_mut(&key) {
            c.pending = c.pending.saturating_sub(1);
        }
        if !self.trusted {
            if let Some(c) = s.addresses.get_mut(&self.addr) {
                c.pending = c.pending.saturating_sub(1);
            }
            if let Some(c) = s.accounts.get_mut(&self.account) {
                c.pending = c.pending.saturating_sub(1);
            }
        }
    }
}

/// A budget of sends per window, in all and per key (for one-time codes: a number prefix),
/// on top of the per-phone and per-address limits, so numbers spread over many addresses
/// cannot pump paid messages. A send is taken before it is queued.
#[derive(Debug)]
pub struct Budget {
    total: u32,
    per_key: u32,
    window_ms: u64,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    all: std::collections::VecDeque<u64>,
    keys: HashMap<String, std::collections::VecDeque<u64>>,
    /// The staff were told the budget was spent, until this time.
    alerted_until: u64,
}

/// Why a send was refused, and for how many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// The budget over all keys; `true` when the staff should be alerted now (once a window).
    Total(u64, bool),
    /// The budget of this key.
    Key(u64),
}

impl Budget {
    /// `total` sends and `per_key` sends per key per `window_ms`.
    pub fn new(total: u32, per_key: u32, window_ms: u64) -> Self {
        Self {
            total,
            per_key,
            window_ms,
            state: Mutex::default(),
        }
    }

    /// Takes one send for `key`, or says which budget is spent.
    pub fn take(&self, key: &str, now: u64) -> Result<(), Spent> {
        let w = self.window_ms;
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let s = &mut *guard;
        while s.all.front().is_some_and(|&t| t + w <= now) {
            s.all.pop_front();
        }
        if s.all.len() >= self.total as usize {
            let wait = s.all.front().map_or(w, |&t| t + w - now).div_ceil(1000);
            let alert = s.alerted_until <= now;
            if alert {
                s.alerted_until = now + w;
            }
            return Err(Spent::Total(wait.max(1), alert));
        }
        if s.keys.len() > MAX_KEYS {
            s.keys.retain(|_, q| q.back().is_some_and(|&t| t + w > now));
        }
        let q = s.keys.entry(key.to_owned()).or_default();
        while q.front().is_some_and(|&t| t + w <= now) {
            q.pop_front();
        }
        if q.len() >= self.per_key as usize {
            let wait = q.front().map_or(w, |&t| t + w - now).div_ceil(1000);
            return Err(Spent::Key(wait.max(1)));
        }
        q.push_back(now);
        s.all.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_in_all_and_per_key_and_alerts_once() {
        let b = Budget::new(10, 3, 60_000);
        for _ in 0..3 {
            assert!(b.take("+3556912", 0).is_ok());
        }
        assert_eq!(b.take("+3556912", 0), Err(Spent::Key(60)));
        for n in 0..7 {
            assert!(b.take(&format!("+44{n}"), 1000).is_ok());
        }
        assert_eq!(b.take("+1555", 2000), Err(Spent::Total(58, true)));
        assert_eq!(
            b.take("+1556", 2000),
            Err(Spent::Total(58, false)),
            "alerted once"
        );
        assert!(b.take("+1555", 60_001).is_ok(), "the window moves on");
    }

    const LIMITS: Limits = Limits {
        per_source: 5,
        per_address: 20,
        per_account: 10,
        base_delay_ms: 1000,
        window_ms: 300_000,
        trust_ms: 30 * 86_400_000,
    };

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn reservations_count_before_any_outcome() {
        let t = Throttle::new(LIMITS);
        let permits: Vec<Permit> = (0..300)
            .filter_map(|_| t.reserve("admin", ip(1), 0).ok())
            .collect();
        assert_eq!(
            permits.len(),
            5,
            "only the limit's worth of checks run at once"
        );
        for p in permits {
            p.fail(10);
        }
        // Locked: the next single attempt waits the first delay, then doubles.
        assert_eq!(t.reserve("admin", ip(1), 10).unwrap_err(), 1);
        let p = t
            .reserve("admin", ip(1), 1010)
            .expect("one attempt after the delay");
        assert!(t.reserve("admin", ip(1), 1010).is_err(), "one at a time");
        p.fail(1010);
        assert_eq!(t.reserve("admin", ip(1), 1011).unwrap_err(), 2);
    }

    #[test]
    fn failures_elsewhere_cannot_spend_the_owners_budget() {
        let t = Throttle::new(LIMITS);
        // The owner signed in from their tablet once.
        t.reserve("admin", ip(1), 0).unwrap().succeed(0);
        // An attacker on many addresses spends the account's budget for strangers.
        for n in 10..40 {
            if let Ok(p) = t.reserve("admin", ip(n), 100) {
                p.fail(100);
            }
        }
        assert!(
            t.reserve("admin", ip(200), 200).is_err(),
            "strangers refused"
        );
        // The owner's tablet is still served, and a wrong password there slows only it.
        let p = t
            .reserve("admin", ip(1), 200)
            .expect("the trusted address keeps its budget");
        p.succeed(200);
    }

    #[test]
    fn an_address_cannot_spray_usernames_and_windows_forgive() {
        let t = Throttle::new(LIMITS);
        for n in 0..20 {
            t.reserve(&format!("user{n}"), ip(7), 0).unwrap().fail(0);
        }
        assert!(t.reserve("another", ip(7), 0).is_err());
        assert!(
            t.reserve("another", ip(8), 0).is_ok(),
            "other addresses unaffected"
        );
        assert!(
            t.reserve("another", ip(7), 300_001).is_ok(),
            "a new window starts over"
        );
    }

    #[test]
    fn a_dropped_permit_gives_its_place_back() {
        let t = Throttle::new(LIMITS);
        for _ in 0..10 {
            drop(t.reserve("anna", ip(1), 0).unwrap());
        }
        let held: Vec<Permit> = (0..5)
            .map(|_| t.reserve("anna", ip(1), 0).unwrap())
            .collect();
        assert!(t.reserve("anna", ip(1), 0).is_err());
        drop(held);
    }
}
