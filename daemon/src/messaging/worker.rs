//! The outbox sender: sends due rows through their provider, at most `concurrency` at once
//! and `rate_per_sec` per provider, and stores each outcome once: sent; failed and retried
//! after a capped, jittered exponential backoff (or the provider's `Retry-After`, whichever is
//! later); dead with the provider's reason. Consecutive failures open a provider's circuit
//! breaker: nothing is sent for `breaker_pause_secs`, then one probe decides.
//!
//! Every batch is marked `sending` in one commit before any provider call, so a crash
//! mid-call leaves rows that [`recover`] moves to the dead letter as `interrupted` at the next
//! start: at most one provider message per row (see `crate::domain::outbox`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use orderd_plugins::messaging::Outcome;
use orderd_plugins::telegram::Telegram;
use orderd_plugins::whatsapp::WhatsApp;
use rand::Rng as _;
use tokio::task::JoinSet;

use super::Texts;
use crate::api::AppStateRef;
use crate::domain::outbox::{self, Channel, Message, OutboxRow, State};
use crate::metrics::{ChannelLabels, MessageLabels};
use crate::server::Shutdown;

/// Per provider: no call before this (the provider's `Retry-After` / `retry_after` holds back
/// every message to it, including calls of the same round already scheduled).
type Holds = Arc<std::sync::Mutex<HashMap<Channel, tokio::time::Instant>>>;

/// How often the outbox is read when nothing wakes the worker: a safety net only, since every
/// batch that writes an outbox row wakes it (`Shared::outbox_wake`), so an idle box does not
/// poll.
const POLL: Duration = Duration::from_secs(30);

/// The configured providers.
#[derive(Clone, Default)]
pub struct Providers {
    /// WhatsApp, when enabled.
    pub whatsapp: Option<WhatsApp>,
    /// Telegram, when enabled.
    pub telegram: Option<Telegram>,
}

/// Per-provider pacing and breaker.
#[derive(Debug, Default)]
struct Pace {
    /// The next send may start at this time, ms (spacing of 1/rate).
    next_slot_ms: f64,
    /// Consecutive failed calls.
    failures: u32,
    /// Breaker open until; then one probe.
    open_until: Option<tokio::time::Instant>,
    /// A probe is out.
    probing: bool,
}

/// Moves rows interrupted mid-send by a crash to the dead letter (the at-most-once rule).
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
                row.state = State::Dead;
                row.updated_at = now;
                row.last_error = Some(
                    "interrupted while sending (the box stopped mid-call): it may or may not have been delivered, so it is not resent by itself".into(),
                );
                outbox::put(tx, &row)?;
            }
            Ok(())
        })
        .await?;
    tracing::warn!(
        messages = n,
        "messages interrupted mid-send moved to the dead letter"
    );
    Ok(n)
}

