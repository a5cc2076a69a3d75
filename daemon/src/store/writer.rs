//! The single writer: one thread owns the only redb write transaction and commits requests in
//! groups (group commit).
//!
//! Requests arrive as jobs on a channel. The writer takes every job waiting (up to
//! `max_batch`), runs them one after another inside one write transaction, commits it to redb
//! without a sync, appends the batch's writes to the write-ahead log with one `fdatasync`, and
//! only then answers each job, publishes the batch's events and runs post-commit hooks. While
//! it syncs, new requests queue up and form the next batch, so throughput grows with concurrency
//! while a lone request pays one sync.
//!
//! A checkpoint (a durable redb commit, after which the log starts over) takes the place of the
//! log append in the batch that finds it due: still one sync. Work off the requests' path never
//! costs a request a second sync: background jobs (the kitchen hub's periodic save, consumers'
//! cursors) ride along with the next batch of requests, or take a batch of their own in a quiet
//! moment ([`QUIET`] without a request).
//!
//! Isolation inside a batch: a job validates everything it needs *before* it writes anything
//! (the "check, then write" rule every domain operation follows), so a job that fails its
//! checks leaves no trace and the others in its batch commit normally. A job that fails *in the
//! store* may have written half its rows, so the whole batch is rolled back and every job in it
//! answered 503; no client was told anything was saved, so nothing is lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use orderd_protocol::{Event, EventKind, FORMAT_VERSION};
use redb::{Durability, WriteTransaction};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::logged::{Logged, OpLog, open_logged};
use super::wal::Wal;
use super::{Store, StoreError};
use crate::clock::Clock;
use crate::metrics::Metrics;

/// What a job can fail with: the client's fault `E` (the layer above defines it; answered as
/// is) or the store's (rolls back the batch).
#[derive(Debug)]
pub enum TxError<E> {
    /// A failure found while checking; nothing was written.
    App(E),
    /// The store failed; the batch is rolled back.
    Store(StoreError),
}

