//! The embedded broker's TLS, WebSocket and secure-WebSocket listeners: the same login, topic
//! ACL and boards as plain TCP, with a real rustls client, a real WebSocket client and
//! Mosquitto's own client over TLS.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use common::TestServer;
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{
    ConnAck, Connect, ConnectReturnCode, Filter, Login, Packet, Protocol as _, QoS, Subscribe,
    SubscribeReasonCode,
};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const WAIT: Duration = Duration::from_secs(10);
const BOARD: &str = "orderd/demo/station/grill/board";

/// A self-signed certificate for 127.0.0.1 / localhost, written as PEM files.
struct Cert {
    dir: tempfile::TempDir,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl Cert {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Self {
            dir,
            der: cert.der().clone(),
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Starts a daemon with every listener on a free loopback port.
async fn server(cert: &Cert) -> TestServer {
    let (certf, keyf) = (cert.path("cert.pem"), cert.path("key.pem"));
    let s = TestServer::start_with(move |c| {
        c.mqtt.tls_listen = "127.0.0.1:0".into();
        c.mqtt.ws_listen = "127.0.0.1:0".into();
        c.mqtt.wss_listen = "127.0.0.1:0".into();
        c.mqtt.tls_cert_file = certf;
        c.mqtt.tls_key_file = keyf;
    })
    .await;
    s.wait_hub().await;
    s
}

fn addr_of(s: &TestServer, scheme: &str) -> std::net::SocketAddr {
    s.state()
        .kitchen
        .broker
        .get()
        .expect("embedded broker")
        .listening()
        .iter()
        .find(|(t, _)| t.scheme() == scheme)
        .map(|(_, a)| *a)
        .expect("listener")
}

/// A minimal MQTT 3.1.1 client over any transport: packets are encoded with rumqttd's codec
/// and carried by `send`/`recv`.
trait Wire {
    async fn send_bytes(&mut self, bytes: Vec<u8>);
    async fn recv_bytes(&mut self, into: &mut BytesMut) -> bool;
}

struct Stream<S>(S);

impl<S: AsyncRead + AsyncWrite + Unpin> Wire for Stream<S> {
    async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.0.write_all(&bytes).await.unwrap();
        self.0.flush().await.unwrap();
    }
    async fn recv_bytes(&mut self, into: &mut BytesMut) -> bool {
        self.0.read_buf(into).await.is_ok_and(|n| n > 0)
    }
}

struct Ws<S>(tokio_tungstenite::WebSocketStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> Wire for Ws<S> {
    async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.0.send(Message::Binary(bytes.into())).await.unwrap();
    }
    async fn recv_bytes(&mut self, into: &mut BytesMut) -> bool {
        loop {
            match self.0.next().await {
                Some(Ok(Message::Binary(b))) => {
                    into.extend_from_slice(&b);
                    return true;
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
                Some(Ok(_)) => {}
            }
        }
    }
}

struct Client<W> {
    wire: W,
    buf: BytesMut,
}

impl<W: Wire> Client<W> {
    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        V4.write(packet, &mut out).unwrap();
        self.wire.send_bytes(out.to_vec()).await;
    }

    /// The next packet, or `None` when the connection ends or nothing comes within `WAIT`.
    async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, async {
            loop {
                match V4.read_mut(&mut self.buf, 1024 * 1024) {
                    Ok(p) => return Some(p),
                    Err(rumqttd::protocol::Error::InsufficientBytes(_)) => {}
                    Err(e) => panic!("bad packet from the broker: {e:?}"),
                }
                if !self.wire.recv_bytes(&mut self.buf).await {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// CONNECT as `id`/`password`; the CONNACK code.
    async fn connect(wire: W, id: &str, password: &str) -> (Self, ConnectReturnCode) {
        let mut c = Self {
            wire,
            buf: BytesMut::new(),
        };
        let connect = Connect {
            keep_alive: 30,
            client_id: id.into(),
            clean_session: true,
        };
        let login = Login {
            username: id.into(),
            password: password.into(),
        };
        c.send(Packet::Connect(connect, None, None, None, Some(login)))
            .await;
        match c.recv().await {
            Some(Packet::ConnAck(ConnAck { code, .. }, _)) => (c, code),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// SUBSCRIBE to one filter at QoS 1; the SUBACK code.
    async fn subscribe(&mut self, filter: &str) -> SubscribeReasonCode {
        self.send(Packet::Subscribe(
            Subscribe {
                pkid: 7,
                filters: vec![Filter {
                    path: filter.into(),
                    qos: QoS::AtLeastOnce,
                    nolocal: false,
                    preserve_retain: false,
                    retain_forward_rule: rumqttd::protocol::RetainForwardRule::OnEverySubscribe,
                }],
            },
            None,
        ))
        .await;
        loop {
            match self.recv().await {
                Some(Packet::SubAck(ack, _)) => return ack.return_codes[0],
                Some(_) => {}
                None => panic!("no SUBACK"),
            }
        }
    }

    /// The next PUBLISH on `topic`.
    async fn publish_on(&mut self, topic: &str) -> Option<(Vec<u8>, bool)> {
        loop {
            match self.recv().await? {
                Packet::Publish(p, _) if p.topic == topic.as_bytes() => {
                    return Some((p.payload.to_vec(), p.retain));
                }
                _ => {}
            }
        }
    }
}

async fn tls(cert: &Cert, addr: std::net::SocketAddr) -> Stream<impl AsyncRead + AsyncWrite> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    Stream(cert.connector().connect(name, tcp).await.unwrap())
}

async fn ws<S: AsyncRead + AsyncWrite + Unpin>(io: S, url: &str) -> Ws<S> {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    let (stream, resp) = tokio_tungstenite::client_async(req, io).await.unwrap();
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("mqtt"),
        "the broker selects the mqtt subprotocol"
    );
    Ws(stream)
}

#[tokio::test]
async fn tls_websocket_and_wss_serve_devices_with_the_same_login_and_acl() {
    let cert = Cert::new();
    let s = server(&cert).await;
    let pw = s.device("disp", "display", &["grill"], false).await;
    let (st, v) = s
        .order(&s.admin, json!([{"item_id": "tave_kosi", "quantity": 1}]))
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();

    // MQTT over TLS: the retained board with the order on it.
    let (mut c, code) = Client::connect(tls(&cert, addr_of(&s, "mqtts")).await, "disp", &pw).await;
    assert_eq!(code, ConnectReturnCode::Success);
    assert_eq!(
        c.subscribe(BOARD).await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    let (board, retained) = c.publish_on(BOARD).await.expect("board over TLS");
    assert!(retained);
    assert!(
        String::from_utf8_lossy(&board).contains(&id),
        "board lists the order"
    );
    // The same ACL as plain TCP: another station's board is refused.
    assert_eq!(
        c.subscribe("orderd/demo/station/bar/board").await,
        SubscribeReasonCode::Failure
    );

    // MQTT over WebSocket.
    let addr = addr_of(&s, "ws");
    let wire = ws(
        TcpStream::connect(addr).await.unwrap(),
        &format!("ws://{addr}/mqtt"),
    )
    .await;
    let (mut c, code) = Client::connect(wire, "disp", &pw).await;
    assert_eq!(code, ConnectReturnCode::Success);
    assert_eq!(
        c.subscribe(BOARD).await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    assert!(c.publish_on(BOARD).await.is_some(), "board over WebSocket");
    assert_eq!(
        c.subscribe("orderd/demo/printer/other/job").await,
        SubscribeReasonCode::Failure
    );
    // Wrong password over WebSocket: refused like on TCP.
    let wire = ws(
        TcpStream::connect(addr).await.unwrap(),
        &format!("ws://{addr}/mqtt"),
    )
    .await;
    let (_, code) = Client::connect(wire, "disp", "not-the-password").await;
    assert_eq!(code, ConnectReturnCode::BadUserNamePassword);

    // MQTT over WebSocket over TLS.
    let addr = addr_of(&s, "wss");
    let wire = ws(
        tls(&cert, addr).await.0,
        &format!("wss://localhost:{}/mqtt", addr.port()),
    )
    .await;
    let (mut c, code) = Client::connect(wire, "disp", &pw).await;
    assert_eq!(code, ConnectReturnCode::Success);
    assert_eq!(
        c.subscribe(BOARD).await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    assert!(c.publish_on(BOARD).await.is_some(), "board over wss");

    // Plain MQTT sent to the TLS port fails the handshake; the broker keeps serving.
    let mut raw = TcpStream::connect(addr_of(&s, "mqtts")).await.unwrap();
    let mut out = BytesMut::new();
    V4.write(
        Packet::Connect(
            Connect {
                keep_alive: 30,
                client_id: "disp".into(),
                clean_session: true,
            },
            None,
            None,
            None,
            None,
        ),
        &mut out,
    )
    .unwrap();
    raw.write_all(&out).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut answer)).await;
    assert!(
        !answer.windows(2).any(|w| w == [0x20, 0x02]),
        "no CONNACK without TLS"
    );
    let (_, code) = Client::connect(tls(&cert, addr_of(&s, "mqtts")).await, "disp", &pw).await;
    assert_eq!(code, ConnectReturnCode::Success);
    s.stop().await;
}

#[tokio::test]
async fn a_websocket_client_offering_another_subprotocol_is_refused() {
    let cert = Cert::new();
    let s = server(&cert).await;
    let addr = addr_of(&s, "ws");
    let mut req = format!("ws://{addr}/mqtt").into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "chat".parse().unwrap());
    let err = tokio_tungstenite::client_async(req, TcpStream::connect(addr).await.unwrap())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("400"), "{err}");
    s.stop().await;
}

#[tokio::test]
async fn mosquitto_clients_subscribe_over_tls() {
    let cert = Cert::new();
    let s = server(&cert).await;
    let pw = s.device("disp", "display", &["grill"], false).await;
    let addr = addr_of(&s, "mqtts");
    let out = tokio::process::Command::new("mosquitto_sub")
        .args(["-h", "localhost", "-p", &addr.port().to_string()])
        .args([
            "-i", "disp", "-u", "disp", "-P", &pw, "-t", BOARD, "-C", "1", "-W", "10",
        ])
        .arg("--cafile")
        .arg(cert.path("cert.pem"))
        .output()
        .await
        .expect("mosquitto_sub is installed (scripts/test.sh installs mosquitto-clients)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let board: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(board["station"], "grill", "{board}");
    s.stop().await;
}

#[tokio::test]
async fn a_tls_listener_without_a_usable_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    let (certf, keyf) = (dir.path().join("cert.pem"), dir.path().join("missing.pem"));
    let data = tempfile::tempdir().unwrap();
    let settings = common::settings(data.path(), move |c| {
        c.mqtt.tls_listen = "127.0.0.1:0".into();
        c.mqtt.tls_cert_file = certf;
        c.mqtt.tls_key_file = keyf;
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = orderd::start(settings, listener, Arc::new(orderd::clock::SystemClock))
        .await
        .err()
        .expect("start refused");
    assert!(format!("{err:#}").contains("cert.pem"), "{err:#}");
}

#[tokio::test]
async fn an_mqtt5_client_is_told_the_protocol_version_is_refused() {
    let s = TestServer::start().await;
    let mut tcp = TcpStream::connect(s.mqtt()).await.unwrap();
    // CONNECT, protocol level 5, clean start, keep-alive 60, no properties, client id "x".
    let connect = [
        0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b'x',
    ];
    tcp.write_all(&connect).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the broker closes the connection")
        .unwrap();
    assert_eq!(
        answer,
        [0x20, 2, 0, 1],
        "CONNACK 1: unacceptable protocol version"
    );
    s.stop().await;
}

/// One GET over TLS, trusting only `root`; the status and body.
async fn https_get(
    addr: std::net::SocketAddr,
    root: rustls::pki_types::CertificateDer<'static>,
    name: &str,
    path: &str,
) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .expect("the box's certificate is valid for its name");
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {name}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// HTTPS for the LAN: a self-signed certificate made at first start for the box's names,
/// kept across restarts, its fingerprint in the status; the API and the guest page answer
/// over it as over plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate_serves_the_guest_page() {
    use rustls::pki_types::pem::PemObject as _;
    let s = TestServer::start_with(|c| {
        c.http.tls.listen = "127.0.0.1:0".into();
        c.http.tls.names = vec!["orderd.local".into(), "127.0.0.1".into()];
    })
    .await;
    let https = s.state().https.get().expect("HTTPS is on").clone();
    let pem = s.dir.path().join("tls-cert.pem");
    let der = rustls::pki_types::CertificateDer::from_pem_file(&pem).unwrap();
    let (st, status) = s.send("GET", "/api/v1/status", Some(&s.admin), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(status["https"]["fingerprint"], https.fingerprint);
    assert_eq!(https.fingerprint, orderd::tls::fingerprint(&der));
    let (code, body) = https_get(https.addr, der.clone(), "orderd.local", "/api/v1/menu").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("espresso"));
    let table = s.table_token().await;
    let (code, page) =
        https_get(https.addr, der.clone(), "127.0.0.1", &format!("/t/{table}")).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        !page.contains("http://"),
        "no plain-HTTP link on the HTTPS page"
    );
    // Kept across a restart: browsers that trusted it keep trusting it.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |c| {
        c.http.tls.listen = "127.0.0.1:0".into();
        c.http.tls.names = vec!["orderd.local".into()];
    })
    .await;
    assert_eq!(
        s.state().https.get().unwrap().fingerprint,
        https.fingerprint,
        "the same certificate after a restart"
    );
    s.stop().await;
}
