//! The outbox sender: sends due rows through their provider, at most `concurrency` at once
//! per provider and `rate_per_sec` each, and stores each outcome once: sent; failed and
//! retried after a capped, jittered exponential backoff (or the provider's `Retry-After`,
//! whichever is later); dead with the provider's reason. Consecutive failures open a
//! provider's circuit breaker: nothing is sent to it for `breaker_pause_secs`, then one probe
//! decides; a probe's failure does not use up its message's attempts, and the first success
//! after failures makes every waiting message of that provider due at once.
//!
//! Calls run as tasks the loop collects one by one, so a provider that stalls until the
//! request timeout holds back only its own messages, never another provider's.
//!
//! Every row is claimed (`sending`) in one commit before its provider call, and the claim
//! re-reads the row: one cancelled meanwhile (a code replaced by a newer code) or a code that
//! expired is not sent. A row found `sending` at start was interrupted mid-call: a status
//! message or alert is sent again (at least once), a code is not (see
//! `crate::domain::outbox`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use orderd_plugins::messaging::{Kind, Outcome, Outgoing, Provider};
use tokio::task::JoinSet;

use super::Texts;
use crate::domain::outbox::{self, Channel, Message, OutboxRow, State};
use crate::error::Commit as _;
use crate::metrics::{ChannelLabels, MessageLabels};
use crate::retry::{Allow, Backoff, Breaker};
use crate::shutdown::Shutdown;
use crate::state::AppStateRef;

/// Per provider: no call before this (the provider's `Retry-After` / `retry_after` holds back
/// every message to it, including calls of the same round already scheduled).
type Holds = Arc<std::sync::Mutex<HashMap<Channel, tokio::time::Instant>>>;

/// How often the outbox is read when nothing wakes the worker: a safety net only, since every
/// batch that writes an outbox row wakes it (`Shared::outbox_wake`), so an idle box does not
/// poll.
const POLL: Duration = Duration::from_secs(30);

/// One configured provider and how fast it may be called.
#[derive(Clone)]
pub struct Configured {
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// Calls per second at most.
    pub rate_per_sec: u32,
}

/// The configured providers, by the channel they serve.
#[derive(Clone, Default)]
pub struct Providers {
    by_channel: HashMap<Channel, Configured>,
}

impl Providers {
    /// Adds the provider of a channel.
    pub fn add(&mut self, channel: Channel, provider: Arc<dyn Provider>, rate_per_sec: u32) {
        self.by_channel.insert(
            channel,
            Configured {
                provider,
                rate_per_sec: rate_per_sec.max(1),
            },
        );
    }

    fn get(&self, channel: Channel) -> Option<&Configured> {
        self.by_channel.get(&channel)
    }
}

/// Per-provider pacing and breaker.
#[derive(Debug)]
struct Pace {
    /// The next send may start at this time, ms (spacing of 1/rate).
    next_slot_ms: f64,
    /// Consecutive failures pause the provider; then one probe (`crate::retry`).
    breaker: Breaker,
}

impl Pace {
    fn new(m: &crate::config::MessagingConfig) -> Self {
        Self {
            next_slot_ms: 0.0,
            breaker: Breaker::new(
                m.breaker_failures,
                Duration::from_secs(m.breaker_pause_secs),
            ),
        }
    }
}

/// Takes up rows interrupted mid-send by a crash: a status message or alert is sent again
/// (it may arrive twice), a code is not (it may have arrived; the customer asks for a new one).
pub async fn recover(state: &AppStateRef) -> anyhow::Result<usize> {
    let rows = outbox::open_after(&state.store.read()?, 0, usize::MAX)?;
    let stuck: Vec<OutboxRow> = rows
        .into_iter()
        .filter(|r| r.state == State::Sending)
        .collect();
    let n = stuck.len();
    if n == 0 {
        return Ok(0);
    }
    state
        .writer
        .run(move |tx| {
            let now = tx.now_ms();
            for mut row in stuck {
                row.updated_at = now;
                if matches!(row.message, Message::Code { .. }) {
                    row.state = State::Dead;
                    row.last_error = Some(
                        "interrupted while sending (the box stopped mid-call): a code is never sent twice, the customer asks for a new one".into(),
                    );
                    outbox::count_outcome(tx, row.channel, "dead")?;
                } else {
                    row.state = State::Failed;
                    row.next_at = now;
                    row.last_error = Some(
                        "interrupted while sending (the box stopped mid-call): sent again, so it may arrive twice".into(),
                    );
                }
                outbox::put(tx, &row)?;
            }
            Ok(())
        })
        .await?;
    tracing::warn!(
        messages = n,
        "messages interrupted mid-send taken up again (codes are not resent)"
    );
    Ok(n)
}

