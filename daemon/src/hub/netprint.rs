//! Printers the box drives itself, on the LAN (raw ESC/POS over TCP, port 9100) or on USB (a
//! character device such as `/dev/usb/lp0`): each printer registered with `tcp` or `usb`. Its driver joins the embedded broker as that printer, over an
//! in-process link, and so looks to the hub like any MQTT printer: it takes the printer's jobs,
//! reports them printed, and says `online`, `offline` and its state. The hub's delivery rules —
//! resend by job id, failover to the station's backup marked REPRINT, alerts — apply unchanged.
//!
//! A raw printer acknowledges nothing, so the driver asks its state with `DLE EOT` after each
//! job, before one unless the printer answered in the last half second, and every few seconds
//! while idle. A job counts as printed when all its bytes
//! were written and the state afterwards lets it print. A job cut short (the connection dropped
//! or the printer stopped answering) is not reported: the hub sends it again once the printer is
//! back (or fails it over), and the driver prints it marked REPRINT. It may print twice; it is
//! never lost. Each printer has its own task, so a slow or dead one holds up nobody else.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use orderd_plugins::escpos::mark_reprint;
use orderd_plugins::escpos::status::{
    self, PrinterState, QUERY_OFFLINE, QUERY_PAPER, QUERY_PRINTER,
};
use orderd_protocol::{Encoding, JobState, JobStatus, PrintJob, topics};
use rumqttc::QoS;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};

use super::printer_link::{self, Link, Target};
use crate::domain::devices::{self, DeviceKind};
use crate::mqtt::broker::Broker;
use crate::mqtt::client::{HubClient, Inbound};
use crate::shutdown::Shutdown;
use crate::store::Store;

/// How long a connection attempt, a status answer or a job's write may take.
const CONNECT: Duration = Duration::from_secs(2);
const ANSWER: Duration = Duration::from_secs(2);
const WRITE: Duration = Duration::from_secs(10);
/// A state read this recently, and saying the printer prints, stands for the question before
/// the next job (in a rush, the last job's answer afterwards is that question).
const FRESH: Duration = Duration::from_millis(500);
/// How often an idle printer is asked its state.
const POLL: Duration = Duration::from_secs(5);
/// The wait between two connection attempts, by the shared retry policy: from 0.5 s, doubling
/// per failure up to 10 s, jittered so that printers lost together do not retry in step.
const RECONNECT: crate::retry::Backoff = crate::retry::Backoff {
    base_ms: 500,
    cap_ms: 10_000,
};
/// Job ids remembered as printed (a resend of one is answered `printed` again, not printed).
const REMEMBER: usize = 2_000;

/// Runs a driver for every printer registered with `tcp` or `usb`, starting and stopping them as devices
/// are added and removed, until shutdown.
pub async fn run(
    store: Store,
    site: String,
    broker: Arc<Broker>,
    kitchen: Arc<super::Kitchen>,
    mut shutdown: Shutdown,
) {
    let mut running: BTreeMap<String, (Target, watch::Sender<bool>)> = BTreeMap::new();
    loop {
        let wanted: BTreeMap<String, (Target, Encoding)> = store
            .read()
            .ok()
            .and_then(|rtx| devices::list(&rtx).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.kind == DeviceKind::Printer)
            .filter_map(|d| {
                let target = match (&d.tcp, &d.usb) {
                    (Some(a), _) => Target::Tcp(a.clone()),
                    (None, Some(p)) => Target::Usb(p.clone()),
                    (None, None) => return None,
                };
                Some((d.id, (target, d.encoding)))
            })
            .collect();
        running.retain(|id, (addr, stop)| {
            let keep = wanted.get(id).is_some_and(|(a, _)| a == addr);
            if !keep {
                let _ = stop.send(true);
            }
            keep
        });
        for (id, (addr, encoding)) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            let (stop_tx, stop_rx) = watch::channel(false);
            let driver = Driver {
                id: id.clone(),
                addr: addr.clone(),
                encoding,
                site: site.clone(),
            };
            let b = Arc::clone(&broker);
            let sd = shutdown.clone();
            tokio::spawn(async move { driver.run(b, sd, stop_rx).await });
            running.insert(id, (addr, stop_tx));
        }
        tokio::select! {
            () = kitchen.devices_changed.notified() => {}
            () = shutdown.wait() => break,
        }
    }
    for (_, (_, stop)) in running {
        let _ = stop.send(true);
    }
}

struct Driver {
    id: String,
    addr: Target,
    encoding: Encoding,
    site: String,
}

