//! The durable outbox: every customer message and staff alert is a row, written in the same
//! transaction as what caused it, then sent by `crate::messaging` and marked once: sent,
//! retried (failed, waiting) or dead (with the provider's reason).
//!
//! One delivery rule (`docs/messaging.md`): a status message or staff alert is delivered at
//! least once. A row is marked `sending` durably before its provider call; after a timeout, or
//! when a row is found `sending` at start (the box stopped mid-call), it is sent again, so the
//! customer may get it twice. A one-time code is the exception: it is never sent after it
//! expired or was replaced by a newer code ([`cancel_codes`]), and a code interrupted mid-call
//! is not resent (the customer asks for a new one). Staff can resend a dead status message or
//! alert with `POST /notifications/{id}/retry`.

use orderd_protocol::{EventKind, OrderStatus};
use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::menu::Menu;
use crate::error::AppError;
use crate::error::TxResult;
use crate::store::writer::Tx;
use crate::store::{StoreError, Stored, codec, tables as t};

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// WhatsApp Cloud API.
    Whatsapp,
    /// Telegram bot.
    Telegram,
}

impl Channel {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Whatsapp => "whatsapp",
            Self::Telegram => "telegram",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "whatsapp" => Some(Self::Whatsapp),
            "telegram" => Some(Self::Telegram),
            _ => None,
        }
    }
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// A one-time code (blanked once sent or dead).
    Code {
        /// The code.
        code: String,
        /// When it stops working, ms: not sent after that.
        expires_at: u64,
    },
    /// An order's new status.
    Status {
        /// Order id.
        order_id: String,
        /// Short number.
        short: String,
        /// The status.
        status: OrderStatus,
    },
    /// A staff alert: a text key (`alert_sold_out`, …) and its values, rendered in the
    /// staff language when sent.
    Alert {
        /// The text key in the message texts.
        key: String,
        /// `{name}` values.
        vars: Vec<(String, String)>,
    },
    /// The e-receipt of a settled check, to a guest who verified a phone (appended last:
    /// stored rows keep their tags).
    Receipt {
        /// The check's number.
        number: u32,
        /// What it cost, as text with the currency ("25.00 EUR").
        total: String,
        /// The payments, as text ("card 20.00 EUR, cash 5.00 EUR").
        paid: String,
    },
}

/// Where a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for its first try.
    Queued,
    /// Handed to the provider, outcome not yet stored.
    Sending,
    /// Accepted by the provider.
    Sent,
    /// Failed; tried again at `next_at`.
    Failed,
    /// Given up: rejected, expired, interrupted or out of attempts.
    Dead,
}

impl State {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Sending,
            Self::Sent,
            Self::Failed,
            Self::Dead,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Still to be sent.
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Queued | Self::Sending | Self::Failed)
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRow {
    /// Id (increasing).
    pub id: u64,
    /// Channel.
    pub channel: Channel,
    /// Phone (E.164) or Telegram chat id.
    pub to: String,
    /// Language.
    pub lang: String,
    /// Content.
    pub message: Message,
    /// State.
    pub state: State,
    /// Provider calls so far.
    pub attempts: u32,
    /// Not sent before this, ms.
    pub next_at: u64,
    /// Created, ms.
    pub created_at: u64,
    /// Last change, ms.
    pub updated_at: u64,
    /// The last failure or the dead letter's reason.
    pub last_error: Option<String>,
    /// The provider's message id once sent.
    pub provider_id: Option<String>,
}

impl Stored for OutboxRow {
    const WHAT: &'static str = "outbox message";
}

/// Where a verified customer hears about an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    /// Phone.
    pub phone: String,
    /// Channel.
    pub channel: Channel,
    /// Language.
    pub lang: String,
}

impl Stored for Contact {
    const WHAT: &'static str = "order contact";
}

const SEQ_KEY: &str = "outbox_seq";

/// Where staff alerts go: a Telegram chat, in one language.
#[derive(Debug, Clone)]
pub struct StaffAlerts {
    /// The chat id.
    pub chat: i64,
    /// The language of the texts.
    pub lang: String,
}

