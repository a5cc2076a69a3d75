//! Configuration: the raw TOML file, its validation, and the checked [`Settings`] the daemon runs on.
//!
//! Reading happens in two steps, as in ripgrep's flags: the file is parsed into [`RawConfig`]
//! (plain serde structs with named defaults), then [`RawConfig::validate`] checks every field and
//! either returns [`Settings`] or *every* problem at once, each with its dotted key, so an
//! installer fixes the file in one go. Unknown keys are collected with `serde_ignored` rather than
//! rejected one at a time by `deny_unknown_fields`, so they are reported together with the rest.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// The shipped, commented configuration file; `orderd init-config` prints it and a test parses it.
pub const SHIPPED_CONFIG: &str = include_str!("../../config/orderd.toml");

/// The whole configuration file as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    /// Who and where this restaurant is.
    pub site: SiteConfig,
    /// Where and how orders are stored.
    pub store: StoreConfig,
    /// The HTTP listener.
    pub http: HttpConfig,
    /// Input limits, enforced on every request.
    pub limits: LimitsConfig,
    /// Order rules.
    pub orders: OrdersConfig,
    /// Staff authentication.
    pub auth: AuthConfig,
    /// Logging.
    pub log: LogConfig,
    /// The MQTT broker (embedded or external) kitchen devices talk to.
    pub mqtt: MqttConfig,
    /// Kitchen behaviour: printers, buzzers.
    pub kitchen: KitchenConfig,
    /// Customer phone verification by one-time code.
    pub otp: OtpConfig,
    /// The message outbox: retries, backoff, circuit breaker, texts.
    pub messaging: MessagingConfig,
    /// WhatsApp Cloud API.
    pub whatsapp: orderd_plugins::whatsapp::Config,
    /// Telegram bot.
    pub telegram: TelegramConfig,
    /// Store-and-forward upload to the chain's collector.
    pub upload: UploadConfig,
    /// Guest checks: payment methods, reasons, cash rounding, VAT rates, the printed bill.
    pub billing: BillingConfig,
}

/// `[billing]`: settling the bill (docs/billing.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BillingConfig {
    /// Digits after the decimal point of the currency's minor unit (EUR 2; ALL is used with 0).
    pub minor_digits: u8,
    /// Cash payments that settle a check are rounded to this step, minor units (0: none).
    pub cash_rounding: u32,
    /// Payment methods staff may record (`cash` and `card` have their own fields).
    pub payment_methods: Vec<String>,
    /// Reasons offered for discounts, comps, voids and refunds (a typed one is also accepted).
    pub reasons: Vec<String>,
    /// The restaurant's address, printed on the bill.
    pub address: String,
    /// The restaurant's tax id (NIPT, VAT number), printed on the bill.
    pub tax_id: String,
    /// The station whose printers print guest checks (and Z reports).
    pub bill_station: String,
    /// A bill station per table zone (`{ terrace = "terrace-pass" }`); other zones use
    /// `bill_station`.
    pub zone_bill_stations: std::collections::BTreeMap<String, String>,
    /// VAT rate per menu category, basis points (items not listed: `site.tax_rate_bp`).
    pub category_tax_rates: std::collections::BTreeMap<String, u32>,
    /// VAT rate per menu item, basis points (wins over its category's).
    pub item_tax_rates: std::collections::BTreeMap<String, u32>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            minor_digits: 2,
            cash_rounding: 0,
            payment_methods: vec!["cash".into(), "card".into()],
            reasons: vec![
                "Guest complaint".into(),
                "Wrong order".into(),
                "Staff meal".into(),
                "Regular guest".into(),
                "Manager's decision".into(),
            ],
            address: String::new(),
            tax_id: String::new(),
            bill_station: "pass".into(),
            zone_bill_stations: std::collections::BTreeMap::new(),
            category_tax_rates: std::collections::BTreeMap::new(),
            item_tax_rates: std::collections::BTreeMap::new(),
        }
    }
}

/// `[otp] required`: whether customer orders need a verified phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtpRequired {
    /// `"auto"` (the default): when a messaging channel is on; with none, the table's QR code
    /// alone orders, so a fresh box takes guest orders.
    #[default]
    Auto,
    /// `true`: always (check-config refuses it when no channel is on).
    On,
    /// `false`: never; the table's QR code alone orders.
    Off,
}

impl Serialize for OtpRequired {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::On => s.serialize_bool(true),
            Self::Off => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for OtpRequired {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Self::On),
            Raw::Bool(false) => Ok(Self::Off),
            Raw::Str(s) if s == "auto" => Ok(Self::Auto),
            Raw::Str(s) => Err(serde::de::Error::custom(format!(
                "{s:?}: use true, false or \"auto\""
            ))),
        }
    }
}

/// `[otp]`: customers prove their phone with a code before ordering.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OtpConfig {
    /// Customer orders need a verified customer token: `"auto"`, `true` or `false`.
    pub required: OtpRequired,
    /// A code expires after this long.
    pub ttl_secs: u64,
    /// Wrong tries before a code is locked.
    pub max_attempts: u32,
    /// Codes sent to one phone per window.
    pub max_sends: u32,
    /// The window for `max_sends` and `max_requests_per_client`.
    pub send_window_secs: u64,
    /// OTP requests from one client address per window.
    pub max_requests_per_client: u32,
    /// Codes sent per window over all phones: the last line against number pumping from many
    /// addresses. When it is spent, the staff are alerted once per window.
    pub max_sends_total: u32,
    /// Codes sent per window to numbers sharing their first `prefix_digits` digits.
    pub max_sends_per_prefix: u32,
    /// How many digits (after `+`) make a number's prefix for `max_sends_per_prefix`.
    pub prefix_digits: u32,
    /// Code checks (`POST /otp/verify`) per client address per window.
    pub max_verifies_per_client: u32,
    /// Lifetime of a customer token.
    pub token_ttl_secs: u64,
}

impl Default for OtpConfig {
    fn default() -> Self {
        Self {
            required: OtpRequired::Auto,
            ttl_secs: 300,
            max_attempts: 5,
            max_sends: 3,
            send_window_secs: 900,
            max_requests_per_client: 20,
            max_sends_total: 120,
            max_sends_per_prefix: 30,
            prefix_digits: 7,
            max_verifies_per_client: 30,
            token_ttl_secs: 12 * 3600,
        }
    }
}

/// `[messaging]`: how the outbox sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MessagingConfig {
    /// First retry delay; doubles per attempt (with jitter) up to `max_backoff_ms`.
    pub base_backoff_ms: u64,
    /// Longest retry delay.
    pub max_backoff_ms: u64,
    /// Attempts before a message that keeps failing goes to the dead letter.
    pub max_attempts: u32,
    /// Consecutive failures that open a provider's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before one probe message (a probe's failure does not
    /// count against its message's attempts; its success makes every waiting message due).
    pub breaker_pause_secs: u64,
    /// A provider call that takes longer is cut off and retried.
    pub request_timeout_ms: u64,
    /// Messages to send at once per provider.
    pub concurrency: u32,
    /// Directory with `{lang}.toml` message texts overriding the built-in ones (empty: none).
    pub texts_dir: PathBuf,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        Self {
            base_backoff_ms: 1000,
            max_backoff_ms: 300_000,
            max_attempts: 20,
            breaker_failures: 5,
            breaker_pause_secs: 2,
            request_timeout_ms: 10_000,
            concurrency: 8,
            texts_dir: PathBuf::new(),
        }
    }
}