/// Why a connection ended.
enum Ended {
    /// The printer stopped answering or the connection broke: reconnect.
    Lost(String),
    /// Removed, or the box stops.
    Stop,
}

impl Driver {
    async fn run(
        self,
        broker: Arc<Broker>,
        mut shutdown: Shutdown,
        mut stop: watch::Receiver<bool>,
    ) {
        let id = self.id.clone();
        let Ok(Ok(link)) = tokio::task::spawn_blocking(move || broker.device_link(&id)).await
        else {
            tracing::error!(printer = %self.id, "no broker link for the network printer");
            return;
        };
        let avail = topics::device_availability(&self.site, &self.id);
        let started = crate::mqtt::client::start_quiet(link, avail, shutdown.clone());
        let mut client = started.client;
        let mut inbound = started.inbound;
        let jobs = topics::printer_job(&self.site, &self.id);
        if let Err(e) = client.subscribe(jobs.clone()).await {
            tracing::error!(printer = %self.id, error = %e, "cannot subscribe to its jobs");
            return;
        }
        let mut memory = Memory::default();
        let mut failures = 0;
        let mut said_offline = false;
        loop {
            let conn = printer_link::open(&self.addr, CONNECT).await;
            match conn {
                Ok(sock) => {
                    failures = 0;
                    tracing::info!(printer = %self.id, addr = %self.addr, "driven printer connected");
                    let ended = self
                        .connected(
                            sock,
                            &mut client,
                            &mut inbound,
                            &mut memory,
                            &mut shutdown,
                            &mut stop,
                        )
                        .await;
                    match ended {
                        Ended::Stop => break,
                        Ended::Lost(why) => {
                            tracing::warn!(printer = %self.id, addr = %self.addr, reason = %why, "driven printer lost");
                        }
                    }
                    self.say_availability(&mut client, false).await;
                    said_offline = true;
                }
                Err(e) => {
                    if !said_offline {
                        tracing::warn!(printer = %self.id, addr = %self.addr, error = %e, "driven printer unreachable");
                        self.say_availability(&mut client, false).await;
                        said_offline = true;
                    }
                }
            }
            // Wait before trying again; jobs sent meanwhile are dropped (the hub resends them
            // once the printer is back, or has failed them over).
            failures += 1;
            let until = tokio::time::sleep(RECONNECT.wait(failures, None));
            tokio::pin!(until);
            loop {
                tokio::select! {
                    () = &mut until => break,
                    m = inbound.recv() => if m.is_none() { return },
                    () = shutdown.wait() => { client.close().await; return }
                    _ = stop.changed() => { client.close().await; return }
                }
            }
        }
        client.close().await;
    }

    async fn say_availability(&self, client: &mut HubClient, online: bool) {
        let topic = topics::device_availability(&self.site, &self.id);
        let payload = if online { "online" } else { "offline" };
        let _ = client
            .publish(topic, QoS::AtLeastOnce, true, payload.as_bytes().to_vec())
            .await;
    }

    async fn say_state(&self, client: &mut HubClient, state: PrinterState) {
        let topic = topics::device_state(&self.site, &self.id);
        let _ = client
            .publish(
                topic,
                QoS::AtLeastOnce,
                true,
                state.as_str().as_bytes().to_vec(),
            )
            .await;
    }

    async fn report(&self, client: &mut HubClient, job_id: &str, status: JobState) {
        let st = JobStatus {
            version: orderd_protocol::FORMAT_VERSION,
            job_id: job_id.to_owned(),
            status,
        };
        if let Ok(bytes) = orderd_protocol::encode(&st, self.encoding) {
            let topic = topics::printer_job_status(&self.site, &self.id);
            let _ = client.publish(topic, QoS::AtLeastOnce, false, bytes).await;
        }
    }

