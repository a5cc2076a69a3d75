//! The event log as consumers see it: subscribe from a sequence number (replayed from the
//! durable log, then followed live), and durable per-consumer cursors.
//!
//! The in-process broadcast is only a wake-up and a fast path: a consumer that lags, or misses
//! a message, reads the gap back from the log. So a consumer that restarts from its durable
//! cursor sees every event exactly once in order (if it stores its cursor with its own effect).

use std::collections::VecDeque;
use std::sync::Arc;

use orderd_protocol::Event;
use redb::{ReadableDatabase as _, ReadableTable};
use tokio::sync::broadcast;

use crate::domain::orders::StoredOrder;
use crate::error::AppError;
use crate::error::Commit as _;
use crate::store::event_row::EventRow;
use crate::store::writer::{Shared, Writer};
use crate::store::{Store, StoreError, codec, tables};

/// Reads the log and hands out subscriptions.
#[derive(Clone)]
pub struct EventLog {
    store: Store,
    shared: Arc<Shared>,
    writer: Writer,
}

impl EventLog {
    /// A log over the store, fed by the writer.
    pub fn new(store: Store, shared: Arc<Shared>, writer: Writer) -> Self {
        Self {
            store,
            shared,
            writer,
        }
    }

    /// Up to `max` durable events with seq ≥ `from`, in order.
    pub fn read(&self, from: u64, max: usize) -> Result<Vec<Event>, StoreError> {
        let last = self.last_seq();
        if from > last {
            return Ok(Vec::new());
        }
        let n = usize::try_from(last - from + 1)
            .unwrap_or(usize::MAX)
            .min(max);
        read_log(&self.store, from, n)
    }

