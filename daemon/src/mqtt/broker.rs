//! The embedded MQTT broker: rumqttd's router behind an accept loop of our own.
//!
//! rumqttd 0.20 routes messages well but its server cannot do what a kitchen needs: it never
//! sets `TCP_NODELAY` (Nagle then adds ~40 ms to some tickets), has no topic ACL, cannot report
//! the port behind port 0 and has no shutdown. So orderd owns the sockets, speaks MQTT 3.1.1
//! with rumqttd's own codec, and hands each authenticated connection to the router through
//! `local::LinkBuilder`:
//!
//! - CONNECT: the client id must equal the username; a device's password is checked against
//!   its argon2id hash (then remembered as a SHA-256 so reconnects are cheap), in constant
//!   time. orderd's own hub never logs in: it has an in-process link to the router
//!   ([`Broker::local_link`]), so its username is refused on every listener.
//! - PUBLISH and SUBSCRIBE are checked against the device's topics
//!   ([`crate::domain::devices::Device::may_publish`] / `may_subscribe`) before the router sees
//!   them. A refused SUBSCRIBE gets a failure SUBACK; a refused PUBLISH is diverted to a topic
//!   nobody can read, so the router still acknowledges it, as Mosquitto does.
//! - The last will is kept here and published through the link when a connection ends without
//!   DISCONNECT, because rumqttd's will trigger is private to its own server.
//! - Besides plain TCP, optional listeners speak MQTT over TLS (rustls), over WebSocket
//!   (subprotocol `mqtt`) and over WebSocket in TLS; all of them end in the same [`Conn`], so
//!   login, ACL and limits are identical on every transport.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{
    ConnAck, ConnectReturnCode, Disconnect, DisconnectReasonCode, LastWill, Packet, Protocol as _,
    Publish, SubAck, SubscribeReasonCode,
};
use rumqttd::{Notification, Router, RouterConfig};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::MqttSettings;
use crate::domain::devices::{self, Device};
use crate::metrics::{Metrics, RefusalLabels};
use crate::shutdown::Shutdown;
use crate::store::Store;

/// Where refused publishes go: no client may subscribe to it.
const SINK_TOPIC: &str = "$orderd/refused";
/// At most this many packets, or about this many bytes, go to a client in one write.
const MAX_BATCH: usize = 64;
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// At shutdown, how long a device's connection stays open to pass on the hub's goodbye
/// (`hub/status offline`) before it closes.
pub const GOODBYE_GRACE: Duration = Duration::from_secs(1);

/// Opens a router link for a client id (the router's event type is not nameable outside
/// rumqttd, so the sender lives inside this closure).
type Connector = Arc<
    dyn Fn(String, bool) -> Result<(LinkTx, LinkRx, Notification), Box<LinkError>> + Send + Sync,
>;

/// The registered device on the other end of a connection, and exactly its own topics.
struct Identity {
    publish: Vec<String>,
    subscribe: Vec<String>,
}

impl Identity {
    fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|t| t == topic)
    }

    fn may_subscribe(&self, filter: &str) -> bool {
        self.subscribe
            .iter()
            .any(|allowed| orderd_protocol::topics::filter_within(filter, allowed))
    }
}

/// What a listener speaks on top of TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// MQTT straight on TCP (`mqtt://`).
    Tcp,
    /// MQTT in TLS (`mqtts://`).
    Tls,
    /// MQTT in WebSocket binary frames (`ws://`).
    Ws,
    /// MQTT in WebSocket in TLS (`wss://`).
    Wss,
}

impl Transport {
    /// The URL scheme clients use for it.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Tcp => "mqtt",
            Self::Tls => "mqtts",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    fn ws(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }
}

/// A bound socket and what it speaks.
pub struct Listener {
    /// What clients speak on it.
    pub transport: Transport,
    /// The bound socket.
    pub socket: TcpListener,
}

