//! The sections of the configuration file as written: plain serde structs with their named
//! defaults (the shipped `config/orderd.toml` documents each key).

#[allow(clippy::wildcard_imports)]
use super::*;

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
