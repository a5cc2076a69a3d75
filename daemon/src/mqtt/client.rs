//! orderd's own MQTT connection, the kitchen hub's: an in-process link to the embedded broker's
//! router, or a rumqttc client to an external broker.
//!
//! Either way the hub sees one [`HubClient`] to publish and subscribe with and one stream of
//! [`Inbound`] events, so its delivery rules are one code path:
//! - **Embedded broker:** the hub's link goes straight into rumqttd's router ([`start_local`]):
//!   no socket, no login, no MQTT encoding, no task in between. A message counts as
//!   acknowledged once the router has taken it from the link (it then sits in the router's log,
//!   as a PUBACK would prove). The link lives as long as the daemon, so there is one
//!   [`Inbound::Connected`] and never a reconnect.
//! - **External broker** ([`start`]): rumqttc reconnects as fast as it is polled and keeps
//!   in-flight messages only in memory, so this adds `TCP_NODELAY`, capped exponential back-off
//!   between connection attempts, a retained `online`/`offline` hub status with a last will, a
//!   count of PUBACKs, and an [`Inbound::Connected`] notice after every (re)connect so the hub
//!   re-subscribes and republishes what the broker may have forgotten (boards, open jobs).
//!
//! Nothing durable lives here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Packet, QoS};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Disconnect, DisconnectReasonCode, Packet as RouterPacket, Publish};
use tokio::sync::mpsc;

use crate::shutdown::Shutdown;

/// How to reach an external broker.
#[derive(Clone)]
pub struct Endpoint {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Username (also the client id).
    pub username: String,
    /// Password.
    pub password: String,
    /// Keep-alive.
    pub keep_alive: Duration,
    /// Topic of the hub's retained status (its last will says `offline`).
    pub status_topic: String,
}

/// What the connection reports to the hub.
#[derive(Debug)]
pub enum Inbound {
    /// A (re)connection was accepted: subscribe and republish.
    Connected,
    /// The connection was lost.
    Disconnected(String),
    /// A message on a subscribed topic.
    Message {
        /// Topic.
        topic: String,
        /// Payload.
        payload: Bytes,
    },
}

/// A started connection: the handle to publish with, what comes in, and its task.
pub struct Started {
    /// Publishes and subscribes.
    pub client: HubClient,
    /// Connection events and inbound messages.
    pub inbound: mpsc::Receiver<Inbound>,
    /// The task that drives the connection (ends at shutdown).
    pub task: tokio::task::JoinHandle<()>,
}

/// The hub's handle on its connection.
pub struct HubClient {
    link: Link,
    /// QoS 1 messages handed over on this connection (remote), or every packet handed to the
    /// router (local): what [`HubClient::acked`] is compared with.
    issued: u64,
}

enum Link {
    /// Through rumqttc to an external broker; PUBACKs counted by the driver (reset to 0 at
    /// every (re)connect, before [`Inbound::Connected`] is sent).
    Remote {
        client: AsyncClient,
        acks: Arc<AtomicU64>,
    },
    /// Straight into the embedded broker's router.
    Local { tx: LinkTx, status_topic: String },
}

impl HubClient {
    /// Publishes; QoS 1 messages count towards [`HubClient::issued`].
    pub async fn publish(
        &mut self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        match &mut self.link {
            Link::Remote { client, .. } => {
                client
                    .publish(topic, qos, retain, payload)
                    .await
                    .map_err(|e| e.to_string())?;
                if qos == QoS::AtLeastOnce {
                    self.issued += 1;
                }
            }
            Link::Local { tx, .. } => {
                // The router forwards at each subscription's QoS, whatever the publish's; a
                // local link may only hand it QoS 0 (rumqttd keeps QoS 1 fields private).
                // Handing over never waits unless the router is 1,000 events behind (its
                // channel's bound), as for every broker connection.
                let publish = Publish::new(Bytes::from(topic), Bytes::from(payload), retain);
                tx.send(RouterPacket::Publish(publish, None))
                    .await
                    .map_err(|e| e.to_string())?;
                self.issued += 1;
            }
        }
        Ok(())
    }

    /// Subscribes to what devices send: at QoS 1 on an external broker; in-process at QoS 0,
    /// since nothing is in transit between the router and the link (like any subscriber, a
    /// hub a whole topic log behind would miss messages, which rumqttd logs as a cursor jump).
    pub async fn subscribe(&mut self, filter: String) -> Result<(), String> {
        match &mut self.link {
            Link::Remote { client, .. } => client
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .map_err(|e| e.to_string()),
            Link::Local { tx, .. } => {
                tx.subscribe(filter).map_err(|e| e.to_string())?;
                self.issued += 1;
                Ok(())
            }
        }
    }

    /// What was handed over on this connection (see [`HubClient::acked`]).
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// How many of [`HubClient::issued`] the broker has: PUBACKs from an external broker, or
    /// those the router has taken from the local link (it takes them in order).
    pub fn acked(&self) -> u64 {
        match &self.link {
            Link::Remote { acks, .. } => acks.load(Ordering::Acquire),
            Link::Local { tx, .. } => self.issued.saturating_sub(tx.buffer().len() as u64),
        }
    }

    /// Starts counting again for a new connection.
    pub fn reset(&mut self) {
        self.issued = 0;
    }

