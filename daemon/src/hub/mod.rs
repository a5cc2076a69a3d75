//! The kitchen hub: turns the event log into what kitchen devices see, and what they report
//! back into order changes.
//!
//! - [`tickets`]: the pure routing of orders to station tickets and the station boards.
//! - [`printing`]: which printers get a station's tickets and the bytes they print.
//! - [`worker`]: the task that consumes the event log from its durable cursor over MQTT:
//!   tickets, retained boards, print jobs (durable, resent by id, failed over), buzzers,
//!   bump/recall from bump bars, and device health.
//!
//! [`Kitchen`] is what the rest of the daemon (the API) shares with the worker.

pub mod netprint;
pub mod printer_link;
pub mod printing;
pub mod relays;
pub mod tickets;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use tokio::sync::Notify;

use crate::error::Commit as _;
use crate::mqtt::broker::Broker;

/// What the hub knows about one device's health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceHealth {
    /// Last availability it announced (its last will says `offline`).
    pub online: bool,
    /// Last message from it, ms.
    pub last_seen: Option<u64>,
    /// Last state it reported (`ready`, `paper_out`, …).
    pub state: Option<String>,
}

/// The hub as the API sees it.
#[derive(Default)]
pub struct Kitchen {
    /// Woken when new print jobs were queued outside the hub (reprints).
    pub wake: Notify,
    /// Health by device id.
    pub health: Mutex<BTreeMap<String, DeviceHealth>>,
    /// The embedded broker, when there is one.
    pub broker: OnceLock<Arc<Broker>>,
    /// Woken when devices were added or removed (the network printers' drivers follow).
    pub devices_changed: Notify,
}

impl Kitchen {
    /// A device's health (default: never seen).
    pub fn health_of(&self, id: &str) -> DeviceHealth {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// Updates a device's health under the lock (marking it seen at `now`) and returns what
    /// `f` returns.
    pub fn update_health<R>(
        &self,
        id: &str,
        now: u64,
        f: impl FnOnce(&mut DeviceHealth) -> R,
    ) -> R {
        let mut all = self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = all.entry(id.to_owned()).or_default();
        h.last_seen = Some(now);
        f(h)
    }

    /// Closes a device's MQTT connection on the embedded broker (after it was removed).
    pub fn kick(&self, id: &str) {
        if let Some(b) = self.broker.get() {
            b.kick(id);
        }
        self.devices_changed.notify_one();
    }
}

/// Queues a printer's test slip as a print job (sent by the hub like a reprint); the job.
pub async fn test_print(
    store: &crate::store::Store,
    writer: &crate::store::writer::Writer,
    kitchen: &Kitchen,
    settings: &crate::config::Settings,
    id: &str,
) -> Result<crate::domain::print_jobs::PrintJobRow, crate::error::AppError> {
    use crate::domain::print_jobs::{self, JobState, PrintJobRow};
    let device = crate::domain::devices::list(&store.read()?)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| crate::error::AppError::not_found("device"))?;
    if device.kind != crate::domain::devices::DeviceKind::Printer {
        return Err(crate::error::AppError::new(
            crate::error::ErrorKind::Conflict,
            "not_a_printer",
            format!("{id} is a {}, not a printer", device.kind.as_str()),
        ));
    }
    let url = settings.http.public_base_url.clone().unwrap_or_else(|| {
        crate::lan::base_urls("http", settings.http.listen, &crate::lan::lan_addresses())
            .into_iter()
            .next()
            .unwrap_or_default()
    });
    let cfg = printing::printer_config(&settings.kitchen, Some(&device));
    let data = printing::render_test(&device, &url, &settings.site.name, &cfg);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    let station = device.stations.first().cloned().unwrap_or_default();
    let job = PrintJobRow {
        job_id: format!("test-{}-{}", crate::domain::random_hex(6), device.id),
        order_id: "test".into(),
        order_number: "TEST".into(),
        station,
        printer: device.id.clone(),
        copy: orderd_protocol::PrintCopy::Original,
        format: orderd_protocol::PrintFormat::EscPos,
        data,
        state: JobState::Queued,
        report: Some("test print".into()),
        replaced_by: None,
        replaces: None,
        created_at: now,
        updated_at: now,
    };
    let row = job.clone();
    writer.run(move |tx| print_jobs::put(tx, &row)).await?;
    kitchen.wake.notify_one();
    Ok(job)
}

/// How long after start the box waits for a printer to print its address on.
const ADDRESS_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `[kitchen] print_address_at_boot`: prints the test slip (the box's address and the printer's
/// settings) on the first printer, by id, that is online within [`ADDRESS_WAIT`] of start.
pub async fn print_address_at_boot(
    store: crate::store::Store,
    writer: crate::store::writer::Writer,
    kitchen: std::sync::Arc<Kitchen>,
    settings: std::sync::Arc<crate::config::Settings>,
    mut shutdown: crate::shutdown::Shutdown,
) {
    let until = tokio::time::Instant::now() + ADDRESS_WAIT;
    while tokio::time::Instant::now() < until {
        let printers = store
            .read()
            .ok()
            .and_then(|rtx| crate::domain::devices::list(&rtx).ok())
            .unwrap_or_default();
        let first = printers
            .iter()
            .filter(|d| d.kind == crate::domain::devices::DeviceKind::Printer)
            .find(|d| kitchen.health_of(&d.id).online);
        if let Some(p) = first {
            match test_print(&store, &writer, &kitchen, &settings, &p.id).await {
                Ok(_) => tracing::info!(printer = %p.id, "the box's address sent to the printer"),
                Err(e) => {
                    tracing::warn!(printer = %p.id, error = %e, "could not print the box's address");
                }
            }
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            () = shutdown.wait() => return,
        }
    }
    tracing::info!("no printer came online within a minute: the box's address was not printed");
}
