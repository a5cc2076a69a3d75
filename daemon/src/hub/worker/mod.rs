//! The kitchen hub task: event log in, MQTT out (and bump bars and printer reports back in).
//!
//! Delivery rules, in order of importance:
//! - The hub reads the event log from its durable cursor (`kitchen`), so no ticket is lost
//!   across a crash: the cursor moves only after the jobs an event created are stored.
//! - Tickets first: the hub publishes the tickets of every event committed by now before any
//!   of those events' other work (print jobs, boards, buzzers), which waits in a queue that is
//!   worked through when no new event is ready. So a burst of events (as after a slow fsync)
//!   reaches the displays before its hundreds of print jobs go out.
//! - Tickets and jobs are published first and stored right after (one write per flush, every
//!   100 ms), so the store's fsync is not on a ticket's path. The cursor only passes an event
//!   once the broker has every message it caused (an external broker's PUBACKs are counted;
//!   the embedded broker's router has taken them from the hub's in-process link), and it
//!   trails that by one flush, so the broker has had time to forward them. After a crash or
//!   a lost broker connection the events past the cursor are handled again: tickets repeat
//!   with the same `seq` (devices drop repeats) and jobs get the same ids (printers print once
//!   per id).
//! - A job is resent with its id every `resend_secs` until the printer reports `printed`. A
//!   job whose printer is offline, reports paper out / cover open / error, or stays silent for
//!   `job_timeout_secs` fails over to the station's backup printer as a REPRINT, with an alert
//!   (an alarm on the station's buzzers and a `print_failover` event). Without a backup it
//!   waits and is resent when the printer is back. One printer's trouble never holds up
//!   another's jobs: each job has its own timers and nothing waits on a printer.
//! - Boards are rebuilt from the active orders at start and republished (retained) after every
//!   (re)connect, because a broker keeps retained messages in RAM only.
//! - Inbound payloads are checked; a malformed one is logged with its device and dropped.
//!
//! This file holds the loop and its state; `boards` (the stations' boards and their counts),
//! `jobs` (print jobs, resends and failover) and `inbound` (what devices send, device health,
//! buzzers and discovery) each add their part of the hub's methods.

mod boards;
mod inbound;
mod jobs;

use inbound::write_bumps;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use orderd_protocol::encoding::{self, Encoding};
use orderd_protocol::relay::{self, Flavour};
use orderd_protocol::topics::{self, Topic};
use orderd_protocol::{
    Availability, Bump, BumpResult, BuzzPattern, BuzzerSet, DeviceState, Event, EventKind,
    FORMAT_VERSION, JobState as Reported, JobStatus, Order, OrderStatus, PrintCopy, PrintFormat,
    PrintJob, TicketChange, TicketEvent, TicketLine,
};
use rumqttc::QoS;

use super::printing;
use super::relays::Relays;
use super::tickets::{Boards, station_lines};
use super::{DeviceHealth, Kitchen};
use crate::domain::devices::{self, Device, DeviceKind};
use crate::domain::orders;
use crate::domain::print_jobs::{self, JobState, PrintJobRow};
use crate::error::Commit as _;
use crate::metrics::{DeviceLabels, JobLabels, Metrics};
use crate::mqtt::client::{HubClient, Inbound, Started};
use crate::shutdown::Shutdown;
use crate::state::AppStateRef;
use prometheus_client::metrics::counter::Counter;

/// The hub's consumer name in the cursor table.
pub const CONSUMER: &str = "kitchen";
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A job the hub is responsible for until it is printed or failed over.
struct Open {
    row: PrintJobRow,
    /// Last time it was handed to the broker.
    sent_at: Option<Instant>,
    /// First time it was handed to the broker since the printer was last ready.
    first_sent: Option<Instant>,
    /// Changed since the last flush.
    dirty: bool,
}

/// What a flush under way stores, kept to be put back if its write fails.
struct Flushing {
    /// The cursor it stores.
    seq: u64,
    /// Jobs whose rows it stores.
    ids: Vec<String>,
    /// Rows of jobs closed by a failover.
    closed: Vec<PrintJobRow>,
    /// Alerts it writes.
    alerts: Vec<EventKind>,
}

/// What an event leaves for after the tickets of every event ready now, in order.
enum Deferred {
    /// Everything an event causes besides its tickets (jobs, board, buzzers, cursor mark).
    After(Box<(Event, Option<Order>, Vec<TicketEvent>)>),
    /// Hand a new job to its printer.
    Job(String),
    /// Every message of the events up to this seq is issued: a cursor mark can be taken.
    Mark(u64),
}

