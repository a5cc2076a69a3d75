//! The checked [`Settings`] the daemon runs on: every section validated, and every value that
//! was a string to parse (addresses, the MQTT mode, "empty means off", buzzer patterns) resolved
//! to its type, so no runtime code reads the file's raw form.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use orderd_protocol::BuzzPattern;

use super::{
    AuthConfig, BillingConfig, BumpKeys, LimitsConfig, LogConfig, MessagingConfig, OrdersConfig,
    OtpConfig, OtpRequired, RawConfig, SiteConfig, StoreConfig, buzz_pattern,
};

/// Checked settings the daemon runs on. Sections whose values were already typed (numbers,
/// flags, paths, names) are kept as checked; `http`, `mqtt` and `kitchen` are resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[site]`, checked. Its `time_zone` is the name, for display; rules use [`Self::time_zone`].
    pub site: SiteConfig,
    /// `[site] time_zone`, resolved.
    pub time_zone: TimeZone,
    /// `[store]`, checked.
    pub store: StoreConfig,
    /// `[http]`, resolved.
    pub http: HttpSettings,
    /// `[limits]`, checked.
    pub limits: LimitsConfig,
    /// `[orders]`, checked.
    pub orders: OrdersConfig,
    /// `[auth]`, checked.
    pub auth: AuthConfig,
    /// `[log]`, checked (its level is a filter `tracing` accepts).
    pub log: LogConfig,
    /// `[mqtt]`, resolved.
    pub mqtt: MqttSettings,
    /// `[kitchen]`, resolved.
    pub kitchen: KitchenSettings,
    /// `[otp]`, checked.
    pub otp: OtpConfig,
    /// Customer orders need a verified phone (`[otp] required` resolved against the channels).
    pub otp_required: bool,
    /// `[messaging]`, checked.
    pub messaging: MessagingConfig,
    /// `[whatsapp]`, checked.
    pub whatsapp: orderd_plugins::whatsapp::Config,
    /// `[telegram]`, checked.
    pub telegram: orderd_plugins::telegram::Config,
    /// `[upload]`, checked.
    pub upload: orderd_plugins::collector::Config,
    /// `[billing]`, checked.
    pub billing: BillingConfig,
    /// The keys whose values the admin page saved in `site.toml` (they won over the file).
    pub from_admin_page: Vec<&'static str>,
    /// The configuration as written (after defaults and `site.toml`): only the admin page's
    /// editor reads it, to check a change exactly as the next start will.
    written: RawConfig,
}

/// `[http]`, resolved: the listeners as addresses, the QR links' base as an option.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The plain HTTP listener.
    pub listen: SocketAddr,
    /// Base of the links printed in table QR codes; `None`: the address the admin's browser
    /// used to reach the box.
    pub public_base_url: Option<String>,
    /// A live stream (SSE) sends a heartbeat comment this often.
    pub sse_heartbeat: Duration,
    /// Events buffered for one live-stream client.
    pub sse_buffer_events: u32,
    /// A client whose buffer stays full this long is cut off.
    pub sse_stall: Duration,
    /// Staff and kitchen live streams open at once.
    pub max_sse_clients: u32,
    /// Anonymous menu streams open at once.
    pub max_menu_streams: u32,
    /// Streams of one order open at once.
    pub max_order_streams: u32,
    /// A request's head must arrive within this.
    pub header_read_timeout: Duration,
    /// Open connections from one client address.
    pub max_connections_per_address: u32,
    /// Open connections over all addresses but the box's own.
    pub max_connections: u32,
    /// The bearer token for `/metrics`, when set.
    pub metrics_token: orderd_plugins::messaging::Secret,
    /// HTTPS for the LAN, when on.
    pub https: Option<HttpsListener>,
}

/// `[http.tls]`, when `listen` is set.
#[derive(Debug, Clone)]
pub struct HttpsListener {
    /// The HTTPS listener.
    pub listen: SocketAddr,
    /// The certificate chain and key files; `None`: a self-signed certificate in the data
    /// directory, made for `names` and `localhost`.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// Names and addresses a self-signed certificate is made for.
    pub names: Vec<String>,
}