    /// Says goodbye on a local link: retained `offline`, then DISCONNECT. (The remote driver
    /// says its own goodbye at shutdown, with the will as a backstop.)
    pub async fn close(&mut self) {
        if let Link::Local { tx, status_topic } = &mut self.link {
            let offline = Publish::new(
                Bytes::from(status_topic.clone()),
                Bytes::from_static(b"offline"),
                true,
            );
            let _ = tx.send(RouterPacket::Publish(offline, None)).await;
            let bye = Disconnect {
                reason_code: DisconnectReasonCode::NormalDisconnection,
            };
            let _ = tx.send(RouterPacket::Disconnect(bye, None)).await;
        }
    }
}

/// Starts the hub's in-process link to the embedded broker's router (built by
/// [`crate::mqtt::broker::Broker::local_link`]): announces the retained `online` status and
/// reports one [`Inbound::Connected`].
pub async fn start_local(
    (mut tx, rx): (LinkTx, LinkRx),
    status_topic: String,
    shutdown: Shutdown,
) -> Result<Started, String> {
    let online = Publish::new(
        Bytes::from(status_topic.clone()),
        Bytes::from_static(b"online"),
        true,
    );
    tx.send(RouterPacket::Publish(online, None))
        .await
        .map_err(|e| e.to_string())?;
    Ok(start_quiet((tx, rx), status_topic, shutdown))
}

/// Like [`start_local`] without announcing `online`: for a network printer's driver, which says
/// `online` only once its printer answers ([`HubClient::close`] still says `offline`).
pub fn start_quiet(
    (tx, rx): (LinkTx, LinkRx),
    status_topic: String,
    shutdown: Shutdown,
) -> Started {
    let (inbound_tx, inbound) = mpsc::channel(4096);
    let task = tokio::spawn(drive_local(rx, inbound_tx, shutdown));
    Started {
        client: HubClient {
            link: Link::Local { tx, status_topic },
            issued: 0,
        },
        inbound,
        task,
    }
}

async fn drive_local(mut rx: LinkRx, tx: mpsc::Sender<Inbound>, mut shutdown: Shutdown) {
    if tx.send(Inbound::Connected).await.is_err() {
        return;
    }
    loop {
        let next = tokio::select! {
            () = shutdown.wait() => break,
            n = rx.next() => n,
        };
        let reason = match next {
            Ok(Some(n)) => match Option::<RouterPacket>::from(n) {
                Some(RouterPacket::Publish(p, _)) => {
                    let Ok(topic) = std::str::from_utf8(&p.topic) else {
                        continue;
                    };
                    let msg = Inbound::Message {
                        topic: topic.to_owned(),
                        payload: p.payload,
                    };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                    continue;
                }
                Some(RouterPacket::Disconnect(..)) => "the router closed the hub's link".to_owned(),
                // SUBACKs.
                Some(_) => continue,
                // The router paused the link (its queue was full): ask for more.
                None => match rx.wake().await {
                    Ok(()) => continue,
                    Err(e) => e.to_string(),
                },
            },
            Ok(None) => continue,
            Err(e) => e.to_string(),
        };
        // Only when the router itself is gone or dropped the link; nothing reconnects it.
        tracing::error!(error = %reason, "the kitchen hub lost its link to the embedded broker");
        let _ = tx.send(Inbound::Disconnected(reason)).await;
        break;
    }
}

/// Starts the client of an external broker.
pub fn start(ep: &Endpoint, shutdown: Shutdown) -> Started {
    let mut opts = MqttOptions::new(ep.username.clone(), ep.host.clone(), ep.port);
    opts.set_credentials(ep.username.clone(), ep.password.clone())
        .set_keep_alive(ep.keep_alive)
        .set_clean_session(true)
        .set_max_packet_size(1024 * 1024, 1024 * 1024)
        .set_inflight(1000)
        .set_last_will(LastWill::new(
            ep.status_topic.clone(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    let (client, mut eventloop) = AsyncClient::new(opts, 4096);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    eventloop.set_network_options(net);
    let (tx, rx) = mpsc::channel(4096);
    let status = ep.status_topic.clone();
    let publisher = client.clone();
    let acks = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(drive(
        eventloop,
        publisher,
        status,
        tx,
        Arc::clone(&acks),
        shutdown,
    ));
    Started {
        client: HubClient {
            link: Link::Remote { client, acks },
            issued: 0,
        },
        inbound: rx,
        task,
    }
}

async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    status_topic: String,
    tx: mpsc::Sender<Inbound>,
    acks: Arc<AtomicU64>,
    mut shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = tokio::select! {
            () = shutdown.wait() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                acks.store(0, Ordering::Release);
                let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, "online");
                if tx.send(Inbound::Connected).await.is_err() {
                    break;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = p.topic.clone();
                let msg = Inbound::Message {
                    topic,
                    payload: p.payload,
                };
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acks.fetch_add(1, Ordering::AcqRel);
            }
            Ok(_) => {}
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(error = %reason, retry_in_ms = backoff.as_millis(), "MQTT connection to the broker lost");
                if tx.send(Inbound::Disconnected(reason)).await.is_err() {
                    break;
                }
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    // A clean goodbye: retained `offline`, then DISCONNECT (no will needed).
    let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, "offline");
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Ok(ev) = eventloop.poll().await {
            if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
}