/// The running embedded broker.
pub struct Broker {
    addr: SocketAddr,
    listening: Vec<(Transport, SocketAddr)>,
    connect: Connector,
    hub_user: String,
    live: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Broker {
    /// The bound address (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every bound listener (the real ports when 0 was asked for).
    pub fn listening(&self) -> &[(Transport, SocketAddr)] {
        &self.listening
    }

    /// Opens orderd's own hub link straight into the router: no socket, no login, no MQTT
    /// encoding. Blocks until the router has accepted it (call it off the async threads).
    pub fn local_link(&self) -> Result<(LinkTx, LinkRx), Box<LinkError>> {
        let (tx, rx, _connack) = (self.connect)(self.hub_user.clone(), true)?;
        Ok((tx, rx))
    }

    /// An in-process link as device `id` (a printer on the LAN, driven by the box itself): no
    /// login, since nothing outside the box holds it.
    pub fn device_link(&self, id: &str) -> Result<(LinkTx, LinkRx), Box<LinkError>> {
        let (tx, rx, _connack) = (self.connect)(id.to_owned(), true)?;
        Ok((tx, rx))
    }

    /// Waits, at shutdown, until every device's connection has passed on the hub's goodbye and
    /// closed, or `deadline` has passed.
    pub async fn connections_closed(&self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        while tokio::time::Instant::now() < until
            && !self
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
    discovery_prefix: String,
    device_max_packet: usize,
    connect_timeout: Duration,
    max_connections: usize,
    open: std::sync::atomic::AtomicUsize,
    tls: Option<TlsAcceptor>,
    metrics: Arc<Metrics>,
    /// Device-login limits (the staff sign-in rule: reserved before the hash).
    throttle: crate::throttle::Throttle,
    /// The throttle's clock.
    started: std::time::Instant,
    /// device id → (its argon2id hash, SHA-256 of a password verified against that hash). The
    /// hash is part of the key, so a re-registered device never accepts its old password.
    verified: Mutex<HashMap<String, (String, [u8; 32])>>,
    live: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

/// What the broker uses from the rest of the daemon.
pub struct Deps {
    /// The store (device registry).
    pub store: Store,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Device-login limits (`[auth]`, the same rule as staff sign-in).
    pub login_limits: crate::throttle::Limits,
}

/// Starts the router and an accept loop per listener. The first listener must be plain TCP
/// (orderd's own hub connects there); TLS listeners need `tls`.
pub fn start(
    listeners: Vec<Listener>,
    tls: Option<TlsAcceptor>,
    cfg: &MqttSettings,
    site: &str,
    deps: Deps,
    shutdown: &Shutdown,
) -> std::io::Result<(Broker, Vec<tokio::task::JoinHandle<()>>)> {
    let Deps {
        store,
        metrics,
        login_limits,
    } = deps;
    let mut listening = Vec::with_capacity(listeners.len());
    for l in &listeners {
        listening.push((l.transport, l.socket.local_addr()?));
    }
    let addr = match listening.first() {
        Some((Transport::Tcp, addr)) => *addr,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the first MQTT listener must be plain TCP",
            ));
        }
    };
    if tls.is_none() && listening.iter().any(|(t, _)| t.tls()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a TLS listener needs a certificate and key",
        ));
    }
    let max_connections = usize::try_from(cfg.max_connections).unwrap_or(1000);
    // Segment sizes set explicitly: rumqttd keeps every topic's log in RAM, and with large
    // segments a busy topic grows to hundreds of MB. 64 KiB × 2 per topic levels off small;
    // what must not be lost (jobs, boards) is in redb and resent by the hub anyway.
    let router = Router::new(
        0,
        RouterConfig {
            max_connections: max_connections + 2,
            max_outgoing_packet_count: 200,
            max_segment_size: 32 * 1024,
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
    let live = Arc::new(Mutex::new(HashMap::new()));
    let ctx = Arc::new(Ctx {
        connect: Arc::clone(&connect),
        store,
        site: site.to_owned(),
        hub_user: cfg.hub_username.clone(),
        discovery_prefix: cfg.discovery_prefix.clone(),
        device_max_packet: usize::try_from(cfg.max_device_packet_bytes).unwrap_or(16 * 1024),
        connect_timeout: cfg.connect_timeout,
        max_connections,
        open: std::sync::atomic::AtomicUsize::new(0),
        tls,
        metrics,
        throttle: crate::throttle::Throttle::new(login_limits),
        started: std::time::Instant::now(),
        verified: Mutex::new(HashMap::new()),
        live: Arc::clone(&live),
    });
    let tasks = listeners
        .into_iter()
        .map(|l| {
            tokio::spawn(accept_loop(
                l.socket,
                l.transport,
                Arc::clone(&ctx),
                shutdown.clone(),
            ))
        })
        .collect();
    Ok((
        Broker {
            addr,
            listening,
            connect,
            hub_user: cfg.hub_username.clone(),
            live,
        },
        tasks,
    ))
}

async fn accept_loop(
    listener: TcpListener,
    transport: Transport,
    ctx: Arc<Ctx>,
    mut shutdown: Shutdown,
) {
    use std::sync::atomic::Ordering::Relaxed;
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
        if ctx.open.load(Relaxed) >= ctx.max_connections {
            tracing::warn!(%peer, max = ctx.max_connections, "MQTT connection refused: at the connection limit");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let ctx = Arc::clone(&ctx);
        let shutdown = shutdown.clone();
        ctx.open.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            ctx.metrics.mqtt_connections.inc();
            let wrapped = tokio::time::timeout(ctx.connect_timeout, wrap(stream, transport, &ctx))
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            match wrapped {
                Ok(io) => {
                    if let Err(e) = serve(io, peer, &ctx, shutdown).await {
                        tracing::debug!(%peer, error = %e, "MQTT connection ended");
                    }
                }
                Err(e) => {
                    tracing::info!(%peer, transport = transport.scheme(), error = %e, "MQTT handshake failed");
                }
            }
            ctx.metrics.mqtt_connections.dec();
            ctx.open.fetch_sub(1, Relaxed);
        });
    }
    tracing::info!(
        transport = transport.scheme(),
        "MQTT listener stopped accepting"
    );
}