/// `[mqtt]`, resolved: the mode as an enum, each listener as an address or off.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// Who runs the broker.
    pub mode: MqttMode,
    /// Embedded broker: the plain MQTT listener.
    pub listen: SocketAddr,
    /// Embedded broker: the optional listeners.
    pub extra_listen: MqttListeners,
    /// PEM certificate chain for the TLS listeners.
    pub tls_cert_file: PathBuf,
    /// PEM private key for the TLS listeners.
    pub tls_key_file: PathBuf,
    /// Embedded broker: most connections at once.
    pub max_connections: u32,
    /// Embedded broker: largest packet a device may send.
    pub max_device_packet_bytes: u32,
    /// Embedded broker: time a new connection has to send CONNECT.
    pub connect_timeout: Duration,
    /// External broker: host.
    pub external_host: String,
    /// External broker: port.
    pub external_port: u16,
    /// The account orderd's hub uses.
    pub hub_username: String,
    /// External broker: file holding that account's password.
    pub hub_password_file: PathBuf,
    /// Keep-alive of orderd's own MQTT client.
    pub keep_alive: Duration,
    /// Publish Home Assistant MQTT discovery.
    pub home_assistant: bool,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
}

/// `[kitchen]`, resolved: buzzer patterns parsed, with each station's overrides.
#[derive(Debug, Clone)]
pub struct KitchenSettings {
    /// Ticket paper width in mm: 58 or 80.
    pub paper_width_mm: u32,
    /// A job without any report from its printer for this long fails over to the backup.
    pub job_timeout: Duration,
    /// An unconfirmed job is sent again (same job id) this often.
    pub resend: Duration,
    /// The buzzer patterns.
    pub buzz: BuzzPatterns,
    /// The kitchen page shows a ticket yellow after this many seconds.
    pub age_warn_secs: u64,
    /// … and red after this many.
    pub age_late_secs: u64,
    /// The keys of a USB bump bar on the kitchen page.
    pub bump_keys: BumpKeys,
    /// At start, print a slip with the box's address on the first printer online.
    pub print_address_at_boot: bool,
}

/// `[mqtt] mode`: who runs the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttMode {
    /// orderd runs it (rumqttd), on `mqtt.listen` and the optional listeners.
    Embedded,
    /// orderd connects to one (e.g. Mosquitto) as the hub.
    External,
}

/// The embedded broker's optional listeners (`None`: off).
#[derive(Debug, Clone, Copy, Default)]
pub struct MqttListeners {
    /// MQTT over TLS.
    pub tls: Option<SocketAddr>,
    /// MQTT over WebSocket.
    pub ws: Option<SocketAddr>,
    /// MQTT over WebSocket over TLS.
    pub wss: Option<SocketAddr>,
}

impl MqttListeners {
    /// Whether a listener needs the TLS certificate.
    pub fn need_tls(&self) -> bool {
        self.tls.is_some() || self.wss.is_some()
    }
}

/// The buzzer patterns of `[kitchen]`, with each station's overrides.
#[derive(Debug, Clone)]
pub struct BuzzPatterns {
    new_order: BuzzPattern,
    ready: BuzzPattern,
    /// For an alert (printer down, paper out).
    pub alert: BuzzPattern,
    stations: BTreeMap<String, (Option<BuzzPattern>, Option<BuzzPattern>)>,
}

impl BuzzPatterns {
    /// For a new order at `station`.
    pub fn new_order(&self, station: &str) -> BuzzPattern {
        self.stations
            .get(station)
            .and_then(|s| s.0)
            .unwrap_or(self.new_order)
    }

    /// When an order of `station` is ready.
    pub fn ready(&self, station: &str) -> BuzzPattern {
        self.stations
            .get(station)
            .and_then(|s| s.1)
            .unwrap_or(self.ready)
    }
}

/// The values [`RawConfig::validate`] parsed on its way, handed to [`Settings::resolve`].
pub(super) struct Parsed {
    pub http_listen: SocketAddr,
    pub time_zone: TimeZone,
    pub mqtt_listen: SocketAddr,
}