/// `[upload]`: store-and-forward upload of the event log to the chain's collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UploadConfig {
    /// Upload at all.
    pub enabled: bool,
    /// The collector's batch endpoint, e.g. `https://collector.example/v1/batches`.
    pub url: String,
    /// This site's upload token (from `orderd-collector site add`).
    pub token: orderd_plugins::messaging::Secret,
    /// This box's id within the site.
    pub box_id: String,
    /// Most events per batch.
    pub batch_events: u32,
    /// Most bytes of events per batch (before compression).
    pub batch_bytes: u32,
    /// A batch smaller than that waits at most this long for more events, ms.
    pub max_age_ms: u64,
    /// `lz4` or `none`.
    pub compression: String,
    /// One request's time limit, ms.
    pub request_timeout_ms: u64,
    /// First retry after, ms (doubling, jittered).
    pub base_backoff_ms: u64,
    /// Retries at most this far apart, ms.
    pub max_backoff_ms: u64,
    /// Consecutive failures that pause uploading (circuit breaker) …
    pub breaker_failures: u32,
    /// … for this long, then one probe.
    pub breaker_pause_secs: u64,
    /// While uploads fail, the collector's `/healthz` (same origin as `url`) is asked this
    /// often, ms; once it answers, the backlog is posted at once instead of waiting out the
    /// backoff or the breaker (0: never).
    pub probe_interval_ms: u64,
    /// Unacknowledged events may take at most this many bytes; past it new orders are refused
    /// (503) until the collector catches up. WARN from 80 %.
    pub backlog_budget_bytes: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: String::new(),
            token: orderd_plugins::messaging::Secret::default(),
            box_id: "main".into(),
            batch_events: 500,
            batch_bytes: 1024 * 1024,
            max_age_ms: 2000,
            compression: "lz4".into(),
            request_timeout_ms: 10_000,
            base_backoff_ms: 1000,
            max_backoff_ms: 60_000,
            breaker_failures: 5,
            breaker_pause_secs: 30,
            probe_interval_ms: 1000,
            backlog_budget_bytes: 512 * 1024 * 1024,
        }
    }
}

/// `[telegram]`: the Telegram bot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelegramConfig {
    /// Send through Telegram.
    pub enabled: bool,
    /// Bot API URL.
    pub api_url: String,
    /// The bot's username, for `https://t.me/{bot}?start=…` links.
    pub bot_username: String,
    /// The bot token.
    pub token: orderd_plugins::messaging::Secret,
    /// Chat that gets staff alerts (printer down, sold out, low stock); 0 = none.
    pub staff_chat_id: i64,
    /// Language of staff alerts.
    pub staff_lang: String,
    /// Most messages per second (Telegram allows about 30).
    pub rate_per_sec: u32,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_url: "https://api.telegram.org".into(),
            bot_username: String::new(),
            token: orderd_plugins::messaging::Secret::default(),
            staff_chat_id: 0,
            staff_lang: "en".into(),
            rate_per_sec: 25,
        }
    }
}

/// `[site]`: identity, money and time of the restaurant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SiteConfig {
    /// Site id used on MQTT topics and in uploads: `[a-z0-9_-]`, 1 to 32 characters.
    pub id: String,
    /// The restaurant's name, shown on pages and tickets.
    pub name: String,
    /// ISO 4217 currency code of every price (three capital letters).
    pub currency: String,
    /// IANA time zone for business days and reports.
    pub time_zone: String,
    /// Hour (0–23, local time) at which a business day starts; orders before it belong to the
    /// previous day, so a bar open past midnight keeps one day.
    pub business_day_start_hour: u8,
    /// Prefix of order numbers: `PREFIX-YYYYMMDD-NNN`.
    pub order_number_prefix: String,
    /// Tax rate in basis points (2000 = 20 %).
    pub tax_rate_bp: u32,
    /// Whether menu prices already include tax (usual for VAT); otherwise tax is added on top.
    pub prices_include_tax: bool,
    /// Language used for ticket and order snapshots and when a requested one is missing.
    pub default_language: String,
    /// Languages the guest page offers (of [`PAGE_LANGUAGES`]); the default is one of them.
    pub languages: Vec<String>,
}

/// Languages the pages are translated into.
pub const PAGE_LANGUAGES: [&str; 2] = ["en", "sq"];

fn default_site_id() -> String {
    "demo".into()
}
fn default_site_name() -> String {
    "Demo Restaurant".into()
}
fn default_currency() -> String {
    "EUR".into()
}
fn default_time_zone() -> String {
    "Europe/Tirane".into()
}
fn default_business_day_start_hour() -> u8 {
    4
}
fn default_prefix() -> String {
    "ORD".into()
}
fn default_tax_rate_bp() -> u32 {
    2000
}
fn default_language() -> String {
    "en".into()
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            id: default_site_id(),
            name: default_site_name(),
            currency: default_currency(),
            time_zone: default_time_zone(),
            business_day_start_hour: default_business_day_start_hour(),
            order_number_prefix: default_prefix(),
            tax_rate_bp: default_tax_rate_bp(),
            prices_include_tax: true,
            default_language: default_language(),
            languages: PAGE_LANGUAGES.iter().map(|l| (*l).to_owned()).collect(),
        }
    }
}

/// `[store]`: the redb file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// Directory holding `orderd.redb` and `initial-admin-password`.
    pub data_dir: PathBuf,
    /// redb page cache. redb's own default is 1 GiB, the whole RAM of a Pi, so it is set here.
    pub cache_size_bytes: u64,
    /// Most requests committed together in one write transaction (group commit).
    pub max_batch: u32,
    /// Seed the demo menu and tables when the store has no menu yet.
    pub demo_data: bool,
    /// A checkpoint (durable redb commit; the write-ahead log starts over) at least this often.
    pub checkpoint_interval_ms: u64,
    /// … or after this many batches, whichever comes first.
    pub checkpoint_batches: u32,
    /// WARN when the data directory's filesystem has less than this many MiB free (or less than
    /// the store file's size, which the store may need again to grow).
    pub warn_free_mb: u64,
    /// New orders are refused (507) when less than this many MiB are free: the disk is
    /// really full. Orders already placed can still be finished.
    pub min_free_mb: u64,
    /// MiB kept in `orderd.reserve`, a file the store gives up when it must grow on a full
    /// disk, so a commit never fails half-way (0: none).
    pub reserve_mb: u64,
    /// How often free space is checked, in seconds (placing an order also checks, at most once
    /// a second).
    pub space_check_secs: u64,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./orderd-data")
}
fn default_cache_size_bytes() -> u64 {
    4 * 1024 * 1024
}
fn default_max_batch() -> u32 {
    256
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            cache_size_bytes: default_cache_size_bytes(),
            max_batch: default_max_batch(),
            demo_data: true,
            checkpoint_interval_ms: 1000,
            checkpoint_batches: 128,
            warn_free_mb: 512,
            min_free_mb: 32,
            reserve_mb: 32,
            space_check_secs: 10,
        }
    }
}

/// `[http]`: the listener for the API and pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port (logged at start).
    pub listen: String,
    /// Base of the links printed in table QR codes (`https://box.example`); empty: the address
    /// the admin's browser used to reach the box.
    pub public_base_url: String,
    /// A live stream (SSE) sends a heartbeat comment this often.
    pub sse_heartbeat_secs: u64,
    /// Events buffered for one live-stream client; a client that falls further behind is cut
    /// off with an `end` event and resumes with `Last-Event-ID`.
    pub sse_buffer_events: u32,
    /// A client whose buffer stays full this long is cut off.
    pub sse_stall_secs: u64,
    /// Staff and kitchen live streams (`/api/v1/events`) open at once; more are refused with
    /// 503. Each class of stream has its own cap, so a flood of one never refuses another.
    pub max_sse_clients: u32,
    /// Anonymous menu streams (`/api/v1/menu/events`, the guests' pages) open at once.
    pub max_menu_streams: u32,
    /// Streams of one order (`/api/v1/orders/{id}/events`, a guest following their order).
    pub max_order_streams: u32,
    /// A request's head (or the next one on a kept-alive connection) must arrive within this,
    /// or the connection is closed: idle sockets and slow senders cannot pile up.
    pub header_read_timeout_secs: u64,
    /// Open connections from one client address; more are closed at once.
    pub max_connections_per_address: u32,
    /// Open connections over all addresses but the box's own (127.0.0.1, ::1).
    pub max_connections: u32,
    /// A bearer token for `/metrics` (the day's business is in it). Unset: `/metrics` answers
    /// only the box's own address (127.0.0.1, ::1), e.g. a local Prometheus agent.
    pub metrics_token: orderd_plugins::messaging::Secret,
    /// HTTPS for the LAN, beside plain HTTP.
    pub tls: HttpTlsConfig,
}