/// The emit hook that writes, in each event's own transaction, the staff alert it calls for
/// ([`alert_for`]) to `route`'s Telegram chat. Registered with the writer at start-up.
pub fn staff_alert_hook(route: StaffAlerts) -> crate::store::writer::EmitHook {
    std::sync::Arc::new(move |tx, kind| {
        let Some(message) = alert_for(kind, super::menu::of(tx), &route.lang) else {
            return Ok(());
        };
        enqueue(
            tx,
            Channel::Telegram,
            &route.chat.to_string(),
            &route.lang,
            message,
        )
        .map(|_| ())
        .map_err(|e| match e {
            crate::store::writer::TxError::Store(e) => e,
            crate::store::writer::TxError::App(e) => crate::store::StoreError::Hook(e.message),
        })
    })
}

/// The staff alert an event calls for, if any: an item sold out or low on stock, a kitchen
/// device offline or out of paper (or with its cover open, or in error), a print job that got
/// no report from its printer.
pub fn alert_for(kind: &EventKind, menu: &Menu, lang: &str) -> Option<Message> {
    let item_name = |id: &str| {
        menu.item(id).map_or_else(
            || id.to_owned(),
            |i| super::menu::localize(&i.name, lang, "en").to_owned(),
        )
    };
    let (key, vars): (&str, Vec<(&str, String)>) = match kind {
        EventKind::SoldOut { item_id } => ("alert_sold_out", vec![("item", item_name(item_id))]),
        EventKind::StockLow { item_id, remaining } => (
            "alert_low_stock",
            vec![
                ("item", item_name(item_id)),
                ("left", remaining.to_string()),
            ],
        ),
        EventKind::DeviceStatus {
            device,
            online: false,
            ..
        } => ("alert_device_offline", vec![("device", device.clone())]),
        EventKind::DeviceStatus { device, state, .. }
            if matches!(state.as_str(), "paper_out" | "cover_open" | "error") =>
        {
            (
                "alert_device_state",
                vec![("device", device.clone()), ("state", state.clone())],
            )
        }
        EventKind::PrintFailover {
            from,
            station,
            reason,
            ..
        } if reason == "no_report" => (
            "alert_no_report",
            vec![("device", from.clone()), ("station", station.clone())],
        ),
        EventKind::BillRequested { table_label, .. } => {
            ("alert_bill_requested", vec![("table", table_label.clone())])
        }
        _ => return None,
    };
    Some(Message::Alert {
        key: key.to_owned(),
        vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    })
}

/// Queues a message in this transaction; returns its id.
pub fn enqueue(
    tx: &mut Tx<'_>,
    channel: Channel,
    to: &str,
    lang: &str,
    message: Message,
) -> TxResult<u64> {
    let id = tx.counters.get(SEQ_KEY)?.map_or(0, |v| v.value()) + 1;
    tx.counters.insert(SEQ_KEY, id)?;
    let now = tx.now_ms();
    let row = OutboxRow {
        id,
        channel,
        to: to.to_owned(),
        lang: lang.to_owned(),
        message,
        state: State::Queued,
        attempts: 0,
        next_at: now,
        created_at: now,
        updated_at: now,
        last_error: None,
        provider_id: None,
    };
    put(tx, &row)?;
    Ok(id)
}

/// Cancels every code message to `to` that has not gone out yet (queued, or failed and
/// waiting): a new code replaces it, and an old code must never arrive after its successor.
/// A code already handed to the provider (`sending`) cannot be called back. Returns how many
/// were cancelled.
pub fn cancel_codes(tx: &mut Tx<'_>, to: &str) -> TxResult<usize> {
    let mut stale = Vec::new();
    for entry in tx.outbox_open.iter()? {
        let id = entry?.0.value();
        if let Some(v) = tx.outbox.get(id)? {
            let row: OutboxRow = codec::decode(v.value())?;
            if row.to == to
                && matches!(row.message, Message::Code { .. })
                && matches!(row.state, State::Queued | State::Failed)
            {
                stale.push(row);
            }
        }
    }
    let now = tx.now_ms();
    for row in &mut stale {
        row.state = State::Dead;
        row.updated_at = now;
        row.last_error = Some("superseded by a newer code before it was sent".into());
        put(tx, row)?;
        count_outcome(tx, row.channel, "dead")?;
    }
    Ok(stale.len())
}