/// New jobs that start a flush before the tick: a burst (a replay after a restart) is stored
/// early rather than held. Under a busy kitchen's steady load (4,000 jobs/s in the benchmark)
/// the tick comes first, so a job created and printed within one tick is written once, not
/// twice (it was 64: a write every 16 ms, most jobs stored as sent and again as printed).
const FLUSH_AFTER_JOBS: usize = 1024;

/// Bump-bar presses that come within this time of each other are written together. A
/// kitchen's board is republished at most every 100 ms anyway, so nobody sees the wait, and a
/// busy kitchen's bumps (600 a second in the benchmark) no longer cost one fsync each.
const BUMP_WINDOW: Duration = Duration::from_millis(10);

/// Most bumps in one write; more wait for the next.
const MAX_BUMPS_PER_WRITE: usize = 256;

/// Bumps waiting to be written; a bump bar pressing faster than the store writes is refused.
const MAX_BUMPS_WAITING: usize = 1024;

/// Deferred entries handled per turn of the loop: a new event's tickets wait for at most this
/// many (an event's other work, or one print job, each).
const DEFERRED_PER_TURN: usize = 8;

/// Most events handled as one burst (their tickets first).
const MAX_BURST: usize = 256;

/// No new events are taken while this much deferred work waits: a replay of a long backlog
/// (after a restart) goes in steps instead of holding every event in memory, and device
/// reports get their turns meanwhile.
const MAX_DEFERRED: usize = 1024;

/// The print-job counters of `/metrics`, looked up once (not per job).
struct JobCounters {
    sent: Counter,
    resent: Counter,
    printed: Counter,
    failed_over: Counter,
}

impl JobCounters {
    fn new(metrics: &Metrics) -> Self {
        let get = |state: &str| {
            metrics
                .print_jobs
                .get_or_create(&JobLabels {
                    state: state.to_owned(),
                })
                .clone()
        };
        Self {
            sent: get("sent"),
            resent: get("resent"),
            printed: get("printed"),
            failed_over: get("failed_over"),
        }
    }
}

/// The write of a flush, run beside the hub's loop so a slow commit never holds up tickets.
type FlushTask = tokio::task::JoinHandle<Result<(), crate::error::AppError>>;

struct Hub {
    state: AppStateRef,
    kitchen: Arc<Kitchen>,
    client: HubClient,
    site: String,
    devices: BTreeMap<String, Device>,
    boards: Boards,
    jobs: HashMap<String, Open>,
    /// Jobs created since the last flush (a burst is stored early rather than held).
    created_since_flush: usize,
    /// Stations whose board changed since it was last published.
    dirty_boards: std::collections::BTreeSet<String>,
    /// Jobs closed by a failover since the last flush (no longer in `jobs`).
    closed: Vec<PrintJobRow>,
    /// Last event seq handled (published).
    handled: u64,
    /// Last event seq whose QoS 1 messages the broker acknowledged one flush ago: what the
    /// next flush stores as the cursor.
    handled_safe: u64,
    /// Same, as of this flush (becomes `handled_safe` at the next).
    acked_seq: u64,
    /// The cursor as stored.
    stored: u64,
    /// (seq, what the client had issued on this connection) after each event.
    marks: std::collections::VecDeque<(u64, u64)>,
    /// Work left after tickets went out (events' other work, new jobs not handed to the
    /// broker yet, the cursor marks that wait for them), in order.
    deferred: std::collections::VecDeque<Deferred>,
    /// Events the hub itself raises (alerts), written at the next flush.
    alerts: Vec<EventKind>,
    home_assistant: Option<String>,
    /// Devices whose Home Assistant config has been published on this connection.
    announced: std::collections::HashSet<String>,
    /// The flush whose write is under way, if any (at most one at a time).
    flushing: Option<Flushing>,
    /// Buzzer id → pattern → until when that ring sounds: a pattern is not sent to a buzzer
    /// again within its duration (a rush of orders is one ring, not hundreds).
    sounding: HashMap<String, HashMap<BuzzPattern, Instant>>,
    /// Stock Tasmota and Shelly relays rung as buzzers.
    relays: Relays,
    /// The store's count of open tickets per station, while one runs (for truncated boards).
    counting: Option<tokio::sync::oneshot::Receiver<BTreeMap<String, u64>>>,
    /// When the last count started.
    counted_at: Option<Instant>,
    /// The last event handled when that count started: an idle kitchen is not counted again.
    counted_seq: u64,
    counted: JobCounters,
    /// Bump-bar presses for [`write_bumps`].
    bumps: tokio::sync::mpsc::Sender<(String, Bump)>,
    /// [`write_bumps`]'s answers, and the hub's own for unreadable payloads, to publish.
    bump_answers: tokio::sync::mpsc::UnboundedSender<(String, BumpResult)>,
    /// Displays that may have missed tickets, with the last event seq whose tickets they had
    /// the chance to get: every display from the cursor at start (what the broker, restarted
    /// with the box, held is gone), and any display from when it went offline.
    missed_since: HashMap<String, u64>,
    /// Displays back online whose missed tickets go out at the next tick (by then the display
    /// has subscribed, whatever order it did that in).
    resend_due: std::collections::BTreeSet<String>,
    /// Missed tickets waiting to go out again (topic, payload), [`RESEND_PER_TICK`] a tick.
    resend_queue: std::collections::VecDeque<(String, Vec<u8>)>,
}

