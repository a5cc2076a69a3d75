//! The embedded MQTT broker: rumqttd's router behind an accept loop of our own.
//!
//! rumqttd 0.20 routes messages well but its server cannot do what a kitchen needs: it never
//! sets `TCP_NODELAY` (Nagle then adds ~40 ms to some tickets), has no topic ACL, cannot report
//! the port behind port 0 and has no shutdown. So orderd owns the sockets, speaks MQTT 3.1.1
//! with rumqttd's own codec, and hands each authenticated connection to the router through
//! `local::LinkBuilder`:
//!
//! - CONNECT: the client id must equal the username; a device's password is checked against
//!   its argon2id hash (then remembered as a SHA-256 so reconnects are cheap), orderd's own hub
//!   client against a per-run random secret, in constant time.
//! - PUBLISH and SUBSCRIBE are checked against the device's topics
//!   ([`crate::domain::devices::Device::may_publish`] / `may_subscribe`) before the router sees
//!   them. A refused SUBSCRIBE gets a failure SUBACK; a refused PUBLISH is diverted to a topic
//!   nobody can read, so the router still acknowledges it, as Mosquitto does.
//! - The last will is kept here and published through the link when a connection ends without
//!   DISCONNECT, because rumqttd's will trigger is private to its own server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{
    ConnAck, ConnectReturnCode, Disconnect, DisconnectReasonCode, LastWill, Packet, Protocol as _,
    Publish, SubAck, SubscribeReasonCode,
};
use rumqttd::{Notification, Router, RouterConfig};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::config::MqttConfig;
use crate::domain::devices::{self, Device};
use crate::metrics::{Metrics, RefusalLabels};
use crate::server::Shutdown;
use crate::store::Store;

/// Where refused publishes go: no client may subscribe to it.
const SINK_TOPIC: &str = "$orderd/refused";
/// Largest packet orderd's own hub client may send (boards of a busy station).
const HUB_MAX_PACKET: usize = 1024 * 1024;

/// Opens a router link for a client id (the router's event type is not nameable outside
/// rumqttd, so the sender lives inside this closure).
type Connector = Arc<
    dyn Fn(String, bool) -> Result<(LinkTx, LinkRx, Notification), Box<LinkError>> + Send + Sync,
>;

/// Who is on the other end of a connection.
enum Identity {
    /// orderd's own hub client: everything below `orderd/{site}/` and the discovery prefix.
    Hub { prefixes: Vec<String> },
    /// A registered device: exactly its own topics.
    Device {
        publish: Vec<String>,
        subscribe: Vec<String>,
    },
}

impl Identity {
    fn may_publish(&self, topic: &str) -> bool {
        match self {
            Self::Hub { prefixes } => prefixes.iter().any(|p| topic.starts_with(p.as_str())),
            Self::Device { publish, .. } => publish.iter().any(|t| t == topic),
        }
    }

    fn may_subscribe(&self, filter: &str) -> bool {
        match self {
            Self::Hub { prefixes } => prefixes.iter().any(|p| filter.starts_with(p.as_str())),
            Self::Device { subscribe, .. } => subscribe.iter().any(|t| t == filter),
        }
    }

    fn max_packet(&self, device_max: usize) -> usize {
        match self {
            Self::Hub { .. } => HUB_MAX_PACKET,
            Self::Device { .. } => device_max,
        }
    }
}

