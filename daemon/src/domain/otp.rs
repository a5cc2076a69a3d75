//! Customer phone verification: one-time codes (6 CSPRNG digits, kept only as a keyed hash,
//! limited in time, tries and sends) and the customer tokens a verified code buys.
//!
//! The code's plaintext exists in two places only: the HTTP handler's memory and the pending
//! outbox row that carries it to the provider, which is scrubbed once the message is sent or
//! dead (see [`super::outbox`]).

use hmac::{Hmac, Mac as _};
use rand::Rng as _;
use redb::{ReadTransaction, ReadableTable as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::outbox::{self, Channel, Message};
use crate::config::OtpConfig;
use crate::error::TxResult;
use crate::error::{AppError, ErrorKind};
use crate::store::writer::Tx;
use crate::store::{StoreError, Stored, codec, tables as t};

/// Customer tokens start with this, so they are never mistaken for staff sessions.
pub const TOKEN_PREFIX: &str = "ct_";

/// The code state of one phone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtpRow {
    /// HMAC-SHA256 of the current code, `None` once used.
    pub code_mac: Option<[u8; 32]>,
    /// When the current code expires, ms.
    pub expires_at: u64,
    /// Wrong tries on the current code.
    pub attempts: u32,
    /// Channel and language of the request.
    pub channel: Channel,
    /// Language.
    pub lang: String,
    /// The table the request came from, if any.
    pub table_id: Option<String>,
    /// When codes were sent, ms (the last window's only).
    pub sends: Vec<u64>,
    /// Telegram: the payload of the current `t.me/<bot>?start=…` link.
    pub tg_link: Option<String>,
}

impl Stored for OtpRow {
    const WHAT: &'static str = "one-time code";
}

/// What a verified code gives: a token bound to the phone (and table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerToken {
    /// The verified phone.
    pub phone: String,
    /// Bound table, when the customer came from a table QR.
    pub table_id: Option<String>,
    /// Where status messages go.
    pub channel: Channel,
    /// In which language.
    pub lang: String,
    /// Issued, ms.
    pub created_at: u64,
    /// Expires, ms.
    pub expires_at: u64,
}

impl Stored for CustomerToken {
    const WHAT: &'static str = "customer token";
}

/// The keyed hash of a code for a phone (the phone is in the MAC, so a code hash is useless
/// for another number).
pub fn mac(key: &[u8; 32], phone: &str, code: &str) -> [u8; 32] {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(phone.as_bytes());
    m.update(b"\0");
    m.update(code.as_bytes());
    m.finalize().into_bytes().into()
}