/// Stores a row (and its open-index entry); a code is blanked once the row is closed.
pub fn put(tx: &mut Tx<'_>, row: &OutboxRow) -> TxResult<()> {
    tx.wake_outbox();
    let mut row = row.clone();
    if !row.state.is_open()
        && let Message::Code { code, .. } = &mut row.message
    {
        code.clear();
    }
    tx.outbox.insert(row.id, codec::encode(&row)?.as_slice())?;
    if row.state.is_open() {
        tx.outbox_open.insert(row.id, ())?;
    } else {
        tx.outbox_open.remove(row.id)?;
    }
    Ok(())
}

/// Final outcomes kept as counters in the store, so `/metrics` shows them across restarts.
pub const OUTCOMES: [&str; 2] = ["sent", "dead"];

fn outcome_key(channel: Channel, outcome: &str) -> String {
    format!("messages_{outcome}_{}", channel.as_str())
}

/// Counts a message's final outcome (`sent` or `dead`) in this transaction.
pub fn count_outcome(tx: &mut Tx<'_>, channel: Channel, outcome: &str) -> TxResult<()> {
    let key = outcome_key(channel, outcome);
    let n = tx.counters.get(key.as_str())?.map_or(0, |v| v.value());
    tx.counters.insert(key.as_str(), n + 1)?;
    Ok(())
}

/// The stored outcome counters: (channel, outcome, count) for every channel and outcome.
pub fn outcome_counts(
    rtx: &ReadTransaction,
) -> Result<Vec<(Channel, &'static str, u64)>, StoreError> {
    let counters = rtx.open_table(t::COUNTERS)?;
    let mut out = Vec::new();
    for ch in [Channel::Whatsapp, Channel::Telegram] {
        for outcome in OUTCOMES {
            let n = counters
                .get(outcome_key(ch, outcome).as_str())?
                .map_or(0, |v| v.value());
            out.push((ch, outcome, n));
        }
    }
    Ok(out)
}

/// Records the contact of an order placed with a customer token.
pub fn set_contact(tx: &mut Tx<'_>, order_key: u128, contact: &Contact) -> TxResult<()> {
    tx.order_contacts
        .insert(order_key, codec::encode(contact)?.as_slice())?;
    Ok(())
}

/// Queues the status message of an order that has a contact, for the statuses customers hear
/// about (accepted, ready, cancelled).
pub fn status_changed(
    tx: &mut Tx<'_>,
    order_key: u128,
    order_id: &str,
    short: &str,
    status: OrderStatus,
) -> TxResult<()> {
    if !matches!(
        status,
        OrderStatus::Accepted | OrderStatus::Ready | OrderStatus::Cancelled
    ) {
        return Ok(());
    }
    let Some(contact) = (match tx.order_contacts.get(order_key)? {
        Some(v) => Some(codec::decode::<Contact>(v.value())?),
        None => None,
    }) else {
        return Ok(());
    };
    enqueue(
        tx,
        contact.channel,
        &contact.phone,
        &contact.lang,
        Message::Status {
            order_id: order_id.to_owned(),
            short: short.to_owned(),
            status,
        },
    )?;
    Ok(())
}

/// After a check is settled: its e-receipt to every verified guest phone among its orders,
/// once per phone, in that guest's language and channel.
pub fn receipt(
    tx: &mut Tx<'_>,
    orders: &[u128],
    number: u32,
    total: &str,
    paid: &str,
) -> TxResult<()> {
    let mut sent: Vec<String> = Vec::new();
    for key in orders {
        let Some(contact) = (match tx.order_contacts.get(*key)? {
            Some(v) => Some(codec::decode::<Contact>(v.value())?),
            None => None,
        }) else {
            continue;
        };
        if sent.contains(&contact.phone) {
            continue;
        }
        enqueue(
            tx,
            contact.channel,
            &contact.phone,
            &contact.lang,
            Message::Receipt {
                number,
                total: total.to_owned(),
                paid: paid.to_owned(),
            },
        )?;
        sent.push(contact.phone);
    }
    Ok(())
}

