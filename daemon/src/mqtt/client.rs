//! orderd's own MQTT client (rumqttc), used by the kitchen hub with either broker.
//!
//! rumqttc reconnects as fast as it is polled and keeps in-flight messages only in memory, so
//! this wrapper adds what the hub relies on: `TCP_NODELAY`, capped exponential back-off between
//! connection attempts, a retained `online`/`offline` hub status with a last will, and a
//! [`Inbound::Connected`] notice after every (re)connect so the hub re-subscribes and republishes
//! what the broker may have forgotten (boards, open jobs). Nothing durable lives here.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::server::Shutdown;

/// How to reach the broker.
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

/// What the client reports to the hub.
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

/// Counts the broker's acknowledgements of QoS 1 publishes on the current connection (reset
/// to 0 at every (re)connect, before [`Inbound::Connected`] is sent).
pub type Acks = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// Starts the client; returns the handle to publish with, the stream of inbound events and the
/// acknowledgement counter.
pub fn start(
    ep: &Endpoint,
    shutdown: Shutdown,
) -> (
    AsyncClient,
    mpsc::Receiver<Inbound>,
    Acks,
    tokio::task::JoinHandle<()>,
) {
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
    let acks = Acks::default();
    let task = tokio::spawn(drive(
        eventloop,
        publisher,
        status,
        tx,
        acks.clone(),
        shutdown,
    ));
    (client, rx, acks, task)
}

async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    status_topic: String,
    tx: mpsc::Sender<Inbound>,
    acks: Acks,
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
                acks.store(0, std::sync::atomic::Ordering::Release);
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
                acks.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
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