impl<E> From<StoreError> for TxError<E> {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

macro_rules! tx_from_redb {
    ($($t:ty),*) => {$(
        impl<E> From<$t> for TxError<E> {
            fn from(e: $t) -> Self {
                Self::Store(e.into())
            }
        }
    )*};
}
tx_from_redb!(redb::StorageError, redb::TableError);

/// Result of work inside a write transaction that fails with `E` or in the store.
pub type TxResult<T, E> = Result<T, TxError<E>>;

/// A value the layer above keeps in memory beside its stored form (the menu): read by every
/// job through [`Tx::cached`], replaced by [`Tx::replace_cached`] and published on commit. The
/// store only holds it; what it is belongs to the layer that set it.
pub type Cached = Arc<dyn std::any::Any + Send + Sync>;

/// Called for every event a job emits, inside the same transaction (staff alerts): what it
/// writes commits or rolls back with the event. Registered at start-up by the layer above.
pub type EmitHook = Arc<dyn Fn(&mut Tx<'_>, &EventKind) -> Result<(), StoreError> + Send + Sync>;

/// State shared between the writer and readers: what was last committed.
pub struct Shared {
    /// The committed cached value (the writer's working copy is swapped in on commit).
    pub cached: RwLock<Cached>,
    /// Committed events, published after each commit (a wake-up; the log is the truth).
    pub events: broadcast::Sender<Arc<Event>>,
    /// The last committed event seq.
    pub last_seq: AtomicU64,
    /// Milliseconds since the epoch of the last finished batch (liveness for `/readyz`).
    pub last_batch_at: AtomicU64,
    /// Called for every emitted event in its transaction, if set.
    pub on_emit: Option<EmitHook>,
    /// Notified after a batch that wrote an outbox row, so the messaging worker needs no poll.
    pub outbox_wake: Arc<tokio::sync::Notify>,
}

impl Shared {
    /// The committed cached value.
    pub fn cached(&self) -> Cached {
        self.cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Every table, opened once per batch, plus the batch's pending events and hooks.
pub struct Tx<'t> {
    /// See [`super::tables::ORDERS`].
    pub orders: Logged<'t, u128, &'static [u8]>,
    /// See [`super::tables::IDX_ACTIVE`].
    pub idx_active: Logged<'t, (u8, u128), ()>,
    /// See [`super::tables::IDX_DAY`].
    pub idx_day: Logged<'t, (u32, u32), u128>,
    /// See [`super::tables::IDX_PHONE`].
    pub idx_phone: Logged<'t, (&'static str, u128), ()>,
    /// See [`super::tables::IDX_FINISHED`].
    pub idx_finished: Logged<'t, (u64, u128), ()>,
    /// See [`super::tables::MENU`].
    pub menu_table: Logged<'t, &'static str, &'static [u8]>,
    /// See [`super::tables::STOCK`].
    pub stock: Logged<'t, &'static str, u32>,
    /// See [`super::tables::TABLES`].
    pub tables: Logged<'t, &'static str, &'static [u8]>,
    /// See [`super::tables::USERS`].
    pub users: Logged<'t, &'static str, &'static [u8]>,
    /// See [`super::tables::SESSIONS`].
    pub sessions: Logged<'t, [u8; 32], &'static [u8]>,
    /// See [`super::tables::IDEMPOTENCY`].
    pub idempotency: Logged<'t, &'static str, &'static [u8]>,
    /// See [`super::tables::COUNTERS`].
    pub counters: Logged<'t, &'static str, u64>,
    /// See [`super::tables::EVENTS`].
    pub events: Logged<'t, u64, &'static [u8]>,
    /// See [`super::tables::CURSORS`].
    pub cursors: Logged<'t, &'static str, u64>,
    /// See [`super::tables::DAILY_SUMMARIES`].
    pub daily_summaries: Logged<'t, u32, &'static [u8]>,
    /// See [`super::tables::DEVICES`].
    pub devices: Logged<'t, &'static str, &'static [u8]>,
    /// See [`super::tables::PRINT_JOBS`].
    pub print_jobs: Logged<'t, &'static str, &'static [u8]>,
    /// See [`super::tables::PRINT_OPEN`].
    pub print_open: Logged<'t, &'static str, ()>,
    /// See [`super::tables::OTP`].
    pub otp: Logged<'t, &'static str, &'static [u8]>,
    /// See [`super::tables::CUSTOMER_TOKENS`].
    pub customer_tokens: Logged<'t, [u8; 32], &'static [u8]>,
    /// See [`super::tables::OUTBOX`].
    pub outbox: Logged<'t, u64, &'static [u8]>,
    /// See [`super::tables::OUTBOX_OPEN`].
    pub outbox_open: Logged<'t, u64, ()>,
    /// See [`super::tables::ORDER_CONTACTS`].
    pub order_contacts: Logged<'t, u128, &'static [u8]>,
    /// See [`super::tables::TELEGRAM_CHATS`].
    pub telegram_chats: Logged<'t, &'static str, i64>,
    /// See [`super::tables::TELEGRAM_LINKS`].
    pub telegram_links: Logged<'t, &'static str, &'static str>,
    /// See [`super::tables::CHECKS`].
    pub checks: Logged<'t, u64, &'static [u8]>,
    /// See [`super::tables::CHECKS_OPEN`].
    pub checks_open: Logged<'t, u64, ()>,
    /// See [`super::tables::TABLE_CHECKS`].
    pub table_checks: Logged<'t, &'static str, u64>,
    /// See [`super::tables::ORDER_CHECKS`].
    pub order_checks: Logged<'t, u128, u64>,
    /// See [`super::tables::PAY_KEYS`].
    pub pay_keys: Logged<'t, &'static str, &'static [u8]>,
    /// See [`super::tables::LEDGER`].
    pub ledger: Logged<'t, (u32, u64), &'static [u8]>,
    /// See [`super::tables::Z_REPORTS`].
    pub z_reports: Logged<'t, u32, &'static [u8]>,
    /// See [`super::tables::PINS`].
    pub pins: Logged<'t, &'static str, &'static str>,
    on_emit: Option<EmitHook>,
    outbox_wake: Option<Arc<tokio::sync::Notify>>,
    now_ms: u64,
    next_seq: u64,
    pending: Vec<Event>,
    cached: Cached,
    cached_changed: bool,
    hooks: Vec<Box<dyn FnOnce() + Send>>,
}

impl<'t> Tx<'t> {
    fn open(
        wtx: &'t WriteTransaction,
        now_ms: u64,
        next_seq: u64,
        cached: Cached,
        on_emit: Option<EmitHook>,
        outbox_wake: Arc<tokio::sync::Notify>,
        log: &OpLog,
    ) -> Result<Self, StoreError> {
        // Each table with its own log id (`logged::wal_id`, from `logged::logged_tables!`).
        Ok(Self {
            orders: open_logged!(wtx, ORDERS, log)?,
            idx_active: open_logged!(wtx, IDX_ACTIVE, log)?,
            idx_day: open_logged!(wtx, IDX_DAY, log)?,
            idx_phone: open_logged!(wtx, IDX_PHONE, log)?,
            idx_finished: open_logged!(wtx, IDX_FINISHED, log)?,
            menu_table: open_logged!(wtx, MENU, log)?,
            stock: open_logged!(wtx, STOCK, log)?,
            tables: open_logged!(wtx, TABLES, log)?,
            users: open_logged!(wtx, USERS, log)?,
            sessions: open_logged!(wtx, SESSIONS, log)?,
            idempotency: open_logged!(wtx, IDEMPOTENCY, log)?,
            counters: open_logged!(wtx, COUNTERS, log)?,
            events: open_logged!(wtx, EVENTS, log)?,
            cursors: open_logged!(wtx, CURSORS, log)?,
            daily_summaries: open_logged!(wtx, DAILY_SUMMARIES, log)?,
            devices: open_logged!(wtx, DEVICES, log)?,
            print_jobs: open_logged!(wtx, PRINT_JOBS, log)?,
            print_open: open_logged!(wtx, PRINT_OPEN, log)?,
            otp: open_logged!(wtx, OTP, log)?,
            customer_tokens: open_logged!(wtx, CUSTOMER_TOKENS, log)?,
            outbox: open_logged!(wtx, OUTBOX, log)?,
            outbox_open: open_logged!(wtx, OUTBOX_OPEN, log)?,
            order_contacts: open_logged!(wtx, ORDER_CONTACTS, log)?,
            telegram_chats: open_logged!(wtx, TELEGRAM_CHATS, log)?,
            telegram_links: open_logged!(wtx, TELEGRAM_LINKS, log)?,
            checks: open_logged!(wtx, CHECKS, log)?,
            checks_open: open_logged!(wtx, CHECKS_OPEN, log)?,
            table_checks: open_logged!(wtx, TABLE_CHECKS, log)?,
            order_checks: open_logged!(wtx, ORDER_CHECKS, log)?,
            pay_keys: open_logged!(wtx, PAY_KEYS, log)?,
            ledger: open_logged!(wtx, LEDGER, log)?,
            z_reports: open_logged!(wtx, Z_REPORTS, log)?,
            pins: open_logged!(wtx, PINS, log)?,
            on_emit,
            outbox_wake: Some(outbox_wake),
            now_ms,
            next_seq,
            pending: Vec::new(),
            cached,
            cached_changed: false,
            hooks: Vec::new(),
        })
    }

    /// The batch's time (one clock reading per batch), ms since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Appends an event to the log in this transaction and returns its seq, after the emit
    /// hook (staff alerts) has written what the event calls for in the same transaction.
    pub fn emit(&mut self, kind: EventKind) -> Result<u64, StoreError> {
        if let Some(hook) = self.on_emit.clone() {
            hook(self, &kind)?;
        }
        let seq = self.next_seq;
        let event = Event {
            version: FORMAT_VERSION,
            seq,
            at: self.now_ms,
            kind,
        };
        self.events
            .insert(seq, super::event_row::encode(&event)?.as_slice())?;
        self.next_seq += 1;
        self.pending.push(event);
        Ok(seq)
    }

    /// The cached value as of this point in the batch.
    pub fn cached(&self) -> &Cached {
        &self.cached
    }

    /// Replaces the cached value (its stored form is the caller's to write in this
    /// transaction); published to [`Shared`] on commit, dropped on rollback.
    pub fn replace_cached(&mut self, value: Cached) {
        self.cached = value;
        self.cached_changed = true;
    }

    /// Wakes the messaging worker once this batch commits (an outbox row was written).
    pub fn wake_outbox(&mut self) {
        if let Some(wake) = self.outbox_wake.take() {
            self.after_commit(move || wake.notify_one());
        }
    }

    /// Runs `f` after the batch commits (e.g. to update an in-memory cache); dropped on rollback.
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.hooks.push(Box::new(f));
    }

    /// Closes the tables and hands back what must happen after the commit.
    #[allow(clippy::type_complexity)]
    fn finish(self) -> (Vec<Event>, Option<Cached>, Vec<Box<dyn FnOnce() + Send>>) {
        (
            self.pending,
            self.cached_changed.then_some(self.cached),
            self.hooks,
        )
    }
}

/// What a committed batch leaves to do: publish events, swap the cached value, run hooks.
type Committed = (Vec<Event>, Option<Cached>, Vec<Box<dyn FnOnce() + Send>>);

/// A job's reply, held until its batch commits or rolls back.
trait Reply: Send {
    fn failed_in_store(&self) -> bool;
    fn finish(self: Box<Self>, rolled_back: Option<&StoreError>);
}

struct Pending<T, E> {
    result: TxResult<T, E>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T: Send, E: From<StoreError> + Send> Reply for Pending<T, E> {
    fn failed_in_store(&self) -> bool {
        matches!(self.result, Err(TxError::Store(_)))
    }

    fn finish(self: Box<Self>, rolled_back: Option<&StoreError>) {
        let out = match (self.result, rolled_back) {
            (Err(TxError::App(e)), _) => Err(e),
            (Err(TxError::Store(e)), _) => Err(e.into()),
            (Ok(_), Some(e)) => Err(StoreError::RolledBack(e.to_string()).into()),
            (Ok(v), None) => Ok(v),
        };
        // The requester may have gone away (client disconnected); the work stands regardless.
        let _ = self.reply.send(out);
    }
}

type TxJob = Box<dyn for<'a, 'b> FnOnce(&'a mut Tx<'b>) -> Box<dyn Reply> + Send>;

/// What the writer thread is asked to do.
enum Job {
    /// Work inside the next batch's write transaction.
    Tx(TxJob),
    /// Work that may wait for company: it joins the next batch of requests, or commits alone
    /// in a quiet moment.
    Background(TxJob),
    /// A health check: answered by the writer thread once it gets there, without writing.
    Ping(oneshot::Sender<Result<(), StoreError>>),
}

/// Handle to the writer thread. Cloning is cheap; the thread ends when every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread.
    pub fn spawn(
        store: Store,
        shared: Arc<Shared>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        options: WriterOptions,
    ) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Job>(options.max_batch * 4);
        let handle = std::thread::Builder::new()
            .name("orderd-writer".into())
            .spawn(move || run(&store, &shared, &*clock, &metrics, rx, options))
            .expect("spawning the writer thread");
        (Self { jobs: tx }, handle)
    }

