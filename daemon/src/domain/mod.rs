//! The restaurant's rules: menu, tables, orders and their lifecycle, guest checks and the
//! day's reports, analytics and retention.
//!
//! Domain operations that write take a [`crate::store::writer::Tx`] and follow one rule:
//! **check everything, then write**. A check that fails returns an [`crate::error::AppError`]
//! before the first write, so the other requests committed in the same batch are unaffected.

pub mod analytics;
pub mod checks;
pub mod devices;
pub mod export;
pub mod menu;
pub mod menu_csv;
pub mod orders;
pub mod otp;
pub mod outbox;
pub mod print_jobs;
pub mod reports;
pub mod retention;
pub mod tables;

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rand::RngCore;

use crate::config::Settings;

/// The settings the domain needs, resolved once.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Site id.
    pub site_id: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Time zone of business days.
    pub tz: TimeZone,
    /// Local hour a business day starts.
    pub day_start_hour: u8,
    /// Order number prefix.
    pub prefix: String,
    /// Tax rate in basis points.
    pub tax_rate_bp: u32,
    /// Whether prices include tax.
    pub prices_include_tax: bool,
    /// Fallback language.
    pub default_language: String,
    /// Most lines per order.
    pub max_items: usize,
    /// Largest quantity per line.
    pub max_quantity: u32,
    /// Longest free text, in characters.
    pub max_text: usize,
    /// Recall window in ms.
    pub recall_window_ms: u64,
    /// Idempotency key lifetime in ms.
    pub idempotency_ttl_ms: u64,
    /// Retention in days.
    pub retention_days: u32,
    /// Checks and payments.
    pub billing: checks::Billing,
}

impl Rules {
    /// Resolves the rules from settings.
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            site_id: s.site.id.clone(),
            currency: s.site.currency.clone(),
            tz: s.time_zone.clone(),
            day_start_hour: s.site.business_day_start_hour,
            prefix: s.site.order_number_prefix.clone(),
            tax_rate_bp: s.site.tax_rate_bp,
            prices_include_tax: s.site.prices_include_tax,
            default_language: s.site.default_language.clone(),
            max_items: s.limits.max_items_per_order as usize,
            max_quantity: s.limits.max_quantity,
            max_text: s.limits.max_text_chars as usize,
            recall_window_ms: s.orders.recall_window_secs * 1000,
            idempotency_ttl_ms: s.orders.idempotency_ttl_secs * 1000,
            retention_days: s.orders.retention_days,
            billing: checks::Billing::from_settings(s),
        }
    }

    /// The business day (`YYYYMMDD`) of an instant: the local date, minus one day before the
    /// day-start hour.
    pub fn business_day(&self, ms: u64) -> u32 {
        let ts = Timestamp::from_millisecond(ms as i64).unwrap_or(Timestamp::UNIX_EPOCH);
        let dt = self.tz.to_datetime(ts);
        let date = if dt.hour() < i8::try_from(self.day_start_hour).unwrap_or(0) {
            dt.date().yesterday().unwrap_or(dt.date())
        } else {
            dt.date()
        };
        day_number(date)
    }

    /// Local hour (0–23) of an instant.
    pub fn local_hour(&self, ms: u64) -> usize {
        let ts = Timestamp::from_millisecond(ms as i64).unwrap_or(Timestamp::UNIX_EPOCH);
        self.tz.to_datetime(ts).hour() as usize
    }

    /// The order number for a business day and daily sequence.
    pub fn order_number(&self, day: u32, seq: u32) -> String {
        format!("{}-{day}-{seq:03}", self.prefix)
    }
}

/// `YYYYMMDD` of a civil date.
pub fn day_number(date: jiff::civil::Date) -> u32 {
    (date.year() as u32) * 10_000 + (date.month() as u32) * 100 + date.day() as u32
}

/// Parses `YYYY-MM-DD` into a civil date.
pub fn parse_date(s: &str) -> Option<jiff::civil::Date> {
    if s.len() != 10 {
        return None;
    }
    s.parse::<jiff::civil::Date>().ok()
}

/// The civil date of a `YYYYMMDD` number.
pub fn date_of_day(day: u32) -> Option<jiff::civil::Date> {
    jiff::civil::Date::new(
        i16::try_from(day / 10_000).ok()?,
        i8::try_from(day / 100 % 100).ok()?,
        i8::try_from(day % 100).ok()?,
    )
    .ok()
}

/// The business day after `day` (`YYYYMMDD`).
pub fn next_day(day: u32) -> u32 {
    date_of_day(day)
        .and_then(|d| d.tomorrow().ok())
        .map_or(day + 1, day_number)
}

/// A new UUIDv7 (time-ordered, 74 random bits) as a u128.
pub fn new_id(now_ms: u64) -> u128 {
    let mut rnd = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut rnd);
    let r = u128::from_be_bytes(rnd);
    (u128::from(now_ms & 0xFFFF_FFFF_FFFF) << 80)
        | (0x7 << 76)
        | (r & (0xFFF << 64))
        | (0b10 << 62)
        | (r & ((1 << 62) - 1))
}

/// Canonical UUID text of an id.
pub fn id_text(id: u128) -> String {
    let h = format!("{id:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses canonical UUID text (or 32 bare hex digits).
pub fn parse_id(s: &str) -> Option<u128> {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || !(s.len() == 32 || s.len() == 36) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// `n` random bytes as lowercase hex (tokens).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut s = String::with_capacity(n * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What an `Idempotency-Key` remembers of a request: the first 16 bytes of the SHA-256 of the
/// caller's scope and the request's canonical JSON (orders and payments alike).
pub fn body_hash(scope: &str, body: &impl serde::Serialize) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    // Serializing our own request types cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let full: [u8; 32] = Sha256::new()
        .chain_update(scope.as_bytes())
        .chain_update([0u8])
        .chain_update(bytes)
        .finalize()
        .into();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// RFC 3339 text of a ms timestamp.
pub fn rfc3339(ms: u64) -> String {
    Timestamp::from_millisecond(ms as i64)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::from_settings(&Settings::defaults())
    }

    #[test]
    fn ids_round_trip_and_are_v7() {
        let id = new_id(1_763_782_581_000);
        let text = id_text(id);
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "7");
        assert_eq!(parse_id(&text), Some(id));
        assert_eq!(parse_id("not-an-id"), None);
        assert!(new_id(2) > new_id(1));
    }

    #[test]
    fn business_day_starts_at_the_configured_hour() {
        let r = rules(); // Europe/Tirane, UTC+1 in November, day starts 04:00
        // 2026-11-22 02:30 UTC = 03:30 local: still the 21st.
        let t = "2026-11-22T02:30:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_millisecond() as u64;
        assert_eq!(r.business_day(t), 20_261_121);
        // 03:30 UTC = 04:30 local: the 22nd.
        assert_eq!(r.business_day(t + 3_600_000), 20_261_122);
        assert_eq!(r.order_number(20_261_122, 7), "ORD-20261122-007");
        assert_eq!(r.order_number(20_261_122, 1234), "ORD-20261122-1234");
    }

    #[test]
    fn dates_convert() {
        let d = parse_date("2026-02-28").unwrap();
        assert_eq!(day_number(d), 20_260_228);
        assert_eq!(date_of_day(20_260_228), Some(d));
        assert!(parse_date("2026-2-28").is_none());
        assert!(parse_date("2026-02-30").is_none());
    }
}