/// A display back online gets the tickets of at most this many of the latest events it
/// missed; beyond that its board is the truth.
const RESEND_MAX_EVENTS: usize = 5_000;

/// Missed tickets sent again per tick (100 ms): the embedded broker keeps about 64 KiB of each
/// topic for a connection that has not read it yet, so a backlog sent at once would push its own
/// start out before the display read it.
const RESEND_PER_TICK: usize = 50;

/// Every display, as missing what came after `cursor` (the hub's start).
fn devices_missing_from(devices: &BTreeMap<String, Device>, cursor: u64) -> HashMap<String, u64> {
    devices
        .values()
        .filter(|d| d.kind == DeviceKind::Display)
        .map(|d| (d.id.clone(), cursor))
        .collect()
}

/// Where bump-bar presses go to be written ([`write_bumps`]).
type BumpSender = tokio::sync::mpsc::Sender<(String, Bump)>;
/// Where answers to bumps go to be published, by station.
type AnswerSender = tokio::sync::mpsc::UnboundedSender<(String, BumpResult)>;

/// Runs the hub until shutdown.
pub async fn run(state: AppStateRef, kitchen: Arc<Kitchen>, link: Started, shutdown: Shutdown) {
    if let Err(e) = run_inner(state, kitchen, link, shutdown).await {
        tracing::error!(error = %e, "the kitchen hub stopped");
    }
}

async fn run_inner(
    state: AppStateRef,
    kitchen: Arc<Kitchen>,
    link: Started,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let cursor = state.events.register(CONSUMER).await?;
    let Started {
        client,
        mut inbound,
        task: client_task,
    } = link;
    let (bumps, bump_rx) = tokio::sync::mpsc::channel(MAX_BUMPS_WAITING);
    let (bump_answers, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let bump_writer = tokio::spawn(write_bumps(
        Arc::clone(&state),
        bump_rx,
        bump_answers.clone(),
    ));
    let mut hub = Hub::load(
        Arc::clone(&state),
        kitchen,
        client,
        cursor,
        (bumps, bump_answers),
    )?;
    let mut sub = state.events.subscribe(cursor + 1);
    let mut connected = false;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The write of the last flush, while it runs: the loop goes on publishing meanwhile.
    let mut flushing: Option<FlushTask> = None;
    tracing::info!(cursor, open_jobs = hub.jobs.len(), "kitchen hub started");
    loop {
        // Biased, in this order: events before anything else (their tickets are the latency
        // that matters), deferred work (print jobs, boards, buzzers) only when nothing else is
        // ready.
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            ev = sub.next(), if connected && hub.deferred.len() < MAX_DEFERRED => match ev {
                Ok(ev) => {
                    // With every other event committed by now (a burst after a slow fsync).
                    let mut burst = vec![ev];
                    // Never split a placement from the allergy note that follows it.
                    while burst.len() < MAX_BURST
                        || matches!(burst.last().map(|e| &e.kind), Some(EventKind::OrderPlaced(_)))
                    {
                        match sub.try_next() {
                            Ok(Some(ev)) => burst.push(ev),
                            // A store error comes back from the next `next()`.
                            Ok(None) | Err(_) => break,
                        }
                    }
                    hub.on_events(burst).await;
                }
                Err(e) => {
                    tracing::info!(error = %e, "kitchen hub: event log closed");
                    break;
                }
            },
            msg = inbound.recv() => match msg {
                Some(Inbound::Connected) => {
                    connected = true;
                    // What the old connection did not get acknowledged is handled again.
                    let from = hub.restart_from_cursor();
                    sub = state.events.subscribe(from);
                    hub.on_connected().await;
                }
                Some(Inbound::Disconnected(_)) => {
                    connected = false;
                }
                Some(Inbound::Message { topic, payload }) => hub.on_message(&topic, &payload).await,
                None => break,
            },
            () = hub.kitchen.wake.notified() => hub.load_queued().await,
            Some((station, answer)) = answers.recv(), if connected => {
                hub.answer_bump(&station, &answer).await;
            }
            done = async { flushing.as_mut().expect("guarded").await }, if flushing.is_some() => {
                flushing = None;
                hub.flush_done(done);
            }
            // Only while there is something to flush, resend or time out: an idle kitchen
            // has no timer running.
            _ = tick.tick(), if hub.needs_tick() => {
                hub.publish_dirty_boards().await;
                hub.on_tick().await;
                if flushing.is_none() {
                    flushing = hub.start_flush();
                }
            }
            // While disconnected it waits: a reconnect starts again from the cursor anyway.
            () = std::future::ready(()), if connected && !hub.deferred.is_empty() => {
                hub.run_deferred(DEFERRED_PER_TURN).await;
                // A burst of new jobs is stored early rather than held for the tick.
                if flushing.is_none() && hub.created_since_flush >= FLUSH_AFTER_JOBS {
                    flushing = hub.start_flush();
                }
            }
        }
    }
    if let Some(task) = flushing.take() {
        hub.flush_done(task.await);
    }
    if let Some(task) = hub.start_flush() {
        hub.flush_done(task.await);
    }
    hub.client.close().await;
    drop(hub);
    let _ = bump_writer.await;
    let _ = client_task.await;
    Ok(())
}