/// `[http.tls]`: HTTPS for the LAN (rustls), serving the same pages and API as plain HTTP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpTlsConfig {
    /// Address of the HTTPS listener, e.g. `0.0.0.0:8443`; empty: no HTTPS.
    pub listen: String,
    /// PEM certificate chain; with `key_file`. Both empty: a self-signed certificate is made at
    /// first start in the data directory, and its fingerprint printed and shown in Admin.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
    /// Names and addresses the self-signed certificate is made for (the box's local name and
    /// LAN address, e.g. `orderd.local`, `192.168.1.10`); `localhost` is always added.
    pub names: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            public_base_url: String::new(),
            sse_heartbeat_secs: 15,
            sse_buffer_events: 256,
            sse_stall_secs: 10,
            max_sse_clients: 1000,
            max_menu_streams: 1000,
            max_order_streams: 1000,
            header_read_timeout_secs: 10,
            max_connections_per_address: 64,
            max_connections: 4096,
            metrics_token: orderd_plugins::messaging::Secret::default(),
            tls: HttpTlsConfig::default(),
        }
    }
}

/// `[limits]`: bounds on what a client may send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Largest accepted request body (413 above).
    pub max_body_bytes: u64,
    /// Most lines in one order.
    pub max_items_per_order: u32,
    /// Largest quantity of one line.
    pub max_quantity: u32,
    /// Longest free-text field (notes, names, addresses), in characters.
    pub max_text_chars: u32,
    /// Largest page size of a list.
    pub max_page_size: u32,
    /// Most bytes the menu's item photos may take in the data directory (`crate::photos`).
    pub photos_budget_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_items_per_order: 50,
            max_quantity: 99,
            max_text_chars: 500,
            max_page_size: 200,
            photos_budget_bytes: 32 * 1024 * 1024,
        }
    }
}

/// `[orders]`: order rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OrdersConfig {
    /// How long after a status change a `recall` may undo it.
    pub recall_window_secs: u64,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl_secs: u64,
    /// Finished orders older than this many days are pruned, once every consumer has them.
    pub retention_days: u32,
    /// How often the retention sweep runs.
    pub retention_interval_secs: u64,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            recall_window_secs: 120,
            idempotency_ttl_secs: 24 * 3600,
            retention_days: 90,
            retention_interval_secs: 3600,
        }
    }
}

/// `[auth]`: staff sessions and login throttling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Lifetime of a staff session token.
    pub session_ttl_secs: u64,
    /// Failed sign-ins of one username from one client address before each further attempt
    /// waits (1 s, doubling, at most `login_lockout_secs`). Device logins follow the same rule.
    pub login_max_failures: u32,
    /// The window failures are counted in, and the longest wait.
    pub login_lockout_secs: u64,
    /// Failed sign-ins from one client address, over all usernames, before it waits too.
    pub login_max_failures_per_address: u32,
    /// Failed sign-ins of one username from addresses it has not signed in from, before those
    /// are refused for the window. An address where the user signed in within
    /// `login_trust_days` keeps its own budget, so nobody can lock the owner out.
    pub login_max_failures_per_user: u32,
    /// How long an address stays trusted for a user after a sign-in.
    pub login_trust_days: u32,
}

impl AuthConfig {
    /// The password-guessing limits these settings describe.
    pub fn limits(&self) -> crate::throttle::Limits {
        crate::throttle::Limits {
            per_source: self.login_max_failures,
            per_address: self.login_max_failures_per_address,
            per_account: self.login_max_failures_per_user,
            base_delay_ms: 1000,
            window_ms: self.login_lockout_secs * 1000,
            trust_ms: u64::from(self.login_trust_days) * 86_400_000,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_ttl_secs: 12 * 3600,
            login_max_failures: 5,
            login_lockout_secs: 300,
            login_max_failures_per_address: 20,
            login_max_failures_per_user: 20,
            login_trust_days: 30,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// Default level filter (`RUST_LOG` wins when set).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// `[mqtt]`: the broker kitchen devices connect to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MqttConfig {
    /// `embedded` (orderd runs the broker) or `external` (orderd connects to one, e.g. Mosquitto).
    pub mode: String,
    /// Embedded broker: LAN address to listen on; port 0 picks a free port (logged at start).
    pub listen: String,
    /// Embedded broker: MQTT over TLS (rustls) on this address, e.g. `0.0.0.0:8883`; empty = off.
    pub tls_listen: String,
    /// Embedded broker: MQTT over WebSocket (subprotocol `mqtt`) on this address; empty = off.
    pub ws_listen: String,
    /// Embedded broker: MQTT over WebSocket over TLS on this address; empty = off.
    pub wss_listen: String,
    /// PEM certificate chain for the TLS listeners.
    pub tls_cert_file: PathBuf,
    /// PEM private key for the TLS listeners (keep it readable by orderd only).
    pub tls_key_file: PathBuf,
    /// Embedded broker: most connections at once.
    pub max_connections: u32,
    /// Embedded broker: largest packet a device may send.
    pub max_device_packet_bytes: u32,
    /// Embedded broker: seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u32,
    /// External broker: host and port.
    pub external_host: String,
    /// External broker: port.
    pub external_port: u16,
    /// External broker: the account orderd uses (see `orderd device export-acl`).
    pub hub_username: String,
    /// External broker: file holding that account's password (required in external mode).
    pub hub_password_file: PathBuf,
    /// Keep-alive of orderd's own MQTT client.
    pub keep_alive_secs: u16,
    /// Publish Home Assistant MQTT discovery for the open-order count and device availability.
    pub home_assistant: bool,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            mode: "embedded".into(),
            listen: "0.0.0.0:1883".into(),
            tls_listen: String::new(),
            ws_listen: String::new(),
            wss_listen: String::new(),
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
            max_connections: 1000,
            max_device_packet_bytes: 16 * 1024,
            connect_timeout_secs: 5,
            external_host: "127.0.0.1".into(),
            external_port: 1883,
            hub_username: "orderd-hub".into(),
            hub_password_file: PathBuf::new(),
            keep_alive_secs: 15,
            home_assistant: false,
            discovery_prefix: "homeassistant".into(),
        }
    }
}

/// `[kitchen]`: tickets, printers and buzzers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KitchenConfig {
    /// Ticket paper width in mm: 58 or 80.
    pub paper_width_mm: u32,
    /// A job without any report from its printer for this long fails over to the backup.
    pub job_timeout_secs: u64,
    /// An unconfirmed job is sent again (same job id) this often.
    pub resend_secs: u64,
    /// Buzzer pattern for a new order: single, double, triple, long or alarm.
    pub buzz_new_order: String,
    /// Buzzer pattern when an order is ready.
    pub buzz_ready: String,
    /// Buzzer pattern for an alert (printer down, paper out).
    pub buzz_alert: String,
    /// The kitchen page shows a ticket yellow after this long.
    pub age_warn_secs: u64,
    /// … and red after this long.
    pub age_late_secs: u64,
    /// Per-station overrides, e.g. `[kitchen.stations.bar] buzz_new_order = "single"`.
    pub stations: std::collections::BTreeMap<String, StationConfig>,
    /// The keys of a USB bump bar (a keyboard) on the kitchen page.
    pub bump_keys: BumpKeys,
    /// At start, print a slip with the box's address on the first printer that comes online
    /// within a minute (as a point-of-sale box without a screen does).
    pub print_address_at_boot: bool,
}

/// `[kitchen.bump_keys]`: what each key of a bump bar does on the kitchen page. Keys are
/// named as browsers name them (`KeyboardEvent.key`: `ArrowRight`, `Enter`, `" "`, `r`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BumpKeys {
    /// Select the next ticket.
    pub next: Vec<String>,
    /// Select the previous ticket.
    pub previous: Vec<String>,
    /// Bump the selected ticket (its next status).
    pub bump: Vec<String>,
    /// Recall the last ticket bumped from this page (else the oldest ready one).
    pub recall: Vec<String>,
    /// Digits 1-9 select the n-th ticket.
    pub numbers: bool,
}