/// A provider call's result: the row, what the provider said, whether it was called at all,
/// and whether it was the breaker's probe.
type Called = (OutboxRow, Outcome, bool, bool);

/// The sender's state between rounds.
struct Sender {
    state: AppStateRef,
    messaging: Arc<super::Messaging>,
    providers: Providers,
    texts: Arc<Texts>,
    holds: Holds,
    /// Open rows, by id.
    open: BTreeMap<u64, OutboxRow>,
    /// When each row is due, on the monotonic clock (stored `next_at` is for people).
    due: HashMap<u64, tokio::time::Instant>,
    pace: HashMap<Channel, Pace>,
    /// Provider calls under way.
    calls: JoinSet<Called>,
}

/// Runs the sender until shutdown.
pub async fn run(
    state: AppStateRef,
    messaging: Arc<super::Messaging>,
    providers: Providers,
    texts: Arc<Texts>,
    mut shutdown: Shutdown,
) {
    if let Err(e) = recover(&state).await {
        tracing::error!(error = %e, "outbox recovery failed");
    }
    let mut s = Sender {
        state,
        messaging,
        providers,
        texts,
        holds: Arc::default(),
        open: BTreeMap::new(),
        due: HashMap::new(),
        pace: HashMap::new(),
        calls: JoinSet::new(),
    };
    let mut last_id = 0u64;
    // New rows have growing ids, so a poll reads only past the last one; a row put back by
    // staff (retry) or cancelled by a newer code has an old id, and its wake-up asks for a
    // full rescan of the open index.
    let mut rescan = true;
    loop {
        if let Ok(rtx) = s.state.store.read() {
            let from = if rescan { 0 } else { last_id };
            if let Ok(rows) = outbox::open_after(&rtx, from, 100_000) {
                s.load(rows, rescan, &mut last_id);
            }
            rescan = false;
        }
        rescan |= s.dispatch().await;
        report(&s.state, &s.open);
        let mono = tokio::time::Instant::now();
        let next_due = s
            .open
            .values()
            .filter(|r| r.state != State::Sending)
            .filter_map(|r| s.due.get(&r.id))
            .min()
            .map_or(POLL, |at| at.saturating_duration_since(mono));
        tokio::select! {
            () = shutdown.wait() => break,
            () = s.messaging.wake.notified() => rescan = true,
            () = s.state.shared.outbox_wake.notified() => {}
            Some(joined) = s.calls.join_next(), if !s.calls.is_empty() => {
                let mut done: Vec<Called> = joined.into_iter().collect();
                while let Some(more) = s.calls.try_join_next() {
                    done.extend(more);
                }
                s.settle(done).await;
            }
            () = tokio::time::sleep(next_due.clamp(Duration::from_millis(5), POLL)) => {}
        }
    }
    // Calls under way get a moment to finish, so their outcome is stored; any still out are
    // taken up at the next start (`recover`).
    let grace = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(grace);
    while !s.calls.is_empty() {
        tokio::select! {
            () = &mut grace => break,
            Some(joined) = s.calls.join_next() => s.settle(joined.into_iter().collect()).await,
        }
    }
}