impl Hub {
    fn load(
        state: AppStateRef,
        kitchen: Arc<Kitchen>,
        client: HubClient,
        cursor: u64,
        (bumps, bump_answers): (BumpSender, AnswerSender),
    ) -> anyhow::Result<Self> {
        let settings = Arc::clone(&state.settings);
        let rtx = state.store.read()?;
        let devices = devices::list(&rtx)?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        // Streamed oldest first: only what the boards hold stays in memory. Orders left open
        // from earlier business days are not shown (see `roll_day`).
        let mut boards = Boards::default().with_min_day(state.rules.business_day(state.now_ms()));
        boards.set_menu(crate::domain::menu::committed(&state.shared));
        orders::kitchen_after(&rtx, None, |o, marks| {
            boards.add_initial(&o, &marks, cursor);
            true
        })?;
        let jobs = print_jobs::open(&rtx)?
            .into_iter()
            .map(|row| {
                (
                    row.job_id.clone(),
                    Open {
                        row,
                        sent_at: None,
                        first_sent: None,
                        dirty: false,
                    },
                )
            })
            .collect();
        drop(rtx);
        let missed_since = devices_missing_from(&devices, cursor);
        let mqtt = &settings.mqtt;
        Ok(Self {
            kitchen,
            client,
            site: settings.site.id.clone(),
            devices,
            boards,
            jobs,
            closed: Vec::new(),
            dirty_boards: std::collections::BTreeSet::new(),
            created_since_flush: 0,
            handled: cursor,
            handled_safe: cursor,
            acked_seq: cursor,
            stored: cursor,
            marks: std::collections::VecDeque::new(),
            deferred: std::collections::VecDeque::new(),
            alerts: Vec::new(),
            home_assistant: mqtt.home_assistant.then(|| mqtt.discovery_prefix.clone()),
            announced: std::collections::HashSet::new(),
            sounding: HashMap::new(),
            relays: Relays::default(),
            counting: None,
            counted_at: None,
            counted_seq: 0,
            flushing: None,
            counted: JobCounters::new(&state.metrics),
            bumps,
            bump_answers,
            missed_since,
            resend_due: std::collections::BTreeSet::new(),
            resend_queue: std::collections::VecDeque::new(),
            state,
        })
    }

    async fn publish(&mut self, topic: String, qos: QoS, retain: bool, payload: Vec<u8>) {
        if let Err(e) = self.client.publish(topic, qos, retain, payload).await {
            tracing::warn!(error = %e, "kitchen hub: publish failed");
        }
    }

    /// After a (re)connect: forget the old connection's counts and go back to the stored
    /// cursor. Returns the seq to read from.
    fn restart_from_cursor(&mut self) -> u64 {
        self.client.reset();
        self.marks.clear();
        self.deferred.clear();
        self.handled = self.stored;
        self.handled_safe = self.stored;
        self.acked_seq = self.stored;
        self.stored + 1
    }

