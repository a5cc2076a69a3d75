//! The hub's boards: built from the active orders, kept per station, published retained, refilled
//! from the store when a ticket leaves a truncated board, and their open counts recounted.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Hub {
    /// Gives every station of the menu and of the registered devices a board, so displays
    /// of a quiet station show an empty board instead of nothing; new ones are marked dirty.
    pub(super) fn ensure_boards(&mut self) {
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

    pub(super) async fn publish_dirty_boards(&mut self) {
        for station in std::mem::take(&mut self.dirty_boards) {
            self.publish_board(&station).await;
        }
    }

    pub(super) async fn publish_board(&mut self, station: &str) {
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

    /// At a new business day the kitchen views start over: orders left open from earlier days
    /// leave the boards (never closed by this; they are listed for the manager,
    /// `GET /api/v1/orders/left-open`). Checked as events arrive, so an idle box's boards roll
    /// over with the day's first event.
    pub(super) fn roll_day(&mut self, seq: u64) {
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
    pub(super) fn refill_boards(&mut self, seq: u64) {
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

    /// The order an event is about, for the boards: with its kitchen marks recorded (so that
    /// a board of a station that bumped it does not show it again, and its tickets carry its
    /// allergy note).
    pub(super) fn order_for_boards(&mut self, id: &str) -> Option<Order> {
        let rtx = self.state.store.read().ok()?;
        let stored = orders::get(&rtx, id).ok().flatten()?;
        self.boards
            .set_marks(&stored.order, &stored.kitchen_marks());
        Some(stored.order)
    }

    /// Whether a truncated board's total is to be counted again, now or when
    /// [`RECOUNT_EVERY`] has passed: events came since the last count (an idle kitchen's
    /// totals stand, and its store is not read every 10 s).
    pub(super) fn recount_wanted(&self) -> bool {
        self.boards.any_truncated()
            && (self.counted_at.is_none() || self.handled > self.counted_seq)
    }

    /// Whether a truncated board's total should be counted again.
    pub(super) fn count_due(&self) -> bool {
        self.counted_at.is_none_or(|t| t.elapsed() >= RECOUNT_EVERY)
    }

    /// Starts a count of the open tickets per station in the store, off the hub's loop, or
    /// takes its result: the truncated boards get their `total`.
    pub(super) fn follow_counts(&mut self) {
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
}

/// How often a truncated board's total is counted again in the store.
pub(super) const RECOUNT_EVERY: Duration = Duration::from_secs(10);

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