impl Sender {
    /// Takes in rows read from the open index (all of them when `full`).
    fn load(&mut self, rows: Vec<OutboxRow>, full: bool, last_id: &mut u64) {
        let now = self.state.now_ms();
        if full {
            // A row closed behind the worker's back (a code replaced by a newer one) leaves.
            let ids: std::collections::HashSet<u64> = rows.iter().map(|r| r.id).collect();
            self.open
                .retain(|id, r| ids.contains(id) || r.state == State::Sending);
            self.due.retain(|id, _| self.open.contains_key(id));
        }
        for r in rows {
            *last_id = (*last_id).max(r.id);
            let known = self.open.get(&r.id);
            // A call under way keeps its row; a row loaded again after a retry starts a new
            // schedule.
            if known.is_some_and(|k| k.state == State::Sending) {
                continue;
            }
            if known.is_none_or(|k| k.state != r.state) {
                self.due.remove(&r.id);
            }
            self.due.entry(r.id).or_insert_with(|| {
                tokio::time::Instant::now() + Duration::from_millis(r.next_at.saturating_sub(now))
            });
            self.open.insert(r.id, r);
        }
    }

    /// Claims the due rows each provider can take now and starts their calls. True when a row
    /// changed in the store behind the worker's back, so the open index must be read again.
    async fn dispatch(&mut self) -> bool {
        let cfg = &*self.state.settings;
        let now = self.state.now_ms();
        let mono = tokio::time::Instant::now();
        let concurrency = cfg.messaging.concurrency as usize;
        let mut busy: HashMap<Channel, usize> = HashMap::new();
        for r in self.open.values().filter(|r| r.state == State::Sending) {
            *busy.entry(r.channel).or_default() += 1;
        }
        let mut batch: Vec<OutboxRow> = Vec::new();
        // Telegram rows go to a chat: staff alerts carry it, customers' come from the phone's
        // proven chat (a code waits until the customer has opened the bot and shared the
        // phone). Opened only if a customer's Telegram row needs its chat.
        let mut rtx: Option<redb::ReadTransaction> = None;
        let mut chats: HashMap<u64, i64> = HashMap::new();
        for row in self.open.values() {
            if row.state == State::Sending || self.due.get(&row.id).is_some_and(|d| *d > mono) {
                continue;
            }
            if !available(&self.providers, row.channel) {
                continue;
            }
            let p = self
                .pace
                .entry(row.channel)
                .or_insert_with(|| Pace::new(&cfg.messaging));
            if !p.breaker.ready() || held_until(&self.holds, row.channel).is_some() {
                continue;
            }
            let taken = busy.entry(row.channel).or_default();
            // After the pause an open breaker lets one probe through.
            let limit = if p.breaker.is_open() { 1 } else { concurrency };
            if *taken >= limit {
                continue;
            }
            let expired =
                matches!(&row.message, Message::Code { expires_at, .. } if *expires_at <= now);
            let linked_chat = self.providers.get(row.channel).is_some_and(|c| {
                c.provider.addressing() == orderd_plugins::messaging::Addressing::LinkedChat
            });
            if linked_chat && !expired {
                let chat = if matches!(row.message, Message::Alert { .. }) {
                    row.to.parse().ok()
                } else {
                    if rtx.is_none() {
                        rtx = self.state.store.read().ok();
                    }
                    rtx.as_ref()
                        .and_then(|r| crate::domain::otp::telegram_chat(r, &row.to).ok().flatten())
                };
                let Some(chat) = chat else { continue };
                chats.insert(row.id, chat);
            }
            if !expired {
                *taken += 1;
            }
            batch.push(row.clone());
        }
        if batch.is_empty() {
            return false;
        }
        let Some(claimed) = claim(&self.state, batch).await else {
            return false;
        };
        for id in &claimed.changed {
            self.open.remove(id);
            self.due.remove(id);
        }
        for r in &claimed.closed {
            count(&self.state, r.channel, "dead");
            self.open.remove(&r.id);
            self.due.remove(&r.id);
        }
        // Paced calls: each provider's calls start 1/rate apart.
        let start = tokio::time::Instant::now();
        let now_f = now as f64;
        for row in claimed.sending {
            let probe = self
                .pace
                .entry(row.channel)
                .or_insert_with(|| Pace::new(&cfg.messaging))
                .breaker
                .allow()
                == Allow::Probe;
            self.open.insert(row.id, row.clone());
            let rate = f64::from(
                self.providers
                    .get(row.channel)
                    .map_or(1, |c| c.rate_per_sec),
            );
            let p = self
                .pace
                .entry(row.channel)
                .or_insert_with(|| Pace::new(&cfg.messaging));
            let slot = p.next_slot_ms.max(now_f);
            p.next_slot_ms = slot + 1000.0 / rate;
            let delay = Duration::from_secs_f64(((slot - now_f) / 1000.0).max(0.0));
            let providers = self.providers.clone();
            let texts = Arc::clone(&self.texts);
            let site_name = cfg.site.name.clone();
            let chat = chats.get(&row.id).copied();
            let holds = Arc::clone(&self.holds);
            self.calls.spawn(async move {
                tokio::time::sleep_until(start + delay).await;
                let held = held_until(&holds, row.channel);
                let outcome = if let Some(until) = held {
                    Outcome::Retry {
                        after: Some(until - tokio::time::Instant::now()),
                        reason: "held back: the provider asked to wait".into(),
                    }
                } else {
                    call(&providers, &texts, &site_name, &row, chat).await
                };
                if held.is_none()
                    && let Outcome::Retry { after: Some(d), .. } = &outcome
                {
                    let mut h = holds.lock().unwrap_or_else(PoisonError::into_inner);
                    let until = tokio::time::Instant::now() + *d;
                    let slot = h.entry(row.channel).or_insert(until);
                    *slot = (*slot).max(until);
                }
                (row, outcome, held.is_none(), probe)
            });
        }
        !claimed.changed.is_empty()
    }