impl Default for BumpKeys {
    fn default() -> Self {
        let v = |k: &[&str]| k.iter().map(|s| (*s).to_owned()).collect();
        Self {
            next: v(&["ArrowRight", "ArrowDown"]),
            previous: v(&["ArrowLeft", "ArrowUp"]),
            bump: v(&["Enter", " "]),
            recall: v(&["Backspace", "r"]),
            numbers: true,
        }
    }
}

impl Default for KitchenConfig {
    fn default() -> Self {
        Self {
            paper_width_mm: 80,
            job_timeout_secs: 15,
            resend_secs: 3,
            buzz_new_order: "double".into(),
            buzz_ready: "triple".into(),
            buzz_alert: "alarm".into(),
            age_warn_secs: 300,
            age_late_secs: 480,
            stations: std::collections::BTreeMap::new(),
            bump_keys: BumpKeys::default(),
            print_address_at_boot: false,
        }
    }
}

/// `[kitchen.stations.NAME]`: one station's buzzer patterns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StationConfig {
    /// Pattern for a new order at this station.
    pub buzz_new_order: Option<String>,
    /// Pattern when an order of this station is ready.
    pub buzz_ready: Option<String>,
}

/// Parses a buzzer pattern name.
pub fn buzz_pattern(name: &str) -> Option<orderd_protocol::BuzzPattern> {
    use orderd_protocol::BuzzPattern as P;
    Some(match name {
        "single" => P::Single,
        "double" => P::Double,
        "triple" => P::Triple,
        "long" => P::Long,
        "alarm" => P::Alarm,
        _ => return None,
    })
}