/// The running embedded broker.
pub struct Broker {
    addr: SocketAddr,
    hub_secret: String,
    live: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Broker {
    /// The bound address (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The password of orderd's own hub client for this run.
    pub fn hub_secret(&self) -> &str {
        &self.hub_secret
    }

    /// Closes a client's connection (e.g. its device was removed).
    pub fn kick(&self, client_id: &str) {
        if let Some(n) = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(client_id)
        {
            n.notify_one();
        }
    }
}

/// Shared by every connection task.
struct Ctx {
    connect: Connector,
    store: Store,
    site: String,
    hub_user: String,
    hub_secret: String,
    discovery_prefix: String,
    device_max_packet: usize,
    connect_timeout: Duration,
    max_connections: usize,
    metrics: Arc<Metrics>,
    /// device id → (its argon2id hash, SHA-256 of a password verified against that hash). The
    /// hash is part of the key, so a re-registered device never accepts its old password.
    verified: Mutex<HashMap<String, (String, [u8; 32])>>,
    live: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

/// Starts the router and the accept loop on `listener`.
pub fn start(
    listener: TcpListener,
    cfg: &MqttConfig,
    site: &str,
    store: Store,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> std::io::Result<(Broker, tokio::task::JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let max_connections = usize::try_from(cfg.max_connections).unwrap_or(1000);
    // Segment sizes set explicitly: rumqttd keeps every topic's log in RAM, and with large
    // segments a busy topic grows to hundreds of MB. 64 KiB × 2 per topic levels off small;
    // what must not be lost (jobs, boards) is in redb and resent by the hub anyway.
    let router = Router::new(
        0,
        RouterConfig {
            max_connections: max_connections + 2,
            max_outgoing_packet_count: 200,
            max_segment_size: 64 * 1024,
            max_segment_count: 2,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: rumqttd::Strategy::default(),
        },
    );
    let router_tx = router.spawn();
    let connect: Connector = Arc::new(move |client_id: String, clean: bool| {
        LinkBuilder::new(&client_id, router_tx.clone())
            .clean_session(clean)
            .build()
            .map_err(Box::new)
    });
    let hub_secret = super::random_secret();
    let live = Arc::new(Mutex::new(HashMap::new()));
    let ctx = Arc::new(Ctx {
        connect,
        store,
        site: site.to_owned(),
        hub_user: cfg.hub_username.clone(),
        hub_secret: hub_secret.clone(),
        discovery_prefix: cfg.discovery_prefix.clone(),
        device_max_packet: usize::try_from(cfg.max_device_packet_bytes).unwrap_or(16 * 1024),
        connect_timeout: Duration::from_secs(u64::from(cfg.connect_timeout_secs)),
        max_connections,
        metrics,
        verified: Mutex::new(HashMap::new()),
        live: Arc::clone(&live),
    });
    let task = tokio::spawn(accept_loop(listener, ctx, shutdown));
    Ok((
        Broker {
            addr,
            hub_secret,
            live,
        },
        task,
    ))
}

async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            () = shutdown.wait() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "MQTT accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.load(std::sync::atomic::Ordering::Relaxed) >= ctx.max_connections {
            tracing::warn!(%peer, max = ctx.max_connections, "MQTT connection refused: at the connection limit");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let ctx = Arc::clone(&ctx);
        let open = Arc::clone(&open);
        let shutdown = shutdown.clone();
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(async move {
            ctx.metrics.mqtt_connections.inc();
            if let Err(e) = serve(stream, peer, &ctx, shutdown).await {
                tracing::debug!(%peer, error = %e, "MQTT connection ended");
            }
            ctx.metrics.mqtt_connections.dec();
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
    tracing::info!("MQTT broker stopped accepting");
}

/// One client's socket, framed with rumqttd's v4 codec.
struct Conn {
    stream: TcpStream,
    read: BytesMut,
    write: BytesMut,
    max_packet: usize,
}

impl Conn {
    async fn read(&mut self) -> std::io::Result<Packet> {
        loop {
            match V4.read_mut(&mut self.read, self.max_packet) {
                Ok(p) => return Ok(p),
                Err(rumqttd::protocol::Error::InsufficientBytes(_)) => {}
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("bad MQTT packet: {e:?}"),
                    ));
                }
            }
            if self.read.capacity() - self.read.len() < 512 {
                self.read.reserve(4096);
            }
            if self.stream.read_buf(&mut self.read).await? == 0 {
                return Err(std::io::ErrorKind::ConnectionAborted.into());
            }
        }
    }