/// A byte stream: plain TCP or TLS.
trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// What MQTT packets travel in.
enum Io {
    /// The packets are the stream (TCP, TLS).
    Bytes(Box<dyn ByteStream>),
    /// The packets travel in WebSocket binary messages.
    Ws(Box<WebSocketStream<Box<dyn ByteStream>>>),
}

/// Runs the TLS and WebSocket handshakes a listener asks for.
async fn wrap(stream: TcpStream, transport: Transport, ctx: &Ctx) -> std::io::Result<Io> {
    let stream: Box<dyn ByteStream> = if transport.tls() {
        let acceptor = ctx
            .tls
            .as_ref()
            .ok_or_else(|| std::io::Error::other("TLS is not configured"))?;
        Box::new(acceptor.accept(stream).await?)
    } else {
        Box::new(stream)
    };
    if !transport.ws() {
        return Ok(Io::Bytes(stream));
    }
    let limit = ctx.device_max_packet;
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, select_mqtt, Some(config))
        .await
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(Io::Ws(Box::new(ws)))
}

/// WebSocket upgrade: answers with the `mqtt` subprotocol when the client offers it (MQTT
/// 3.1.1, 6.0); a client that offers other subprotocols only is refused.
#[allow(clippy::result_large_err, clippy::unnecessary_wraps)]
fn select_mqtt(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered: Vec<&str> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if offered.iter().any(|p| p.eq_ignore_ascii_case("mqtt")) {
        resp.headers_mut().insert(
            "sec-websocket-protocol",
            tokio_tungstenite::tungstenite::http::HeaderValue::from_static("mqtt"),
        );
    } else if !offered.is_empty() {
        let mut refusal = ErrorResponse::new(Some("subprotocol mqtt required".into()));
        *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    Ok(resp)
}

/// One client's connection, framed with rumqttd's v4 codec.
struct Conn {
    io: Io,
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
                Err(rumqttd::protocol::Error::InvalidProtocolLevel(level)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        format!("MQTT protocol level {level}; this broker speaks 3.1.1 (4)"),
                    ));
                }
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("bad MQTT packet: {e:?}"),
                    ));
                }
            }
            if !self.fill().await? {
                return Err(std::io::ErrorKind::ConnectionAborted.into());
            }
        }
    }

    /// Reads more bytes into the read buffer; `false` at the end of the stream. Cancel-safe:
    /// both `read_buf` and the WebSocket stream keep partial input inside.
    async fn fill(&mut self) -> std::io::Result<bool> {
        match &mut self.io {
            Io::Bytes(stream) => {
                if self.read.capacity() - self.read.len() < 512 {
                    self.read.reserve(4096);
                }
                Ok(stream.read_buf(&mut self.read).await? > 0)
            }
            Io::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(data))) => {
                        if !data.is_empty() {
                            self.read.extend_from_slice(&data);
                            return Ok(true);
                        }
                    }
                    Some(Ok(Message::Text(_))) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "MQTT over WebSocket is binary; text message received",
                        ));
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(false),
                    Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
                    Some(Err(e)) => return Err(std::io::Error::other(e)),
                }
            },
        }
    }

    /// Writes one packet now.
    async fn write(&mut self, packet: Packet) -> std::io::Result<()> {
        self.encode(packet)?;
        self.flush().await
    }

    /// Appends one packet to the write buffer; [`Conn::flush`] sends it.
    fn encode(&mut self, packet: Packet) -> std::io::Result<()> {
        V4.write(packet, &mut self.write)
            .map(drop)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{e:?}")))
    }

    /// Sends what the write buffer holds: one write (or one WebSocket message) for all of it.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.write.is_empty() {
            return Ok(());
        }
        match &mut self.io {
            Io::Bytes(stream) => {
                stream.write_all(&self.write).await?;
                stream.flush().await?;
                self.write.clear();
            }
            Io::Ws(ws) => {
                // MQTT 3.1.1, 6.0: a WebSocket message may hold several MQTT packets.
                let frame = self.write.split().freeze();
                ws.send(Message::Binary(frame))
                    .await
                    .map_err(std::io::Error::other)?;
            }
        }
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
    io: Io,
    peer: SocketAddr,
    ctx: &Arc<Ctx>,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let mut conn = Conn {
        io,
        read: BytesMut::with_capacity(256),
        write: BytesMut::new(),
        max_packet: ctx.device_max_packet,
    };
    let first = match tokio::time::timeout(ctx.connect_timeout, conn.read()).await {
        Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            // MQTT 3.1.1, 3.1.4: answer an unknown protocol level with return code 1.
            tracing::info!(%peer, error = %e, "MQTT client refused");
            let _ = conn
                .write(connack(ConnectReturnCode::RefusedProtocolVersion))
                .await;
            return Ok(());
        }
        Ok(r) => r?,
    };
    let Packet::Connect(connect, _, will, _, login) = first else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "first packet is not CONNECT",
        ));
    };
    let client_id = connect.client_id.clone();
    let identity = match authenticate(ctx, peer.ip(), &client_id, login.as_ref()).await {
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
            () = shutdown.wait() => return goodbye(conn, link_rx, ctx).await,
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
                // Everything the router has ready for this client goes out in one write.
                let mut next = Some(next);
                let mut batched = 0;
                while let Some(n) = next.take() {
                    match n {
                        Ok(Some(n)) => match Option::<Packet>::from(n) {
                            Some(Packet::Disconnect(..)) => return End::ByRouter,
                            Some(p) => {
                                if let Err(e) = conn.encode(p) {
                                    return End::Unclean(e.to_string());
                                }
                                batched += 1;
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
                    if batched < MAX_BATCH && conn.write.len() < MAX_BATCH_BYTES {
                        next = link_rx.next().now_or_never();
                    }
                }
                if let Err(e) = conn.flush().await {
                    return End::Unclean(e.to_string());
                }
            }
        }
    }
}