    /// Requests waiting for the writer.
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// Runs `f` inside the next batch's write transaction and answers after the commit; with
    /// `background`, it is work no client waits on (periodic saves, cursors): it rides along
    /// with the next batch of requests, or, when none comes, commits alone after [`QUIET`] — so
    /// it never makes a request wait for a second sync.
    ///
    /// `f` must check before it writes: return [`TxError::App`] only when it has written
    /// nothing. A failure in the store, or a stopped writer, reaches the caller as `E`.
    pub async fn submit<T, E, F>(&self, f: F, background: bool) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'a, 'b> FnOnce(&'a mut Tx<'b>) -> TxResult<T, E> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let work: TxJob = Box::new(move |tx| {
            let result = f(tx);
            Box::new(Pending { result, reply })
        });
        let job = if background {
            Job::Background(work)
        } else {
            Job::Tx(work)
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| E::from(StoreError::WriterStopped))?;
        rx.await.map_err(|_| E::from(StoreError::WriterStopped))?
    }

    /// Health check: a round trip through the writer thread, after every request queued
    /// before it, that also opens (and drops) a write transaction — so a wedged writer or a
    /// store redb refuses to write fails it — but writes nothing: an idle box checking its
    /// health every few seconds causes no disk writes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Ping(reply))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// A checkpoint (a durable redb commit, after which the write-ahead log starts over) also