    #[allow(clippy::too_many_lines)]
    async fn connected(
        &self,
        mut sock: Link,
        client: &mut HubClient,
        inbound: &mut mpsc::Receiver<Inbound>,
        memory: &mut Memory,
        shutdown: &mut Shutdown,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        let mut last = match query(&mut sock).await {
            Ok(s) => s,
            Err(e) => return Ended::Lost(e),
        };
        // When the printer last answered: a job that follows an answer this fresh (the last
        // job's "after") needs no question of its own.
        let mut answered = tokio::time::Instant::now();
        self.say_state(client, last).await;
        self.say_availability(client, true).await;
        let jobs = topics::printer_job(&self.site, &self.id);
        let mut poll = tokio::time::interval(POLL);
        poll.tick().await;
        loop {
            tokio::select! {
                m = inbound.recv() => {
                    let Some(m) = m else { return Ended::Stop };
                    let Inbound::Message { topic, payload } = m else { continue };
                    if topic != jobs {
                        continue;
                    }
                    let Ok(job) = orderd_protocol::decode::<PrintJob>(&payload, self.encoding) else {
                        tracing::warn!(printer = %self.id, "unreadable print job");
                        continue;
                    };
                    if memory.printed(&job.job_id) {
                        self.report(client, &job.job_id, JobState::Printed).await;
                        continue;
                    }
                    let before = if last.prints() && answered.elapsed() < FRESH {
                        last
                    } else {
                        match query(&mut sock).await {
                            Ok(s) => {
                                answered = tokio::time::Instant::now();
                                s
                            }
                            Err(e) => return Ended::Lost(e),
                        }
                    };
                    if before != last {
                        self.say_state(client, before).await;
                        last = before;
                    }
                    if !before.prints() {
                        self.report(client, &job.job_id, job_state(before)).await;
                        continue;
                    }
                    // A job tried before and not confirmed is printed again, marked REPRINT.
                    let data = if memory.tried.contains(&job.job_id) {
                        mark_reprint(&job.data)
                    } else {
                        job.data.clone()
                    };
                    memory.tried.insert(job.job_id.clone());
                    match tokio::time::timeout(WRITE, sock.write_all(&data)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Ended::Lost(e.to_string()),
                        Err(_) => return Ended::Lost("the printer took no more data".into()),
                    }
                    let after = match query(&mut sock).await {
                        Ok(s) => {
                            answered = tokio::time::Instant::now();
                            s
                        }
                        Err(e) => return Ended::Lost(e),
                    };
                    if after != last {
                        self.say_state(client, after).await;
                        last = after;
                    }
                    if after.prints() {
                        memory.remember(&job.job_id);
                        self.report(client, &job.job_id, JobState::Printed).await;
                    } else {
                        self.report(client, &job.job_id, job_state(after)).await;
                    }
                }
                _ = poll.tick() => {
                    let asked = query(&mut sock).await;
                    if asked.is_ok() {
                        answered = tokio::time::Instant::now();
                    }
                    match asked {
                        Ok(s) if s != last => {
                            self.say_state(client, s).await;
                            last = s;
                        }
                        Ok(_) => {}
                        Err(e) => return Ended::Lost(e),
                    }
                }
                () = shutdown.wait() => return Ended::Stop,
                _ = stop.changed() => return Ended::Stop,
            }
        }
    }
}

/// What a job report says for a printer that cannot print.
fn job_state(s: PrinterState) -> JobState {
    match s {
        PrinterState::PaperOut => JobState::PaperOut,
        PrinterState::CoverOpen => JobState::CoverOpen,
        _ => JobState::Error,
    }
}

/// Asks the printer its state (`DLE EOT 1`, `2`, `4`), each answer within [`ANSWER`].
/// One query at a time: sent together, the printer's three one-byte answers met Nagle's
/// algorithm on its side and the box's delayed ACK, 40 ms per state (the benchmark's printers
/// fell a minute behind), so each answer is read before the next query goes out.
async fn query(sock: &mut Link) -> Result<PrinterState, String> {
    let mut answers = [0u8; 3];
    for (i, q) in [QUERY_PRINTER, QUERY_OFFLINE, QUERY_PAPER]
        .iter()
        .enumerate()
    {
        let asked = async {
            sock.write_all(q).await?;
            sock.read_exact(&mut answers[i..=i]).await.map(|_| ())
        };
        match tokio::time::timeout(ANSWER, asked).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("the printer did not answer its status query".into()),
        }
    }
    Ok(status::parse(answers[0], answers[1], answers[2]))
}

/// Which jobs this driver printed, and which it tried without knowing the outcome.
#[derive(Default)]
struct Memory {
    printed: HashSet<String>,
    order: VecDeque<String>,
    tried: HashSet<String>,
}

impl Memory {
    fn printed(&self, id: &str) -> bool {
        self.printed.contains(id)
    }

    fn remember(&mut self, id: &str) {
        self.tried.remove(id);
        if self.printed.insert(id.to_owned()) {
            self.order.push_back(id.to_owned());
            if self.order.len() > REMEMBER
                && let Some(old) = self.order.pop_front()
            {
                self.printed.remove(&old);
            }
        }
    }
}