    /// The last committed seq.
    pub fn last_seq(&self) -> u64 {
        self.shared
            .last_seq
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Events from `from` on: first replayed from the log, then live. A subscription does not
    /// keep the writer alive, so holding one never delays shutdown.
    pub fn subscribe(&self, from: u64) -> Subscription {
        Subscription {
            // Subscribe before reading the log, so nothing committed in between is missed.
            rx: self.shared.events.subscribe(),
            store: self.store.clone(),
            shared: Arc::clone(&self.shared),
            next: from.max(1),
            buf: VecDeque::new(),
        }
    }

    /// Registers a consumer (its cursor starts at 0, so retention waits for it). Idempotent.
    pub async fn register(&self, consumer: &str) -> Result<u64, AppError> {
        let name = consumer.to_owned();
        self.writer
            .run(move |tx| {
                let cur = tx.cursors.get(name.as_str())?.map(|v| v.value());
                if let Some(c) = cur {
                    return Ok(c);
                }
                tx.cursors.insert(name.as_str(), 0)?;
                Ok(0)
            })
            .await
    }

    /// Stores a consumer's cursor: it has durably handled every event up to `seq`. A background
    /// write: it rides along with the next requests or goes in a quiet moment.
    pub async fn set_cursor(&self, consumer: &str, seq: u64) -> Result<(), AppError> {
        let name = consumer.to_owned();
        self.writer
            .run_background(move |tx| {
                tx.cursors.insert(name.as_str(), seq)?;
                Ok(())
            })
            .await
    }

    /// Removes a consumer, so retention no longer waits for it.
    pub async fn unregister(&self, consumer: &str) -> Result<(), AppError> {
        let name = consumer.to_owned();
        self.writer
            .run(move |tx| {
                tx.cursors.remove(name.as_str())?;
                Ok(())
            })
            .await
    }

    /// A consumer's cursor.
    pub fn cursor(&self, consumer: &str) -> Result<Option<u64>, StoreError> {
        let rtx = self.store.db().begin_read()?;
        let t = rtx.open_table(tables::CURSORS)?;
        Ok(t.get(consumer)?.map(|v| v.value()))
    }
}

/// The counter that marks the legacy reference rows of `OrderPlaced` frozen.
const FROZEN_KEY: &str = "events_whole";

/// Rewrites every legacy `OrderPlaced` row that refers to its order into the event whole, as
/// it reads now, so no later edit of the order can change it again (see
/// `crate::store::event_row`). Runs once, at start-up before the writer exists, in one durable
/// transaction; returns how many rows it rewrote.
pub fn freeze_legacy_rows(store: &Store) -> Result<u64, StoreError> {
    let mut wtx = store.db().begin_write()?;
    wtx.set_durability(redb::Durability::Immediate)?;
    let mut n = 0u64;
    {
        let mut counters = wtx.open_table(tables::COUNTERS)?;
        if counters.get(FROZEN_KEY)?.is_some() {
            drop(counters);
            wtx.abort()?;
            return Ok(0);
        }
        counters.insert(FROZEN_KEY, 1)?;
        let mut events = wtx.open_table(tables::EVENTS)?;
        let orders = wtx.open_table(tables::ORDERS)?;
        let mut legacy = Vec::new();
        for row in events.iter()? {
            let (k, v) = row?;
            let stored: EventRow = codec::decode(v.value())?;
            if stored.legacy_order().is_some() {
                legacy.push((k.value(), stored));
            }
        }
        for (seq, stored) in legacy {
            let event = stored.into_event(|key| {
                Ok(match orders.get(key)? {
                    Some(v) => Some(codec::decode::<StoredOrder>(v.value())?.order),
                    None => None,
                })
            });
            // A row whose order was pruned is past every consumer and stays as it is.
            let Ok(event) = event else { continue };
            events.insert(seq, crate::store::event_row::encode(&event)?.as_slice())?;
            n += 1;
        }
    }
    wtx.commit()?;
    if n > 0 {
        tracing::info!(
            events = n,
            "order_placed events stored whole (a one-time upgrade)"
        );
    }
    Ok(n)
}

/// Up to `max` events with seq ≥ `from`, in order.
fn read_log(store: &Store, from: u64, max: usize) -> Result<Vec<Event>, StoreError> {
    let rtx = store.db().begin_read()?;
    let t = rtx.open_table(tables::EVENTS)?;
    let orders = rtx.open_table(tables::ORDERS)?;
    let mut out = Vec::new();
    for row in t.range(from..)? {
        let (_, v) = row?;
        let stored: EventRow = codec::decode(v.value())?;
        out.push(stored.into_event(|key| {
            Ok(match orders.get(key)? {
                Some(v) => Some(codec::decode::<StoredOrder>(v.value())?.order),
                None => None,
            })
        })?);
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// A stream of events in seq order, without gaps.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    store: Store,
    shared: Arc<Shared>,
    next: u64,
    buf: VecDeque<Event>,
}

impl Subscription {
    /// The next event; waits for one to be committed. Errors only when the store fails or the
    /// daemon shuts down.
    pub async fn next(&mut self) -> Result<Event, StoreError> {
        loop {
            if let Some(e) = self.try_next()? {
                return Ok(e);
            }
            match self.rx.recv().await {
                Ok(e) if e.seq == self.next => {
                    self.next += 1;
                    return Ok((*e).clone());
                }
                // Older than wanted: skip. Newer: a gap, read it from the log.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(StoreError::RolledBack("the daemon is shutting down".into()));
                }
            }
        }
    }

    /// The next event if one is committed already; `None` without waiting otherwise.
    pub fn try_next(&mut self) -> Result<Option<Event>, StoreError> {
        if let Some(e) = self.buf.pop_front() {
            self.next = e.seq + 1;
            return Ok(Some(e));
        }
        let last = self
            .shared
            .last_seq
            .load(std::sync::atomic::Ordering::Acquire);
        if self.next > last {
            return Ok(None);
        }
        // Usually the wake-ups already hold these events: take them from there rather than
        // read them back from redb (decode, and rebuild a placed order).
        loop {
            match self.rx.try_recv() {
                Ok(e) if e.seq == self.next => {
                    self.next += 1;
                    return Ok(Some((*e).clone()));
                }
                Ok(e) if e.seq < self.next => {}
                // Newer (a gap), lagged, empty or closed: the log has them.
                _ => break,
            }
        }
        // Only durable events: a batch is visible in redb a moment before its log append
        // returns, and `last_seq` moves only after that.
        let n = usize::try_from(last - self.next + 1)
            .unwrap_or(usize::MAX)
            .min(256);
        self.buf.extend(read_log(&self.store, self.next, n)?);
        Ok(self.buf.pop_front().inspect(|e| self.next = e.seq + 1))
    }

    /// The seq the next event will have.
    pub fn position(&self) -> u64 {
        self.next
    }
}