/// happens once the log holds this much.
const CHECKPOINT_WAL_BYTES: u64 = 16 * 1024 * 1024;

/// A quiet moment: this long without a request. Background jobs wait for one (or ride along
/// with requests), so they do not hold up a request with a sync of their own.
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(20);

/// How the writer groups and checkpoints.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Most requests per batch.
    pub max_batch: usize,
    /// A checkpoint at least this often …
    pub checkpoint_interval: std::time::Duration,
    /// … or after this many batches.
    pub checkpoint_batches: u32,
}

impl WriterOptions {
    /// The options of a configuration.
    pub fn from_config(c: &crate::config::StoreConfig) -> Self {
        Self {
            max_batch: c.max_batch as usize,
            checkpoint_interval: std::time::Duration::from_millis(c.checkpoint_interval_ms),
            checkpoint_batches: c.checkpoint_batches,
        }
    }
}

/// Key in `counters`: seq of the last batch contained in the store.
pub const WAL_SEQ_KEY: &str = "wal_seq";

/// How batches become durable: the write-ahead log between checkpoints.
struct Durable {
    wal: Wal,
    /// Seq of the next batch.
    seq: u64,
    last_checkpoint: std::time::Instant,
    since_checkpoint: u32,
    every: std::time::Duration,
    every_batches: u32,
}

impl Durable {
    fn checkpoint_due(&self) -> bool {
        self.since_checkpoint >= self.every_batches
            || self.wal.used() >= CHECKPOINT_WAL_BYTES
            || self.last_checkpoint.elapsed() >= self.every
    }

    fn checkpointed(&mut self) {
        self.wal.reset();
        self.last_checkpoint = std::time::Instant::now();
        self.since_checkpoint = 0;
    }
}

