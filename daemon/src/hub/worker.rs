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
use crate::config::KitchenConfig;
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
    cfg: KitchenConfig,
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
        let mqtt = &settings.raw.mqtt;
        Ok(Self {
            kitchen,
            client,
            site: settings.raw.site.id.clone(),
            cfg: settings.raw.kitchen.clone(),
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

    fn reload_devices(&mut self) {
        let Ok(rtx) = self.state.store.read() else {
            return;
        };
        if let Ok(list) = devices::list(&rtx) {
            self.devices = list.into_iter().map(|d| (d.id.clone(), d)).collect();
            let devices = &self.devices;
            self.sounding.retain(|id, _| devices.contains_key(id));
        }
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
        let prefix = topics::site_prefix(&self.site);
        for filter in [
            format!("{prefix}/station/+/bump"),
            format!("{prefix}/printer/+/job/status"),
            format!("{prefix}/device/+/availability"),
            format!("{prefix}/device/+/state"),
        ]
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

    /// Gives every station of the menu and of the registered devices a board, so displays
    /// of a quiet station show an empty board instead of nothing; new ones are marked dirty.
    fn ensure_boards(&mut self) {
        let menu = crate::domain::menu::committed(&self.state.shared);
        let stations = menu
            .categories
            .iter()
            .flat_map(|c| c.items.iter().map(|i| i.station.clone()))
            .chain(
                self.devices
                    .values()
                    .flat_map(|d| d.stations.iter().cloned()),
            )
            .collect::<std::collections::BTreeSet<String>>();
        for station in stations {
            if self.boards.ensure(&station) {
                self.dirty_boards.insert(station);
            }
        }
    }

    async fn publish_dirty_boards(&mut self) {
        for station in std::mem::take(&mut self.dirty_boards) {
            self.publish_board(&station).await;
        }
    }

    async fn publish_board(&mut self, station: &str) {
        match self.boards.board_json(station) {
            Ok(bytes) => {
                self.publish(
                    topics::station_board(&self.site, station),
                    QoS::AtLeastOnce,
                    true,
                    bytes,
                )
                .await;
            }
            Err(e) => tracing::error!(error = %e, "board not encodable"),
        }
        if let Ok(bytes) = serde_json::to_vec(&self.boards.compact_board(station)) {
            self.publish(
                topics::station_board_compact(&self.site, station),
                QoS::AtLeastOnce,
                true,
                bytes,
            )
            .await;
        }
    }

    // ----- events -----

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

    /// At a new business day the kitchen views start over: orders left open from earlier days
    /// leave the boards (never closed by this; they are listed for the manager,
    /// `GET /api/v1/orders/left-open`). Checked as events arrive, so an idle box's boards roll
    /// over with the day's first event.
    fn roll_day(&mut self, seq: u64) {
        let today = self.state.rules.business_day(self.state.now_ms());
        if today <= self.boards.min_day() {
            return;
        }
        let Ok(rtx) = self.state.store.read() else {
            return;
        };
        let mut boards = Boards::default().with_min_day(today);
        boards.set_menu(crate::domain::menu::committed(&self.state.shared));
        let loaded = orders::kitchen_after(&rtx, None, |o, marks| {
            boards.add_initial(&o, &marks, seq);
            true
        });
        if loaded.is_err() {
            return;
        }
        let stations: Vec<String> = self
            .boards
            .stations()
            .chain(boards.stations())
            .map(str::to_owned)
            .collect();
        self.boards = boards;
        for station in stations {
            self.boards.ensure(&station);
            self.dirty_boards.insert(station);
        }
        tracing::info!(
            business_day = today,
            "a new business day: the kitchen boards start over"
        );
    }

    /// Boards that lost a ticket while more waited in the store take the next open orders
    /// from the store's active index, oldest first (the boards hold only what they show).
    fn refill_boards(&mut self, seq: u64) {
        let stations = self.boards.take_refills();
        if stations.is_empty() {
            return;
        }
        let Ok(rtx) = self.state.store.read() else {
            return;
        };
        for station in stations {
            let after = self
                .boards
                .newest_held(&station)
                .and_then(|id| crate::domain::parse_id(&id));
            let mut room = true;
            let boards = &mut self.boards;
            let read = orders::kitchen_after(&rtx, after, |o, marks| {
                room = boards.fill(&station, &o, &marks, seq);
                room
            });
            if read.is_ok() && room {
                self.boards.filled(&station);
            }
            self.dirty_boards.insert(station);
        }
    }

    fn order(&self, id: &str) -> Option<Order> {
        let rtx = self.state.store.read().ok()?;
        orders::get(&rtx, id).ok().flatten().map(|s| s.order)
    }

    /// The order an event is about, for the boards: with its kitchen marks recorded (so that
    /// a board of a station that bumped it does not show it again, and its tickets carry its
    /// allergy note).
    fn order_for_boards(&mut self, id: &str) -> Option<Order> {
        let rtx = self.state.store.read().ok()?;
        let stored = orders::get(&rtx, id).ok().flatten()?;
        self.boards
            .set_marks(&stored.order, &stored.kitchen_marks());
        Some(stored.order)
    }

    /// The ticket's bytes: its lines; for a cancellation the order's lines at the station under
    /// a CANCELLED banner; for a change the changed lines under a CHANGED banner.
    fn render(
        &self,
        t: &TicketEvent,
        order: &Order,
        copy: PrintCopy,
        cfg: &orderd_plugins::escpos::EscPosConfig,
    ) -> Vec<u8> {
        let (lines, note, banner) = match &t.change {
            TicketChange::New { lines } => (lines.clone(), order.note.clone(), None),
            TicketChange::Cancelled { reason } => (
                station_lines(order).remove(&t.station).unwrap_or_default(),
                reason.as_ref().map(|r| format!("Reason: {r}")),
                Some("CANCELLED"),
            ),
            // A change slip: each changed line at its new quantity, the old one and the line's
            // own note (from the order, when the line is still there) in its note.
            TicketChange::Changed { deltas } => (
                deltas
                    .iter()
                    .map(|d| {
                        let own = order
                            .items
                            .iter()
                            .find(|l| {
                                l.item_id == d.item_id
                                    && l.station == t.station
                                    && d.name.starts_with(l.name.as_str())
                            })
                            .and_then(|l| l.note.clone());
                        let was = if d.new_quantity == 0 {
                            format!("REMOVED (was {})", d.old_quantity)
                        } else {
                            format!("was {}", d.old_quantity)
                        };
                        TicketLine {
                            item_id: d.item_id.clone(),
                            name: d.name.clone(),
                            quantity: d.new_quantity,
                            modifiers: Vec::new(),
                            note: Some(match own {
                                Some(n) => format!("{was}; {n}"),
                                None => was,
                            }),
                            allergens: Vec::new(),
                        }
                    })
                    .collect(),
                None,
                Some("CHANGED"),
            ),
        };
        let mut lines = lines;
        super::tickets::add_allergens(
            &mut lines,
            &crate::domain::menu::committed(&self.state.shared),
        );
        printing::render(
            order,
            &t.station,
            &lines,
            printing::Slip {
                note: note.as_deref(),
                // A new ticket carries it; a cancel or change slip needs none.
                allergy: t.allergy.as_deref(),
                copy,
                banner,
            },
            cfg,
            &self.state.settings.time_zone,
        )
    }

    /// One job per printer of the ticket's station (its backups only if it has no main one).
    /// The jobs are created now and handed to the broker later ([`Hub::run_deferred`]), after
    /// the tickets of every event that is ready.
    fn create_jobs(&mut self, t: &TicketEvent, order: &Order, seq: u64) {
        let printers = printing::ticket_printers(self.devices.values(), &t.station);
        if printers.is_empty() {
            return;
        }
        // Each printer in its own code page and width; printers alike share one rendering.
        for (cfg, printers) in printing::by_config(&self.cfg, &self.devices, printers) {
            let data = self.render(t, order, PrintCopy::Original, &cfg);
            let ids = (t.ticket.clone(), t.number.clone());
            self.queue_jobs(printers, &t.station, &data, PrintCopy::Original, ids, seq);
        }
    }

    /// How a station's slips that are rendered once (guest checks, Z reports) are rendered:
    /// in the settings of its first printer.
    fn office_config(&self, station: &str) -> orderd_plugins::escpos::EscPosConfig {
        let first = printing::ticket_printers(self.devices.values(), station)
            .into_iter()
            .next();
        printing::printer_config(&self.cfg, first.and_then(|p| self.devices.get(&p)))
    }

    /// One job per printer of a station (its backups only if it has none) for a slip that is
    /// not a kitchen ticket — a guest check or a Z report — through the same exactly-once path
    /// as tickets.
    fn create_office_jobs(
        &mut self,
        station: &str,
        data: &[u8],
        copy: PrintCopy,
        ids: (String, String),
        seq: u64,
    ) {
        let printers = printing::ticket_printers(self.devices.values(), station);
        if printers.is_empty() {
            tracing::warn!(station, what = %ids.0, "no printer at this station for the slip");
            return;
        }
        self.queue_jobs(printers, station, data, copy, ids, seq);
    }

    /// Creates a job of `data` for each printer, with a deterministic id (handling the same
    /// event again recreates the same id, so nothing prints twice); the jobs are handed to the
    /// broker later ([`Hub::run_deferred`]), after the tickets of every event that is ready.
    fn queue_jobs(
        &mut self,
        printers: Vec<String>,
        station: &str,
        data: &[u8],
        copy: PrintCopy,
        (order_id, order_number): (String, String),
        seq: u64,
    ) {
        let now = self.state.now_ms();
        for printer in printers {
            let job_id = format!("{seq}-{station}-{printer}");
            if self.jobs.contains_key(&job_id) {
                continue;
            }
            self.created_since_flush += 1;
            let row = PrintJobRow {
                job_id: job_id.clone(),
                order_id: order_id.clone(),
                order_number: order_number.clone(),
                station: station.to_owned(),
                printer,
                copy,
                format: PrintFormat::EscPos,
                data: data.to_vec(),
                state: JobState::Sent,
                report: None,
                replaced_by: None,
                replaces: None,
                created_at: now,
                updated_at: now,
            };
            self.jobs.insert(
                job_id.clone(),
                Open {
                    row,
                    sent_at: None,
                    first_sent: None,
                    dirty: true,
                },
            );
            self.deferred.push_back(Deferred::Job(job_id));
        }
    }

    /// Works through up to `max` deferred entries in order: an event's work besides its
    /// tickets, a new job for the broker (skipped if it was sent meanwhile, by a reconnect or
    /// a resend, or closed by a failover), a cursor mark that waited for them.
    async fn run_deferred(&mut self, max: usize) {
        for _ in 0..max {
            match self.deferred.pop_front() {
                Some(Deferred::Job(id)) => {
                    let Some(printer) = self
                        .jobs
                        .get(&id)
                        .filter(|j| j.sent_at.is_none())
                        .map(|j| j.row.printer.clone())
                    else {
                        continue;
                    };
                    // Known to be down — it said offline (or its last will did), or it reports
                    // paper out, cover open or an error: straight to the backup, or parked
                    // until it is back, instead of waiting out the silence timeout with every
                    // new ticket (issue #24). A printer never heard from is tried as before.
                    let h: DeviceHealth = self.kitchen.health_of(&printer);
                    let down = if !h.online && h.last_seen.is_some() {
                        Some("offline".to_owned())
                    } else {
                        h.state.filter(|s| s != "ready" && s != "paper_low")
                    };
                    match down {
                        None => self.send_job(&id).await,
                        Some(reason) => self.fail_over(&id, &reason).await,
                    }
                }
                Some(Deferred::After(work)) => {
                    let (ev, mut order, tickets) = *work;
                    // A status change the boards cannot apply alone (the order is not on
                    // them, as after a recall) reads the order; the usual one does not.
                    if let EventKind::StatusChanged { order_id, .. } = &ev.kind
                        && order.is_none()
                        && !self.boards.holds(order_id)
                    {
                        order = self.order_for_boards(order_id);
                    }
                    self.after_tickets(&ev, order.as_ref(), &tickets).await;
                }
                Some(Deferred::Mark(seq)) => self.marks.push_back((seq, self.client.issued())),
                None => return,
            }
        }
    }

    async fn send_job(&mut self, id: &str) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        let encoding = self
            .devices
            .get(&job.row.printer)
            .map_or(Encoding::Json, |d| d.encoding);
        // The ticket's bytes are lent to the wire message and put back (not copied).
        let mut wire = PrintJob {
            version: FORMAT_VERSION,
            job_id: job.row.job_id.clone(),
            order: job.row.order_number.clone(),
            copy: job.row.copy,
            format: job.row.format,
            data: std::mem::take(&mut job.row.data),
        };
        let encoded = encoding::encode(&wire, encoding);
        job.row.data = std::mem::take(&mut wire.data);
        let topic = topics::printer_job(&self.site, &job.row.printer);
        let Ok(bytes) = encoded else {
            return;
        };
        self.publish(topic, QoS::AtLeastOnce, false, bytes).await;
        let now = Instant::now();
        if let Some(job) = self.jobs.get_mut(id) {
            if job.sent_at.is_some() {
                self.counted.resent.inc();
            } else {
                self.counted.sent.inc();
            }
            job.sent_at = Some(now);
            job.first_sent.get_or_insert(now);
            if job.row.state == JobState::Queued {
                job.row.state = JobState::Sent;
                job.dirty = true;
            }
        }
    }

    /// Rings the buzzers of the stations whose board the event changed: a new order's, or
    /// an order's that became ready (not by a recall).
    async fn ring_for(&mut self, ev: &Event, stations: &[String]) {
        if matches!(ev.kind, EventKind::BillRequested { .. }) {
            // A guest asks for the bill: the buzzer at the bill station calls the waiter.
            let station = self.state.rules.billing.bill_station.clone();
            self.buzz(&station, BuzzPattern::Triple).await;
            return;
        }
        let which = match &ev.kind {
            EventKind::OrderPlaced(_) => Some(true),
            EventKind::StatusChanged {
                to: OrderStatus::Ready,
                recall: false,
                ..
            } => Some(false),
            _ => None,
        };
        let Some(new_order) = which else { return };
        for station in stations {
            let buzz = &self.state.settings.buzz;
            let pattern = if new_order {
                buzz.new_order(station)
            } else {
                buzz.ready(station)
            };
            self.buzz(station, pattern).await;
        }
    }

    /// Rings the buzzers of a station (and buzzers that serve every station). A buzzer is not
    /// sent a pattern again while the same pattern, sent before, still sounds.
    async fn buzz(&mut self, station: &str, pattern: BuzzPattern) {
        let duration_ms = if matches!(pattern, BuzzPattern::Long | BuzzPattern::Alarm) {
            1500
        } else {
            300
        };
        let set = BuzzerSet {
            version: FORMAT_VERSION,
            pattern,
            duration_ms,
        };
        let now = Instant::now();
        let until = now + Duration::from_millis(u64::from(duration_ms));
        let buzzers: Vec<(String, Encoding, Flavour)> = self
            .devices
            .values()
            .filter(|d| {
                d.kind == DeviceKind::Buzzer
                    && (d.stations.is_empty() || d.stations.iter().any(|s| s == station))
                    && self
                        .sounding
                        .get(&d.id)
                        .and_then(|rings| rings.get(&pattern))
                        .is_none_or(|end| now >= *end)
            })
            .map(|d| (d.id.clone(), d.encoding, d.flavour))
            .collect();
        for (id, enc, flavour) in buzzers {
            if flavour.is_relay() {
                let (msgs, sounds) = self.relays.ring(flavour, &id, pattern, &self.site, now);
                for m in msgs {
                    self.publish(m.topic, QoS::AtMostOnce, false, m.payload.into_bytes())
                        .await;
                }
                self.sounding
                    .entry(id)
                    .or_default()
                    .insert(pattern, now + sounds);
            } else if let Ok(bytes) = encoding::encode(&set, enc) {
                self.publish(
                    topics::buzzer_set(&self.site, &id),
                    QoS::AtMostOnce,
                    false,
                    bytes,
                )
                .await;
                self.sounding.entry(id).or_default().insert(pattern, until);
            }
        }
    }

    // ----- inbound -----

    async fn on_message(&mut self, topic: &str, payload: &Bytes) {
        let Some(parsed) = Topic::parse(&self.site, topic) else {
            if let Some((dev, flavour, online)) = relay::availability(topic, payload) {
                self.on_relay_availability(dev, flavour, online).await;
            }
            return;
        };
        let now = self.state.now_ms();
        match parsed {
            Topic::PrinterJobStatus(dev) => {
                self.seen(dev, now);
                let enc = self.devices.get(dev).map_or(Encoding::Json, |d| d.encoding);
                match decode::<JobStatus>(payload, enc) {
                    Some(status) => self.on_job_status(dev, status).await,
                    None => self.malformed(dev, topic),
                }
            }
            Topic::StationBump(station) => {
                let enc = self
                    .devices
                    .values()
                    .find(|d| {
                        d.kind == DeviceKind::BumpBar && d.stations.iter().any(|s| s == station)
                    })
                    .map(|d| d.encoding);
                let Some(enc) = enc else {
                    tracing::warn!(
                        station,
                        "bump dropped: no bump bar is registered for this station"
                    );
                    return;
                };
                if let Some(bump) = decode::<Bump>(payload, enc) {
                    self.on_bump(station, bump);
                } else {
                    self.malformed(station, topic);
                    let _ = self.bump_answers.send((
                        station.to_owned(),
                        BumpResult {
                            version: FORMAT_VERSION,
                            ticket: String::new(),
                            action: None,
                            ok: false,
                            code: "bad_payload".into(),
                            message: "the bump could not be read: send {\"version\":1,\"ticket\":…,\"action\":\"bump\" or \"recall\"}".into(),
                        },
                    ));
                }
            }
            Topic::DeviceAvailability(dev) => match Availability::parse(payload) {
                Some(a) => {
                    self.on_availability(dev, a == Availability::Online, now)
                        .await;
                }
                None => self.malformed(dev, topic),
            },
            Topic::DeviceState(dev) => match DeviceState::parse(payload) {
                Some(s) => self.on_state(dev, &s, now).await,
                None => self.malformed(dev, topic),
            },
            _ => {}
        }
    }

    fn malformed(&self, device: &str, topic: &str) {
        self.state.metrics.mqtt_malformed.inc();
        tracing::warn!(device, topic, "malformed MQTT payload dropped");
    }

    fn seen(&self, dev: &str, now: u64) {
        self.kitchen.update_health(dev, now, |_| ());
    }

    async fn on_job_status(&mut self, dev: &str, status: JobStatus) {
        let Some(job) = self.jobs.get_mut(&status.job_id) else {
            return; // already closed: a repeat report
        };
        if job.row.printer != dev {
            tracing::warn!(device = dev, job = %status.job_id, "job report from a printer that does not own the job; dropped");
            return;
        }
        match status.status {
            Reported::Printed => {
                job.row.state = JobState::Printed;
                job.row.report = Some("printed".into());
                job.row.updated_at = self.state.now_ms();
                job.dirty = true;
                self.counted.printed.inc();
            }
            other => {
                let state = match other {
                    Reported::PaperOut => DeviceState::PaperOut,
                    Reported::CoverOpen => DeviceState::CoverOpen,
                    _ => DeviceState::Other("error".into()),
                };
                self.fail_over(&status.job_id, state.as_str()).await;
                // A printer that failed a job for paper, cover or an error is in that state
                // until it says otherwise (or prints): new tickets skip it meanwhile.
                let now = self.state.now_ms();
                self.on_state(dev, &state, now).await;
            }
        }
    }

    /// A bump or recall from a bump bar authorised for `station` (the broker checked the
    /// topic), handed to [`write_bumps`]: the hub's loop keeps publishing tickets meanwhile,
    /// and the change comes back through the event log like any other.
    fn on_bump(&self, station: &str, bump: Bump) {
        if let Err(e) = self.bumps.try_send((station.to_owned(), bump)) {
            tracing::warn!(
                station,
                "bump dropped: too many bumps waiting to be written"
            );
            let (_, bump) = e.into_inner();
            let _ = self.bump_answers.send((
                station.to_owned(),
                BumpResult {
                    version: FORMAT_VERSION,
                    ticket: bump.ticket,
                    action: Some(bump.action),
                    ok: false,
                    code: "busy".into(),
                    message: "too many bumps at once; press again".into(),
                },
            ));
        }
    }

    /// Publishes the answer to a bump to the station's bump bars, in their encoding.
    async fn answer_bump(&mut self, station: &str, answer: &BumpResult) {
        let enc = self
            .devices
            .values()
            .find(|d| d.kind == DeviceKind::BumpBar && d.stations.iter().any(|s| s == station))
            .map_or(Encoding::Json, |d| d.encoding);
        if let Ok(bytes) = encoding::encode(answer, enc) {
            self.publish(
                topics::station_bump_result(&self.site, station),
                QoS::AtLeastOnce,
                false,
                bytes,
            )
            .await;
        }
    }

    /// A relay's own availability message, taken only from a registered relay of that flavour.
    async fn on_relay_availability(&mut self, dev: &str, flavour: Flavour, online: bool) {
        let registered = |devices: &BTreeMap<String, Device>| {
            devices
                .get(dev)
                .is_some_and(|d| d.kind == DeviceKind::Buzzer && d.flavour == flavour)
        };
        if !registered(&self.devices) {
            self.reload_devices();
            if !registered(&self.devices) {
                return;
            }
        }
        let now = self.state.now_ms();
        self.on_availability(dev, online, now).await;
    }

    async fn on_availability(&mut self, dev: &str, online: bool, now: u64) {
        if self
            .devices
            .get(dev)
            .is_some_and(|d| d.kind == DeviceKind::Display)
        {
            if online {
                if self.missed_since.contains_key(dev) {
                    self.resend_due.insert(dev.to_owned());
                }
            } else {
                self.missed_since
                    .entry(dev.to_owned())
                    .or_insert(self.handled);
                self.resend_due.remove(dev);
            }
        }
        let changed = self.kitchen.update_health(dev, now, |h| {
            let changed = h.online != online;
            h.online = online;
            changed.then(|| h.state.clone().unwrap_or_default())
        });
        self.state
            .metrics
            .device_online
            .get_or_create(&DeviceLabels {
                device: dev.to_owned(),
            })
            .set(i64::from(online));
        let Some(state) = changed else { return };
        tracing::info!(device = dev, online, "kitchen device availability changed");
        self.alerts.push(EventKind::DeviceStatus {
            device: dev.to_owned(),
            online,
            state,
        });
        if !self.devices.contains_key(dev) {
            self.reload_devices();
            self.ensure_boards();
        }
        if online {
            self.resume(dev).await;
        } else {
            self.fail_all(dev, "offline").await;
        }
        self.discovery_device(dev).await;
    }

    async fn on_state(&mut self, dev: &str, s: &DeviceState, now: u64) {
        let changed = self.kitchen.update_health(dev, now, |h| {
            let changed = h.state.as_deref() != Some(s.as_str());
            h.state = Some(s.as_str().to_owned());
            changed.then_some(h.online)
        });
        let Some(online) = changed else { return };
        self.alerts.push(EventKind::DeviceStatus {
            device: dev.to_owned(),
            online,
            state: s.as_str().to_owned(),
        });
        if s.can_print() {
            self.resume(dev).await;
        } else {
            self.fail_all(dev, s.as_str()).await;
        }
    }

    fn printer_ok(&self, id: &str) -> bool {
        let h: DeviceHealth = self.kitchen.health_of(id);
        h.online && h.state.as_deref().is_none_or(|s| s == "ready")
    }

    /// The printer is ready again: send its waiting jobs now.
    async fn resume(&mut self, dev: &str) {
        for id in self.jobs_of(dev) {
            if let Some(j) = self.jobs.get_mut(&id) {
                j.first_sent = None;
                if j.row.state == JobState::Waiting {
                    j.row.state = JobState::Sent;
                    j.dirty = true;
                }
            }
            self.send_job(&id).await;
        }
    }

    /// Ids of the open jobs of one printer, oldest first: a printer that comes back prints its
    /// queue in the order the tickets were made.
    fn jobs_of(&self, dev: &str) -> Vec<String> {
        let mut jobs: Vec<(u64, &str)> = self
            .jobs
            .values()
            .filter(|j| j.row.printer == dev)
            .map(|j| (j.row.created_at, j.row.job_id.as_str()))
            .collect();
        jobs.sort_unstable();
        jobs.into_iter().map(|(_, id)| id.to_owned()).collect()
    }

    async fn fail_all(&mut self, dev: &str, reason: &str) {
        for id in self.jobs_of(dev) {
            self.fail_over(&id, reason).await;
        }
    }

    /// Moves a job to a working backup printer of its station, or parks it until its printer
    /// is back. Raises an alert either way (once per job).
    async fn fail_over(&mut self, id: &str, reason: &str) {
        let Some(job) = self.jobs.get(id) else { return };
        let from = job.row.printer.clone();
        let station = job.row.station.clone();
        let already_waiting = job.row.state == JobState::Waiting;
        let is_backup = self.devices.get(&from).is_some_and(|d| d.backup);
        let backup = if is_backup {
            None
        } else {
            printing::printers(self.devices.values(), &station, true)
                .into_iter()
                .find(|d| d.id != from && self.printer_ok(&d.id))
                .map(|d| d.id.clone())
        };
        let now = self.state.now_ms();
        if let Some(to) = backup {
            {
                let Some(mut old) = self.jobs.remove(id) else {
                    return;
                };
                let new_id = format!("{id}~{to}");
                // Re-render as a REPRINT: same ticket, marked so the kitchen knows.
                let data = reprint_bytes(&old.row.data);
                let row = PrintJobRow {
                    job_id: new_id.clone(),
                    printer: to.clone(),
                    copy: PrintCopy::Reprint,
                    data,
                    state: JobState::Sent,
                    report: None,
                    replaced_by: None,
                    replaces: Some(id.to_owned()),
                    created_at: now,
                    updated_at: now,
                    ..old.row.clone()
                };
                old.row.state = JobState::FailedOver;
                old.row.replaced_by = Some(new_id.clone());
                old.row.report = Some(reason.to_owned());
                old.row.updated_at = now;
                self.closed.push(old.row);
                self.jobs.insert(
                    new_id.clone(),
                    Open {
                        row,
                        sent_at: None,
                        first_sent: None,
                        dirty: true,
                    },
                );
                self.counted.failed_over.inc();
                tracing::warn!(job = id, from = %from, to = %to, reason, "print job failed over to the backup printer");
                self.alerts.push(EventKind::PrintFailover {
                    job_id: id.to_owned(),
                    order_id: self.jobs[&new_id].row.order_id.clone(),
                    station: station.clone(),
                    from,
                    to: Some(to),
                    reason: reason.to_owned(),
                });
                self.send_job(&new_id).await;
            }
        } else {
            {
                if already_waiting {
                    return;
                }
                if reason == "no_report" {
                    // The printer may be alive but slow or deaf: keep resending (same id),
                    // alert once, and time out again only after another full period.
                    let Some(j) = self.jobs.get_mut(id) else {
                        return;
                    };
                    j.first_sent = None;
                    if j.row.report.as_deref() == Some("no_report") {
                        return;
                    }
                    j.row.report = Some(reason.to_owned());
                    j.row.updated_at = now;
                    j.dirty = true;
                } else if let Some(j) = self.jobs.get_mut(id) {
                    j.row.state = JobState::Waiting;
                    j.row.report = Some(reason.to_owned());
                    j.row.updated_at = now;
                    j.dirty = true;
                }
                tracing::warn!(job = id, printer = %from, reason, "print job waits: its printer cannot print and no backup can");
                self.alerts.push(EventKind::PrintFailover {
                    job_id: id.to_owned(),
                    order_id: self.jobs[id].row.order_id.clone(),
                    station: station.clone(),
                    from,
                    to: None,
                    reason: reason.to_owned(),
                });
            }
        }
        let alarm = self.state.settings.buzz.alert;
        self.buzz(&station, alarm).await;
    }

    // ----- timers and durability -----

    /// Queues for a display that is back the tickets it may have missed since event `from`: those
    /// of the events after it that the hub has published, at its stations, for orders still
    /// open (a display drops a repeat by its seq), then its boards again. Tickets cannot be lost
    /// between a restart of the box, or a display's reconnect, and its subscription.
    fn resend_missed(&mut self, dev: &str, from: u64) {
        let Some(stations) = self.devices.get(dev).map(|d| d.stations.clone()) else {
            return;
        };
        let first = (from + 1).max((self.handled + 1).saturating_sub(RESEND_MAX_EVENTS as u64));
        let events = match self.state.events.read(first, RESEND_MAX_EVENTS) {
            Ok(evs) => evs,
            Err(e) => {
                tracing::warn!(device = dev, error = %e, "could not read the missed tickets");
                return;
            }
        };
        let mut sent = 0usize;
        let mut open: HashMap<String, bool> = HashMap::new();
        let handled = self.handled;
        for ev in events.iter().filter(|e| e.seq <= handled) {
            let order = match &ev.kind {
                EventKind::OrderPlaced(o) => Some((**o).clone()),
                EventKind::LinesChanged { order_id, .. }
                | EventKind::LinesEdited { order_id, .. } => self.order(order_id),
                _ => None,
            };
            for t in super::tickets::ticket_events(ev, order.as_ref()) {
                if !stations.contains(&t.station) {
                    continue;
                }
                let still_open = *open.entry(t.ticket.clone()).or_insert_with(|| {
                    self.boards.holds(&t.ticket)
                        || self.order(&t.ticket).is_some_and(|o| !o.status.is_final())
                });
                if !still_open {
                    continue;
                }
                if let Ok(bytes) = serde_json::to_vec(&t) {
                    self.resend_queue
                        .push_back((topics::station_ticket(&self.site, &t.station), bytes));
                    sent += 1;
                }
            }
        }
        tracing::info!(
            device = dev,
            from,
            tickets = sent,
            "display back: missed tickets to send again"
        );
        self.dirty_boards.extend(stations);
    }

    /// Whether a truncated board's total is to be counted again, now or when
    /// [`RECOUNT_EVERY`] has passed: events came since the last count (an idle kitchen's
    /// totals stand, and its store is not read every 10 s).
    fn recount_wanted(&self) -> bool {
        self.boards.any_truncated()
            && (self.counted_at.is_none() || self.handled > self.counted_seq)
    }

    /// Whether a truncated board's total should be counted again.
    fn count_due(&self) -> bool {
        self.counted_at.is_none_or(|t| t.elapsed() >= RECOUNT_EVERY)
    }

    /// Starts a count of the open tickets per station in the store, off the hub's loop, or
    /// takes its result: the truncated boards get their `total`.
    fn follow_counts(&mut self) {
        if let Some(rx) = &mut self.counting {
            match rx.try_recv() {
                Ok(counts) => {
                    self.counting = None;
                    let changed = self.boards.set_counts(&counts);
                    self.dirty_boards.extend(changed);
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => self.counting = None,
            }
            return;
        }
        if !self.recount_wanted() || !self.count_due() {
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let store = self.state.store.clone();
        let min_day = self.boards.min_day();
        tokio::task::spawn_blocking(move || {
            if let Ok(counts) = store
                .read()
                .map_err(|e| e.to_string())
                .and_then(|rtx| count_open(&rtx, min_day).map_err(|e| e.to_string()))
            {
                let _ = tx.send(counts);
            }
        });
        self.counting = Some(rx);
        self.counted_at = Some(Instant::now());
        self.counted_seq = self.handled;
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
        let resend = Duration::from_secs(self.cfg.resend_secs);
        let timeout = Duration::from_secs(self.cfg.job_timeout_secs);
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

    /// Reprints and other jobs queued in the store by the API.
    async fn load_queued(&mut self) {
        let Ok(rtx) = self.state.store.read() else {
            return;
        };
        let Ok(open) = print_jobs::open(&rtx) else {
            return;
        };
        drop(rtx);
        self.reload_devices();
        for row in open {
            if self.jobs.contains_key(&row.job_id) {
                continue;
            }
            let id = row.job_id.clone();
            self.jobs.insert(
                id.clone(),
                Open {
                    row,
                    sent_at: None,
                    first_sent: None,
                    dirty: false,
                },
            );
            self.send_job(&id).await;
        }
    }

    /// Starts storing changed jobs, alerts and the cursor in one write; `None` if there is
    /// nothing to store. The caller awaits the task and hands its result to
    /// [`Hub::flush_done`]; only one flush is under way at a time.
    fn start_flush(&mut self) -> Option<FlushTask> {
        let mut rows = Vec::new();
        let mut ids = Vec::new();
        for (id, job) in &mut self.jobs {
            if job.dirty {
                rows.push(job.row.clone());
                ids.push(id.clone());
                job.dirty = false;
            }
        }
        let closed = std::mem::take(&mut self.closed);
        rows.extend(closed.iter().cloned());
        self.advance_acked();
        if rows.is_empty() && self.alerts.is_empty() && self.handled_safe == self.stored {
            return None;
        }
        let alerts = std::mem::take(&mut self.alerts);
        let to_emit = alerts.clone();
        let seq = self.handled_safe.max(self.stored);
        let state = Arc::clone(&self.state);
        let task = tokio::spawn(async move {
            // No client waits on it: it rides along with the next orders, or goes in a quiet
            // moment, never as a second sync in front of an order.
            state
                .writer
                .run_background(move |tx| {
                    for row in &rows {
                        let existing = print_jobs::get_tx(tx, &row.job_id)?;
                        // Never reopen a job the store already has as closed.
                        if existing.is_some_and(|e| !e.state.is_open()) {
                            continue;
                        }
                        print_jobs::put(tx, row)?;
                    }
                    for kind in to_emit {
                        tx.emit(kind)?;
                    }
                    tx.cursors.insert(CONSUMER, seq)?;
                    Ok(())
                })
                .await
        });
        self.created_since_flush = 0;
        self.flushing = Some(Flushing {
            seq,
            ids,
            closed,
            alerts,
        });
        Some(task)
    }

    /// Takes the outcome of a flush's write: on success the cursor is stored and closed jobs
    /// leave memory; on failure what it carried is marked to be stored by the next flush.
    fn flush_done(
        &mut self,
        result: Result<Result<(), crate::error::AppError>, tokio::task::JoinError>,
    ) {
        let Some(done) = self.flushing.take() else {
            return;
        };
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.message),
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = failure {
            tracing::error!(error = %message, "kitchen hub: storing jobs failed; will retry");
            for id in &done.ids {
                if let Some(job) = self.jobs.get_mut(id) {
                    job.dirty = true;
                }
            }
            self.closed.extend(done.closed);
            let newer = std::mem::replace(&mut self.alerts, done.alerts);
            self.alerts.extend(newer);
            return;
        }
        self.stored = self.stored.max(done.seq);
        // A closed job whose last state is stored leaves memory; one changed since waits for
        // the next flush. A job is closed only by a change, so it is among the stored ones.
        for id in &done.ids {
            if self
                .jobs
                .get(id)
                .is_some_and(|j| !j.row.state.is_open() && !j.dirty)
            {
                self.jobs.remove(id);
            }
        }
        self.state
            .metrics
            .print_jobs_open
            .set(i64::try_from(self.jobs.len()).unwrap_or(i64::MAX));
    }

    // ----- Home Assistant -----

    async fn discovery(&mut self) {
        let Some(prefix) = self.home_assistant.clone() else {
            return;
        };
        let site = self.site.clone();
        let device = serde_json::json!({"identifiers": [format!("orderd_{site}")], "name": format!("orderd {site}")});
        let mut configs = vec![(
            format!("{prefix}/sensor/orderd_{site}/open_orders/config"),
            serde_json::json!({
                "name": "Open orders",
                "unique_id": format!("orderd_{site}_open_orders"),
                "state_topic": format!("{}/hub/open_orders", topics::site_prefix(&site)),
                "availability_topic": topics::hub_status(&site),
                "payload_available": "online",
                "payload_not_available": "offline",
                "unit_of_measurement": "orders",
                "device": device,
            }),
        )];
        self.announced = self.devices.keys().cloned().collect();
        for d in self
            .devices
            .values()
            .filter(|d| d.kind != DeviceKind::HomeAssistant)
        {
            configs.push((
                format!("{prefix}/binary_sensor/orderd_{site}/{}/config", d.id),
                serde_json::json!({
                    "name": format!("{} online", d.id),
                    "unique_id": format!("orderd_{site}_{}_online", d.id),
                    "state_topic": topics::device_availability(&site, &d.id),
                    "payload_on": "online",
                    "payload_off": "offline",
                    "device_class": "connectivity",
                    "device": device,
                }),
            ));
        }
        for (topic, config) in configs {
            self.publish(
                topic,
                QoS::AtLeastOnce,
                true,
                config.to_string().into_bytes(),
            )
            .await;
        }
        self.discovery_state().await;
    }

    async fn discovery_state(&mut self) {
        if self.home_assistant.is_none() {
            return;
        }
        // Every open order, not only those the boards hold.
        let open = self
            .state
            .store
            .read()
            .ok()
            .and_then(|rtx| {
                redb::ReadableTableMetadata::len(
                    &rtx.open_table(crate::store::tables::IDX_ACTIVE).ok()?,
                )
                .ok()
            })
            .unwrap_or(0);
        self.publish(
            format!("{}/hub/open_orders", topics::site_prefix(&self.site)),
            QoS::AtMostOnce,
            true,
            open.to_string().into_bytes(),
        )
        .await;
    }

    async fn discovery_device(&mut self, dev: &str) {
        // Home Assistant reads availability straight from the device's own retained topic;
        // only a device without a config yet needs one now.
        if self.home_assistant.is_some() && !self.announced.contains(dev) {
            self.discovery().await;
        }
    }
}

/// Writes bump-bar presses, those of the same `BUMP_WINDOW` in one write transaction (one
/// fsync instead of one each). Each is read, checked and applied in that transaction
/// ([`orders::bump`]), in the order pressed; a refused one is logged and skips only itself.
/// Ends when the hub drops its sender.
async fn write_bumps(
    state: AppStateRef,
    mut rx: tokio::sync::mpsc::Receiver<(String, Bump)>,
    answers: tokio::sync::mpsc::UnboundedSender<(String, BumpResult)>,
) {
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(BUMP_WINDOW).await;
        let mut batch = vec![first];
        while batch.len() < MAX_BUMPS_PER_WRITE {
            match rx.try_recv() {
                Ok(b) => batch.push(b),
                Err(_) => break,
            }
        }
        let rules = Arc::clone(&state.rules);
        let result = state
            .writer
            .run(move |tx| {
                let mut done = Vec::new();
                for (station, bump) in batch {
                    let actor = format!("bump-bar@{station}");
                    match orders::station_act(
                        tx,
                        &rules,
                        &bump.ticket,
                        &station,
                        bump.action,
                        &actor,
                    ) {
                        Ok(_) => done.push((station, bump, None)),
                        // Refused before anything was written: the others go on.
                        Err(crate::store::writer::TxError::App(e)) => {
                            done.push((station, bump, Some(e)));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(done)
            })
            .await;
        match result {
            Ok(done) => {
                for (station, bump, refused) in done {
                    if let Some(e) = &refused {
                        if e.code == "not_at_station" || e.code == "not_found" {
                            tracing::warn!(station, ticket = %bump.ticket, error = %e.message, "bump refused");
                        } else {
                            tracing::info!(station, ticket = %bump.ticket, error = %e.message, "bump refused");
                        }
                    }
                    let answer = BumpResult {
                        version: FORMAT_VERSION,
                        ok: refused.is_none(),
                        code: refused
                            .as_ref()
                            .map(|e| e.code.to_string())
                            .unwrap_or_default(),
                        message: refused.map(|e| e.message).unwrap_or_default(),
                        ticket: bump.ticket,
                        action: Some(bump.action),
                    };
                    let _ = answers.send((station, answer));
                }
            }
            Err(e) => tracing::error!(error = %e.message, "kitchen hub: writing bumps failed"),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(payload: &[u8], enc: Encoding) -> Option<T> {
    if payload.len() > 4096 {
        return None;
    }
    encoding::decode(payload, enc).ok()
}

/// The same ticket with the renderer's REPRINT banner.
fn reprint_bytes(original: &[u8]) -> Vec<u8> {
    orderd_plugins::escpos::mark_reprint(original)
}

/// How often a truncated board's total is counted again in the store.
const RECOUNT_EVERY: Duration = Duration::from_secs(10);

/// How many tickets are open at each station: orders the kitchen still works on, of business
/// day `min_day` or later, with lines at the station and the station's part not done. Reads
/// every such order: the hub runs it off its loop, and only while a board is truncated.
pub fn count_open(
    rtx: &redb::ReadTransaction,
    min_day: u32,
) -> Result<BTreeMap<String, u64>, crate::store::StoreError> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    orders::kitchen_after(rtx, None, |o, marks| {
        if o.business_day >= min_day {
            for station in station_lines(&o).into_keys() {
                if !marks.done.contains(&station) {
                    *counts.entry(station).or_default() += 1;
                }
            }
        }
        true
    })?;
    Ok(counts)
}