/// One problem in a configuration, with the dotted key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `site.currency`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
    /// The line of the file the key is on, when it is in the file.
    pub line: Option<usize>,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for p in &self.0 {
            match p.line {
                Some(line) => writeln!(f, "  {} (line {line}): {}", p.key, p.message)?,
                None => writeln!(f, "  {}: {}", p.key, p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Checked settings the daemon runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration as written (after defaults), kept for display.
    pub raw: RawConfig,
    /// Parsed HTTP listen address.
    pub http_listen: SocketAddr,
    /// Resolved time zone.
    pub time_zone: TimeZone,
    /// Parsed MQTT listen address (embedded broker).
    pub mqtt_listen: SocketAddr,
    /// Parsed HTTPS listen address, when HTTPS is on.
    pub https_listen: Option<SocketAddr>,
    /// Customer orders need a verified phone (`[otp] required` resolved against the channels).
    pub otp_required: bool,
    /// `[mqtt] mode`, resolved.
    pub mqtt_mode: MqttMode,
    /// The embedded broker's other listeners, each when on: MQTT over TLS, over WebSocket, and
    /// over WebSocket over TLS.
    pub mqtt_extra_listen: MqttListeners,
    /// The buzzer patterns, resolved (`[kitchen]` and its per-station overrides).
    pub buzz: BuzzPatterns,
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
    new_order: orderd_protocol::BuzzPattern,
    ready: orderd_protocol::BuzzPattern,
    /// For an alert (printer down, paper out).
    pub alert: orderd_protocol::BuzzPattern,
    stations: std::collections::BTreeMap<
        String,
        (
            Option<orderd_protocol::BuzzPattern>,
            Option<orderd_protocol::BuzzPattern>,
        ),
    >,
}

impl BuzzPatterns {
    /// For a new order at `station`.
    pub fn new_order(&self, station: &str) -> orderd_protocol::BuzzPattern {
        self.stations
            .get(station)
            .and_then(|s| s.0)
            .unwrap_or(self.new_order)
    }

    /// When an order of `station` is ready.
    pub fn ready(&self, station: &str) -> orderd_protocol::BuzzPattern {
        self.stations
            .get(station)
            .and_then(|s| s.1)
            .unwrap_or(self.ready)
    }
}

impl Settings {
    /// The code rule in force and why, for the start-up log, `orderd status` and the admin page.
    pub fn otp_rule(&self) -> (&'static str, &'static str) {
        let channel = self.raw.whatsapp.enabled || self.raw.telegram.enabled;
        match (self.raw.otp.required, channel) {
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
}

impl Settings {
    /// Settings from the embedded defaults alone.
    pub fn defaults() -> Self {
        RawConfig::default()
            .validate()
            .expect("the embedded defaults are valid")
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.raw.store.data_dir
    }
}

/// The wrong types in one section: `[name]` as a whole, then key by key to name each.
fn type_errors<T: serde::de::DeserializeOwned>(
    name: &str,
    value: &toml::Value,
) -> Vec<(String, String)> {
    let Err(whole) = value.clone().try_into::<T>() else {
        return Vec::new();
    };
    let Some(table) = value.as_table() else {
        return vec![(
            name.to_owned(),
            format!("must be a table: {}", whole.message()),
        )];
    };
    let mut out = Vec::new();
    for (key, v) in table {
        let mut one = toml::Table::new();
        one.insert(key.clone(), v.clone());
        if let Err(e) = toml::Value::Table(one).try_into::<T>() {
            out.push((format!("{name}.{key}"), e.message().trim().to_owned()));
        }
    }
    if out.is_empty() {
        out.push((name.to_owned(), whole.message().trim().to_owned()));
    }
    out
}

/// Removes a dotted key (`section.key`) from a parsed table.
fn remove_key(table: &mut toml::Table, dotted: &str) {
    match dotted.split_once('.') {
        Some((section, key)) => {
            if let Some(toml::Value::Table(t)) = table.get_mut(section) {
                t.remove(key);
            }
        }
        None => {
            table.remove(dotted);
        }
    }
}

/// The line (from 1) of a dotted key in TOML text: the `key =` line inside its `[section]`, or
/// the section's header for a whole section.
pub fn line_of(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = match dotted.rsplit_once('.') {
        Some((s, k)) => (s, Some(k)),
        None => (dotted, None),
    };
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(header) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            in_section = header.trim() == section;
            if in_section && key.is_none() {
                return Some(i + 1);
            }
            continue;
        }
        if let Some(k) = key
            && in_section
            && t.split('=').next().is_some_and(|lhs| lhs.trim() == k)
            && t.contains('=')
        {
            return Some(i + 1);
        }
    }
    None
}

impl RawConfig {
    /// Parses TOML text; any problem (syntax, a wrong type, an unknown key) is an error.
    pub fn parse(text: &str) -> Result<Self, Problems> {
        let (raw, problems) = Self::parse_lenient(text)?;
        if problems.is_empty() {
            Ok(raw)
        } else {
            Err(Problems(problems))
        }
    }

    /// Parses TOML text and reports every problem at once: a value of the wrong type and an
    /// unknown key are each a problem with its key and line, and the rest of the file still
    /// counts (a wrong value takes its default, so later checks see the others). Only text that
    /// is not TOML at all stops at once (with its line).
    pub fn parse_lenient(text: &str) -> Result<(Self, Vec<Problem>), Problems> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            Problems(vec![Problem {
                key: "(file)".into(),
                message: format!("not valid TOML: {e}"),
                line: None,
            }])
        })?;
        let mut problems = Vec::new();
        // Wrong types, section by section and then key by key, so each is named; the bad key
        // is taken out so that its default applies and nothing else is lost.
        macro_rules! section {
            ($name:literal, $ty:ty) => {
                if let Some(value) = table.get($name) {
                    for (key, message) in type_errors::<$ty>($name, value) {
                        problems.push(Problem {
                            line: line_of(text, &key),
                            key: key.clone(),
                            message,
                        });
                        remove_key(&mut table, &key);
                    }
                }
            };
        }
        section!("site", SiteConfig);
        section!("store", StoreConfig);
        section!("http", HttpConfig);
        section!("limits", LimitsConfig);
        section!("orders", OrdersConfig);
        section!("auth", AuthConfig);
        section!("log", LogConfig);
        section!("mqtt", MqttConfig);
        section!("kitchen", KitchenConfig);
        section!("otp", OtpConfig);
        section!("messaging", MessagingConfig);
        section!("whatsapp", orderd_plugins::whatsapp::Config);
        section!("telegram", TelegramConfig);
        section!("upload", UploadConfig);
        let mut unknown = Vec::new();
        let raw: Self = serde_ignored::deserialize(toml::Value::Table(table), |path| {
            unknown.push(path.to_string());
        })
        .map_err(|e| {
            Problems(vec![Problem {
                key: "(file)".into(),
                message: format!("{e}"),
                line: None,
            }])
        })?;
        for key in unknown {
            problems.push(Problem {
                line: line_of(text, &key),
                key,
                message: "unknown key; check its spelling against config/orderd.toml".into(),
            });
        }
        Ok((raw, problems))
    }

    /// Reads a file (every problem reported as by [`RawConfig::parse`]), or the embedded
    /// defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, Problems> {
        let (raw, problems, _) = Self::load_lenient(path)?;
        if problems.is_empty() {
            Ok(raw)
        } else {
            Err(Problems(problems))
        }
    }

    /// [`RawConfig::parse_lenient`] of a file, with its text (for the lines of later problems).
    pub fn load_lenient(path: Option<&Path>) -> Result<(Self, Vec<Problem>, String), Problems> {
        let Some(path) = path else {
            return Ok((Self::default(), Vec::new(), String::new()));
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem {
                key: "(file)".into(),
                message: format!("cannot read {}: {e}", path.display()),
                line: None,
            }])
        })?;
        let (raw, problems) = Self::parse_lenient(&text)?;
        Ok((raw, problems, text))
    }

    /// Every file the daemon reads at start, with its key: secrets, certificates and keys.
    fn files_the_service_reads(&self) -> Vec<(&'static str, &Path)> {
        let files = [
            ("http.metrics_token", &self.http.metrics_token.file),
            ("whatsapp.access_token", &self.whatsapp.access_token.file),
            ("telegram.token", &self.telegram.token.file),
            ("upload.token", &self.upload.token.file),
            ("http.tls.cert_file", &self.http.tls.cert_file),
            ("http.tls.key_file", &self.http.tls.key_file),
            ("mqtt.tls_cert_file", &self.mqtt.tls_cert_file),
            ("mqtt.tls_key_file", &self.mqtt.tls_key_file),
            ("mqtt.hub_password_file", &self.mqtt.hub_password_file),
        ];
        files
            .into_iter()
            .filter(|(_, p)| !p.as_os_str().is_empty())
            .map(|(k, p)| (k, p.as_path()))
            .collect()
    }

    /// Checks every field and resolves the settings, or returns every problem at once.
    pub fn validate(self) -> Result<Settings, Problems> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| {
            problems.push(Problem {
                line: None,
                key: key.into(),
                message,
            });
        };
        let s = &self.site;
        if !is_slug(&s.id, 32) {
            bad(
                "site.id",
                format!("{:?} must be 1-32 characters of a-z, 0-9, _ or -", s.id),
            );
        }
        if s.name.trim().is_empty() || s.name.chars().count() > 100 {
            bad("site.name", "must be 1-100 characters".into());
        }
        if s.currency.len() != 3 || !s.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            bad(
                "site.currency",
                format!("{:?} must be an ISO 4217 code such as EUR", s.currency),
            );
        }
        let time_zone = match TimeZone::get(&s.time_zone) {
            Ok(tz) => Some(tz),
            Err(e) => {
                bad(
                    "site.time_zone",
                    format!("{:?} is not a known IANA time zone: {e}", s.time_zone),
                );
                None
            }
        };
        if s.business_day_start_hour > 23 {
            bad(
                "site.business_day_start_hour",
                format!("{} must be 0-23", s.business_day_start_hour),
            );
        }
        if s.order_number_prefix.is_empty()
            || s.order_number_prefix.len() > 8
            || !s
                .order_number_prefix
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            bad(
                "site.order_number_prefix",
                format!(
                    "{:?} must be 1-8 characters of A-Z or 0-9",
                    s.order_number_prefix
                ),
            );
        }
        if s.tax_rate_bp > 10_000 {
            bad(
                "site.tax_rate_bp",
                format!("{} must be 0-10000 basis points", s.tax_rate_bp),
            );
        }
        if !is_slug(&s.default_language, 8) {
            bad(
                "site.default_language",
                format!(
                    "{:?} must be a language code such as en",
                    s.default_language
                ),
            );
        }
        if s.languages.is_empty()
            || s.languages
                .iter()
                .enumerate()
                .any(|(i, l)| !PAGE_LANGUAGES.contains(&l.as_str()) || s.languages[..i].contains(l))
        {
            bad(
                "site.languages",
                format!(
                    "{:?} must list some of {PAGE_LANGUAGES:?}, each once",
                    s.languages
                ),
            );
        } else if is_slug(&s.default_language, 8) && !s.languages.contains(&s.default_language) {
            bad(
                "site.default_language",
                format!(
                    "{:?} must be one of site.languages {:?}",
                    s.default_language, s.languages
                ),
            );
        }
        if self.store.data_dir.as_os_str().is_empty() {
            bad("store.data_dir", "must not be empty".into());
        }
        if !(1024 * 1024..=1024 * 1024 * 1024).contains(&self.store.cache_size_bytes) {
            bad(
                "store.cache_size_bytes",
                "must be between 1 MiB and 1 GiB; 16 MiB suits a Pi".into(),
            );
        }
        if !(1..=4096).contains(&self.store.max_batch) {
            bad("store.max_batch", "must be 1-4096".into());
        }
        if !(10..=600_000).contains(&self.store.checkpoint_interval_ms) {
            bad("store.checkpoint_interval_ms", "must be 10-600000".into());
        }
        if !(1..=1_000_000).contains(&self.store.checkpoint_batches) {
            bad("store.checkpoint_batches", "must be 1-1000000".into());
        }
        if !(1..=1_048_576).contains(&self.store.min_free_mb) {
            bad("store.min_free_mb", "must be 1-1048576".into());
        }
        if self.store.warn_free_mb <= self.store.min_free_mb {
            bad(
                "store.warn_free_mb",
                "must be more than store.min_free_mb".into(),
            );
        }
        if self.store.reserve_mb > 4096 {
            bad("store.reserve_mb", "must be 0-4096".into());
        }
        if !(1..=3600).contains(&self.store.space_check_secs) {
            bad("store.space_check_secs", "must be 1-3600".into());
        }
        let http_listen = self.http.listen.parse::<SocketAddr>().ok();
        if http_listen.is_none() {
            {
                bad(
                    "http.listen",
                    format!(
                        "{:?} must be an address with port, such as 0.0.0.0:8080",
                        self.http.listen
                    ),
                );
            }
        }
        let http = &self.http;
        let base = &http.public_base_url;
        if !base.is_empty()
            && (!(base.starts_with("http://") || base.starts_with("https://"))
                || base.len() > 200
                || base
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '<'))
        {
            bad(
                "http.public_base_url",
                "must be empty or an http(s) URL such as https://box.example".into(),
            );
        }
        if !(1..=300).contains(&http.sse_heartbeat_secs) {
            bad("http.sse_heartbeat_secs", "must be 1-300".into());
        }
        if !(4..=65_536).contains(&http.sse_buffer_events) {
            bad("http.sse_buffer_events", "must be 4-65536".into());
        }
        if !(1..=600).contains(&http.sse_stall_secs) {
            bad("http.sse_stall_secs", "must be 1-600".into());
        }
        if !(1..=600).contains(&http.header_read_timeout_secs) {
            bad("http.header_read_timeout_secs", "must be 1-600".into());
        }
        if !(1..=100_000).contains(&http.max_connections_per_address) {
            bad(
                "http.max_connections_per_address",
                "must be 1-100000".into(),
            );
        }
        if !(1..=1_000_000).contains(&http.max_connections) {
            bad("http.max_connections", "must be 1-1000000".into());
        }
        let tls = &http.tls;
        if !tls.listen.is_empty() && tls.listen.parse::<SocketAddr>().is_err() {
            bad(
                "http.tls.listen",
                format!(
                    "{:?} must be empty or an address with port, such as 0.0.0.0:8443",
                    tls.listen
                ),
            );
        }
        if tls.cert_file.as_os_str().is_empty() != tls.key_file.as_os_str().is_empty() {
            bad(
                "http.tls.cert_file",
                "set both cert_file and key_file, or neither (a self-signed certificate)".into(),
            );
        }
        if tls.names.len() > 32 || tls.names.iter().any(|n| n.is_empty() || n.len() > 253) {
            bad(
                "http.tls.names",
                "at most 32 names of 1-253 characters".into(),
            );
        }
        match http.metrics_token.load() {
            Ok(Some(t)) if t.len() < 16 => bad(
                "http.metrics_token",
                "at least 16 characters (e.g. `openssl rand -hex 16`)".into(),
            ),
            Ok(_) => {}
            Err(e) => bad("http.metrics_token", e),
        }
        if !(1..=100_000).contains(&http.max_menu_streams) {
            bad("http.max_menu_streams", "must be 1-100000".into());
        }
        if !(1..=100_000).contains(&http.max_order_streams) {
            bad("http.max_order_streams", "must be 1-100000".into());
        }
        if !(1..=100_000).contains(&http.max_sse_clients) {
            bad("http.max_sse_clients", "must be 1-100000".into());
        }
        let l = &self.limits;
        if !(1024..=16 * 1024 * 1024).contains(&l.max_body_bytes) {
            bad("limits.max_body_bytes", "must be 1 KiB-16 MiB".into());
        }
        if !(1..=1000).contains(&l.max_items_per_order) {
            bad("limits.max_items_per_order", "must be 1-1000".into());
        }
        if !(1..=10_000).contains(&l.max_quantity) {
            bad("limits.max_quantity", "must be 1-10000".into());
        }
        if !(16..=10_000).contains(&l.max_text_chars) {
            bad("limits.max_text_chars", "must be 16-10000".into());
        }
        if !(1..=1000).contains(&l.max_page_size) {
            bad("limits.max_page_size", "must be 1-1000".into());
        }
        if l.photos_budget_bytes > 1024 * 1024 * 1024 {
            bad("limits.photos_budget_bytes", "must be 0-1 GiB".into());
        }
        let o = &self.orders;
        if o.recall_window_secs > 3600 {
            bad("orders.recall_window_secs", "must be at most 3600".into());
        }
        if !(60..=30 * 86_400).contains(&o.idempotency_ttl_secs) {
            bad(
                "orders.idempotency_ttl_secs",
                "must be 60 s to 30 days".into(),
            );
        }
        if !(1..=3650).contains(&o.retention_days) {
            bad("orders.retention_days", "must be 1-3650".into());
        }
        if !(10..=86_400).contains(&o.retention_interval_secs) {
            bad("orders.retention_interval_secs", "must be 10-86400".into());
        }
        let auth = &self.auth;
        if !(60..=30 * 86_400).contains(&auth.session_ttl_secs) {
            bad("auth.session_ttl_secs", "must be 60 s to 30 days".into());
        }
        if !(1..=1000).contains(&auth.login_max_failures) {
            bad("auth.login_max_failures", "must be 1-1000".into());
        }
        if !(1..=86_400).contains(&auth.login_lockout_secs) {
            bad("auth.login_lockout_secs", "must be 1-86400".into());
        }
        if !(1..=10_000).contains(&auth.login_max_failures_per_address) {
            bad(
                "auth.login_max_failures_per_address",
                "must be 1-10000".into(),
            );
        }
        if !(1..=10_000).contains(&auth.login_max_failures_per_user) {
            bad("auth.login_max_failures_per_user", "must be 1-10000".into());
        }
        if !(1..=365).contains(&auth.login_trust_days) {
            bad("auth.login_trust_days", "must be 1-365".into());
        }
        let mq = &self.mqtt;
        if !matches!(mq.mode.as_str(), "embedded" | "external") {
            bad(
                "mqtt.mode",
                format!("{:?} must be embedded or external", mq.mode),
            );
        }
        let mqtt_listen = mq.listen.parse::<SocketAddr>().ok();
        if mqtt_listen.is_none() {
            bad(
                "mqtt.listen",
                format!(
                    "{:?} must be an address with port, such as 0.0.0.0:1883",
                    mq.listen
                ),
            );
        }
        for (key, value) in [
            ("mqtt.tls_listen", &mq.tls_listen),
            ("mqtt.ws_listen", &mq.ws_listen),
            ("mqtt.wss_listen", &mq.wss_listen),
        ] {
            if !value.is_empty() && value.parse::<SocketAddr>().is_err() {
                bad(
                    key,
                    format!("{value:?} must be empty (off) or an address with port"),
                );
            }
        }
        if (!mq.tls_listen.is_empty() || !mq.wss_listen.is_empty())
            && (mq.tls_cert_file.as_os_str().is_empty() || mq.tls_key_file.as_os_str().is_empty())
        {
            bad(
                "mqtt.tls_cert_file",
                "the TLS listeners need tls_cert_file and tls_key_file (PEM)".into(),
            );
        }
        if !(1..=100_000).contains(&mq.max_connections) {
            bad("mqtt.max_connections", "must be 1-100000".into());
        }
        if !(256..=1024 * 1024).contains(&mq.max_device_packet_bytes) {
            bad("mqtt.max_device_packet_bytes", "must be 256 B-1 MiB".into());
        }
        if !(1..=120).contains(&mq.connect_timeout_secs) {
            bad("mqtt.connect_timeout_secs", "must be 1-120".into());
        }
        if !(5..=600).contains(&mq.keep_alive_secs) {
            bad("mqtt.keep_alive_secs", "must be 5-600".into());
        }
        if mq.external_host.is_empty() {
            bad("mqtt.external_host", "must not be empty".into());
        }
        if !is_slug(&mq.hub_username, 64) {
            bad(
                "mqtt.hub_username",
                "1-64 characters of a-z, 0-9, _ or -".into(),
            );
        }
        if mq.mode == "external" && mq.hub_password_file.as_os_str().is_empty() {
            bad(
                "mqtt.hub_password_file",
                "external mode needs the file with orderd's broker password (orderd device export-acl writes one)".into(),
            );
        }
        if mq.discovery_prefix.is_empty() || mq.discovery_prefix.contains(['#', '+']) {
            bad(
                "mqtt.discovery_prefix",
                "must be a plain topic prefix".into(),
            );
        }
        let otp = &self.otp;
        if otp.required == OtpRequired::On && !self.whatsapp.enabled && !self.telegram.enabled {
            bad(
                "otp.required",
                "true, but neither [whatsapp] nor [telegram] is enabled: no guest could order from a table. Set required = \"auto\" (or false), or enable a channel".into(),
            );
        }
        if !(30..=3600).contains(&otp.ttl_secs) {
            bad("otp.ttl_secs", "must be 30-3600".into());
        }
        if !(1..=20).contains(&otp.max_attempts) {
            bad("otp.max_attempts", "must be 1-20".into());
        }
        if !(1..=100).contains(&otp.max_sends) {
            bad("otp.max_sends", "must be 1-100".into());
        }
        if !(1..=10_000).contains(&otp.max_requests_per_client) {
            bad("otp.max_requests_per_client", "must be 1-10000".into());
        }
        if !(1..=1_000_000).contains(&otp.max_sends_total) {
            bad("otp.max_sends_total", "must be 1-1000000".into());
        }
        if !(1..=1_000_000).contains(&otp.max_sends_per_prefix) {
            bad("otp.max_sends_per_prefix", "must be 1-1000000".into());
        }
        if !(1..=15).contains(&otp.prefix_digits) {
            bad("otp.prefix_digits", "must be 1-15".into());
        }
        if !(1..=10_000).contains(&otp.max_verifies_per_client) {
            bad("otp.max_verifies_per_client", "must be 1-10000".into());
        }
        if !(60..=86_400).contains(&otp.send_window_secs) {
            bad("otp.send_window_secs", "must be 60-86400".into());
        }
        if !(60..=30 * 86_400).contains(&otp.token_ttl_secs) {
            bad("otp.token_ttl_secs", "must be 60 s to 30 days".into());
        }
        let ms = &self.messaging;
        if ms.base_backoff_ms == 0 || ms.max_backoff_ms < ms.base_backoff_ms {
            bad(
                "messaging.base_backoff_ms",
                "must be > 0 and ≤ max_backoff_ms".into(),
            );
        }
        if !(1..=1000).contains(&ms.max_attempts) {
            bad("messaging.max_attempts", "must be 1-1000".into());
        }
        if ms.breaker_failures == 0 {
            bad("messaging.breaker_failures", "must be at least 1".into());
        }
        if !(1..=3600).contains(&ms.breaker_pause_secs) {
            bad("messaging.breaker_pause_secs", "must be 1-3600".into());
        }
        if !(100..=120_000).contains(&ms.request_timeout_ms) {
            bad("messaging.request_timeout_ms", "must be 100-120000".into());
        }
        if !(1..=256).contains(&ms.concurrency) {
            bad("messaging.concurrency", "must be 1-256".into());
        }
        for (key, message) in self.whatsapp.problems() {
            bad(key, message);
        }
        if !(1..=1000).contains(&self.telegram.rate_per_sec) {
            bad("telegram.rate_per_sec", "must be 1-1000".into());
        }
        let tg = &self.telegram;
        if tg.enabled {
            if !tg.api_url.starts_with("http")
                || tg.bot_username.is_empty()
                || tg.bot_username.len() > 64
                || !tg
                    .bot_username
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                bad(
                    "telegram.bot_username",
                    "Telegram needs api_url and the bot's username (letters, digits, _)".into(),
                );
            }
            if tg.staff_lang.is_empty()
                || tg.staff_lang.len() > 8
                || !tg.staff_lang.bytes().all(|b| b.is_ascii_lowercase())
            {
                bad(
                    "telegram.staff_lang",
                    "a language code such as en or sq".into(),
                );
            }
            match tg.token.load() {
                Ok(Some(_)) => {}
                Ok(None) => bad(
                    "telegram.token",
                    "set value, file or env of [telegram.token]".into(),
                ),
                Err(e) => bad("telegram.token", e),
            }
        }
        let up = &self.upload;
        if !(1..=10_000).contains(&up.batch_events) {
            bad("upload.batch_events", "must be 1-10000".into());
        }
        if !(1024..=8 * 1024 * 1024).contains(&up.batch_bytes) {
            bad(
                "upload.batch_bytes",
                "must be 1024-8388608 (1 KiB-8 MiB)".into(),
            );
        }
        if up.max_age_ms > 600_000 {
            bad("upload.max_age_ms", "must be at most 600000".into());
        }
        if !(100..=120_000).contains(&up.request_timeout_ms) {
            bad("upload.request_timeout_ms", "must be 100-120000".into());
        }
        if up.base_backoff_ms == 0 || up.max_backoff_ms < up.base_backoff_ms {
            bad(
                "upload.base_backoff_ms",
                "must be > 0 and ≤ upload.max_backoff_ms".into(),
            );
        }
        if up.breaker_failures == 0 {
            bad("upload.breaker_failures", "must be at least 1".into());
        }
        if up.probe_interval_ms > 60_000 {
            bad("upload.probe_interval_ms", "must be 0-60000".into());
        }
        if up.backlog_budget_bytes < 1024 * 1024 {
            bad(
                "upload.backlog_budget_bytes",
                "must be at least 1048576 (1 MiB)".into(),
            );
        }
        if !matches!(up.compression.as_str(), "lz4" | "none") {
            bad("upload.compression", "lz4 or none".into());
        }
        if up.box_id.is_empty() || up.box_id.len() > 64 {
            bad("upload.box_id", "1 to 64 characters".into());
        }
        if up.enabled {
            if !(up.url.starts_with("https://") || up.url.starts_with("http://")) {
                bad(
                    "upload.url",
                    "the collector's batch endpoint, https://…/v1/batches".into(),
                );
            }
            match up.token.load() {
                Ok(Some(_)) => {}
                Ok(None) => bad(
                    "upload.token",
                    "set value, file or env of [upload.token]".into(),
                ),
                Err(e) => bad("upload.token", e),
            }
        }
        let kc = &self.kitchen;
        if !matches!(kc.paper_width_mm, 58 | 80) {
            bad("kitchen.paper_width_mm", "must be 58 or 80".into());
        }
        if !(1..=86_400).contains(&kc.age_warn_secs) || kc.age_late_secs <= kc.age_warn_secs {
            bad(
                "kitchen.age_late_secs",
                "age_warn_secs must be 1-86400 and age_late_secs larger".into(),
            );
        }
        if !(2..=600).contains(&kc.job_timeout_secs) {
            bad("kitchen.job_timeout_secs", "must be 2-600".into());
        }
        if !(1..=600).contains(&kc.resend_secs) {
            bad("kitchen.resend_secs", "must be 1-600".into());
        }
        for (key, value) in [
            ("kitchen.buzz_new_order", &kc.buzz_new_order),
            ("kitchen.buzz_ready", &kc.buzz_ready),
            ("kitchen.buzz_alert", &kc.buzz_alert),
        ] {
            if buzz_pattern(value).is_none() {
                bad(
                    key,
                    format!("{value:?} must be single, double, triple, long or alarm"),
                );
            }
        }
        for (station, sc) in &kc.stations {
            if !is_slug(station, 32) {
                bad(
                    &format!("kitchen.stations.{station}"),
                    "station ids are a-z, 0-9, _ or -".into(),
                );
            }
            for (name, value) in [
                ("buzz_new_order", &sc.buzz_new_order),
                ("buzz_ready", &sc.buzz_ready),
            ] {
                if let Some(v) = value
                    && buzz_pattern(v).is_none()
                {
                    bad(
                        &format!("kitchen.stations.{station}.{name}"),
                        format!("{v:?} must be single, double, triple, long or alarm"),
                    );
                }
            }
        }
        let bump_keys = &self.kitchen.bump_keys;
        for (name, keys) in [
            ("next", &bump_keys.next),
            ("previous", &bump_keys.previous),
            ("bump", &bump_keys.bump),
            ("recall", &bump_keys.recall),
        ] {
            if keys.len() > 8 || keys.iter().any(|x| x.is_empty() || x.chars().count() > 20) {
                bad(
                    &format!("kitchen.bump_keys.{name}"),
                    "at most 8 key names of 1-20 characters, such as \"Enter\"".into(),
                );
            }
        }
        let b = &self.billing;
        if b.minor_digits > 3 {
            bad(
                "billing.minor_digits",
                format!("{} must be 0-3", b.minor_digits),
            );
        }
        if b.cash_rounding > 100_000 {
            bad(
                "billing.cash_rounding",
                format!("{} must be 0-100000 minor units", b.cash_rounding),
            );
        }
        if b.payment_methods.is_empty() || b.payment_methods.len() > 16 {
            bad(
                "billing.payment_methods",
                "list 1-16 methods, such as [\"cash\", \"card\"]".into(),
            );
        }
        for (i, m) in b.payment_methods.iter().enumerate() {
            if !is_slug(m, 32) || b.payment_methods[..i].contains(m) {
                bad(
                    "billing.payment_methods",
                    format!("{m:?} must be 1-32 characters of a-z, 0-9, _ or -, listed once"),
                );
            }
        }
        if b.reasons.len() > 32
            || b.reasons
                .iter()
                .any(|r| r.trim().is_empty() || r.chars().count() > 100)
        {
            bad(
                "billing.reasons",
                "at most 32 reasons of 1-100 characters".into(),
            );
        }
        if b.address.chars().count() > 200 {
            bad("billing.address", "at most 200 characters".into());
        }
        if b.tax_id.chars().count() > 50 {
            bad("billing.tax_id", "at most 50 characters".into());
        }
        if !is_slug(&b.bill_station, 32) {
            bad(
                "billing.bill_station",
                format!("{:?} must be a station id", b.bill_station),
            );
        }
        for (zone, station) in &b.zone_bill_stations {
            if !is_slug(station, 32) {
                bad(
                    &format!("billing.zone_bill_stations.{zone}"),
                    format!("{station:?} must be a station id"),
                );
            }
        }
        for (key, map) in [
            ("billing.category_tax_rates", &b.category_tax_rates),
            ("billing.item_tax_rates", &b.item_tax_rates),
        ] {
            for (id, rate) in map {
                if *rate > 10_000 {
                    bad(
                        &format!("{key}.{id}"),
                        format!("{rate} must be 0-10000 basis points"),
                    );
                }
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            bad(
                "log.level",
                format!("{:?} is not a level or filter such as info", self.log.level),
            );
        }
        // Run as root (an installer's check, or a command on the installed box): the files the
        // service opens must be readable by the service's user, not just by root.
        if let Some(service) = crate::account::service_account(&self.store.data_dir) {
            for (key, path) in self.files_the_service_reads() {
                if let Some(why) = service.cannot_read(path) {
                    bad(key, why);
                }
            }
        }
        let listener = |v: &str| v.parse::<SocketAddr>().ok();
        let mqtt_extra_listen = MqttListeners {
            tls: listener(&self.mqtt.tls_listen),
            ws: listener(&self.mqtt.ws_listen),
            wss: listener(&self.mqtt.wss_listen),
        };
        let mqtt_mode = if self.mqtt.mode == "external" {
            MqttMode::External
        } else {
            MqttMode::Embedded
        };
        let pattern =
            |name: &str| buzz_pattern(name).unwrap_or(orderd_protocol::BuzzPattern::Double);
        let kc = &self.kitchen;
        let buzz = BuzzPatterns {
            new_order: pattern(&kc.buzz_new_order),
            ready: pattern(&kc.buzz_ready),
            alert: buzz_pattern(&kc.buzz_alert).unwrap_or(orderd_protocol::BuzzPattern::Alarm),
            stations: kc
                .stations
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        (
                            v.buzz_new_order.as_deref().and_then(buzz_pattern),
                            v.buzz_ready.as_deref().and_then(buzz_pattern),
                        ),
                    )
                })
                .collect(),
        };
        match (problems.is_empty(), http_listen, time_zone, mqtt_listen) {
            (true, Some(http_listen), Some(time_zone), Some(mqtt_listen)) => Ok(Settings {
                mqtt_mode,
                mqtt_extra_listen,
                buzz,
                https_listen: self.http.tls.listen.parse().ok(),
                otp_required: match self.otp.required {
                    OtpRequired::On => true,
                    OtpRequired::Off => false,
                    OtpRequired::Auto => self.whatsapp.enabled || self.telegram.enabled,
                },
                raw: self,
                http_listen,
                time_zone,
                mqtt_listen,
            }),
            _ => Err(Problems(problems)),
        }
    }
}