    /// Stores the outcomes of finished calls and schedules what comes next.
    async fn settle(&mut self, done: Vec<Called>) {
        let cfg = &*self.state.settings;
        let m = &cfg.messaging;
        let mut rows = Vec::with_capacity(done.len());
        let mut recovered: Vec<Channel> = Vec::new();
        for (mut row, outcome, called, probe) in done {
            let now = self.state.now_ms();
            row.updated_at = now;
            let p = self.pace.entry(row.channel).or_insert_with(|| Pace::new(m));
            match outcome {
                Outcome::Sent { provider_id } => {
                    row.state = State::Sent;
                    row.provider_id = Some(provider_id);
                    row.last_error = None;
                    if p.breaker.success() {
                        recovered.push(row.channel);
                    }
                    count(&self.state, row.channel, "sent");
                }
                Outcome::Reject { reason } => {
                    tracing::warn!(id = row.id, channel = row.channel.as_str(), %reason, "message rejected by the provider: dead letter");
                    row.state = State::Dead;
                    row.last_error = Some(reason);
                    // It answered: the provider is up.
                    p.breaker.success();
                    count(&self.state, row.channel, "dead");
                }
                Outcome::Retry { after, reason } => {
                    if called {
                        count(&self.state, row.channel, "failed");
                        if p.breaker.failure() {
                            tracing::warn!(
                                channel = row.channel.as_str(),
                                failures = p.breaker.failures(),
                                pause_secs = m.breaker_pause_secs,
                                "provider paused (circuit breaker open)"
                            );
                        }
                    } else {
                        p.breaker.release();
                    }
                    if !called || probe {
                        // Never reached the provider, or probed a provider known to be down:
                        // the failure is the provider's, not the message's.
                        row.attempts = row.attempts.saturating_sub(1);
                    }
                    if row.attempts >= m.max_attempts {
                        row.state = State::Dead;
                        row.last_error =
                            Some(format!("gave up after {} attempts: {reason}", row.attempts));
                        count(&self.state, row.channel, "dead");
                    } else {
                        let backoff = Backoff {
                            base_ms: m.base_backoff_ms,
                            cap_ms: m.max_backoff_ms,
                        };
                        let wait = u64::try_from(backoff.wait(row.attempts, after).as_millis())
                            .unwrap_or(u64::MAX);
                        row.state = State::Failed;
                        row.next_at = now + wait;
                        self.due.insert(
                            row.id,
                            tokio::time::Instant::now() + Duration::from_millis(wait),
                        );
                        row.last_error = Some(reason);
                        count(&self.state, row.channel, "retried");
                    }
                }
            }
            rows.push(row);
        }
        if !recovered.is_empty() {
            // The provider is back: what waited for it is due now (pacing still spaces it).
            let mono = tokio::time::Instant::now();
            for r in self.open.values() {
                if r.state == State::Failed && recovered.contains(&r.channel) {
                    self.due.insert(r.id, mono);
                }
            }
            tracing::info!(channel = ?recovered, "provider answering again: waiting messages are due now");
        }
        if store(&self.state, &rows).await {
            for r in rows {
                if r.state.is_open() {
                    self.open.insert(r.id, r);
                } else {
                    self.due.remove(&r.id);
                    self.open.remove(&r.id);
                }
            }
        } else {
            // Not stored: the rows stay `sending` in the store and in memory, and are taken up
            // again at the next start.
            tracing::error!(
                "outbox: outcomes not stored; the messages are taken up at the next start"
            );
        }
    }
}

