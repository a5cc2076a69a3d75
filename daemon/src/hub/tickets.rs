//! Station tickets and boards, computed from orders and events (no I/O).
//!
//! An order becomes one ticket per kitchen station that has lines in it (the station of each
//! line comes from the menu item, snapshotted on the line). A station's board holds the tickets
//! the kitchen still has to work on: orders `placed`, `accepted` or `preparing`. A ticket leaves
//! the board when its order is ready or finished, or its station bumped its part, and comes back
//! if that is recalled. A board carries the oldest 200 open tickets with the station's total.
//! Boards can always be rebuilt from the active orders, so the hub never depends on broker
//! state: it republishes them whenever it (or the broker) starts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::domain::menu::Menu;
use crate::domain::orders::{KitchenMarks, in_kitchen};
use orderd_protocol::{
    Board, BoardTicket, COMPACT_TICKETS, CompactBoard, CompactTicket, Event, EventKind,
    FORMAT_VERSION, LineDelta, Order, OrderStatus, TicketChange, TicketEvent, TicketLine,
};

/// Most tickets a published board carries (about 50 KB of JSON).
pub const MAX_BOARD_TICKETS: usize = 200;

/// The order's lines grouped by station, in line order.
pub fn station_lines(order: &Order) -> BTreeMap<String, Vec<TicketLine>> {
    let mut out: BTreeMap<String, Vec<TicketLine>> = BTreeMap::new();
    for line in &order.items {
        out.entry(line.station.clone())
            .or_default()
            .push(TicketLine {
                item_id: line.item_id.clone(),
                name: line.name.clone(),
                quantity: line.quantity,
                modifiers: line.modifiers.iter().map(|m| m.name.clone()).collect(),
                note: line.note.clone(),
                allergens: Vec::new(),
            });
    }
    out
}

/// Fills in each line's allergens from the menu (the order's lines do not carry them).
pub fn add_allergens(lines: &mut [TicketLine], menu: &Menu) {
    for l in lines {
        l.allergens = menu.allergens_of(&l.item_id).to_vec();
    }
}

fn ticket(order: &Order, station: &str, seq: u64, change: TicketChange) -> TicketEvent {
    TicketEvent {
        version: FORMAT_VERSION,
        ticket: order.id.clone(),
        number: order.number.clone(),
        short: crate::domain::orders::short_number(order),
        station: station.to_owned(),
        order_type: order.order_type,
        table: order.table_label.clone(),
        placed_at: order.created_at,
        seq,
        change,
        allergy: None,
    }
}