/// Whether `s` is 1..=max characters of `[a-z0-9_-]`.
pub fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_hold_the_mode_listeners_and_buzzer_patterns_resolved() {
        use orderd_protocol::BuzzPattern as P;
        let s = RawConfig::default().validate().unwrap();
        assert_eq!(s.mqtt_mode, MqttMode::Embedded);
        assert!(s.mqtt_extra_listen.tls.is_none() && !s.mqtt_extra_listen.need_tls());
        assert_eq!(s.buzz.new_order("grill"), P::Double);
        let mut raw = RawConfig::default();
        raw.mqtt.mode = "external".into();
        raw.mqtt.hub_password_file = "/run/hub-password".into();
        raw.mqtt.ws_listen = "127.0.0.1:9001".into();
        raw.kitchen.buzz_ready = "long".into();
        raw.kitchen.stations.insert(
            "bar".into(),
            StationConfig {
                buzz_new_order: Some("single".into()),
                buzz_ready: None,
            },
        );
        let s = raw.validate().unwrap();
        assert_eq!(s.mqtt_mode, MqttMode::External);
        assert_eq!(
            s.mqtt_extra_listen.ws,
            Some("127.0.0.1:9001".parse().unwrap())
        );
        assert!(!s.mqtt_extra_listen.need_tls());
        assert_eq!(s.buzz.new_order("bar"), P::Single);
        assert_eq!(s.buzz.new_order("grill"), P::Double);
        assert_eq!(
            s.buzz.ready("bar"),
            P::Long,
            "a station without its own keeps the site's"
        );
        assert_eq!(s.buzz.alert, P::Alarm);
    }

    #[test]
    fn shipped_config_parses_and_validates() {
        let raw = RawConfig::parse(SHIPPED_CONFIG).expect("shipped config parses");
        let settings = raw.validate().expect("shipped config is valid");
        assert_eq!(settings.http_listen.port(), 8080);
    }

    #[test]
    fn shipped_config_matches_embedded_defaults() {
        // The shipped file documents the defaults; if they drift apart, one of them is wrong.
        let shipped = RawConfig::parse(SHIPPED_CONFIG).unwrap();
        let a = serde_json::to_value(&shipped).unwrap();
        let b = serde_json::to_value(RawConfig::default()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
            [site]
            currency = "euro"
            time_zone = "Mars/Olympus"
            business_day_start_hour = 30
            [http]
            listen = "nowhere"
            [limits]
            max_quantity = 0
        "#;
        let err = RawConfig::parse(text).unwrap().validate().unwrap_err();
        let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "site.currency",
                "site.time_zone",
                "site.business_day_start_hour",
                "http.listen",
                "limits.max_quantity"
            ]
        );
    }

    #[test]
    fn each_bad_value_is_reported_under_its_own_key() {
        let text = r"
            [otp]
            max_requests_per_client = 0
            [messaging]
            concurrency = 0
            breaker_failures = 0
            [upload]
            batch_bytes = 10
            probe_interval_ms = 999999
        ";
        let err = RawConfig::parse(text).unwrap().validate().unwrap_err();
        let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "otp.max_requests_per_client",
                "messaging.breaker_failures",
                "messaging.concurrency",
                "upload.batch_bytes",
                "upload.probe_interval_ms"
            ]
        );
    }

    #[test]
    fn the_code_rule_is_auto_true_or_false() {
        let rule = |text: &str| RawConfig::parse(text).unwrap().validate();
        let s = rule("").unwrap();
        assert!(
            !s.otp_required,
            "auto with no channel: the table's code orders"
        );
        assert_eq!(s.otp_rule().0, "off");
        let s = rule("[otp]\nrequired = false").unwrap();
        assert!(!s.otp_required);
        let s = rule(
            "[otp]\nrequired = \"auto\"\n[telegram]\nenabled = true\nbot_username = \"b\"\n[telegram.token]\nvalue = \"1:x\"",
        )
        .unwrap();
        assert!(s.otp_required, "auto with a channel on asks for a code");
        let err = rule("[otp]\nrequired = true").unwrap_err();
        assert_eq!(
            err.0[0].key, "otp.required",
            "true with no channel: {err:?}"
        );
        assert!(RawConfig::parse("[otp]\nrequired = \"maybe\"").is_err());
    }

    #[test]
    fn unknown_keys_are_all_reported() {
        let err =
            RawConfig::parse("[site]\nidd = \"x\"\n[http]\nlisten_addr = \"x\"\n").unwrap_err();
        let mut keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["http.listen_addr", "site.idd"]);
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = RawConfig::parse("[limits]\nmax_quantity = \"lots\"\n").unwrap_err();
        assert!(err.to_string().contains("max_quantity"), "{err}");
    }
}