fn report(state: &AppStateRef, open: &BTreeMap<u64, OutboxRow>) {
    let now = state.now_ms();
    for ch in [Channel::Whatsapp, Channel::Telegram] {
        let rows = open.values().filter(|r| r.channel == ch);
        let (n, oldest) = rows.fold((0i64, u64::MAX), |(n, o), r| (n + 1, o.min(r.created_at)));
        let labels = ChannelLabels {
            channel: ch.as_str().into(),
        };
        state.metrics.message_queue.get_or_create(&labels).set(n);
        let age = if n == 0 {
            0
        } else {
            now.saturating_sub(oldest) / 1000
        };
        state
            .metrics
            .message_oldest_seconds
            .get_or_create(&labels)
            .set(i64::try_from(age).unwrap_or(i64::MAX));
    }
}

fn count(state: &AppStateRef, ch: Channel, outcome: &str) {
    state
        .metrics
        .messages
        .get_or_create(&MessageLabels {
            channel: ch.as_str().into(),
            outcome: outcome.into(),
        })
        .inc();
}

/// What a claim did: rows now `sending`, and rows closed instead (a code that expired).
struct Claimed {
    sending: Vec<OutboxRow>,
    closed: Vec<OutboxRow>,
    /// Rows that changed behind the worker's back: dropped, and read again.
    changed: Vec<u64>,
}

/// Marks rows `sending` in one commit, each re-read first: a row that is no longer open as the
/// worker knew it (cancelled by a newer code, or put back by staff) is skipped, and a code
/// past its lifetime goes to the dead letter instead of out. `None` if the store refused.
async fn claim(state: &AppStateRef, rows: Vec<OutboxRow>) -> Option<Claimed> {
    let res = state
        .writer
        .run(move |tx| {
            let now = tx.now_ms();
            let mut out = Claimed {
                sending: Vec::new(),
                closed: Vec::new(),
                changed: Vec::new(),
            };
            for row in rows {
                let Some(mut cur) = outbox::get_tx(tx, row.id)? else {
                    out.changed.push(row.id);
                    continue;
                };
                if cur.state != row.state || !matches!(cur.state, State::Queued | State::Failed) {
                    out.changed.push(row.id);
                    continue;
                }
                cur.updated_at = now;
                if let Message::Code { expires_at, .. } = &cur.message {
                    let why = if *expires_at <= now {
                        Some("the code expired before it could be sent")
                    } else if !crate::domain::otp::is_current(tx, &cur.to, *expires_at)? {
                        Some("superseded by a newer code (or already used) before it was sent")
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        cur.state = State::Dead;
                        cur.last_error = Some(why.into());
                        outbox::put(tx, &cur)?;
                        outbox::count_outcome(tx, cur.channel, "dead")?;
                        out.closed.push(cur);
                        continue;
                    }
                }
                cur.state = State::Sending;
                cur.attempts += 1;
                outbox::put(tx, &cur)?;
                out.sending.push(cur);
            }
            Ok(out)
        })
        .await;
    match res {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e.message, "outbox: claiming messages failed; will retry");
            None
        }
    }
}