    async fn write(&mut self, packet: Packet) -> std::io::Result<()> {
        V4.write(packet, &mut self.write)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{e:?}")))?;
        self.stream.write_all(&self.write).await?;
        self.write.clear();
        // Idle connections keep little memory: give back buffers a burst grew.
        if self.write.capacity() > 64 * 1024 {
            self.write = BytesMut::new();
        }
        Ok(())
    }
}

fn connack(code: ConnectReturnCode) -> Packet {
    Packet::ConnAck(
        ConnAck {
            session_present: false,
            code,
        },
        None,
    )
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Arc<Ctx>,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let mut conn = Conn {
        stream,
        read: BytesMut::with_capacity(256),
        write: BytesMut::new(),
        max_packet: ctx.device_max_packet,
    };
    let first = tokio::time::timeout(ctx.connect_timeout, conn.read())
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let Packet::Connect(connect, _, will, _, login) = first else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "first packet is not CONNECT",
        ));
    };
    let client_id = connect.client_id.clone();
    let identity = match authenticate(ctx, &client_id, login.as_ref()).await {
        Ok(identity) => identity,
        Err(code) => {
            ctx.metrics
                .mqtt_refused
                .get_or_create(&RefusalLabels {
                    what: "login".into(),
                })
                .inc();
            tracing::warn!(%peer, client_id = %client_id, "MQTT login refused");
            let _ = conn.write(connack(code)).await;
            return Ok(());
        }
    };
    if let Some(w) = &will
        && !std::str::from_utf8(&w.topic).is_ok_and(|t| identity.may_publish(t))
    {
        tracing::warn!(%peer, client_id = %client_id, "MQTT login refused: last will on a topic it may not publish");
        let _ = conn.write(connack(ConnectReturnCode::NotAuthorized)).await;
        return Ok(());
    }
    conn.max_packet = identity.max_packet(ctx.device_max_packet);

    let connector = Arc::clone(&ctx.connect);
    let id_for_link = client_id.clone();
    let clean = connect.clean_session;
    let (mut link_tx, mut link_rx, ack) =
        tokio::task::spawn_blocking(move || connector(id_for_link, clean))
            .await
            .map_err(std::io::Error::other)?
            .map_err(|e| std::io::Error::other(format!("router refused the link: {e}")))?;
    if let Some(packet) = Option::<Packet>::from(ack) {
        conn.write(packet).await?;
    }
    let kick = Arc::new(Notify::new());
    if let Some(old) = ctx
        .live
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(client_id.clone(), Arc::clone(&kick))
    {
        // A second connection with the same id replaces the first (MQTT session takeover).
        old.notify_one();
    }
    tracing::info!(%peer, client_id = %client_id, "MQTT client connected");

    // 1.5 × keep-alive without a packet means the client is gone (MQTT 3.1.1, 3.1.2.10).
    let idle = if connect.keep_alive == 0 {
        Duration::from_secs(24 * 3600)
    } else {
        Duration::from_millis(u64::from(connect.keep_alive) * 1500)
    };
    let end = session(
        &mut conn,
        &identity,
        &client_id,
        &mut link_tx,
        &mut link_rx,
        idle,
        &kick,
        &mut shutdown,
        ctx,
    )
    .await;
    {
        let mut live = ctx
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if live.get(&client_id).is_some_and(|k| Arc::ptr_eq(k, &kick)) {
            live.remove(&client_id);
        }
    }
    match end {
        End::Clean => {}
        End::Unclean(reason) => {
            tracing::info!(%peer, client_id = %client_id, %reason, "MQTT client gone");
            if let Some(w) = will {
                let _ = link_tx.send(will_publish(w)).await;
            }
        }
        End::ByRouter => return Ok(()),
    }
    let _ = link_tx
        .send(Packet::Disconnect(
            Disconnect {
                reason_code: DisconnectReasonCode::NormalDisconnection,
            },
            None,
        ))
        .await;
    Ok(())
}

fn will_publish(w: LastWill) -> Packet {
    Packet::Publish(Publish::new(w.topic, w.message, w.retain), None)
}

enum End {
    /// DISCONNECT received (or the daemon or an admin closed it): no will.
    Clean,
    /// The socket failed or went quiet: the will is published.
    Unclean(String),
    /// The router closed the link (session taken over).
    ByRouter,
}