/// The next job, or `None` once `deadline` passes with none; `Some(None)` when every sender
/// is gone. The writer thread is outside the runtime, so it parks itself (tokio's
/// `blocking_recv` has no timeout).
#[allow(clippy::option_option)]
fn recv_until(rx: &mut mpsc::Receiver<Job>, deadline: std::time::Instant) -> Option<Option<Job>> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(job) = rx.poll_recv(&mut cx) {
            return Some(job);
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// A durable commit of everything committed so far.
fn checkpoint(store: &Store) -> Result<(), StoreError> {
    let mut wtx = store.db().begin_write()?;
    wtx.set_durability(Durability::Immediate)?;
    wtx.commit()?;
    Ok(())
}

fn run(
    store: &Store,
    shared: &Shared,
    clock: &dyn Clock,
    metrics: &Metrics,
    mut rx: mpsc::Receiver<Job>,
    options: WriterOptions,
) {
    let max_batch = options.max_batch;
    let mut next_seq = shared.last_seq.load(Ordering::Acquire) + 1;
    let mut durable = Durable {
        wal: store.take_wal(),
        seq: store.wal_seq() + 1,
        last_checkpoint: std::time::Instant::now(),
        since_checkpoint: 0,
        every: options.checkpoint_interval,
        every_batches: options.checkpoint_batches,
    };
    let mut jobs = Vec::with_capacity(max_batch);
    // Background jobs waiting for a batch of requests or a quiet moment.
    let mut held: Vec<TxJob> = Vec::new();
    let mut last_request = std::time::Instant::now();
    // Commits one batch of work (requests, background work or both).
    let commit = |work: Vec<TxJob>, durable: &mut Durable, next_seq: &mut u64| {
        metrics.commit_batch_size.observe(work.len() as f64);
        *next_seq = run_batch(store, shared, clock, durable, work.into_iter(), *next_seq);
    };
    loop {
        let first = if held.is_empty() {
            rx.blocking_recv()
        } else {
            let Some(job) = recv_until(&mut rx, last_request + QUIET) else {
                // A quiet moment: the background work goes now, in a batch of its own.
                commit(std::mem::take(&mut held), &mut durable, &mut next_seq);
                continue;
            };
            job
        };
        let Some(first) = first else {
            break;
        };
        jobs.push(first);
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut pings = Vec::new();
        let mut work: Vec<TxJob> = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Tx(f) => work.push(f),
                Job::Background(f) => held.push(f),
                Job::Ping(reply) => pings.push(reply),
            }
        }
        if !work.is_empty() {
            // Requests: whatever background work waits rides along, for no extra sync.
            work.append(&mut held);
            commit(work, &mut durable, &mut next_seq);
            shared
                .last_batch_at
                .store(clock.now_ms(), Ordering::Release);
            last_request = std::time::Instant::now();
        } else if held.len() >= max_batch {
            // A flood of background work does not wait for company.
            commit(std::mem::take(&mut held), &mut durable, &mut next_seq);
        }
        if !pings.is_empty() {
            let health = store
                .db()
                .begin_write()
                .map_err(StoreError::from)
                .and_then(|w| w.abort().map_err(StoreError::from));
            for reply in pings {
                let _ = reply.send(match &health {
                    Ok(()) => Ok(()),
                    Err(e) => Err(StoreError::RolledBack(e.to_string())),
                });
            }
        }
    }
    // Every handle is gone: what background work is left commits before the last checkpoint.
    if !held.is_empty() {
        commit(held, &mut durable, &mut next_seq);
    }
    match checkpoint(store) {
        Ok(()) => {
            durable.checkpointed();
            if let Err(e) = durable.wal.mark_empty() {
                tracing::warn!(error = %e, "could not mark the write-ahead log empty; the next start replays it");
            }
            tracing::info!(
                "writer: all requests answered, store checkpointed and closed for writing"
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "final checkpoint failed; the next start replays the write-ahead log");
        }
    }
}