/// When a provider's hold (its last `Retry-After`) runs out, if it still holds.
fn held_until(holds: &Holds, ch: Channel) -> Option<tokio::time::Instant> {
    let h = holds.lock().unwrap_or_else(PoisonError::into_inner);
    h.get(&ch)
        .copied()
        .filter(|&t| t > tokio::time::Instant::now())
}

fn available(p: &Providers, ch: Channel) -> bool {
    p.get(ch).is_some()
}

/// The plain text of a row, for channels that send text (Telegram).
fn text_of(texts: &Texts, restaurant: &str, row: &OutboxRow) -> String {
    let lang = row.lang.as_str();
    match &row.message {
        Message::Code { code, .. } => {
            texts.render(lang, "code", &[("code", code), ("restaurant", restaurant)])
        }
        Message::Status { short, status, .. } => {
            let status = texts.render(lang, &format!("status_{}", status.as_str()), &[]);
            texts.render(
                lang,
                "status_message",
                &[
                    ("restaurant", restaurant),
                    ("short", short),
                    ("number", short),
                    ("status", &status),
                ],
            )
        }
        Message::Receipt {
            number,
            total,
            paid,
        } => texts.render(
            lang,
            "receipt_message",
            &[
                ("restaurant", restaurant),
                ("number", &number.to_string()),
                ("total", total),
                ("paid", paid),
            ],
        ),
        Message::Alert { key, vars } => {
            let mut all: Vec<(&str, &str)> = vec![("restaurant", restaurant)];
            all.extend(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            texts.render(lang, key, &all)
        }
    }
}

async fn call(
    p: &Providers,
    texts: &Texts,
    restaurant: &str,
    row: &OutboxRow,
    chat: Option<i64>,
) -> Outcome {
    let Some(configured) = p.get(row.channel) else {
        return Outcome::Retry {
            after: None,
            reason: "channel not configured".into(),
        };
    };
    // The address: a row of a provider addressed by linked chat (Telegram) goes to the chat its
    // phone was proven in (looked up by `dispatch`); every other row to its own `to`.
    let to = chat.map_or_else(|| row.to.clone(), |c| c.to_string());
    let text = text_of(texts, restaurant, row);
    let status_text;
    let receipt_number;
    let kind = match &row.message {
        Message::Code { code, .. } => Kind::Code(code),
        Message::Status { short, status, .. } => {
            status_text = texts.render(&row.lang, &format!("status_{}", status.as_str()), &[]);
            Kind::Status([restaurant, short, &status_text])
        }
        // A template channel sends the receipt through the status template: "your order N is
        // paid: 25.00 EUR".
        Message::Receipt { number, total, .. } => {
            receipt_number = number.to_string();
            status_text = texts.render(&row.lang, "status_paid", &[("total", total)]);
            Kind::Status([restaurant, &receipt_number, &status_text])
        }
        Message::Alert { .. } => Kind::Alert,
    };
    configured
        .provider
        .send(Outgoing {
            to: &to,
            lang: &row.lang,
            text: &text,
            kind,
        })
        .await
}

/// Stores rows in one commit, counting the final outcomes in the store; false (and logged)
/// if the store refused.
async fn store(state: &AppStateRef, rows: &[OutboxRow]) -> bool {
    let rows = rows.to_vec();
    match state
        .writer
        .run(move |tx| {
            for r in &rows {
                outbox::put(tx, r)?;
                match r.state {
                    State::Sent => outbox::count_outcome(tx, r.channel, "sent")?,
                    State::Dead => outbox::count_outcome(tx, r.channel, "dead")?,
                    _ => {}
                }
            }
            Ok(())
        })
        .await
    {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e.message, "outbox: storing message states failed; will retry");
            false
        }
    }
}