/// At shutdown: keeps passing on what the router has for this client until the hub's
/// retained `offline` has gone out (the hub says it after its last flush), or the grace ends.
async fn goodbye(conn: &mut Conn, link_rx: &mut LinkRx, ctx: &Ctx) -> End {
    let status = orderd_protocol::topics::hub_status(&ctx.site);
    let until = tokio::time::Instant::now() + GOODBYE_GRACE;
    loop {
        let next = match tokio::time::timeout_at(until, link_rx.next()).await {
            Ok(Ok(Some(n))) => n,
            Ok(Ok(None)) => continue,
            Ok(Err(_)) | Err(_) => return End::Clean,
        };
        match Option::<Packet>::from(next) {
            Some(Packet::Disconnect(..)) => return End::ByRouter,
            Some(p) => {
                let last = matches!(&p, Packet::Publish(publish, _)
                    if publish.topic.as_ref() == status.as_bytes()
                        && publish.payload.as_ref() == b"offline");
                if conn.encode(p).is_err() || conn.flush().await.is_err() {
                    return End::Clean;
                }
                if last {
                    // Read the device's answer (its PUBACK) before closing: a socket closed
                    // with unread bytes is reset, and a reset discards what the device had
                    // not yet read, the goodbye included.
                    let _ = tokio::time::timeout_at(until, conn.read()).await;
                    return End::Clean;
                }
            }
            None => {
                if link_rx.wake().await.is_err() {
                    return End::ByRouter;
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

/// A device login: the client id is the username. A correct password already verified for
/// the device is recognised by its digest without a hash; anything else is reserved with the
/// throttle first and then checked against the device's hash, or a dummy hash for an unknown
/// id, so an unknown id costs the same time as a wrong password and cannot be told apart.
async fn authenticate(
    ctx: &Arc<Ctx>,
    ip: std::net::IpAddr,
    client_id: &str,
    login: Option<&rumqttd::protocol::Login>,
) -> Result<Identity, ConnectReturnCode> {
    let login = login.ok_or(ConnectReturnCode::NotAuthorized)?;
    if login.username != client_id {
        // One identity per connection: the client id is the username.
        return Err(ConnectReturnCode::ClientIdentifierNotValid);
    }
    if login.username == ctx.hub_user {
        // The hub is in-process; nobody may log in as it (or take over its session).
        return Err(ConnectReturnCode::BadUserNamePassword);
    }
    let device = lookup(&ctx.store, &login.username);
    let digest: [u8; 32] = Sha256::digest(login.password.as_bytes()).into();
    let cached = device.as_ref().is_some_and(|device| {
        ctx.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&device.id)
            .is_some_and(|(hash, d)| *hash == device.password_hash && bool::from(d.ct_eq(&digest)))
    });
    if !cached {
        let now = || u64::try_from(ctx.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let permit = ctx
            .throttle
            .reserve(&login.username, ip, now())
            .map_err(|_| ConnectReturnCode::BadUserNamePassword)?;
        let hash = device.as_ref().map_or_else(
            || crate::auth::dummy_hash().to_owned(),
            |d| d.password_hash.clone(),
        );
        let password = login.password.clone();
        let ok =
            tokio::task::spawn_blocking(move || crate::auth::verify_password(&hash, &password))
                .await
                .unwrap_or(false);
        let Some(device) = device.as_ref().filter(|_| ok) else {
            permit.fail(now());
            return Err(ConnectReturnCode::BadUserNamePassword);
        };
        permit.succeed(now());
        ctx.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(device.id.clone(), (device.password_hash.clone(), digest));
    }
    let device = device.ok_or(ConnectReturnCode::BadUserNamePassword)?;
    Ok(Identity {
        publish: device.may_publish(&ctx.site),
        subscribe: device.may_subscribe(&ctx.site, &ctx.discovery_prefix),
    })
}

fn lookup(store: &Store, id: &str) -> Option<Device> {
    let rtx = store.read().ok()?;
    devices::get(&rtx, id).ok().flatten()
}