/// Runs one batch and returns the next event seq.
fn run_batch(
    store: &Store,
    shared: &Shared,
    clock: &dyn Clock,
    durable: &mut Durable,
    jobs: impl Iterator<Item = TxJob>,
    next_seq: u64,
) -> u64 {
    let mut replies: Vec<Box<dyn Reply>> = Vec::new();
    let t0 = std::time::Instant::now();
    let mut t_jobs = t0;
    let is_checkpoint = durable.checkpoint_due();
    let log: OpLog = super::logged::new_log();
    let outcome = (|| -> Result<Committed, StoreError> {
        let mut wtx = store.db().begin_write()?;
        wtx.set_durability(if is_checkpoint {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let mut tx = Tx::open(
            &wtx,
            clock.now_ms(),
            next_seq,
            shared.cached(),
            shared.on_emit.clone(),
            Arc::clone(&shared.outbox_wake),
            &log,
        )?;
        let mut failed = None;
        for job in jobs {
            let reply = job(&mut tx);
            if failed.is_none() && reply.failed_in_store() {
                failed = Some(StoreError::RolledBack(
                    "a request failed in the store".into(),
                ));
            }
            replies.push(reply);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        tx.counters.insert(WAL_SEQ_KEY, durable.seq)?;
        let (pending, cached, hooks) = tx.finish();
        t_jobs = std::time::Instant::now();
        wtx.commit()?;
        if is_checkpoint {
            durable.checkpointed();
        } else {
            let appended = durable.wal.append(durable.seq, &log.borrow());
            durable.since_checkpoint += 1;
            if let Err(e) = appended {
                // The batch is committed but not yet durable: make it durable through redb.
                tracing::warn!(error = %e, "write-ahead log append failed; checkpointing instead");
                checkpoint(store)?;
                durable.checkpointed();
            }
        }
        durable.seq += 1;
        Ok((pending, cached, hooks))
    })();
    match outcome {
        Ok((events, cached, hooks)) => {
            // `durable_us` (wall clock, µs) and the seqs let a benchmark time each event from
            // the moment it became durable (scripts/bench-mqtt.sh).
            tracing::trace!(
                jobs_us = (t_jobs - t0).as_micros() as u64,
                commit_us = t_jobs.elapsed().as_micros() as u64,
                batch = replies.len(),
                checkpoint = is_checkpoint,
                first_seq = events.first().map(|e| e.seq),
                last_seq = events.last().map(|e| e.seq),
                durable_us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64),
                "batch durable"
            );
            let next = events.last().map_or(next_seq, |e| e.seq + 1);
            if let Some(cached) = cached {
                *shared
                    .cached
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = cached;
            }
            shared.last_seq.store(next - 1, Ordering::Release);
            for hook in hooks {
                hook();
            }
            // Consumers first (the kitchen hub's tickets are the latency that matters), then
            // the requests that wait for their answer.
            for event in events {
                // No subscriber is fine: consumers catch up from the log.
                let _ = shared.events.send(Arc::new(event));
            }
            for reply in replies {
                reply.finish(None);
            }
            next
        }
        Err(e) => {
            tracing::error!(error = %e, requests = replies.len(), "write batch rolled back; every request in it was answered 503");
            for reply in replies {
                reply.finish(Some(&e));
            }
            next_seq
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::store::tables;

    /// What the tests' jobs fail with: a refusal, as a domain's error would be, or the store.
    #[derive(Debug, PartialEq)]
    enum Failed {
        Refused(&'static str),
        Store(String),
    }

    impl From<StoreError> for Failed {
        fn from(e: StoreError) -> Self {
            Self::Store(e.to_string())
        }
    }

    /// `submit` with the tests' error.
    trait Jobs {
        fn run<T, F>(&self, f: F) -> impl Future<Output = Result<T, Failed>> + Send
        where
            T: Send + 'static,
            F: for<'a, 'b> FnOnce(&'a mut Tx<'b>) -> TxResult<T, Failed> + Send + 'static;
        fn run_background<T, F>(&self, f: F) -> impl Future<Output = Result<T, Failed>> + Send
        where
            T: Send + 'static,
            F: for<'a, 'b> FnOnce(&'a mut Tx<'b>) -> TxResult<T, Failed> + Send + 'static;
    }

    impl Jobs for Writer {
        fn run<T, F>(&self, f: F) -> impl Future<Output = Result<T, Failed>> + Send
        where
            T: Send + 'static,
            F: for<'a, 'b> FnOnce(&'a mut Tx<'b>) -> TxResult<T, Failed> + Send + 'static,
        {
            self.submit(f, false)
        }
        fn run_background<T, F>(&self, f: F) -> impl Future<Output = Result<T, Failed>> + Send
        where
            T: Send + 'static,
            F: for<'a, 'b> FnOnce(&'a mut Tx<'b>) -> TxResult<T, Failed> + Send + 'static,
        {
            self.submit(f, true)
        }
    }

    /// A clock that ticks on every reading, so each batch (one reading) has its own time.
    struct Ticking(AtomicU64);
    impl Clock for Ticking {
        fn now_ms(&self) -> u64 {
            self.0.fetch_add(1, Ordering::SeqCst)
        }
    }

    /// A writer on `store` with no cached value, no hook and a ticking clock, for the store's
    /// own tests (these and `store::power_cut`).
    pub(in crate::store) fn spawn_bare(
        store: Store,
        options: WriterOptions,
    ) -> (Writer, std::thread::JoinHandle<()>) {
        let shared = Arc::new(Shared {
            cached: RwLock::new(Arc::new(())),
            events: broadcast::channel(16).0,
            last_seq: AtomicU64::new(store.last_event_seq().unwrap()),
            last_batch_at: AtomicU64::new(0),
            on_emit: None,
            outbox_wake: Arc::default(),
        });
        Writer::spawn(
            store,
            shared,
            Arc::new(Ticking(AtomicU64::new(1))),
            Arc::new(Metrics::new()),
            options,
        )
    }

    fn writer(dir: &std::path::Path) -> (Store, Writer) {
        let store = Store::open(dir, 4 * 1024 * 1024).unwrap();
        let (w, _thread) = spawn_bare(
            store.clone(),
            WriterOptions {
                max_batch: 64,
                checkpoint_interval: std::time::Duration::from_secs(1),
                checkpoint_batches: 128,
            },
        );
        (store, w)
    }

    fn committed(store: &Store, key: &str) -> bool {
        let rtx = store.read().unwrap();
        let t = rtx.open_table(tables::COUNTERS).unwrap();
        t.get(key).unwrap().is_some()
    }

    /// Background work never takes a sync of its own in front of a request: it rides along
    /// with the next request's batch (one log append for both), and alone it still commits,
    /// in the quiet moment after the last request.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_work_rides_along_with_requests_or_waits_for_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let (store, w) = writer(dir.path());
        let before = store.wal_seq();
        // Both sent at once: the background job first, the request a moment later.
        let (bg, req) = tokio::join!(
            w.run_background(|tx| {
                tx.counters.insert("bg", 1)?;
                Ok(())
            }),
            w.run(|tx| {
                tx.counters.insert("req", 1)?;
                Ok(())
            })
        );
        bg.unwrap();
        req.unwrap();
        assert!(committed(&store, "bg") && committed(&store, "req"));
        assert_eq!(store.wal_seq(), before + 1, "one batch, one sync, for both");

        // Alone, it commits once nothing else comes for the quiet period.
        let t0 = std::time::Instant::now();
        w.run_background(|tx| {
            tx.counters.insert("alone", 1)?;
            Ok(())
        })
        .await
        .unwrap();
        assert!(committed(&store, "alone"));
        assert!(t0.elapsed() >= QUIET / 2, "it waited for a quiet moment");
        assert_eq!(store.wal_seq(), before + 2);
    }

    /// The health check goes through the writer thread but writes nothing (an idle box pings
    /// every few seconds; each write would be a WAL fsync on the SD card); a request does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_ping_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, w) = writer(dir.path());
        let before = store.wal_seq();
        for _ in 0..5 {
            w.ping().await.unwrap();
        }
        assert_eq!(store.wal_seq(), before);
        w.run(|_| Ok(())).await.unwrap();
        assert_eq!(store.wal_seq(), before + 1);
    }

    /// A crash right after the answers: the files as they are on disk then (redb at its last
    /// checkpoint plus the write-ahead log) are copied and opened, and every answered write,
    /// in every table, is there — through replay of the log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answered_batches_survive_a_crash_through_the_log() {
        use redb::ReadableTableMetadata as _;
        let dir = tempfile::tempdir().unwrap();
        let (_store, w) = writer(dir.path());
        for round in 0..3u8 {
            w.run(move |tx| {
                let k = u128::from(round);
                let v: &[u8] = &[round; 3];
                tx.orders.insert(k, v)?;
                tx.idx_active.insert((round, k), ())?;
                tx.idx_day.insert((u32::from(round), 1), k)?;
                tx.idx_phone.insert(("+355", k), ())?;
                tx.idx_finished.insert((u64::from(round), k), ())?;
                tx.menu_table.insert(format!("m{round}").as_str(), v)?;
                tx.stock
                    .insert(format!("s{round}").as_str(), u32::from(round))?;
                tx.tables.insert(format!("t{round}").as_str(), v)?;
                tx.users.insert(format!("u{round}").as_str(), v)?;
                tx.sessions.insert([round; 32], v)?;
                tx.idempotency.insert(format!("i{round}").as_str(), v)?;
                tx.counters.insert(format!("c{round}").as_str(), 7)?;
                tx.events.insert(u64::from(round) + 1, v)?;
                tx.cursors.insert(format!("k{round}").as_str(), 1)?;
                tx.daily_summaries.insert(u32::from(round), v)?;
                tx.devices.insert(format!("d{round}").as_str(), v)?;
                tx.print_jobs.insert(format!("j{round}").as_str(), v)?;
                tx.print_open.insert(format!("j{round}").as_str(), ())?;
                tx.otp.insert(format!("o{round}").as_str(), v)?;
                tx.customer_tokens.insert([round + 100; 32], v)?;
                tx.outbox.insert(u64::from(round), v)?;
                tx.outbox_open.insert(u64::from(round), ())?;
                tx.order_contacts.insert(k, v)?;
                tx.telegram_chats
                    .insert(format!("p{round}").as_str(), i64::from(round))?;
                tx.telegram_links
                    .insert(format!("l{round}").as_str(), "x")?;
                tx.checks.insert(u64::from(round), v)?;
                tx.checks_open.insert(u64::from(round), ())?;
                tx.table_checks
                    .insert(format!("t{round}").as_str(), u64::from(round))?;
                tx.order_checks.insert(k, u64::from(round))?;
                tx.pay_keys.insert(format!("k{round}").as_str(), v)?;
                tx.ledger.insert((1, u64::from(round)), v)?;
                tx.z_reports.insert(u32::from(round), v)?;
                tx.pins.insert(format!("u{round}").as_str(), "h")?;
                Ok(())
            })
            .await
            .unwrap();
        }
        w.run(|tx| {
            tx.stock.remove("s1")?;
            Ok(())
        })
        .await
        .unwrap();
        // "Crash": copy what is on disk now, while the writer still runs.
        let crashed = tempfile::tempdir().unwrap();
        for f in [Store::FILE, Store::WAL_FILE] {
            std::fs::copy(dir.path().join(f), crashed.path().join(f)).unwrap();
        }
        // Without the log, redb alone is back at its last checkpoint: the log is what holds them.
        let redb_only = tempfile::tempdir().unwrap();
        std::fs::copy(
            dir.path().join(Store::FILE),
            redb_only.path().join(Store::FILE),
        )
        .unwrap();
        let bare = Store::open(redb_only.path(), 4 * 1024 * 1024).unwrap();
        assert_eq!(
            bare.read()
                .unwrap()
                .open_table(tables::ORDERS)
                .unwrap()
                .len()
                .unwrap(),
            0
        );
        drop(bare);
        let store = Store::open(crashed.path(), 4 * 1024 * 1024).unwrap();
        let rtx = store.read().unwrap();
        macro_rules! three_rows {
            ($($table:ident),* $(,)?) => {
                $(assert_eq!(
                    rtx.open_table(tables::$table).unwrap().len().unwrap(),
                    3,
                    stringify!($table)
                );)*
            };
        }
        // Every table the batches wrote holds its three rows (below), but these two.
        assert_eq!(
            rtx.open_table(tables::STOCK).unwrap().len().unwrap(),
            2,
            "the removal replayed too"
        );
        assert!(
            rtx.open_table(tables::COUNTERS)
                .unwrap()
                .get("c2")
                .unwrap()
                .is_some()
        );
        three_rows![
            ORDERS,
            IDX_ACTIVE,
            IDX_DAY,
            IDX_PHONE,
            IDX_FINISHED,
            MENU,
            TABLES,
            USERS,
            SESSIONS,
            IDEMPOTENCY,
            EVENTS,
            CURSORS,
            DAILY_SUMMARIES,
            DEVICES,
            PRINT_JOBS,
            PRINT_OPEN,
            OTP,
            CUSTOMER_TOKENS,
            OUTBOX,
            OUTBOX_OPEN,
            ORDER_CONTACTS,
            TELEGRAM_CHATS,
            TELEGRAM_LINKS,
            CHECKS,
            CHECKS_OPEN,
            TABLE_CHECKS,
            ORDER_CHECKS,
            PAY_KEYS,
            LEDGER,
            Z_REPORTS,
            PINS,
        ];
        assert_eq!(
            rtx.open_table(tables::ORDERS)
                .unwrap()
                .get(2u128)
                .unwrap()
                .unwrap()
                .value(),
            &[2u8, 2, 2]
        );
        assert_eq!(store.wal_seq(), 4, "four batches, all replayed");
        drop(rtx);
        // Opening again replays nothing new and changes nothing.
        drop(store);
        let store = Store::open(crashed.path(), 4 * 1024 * 1024).unwrap();
        assert_eq!(store.wal_seq(), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_request_does_not_fail_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (store, w) = writer(dir.path());
        let jobs = (0..200u32).map(|i| {
            let w = w.clone();
            async move {
                let r = w
                    .run(move |tx| {
                        let batch = tx.now_ms();
                        if i % 2 == 1 {
                            return Err(TxError::App(Failed::Refused("odd")));
                        }
                        tx.counters.insert(format!("k{i}").as_str(), 1)?;
                        Ok(batch)
                    })
                    .await;
                (i, r)
            }
        });
        let results = futures::future::join_all(jobs).await;
        let mut batches: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, r) in &results {
            if i % 2 == 0 {
                let batch = r.as_ref().expect("even requests commit");
                *batches.entry(*batch).or_default() += 1;
                assert!(committed(&store, &format!("k{i}")));
            } else {
                assert_eq!(r.as_ref().unwrap_err(), &Failed::Refused("odd"));
                assert!(!committed(&store, &format!("k{i}")));
            }
        }
        assert!(
            batches.values().any(|&n| n > 1),
            "requests were grouped: {batches:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_failure_rolls_back_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (store, w) = writer(dir.path());
        let jobs = (0..100u32).map(|i| {
            let w = w.clone();
            async move {
                let batch = Arc::new(AtomicU64::new(0));
                let b = Arc::clone(&batch);
                let r = w
                    .run(move |tx| {
                        b.store(tx.now_ms(), Ordering::SeqCst);
                        tx.counters.insert(format!("k{i}").as_str(), 1)?;
                        if i == 50 {
                            return Err(TxError::Store(StoreError::RolledBack("simulated".into())));
                        }
                        Ok(())
                    })
                    .await;
                (i, batch.load(Ordering::SeqCst), r)
            }
        });
        let results = futures::future::join_all(jobs).await;
        let failed_batch = results.iter().find(|(i, _, _)| *i == 50).unwrap().1;
        let mut mates = 0;
        for (i, batch, r) in &results {
            if *batch == failed_batch {
                mates += 1;
                assert!(
                    matches!(r.as_ref().unwrap_err(), Failed::Store(_)),
                    "request {i}: {r:?}"
                );
                assert!(
                    !committed(&store, &format!("k{i}")),
                    "request {i} was rolled back"
                );
            } else {
                assert!(r.is_ok());
                assert!(committed(&store, &format!("k{i}")));
            }
        }
        assert!(mates >= 1);
        // The writer carries on after a rolled-back batch.
        w.run(|tx| {
            tx.counters.insert("after", 1)?;
            Ok(())
        })
        .await
        .unwrap();
        assert!(committed(&store, "after"));
    }
}
