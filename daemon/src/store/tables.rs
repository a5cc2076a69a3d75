//! Table definitions: the whole on-disk layout in one place.
//!
//! Keys are chosen so that the common reads are range scans: active orders by status, orders by
//! business day and daily number, finished orders by time, orders by phone. Values are
//! [`super::codec`]-encoded and carry a version byte.

use redb::{TableDefinition, WriteTransaction};

use super::StoreError;

/// order id (UUIDv7 as u128) → `StoredOrder` (order + status history).
pub const ORDERS: TableDefinition<u128, &[u8]> = TableDefinition::new("orders");
/// (status code, order id) → () for orders not yet finished.
pub const IDX_ACTIVE: TableDefinition<(u8, u128), ()> = TableDefinition::new("idx_active");
/// (business day `YYYYMMDD`, daily number) → order id.
pub const IDX_DAY: TableDefinition<(u32, u32), u128> = TableDefinition::new("idx_day");
/// (customer phone, order id) → ().
pub const IDX_PHONE: TableDefinition<(&str, u128), ()> = TableDefinition::new("idx_phone");
/// (finished at ms, order id) → () for finished orders.
pub const IDX_FINISHED: TableDefinition<(u64, u128), ()> = TableDefinition::new("idx_finished");
/// `"menu"` → `Menu`.
pub const MENU: TableDefinition<&str, &[u8]> = TableDefinition::new("menu");
/// item id → units in stock (only items whose stock is tracked).
pub const STOCK: TableDefinition<&str, u32> = TableDefinition::new("stock");
/// table id → `Table`.
pub const TABLES: TableDefinition<&str, &[u8]> = TableDefinition::new("tables");
/// username → `User`.
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// SHA-256 of a session token → `Session`. The token itself is never stored.
pub const SESSIONS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("sessions");
/// Idempotency-Key → `IdemRecord`.
pub const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// Named counters (the schema version). Daily order numbers need no counter: the next one is
/// one past the last entry of the day in [`IDX_DAY`], read in the same transaction.
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
/// seq → `Event`: the event log.
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// consumer name → last event seq it has durably handled.
pub const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");
/// device id → `Device` (kitchen devices and their MQTT credentials).
pub const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// business day → `DailySummary`, written when a day's orders are pruned.
pub const DAILY_SUMMARIES: TableDefinition<u32, &[u8]> = TableDefinition::new("daily_summaries");

/// job id → `PrintJobRow`: every print job, its printer and its state.
pub const PRINT_JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("print_jobs");
/// job id → () for jobs not yet printed (or replaced by a failover).
pub const PRINT_OPEN: TableDefinition<&str, ()> = TableDefinition::new("print_open");

/// phone (E.164) → `OtpRow`: the current one-time code (as a keyed hash) and recent sends.
pub const OTP: TableDefinition<&str, &[u8]> = TableDefinition::new("otp");
/// SHA-256 of a customer token → `CustomerToken`. The token itself is never stored.
pub const CUSTOMER_TOKENS: TableDefinition<[u8; 32], &[u8]> =
    TableDefinition::new("customer_tokens");
/// message id → `OutboxRow`: every customer message and staff alert, and its state.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// message id → () for messages still queued or in flight.
pub const OUTBOX_OPEN: TableDefinition<u64, ()> = TableDefinition::new("outbox_open");
/// order id → `Contact`: where a verified customer hears about the order.
pub const ORDER_CONTACTS: TableDefinition<u128, &[u8]> = TableDefinition::new("order_contacts");

/// phone (E.164) → Telegram chat id, once the customer shared that phone as their own contact.
pub const TELEGRAM_CHATS: TableDefinition<&str, i64> = TableDefinition::new("telegram_chats");
/// deep-link payload → phone: the `t.me/<bot>?start=…` link of a pending Telegram code.
pub const TELEGRAM_LINKS: TableDefinition<&str, &str> = TableDefinition::new("telegram_links");

/// check id → `StoredCheck`: a guest check, its lines, adjustments and payments.
pub const CHECKS: TableDefinition<u64, &[u8]> = TableDefinition::new("checks");
/// check id → () for checks still open.
pub const CHECKS_OPEN: TableDefinition<u64, ()> = TableDefinition::new("checks_open");
/// table id → the open check new orders at that table join.
pub const TABLE_CHECKS: TableDefinition<&str, u64> = TableDefinition::new("table_checks");
/// order id → the check its lines were put on.
pub const ORDER_CHECKS: TableDefinition<u128, u64> = TableDefinition::new("order_checks");
/// `{check id}:{scope}:{Idempotency-Key}` → `PayKey`: the payment a key recorded.
pub const PAY_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("pay_keys");
/// (business day, event seq) → `LedgerEntry`: the day's money facts (closed checks,
/// refunds, cash movements), what X and Z reports sum.
pub const LEDGER: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("ledger");
/// Z number → `ZReport`.
pub const Z_REPORTS: TableDefinition<u32, &[u8]> = TableDefinition::new("z_reports");
/// username → argon2id hash of the manager PIN that approves discounts, voids and refunds.
pub const PINS: TableDefinition<&str, &str> = TableDefinition::new("pins");

/// Key of the schema version in [`COUNTERS`].
pub const SCHEMA_KEY: &str = "schema_version";

/// Creates every table so that read transactions never meet a missing one.
pub fn create_all(wtx: &WriteTransaction) -> Result<(), StoreError> {
    wtx.open_table(ORDERS)?;
    wtx.open_table(IDX_ACTIVE)?;
    wtx.open_table(IDX_DAY)?;
    wtx.open_table(IDX_PHONE)?;
    wtx.open_table(IDX_FINISHED)?;
    wtx.open_table(MENU)?;
    wtx.open_table(STOCK)?;
    wtx.open_table(TABLES)?;
    wtx.open_table(USERS)?;
    wtx.open_table(SESSIONS)?;
    wtx.open_table(IDEMPOTENCY)?;
    wtx.open_table(COUNTERS)?;
    wtx.open_table(EVENTS)?;
    wtx.open_table(CURSORS)?;
    wtx.open_table(DAILY_SUMMARIES)?;
    wtx.open_table(DEVICES)?;
    wtx.open_table(PRINT_JOBS)?;
    wtx.open_table(PRINT_OPEN)?;
    wtx.open_table(OTP)?;
    wtx.open_table(CUSTOMER_TOKENS)?;
    wtx.open_table(OUTBOX)?;
    wtx.open_table(OUTBOX_OPEN)?;
    wtx.open_table(ORDER_CONTACTS)?;
    wtx.open_table(TELEGRAM_CHATS)?;
    wtx.open_table(TELEGRAM_LINKS)?;
    wtx.open_table(CHECKS)?;
    wtx.open_table(CHECKS_OPEN)?;
    wtx.open_table(TABLE_CHECKS)?;
    wtx.open_table(ORDER_CHECKS)?;
    wtx.open_table(PAY_KEYS)?;
    wtx.open_table(LEDGER)?;
    wtx.open_table(Z_REPORTS)?;
    wtx.open_table(PINS)?;
    Ok(())
}
