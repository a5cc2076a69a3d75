//! Configuration: the raw TOML file, its validation, and the checked [`Settings`] the daemon runs on.
//!
//! Reading happens in two steps, as in ripgrep's flags: the file is parsed into [`RawConfig`]
//! (plain serde structs with named defaults), then [`RawConfig::validate`] checks every field and
//! either returns [`Settings`] or *every* problem at once, each with its dotted key, so an
//! installer fixes the file in one go. Unknown keys are collected with `serde_ignored` rather than
//! rejected one at a time by `deny_unknown_fields`, so they are reported together with the rest.
//!
//! Here: the whole file and its problems; `sections` holds each section's structs and defaults,
//! `parse` reads the file, `validate` checks it, and `settings` resolves it into [`Settings`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

mod parse;
mod sections;
mod settings;
mod validate;

pub use parse::line_of;
pub use sections::*;
pub use settings::*;

/// The shipped, commented configuration file; `orderd init-config` prints it and a test parses it.
pub const SHIPPED_CONFIG: &str = include_str!("../../../config/orderd.toml");

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
    pub telegram: orderd_plugins::telegram::Config,
    /// Store-and-forward upload to the chain's collector.
    pub upload: orderd_plugins::collector::Config,
    /// Guest checks: payment methods, reasons, cash rounding, VAT rates, the printed bill.
    pub billing: BillingConfig,
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
    fn settings_hold_the_mode_listeners_links_and_buzzer_patterns_resolved() {
        use orderd_protocol::BuzzPattern as P;
        let s = RawConfig::default().validate().unwrap();
        assert_eq!(s.mqtt.mode, MqttMode::Embedded);
        assert!(s.mqtt.extra_listen.tls.is_none() && !s.mqtt.extra_listen.need_tls());
        assert_eq!(s.kitchen.buzz.new_order("grill"), P::Double);
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
        assert_eq!(s.mqtt.mode, MqttMode::External);
        assert_eq!(
            s.mqtt.extra_listen.ws,
            Some("127.0.0.1:9001".parse().unwrap())
        );
        assert!(!s.mqtt.extra_listen.need_tls());
        assert_eq!(s.kitchen.buzz.new_order("bar"), P::Single);
        assert_eq!(s.kitchen.buzz.new_order("grill"), P::Double);
        assert_eq!(
            s.kitchen.buzz.ready("bar"),
            P::Long,
            "a station without its own keeps the site's"
        );
        assert_eq!(s.kitchen.buzz.alert, P::Alarm);
        assert!(s.http.public_base_url.is_none() && s.http.https.is_none());
        let mut raw = RawConfig::default();
        raw.http.public_base_url = "https://box.example".into();
        raw.http.tls.listen = "127.0.0.1:8443".into();
        let s = raw.validate().unwrap();
        assert_eq!(
            s.http.public_base_url.as_deref(),
            Some("https://box.example")
        );
        let https = s.http.https.expect("HTTPS on");
        assert_eq!(https.listen.port(), 8443);
        assert!(https.cert_and_key.is_none(), "no files: self-signed");
    }

    #[test]
    fn shipped_config_parses_and_validates() {
        let raw = RawConfig::parse(SHIPPED_CONFIG).expect("shipped config parses");
        let settings = raw.validate().expect("shipped config is valid");
        assert_eq!(settings.http.listen.port(), 8080);
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
        let err = RawConfig::parse("[upload]\ncompression = \"zip\"\n").unwrap_err();
        assert!(err.to_string().contains("compression"), "{err}");
    }
}
