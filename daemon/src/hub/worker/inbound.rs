//! The hub's devices: inbound MQTT (printer reports, bump bars, availability and state), device
//! health, buzzers and relays, and Home Assistant discovery.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Hub {
    pub(super) fn reload_devices(&mut self) {
        let Ok(rtx) = self.state.store.read() else {
            return;
        };
        if let Ok(list) = devices::list(&rtx) {
            self.devices = list.into_iter().map(|d| (d.id.clone(), d)).collect();
            let devices = &self.devices;
            self.sounding.retain(|id, _| devices.contains_key(id));
        }
    }

    /// Rings the buzzers of the stations whose board the event changed: a new order's, or
    /// an order's that became ready (not by a recall).
    pub(super) async fn ring_for(&mut self, ev: &Event, stations: &[String]) {
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
            let buzz = &self.state.settings.kitchen.buzz;
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
    pub(super) async fn buzz(&mut self, station: &str, pattern: BuzzPattern) {
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

    pub(super) async fn on_message(&mut self, topic: &str, payload: &Bytes) {
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

    pub(super) fn malformed(&self, device: &str, topic: &str) {
        self.state.metrics.mqtt_malformed.inc();
        tracing::warn!(device, topic, "malformed MQTT payload dropped");
    }

    pub(super) fn seen(&self, dev: &str, now: u64) {
        self.kitchen.update_health(dev, now, |_| ());
    }

    /// A bump or recall from a bump bar authorised for `station` (the broker checked the
    /// topic), handed to [`write_bumps`]: the hub's loop keeps publishing tickets meanwhile,
    /// and the change comes back through the event log like any other.
    pub(super) fn on_bump(&self, station: &str, bump: Bump) {
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
    pub(super) async fn answer_bump(&mut self, station: &str, answer: &BumpResult) {
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
    pub(super) async fn on_relay_availability(
        &mut self,
        dev: &str,
        flavour: Flavour,
        online: bool,
    ) {
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

    pub(super) async fn on_availability(&mut self, dev: &str, online: bool, now: u64) {
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

    pub(super) async fn on_state(&mut self, dev: &str, s: &DeviceState, now: u64) {
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

    pub(super) async fn discovery(&mut self) {
        let Some(prefix) = self.home_assistant.clone() else {
            return;
        };
        let site = self.site.clone();
        let device = serde_json::json!({"identifiers": [format!("orderd_{site}")], "name": format!("orderd {site}")});
        let mut configs = vec![(
            topics::home_assistant::open_orders_config(&prefix, &site),
            serde_json::json!({
                "name": "Open orders",
                "unique_id": format!("orderd_{site}_open_orders"),
                "state_topic": topics::hub_open_orders(&site),
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
                topics::home_assistant::device_online_config(&prefix, &site, &d.id),
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

    pub(super) async fn discovery_state(&mut self) {
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
            topics::hub_open_orders(&self.site),
            QoS::AtMostOnce,
            true,
            open.to_string().into_bytes(),
        )
        .await;
    }

    pub(super) async fn discovery_device(&mut self, dev: &str) {
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
pub(super) async fn write_bumps(
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