    /// Whether the periodic tick has work: boards to publish, jobs out for printing (resends
    /// and timeouts), rows, alerts or a cursor not yet stored, or a truncated board whose
    /// total is to be counted again ([`Hub::recount_wanted`]). Read when the loop waits, so a
    /// count that falls due later must keep the tick running: nothing else would wake the loop.
    fn needs_tick(&self) -> bool {
        !self.dirty_boards.is_empty()
            || self.relays.pending()
            || self.counting.is_some()
            || self.recount_wanted()
            || !self.resend_due.is_empty()
            || !self.resend_queue.is_empty()
            || !self.closed.is_empty()
            || !self.alerts.is_empty()
            || !self.marks.is_empty()
            || self.acked_seq != self.stored
            || self.handled_safe != self.stored
            || self
                .jobs
                .values()
                .any(|j| j.dirty || j.row.state != JobState::Waiting)
    }

    /// Moves the acknowledged position on (called once per flush).
    fn advance_acked(&mut self) {
        let acked = self.client.acked();
        // Last flush's acknowledged position is safe now; compute this flush's.
        self.handled_safe = self.acked_seq;
        while let Some(&(seq, issued)) = self.marks.front() {
            if issued > acked {
                break;
            }
            self.acked_seq = seq;
            self.marks.pop_front();
        }
    }