/// Runs the sender until shutdown.
pub async fn run(
    state: AppStateRef,
    providers: Providers,
    texts: Arc<Texts>,
    mut shutdown: Shutdown,
) {
    if let Err(e) = recover(&state).await {
        tracing::error!(error = %e, "outbox recovery failed");
    }
    let mut open: BTreeMap<u64, OutboxRow> = BTreeMap::new();
    let mut last_id = 0u64;
    let mut pace: HashMap<Channel, Pace> = HashMap::new();
    // When each row is due, on the monotonic clock (stored `next_at` is for people).
    let mut due: HashMap<u64, tokio::time::Instant> = HashMap::new();
    let holds: Holds = Arc::default();
    // New rows have growing ids, so a poll reads only past the last one; a row put back by
    // staff (retry) has an old id, and its wake-up asks for a full rescan of the open index.
    let mut rescan = true;
    loop {
        if let Ok(rtx) = state.store.read() {
            let from = if rescan { 0 } else { last_id };
            rescan = false;
            if let Ok(rows) = outbox::open_after(&rtx, from, 100_000) {
                let now = state.now_ms();
                for r in rows {
                    last_id = last_id.max(r.id);
                    // A row loaded again after a retry starts a new schedule.
                    if open.get(&r.id).is_none_or(|known| known.state != r.state) {
                        due.remove(&r.id);
                    }
                    due.entry(r.id).or_insert_with(|| {
                        tokio::time::Instant::now()
                            + Duration::from_millis(r.next_at.saturating_sub(now))
                    });
                    if open
                        .get(&r.id)
                        .is_none_or(|known| known.state != State::Sending)
                    {
                        open.insert(r.id, r);
                    }
                }
            }
        }
        let sent_any = send_due(
            &state, &providers, &texts, &holds, &mut open, &mut pace, &mut due,
        )
        .await;
        report(&state, &open);
        if sent_any {
            continue;
        }
        let mono = tokio::time::Instant::now();
        let next_due = open
            .values()
            .filter(|r| r.state != State::Sending)
            .filter_map(|r| due.get(&r.id))
            .min()
            .map_or(POLL, |at| at.saturating_duration_since(mono));
        tokio::select! {
            () = shutdown.wait() => break,
            () = state.messaging.wake.notified() => rescan = true,
            () = state.shared.outbox_wake.notified() => {}
            () = tokio::time::sleep(next_due.clamp(Duration::from_millis(5), POLL)) => {}
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

/// Sends one round of due rows; whether any provider call was made.
async fn send_due(
    state: &AppStateRef,
    providers: &Providers,
    texts: &Arc<Texts>,
    holds: &Holds,
    open: &mut BTreeMap<u64, OutboxRow>,
    pace: &mut HashMap<Channel, Pace>,
    due: &mut HashMap<u64, tokio::time::Instant>,
) -> bool {
    let cfg = &state.settings.raw;
    let now = state.now_ms();
    let mono = tokio::time::Instant::now();
    let concurrency = cfg.messaging.concurrency as usize;
    let mut batch: Vec<OutboxRow> = Vec::new();
    let mut expired: Vec<OutboxRow> = Vec::new();
    let mut per_channel: HashMap<Channel, usize> = HashMap::new();
    // Telegram rows go to a chat: staff alerts carry it, customers' come from the phone's
    // proven chat (a code waits until the customer has opened the bot and shared the phone).
    // Opened only if a customer's Telegram row needs its chat.
    let mut rtx: Option<redb::ReadTransaction> = None;
    let mut chats: HashMap<u64, i64> = HashMap::new();
    for row in open.values() {
        if row.state == State::Sending || due.get(&row.id).is_some_and(|d| *d > mono) {
            continue;
        }
        if let Message::Code { expires_at, .. } = &row.message
            && *expires_at <= now
        {
            expired.push(row.clone());
            continue;
        }
        if !available(providers, row.channel) {
            continue;
        }
        if row.channel == Channel::Telegram {
            let chat = if matches!(row.message, Message::Alert { .. }) {
                row.to.parse().ok()
            } else {
                if rtx.is_none() {
                    rtx = state.store.read().ok();
                }
                rtx.as_ref()
                    .and_then(|r| crate::domain::otp::telegram_chat(r, &row.to).ok().flatten())
            };
            let Some(chat) = chat else { continue };
            chats.insert(row.id, chat);
        }
        let p = pace.entry(row.channel).or_default();
        if p.open_until.is_some_and(|t| t > mono)
            || p.probing
            || held_until(holds, row.channel).is_some()
        {
            continue;
        }
        let taken = per_channel.entry(row.channel).or_default();
        // After the pause an open breaker lets one probe through.
        let limit = if p.failures >= cfg.messaging.breaker_failures {
            1
        } else {
            concurrency
        };
        if *taken >= limit {
            continue;
        }
        *taken += 1;
        batch.push(row.clone());
    }
    if !expired.is_empty() {
        for r in &mut expired {
            r.state = State::Dead;
            r.updated_at = now;
            r.last_error = Some("the code expired before it could be sent".into());
            count(state, r.channel, "dead");
        }
        if store(state, &expired).await {
            for r in expired {
                open.remove(&r.id);
                due.remove(&r.id);
            }
        }
    }
    if batch.is_empty() {
        return false;
    }
    for r in &mut batch {
        r.state = State::Sending;
        r.attempts += 1;
        r.updated_at = now;
    }
    if !store(state, &batch).await {
        return false;
    }
    for r in &batch {
        open.insert(r.id, r.clone());
        let p = pace.entry(r.channel).or_default();
        if p.failures >= cfg.messaging.breaker_failures {
            p.probing = true;
        }
    }
    // Paced calls: each provider's calls start 1/rate apart.
    let mut calls = JoinSet::new();
    let start = tokio::time::Instant::now();
    let now_f = now as f64;
    for row in batch {
        let rate = f64::from(match row.channel {
            Channel::Whatsapp => cfg.whatsapp.rate_per_sec,
            Channel::Telegram => cfg.telegram.rate_per_sec,
        });
        let p = pace.entry(row.channel).or_default();
        let slot = p.next_slot_ms.max(now_f);
        p.next_slot_ms = slot + 1000.0 / rate;
        let delay = Duration::from_secs_f64(((slot - now_f) / 1000.0).max(0.0));
        let providers = providers.clone();
        let texts = Arc::clone(texts);
        let site_name = cfg.site.name.clone();
        let chat = chats.get(&row.id).copied();
        let holds = Arc::clone(holds);
        calls.spawn(async move {
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
            (row, outcome, held.is_none())
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = calls.join_next().await {
        let Ok((mut row, outcome, called)) = joined else {
            continue;
        };
        let now = state.now_ms();
        row.updated_at = now;
        let p = pace.entry(row.channel).or_default();
        p.probing = false;
        match outcome {
            Outcome::Sent { provider_id } => {
                row.state = State::Sent;
                row.provider_id = Some(provider_id);
                row.last_error = None;
                p.failures = 0;
                p.open_until = None;
                count(state, row.channel, "sent");
            }
            Outcome::Reject { reason } => {
                tracing::warn!(id = row.id, channel = row.channel.as_str(), %reason, "message rejected by the provider: dead letter");
                row.state = State::Dead;
                row.last_error = Some(reason);
                p.failures = 0;
                count(state, row.channel, "dead");
            }
            Outcome::Retry { after, reason } => {
                if called {
                    count(state, row.channel, "failed");
                    p.failures += 1;
                } else {
                    // Never reached the provider: give the attempt back.
                    row.attempts = row.attempts.saturating_sub(1);
                }
                let m = &cfg.messaging;
                if called && p.failures >= m.breaker_failures {
                    p.open_until = Some(
                        tokio::time::Instant::now() + Duration::from_secs(m.breaker_pause_secs),
                    );
                    tracing::warn!(
                        channel = row.channel.as_str(),
                        failures = p.failures,
                        pause_secs = m.breaker_pause_secs,
                        "provider paused (circuit breaker open)"
                    );
                }
                if row.attempts >= m.max_attempts {
                    row.state = State::Dead;
                    row.last_error =
                        Some(format!("gave up after {} attempts: {reason}", row.attempts));
                    count(state, row.channel, "dead");
                } else {
                    let backoff = backoff_ms(m.base_backoff_ms, m.max_backoff_ms, row.attempts);
                    let hinted =
                        after.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                    let wait = backoff.max(hinted);
                    row.state = State::Failed;
                    row.next_at = now + wait;
                    due.insert(
                        row.id,
                        tokio::time::Instant::now() + Duration::from_millis(wait),
                    );
                    row.last_error = Some(reason);
                    count(state, row.channel, "retried");
                }
            }
        }
        done.push(row);
    }
    if store(state, &done).await {
        for r in done {
            if r.state.is_open() {
                open.insert(r.id, r);
            } else {
                due.remove(&r.id);
                open.remove(&r.id);
            }
        }
    }
    true
}

/// When a provider's hold (its last `Retry-After`) runs out, if it still holds.
fn held_until(holds: &Holds, ch: Channel) -> Option<tokio::time::Instant> {
    let h = holds.lock().unwrap_or_else(PoisonError::into_inner);
    h.get(&ch)
        .copied()
        .filter(|&t| t > tokio::time::Instant::now())
}

/// Capped exponential backoff with full jitter in its upper half.
fn backoff_ms(base: u64, cap: u64, attempts: u32) -> u64 {
    let exp = base
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(30))
        .min(cap);
    let low = exp / 2;
    rand::thread_rng().gen_range(low..=exp.max(low))
}

fn available(p: &Providers, ch: Channel) -> bool {
    match ch {
        Channel::Whatsapp => p.whatsapp.is_some(),
        Channel::Telegram => p.telegram.is_some(),
    }
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
    match (row.channel, &p.whatsapp, &p.telegram, chat) {
        (Channel::Whatsapp, Some(wa), _, _) => match &row.message {
            Message::Code { code, .. } => wa.send_code(&row.to, &row.lang, code).await,
            Message::Status { short, status, .. } => {
                let text = texts.render(&row.lang, &format!("status_{}", status.as_str()), &[]);
                wa.send_status(&row.to, &row.lang, &[restaurant, short, &text])
                    .await
            }
            Message::Alert { .. } => Outcome::Reject {
                reason: "staff alerts go to Telegram only".into(),
            },
        },
        (Channel::Telegram, _, Some(tg), Some(chat)) => {
            tg.send_text(chat, &text_of(texts, restaurant, row)).await
        }
        _ => Outcome::Retry {
            after: None,
            reason: "channel not configured".into(),
        },
    }
}

/// Stores rows in one commit; false (and logged) if the store refused.
async fn store(state: &AppStateRef, rows: &[OutboxRow]) -> bool {
    let rows = rows.to_vec();
    match state
        .writer
        .run(move |tx| {
            for r in &rows {
                outbox::put(tx, r)?;
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

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for attempts in 1..40 {
            let b = backoff_ms(1000, 60_000, attempts);
            let exp = (1000u64 << (attempts - 1).min(30)).min(60_000);
            assert!(b >= exp / 2 && b <= exp, "attempt {attempts}: {b}");
        }
        let samples: std::collections::HashSet<u64> =
            (0..50).map(|_| backoff_ms(1000, 60_000, 5)).collect();
        assert!(samples.len() > 1, "jittered");
    }
}