/// The key to one customer order (`X-Order-Key`): a keyed hash of the order id, handed only to
/// the phone that placed the order, so guests sharing a table QR code cannot read each other's
/// orders. Nothing is stored; rotating the box's key file revokes every order key.
pub fn order_key(key: &[u8; 32], order_id: &str) -> String {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(b"order-key\0");
    m.update(order_id.as_bytes());
    let mac = m.finalize().into_bytes();
    mac[..16]
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Whether `given` is the key of `order_id` (constant time).
pub fn check_order_key(key: &[u8; 32], order_id: &str, given: &str) -> bool {
    bool::from(order_key(key, order_id).as_bytes().ct_eq(given.as_bytes()))
}

/// A new 6-digit code from the OS CSPRNG.
pub fn new_code() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

/// An issued code: when it expires.
#[derive(Debug)]
pub struct Issued {
    /// Expiry, ms.
    pub expires_at: u64,
    /// Telegram: the deep-link payload the customer opens the bot with.
    pub tg_link: Option<String>,
}

/// Issues a code for `phone` and queues its message, in one transaction. 429 after
/// `max_sends` in the window (with the wait).
pub fn request(
    tx: &mut Tx<'_>,
    cfg: &OtpConfig,
    key: &[u8; 32],
    phone: &str,
    channel: Channel,
    lang: &str,
    table_id: Option<String>,
) -> TxResult<Issued> {
    let now = tx.now_ms();
    let window = cfg.send_window_secs * 1000;
    let (mut sends, old_link) = match tx.otp.get(phone)? {
        Some(v) => {
            let old = codec::decode::<OtpRow>(v.value())?;
            (old.sends, old.tg_link)
        }
        None => (Vec::new(), None),
    };
    sends.retain(|&at| at + window > now);
    if sends.len() >= cfg.max_sends as usize {
        let wait = sends.iter().min().map_or(window, |&at| at + window - now);
        let mut e = AppError::new(
            ErrorKind::TooManyRequests,
            "too_many_codes",
            "too many codes were sent to this number; try again later",
        );
        e.retry_after_secs = Some(wait.div_ceil(1000));
        return Err(e.into());
    }
    let code = new_code();
    sends.push(now);
    // One live link per phone: the customer proves the phone to the bot through it.
    if let Some(old) = &old_link {
        tx.telegram_links.remove(old.as_str())?;
    }
    let tg_link = (channel == Channel::Telegram).then(|| super::random_hex(16));
    if let Some(link) = &tg_link {
        tx.telegram_links.insert(link.as_str(), phone)?;
    }
    let row = OtpRow {
        code_mac: Some(mac(key, phone, &code)),
        expires_at: now + cfg.ttl_secs * 1000,
        attempts: 0,
        channel,
        lang: lang.to_owned(),
        table_id,
        sends,
        tg_link: tg_link.clone(),
    };
    tx.otp.insert(phone, codec::encode(&row)?.as_slice())?;
    outbox::cancel_codes(tx, phone)?;
    outbox::enqueue(
        tx,
        channel,
        phone,
        lang,
        Message::Code {
            code,
            expires_at: row.expires_at,
        },
    )?;
    Ok(Issued {
        expires_at: row.expires_at,
        tg_link,
    })
}

/// Whether the code message that expires at `expires_at` still carries `phone`'s current,
/// unused code: a newer request replaces the code (and its expiry), a verification uses it.
pub fn is_current(tx: &Tx<'_>, phone: &str, expires_at: u64) -> TxResult<bool> {
    Ok(match tx.otp.get(phone)? {
        Some(v) => {
            let row = codec::decode::<OtpRow>(v.value())?;
            row.code_mac.is_some() && row.expires_at == expires_at
        }
        None => false,
    })
}

/// Telegram: the phone and language of a live deep-link payload (unknown or expired: `None`).
pub fn link_target(
    rtx: &ReadTransaction,
    link: &str,
    now: u64,
) -> Result<Option<(String, String)>, StoreError> {
    if link.is_empty() || link.len() > 64 {
        return Ok(None);
    }
    let Some(phone) = rtx
        .open_table(t::TELEGRAM_LINKS)?
        .get(link)?
        .map(|v| v.value().to_owned())
    else {
        return Ok(None);
    };
    let Some(row) = rtx.open_table(t::OTP)?.get(phone.as_str())? else {
        return Ok(None);
    };
    let row: OtpRow = codec::decode(row.value())?;
    Ok((row.expires_at > now && row.code_mac.is_some()).then_some((phone, row.lang)))
}

/// Telegram: the chat a phone was proven in.
pub fn telegram_chat(rtx: &ReadTransaction, phone: &str) -> Result<Option<i64>, StoreError> {
    Ok(rtx
        .open_table(t::TELEGRAM_CHATS)?
        .get(phone)?
        .map(|v| v.value()))
}

/// The result of a verification attempt (a wrong code is not an error of the transaction: its
/// attempt count must be stored).
#[derive(Debug)]
pub enum Verified {
    /// The token (shown once) and what it is bound to.
    Ok(String, CustomerToken),
    /// Wrong, expired, used or locked (never says which, nor whether the phone is known).
    Refused,
}

/// Checks a code; on success the code is used up and a customer token issued.
pub fn verify(
    tx: &mut Tx<'_>,
    cfg: &OtpConfig,
    key: &[u8; 32],
    phone: &str,
    code: &str,
) -> TxResult<Verified> {
    let now = tx.now_ms();
    let Some(mut row) = (match tx.otp.get(phone)? {
        Some(v) => Some(codec::decode::<OtpRow>(v.value())?),
        None => None,
    }) else {
        // Same work as a known phone, so timing does not tell either.
        let _ = mac(key, phone, code);
        return Ok(Verified::Refused);
    };
    let expected = row.code_mac.unwrap_or([0; 32]);
    let matches = bool::from(mac(key, phone, code).ct_eq(&expected));
    let usable = row.code_mac.is_some() && row.expires_at > now && row.attempts < cfg.max_attempts;
    if !(usable && matches) {
        if usable {
            row.attempts += 1;
            tx.otp.insert(phone, codec::encode(&row)?.as_slice())?;
        }
        return Ok(Verified::Refused);
    }
    row.code_mac = None;
    tx.otp.insert(phone, codec::encode(&row)?.as_slice())?;
    let token = format!("{TOKEN_PREFIX}{}", super::random_hex(32));
    let ct = CustomerToken {
        phone: phone.to_owned(),
        table_id: row.table_id.clone(),
        channel: row.channel,
        lang: row.lang.clone(),
        created_at: now,
        expires_at: now + cfg.token_ttl_secs * 1000,
    };
    tx.customer_tokens
        .insert(token_key(&token), codec::encode(&ct)?.as_slice())?;
    Ok(Verified::Ok(token, ct))
}

/// The stored key of a token: its SHA-256.
pub fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A live customer token.
pub fn check_token(
    rtx: &ReadTransaction,
    token: &str,
    now: u64,
) -> Result<Option<CustomerToken>, StoreError> {
    let table = rtx.open_table(t::CUSTOMER_TOKENS)?;
    let Some(v) = table.get(token_key(token))? else {
        return Ok(None);
    };
    let ct: CustomerToken = codec::decode(v.value())?;
    Ok((ct.expires_at > now).then_some(ct))
}

/// Revokes a token (404 if unknown).
pub fn revoke(tx: &mut Tx<'_>, token: &str) -> TxResult<()> {
    if !tx.customer_tokens.remove(token_key(token))? {
        return Err(AppError::not_found("customer token").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_are_per_order_and_per_box() {
        let k = order_key(&[1; 32], "o1");
        assert_eq!(k.len(), 32);
        assert!(check_order_key(&[1; 32], "o1", &k));
        assert!(!check_order_key(&[1; 32], "o2", &k));
        assert!(!check_order_key(&[2; 32], "o1", &k));
        assert!(!check_order_key(&[1; 32], "o1", &k[..31]));
    }
}