    /// After every (re)connect: subscribe to what devices send, republish the retained boards
    /// and every open job.
    async fn on_connected(&mut self) {
        self.reload_devices();
        self.ensure_boards();
        for filter in topics::hub_filters(&self.site)
            .into_iter()
            .chain(relay::availability_filters().map(str::to_owned))
        {
            if let Err(e) = self.client.subscribe(filter).await {
                tracing::warn!(error = %e, "kitchen hub: subscribe failed");
            }
        }
        let stations: Vec<String> = self.boards.stations().map(str::to_owned).collect();
        for station in stations {
            self.publish_board(&station).await;
        }
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            self.send_job(&id).await;
        }
        self.discovery().await;
        tracing::info!("kitchen hub connected to the broker; boards and open jobs republished");
    }

    /// Publishes the tickets of a burst of events (every event committed by now, in seq
    /// order) and defers the rest of each event's work ([`Hub::after_tickets`]: print jobs,
    /// board, buzzers, cursor mark) to when no event waits ([`Hub::run_deferred`]). So the
    /// last ticket of a burst, as after a slow fsync, goes out before the first of its hundreds
    /// of print jobs, and a new event's tickets never wait behind an old event's jobs.
    async fn on_events(&mut self, evs: Vec<Event>) {
        // An order's allergy note follows its placement in the same transaction, so in the
        // same burst: its new tickets carry it.
        let allergies: HashMap<String, String> = evs
            .iter()
            .filter_map(|ev| match &ev.kind {
                EventKind::AllergyNoted { order_id, note, .. } => {
                    Some((order_id.clone(), note.clone()))
                }
                _ => None,
            })
            .collect();
        for ev in evs {
            // Only a cancellation and a change of lines need the order for their tickets; any
            // other status change is read later, and only if the boards do not hold it.
            let order = match &ev.kind {
                EventKind::OrderPlaced(o) => Some((**o).clone()),
                EventKind::StatusChanged {
                    order_id,
                    to: OrderStatus::Cancelled,
                    ..
                }
                | EventKind::LinesChanged { order_id, .. }
                | EventKind::LinesEdited { order_id, .. }
                | EventKind::StationDone {
                    order_id,
                    done: false,
                    ..
                } => self.order_for_boards(order_id),
                _ => None,
            };
            let mut tickets = super::tickets::ticket_events(&ev, order.as_ref());
            if !tickets.is_empty() {
                let menu = crate::domain::menu::committed(&self.state.shared);
                for t in &mut tickets {
                    if let TicketChange::New { lines } = &mut t.change {
                        super::tickets::add_allergens(lines, &menu);
                        t.allergy = allergies.get(&t.ticket).cloned();
                    }
                }
            }
            for t in &tickets {
                if let Ok(bytes) = serde_json::to_vec(t) {
                    self.publish(
                        topics::station_ticket(&self.site, &t.station),
                        QoS::AtLeastOnce,
                        false,
                        bytes,
                    )
                    .await;
                }
            }
            self.deferred
                .push_back(Deferred::After(Box::new((ev, order, tickets))));
        }
    }

    /// Everything an event causes besides its tickets, once they are out.
    async fn after_tickets(&mut self, ev: &Event, order: Option<&Order>, tickets: &[TicketEvent]) {
        // A ticket event always has its order (ticket_events returns none without it).
        if let Some(order) = order {
            for t in tickets {
                self.create_jobs(t, order, ev.seq);
            }
        }
        if let EventKind::BillPrinted(bill) = &ev.kind {
            // Rendered (and registered with a fiscal device) once, in the settings of the bill
            // station's first printer.
            let cfg = self.office_config(&bill.station);
            let data = printing::render_bill(
                bill,
                &self.state.settings,
                &cfg,
                ev.at,
                &orderd_plugins::fiscal::NotFiscal,
            );
            let copy = if bill.copy {
                PrintCopy::Reprint
            } else {
                PrintCopy::Original
            };
            let (id, number) = (
                format!("check-{}", bill.check.id),
                format!("{}-{}", bill.check.day, bill.check.number),
            );
            self.create_office_jobs(&bill.station, &data, copy, (id, number), ev.seq);
        }
        if let EventKind::DayClosed(z) = &ev.kind {
            // The Z report is printed at the bill station, like the guest checks.
            let station = self.state.rules.billing.bill_station.clone();
            let cfg = self.office_config(&station);
            let data = printing::render_z(z, &self.state.settings, &cfg);
            let id = (format!("z-{}", z.number), format!("Z {}", z.number));
            self.create_office_jobs(&station, &data, PrintCopy::Original, id, ev.seq);
        }
        self.roll_day(ev.seq);
        // Boards are coalesced: at most one publish per station per flush (100 ms), so a
        // replay after a restart does not push the whole board once per event.
        self.boards
            .set_menu(crate::domain::menu::committed(&self.state.shared));
        let changed = self.boards.apply(ev, order);
        self.ring_for(ev, &changed).await;
        self.dirty_boards.extend(changed);
        self.refill_boards(ev.seq);
        if matches!(
            ev.kind,
            EventKind::OrderPlaced(_)
                | EventKind::StatusChanged { .. }
                | EventKind::LinesChanged { .. }
                | EventKind::LinesEdited { .. }
        ) {
            self.discovery_state().await;
        }
        if matches!(ev.kind, EventKind::MenuReplaced { .. }) {
            self.ensure_boards();
        }
        self.handled = ev.seq;
        // The cursor may pass this event only once its jobs, queued just now, are issued too.
        self.deferred.push_back(Deferred::Mark(ev.seq));
        self.state
            .metrics
            .hub_seq
            .set(i64::try_from(ev.seq).unwrap_or(i64::MAX));
    }

    fn order(&self, id: &str) -> Option<Order> {
        let rtx = self.state.store.read().ok()?;
        orders::get(&rtx, id).ok().flatten().map(|s| s.order)
    }

    async fn on_tick(&mut self) {
        self.follow_counts();
        for off in self.relays.due(Instant::now()) {
            self.publish(off.topic, QoS::AtLeastOnce, false, off.payload.into_bytes())
                .await;
        }
        for dev in std::mem::take(&mut self.resend_due) {
            if let Some(from) = self.missed_since.remove(&dev) {
                self.resend_missed(&dev, from);
            }
        }
        for _ in 0..RESEND_PER_TICK {
            let Some((topic, bytes)) = self.resend_queue.pop_front() else {
                break;
            };
            self.publish(topic, QoS::AtLeastOnce, false, bytes).await;
        }
        let now = Instant::now();
        let resend = self.state.settings.kitchen.resend;
        let timeout = self.state.settings.kitchen.job_timeout;
        let mut due = Vec::new();
        let mut late = Vec::new();
        for j in self.jobs.values() {
            if j.row.state == JobState::Waiting {
                continue;
            }
            match (j.sent_at, j.first_sent) {
                (Some(last), Some(first)) => {
                    if now.duration_since(first) >= timeout {
                        late.push(j.row.job_id.clone());
                    } else if now.duration_since(last) >= resend {
                        due.push(j.row.job_id.clone());
                    }
                }
                _ => due.push(j.row.job_id.clone()),
            }
        }
        for id in late {
            self.fail_over(&id, "no_report").await;
        }
        for id in due {
            self.send_job(&id).await;
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(payload: &[u8], enc: Encoding) -> Option<T> {
    if payload.len() > 4096 {
        return None;
    }
    encoding::decode(payload, enc).ok()
}