impl Settings {
    /// Builds the settings from a configuration `validate` found no problem in.
    pub(super) fn resolve(raw: RawConfig, parsed: Parsed) -> Self {
        let listener = |v: &str| v.parse::<SocketAddr>().ok();
        let pattern = |name: &str, or: BuzzPattern| buzz_pattern(name).unwrap_or(or);
        let r = raw.clone();
        let (h, m, k) = (r.http, r.mqtt, r.kitchen);
        let buzz = BuzzPatterns {
            new_order: pattern(&k.buzz_new_order, BuzzPattern::Double),
            ready: pattern(&k.buzz_ready, BuzzPattern::Double),
            alert: pattern(&k.buzz_alert, BuzzPattern::Alarm),
            stations: k
                .stations
                .iter()
                .map(|(name, s)| {
                    let over = |p: &Option<String>| p.as_deref().and_then(buzz_pattern);
                    (name.clone(), (over(&s.buzz_new_order), over(&s.buzz_ready)))
                })
                .collect(),
        };
        Self {
            otp_required: match r.otp.required {
                OtpRequired::On => true,
                OtpRequired::Off => false,
                OtpRequired::Auto => r.whatsapp.enabled || r.telegram.enabled,
            },
            site: r.site,
            time_zone: parsed.time_zone,
            store: r.store,
            http: HttpSettings {
                listen: parsed.http_listen,
                public_base_url: (!h.public_base_url.is_empty()).then_some(h.public_base_url),
                sse_heartbeat: Duration::from_secs(h.sse_heartbeat_secs),
                sse_buffer_events: h.sse_buffer_events,
                sse_stall: Duration::from_secs(h.sse_stall_secs),
                max_sse_clients: h.max_sse_clients,
                max_menu_streams: h.max_menu_streams,
                max_order_streams: h.max_order_streams,
                header_read_timeout: Duration::from_secs(h.header_read_timeout_secs),
                max_connections_per_address: h.max_connections_per_address,
                max_connections: h.max_connections,
                metrics_token: h.metrics_token,
                https: listener(&h.tls.listen).map(|listen| HttpsListener {
                    listen,
                    cert_and_key: (!h.tls.cert_file.as_os_str().is_empty())
                        .then_some((h.tls.cert_file, h.tls.key_file)),
                    names: h.tls.names,
                }),
            },
            limits: r.limits,
            orders: r.orders,
            auth: r.auth,
            log: r.log,
            mqtt: MqttSettings {
                mode: if m.mode == "external" {
                    MqttMode::External
                } else {
                    MqttMode::Embedded
                },
                listen: parsed.mqtt_listen,
                extra_listen: MqttListeners {
                    tls: listener(&m.tls_listen),
                    ws: listener(&m.ws_listen),
                    wss: listener(&m.wss_listen),
                },
                tls_cert_file: m.tls_cert_file,
                tls_key_file: m.tls_key_file,
                max_connections: m.max_connections,
                max_device_packet_bytes: m.max_device_packet_bytes,
                connect_timeout: Duration::from_secs(u64::from(m.connect_timeout_secs)),
                external_host: m.external_host,
                external_port: m.external_port,
                hub_username: m.hub_username,
                hub_password_file: m.hub_password_file,
                keep_alive: Duration::from_secs(u64::from(m.keep_alive_secs)),
                home_assistant: m.home_assistant,
                discovery_prefix: m.discovery_prefix,
            },
            kitchen: KitchenSettings {
                paper_width_mm: k.paper_width_mm,
                job_timeout: Duration::from_secs(k.job_timeout_secs),
                resend: Duration::from_secs(k.resend_secs),
                buzz,
                age_warn_secs: k.age_warn_secs,
                age_late_secs: k.age_late_secs,
                bump_keys: k.bump_keys,
                print_address_at_boot: k.print_address_at_boot,
            },
            otp: r.otp,
            messaging: r.messaging,
            whatsapp: r.whatsapp,
            telegram: r.telegram,
            upload: r.upload,
            billing: r.billing,
            from_admin_page: Vec::new(),
            written: raw,
        }
    }

    /// The configuration as written, for the admin page's editor: it changes a copy and
    /// validates it, exactly as the next start will.
    pub fn as_written(&self) -> &RawConfig {
        &self.written
    }

    /// The code rule in force and why, for the start-up log, `orderd status` and the admin page.
    pub fn otp_rule(&self) -> (&'static str, &'static str) {
        let channel = self.whatsapp.enabled || self.telegram.enabled;
        match (self.otp.required, channel) {
            (OtpRequired::On, _) => (
                "required",
                "[otp] required = true: guests verify their phone before ordering",
            ),
            (OtpRequired::Off, _) => (
                "off",
                "[otp] required = false: the table's QR code alone orders",
            ),
            (OtpRequired::Auto, true) => (
                "required",
                "[otp] required = \"auto\" and a messaging channel is on: guests verify their phone before ordering",
            ),
            (OtpRequired::Auto, false) => (
                "off",
                "[otp] required = \"auto\" and no messaging channel is on: the table's QR code alone orders (turn on WhatsApp or Telegram to ask guests for a code)",
            ),
        }
    }

    /// Settings from the embedded defaults alone.
    pub fn defaults() -> Self {
        RawConfig::default()
            .validate()
            .expect("the embedded defaults are valid")
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.store.data_dir
    }
}
