//! The hub's print jobs: rendered from tickets, queued and stored, sent and resent by id, and
//! failed over to a station's backup printer (as a REPRINT) when the printer cannot print.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Hub {
    /// The ticket's bytes: its lines; for a cancellation the order's lines at the station under
    /// a CANCELLED banner; for a change the changed lines under a CHANGED banner.
    pub(super) fn render(
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
        crate::hub::tickets::add_allergens(
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
    pub(super) fn create_jobs(&mut self, t: &TicketEvent, order: &Order, seq: u64) {
        let printers = printing::ticket_printers(self.devices.values(), &t.station);
        if printers.is_empty() {
            return;
        }
        // Each printer in its own code page and width; printers alike share one rendering.
        for (cfg, printers) in
            printing::by_config(&self.state.settings.kitchen, &self.devices, printers)
        {
            let data = self.render(t, order, PrintCopy::Original, &cfg);
            let ids = (t.ticket.clone(), t.number.clone());
            self.queue_jobs(printers, &t.station, &data, PrintCopy::Original, ids, seq);
        }
    }

    /// How a station's slips that are rendered once (guest checks, Z reports) are rendered:
    /// in the settings of its first printer.
    pub(super) fn office_config(&self, station: &str) -> orderd_plugins::escpos::EscPosConfig {
        let first = printing::ticket_printers(self.devices.values(), station)
            .into_iter()
            .next();
        printing::printer_config(
            &self.state.settings.kitchen,
            first.and_then(|p| self.devices.get(&p)),
        )
    }

    /// One job per printer of a station (its backups only if it has none) for a slip that is
    /// not a kitchen ticket — a guest check or a Z report — through the same exactly-once path
    /// as tickets.
    pub(super) fn create_office_jobs(
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
    pub(super) fn queue_jobs(
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
    pub(super) async fn run_deferred(&mut self, max: usize) {
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

    pub(super) async fn send_job(&mut self, id: &str) {
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

    pub(super) async fn on_job_status(&mut self, dev: &str, status: JobStatus) {
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

    pub(super) fn printer_ok(&self, id: &str) -> bool {
        let h: DeviceHealth = self.kitchen.health_of(id);
        h.online && h.state.as_deref().is_none_or(|s| s == "ready")
    }

    /// The printer is ready again: send its waiting jobs now.
    pub(super) async fn resume(&mut self, dev: &str) {
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
    pub(super) fn jobs_of(&self, dev: &str) -> Vec<String> {
        let mut jobs: Vec<(u64, &str)> = self
            .jobs
            .values()
            .filter(|j| j.row.printer == dev)
            .map(|j| (j.row.created_at, j.row.job_id.as_str()))
            .collect();
        jobs.sort_unstable();
        jobs.into_iter().map(|(_, id)| id.to_owned()).collect()
    }

    pub(super) async fn fail_all(&mut self, dev: &str, reason: &str) {
        for id in self.jobs_of(dev) {
            self.fail_over(&id, reason).await;
        }
    }

    /// Moves a job to a working backup printer of its station, or parks it until its printer
    /// is back. Raises an alert either way (once per job).
    pub(super) async fn fail_over(&mut self, id: &str, reason: &str) {
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
        let alarm = self.state.settings.kitchen.buzz.alert;
        self.buzz(&station, alarm).await;
    }

    // ----- timers and durability -----

    /// Queues for a display that is back the tickets it may have missed since event `from`: those
    /// of the events after it that the hub has published, at its stations, for orders still
    /// open (a display drops a repeat by its seq), then its boards again. Tickets cannot be lost
    /// between a restart of the box, or a display's reconnect, and its subscription.
    pub(super) fn resend_missed(&mut self, dev: &str, from: u64) {
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
            for t in crate::hub::tickets::ticket_events(ev, order.as_ref()) {
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

    /// Reprints and other jobs queued in the store by the API.
    pub(super) async fn load_queued(&mut self) {
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
    pub(super) fn start_flush(&mut self) -> Option<FlushTask> {
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
    pub(super) fn flush_done(
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
}

/// The same ticket with the renderer's REPRINT banner.
pub(super) fn reprint_bytes(original: &[u8]) -> Vec<u8> {
    orderd_plugins::escpos::mark_reprint(original)
}