/// One row.
pub fn get_tx(tx: &Tx<'_>, id: u64) -> TxResult<Option<OutboxRow>> {
    Ok(match tx.outbox.get(id)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    })
}

/// Open rows with id > `after`, oldest first, at most `max`.
pub fn open_after(
    rtx: &ReadTransaction,
    after: u64,
    max: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let open = rtx.open_table(t::OUTBOX_OPEN)?;
    let rows = rtx.open_table(t::OUTBOX)?;
    let mut out = Vec::new();
    for entry in open.range(after.saturating_add(1)..)? {
        let id = entry?.0.value();
        if let Some(v) = rows.get(id)? {
            out.push(codec::decode(v.value())?);
        }
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// One page of rows, newest first, optionally in one state (`page` from 1), and how many
/// rows match in all.
pub fn list(
    rtx: &ReadTransaction,
    state: Option<State>,
    page: u32,
    limit: usize,
) -> Result<(Vec<OutboxRow>, u64), StoreError> {
    let rows = rtx.open_table(t::OUTBOX)?;
    let skip = (page.saturating_sub(1) as usize).saturating_mul(limit);
    let mut out = Vec::new();
    let mut total = 0u64;
    for entry in rows.iter()?.rev() {
        let row: OutboxRow = codec::decode(entry?.1.value())?;
        if state.is_none_or(|s| s == row.state) {
            if total >= skip as u64 && out.len() < limit {
                out.push(row);
            }
            total += 1;
        }
    }
    Ok((out, total))
}

/// Puts a failed or dead message back in the queue (409 for one already sent or queued).
pub fn retry(tx: &mut Tx<'_>, id: u64) -> TxResult<OutboxRow> {
    let mut row = get_tx(tx, id)?.ok_or_else(|| AppError::not_found("notification"))?;
    if !matches!(row.state, State::Failed | State::Dead) {
        return Err(AppError::new(
            crate::error::ErrorKind::Conflict,
            "not_retryable",
            format!("a {} message cannot be retried", row.state.as_str()),
        )
        .into());
    }
    if matches!(&row.message, Message::Code { code, .. } if code.is_empty()) {
        return Err(AppError::new(
            crate::error::ErrorKind::Conflict,
            "not_retryable",
            "a one-time code is never resent; the customer asks for a new one",
        )
        .into());
    }
    row.state = State::Queued;
    row.attempts = 0;
    row.next_at = tx.now_ms();
    row.updated_at = tx.now_ms();
    put(tx, &row)?;
    Ok(row)
}

/// The JSON view of a row (a code's digits never leave the box this way).
pub fn view(r: &OutboxRow) -> Value {
    let (kind, detail) = match &r.message {
        Message::Code { .. } => ("code", json!({})),
        Message::Status {
            order_id,
            short,
            status,
        } => (
            "status",
            json!({"order_id": order_id, "short": short, "status": status.as_str()}),
        ),
        Message::Receipt {
            number,
            total,
            paid,
        } => (
            "receipt",
            json!({"check_number": number, "total": total, "paid": paid}),
        ),
        Message::Alert { key, vars } => (
            "alert",
            json!({
                "key": key,
                "vars": vars
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect::<serde_json::Map<String, Value>>()
            }),
        ),
    };
    json!({
        "id": r.id,
        "channel": r.channel.as_str(),
        "to": mask(&r.to),
        "lang": r.lang,
        "kind": kind,
        "detail": detail,
        "state": r.state.as_str(),
        "attempts": r.attempts,
        "next_at": super::rfc3339(r.next_at),
        "created_at": super::rfc3339(r.created_at),
        "updated_at": super::rfc3339(r.updated_at),
        "last_error": r.last_error,
        "provider_id": r.provider_id,
    })
}

/// A phone with all but the last 3 digits hidden (staff lists need not show numbers).
fn mask(to: &str) -> String {
    let n = to.chars().count();
    to.chars()
        .enumerate()
        .map(|(i, c)| {
            if i + 3 < n && c.is_ascii_digit() {
                '•'
            } else {
                c
            }
        })
        .collect()
}