/// The ticket events an event causes. `order` is the order the event is about, as it is now
/// (for a placement, the placed order itself).
pub fn ticket_events(event: &Event, order: Option<&Order>) -> Vec<TicketEvent> {
    match (&event.kind, order) {
        (EventKind::OrderPlaced(placed), _) => station_lines(placed)
            .into_iter()
            .map(|(station, lines)| {
                ticket(placed, &station, event.seq, TicketChange::New { lines })
            })
            .collect(),
        (
            EventKind::StatusChanged {
                to: OrderStatus::Cancelled,
                note,
                ..
            },
            Some(order),
        ) => station_lines(order)
            .into_keys()
            .map(|station| {
                ticket(
                    order,
                    &station,
                    event.seq,
                    TicketChange::Cancelled {
                        reason: note.clone(),
                    },
                )
            })
            .collect(),
        (
            EventKind::LinesChanged { changes, .. } | EventKind::LinesEdited { changes, .. },
            Some(order),
        ) => {
            // One `changed` ticket per station, with only that station's differences.
            let mut per_station: BTreeMap<&str, Vec<LineDelta>> = BTreeMap::new();
            for c in changes {
                per_station
                    .entry(c.station.as_str())
                    .or_default()
                    .push(c.delta.clone());
            }
            per_station
                .into_iter()
                .map(|(station, deltas)| {
                    ticket(order, station, event.seq, TicketChange::Changed { deltas })
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

fn board_ticket(order: &Order, lines: Vec<TicketLine>) -> BoardTicket {
    BoardTicket {
        ticket: order.id.clone(),
        short: crate::domain::orders::short_number(order),
        status: order.status,
        order_type: order.order_type,
        table: order.table_label.clone(),
        placed_at: order.created_at,
        lines,
        allergy: None,
        allergy_acked: false,
    }
}

/// One station's open tickets, oldest first: keyed by (placed at, order id), so finding an
/// order's ticket is a lookup, not a search.
///
/// It holds at most the board's cap: always the oldest open tickets of the station (a prefix
/// in placement order). Tickets past them stay in the store, and `more` says some may be
/// there; when a held ticket leaves, the hub loads the next ones from the store's active
/// index ([`Boards::take_refills`], [`Boards::fill`]). So the hub's memory is bounded by the
/// number of stations, not by how many orders stay open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StationBoard {
    seq: u64,
    tickets: BTreeMap<(u64, String), Entry>,
    /// Open tickets past the held ones may be in the store.
    more: bool,
    /// While `more`: how many tickets were open at the station when last counted in the store.
    counted: Option<u64>,
}

impl StationBoard {
    /// How many tickets are open at the station.
    fn total(&self) -> u64 {
        let held = self.tickets.len() as u64;
        if self.more {
            self.counted.unwrap_or(held).max(held)
        } else {
            held
        }
    }
}

/// What [`StationBoard::put`] did.
enum Put {
    /// Not shown: past the held tickets.
    Not,
    /// Shown; it pushed this newest ticket off the board.
    Shown(Option<(u64, String)>),
}

impl StationBoard {
    /// Puts (or replaces) a ticket, keeping the board the oldest `cap` open tickets.
    fn put(&mut self, key: (u64, String), entry: Entry, cap: usize) -> Put {
        if let Some(e) = self.tickets.get_mut(&key) {
            *e = entry;
            return Put::Shown(None);
        }
        let newest = self.tickets.keys().next_back().cloned();
        let past_newest = newest.as_ref().is_some_and(|n| key > *n);
        if self.tickets.len() < cap {
            if self.more && past_newest {
                // Older tickets may wait in the store: a refill brings them, then this one.
                return Put::Not;
            }
            self.tickets.insert(key, entry);
            return Put::Shown(None);
        }
        self.more = true;
        match newest {
            Some(n) if !past_newest => {
                self.tickets.remove(&n);
                self.tickets.insert(key, entry);
                Put::Shown(Some(n))
            }
            _ => Put::Not,
        }
    }
}

/// A ticket on a board, with its JSON encoded once when it changes: a busy board is
/// republished every flush, and encoding its 200 tickets each time held the hub (and every
/// ticket behind it) up for milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    ticket: BoardTicket,
    /// `None` only if the ticket could not be encoded (then the board is encoded whole).
    json: Option<Vec<u8>>,
}

impl Entry {
    fn new(ticket: BoardTicket) -> Self {
        let json = serde_json::to_vec(&ticket).ok();
        Self { ticket, json }
    }
}

/// Every station's board.
#[derive(Debug, Clone)]
pub struct Boards {
    stations: BTreeMap<String, StationBoard>,
    /// Order id → when it was placed, for every order on at least one board: a status change
    /// finds its tickets without the order (the hub need not read it from the store).
    placed_at: HashMap<String, u64>,
    /// Tickets held per station.
    cap: usize,
    /// Stations that lost a ticket while more may wait in the store.
    refill: BTreeSet<String>,
    /// Orders of business days before this one are not shown (they are listed for the
    /// manager instead, `GET /orders/left-open`); 0: every day.
    min_day: u32,
    /// Order id → the stations that bumped their part of it: their boards do not show it.
    /// Only orders still in the kitchen with some but not every station done are here.
    done: HashMap<String, BTreeSet<String>>,
    /// Order id → its allergy note and the stations that acknowledged it, for the orders in
    /// the kitchen that have one.
    allergy: HashMap<String, (String, BTreeSet<String>)>,
    /// The menu, for the lines' allergens (the hub hands it the current one).
    menu: Option<std::sync::Arc<Menu>>,
}

/// Boards are equal when they show the same (the menu they read allergens from aside).
impl PartialEq for Boards {
    fn eq(&self, other: &Self) -> bool {
        self.stations == other.stations
            && self.placed_at == other.placed_at
            && self.cap == other.cap
            && self.refill == other.refill
            && self.min_day == other.min_day
            && self.done == other.done
            && self.allergy == other.allergy
    }
}

impl Default for Boards {
    fn default() -> Self {
        Self::with_cap(MAX_BOARD_TICKETS)
    }
}

fn key(order: &Order) -> (u64, String) {
    (order.created_at, order.id.clone())
}

impl Boards {
    /// Empty boards holding at most `cap` tickets per station.
    pub fn with_cap(cap: usize) -> Self {
        Self {
            stations: BTreeMap::new(),
            placed_at: HashMap::new(),
            cap: cap.max(1),
            refill: BTreeSet::new(),
            min_day: 0,
            done: HashMap::new(),
            allergy: HashMap::new(),
            menu: None,
        }
    }

    /// The menu the boards' lines take their allergens from.
    pub fn set_menu(&mut self, menu: std::sync::Arc<Menu>) {
        self.menu = Some(menu);
    }

    /// A station's ticket on its board, its lines with their allergens, with the order's
    /// allergy note and whether the station acknowledged it.
    fn board_ticket(
        &self,
        order: &Order,
        station: &str,
        mut lines: Vec<TicketLine>,
    ) -> BoardTicket {
        if let Some(menu) = &self.menu {
            add_allergens(&mut lines, menu);
        }
        let mut t = board_ticket(order, lines);
        if let Some((note, acked)) = self.allergy.get(&order.id) {
            t.allergy = Some(note.clone());
            t.allergy_acked = acked.contains(station);
        }
        t
    }

    /// Boards that show only orders of business day `day` and later.
    #[must_use]
    pub fn with_min_day(mut self, day: u32) -> Self {
        self.min_day = day;
        self
    }

    /// The first business day the boards show.
    pub fn min_day(&self) -> u32 {
        self.min_day
    }

    /// Whether the order belongs on the boards: work for the kitchen, of a day they show.
    fn shown(&self, order: &Order) -> bool {
        in_kitchen(order.status) && order.business_day >= self.min_day
    }

    /// Boards from the active orders (oldest first, as the store's active index gives them),
    /// as of event seq `seq`. Only what the boards hold is kept.
    pub fn rebuild<'a>(orders: impl IntoIterator<Item = &'a Order>, seq: u64) -> Self {
        let mut b = Self::default();
        for order in orders {
            b.add_initial(order, &KitchenMarks::default(), seq);
        }
        b
    }

    /// Records an order's kitchen marks as the store has them (when the hub reads an order):
    /// the boards of the stations that bumped their part will not show it, and its tickets
    /// carry its allergy note.
    pub fn set_marks(&mut self, order: &Order, marks: &KitchenMarks) {
        if marks.done.is_empty() || !in_kitchen(order.status) {
            self.done.remove(&order.id);
        } else {
            self.done
                .insert(order.id.clone(), marks.done.iter().cloned().collect());
        }
        match &marks.allergy {
            Some((note, acked)) if in_kitchen(order.status) => {
                self.allergy.insert(
                    order.id.clone(),
                    (note.clone(), acked.iter().cloned().collect()),
                );
            }
            _ => {
                self.allergy.remove(&order.id);
            }
        }
    }

    /// Forgets the marks of an order that left the kitchen.
    fn forget_marks(&mut self, order_id: &str) {
        self.done.remove(order_id);
        self.allergy.remove(order_id);
    }

    /// Whether `station` bumped its part of the order.
    fn is_done(&self, order_id: &str, station: &str) -> bool {
        self.done.get(order_id).is_some_and(|d| d.contains(station))
    }

    /// Adds one active order while loading the boards (oldest first), with its kitchen marks.
    pub fn add_initial(&mut self, order: &Order, marks: &KitchenMarks, seq: u64) {
        if !self.shown(order) {
            return;
        }
        self.set_marks(order, marks);
        for (station, lines) in station_lines(order) {
            if self.is_done(&order.id, &station) {
                continue;
            }
            let entry = Entry::new(self.board_ticket(order, &station, lines));
            let board = self.stations.entry(station).or_default();
            board.seq = seq;
            if let Put::Shown(Some(out)) = board.put(key(order), entry, self.cap) {
                self.placed_at.remove(&out.1);
            }
        }
        self.reindex(&order.id, order.created_at);
    }

    /// Stations that lost a ticket while more may wait in the store; the hub loads them with
    /// [`Boards::fill`] from the orders past [`Boards::newest_held`].
    pub fn take_refills(&mut self) -> Vec<String> {
        std::mem::take(&mut self.refill).into_iter().collect()
    }

    /// The id of the newest order held on a station's board.
    pub fn newest_held(&self, station: &str) -> Option<String> {
        self.stations
            .get(station)
            .and_then(|b| b.tickets.keys().next_back())
            .map(|(_, id)| id.clone())
    }

    /// Refills a station's board with `order` (the next open order past the held ones, in
    /// placement order). Returns whether the board has room for more; once the store has none
    /// left, [`Boards::filled`] says so.
    pub fn fill(&mut self, station: &str, order: &Order, marks: &KitchenMarks, seq: u64) -> bool {
        if !self.shown(order) || marks.done.iter().any(|d| d == station) {
            return true;
        }
        let Some(lines) = station_lines(order).remove(station) else {
            return true;
        };
        if self
            .stations
            .get(station)
            .is_some_and(|b| b.tickets.len() >= self.cap)
        {
            return false;
        }
        // Its allergy note, for the ticket.
        if let Some((note, acked)) = &marks.allergy {
            self.allergy.insert(
                order.id.clone(),
                (note.clone(), acked.iter().cloned().collect()),
            );
        }
        let cap = self.cap;
        let entry = Entry::new(self.board_ticket(order, station, lines));
        let board = self.stations.entry(station.to_owned()).or_default();
        board.tickets.insert(key(order), entry);
        board.seq = seq;
        let room = board.tickets.len() < cap;
        self.reindex(&order.id, order.created_at);
        room
    }

    /// The store has no open ticket for the station past those held.
    pub fn filled(&mut self, station: &str) {
        if let Some(b) = self.stations.get_mut(station) {
            b.more = false;
            b.counted = None;
        }
    }

    /// Whether a board may carry fewer tickets than its station has open (then the hub counts
    /// them in the store, [`Boards::set_counts`]).
    pub fn any_truncated(&self) -> bool {
        self.stations.values().any(|b| b.more)
    }

    /// The open tickets per station as counted in the store (the hub's `count_open`); returns the
    /// truncated boards, whose `total` this sets.
    pub fn set_counts(&mut self, counts: &BTreeMap<String, u64>) -> Vec<String> {
        let mut changed = Vec::new();
        for (station, b) in &mut self.stations {
            if b.more {
                b.counted = Some(counts.get(station).copied().unwrap_or(0));
                changed.push(station.clone());
            }
        }
        changed
    }

    /// Keeps `placed_at` true for one order after its tickets changed.
    fn reindex(&mut self, id: &str, placed_at: u64) {
        let k = (placed_at, id.to_owned());
        if self.stations.values().any(|b| b.tickets.contains_key(&k)) {
            self.placed_at.insert(k.1, placed_at);
        } else {
            self.placed_at.remove(id);
        }
    }

    /// Whether the order has a ticket on any board: then [`Boards::apply`] can move it to a
    /// new status without the order.
    pub fn holds(&self, order_id: &str) -> bool {
        self.placed_at.contains_key(order_id)
    }

    fn board_mut(&mut self, station: &str) -> &mut StationBoard {
        self.stations.entry(station.to_owned()).or_default()
    }

    /// Puts the order on (or takes it off) each of its stations' boards, per its status.
    /// Returns the stations whose board changed.
    fn upsert(&mut self, order: &Order, seq: u64) -> Vec<String> {
        let mut changed = Vec::new();
        let mut pushed_off = Vec::new();
        let on = self.shown(order);
        if !on {
            self.forget_marks(&order.id);
        }
        for (station, lines) in station_lines(order) {
            let here = on && !self.is_done(&order.id, &station);
            let entry = here.then(|| Entry::new(self.board_ticket(order, &station, lines)));
            let board = self.stations.entry(station.clone()).or_default();
            if let Some(entry) = entry {
                match board.put(key(order), entry, self.cap) {
                    Put::Not => continue,
                    Put::Shown(out) => pushed_off.extend(out),
                }
            } else if board.tickets.remove(&key(order)).is_none() {
                continue;
            } else if board.more {
                self.refill.insert(station.clone());
            }
            board.seq = seq;
            changed.push(station);
        }
        self.reindex(&order.id, order.created_at);
        for (placed_at, id) in pushed_off {
            self.reindex(&id, placed_at);
        }
        changed
    }

    /// Moves an order's tickets to a new status without the order: updated in place while the
    /// status is still work for the kitchen, taken off otherwise. Only an order on the boards
    /// can be moved so (one coming back on, as by a recall, needs its lines).
    fn move_on_boards(&mut self, order_id: &str, to: OrderStatus, seq: u64) -> Vec<String> {
        if !in_kitchen(to) {
            self.forget_marks(order_id);
        }
        let Some(&placed_at) = self.placed_at.get(order_id) else {
            return Vec::new();
        };
        let k = (placed_at, order_id.to_owned());
        let mut changed = Vec::new();
        for (station, board) in &mut self.stations {
            if in_kitchen(to) {
                let Some(entry) = board.tickets.get_mut(&k) else {
                    continue;
                };
                let mut ticket = entry.ticket.clone();
                ticket.status = to;
                *entry = Entry::new(ticket);
            } else if board.tickets.remove(&k).is_none() {
                continue;
            } else if board.more {
                self.refill.insert(station.clone());
            }
            board.seq = seq;
            changed.push(station.clone());
        }
        self.reindex(order_id, placed_at);
        changed
    }

    /// A station bumped its part of an order: its board drops the ticket, the others keep it.
    fn station_done(&mut self, order_id: &str, station: &str, seq: u64) -> Vec<String> {
        self.done
            .entry(order_id.to_owned())
            .or_default()
            .insert(station.to_owned());
        let Some(&placed_at) = self.placed_at.get(order_id) else {
            return Vec::new();
        };
        let k = (placed_at, order_id.to_owned());
        let board = self.board_mut(station);
        if board.tickets.remove(&k).is_none() {
            return Vec::new();
        }
        board.seq = seq;
        if board.more {
            self.refill.insert(station.to_owned());
        }
        self.reindex(order_id, placed_at);
        vec![station.to_owned()]
    }

    /// An order's allergy note (`station` none) or a station's acknowledgement of it: the
    /// order's tickets (or the station's) are redrawn with it.
    fn allergy_mark(
        &mut self,
        order_id: &str,
        note: Option<&str>,
        station: Option<&str>,
        seq: u64,
    ) -> Vec<String> {
        // Kept only for an order on the boards; one past them reads its marks when it comes on.
        let Some(&placed_at) = self.placed_at.get(order_id) else {
            return Vec::new();
        };
        let entry = self.allergy.entry(order_id.to_owned());
        let (note_now, acked) = match (entry, note) {
            (std::collections::hash_map::Entry::Occupied(e), _) => e.into_mut(),
            (std::collections::hash_map::Entry::Vacant(e), Some(n)) => {
                e.insert((n.to_owned(), BTreeSet::new()))
            }
            (std::collections::hash_map::Entry::Vacant(_), None) => return Vec::new(),
        };
        if let Some(n) = note {
            n.clone_into(note_now);
        }
        if let Some(s) = station {
            acked.insert(s.to_owned());
        }
        let (note_now, acked) = (note_now.clone(), acked.clone());
        let k = (placed_at, order_id.to_owned());
        let mut changed = Vec::new();
        for (name, board) in &mut self.stations {
            if station.is_some_and(|s| s != name) {
                continue;
            }
            let Some(entry) = board.tickets.get_mut(&k) else {
                continue;
            };
            let mut ticket = entry.ticket.clone();
            ticket.allergy = Some(note_now.clone());
            ticket.allergy_acked = acked.contains(name);
            *entry = Entry::new(ticket);
            board.seq = seq;
            changed.push(name.clone());
        }
        changed
    }

    /// Applies an event; `order` is the order it is about, as it is now (a status change of
    /// an order the boards hold needs none, see [`Boards::holds`]). Returns the stations whose
    /// board changed (to republish).
    pub fn apply(&mut self, event: &Event, order: Option<&Order>) -> Vec<String> {
        match (&event.kind, order) {
            (EventKind::OrderPlaced(placed), _) => self.upsert(placed, event.seq),
            (EventKind::StatusChanged { to, .. }, Some(order)) => {
                // The event's target status, even if the order has moved on since.
                let mut at = order.clone();
                at.status = *to;
                self.upsert(&at, event.seq)
            }
            (EventKind::StatusChanged { order_id, to, .. }, None) => {
                self.move_on_boards(order_id, *to, event.seq)
            }
            (
                EventKind::StationDone {
                    order_id,
                    station,
                    done: true,
                    ..
                },
                _,
            ) => self.station_done(order_id, station, event.seq),
            (
                EventKind::StationDone {
                    station,
                    done: false,
                    ..
                },
                Some(order),
            ) => {
                // Taken back: the station's board shows it again.
                if let Some(d) = self.done.get_mut(&order.id) {
                    d.remove(station);
                    if d.is_empty() {
                        self.done.remove(&order.id);
                    }
                }
                self.upsert(order, event.seq)
            }
            (EventKind::AllergyNoted { order_id, note, .. }, _) => {
                self.allergy_mark(order_id, Some(note), None, event.seq)
            }
            (
                EventKind::AllergyAcked {
                    order_id, station, ..
                },
                _,
            ) => self.allergy_mark(order_id, None, Some(station), event.seq),
            (
                EventKind::LinesChanged { changes, .. } | EventKind::LinesEdited { changes, .. },
                Some(order),
            ) => {
                let mut changed = self.upsert(order, event.seq);
                // A station whose every line was removed loses the ticket.
                let now_at: Vec<String> = station_lines(order).into_keys().collect();
                for c in changes {
                    if now_at.contains(&c.station) || changed.contains(&c.station) {
                        continue;
                    }
                    let board = self.board_mut(&c.station);
                    if board.tickets.remove(&key(order)).is_some() {
                        board.seq = event.seq;
                        if board.more {
                            self.refill.insert(c.station.clone());
                        }
                        changed.push(c.station.clone());
                    }
                }
                self.reindex(&order.id, order.created_at);
                changed
            }
            _ => Vec::new(),
        }
    }

    /// A station's board (an empty one if the station has had no tickets).
    /// At most [`MAX_BOARD_TICKETS`], oldest first: a retained board must stay a small MQTT
    /// message whatever the backlog (the newest tickets still arrive as ticket events).
    pub fn board(&self, station: &str) -> Board {
        let b = self.stations.get(station);
        Board {
            version: FORMAT_VERSION,
            station: station.to_owned(),
            seq: b.map_or(0, |b| b.seq),
            tickets: b
                .map(|b| {
                    b.tickets
                        .values()
                        .take(MAX_BOARD_TICKETS)
                        .map(|e| e.ticket.clone())
                        .collect()
                })
                .unwrap_or_default(),
            total: b.map_or(0, StationBoard::total),
            truncated: b.is_some_and(|b| b.total() > b.tickets.len() as u64),
        }
    }

    /// The compact board of a station: its oldest [`COMPACT_TICKETS`] tickets, no lines.
    pub fn compact_board(&self, station: &str) -> CompactBoard {
        let b = self.stations.get(station);
        let total = b.map_or(0, StationBoard::total);
        let tickets: Vec<CompactTicket> = b
            .map(|b| {
                b.tickets
                    .values()
                    .take(COMPACT_TICKETS)
                    .map(|e| {
                        let t = &e.ticket;
                        CompactTicket {
                            ticket: t.ticket.clone(),
                            short: t.short.clone(),
                            status: t.status,
                            table: t.table.clone(),
                            placed_at: t.placed_at,
                            items: t.lines.iter().map(|l| l.quantity).sum(),
                            allergy: t.allergy.is_some() && !t.allergy_acked,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        CompactBoard {
            version: FORMAT_VERSION,
            station: station.to_owned(),
            seq: b.map_or(0, |b| b.seq),
            truncated: total > tickets.len() as u64,
            total,
            tickets,
        }
    }

    /// [`Boards::board`] as JSON, exactly as `serde_json` writes it, assembled from each
    /// ticket's JSON encoded when it last changed.
    pub fn board_json(&self, station: &str) -> Result<Vec<u8>, serde_json::Error> {
        let Some(b) = self.stations.get(station) else {
            return serde_json::to_vec(&self.board(station));
        };
        let shown = || b.tickets.values().take(MAX_BOARD_TICKETS);
        if shown().any(|e| e.json.is_none()) {
            return serde_json::to_vec(&self.board(station));
        }
        let mut out = Vec::with_capacity(
            64 + station.len()
                + shown()
                    .map(|e| e.json.as_ref().map_or(0, Vec::len) + 1)
                    .sum::<usize>(),
        );
        out.extend_from_slice(format!("{{\"version\":{FORMAT_VERSION},\"station\":").as_bytes());
        serde_json::to_writer(&mut out, station)?;
        out.extend_from_slice(format!(",\"seq\":{},\"tickets\":[", b.seq).as_bytes());
        for (i, e) in shown().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(e.json.as_deref().unwrap_or_default());
        }
        let total = b.total();
        let truncated = total > b.tickets.len() as u64;
        out.extend_from_slice(
            format!("],\"total\":{total},\"truncated\":{truncated}}}").as_bytes(),
        );
        Ok(out)
    }

    /// Makes sure `station` has a board (empty when nothing is open there), so a display on a
    /// quiet station still gets a retained board. Returns whether it was new.
    pub fn ensure(&mut self, station: &str) -> bool {
        if self.stations.contains_key(station) {
            return false;
        }
        self.board_mut(station);
        true
    }

    /// Stations that have a board.
    pub fn stations(&self) -> impl Iterator<Item = &str> {
        self.stations.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use orderd_protocol::{OrderLine, OrderSource, OrderType, SelectedModifier};

    use super::*;

    fn line(item: &str, station: &str, qty: u32, modifier: Option<&str>) -> OrderLine {
        OrderLine {
            item_id: item.into(),
            name: item.to_uppercase(),
            quantity: qty,
            unit_price: 100,
            line_total: 100 * i64::from(qty),
            modifiers: modifier
                .map(|m| {
                    vec![SelectedModifier {
                        group_id: "g".into(),
                        option_id: m.into(),
                        name: m.to_uppercase(),
                        price_delta: 0,
                    }]
                })
                .unwrap_or_default(),
            note: None,
            station: station.into(),
        }
    }

    fn order(id: &str, seq: u32) -> Order {
        Order {
            id: id.into(),
            number: format!("ORD-20261122-{seq:03}"),
            business_day: 20_261_122,
            daily_seq: seq,
            order_type: OrderType::DineIn,
            source: OrderSource::Staff,
            status: OrderStatus::Placed,
            table_id: Some("t4".into()),
            table_label: Some("T4".into()),
            address: None,
            customer_name: None,
            customer_phone: None,
            note: None,
            items: vec![
                line("burger", "grill", 2, Some("medium")),
                line("espresso", "bar", 1, None),
                line("steak", "grill", 1, None),
            ],
            subtotal: 400,
            tax: 67,
            total: 400,
            currency: "EUR".into(),
            created_at: u64::from(seq) * 1000,
            updated_at: 0,
            accepted_at: None,
            preparing_at: None,
            ready_at: None,
            finished_at: None,
            out_for_delivery_at: None,
            cancel_reason: None,
        }
    }

    fn placed(o: &Order, seq: u64) -> Event {
        Event {
            version: 1,
            seq,
            at: 0,
            kind: EventKind::OrderPlaced(Box::new(o.clone())),
        }
    }

    fn moved(o: &Order, from: OrderStatus, to: OrderStatus, seq: u64) -> Event {
        Event {
            version: 1,
            seq,
            at: 0,
            kind: EventKind::StatusChanged {
                order_id: o.id.clone(),
                number: o.number.clone(),
                from,
                to,
                actor: "anna".into(),
                note: Some("burnt".into()),
                recall: false,
            },
        }
    }

    fn held(b: &Boards, s: &str) -> Vec<String> {
        b.board(s)
            .tickets
            .iter()
            .map(|t| t.ticket.clone())
            .collect()
    }

    fn station_done(o: &Order, station: &str, done: bool, seq: u64) -> Event {
        Event {
            version: 1,
            seq,
            at: 0,
            kind: EventKind::StationDone {
                order_id: o.id.clone(),
                number: o.number.clone(),
                station: station.into(),
                done,
                actor: "bump-bar@grill".into(),
            },
        }
    }

    #[test]
    fn a_station_bump_takes_the_ticket_off_that_station_only() {
        let mut boards = Boards::default();
        let mut o = order("o1", 7);
        boards.apply(&placed(&o, 1), None);
        assert_eq!(
            boards.apply(&station_done(&o, "grill", true, 2), None),
            ["grill"]
        );
        assert!(held(&boards, "grill").is_empty());
        assert_eq!(held(&boards, "bar"), ["o1"], "the bar keeps its drinks");
        // A later status change, a line edit or a reload does not bring it back to the grill.
        o.status = OrderStatus::Preparing;
        boards.apply(
            &moved(&o, OrderStatus::Placed, OrderStatus::Preparing, 3),
            None,
        );
        assert!(held(&boards, "grill").is_empty());
        boards.apply(
            &moved(&o, OrderStatus::Placed, OrderStatus::Preparing, 4),
            Some(&o),
        );
        assert!(held(&boards, "grill").is_empty());
        let mut fresh = Boards::default();
        fresh.add_initial(
            &o,
            &KitchenMarks {
                done: vec!["grill".into()],
                allergy: None,
            },
            4,
        );
        assert!(held(&fresh, "grill").is_empty());
        assert_eq!(held(&fresh, "bar"), ["o1"]);
        // Taken back: the grill shows it again.
        assert!(
            boards
                .apply(&station_done(&o, "grill", false, 5), Some(&o))
                .contains(&"grill".to_owned())
        );
        assert_eq!(held(&boards, "grill"), ["o1"]);
        // Ready: off every board, and nothing is remembered for it.
        boards.apply(&station_done(&o, "grill", true, 6), None);
        boards.apply(&station_done(&o, "bar", true, 7), None);
        boards.apply(
            &moved(&o, OrderStatus::Preparing, OrderStatus::Ready, 8),
            None,
        );
        assert!(held(&boards, "bar").is_empty() && held(&boards, "grill").is_empty());
        assert!(boards.done.is_empty());
    }

    fn allergy(o: &Order, station: Option<&str>, seq: u64) -> Event {
        let kind = match station {
            None => EventKind::AllergyNoted {
                order_id: o.id.clone(),
                number: o.number.clone(),
                note: "peanuts".into(),
                actor: "customer".into(),
            },
            Some(s) => EventKind::AllergyAcked {
                order_id: o.id.clone(),
                number: o.number.clone(),
                station: s.into(),
                actor: "bump-bar@grill".into(),
            },
        };
        Event {
            version: 1,
            seq,
            at: 0,
            kind,
        }
    }

    #[test]
    fn an_allergy_note_marks_every_stations_ticket_until_that_station_acknowledges_it() {
        let mut boards = Boards::default();
        let o = order("o1", 7);
        boards.apply(&placed(&o, 1), None);
        let mut changed = boards.apply(&allergy(&o, None, 2), None);
        changed.sort();
        assert_eq!(changed, ["bar", "grill"]);
        for station in ["bar", "grill"] {
            let t = &boards.board(station).tickets[0];
            assert_eq!(t.allergy.as_deref(), Some("peanuts"));
            assert!(!t.allergy_acked);
            assert!(boards.compact_board(station).tickets[0].allergy);
        }
        assert_eq!(
            boards.apply(&allergy(&o, Some("grill"), 3), None),
            ["grill"]
        );
        assert!(boards.board("grill").tickets[0].allergy_acked);
        assert!(!boards.compact_board("grill").tickets[0].allergy);
        assert!(!boards.board("bar").tickets[0].allergy_acked);
        // The board's JSON, assembled from each ticket's, says so too.
        let json: Board = serde_json::from_slice(&boards.board_json("bar").unwrap()).unwrap();
        assert_eq!(json, boards.board("bar"));
        // Loaded from the store with the same marks, the boards are the same.
        let mut fresh = Boards::default();
        fresh.add_initial(
            &o,
            &KitchenMarks {
                done: vec![],
                allergy: Some(("peanuts".into(), vec!["grill".into()])),
            },
            3,
        );
        assert_eq!(fresh.board("grill").tickets, boards.board("grill").tickets);
        assert_eq!(fresh.board("bar").tickets, boards.board("bar").tickets);
        // Out of the kitchen: nothing is remembered for it.
        boards.apply(
            &moved(&o, OrderStatus::Placed, OrderStatus::Cancelled, 4),
            None,
        );
        assert!(boards.allergy.is_empty());
        // A note for an order not on the boards is not kept (it is read when it comes on).
        boards.apply(&allergy(&order("o2", 8), None, 5), None);
        assert!(boards.allergy.is_empty());
    }

    #[test]
    fn an_order_becomes_one_ticket_per_station() {
        let o = order("o1", 7);
        let t = ticket_events(&placed(&o, 5), None);
        assert_eq!(t.len(), 2);
        let grill = t.iter().find(|t| t.station == "grill").unwrap();
        assert_eq!(grill.short, "007");
        assert_eq!(grill.table.as_deref(), Some("T4"));
        assert_eq!(grill.seq, 5);
        let TicketChange::New { lines } = &grill.change else {
            panic!()
        };
        assert_eq!(
            lines.iter().map(|l| l.item_id.as_str()).collect::<Vec<_>>(),
            ["burger", "steak"]
        );
        assert_eq!(lines[0].modifiers, ["MEDIUM"]);
        let bar = t.iter().find(|t| t.station == "bar").unwrap();
        let TicketChange::New { lines } = &bar.change else {
            panic!()
        };
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn cancelling_tells_every_station_and_other_moves_tell_none() {
        let o = order("o1", 7);
        let t = ticket_events(
            &moved(&o, OrderStatus::Accepted, OrderStatus::Cancelled, 9),
            Some(&o),
        );
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|t| t.change
            == TicketChange::Cancelled {
                reason: Some("burnt".into())
            }));
        assert!(
            ticket_events(
                &moved(&o, OrderStatus::Placed, OrderStatus::Accepted, 9),
                Some(&o)
            )
            .is_empty()
        );
    }

    #[test]
    fn boards_follow_the_kitchen_and_match_a_rebuild() {
        let a = order("a", 1);
        let b = order("b", 2);
        let mut boards = Boards::default();
        assert_eq!(boards.apply(&placed(&b, 2), None), ["bar", "grill"]);
        boards.apply(&placed(&a, 1), None);
        let grill = boards.board("grill");
        assert_eq!(
            grill
                .tickets
                .iter()
                .map(|t| t.short.as_str())
                .collect::<Vec<_>>(),
            ["001", "002"],
            "oldest first"
        );
        // Accepted: still on the boards, with its status.
        boards.apply(
            &moved(&a, OrderStatus::Placed, OrderStatus::Accepted, 3),
            Some(&a),
        );
        assert_eq!(boards.board("bar").tickets[0].status, OrderStatus::Accepted);
        // Ready: off every board.
        assert_eq!(
            boards.apply(
                &moved(&a, OrderStatus::Preparing, OrderStatus::Ready, 4),
                Some(&a)
            ),
            ["bar", "grill"]
        );
        assert_eq!(boards.board("grill").tickets.len(), 1);
        assert_eq!(boards.board("grill").seq, 4);
        // Recalled to preparing: back on.
        boards.apply(
            &moved(&a, OrderStatus::Ready, OrderStatus::Preparing, 5),
            Some(&a),
        );
        assert_eq!(boards.board("grill").tickets.len(), 2);
        // A rebuild from the active orders gives the same tickets.
        let mut a_now = a.clone();
        a_now.status = OrderStatus::Preparing;
        let rebuilt = Boards::rebuild([&a_now, &b], 5);
        for station in ["grill", "bar"] {
            assert_eq!(
                rebuilt.board(station).tickets,
                boards.board(station).tickets,
                "{station}"
            );
        }
        assert!(boards.board("cold").tickets.is_empty());
    }

    #[test]
    fn status_changes_of_held_orders_need_no_order() {
        let a = order("a", 1);
        let b = order("b", 2);
        let (mut with, mut without) = (Boards::default(), Boards::default());
        for boards in [&mut with, &mut without] {
            boards.apply(&placed(&a, 1), None);
            boards.apply(&placed(&b, 2), None);
        }
        assert!(without.holds("a") && !without.holds("zz"));
        let steps = [
            (OrderStatus::Placed, OrderStatus::Accepted, 3),
            (OrderStatus::Accepted, OrderStatus::Preparing, 4),
            (OrderStatus::Preparing, OrderStatus::Ready, 5),
        ];
        for (from, to, seq) in steps {
            let ev = moved(&a, from, to, seq);
            let changed = with.apply(&ev, Some(&a));
            assert_eq!(without.apply(&ev, None), changed, "{to:?}");
            assert_eq!(without, with, "{to:?}: the same boards either way");
        }
        assert_eq!(with.board("grill").seq, 5);
        assert!(!without.holds("a"), "ready: off the boards");
        assert!(without.holds("b"));
        // Back from ready: not on the boards, so without the order nothing can change (the
        // hub reads the order for this one).
        let back = moved(&a, OrderStatus::Ready, OrderStatus::Preparing, 6);
        assert!(without.apply(&back, None).is_empty());
        assert_eq!(without.apply(&back, Some(&a)), ["bar", "grill"]);
        assert!(without.holds("a") && without.holds("b"));
    }

    #[test]
    fn boards_hold_only_the_oldest_tickets_and_refill_from_the_store() {
        let orders: Vec<Order> = (1..=5).map(|n| order(&format!("o{n}"), n)).collect();
        let mut boards = Boards::with_cap(2);
        for (i, o) in orders.iter().enumerate() {
            boards.apply(&placed(o, i as u64 + 1), None);
        }
        assert_eq!(held(&boards, "grill"), ["o1", "o2"], "the oldest two");
        assert!(!boards.holds("o3"), "the rest stay in the store");
        assert!(boards.take_refills().is_empty());
        // o1 is served: the boards ask for a refill past the newest held (o2) ...
        boards.apply(
            &moved(&orders[0], OrderStatus::Placed, OrderStatus::Ready, 6),
            None,
        );
        assert_eq!(boards.take_refills(), ["bar", "grill"]);
        assert_eq!(boards.newest_held("grill").as_deref(), Some("o2"));
        // ... which the store's active index answers, oldest first, until the board is full.
        assert!(
            !boards.fill("grill", &orders[2], &KitchenMarks::default(), 6),
            "full again"
        );
        assert_eq!(held(&boards, "grill"), ["o2", "o3"]);
        // An order placed earlier than a held one (a clock set back) still goes on, pushing off
        // the newest; a newer one stays in the store.
        let mut early = order("o0", 9);
        early.created_at = 500;
        boards.apply(&placed(&early, 7), None);
        assert_eq!(held(&boards, "grill"), ["o0", "o2"]);
        assert!(!boards.holds("o3"));
        let mut late = order("o9", 99);
        late.status = OrderStatus::Accepted;
        boards.apply(&placed(&late, 8), None);
        assert!(!boards.holds("o9"));
        // With room and nothing left in the store, the station is filled.
        boards.apply(
            &moved(&early, OrderStatus::Placed, OrderStatus::Ready, 9),
            None,
        );
        assert_eq!(boards.take_refills(), ["bar", "grill"]);
        for o in &orders[2..] {
            if !boards.fill("grill", o, &KitchenMarks::default(), 9) {
                break;
            }
        }
        assert_eq!(held(&boards, "grill"), ["o2", "o3"]);
    }

    #[test]
    fn a_board_assembled_from_cached_tickets_is_the_board_serde_writes() {
        let same = |boards: &Boards, station: &str| {
            let whole = serde_json::to_vec(&boards.board(station)).unwrap();
            let assembled = boards.board_json(station).unwrap();
            assert_eq!(
                String::from_utf8(assembled).unwrap(),
                String::from_utf8(whole).unwrap(),
                "{station}"
            );
        };
        let mut boards = Boards::default();
        same(&boards, "grill"); // no board yet
        boards.ensure("quiet \"station\"");
        same(&boards, "quiet \"station\""); // empty, and a name that needs escaping
        let mut first = order("first", 1);
        first.items[0].note = Some("no \"onions\" \u{eb}\u{e7}".into());
        boards.apply(&placed(&first, 1), None);
        same(&boards, "grill");
        // More than a board shows: still the oldest MAX_BOARD_TICKETS, as serde writes them.
        for n in 2..=u32::try_from(MAX_BOARD_TICKETS).unwrap() + 5 {
            boards.apply(&placed(&order(&format!("o{n}"), n), u64::from(n)), None);
        }
        same(&boards, "grill");
        same(&boards, "bar");
        // A status change re-encodes that ticket.
        boards.apply(
            &moved(&first, OrderStatus::Placed, OrderStatus::Accepted, 900),
            Some(&first),
        );
        same(&boards, "grill");
        assert!(
            String::from_utf8(boards.board_json("grill").unwrap())
                .unwrap()
                .contains("\"accepted\"")
        );
    }
}