#[allow(clippy::too_many_arguments)]
async fn session(
    conn: &mut Conn,
    identity: &Identity,
    client_id: &str,
    link_tx: &mut LinkTx,
    link_rx: &mut LinkRx,
    idle: Duration,
    kick: &Notify,
    shutdown: &mut Shutdown,
    ctx: &Ctx,
) -> End {
    loop {
        tokio::select! {
            () = shutdown.wait() => return End::Clean,
            () = kick.notified() => return End::Clean,
            read = tokio::time::timeout(idle, conn.read()) => {
                let packet = match read {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => return End::Unclean(e.to_string()),
                    Err(_) => return End::Unclean("keep-alive expired".into()),
                };
                match inbound(packet, identity, client_id, conn, ctx).await {
                    Ok(Some(Packet::Disconnect(..))) => return End::Clean,
                    Ok(Some(p)) => {
                        if link_tx.send(p).await.is_err() {
                            return End::ByRouter;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return End::Unclean(e.to_string()),
                }
                // Give back a read buffer a large packet grew.
                if conn.read.is_empty() && conn.read.capacity() > 64 * 1024 {
                    conn.read = BytesMut::with_capacity(256);
                }
            }
            next = link_rx.next() => {
                match next {
                    Ok(Some(n)) => match Option::<Packet>::from(n) {
                        Some(Packet::Disconnect(..)) => return End::ByRouter,
                        Some(p) => {
                            if let Err(e) = conn.write(p).await {
                                return End::Unclean(e.to_string());
                            }
                        }
                        None => {
                            if link_rx.wake().await.is_err() {
                                return End::ByRouter;
                            }
                        }
                    },
                    Ok(None) => {}
                    Err(_) => return End::ByRouter,
                }
            }
        }
    }
}

/// Checks one inbound packet; returns what to hand to the router.
async fn inbound(
    packet: Packet,
    identity: &Identity,
    client_id: &str,
    conn: &mut Conn,
    ctx: &Ctx,
) -> std::io::Result<Option<Packet>> {
    let refused = |what: &str| {
        ctx.metrics
            .mqtt_refused
            .get_or_create(&RefusalLabels { what: what.into() })
            .inc();
    };
    match packet {
        Packet::Publish(mut publish, props) => {
            let allowed =
                std::str::from_utf8(&publish.topic).is_ok_and(|t| identity.may_publish(t));
            if !allowed {
                refused("publish");
                tracing::warn!(
                    client_id,
                    topic = %String::from_utf8_lossy(&publish.topic),
                    "MQTT publish refused: not one of the device's topics"
                );
                // Still acknowledged (by the router), never delivered or retained.
                publish.topic = Bytes::from_static(SINK_TOPIC.as_bytes());
                publish.retain = false;
            }
            Ok(Some(Packet::Publish(publish, props)))
        }
        Packet::Subscribe(subscribe, props) => {
            if subscribe
                .filters
                .iter()
                .all(|f| identity.may_subscribe(&f.path))
            {
                return Ok(Some(Packet::Subscribe(subscribe, props)));
            }
            refused("subscribe");
            tracing::warn!(
                client_id,
                filters = ?subscribe.filters.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
                "MQTT subscribe refused: not one of the device's topics"
            );
            let codes = vec![SubscribeReasonCode::Failure; subscribe.filters.len()];
            conn.write(Packet::SubAck(
                SubAck {
                    pkid: subscribe.pkid,
                    return_codes: codes,
                },
                None,
            ))
            .await?;
            Ok(None)
        }
        Packet::Connect(..) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "second CONNECT",
        )),
        other => Ok(Some(other)),
    }
}

async fn authenticate(
    ctx: &Arc<Ctx>,
    client_id: &str,
    login: Option<&rumqttd::protocol::Login>,
) -> Result<Identity, ConnectReturnCode> {
    let login = login.ok_or(ConnectReturnCode::NotAuthorized)?;
    if login.username != client_id {
        // One identity per connection: the client id is the username.
        return Err(ConnectReturnCode::ClientIdentifierNotValid);
    }
    if login.username == ctx.hub_user {
        return if bool::from(login.password.as_bytes().ct_eq(ctx.hub_secret.as_bytes())) {
            Ok(Identity::Hub {
                prefixes: vec![
                    format!("{}/", orderd_protocol::topics::site_prefix(&ctx.site)),
                    format!("{}/", ctx.discovery_prefix),
                ],
            })
        } else {
            Err(ConnectReturnCode::BadUserNamePassword)
        };
    }
    let device =
        lookup(&ctx.store, &login.username).ok_or(ConnectReturnCode::BadUserNamePassword)?;
    let digest: [u8; 32] = Sha256::digest(login.password.as_bytes()).into();
    let cached = ctx
        .verified
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&device.id)
        .is_some_and(|(hash, d)| *hash == device.password_hash && bool::from(d.ct_eq(&digest)));
    if !cached {
        let hash = device.password_hash.clone();
        let password = login.password.clone();
        let ok =
            tokio::task::spawn_blocking(move || crate::auth::verify_password(&hash, &password))
                .await
                .unwrap_or(false);
        if !ok {
            return Err(ConnectReturnCode::BadUserNamePassword);
        }
        ctx.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(device.id.clone(), (device.password_hash.clone(), digest));
    }
    Ok(Identity::Device {
        publish: device.may_publish(&ctx.site),
        subscribe: device.may_subscribe(&ctx.site),
    })
}

fn lookup(store: &Store, id: &str) -> Option<Device> {
    let rtx = store.read().ok()?;
    devices::get(&rtx, id).ok().flatten()
}
