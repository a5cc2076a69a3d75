//! Guest checks: what one party owes and paid. A check takes its lines from its orders, and
//! carries discounts, comps and voids (each with the reason and both people), payments (one per
//! `Idempotency-Key`, never past the balance), tips and refunds; it closes when its balance
//! reaches zero, and its figures then go to the day's ledger that X and Z reports sum
//! (`reports`). Rules in `docs/billing.md`.
//!
//! A dine-in order joins its table's open check (the first order on a free table opens one). A
//! takeaway or delivery order has a check of its own, made the first time staff open it, so
//! the order path of a counter that never bills pays nothing for checks.

use std::collections::BTreeMap;

use orderd_protocol::{
    AdjustmentFact, AdjustmentKind, BillPrint, BilledLine, CheckClosed, CheckRef, EventKind, Order,
    OrderStatus, OrderType, PaymentFact, RefundFact, VatLine,
};
use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Rules;
use super::menu::Menu;
use crate::config::Settings;
use crate::error::TxResult;
use crate::error::{AppError, ErrorKind};
use crate::store::writer::Tx;
use crate::store::{StoreError, Stored, codec, tables as t};

/// Largest amount any request may carry, minor units (`docs/openapi.json`).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;
/// Most guests on one check.
pub const MAX_COVERS: u32 = 999;
/// Longest reason or reference, characters.
pub const MAX_REASON: usize = 200;
/// Most lines a check holds.
pub const MAX_LINES: usize = 2_000;
/// Most payments on one check.
pub const MAX_PAYMENTS: usize = 200;

/// The billing settings the domain needs, resolved once.
#[derive(Debug, Clone)]
pub struct Billing {
    /// Digits of the minor unit.
    pub minor_digits: u8,
    /// Cash rounding step, minor units (0 or 1: none).
    pub cash_rounding: i64,
    /// Payment methods staff may record.
    pub methods: Vec<String>,
    /// Configured reasons.
    pub reasons: Vec<String>,
    /// The bill printer's station.
    pub bill_station: String,
    /// A bill station per table zone.
    pub zone_stations: BTreeMap<String, String>,
    /// Printed on the bill.
    pub address: String,
    /// Printed on the bill.
    pub tax_id: String,
    /// VAT per category id.
    pub category_rates: BTreeMap<String, u32>,
    /// VAT per item id.
    pub item_rates: BTreeMap<String, u32>,
}

impl Billing {
    /// From the settings.
    pub fn from_settings(s: &Settings) -> Self {
        let b = &s.billing;
        Self {
            minor_digits: b.minor_digits,
            cash_rounding: i64::from(b.cash_rounding),
            methods: b.payment_methods.clone(),
            reasons: b.reasons.clone(),
            bill_station: b.bill_station.clone(),
            zone_stations: b.zone_bill_stations.clone(),
            address: b.address.clone(),
            tax_id: b.tax_id.clone(),
            category_rates: b.category_tax_rates.clone(),
            item_rates: b.item_tax_rates.clone(),
        }
    }

    /// The VAT rate of an item: its own, its category's, or the site's.
    pub fn rate_of(&self, menu: &Menu, item_id: &str, default_bp: u32) -> u32 {
        if let Some(&r) = self.item_rates.get(item_id) {
            return r;
        }
        menu.categories
            .iter()
            .find(|c| c.items.iter().any(|i| i.id == item_id))
            .and_then(|c| self.category_rates.get(&c.id).copied())
            .unwrap_or(default_bp)
    }

    /// `amount` rounded to the cash step, half up.
    pub fn round_cash(&self, amount: i64) -> i64 {
        let step = self.cash_rounding;
        if step <= 1 {
            return amount;
        }
        (amount + step / 2).div_euclid(step) * step
    }
}

/// Open, closed (settled) or voided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Taking orders and payments.
    Open,
    /// Paid in full.
    Closed,
    /// Voided whole, with a reason.
    Voided,
}

impl CheckState {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Voided => "voided",
        }
    }
}

/// One line of a check: a line of one of its orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckLine {
    /// Id within the check, from 1, never reused.
    pub id: u32,
    /// The order it came from.
    pub order_id: u128,
    /// Its index in that order's lines.
    pub order_line: u32,
    /// Menu item.
    pub item_id: String,
    /// Name with modifiers.
    pub name: String,
    /// The chosen modifiers (group id, option id), to name them in the guest's language.
    pub modifiers: Vec<(String, String)>,
    /// Units ordered.
    pub quantity: u32,
    /// Price of one unit with its modifiers.
    pub unit_price: i64,
    /// The kitchen station.
    pub station: String,
    /// VAT rate.
    pub rate_bp: u32,
    /// Units voided on the check.
    pub voided: u32,
    /// Its order was cancelled.
    pub cancelled: bool,
}

/// A discount, comp or void as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// What was given, with both people and the reason.
    pub fact: AdjustmentFact,
    /// A fixed amount off (discounts given as an amount).
    pub fixed: Option<i64>,
    /// When, ms.
    pub at: u64,
}

/// A payment as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The payment.
    pub fact: PaymentFact,
    /// When, ms.
    pub at: u64,
}

/// A refund as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The refund.
    pub fact: RefundFact,
    /// When, ms.
    pub at: u64,
}

/// A transfer, merge or split, with who and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// `transfer`, `merge_in`, `merged_into`, `split_from`, `split_to`, `lines_in`, `lines_out`.
    pub what: String,
    /// The other check.
    pub other: u64,
    /// The table after the move.
    pub table_id: Option<String>,
    /// Lines moved (their ids in the check they left).
    pub lines: Vec<u32>,
    /// Who.
    pub actor: String,
    /// When, ms.
    pub at: u64,
}

/// A check as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCheck {
    /// Id, number and day.
    pub check: CheckRef,
    /// Open, closed or voided.
    pub state: CheckState,
    /// Dine-in, takeaway or delivery.
    pub order_type: OrderType,
    /// Table id (dine-in).
    pub table_id: Option<String>,
    /// Table label (dine-in).
    pub table_label: Option<String>,
    /// Who opened it (the waiter on the bill).
    pub opened_by: String,
    /// When, ms.
    pub opened_at: u64,
    /// Guests.
    pub covers: u32,
    /// Its orders.
    pub orders: Vec<u128>,
    /// Its lines.
    pub lines: Vec<CheckLine>,
    /// Next line id.
    pub next_line: u32,
    /// Discounts, comps and voids.
    pub adjustments: Vec<Adjustment>,
    /// Payments.
    pub payments: Vec<Payment>,
    /// Refunds (closed checks).
    pub refunds: Vec<Refund>,
    /// Transfers, merges and splits.
    pub moves: Vec<Move>,
    /// How often the bill was printed.
    pub bill_prints: u32,
    /// When a guest asked for the bill.
    pub bill_requested_at: Option<u64>,
    /// When it closed or was voided.
    pub closed_at: Option<u64>,
    /// Who closed or voided it.
    pub closed_by: Option<String>,
    /// The reason it was voided.
    pub void_reason: Option<String>,
    /// The guest's language, for the bill.
    pub lang: Option<String>,
}

impl Stored for StoredCheck {
    const WHAT: &'static str = "check";
}

/// What a payment's `Idempotency-Key` remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayKey {
    /// The first 16 bytes of the SHA-256 of the request body.
    pub body_hash: [u8; 16],
    /// The payment it recorded.
    pub payment: u32,
}

impl Stored for PayKey {
    const WHAT: &'static str = "payment key";
}

/// A day's money fact, keyed by (business day, event seq) in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerEntry {
    /// A check closed or voided.
    Closed(CheckClosed),
    /// A refund.
    Refund(RefundFact),
    /// A cash movement or count.
    Cash(orderd_protocol::CashFact),
}

impl Stored for LedgerEntry {
    const WHAT: &'static str = "ledger entry";
}

/// A line as billed now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillLine {
    /// Check line id.
    pub id: u32,
    /// Order id (text).
    pub order_id: String,
    /// Item.
    pub item_id: String,
    /// Name with modifiers.
    pub name: String,
    /// Units billed.
    pub quantity: u32,
    /// Units voided.
    pub voided: u32,
    /// Unit price.
    pub unit_price: i64,
    /// unit price × units billed.
    pub gross: i64,
    /// Line discounts.
    pub discount: i64,
    /// Comped value.
    pub comp: i64,
    /// Its share of the check's discounts.
    pub check_discount: i64,
    /// What it costs now.
    pub net: i64,
    /// VAT rate.
    pub rate_bp: u32,
}

/// A check's figures now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bill {
    /// Lines (cancelled orders' lines are left out).
    pub lines: Vec<BillLine>,
    /// Sales before discounts.
    pub subtotal: i64,
    /// Line and check discounts (not comps).
    pub discounts: i64,
    /// Comps.
    pub comps: i64,
    /// Of which on the whole check.
    pub check_discount: i64,
    /// Value voided.
    pub voids: i64,
    /// What is owed.
    pub total: i64,
    /// VAT per rate.
    pub vat: Vec<VatLine>,
    /// Taken off the balance by payments.
    pub paid: i64,
    /// Tips.
    pub tips: i64,
    /// Cash rounding.
    pub rounding: i64,
    /// Refunded.
    pub refunded: i64,
    /// total − paid.
    pub balance: i64,
}

/// `v × bp / 10000`, half up, for non-negative values.
fn percent_of(v: i64, bp: u32) -> i64 {
    let x = i128::from(v) * i128::from(bp);
    ((x * 2 + 10_000) / 20_000) as i64
}

/// Splits `amount` over `weights` in proportion, largest remainder first, so the parts add up.
pub fn allocate(amount: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i128 = weights.iter().map(|&w| i128::from(w.max(0))).sum();
    if sum == 0 || amount == 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<i64> = Vec::with_capacity(weights.len());
    let mut rems: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let x = i128::from(amount) * i128::from(w.max(0));
        parts.push((x / sum) as i64);
        rems.push((x % sum, i));
    }
    let mut left = amount - parts.iter().sum::<i64>();
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rems {
        if left <= 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
}

/// The check's figures now: lines after voids, line discounts and comps, check discounts
/// spread over the lines, VAT per rate, payments and the balance.
pub fn bill(check: &StoredCheck, rules: &Rules) -> Bill {
    let mut lines: Vec<BillLine> = Vec::new();
    for l in check.lines.iter().filter(|l| !l.cancelled) {
        let quantity = l.quantity.saturating_sub(l.voided);
        let gross = l.unit_price.saturating_mul(i64::from(quantity));
        lines.push(BillLine {
            id: l.id,
            order_id: super::id_text(l.order_id),
            item_id: l.item_id.clone(),
            name: l.name.clone(),
            quantity,
            voided: l.voided,
            unit_price: l.unit_price,
            gross,
            discount: 0,
            comp: 0,
            check_discount: 0,
            net: gross,
            rate_bp: l.rate_bp,
        });
    }
    let mut voids = 0i64;
    let mut check_discount = 0i64;
    // Line adjustments first, in the order they were given; then the check's.
    for a in &check.adjustments {
        let f = &a.fact;
        match (f.kind, f.line) {
            (AdjustmentKind::Void, _) => voids += f.amount,
            (kind, Some(id)) => {
                if let Some(l) = lines.iter_mut().find(|l| l.id == id) {
                    let left = l.gross - l.discount - l.comp;
                    let off = match (kind, f.percent_bp, a.fixed) {
                        (AdjustmentKind::Comp, _, _) => left,
                        (_, Some(bp), _) => percent_of(l.gross, bp).min(left),
                        (_, None, Some(x)) => x.min(left),
                        _ => 0,
                    };
                    if kind == AdjustmentKind::Comp {
                        l.comp += off;
                    } else {
                        l.discount += off;
                    }
                    l.net = l.gross - l.discount - l.comp;
                }
            }
            (_, None) => {}
        }
    }
    for a in check.adjustments.iter().filter(|a| a.fact.line.is_none()) {
        if a.fact.kind != AdjustmentKind::Discount {
            continue;
        }
        let left: i64 = lines.iter().map(|l| l.net).sum::<i64>() - check_discount;
        let off = match (a.fact.percent_bp, a.fixed) {
            (Some(bp), _) => percent_of(left, bp),
            (None, Some(x)) => x,
            _ => 0,
        }
        .clamp(0, left.max(0));
        check_discount += off;
    }
    let weights: Vec<i64> = lines.iter().map(|l| l.net).collect();
    for (l, share) in lines.iter_mut().zip(allocate(check_discount, &weights)) {
        l.check_discount = share;
        l.net -= share;
    }
    let mut per_rate: BTreeMap<u32, i64> = BTreeMap::new();
    for l in &lines {
        *per_rate.entry(l.rate_bp).or_default() += l.net;
    }
    let mut vat = Vec::new();
    let mut added = 0i64;
    for (&rate_bp, &net) in &per_rate {
        if rules.prices_include_tax {
            let denom = 10_000 + i128::from(rate_bp);
            let v = (i128::from(net) * i128::from(rate_bp) * 2 + denom) / (denom * 2);
            vat.push(VatLine {
                rate_bp,
                gross: net,
                vat: v as i64,
            });
        } else {
            let v = percent_of(net, rate_bp);
            added += v;
            vat.push(VatLine {
                rate_bp,
                gross: net + v,
                vat: v,
            });
        }
    }
    let subtotal: i64 = lines.iter().map(|l| l.gross).sum();
    let comps: i64 = lines.iter().map(|l| l.comp).sum();
    let discounts: i64 = lines.iter().map(|l| l.discount).sum::<i64>() + check_discount;
    let total: i64 = lines.iter().map(|l| l.net).sum::<i64>() + added;
    let paid: i64 = check.payments.iter().map(|p| p.fact.amount).sum();
    Bill {
        lines,
        subtotal,
        discounts,
        comps,
        check_discount,
        voids,
        total,
        vat,
        paid,
        tips: check.payments.iter().map(|p| p.fact.tip).sum(),
        rounding: check.payments.iter().map(|p| p.fact.rounding).sum(),
        refunded: check.refunds.iter().map(|r| r.fact.amount).sum(),
        balance: total - paid,
    }
}

/// The name of an order line on a check or a bill: item and modifiers.
fn line_name(l: &orderd_protocol::OrderLine) -> String {
    if l.modifiers.is_empty() {
        return l.name.clone();
    }
    let mods: Vec<&str> = l.modifiers.iter().map(|m| m.name.as_str()).collect();
    format!("{} ({})", l.name, mods.join(", "))
}

fn modifier_ids(l: &orderd_protocol::OrderLine) -> Vec<(String, String)> {
    l.modifiers
        .iter()
        .map(|m| (m.group_id.clone(), m.option_id.clone()))
        .collect()
}

/// A check line's name in `lang`, from the menu (the stored name when the item is gone).
pub fn name_in(menu: &Menu, line: &CheckLine, lang: &str) -> String {
    let Some(item) = menu.item(&line.item_id) else {
        return line.name.clone();
    };
    let pick = |l: &super::menu::Localized| {
        l.get(lang)
            .or_else(|| l.values().next())
            .cloned()
            .unwrap_or_default()
    };
    let mut name = pick(&item.name);
    if name.is_empty() {
        return line.name.clone();
    }
    let mods: Vec<String> = line
        .modifiers
        .iter()
        .filter_map(|(g, o)| {
            let group = item.modifier_groups.iter().find(|x| &x.id == g)?;
            group
                .options
                .iter()
                .find(|x| &x.id == o)
                .map(|x| pick(&x.name))
        })
        .collect();
    if !mods.is_empty() {
        name = format!("{name} ({})", mods.join(", "));
    }
    name
}

fn get_check(tx: &Tx<'_>, id: u64) -> TxResult<Option<StoredCheck>> {
    Ok(match tx.checks.get(id)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    })
}

fn load(tx: &Tx<'_>, id: u64) -> TxResult<StoredCheck> {
    get_check(tx, id)?.ok_or_else(|| AppError::not_found("check").into())
}

fn load_open(tx: &Tx<'_>, id: u64) -> TxResult<StoredCheck> {
    let c = load(tx, id)?;
    if c.state != CheckState::Open {
        return Err(not_open(&c).into());
    }
    Ok(c)
}

fn not_open(c: &StoredCheck) -> AppError {
    AppError::new(
        ErrorKind::Conflict,
        "check_not_open",
        format!("check {} is {}", c.check.number, c.state.as_str()),
    )
    .with_details(json!({ "state": c.state.as_str() }))
}

fn write(tx: &mut Tx<'_>, c: &StoredCheck) -> TxResult<()> {
    tx.checks.insert(c.check.id, codec::encode(c)?.as_slice())?;
    Ok(())
}

/// A new check's id and number: the day's next number, one past its last id.
fn next_ref(tx: &Tx<'_>, rules: &Rules, now: u64) -> TxResult<CheckRef> {
    let day = rules.business_day(now);
    let base = u64::from(day) * 1_000_000;
    let last = tx
        .checks
        .range(base..base + 1_000_000)?
        .next_back()
        .transpose()?
        .map_or(base, |(k, _)| k.value());
    // Never behind a later day already used (the clock or the day-start hour changed).
    let newest = tx.checks.last()?.map_or(0, |(k, _)| k.value());
    let id = last.max(newest) + 1;
    if id % 1_000_000 == 0 {
        return Err(
            AppError::new(ErrorKind::Conflict, "day_full", "check counter exhausted").into(),
        );
    }
    Ok(CheckRef {
        id,
        number: (id % 1_000_000) as u32,
        day: (id / 1_000_000) as u32,
    })
}

/// A check line from line `index` of an order.
fn check_line(
    id: u32,
    key: u128,
    index: usize,
    l: &orderd_protocol::OrderLine,
    rate_bp: u32,
) -> CheckLine {
    CheckLine {
        id,
        order_id: key,
        order_line: index as u32,
        item_id: l.item_id.clone(),
        name: line_name(l),
        modifiers: modifier_ids(l),
        quantity: l.quantity,
        unit_price: l.unit_price,
        station: l.station.clone(),
        rate_bp,
        voided: 0,
        cancelled: false,
    }
}

fn lines_of(
    order: &Order,
    next_line: &mut u32,
    billing: &Billing,
    menu: &Menu,
    rules: &Rules,
    key: u128,
) -> Vec<CheckLine> {
    order
        .items
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let id = *next_line;
            *next_line += 1;
            let mut line = check_line(
                id,
                key,
                i,
                l,
                billing.rate_of(menu, &l.item_id, rules.tax_rate_bp),
            );
            line.cancelled = order.status == OrderStatus::Cancelled;
            line
        })
        .collect()
}

fn open_new(
    tx: &mut Tx<'_>,
    rules: &Rules,
    order_type: OrderType,
    table: Option<(&str, &str)>,
    actor: &str,
) -> TxResult<StoredCheck> {
    let now = tx.now_ms();
    let check = next_ref(tx, rules, now)?;
    let c = StoredCheck {
        check,
        state: CheckState::Open,
        order_type,
        table_id: table.map(|(id, _)| id.to_owned()),
        table_label: table.map(|(_, l)| l.to_owned()),
        opened_by: actor.to_owned(),
        opened_at: now,
        covers: 0,
        orders: Vec::new(),
        lines: Vec::new(),
        next_line: 1,
        adjustments: Vec::new(),
        payments: Vec::new(),
        refunds: Vec::new(),
        moves: Vec::new(),
        bill_prints: 0,
        bill_requested_at: None,
        closed_at: None,
        closed_by: None,
        void_reason: None,
        lang: None,
    };
    tx.checks_open.insert(c.check.id, ())?;
    if let Some((id, _)) = table {
        tx.table_checks.insert(id, c.check.id)?;
    }
    Ok(c)
}

/// Puts a just-placed dine-in order on its table's open check, opening one on a free table.
/// Takeaway and delivery orders get theirs when staff first open it ([`for_order`]).
pub fn join_placed(tx: &mut Tx<'_>, rules: &Rules, order: &Order, key: u128) -> TxResult<()> {
    let (Some(table_id), OrderType::DineIn) = (&order.table_id, order.order_type) else {
        return Ok(());
    };
    let open = tx.table_checks.get(table_id.as_str())?.map(|v| v.value());
    let mut c = if let Some(id) = open {
        load(tx, id)?
    } else {
        let label = order.table_label.clone().unwrap_or_default();
        let actor = match order.source {
            orderd_protocol::OrderSource::Customer => "guest",
            orderd_protocol::OrderSource::Staff => "staff",
        };
        let mut c = open_new(
            tx,
            rules,
            OrderType::DineIn,
            Some((table_id.as_str(), label.as_str())),
            actor,
        )?;
        c.opened_by = history_actor(tx, key).unwrap_or_else(|| actor.to_owned());
        c
    };
    add_order(tx, rules, &mut c, order, key)?;
    write(tx, &c)
}

/// Who placed an order, from its stored history (the order row is written before this runs).
fn history_actor(tx: &Tx<'_>, key: u128) -> Option<String> {
    let v = tx.orders.get(key).ok()??;
    let stored: super::orders::StoredOrder = codec::decode(v.value()).ok()?;
    stored.history.first().map(|h| h.actor.clone())
}

fn add_order(
    tx: &mut Tx<'_>,
    rules: &Rules,
    c: &mut StoredCheck,
    order: &Order,
    key: u128,
) -> TxResult<()> {
    let billing = &rules.billing;
    let menu = super::menu::arc_of(tx);
    let mut next = c.next_line;
    let new = lines_of(order, &mut next, billing, &menu, rules, key);
    c.next_line = next;
    c.lines.extend(new);
    c.orders.push(key);
    tx.order_checks.insert(key, c.check.id)?;
    Ok(())
}

/// The check of an order: the one it is on, or, for a takeaway or delivery order on none
/// yet, a new check of its own.
pub fn for_order(
    tx: &mut Tx<'_>,
    rules: &Rules,
    order_id: &str,
    actor: &str,
) -> TxResult<StoredCheck> {
    let key = super::parse_id(order_id).ok_or_else(|| AppError::not_found("order"))?;
    if let Some(id) = tx.order_checks.get(key)?.map(|v| v.value()) {
        return load(tx, id);
    }
    let stored: super::orders::StoredOrder = match tx.orders.get(key)? {
        Some(v) => codec::decode(v.value())?,
        None => return Err(AppError::not_found("order").into()),
    };
    if stored.order.status == OrderStatus::Cancelled {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "order_cancelled",
            "a cancelled order has nothing to pay",
        )
        .into());
    }
    let mut c = open_new(tx, rules, stored.order.order_type, None, actor)?;
    add_order(tx, rules, &mut c, &stored.order, key)?;
    write(tx, &c)?;
    Ok(c)
}

/// Open checks holding lines of `key` (the order's own check first; moved lines may be on
/// others).
fn checks_with_order(tx: &Tx<'_>, key: u128) -> TxResult<Vec<StoredCheck>> {
    let Some(home) = tx.order_checks.get(key)?.map(|v| v.value()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let ids: Vec<u64> = tx
        .checks_open
        .iter()?
        .map(|r| r.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for id in ids {
        let c = load(tx, id)?;
        if id == home || c.lines.iter().any(|l| l.order_id == key) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Whether an order's lines may still be edited: not when a line of it carries a discount,
/// comp or void on its check, or was moved to another check.
pub fn check_editable(tx: &Tx<'_>, key: u128) -> TxResult<()> {
    for c in checks_with_order(tx, key)? {
        let touched = c.lines.iter().filter(|l| l.order_id == key).any(|l| {
            c.adjustments
                .iter()
                .any(|a| a.fact.line == Some(l.id) && a.fact.kind != AdjustmentKind::Void)
        });
        let moved = c
            .moves
            .iter()
            .any(|m| m.what == "lines_in" || m.what == "lines_out")
            && c.lines.iter().any(|l| l.order_id == key);
        if touched || moved {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "lines_on_check",
                "lines of this order carry discounts or were moved on its check; void them on the check instead",
            )
            .into());
        }
    }
    Ok(())
}

/// Whether an order may be cancelled, or its lines become `new_lines`, without a check that
/// holds its lines owing less than was already paid on it (refund or void on the check first).
pub fn check_order_change(
    tx: &Tx<'_>,
    rules: &Rules,
    key: u128,
    new_lines: Option<&[orderd_protocol::OrderLine]>,
) -> TxResult<()> {
    for c in checks_with_order(tx, key)? {
        if c.payments.is_empty() {
            continue;
        }
        let mut after = c.clone();
        match new_lines {
            None => {
                for l in after.lines.iter_mut().filter(|l| l.order_id == key) {
                    l.cancelled = true;
                }
            }
            Some(lines) => {
                // The same matching as `order_edited`, on a copy.
                let mut old: Vec<CheckLine> = after
                    .lines
                    .iter()
                    .filter(|l| l.order_id == key)
                    .cloned()
                    .collect();
                after.lines.retain(|l| l.order_id != key);
                for l in lines {
                    if let Some(j) = old
                        .iter()
                        .position(|o| o.item_id == l.item_id && o.unit_price == l.unit_price)
                    {
                        let mut o = old.remove(j);
                        o.quantity = l.quantity;
                        o.voided = o.voided.min(l.quantity);
                        after.lines.push(o);
                    } else {
                        after.lines.push(CheckLine {
                            id: u32::MAX,
                            order_id: key,
                            order_line: 0,
                            item_id: l.item_id.clone(),
                            name: String::new(),
                            modifiers: Vec::new(),
                            quantity: l.quantity,
                            unit_price: l.unit_price,
                            station: String::new(),
                            rate_bp: rules.tax_rate_bp,
                            voided: 0,
                            cancelled: false,
                        });
                    }
                }
            }
        }
        let b = bill(&after, rules);
        if b.balance < 0 {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "check_paid",
                format!(
                    "check {} has {} paid and would owe only {}; refund it or void on the check first",
                    c.check.number, b.paid, b.total
                ),
            )
            .with_details(json!({ "check_id": c.check.id, "paid": b.paid, "total_after": b.total }))
            .into());
        }
    }
    Ok(())
}

/// After an order's lines were edited: its check's lines follow (a line keeps its id while
/// it stays the same item at the same price, so its voids stay with it).
pub fn order_edited(tx: &mut Tx<'_>, rules: &Rules, order: &Order, key: u128) -> TxResult<()> {
    let menu = super::menu::arc_of(tx);
    for mut c in checks_with_order(tx, key)? {
        if tx.order_checks.get(key)?.map(|v| v.value()) != Some(c.check.id) {
            continue;
        }
        let old: Vec<CheckLine> = c
            .lines
            .iter()
            .filter(|l| l.order_id == key)
            .cloned()
            .collect();
        let mut used = vec![false; old.len()];
        let mut fresh = Vec::new();
        for (i, l) in order.items.iter().enumerate() {
            let found = old.iter().enumerate().position(|(j, o)| {
                !used[j] && o.item_id == l.item_id && o.unit_price == l.unit_price
            });
            let id = if let Some(j) = found {
                used[j] = true;
                old[j].id
            } else {
                let id = c.next_line;
                c.next_line += 1;
                id
            };
            let rate = rules.billing.rate_of(&menu, &l.item_id, rules.tax_rate_bp);
            let mut line = check_line(id, key, i, l, rate);
            line.voided = found.map_or(0, |j| old[j].voided.min(l.quantity));
            fresh.push(line);
        }
        c.lines.retain(|l| l.order_id != key);
        c.lines.extend(fresh);
        c.lines.sort_by_key(|l| l.id);
        write(tx, &c)?;
    }
    Ok(())
}

/// After an order was cancelled: its lines leave its check's bill.
pub fn order_cancelled(tx: &mut Tx<'_>, key: u128) -> TxResult<()> {
    for mut c in checks_with_order(tx, key)? {
        for l in c.lines.iter_mut().filter(|l| l.order_id == key) {
            l.cancelled = true;
        }
        write(tx, &c)?;
    }
    Ok(())
}

/// Who approved an adjustment: an admin acting alone approves their own; a staff user needs
/// an admin's PIN, checked by the caller before the job reaches the writer.
#[derive(Debug, Clone)]
pub struct Approval {
    /// Who does it.
    pub actor: String,
    /// The admin who approved it.
    pub approved_by: String,
}

/// A reason as given: trimmed, 1 to [`MAX_REASON`] characters (422 otherwise).
pub fn check_reason(reason: &str) -> Result<String, AppError> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(AppError::invalid("reason", "a reason is required"));
    }
    if r.chars().count() > MAX_REASON {
        return Err(AppError::invalid(
            "reason",
            format!("at most {MAX_REASON} characters"),
        ));
    }
    Ok(r.to_owned())
}

fn check_amount(field: &str, v: i64, zero_ok: bool) -> Result<(), AppError> {
    if (v < 0 || (!zero_ok && v == 0)) || v > MAX_AMOUNT {
        return Err(AppError::invalid(
            field,
            format!(
                "must be {} to {MAX_AMOUNT} minor units",
                i32::from(!zero_ok)
            ),
        ));
    }
    Ok(())
}

/// Sets the number of guests.
pub fn set_covers(tx: &mut Tx<'_>, id: u64, covers: u32) -> TxResult<StoredCheck> {
    if covers > MAX_COVERS {
        return Err(AppError::invalid("covers", format!("0 to {MAX_COVERS}")).into());
    }
    let mut c = load_open(tx, id)?;
    c.covers = covers;
    write(tx, &c)?;
    Ok(c)
}

/// The body of a payment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// One of `billing.payment_methods`.
    pub method: String,
    /// Minor units off the balance (> 0). For cash that settles the check this may be the
    /// balance rounded to the cash step.
    pub amount: i64,
    /// Tip on top (≥ 0).
    #[serde(default)]
    pub tip: i64,
    /// Cash handed over (cash only).
    #[serde(default)]
    pub tendered: Option<i64>,
    /// The card terminal's reference (never card data).
    #[serde(default)]
    pub reference: Option<String>,
}

impl NewPayment {
    /// Checks what needs no store.
    pub fn check_shape(&self, billing: &Billing) -> Result<(), AppError> {
        if !billing.methods.contains(&self.method) {
            return Err(AppError::invalid(
                "method",
                format!("unknown payment method {:?}", self.method),
            )
            .with_details(json!({ "field": "method", "known": billing.methods })));
        }
        check_amount("amount", self.amount, false)?;
        check_amount("tip", self.tip, true)?;
        if let Some(t) = self.tendered {
            if self.method != "cash" {
                return Err(AppError::invalid("tendered", "only cash is tendered"));
            }
            check_amount("tendered", t, false)?;
        }
        if let Some(r) = &self.reference
            && (r.is_empty() || r.chars().count() > 64)
        {
            return Err(AppError::invalid("reference", "1-64 characters"));
        }
        Ok(())
    }

    /// A hash of the body, for its `Idempotency-Key`.
    pub fn body_hash(&self, scope: &str) -> [u8; 16] {
        super::body_hash(scope, self)
    }
}

/// The answer to a payment: the check after it, the payment, and whether it was a replay.
#[derive(Debug, Clone)]
pub struct Paid {
    /// The check after the payment.
    pub check: StoredCheck,
    /// The payment.
    pub payment: PaymentFact,
    /// Recorded earlier under the same key.
    pub replayed: bool,
}

/// Records a payment: checked against the balance in the same transaction, so two waiters
/// paying at once can never take the balance below zero; a key seen before answers with the
/// payment it recorded. The check closes when its balance reaches zero.
pub fn pay(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: u64,
    req: &NewPayment,
    actor: &str,
    idem: Option<(&str, &str)>,
) -> TxResult<Paid> {
    let key = idem.map(|(k, scope)| (format!("{id}:{scope}:{k}"), req.body_hash(scope)));
    let c = load(tx, id)?;
    if let Some((k, hash)) = &key
        && let Some(v) = tx.pay_keys.get(k.as_str())?
    {
        let rec: PayKey = codec::decode(v.value())?;
        if &rec.body_hash != hash {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "idempotency_key_reused",
                "this Idempotency-Key is already in use; send a new key",
            )
            .into());
        }
        if let Some(p) = c.payments.iter().find(|p| p.fact.id == rec.payment) {
            let payment = p.fact.clone();
            return Ok(Paid {
                check: c,
                payment,
                replayed: true,
            });
        }
    }
    if c.state != CheckState::Open {
        return Err(not_open(&c).into());
    }
    if c.payments.len() >= MAX_PAYMENTS {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "too_many_payments",
            format!("a check takes at most {MAX_PAYMENTS} payments"),
        )
        .into());
    }
    let b = bill(&c, rules);
    let balance = b.balance;
    // Cash that settles the check may be the balance rounded to the cash step.
    let (amount, rounding) = if req.method == "cash"
        && rules.billing.cash_rounding > 1
        && req.amount != balance
        && req.amount == rules.billing.round_cash(balance)
    {
        (balance, req.amount - balance)
    } else {
        (req.amount, 0)
    };
    if amount > balance || balance <= 0 {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "over_balance",
            format!("the balance is {balance}; a payment cannot exceed it"),
        )
        .with_details(json!({ "balance": balance, "total": b.total, "paid": b.paid }))
        .into());
    }
    let received = amount + rounding + req.tip;
    let change = match req.tendered {
        Some(t) if t < received => {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "tendered_short",
                format!("{t} tendered is less than the {received} due with the tip and rounding"),
            )
            .with_details(json!({ "due": received }))
            .into());
        }
        Some(t) => Some(t - received),
        None => None,
    };
    // --- write ---
    let mut c = c;
    let payment = PaymentFact {
        id: c.payments.len() as u32 + 1,
        method: req.method.clone(),
        amount,
        tip: req.tip,
        rounding,
        tendered: req.tendered,
        change,
        reference: req.reference.clone(),
        actor: actor.to_owned(),
    };
    let now = tx.now_ms();
    c.payments.push(Payment {
        fact: payment.clone(),
        at: now,
    });
    tx.emit(EventKind::PaymentRecorded {
        check: c.check.clone(),
        payment: payment.clone(),
    })?;
    if let Some((k, body_hash)) = key {
        let rec = PayKey {
            body_hash,
            payment: payment.id,
        };
        tx.pay_keys
            .insert(k.as_str(), codec::encode(&rec)?.as_slice())?;
    }
    if amount == balance {
        close(tx, rules, &mut c, actor, false)?;
    }
    write(tx, &c)?;
    Ok(Paid {
        check: c,
        payment,
        replayed: false,
    })
}

/// Counter: the business day the last Z closed (written by `reports::close_day`).
pub const Z_LAST_DAY: &str = "z_last_day";

/// The business day new money facts count in: today's, but never a day a Z already closed.
pub fn ledger_day(tx: &Tx<'_>, rules: &Rules) -> TxResult<u32> {
    let closed = tx.counters.get(Z_LAST_DAY)?.map_or(0, |v| v.value()) as u32;
    Ok(ledger_day_at(rules, tx.now_ms(), closed))
}

/// [`ledger_day`] at `now` after the last Z closed `closed`.
pub fn ledger_day_at(rules: &Rules, now: u64, closed: u32) -> u32 {
    let today = rules.business_day(now);
    if today > closed {
        today
    } else {
        super::next_day(closed)
    }
}

/// The closing fact of a check, as it stands.
pub fn closing_fact(c: &StoredCheck, rules: &Rules, ledger_day: u32, actor: &str) -> CheckClosed {
    let b = bill(c, rules);
    CheckClosed {
        check: c.check.clone(),
        ledger_day,
        voided: c.state == CheckState::Voided,
        table_id: c.table_id.clone(),
        covers: c.covers,
        opened_by: c.opened_by.clone(),
        actor: actor.to_owned(),
        lines: b
            .lines
            .iter()
            .map(|l| BilledLine {
                item_id: l.item_id.clone(),
                name: l.name.clone(),
                quantity: l.quantity,
                voided: l.voided,
                gross: l.gross,
                discount: l.discount + l.comp,
                rate_bp: l.rate_bp,
            })
            .collect(),
        sales: b.subtotal,
        discounts: b.discounts,
        comps: b.comps,
        voids: b.voids,
        total: b.total,
        vat: b.vat,
        payments: c.payments.iter().map(|p| p.fact.clone()).collect(),
        adjustments: c.adjustments.iter().map(|a| a.fact.clone()).collect(),
    }
}

/// Closes (or voids) a check: the ledger gets its figures, the table is free.
fn close(
    tx: &mut Tx<'_>,
    rules: &Rules,
    c: &mut StoredCheck,
    actor: &str,
    voided: bool,
) -> TxResult<()> {
    let now = tx.now_ms();
    c.state = if voided {
        CheckState::Voided
    } else {
        CheckState::Closed
    };
    c.closed_at = Some(now);
    c.closed_by = Some(actor.to_owned());
    let day = ledger_day(tx, rules)?;
    let fact = closing_fact(c, rules, day, actor);
    let total = fact.total;
    let seq = tx.emit(EventKind::CheckClosed(Box::new(fact.clone())))?;
    tx.ledger.insert(
        (day, seq),
        codec::encode(&LedgerEntry::Closed(fact))?.as_slice(),
    )?;
    tx.checks_open.remove(c.check.id)?;
    if !voided {
        let digits = rules.billing.minor_digits;
        let m = |a: i64| {
            format!(
                "{} {}",
                orderd_plugins::escpos::money(a, digits),
                rules.currency
            )
        };
        let paid: Vec<String> = c
            .payments
            .iter()
            .map(|p| format!("{} {}", p.fact.method, m(p.fact.amount + p.fact.rounding)))
            .collect();
        super::outbox::receipt(tx, &c.orders, c.check.number, &m(total), &paid.join(", "))?;
    }
    if let Some(table) = &c.table_id
        && tx.table_checks.get(table.as_str())?.map(|v| v.value()) == Some(c.check.id)
    {
        tx.table_checks.remove(table.as_str())?;
        // Another open check at the same table (a split) takes new orders now.
        let ids: Vec<u64> = tx
            .checks_open
            .iter()?
            .map(|r| r.map(|(k, _)| k.value()))
            .collect::<Result<_, _>>()?;
        for other in ids {
            if let Some(o) = get_check(tx, other)?
                && o.table_id.as_deref() == Some(table.as_str())
            {
                tx.table_checks.insert(table.as_str(), other)?;
                break;
            }
        }
    }
    Ok(())
}

/// Closes a check whose balance is zero (all comped, say).
pub fn close_settled(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: u64,
    actor: &str,
) -> TxResult<StoredCheck> {
    let mut c = load_open(tx, id)?;
    let b = bill(&c, rules);
    if b.balance != 0 {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "balance_due",
            format!("{} is still to pay", b.balance),
        )
        .with_details(json!({ "balance": b.balance }))
        .into());
    }
    close(tx, rules, &mut c, actor, false)?;
    write(tx, &c)?;
    Ok(c)
}

/// The body of a discount or comp.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDiscount {
    /// A check line id, or none for the whole check.
    #[serde(default)]
    pub line: Option<u32>,
    /// Percent off in basis points (1-10000).
    #[serde(default)]
    pub percent_bp: Option<u32>,
    /// Minor units off.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Give the line away (at zero) instead.
    #[serde(default)]
    pub comp: bool,
    /// Why (from `billing.reasons`, or typed).
    pub reason: String,
}

impl NewDiscount {
    /// Checks what needs no store.
    pub fn check_shape(&self) -> Result<(), AppError> {
        check_reason(&self.reason)?;
        if self.comp {
            if self.line.is_none() {
                return Err(AppError::invalid("line", "a comp gives away one line"));
            }
            if self.percent_bp.is_some() || self.amount.is_some() {
                return Err(AppError::invalid(
                    "comp",
                    "a comp takes neither percent_bp nor amount",
                ));
            }
            return Ok(());
        }
        match (self.percent_bp, self.amount) {
            (Some(bp), None) if (1..=10_000).contains(&bp) => Ok(()),
            (Some(_), None) => Err(AppError::invalid(
                "percent_bp",
                "1 to 10000 basis points (100 %)",
            )),
            (None, Some(a)) => check_amount("amount", a, false),
            _ => Err(AppError::invalid(
                "percent_bp",
                "give exactly one of percent_bp or amount",
            )),
        }
    }
}

/// Gives a discount or comp, with the reason and both people.
pub fn discount(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: u64,
    req: &NewDiscount,
    who: &Approval,
) -> TxResult<StoredCheck> {
    let mut c = load_open(tx, id)?;
    let b = bill(&c, rules);
    let (name, value) = if let Some(line) = req.line {
        {
            let l = b.lines.iter().find(|l| l.id == line).ok_or_else(|| {
                AppError::new(
                    ErrorKind::Conflict,
                    "no_such_line",
                    format!("check {} has no line {line}", c.check.number),
                )
            })?;
            let left = l.gross - l.discount - l.comp;
            let value = if req.comp {
                left
            } else if let Some(bp) = req.percent_bp {
                percent_of(l.gross, bp).min(left)
            } else {
                req.amount.unwrap_or(0)
            };
            if value > left {
                return Err(over_discount("the line", left).into());
            }
            (Some(l.name.clone()), value)
        }
    } else {
        {
            let left = b
                .lines
                .iter()
                .map(|l| l.gross - l.discount - l.comp)
                .sum::<i64>()
                - b.check_discount;
            let value = match req.percent_bp {
                Some(bp) => percent_of(left, bp),
                None => req.amount.unwrap_or(0),
            };
            if value > left {
                return Err(over_discount("the check", left).into());
            }
            (None, value)
        }
    };
    if value > b.balance {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "over_balance",
            format!("{value} off is more than the {} still to pay", b.balance),
        )
        .with_details(json!({ "balance": b.balance }))
        .into());
    }
    let fact = AdjustmentFact {
        kind: if req.comp {
            AdjustmentKind::Comp
        } else {
            AdjustmentKind::Discount
        },
        line: req.line,
        name,
        percent_bp: req.percent_bp,
        amount: value,
        quantity: 0,
        reason: check_reason(&req.reason)?,
        actor: who.actor.clone(),
        approved_by: who.approved_by.clone(),
    };
    adjust(tx, &mut c, fact, req.amount)?;
    write(tx, &c)?;
    Ok(c)
}

/// 409: more off than is left to discount on the line or check.
fn over_discount(what: &str, left: i64) -> AppError {
    AppError::new(
        ErrorKind::Conflict,
        "over_discount",
        format!("{what} has {left} left to discount"),
    )
    .with_details(json!({ "left": left }))
}

fn adjust(
    tx: &mut Tx<'_>,
    c: &mut StoredCheck,
    fact: AdjustmentFact,
    fixed: Option<i64>,
) -> TxResult<()> {
    tx.emit(EventKind::CheckAdjusted {
        check: c.check.clone(),
        adjustment: fact.clone(),
    })?;
    c.adjustments.push(Adjustment {
        fact,
        fixed,
        at: tx.now_ms(),
    });
    Ok(())
}

/// The body of a line void.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVoid {
    /// The check line.
    pub line: u32,
    /// Units to void (default: all billed units).
    #[serde(default)]
    pub quantity: Option<u32>,
    /// Why.
    pub reason: String,
}

/// Voids units of a line. While the kitchen still has the order, the order itself loses them
/// and the station gets its REMOVED slip, as for any edit.
pub fn void_line(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: u64,
    req: &NewVoid,
    who: &Approval,
) -> TxResult<StoredCheck> {
    let reason = check_reason(&req.reason)?;
    let c = load_open(tx, id)?;
    let b = bill(&c, rules);
    let line = c
        .lines
        .iter()
        .find(|l| l.id == req.line && !l.cancelled)
        .cloned()
        .ok_or_else(|| {
            AppError::new(
                ErrorKind::Conflict,
                "no_such_line",
                format!("check {} has no line {}", c.check.number, req.line),
            )
        })?;
    let billed = line.quantity - line.voided;
    let qty = req.quantity.unwrap_or(billed);
    if qty == 0 {
        return Err(AppError::invalid("quantity", "at least 1").into());
    }
    if qty > billed {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "over_void",
            format!("line {} has {billed} units left to void", line.id),
        )
        .with_details(json!({ "billed": billed }))
        .into());
    }
    let value = line.unit_price * i64::from(qty);
    let bl = b.lines.iter().find(|l| l.id == line.id);
    // What the voided units still cost after their discounts must not take the balance below
    // what was paid.
    let net_off = bl.map_or(value, |l| {
        if l.quantity == 0 {
            0
        } else {
            l.net * i64::from(qty) / i64::from(l.quantity)
        }
    });
    if net_off > b.balance {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "over_balance",
            format!("voiding this takes {net_off} off, more than the {} still to pay; refund after closing instead", b.balance),
        )
        .with_details(json!({ "balance": b.balance }))
        .into());
    }
    let order: super::orders::StoredOrder = match tx.orders.get(line.order_id)? {
        Some(v) => codec::decode(v.value())?,
        None => return Err(AppError::not_found("order").into()),
    };
    let in_kitchen = super::orders::in_kitchen(order.order.status)
        && order
            .order
            .items
            .get(line.order_line as usize)
            .is_some_and(|l| l.item_id == line.item_id && l.quantity == line.quantity)
        && (order.order.items.len() > 1 || qty < line.quantity);
    let fact = AdjustmentFact {
        kind: AdjustmentKind::Void,
        line: Some(line.id),
        name: Some(line.name.clone()),
        percent_bp: None,
        amount: value,
        quantity: qty,
        reason,
        actor: who.actor.clone(),
        approved_by: who.approved_by.clone(),
    };
    // --- write ---
    if in_kitchen {
        // The kitchen's own edit: stock back, REMOVED slip, the order's totals; the check's
        // line follows through `order_edited` with the voided units gone.
        let edit = super::orders::EditLines {
            set: vec![super::orders::SetQuantity {
                line: line.order_line,
                quantity: i64::from(line.quantity - qty),
            }],
            add: Vec::new(),
        };
        super::orders::edit_lines_unchecked(
            tx,
            rules,
            &super::id_text(line.order_id),
            &edit,
            &who.actor,
        )?;
        let mut c = load(tx, id)?;
        if line.quantity == qty {
            // The line left the order: keep it on the check as voided, for the bill's record.
            let mut l = line.clone();
            l.voided = l.quantity;
            c.lines.push(l);
            c.lines.sort_by_key(|l| l.id);
        }
        adjust(tx, &mut c, fact, None)?;
        write(tx, &c)?;
        return Ok(c);
    }
    let mut c = c;
    if let Some(l) = c.lines.iter_mut().find(|l| l.id == line.id) {
        l.voided += qty;
    }
    adjust(tx, &mut c, fact, None)?;
    write(tx, &c)?;
    Ok(c)
}

/// Voids a whole check that nothing was paid on.
pub fn void_check(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: u64,
    reason: &str,
    who: &Approval,
) -> TxResult<StoredCheck> {
    let reason = check_reason(reason)?;
    let mut c = load_open(tx, id)?;
    if !c.payments.is_empty() {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "check_paid",
            "a check with payments cannot be voided; void its lines, or settle and refund it",
        )
        .into());
    }
    let b = bill(&c, rules);
    let fact = AdjustmentFact {
        kind: AdjustmentKind::Void,
        line: None,
        name: None,
        percent_bp: None,
        amount: b.total,
        quantity: 0,
        reason: reason.clone(),
        actor: who.actor.clone(),
        approved_by: who.approved_by.clone(),
    };
    // Every billed unit is voided, so the closing fact bills nothing.
    for l in &mut c.lines {
        l.voided = l.quantity;
    }
    adjust(tx, &mut c, fact, None)?;
    c.void_reason = Some(reason);
    close(tx, rules, &mut c, &who.actor, true)?;
    write(tx, &c)?;
    Ok(c)
}

/// The body of a refund.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRefund {
    /// Minor units back (> 0).
    pub amount: i64,
    /// The method the money goes back by.
    pub method: String,
    /// Why.
    pub reason: String,
}

/// Refunds part or all of a closed check.
pub fn refund(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: u64,
    req: &NewRefund,
    who: &Approval,
) -> TxResult<StoredCheck> {
    let reason = check_reason(&req.reason)?;
    check_amount("amount", req.amount, false)?;
    if !rules.billing.methods.contains(&req.method) {
        return Err(AppError::invalid(
            "method",
            format!("unknown payment method {:?}", req.method),
        )
        .into());
    }
    let mut c = load(tx, id)?;
    if c.state != CheckState::Closed {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "check_not_closed",
            "only a settled check can be refunded; void lines of an open one",
        )
        .with_details(json!({ "state": c.state.as_str() }))
        .into());
    }
    let paid: i64 = c
        .payments
        .iter()
        .filter(|p| p.fact.method == req.method)
        .map(|p| p.fact.amount + p.fact.rounding)
        .sum();
    let back: i64 = c
        .refunds
        .iter()
        .filter(|r| r.fact.method == req.method)
        .map(|r| r.fact.amount)
        .sum();
    if req.amount > paid - back {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "over_refund",
            format!(
                "{} by {} can still be refunded on this check",
                paid - back,
                req.method
            ),
        )
        .with_details(json!({ "refundable": paid - back }))
        .into());
    }
    let day = ledger_day(tx, rules)?;
    let fact = RefundFact {
        check: c.check.clone(),
        ledger_day: day,
        method: req.method.clone(),
        amount: req.amount,
        reason,
        actor: who.actor.clone(),
        approved_by: who.approved_by.clone(),
    };
    let seq = tx.emit(EventKind::CheckRefunded(fact.clone()))?;
    tx.ledger.insert(
        (day, seq),
        codec::encode(&LedgerEntry::Refund(fact.clone()))?.as_slice(),
    )?;
    c.refunds.push(Refund {
        fact,
        at: tx.now_ms(),
    });
    write(tx, &c)?;
    Ok(c)
}

fn table_named(tx: &Tx<'_>, table_id: &str) -> TxResult<super::tables::Table> {
    match tx.tables.get(table_id)? {
        Some(v) => Ok(codec::decode(v.value())?),
        None => Err(AppError::new(
            ErrorKind::NotFound,
            "table_not_found",
            format!("no table {table_id:?}"),
        )
        .with_details(json!({ "field": "table_id" }))
        .into()),
    }
}

/// Moves a whole check to another table (joining that table's open check), or chosen lines
/// of it to another table's check (opened if the table is free).
pub fn transfer(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: u64,
    table_id: &str,
    lines: &[u32],
    actor: &str,
) -> TxResult<StoredCheck> {
    let c = load_open(tx, id)?;
    let table = table_named(tx, table_id)?;
    if c.table_id.as_deref() == Some(table_id) && lines.is_empty() {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "same_table",
            "the check is already at that table",
        )
        .into());
    }
    let target = tx.table_checks.get(table_id)?.map(|v| v.value());
    match (target, lines.is_empty()) {
        (Some(t), true) => merge(tx, rules, t, id, actor),
        (None, true) => {
            // The whole check moves to the free table.
            let mut c = c;
            if let Some(old) = &c.table_id
                && tx.table_checks.get(old.as_str())?.map(|v| v.value()) == Some(id)
            {
                tx.table_checks.remove(old.as_str())?;
            }
            let now = tx.now_ms();
            tx.emit(EventKind::CheckMoved {
                from: c.check.clone(),
                to: c.check.clone(),
                to_table: Some(table.id.clone()),
                lines: Vec::new(),
                actor: actor.to_owned(),
            })?;
            c.moves.push(Move {
                what: "transfer".into(),
                other: id,
                table_id: Some(table.id.clone()),
                lines: Vec::new(),
                actor: actor.to_owned(),
                at: now,
            });
            c.table_id = Some(table.id.clone());
            c.table_label = Some(table.label);
            c.order_type = OrderType::DineIn;
            tx.table_checks.insert(table.id.as_str(), id)?;
            write(tx, &c)?;
            Ok(c)
        }
        (target, false) => {
            let moving = pick_lines(&c, rules, lines)?;
            let mut to = match target {
                Some(t) if t != id => load(tx, t)?,
                Some(_) => open_new(tx, rules, OrderType::DineIn, None, actor)?,
                None => open_new(
                    tx,
                    rules,
                    OrderType::DineIn,
                    Some((table.id.as_str(), table.label.as_str())),
                    actor,
                )?,
            };
            if to.table_id.is_none() {
                // A split at the same table: a second check there.
                to.table_id = Some(table.id.clone());
                to.table_label = Some(table.label.clone());
            }
            move_lines(tx, rules, c, to, moving, actor)
        }
    }
}

/// Splits chosen lines off into a new check at the same table (or of its own), each part
/// paid on its own.
pub fn split_lines(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: u64,
    lines: &[u32],
    actor: &str,
) -> TxResult<StoredCheck> {
    let c = load_open(tx, id)?;
    let moving = pick_lines(&c, rules, lines)?;
    let mut to = open_new(tx, rules, c.order_type, None, actor)?;
    to.table_id.clone_from(&c.table_id);
    to.table_label.clone_from(&c.table_label);
    move_lines(tx, rules, c, to, moving, actor)
}

/// The lines chosen to move, checked: each on the check, none discounted, and together not
/// worth more than is still to pay.
fn pick_lines(
    from: &StoredCheck,
    rules: &Rules,
    lines: &[u32],
) -> Result<Vec<CheckLine>, AppError> {
    if lines.is_empty() {
        return Err(AppError::invalid("lines", "choose the lines to move"));
    }
    let mut moving: Vec<CheckLine> = Vec::new();
    for (i, &l) in lines.iter().enumerate() {
        let Some(line) = from.lines.iter().find(|x| x.id == l && !x.cancelled) else {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "no_such_line",
                format!("lines[{i}]: check {} has no line {l}", from.check.number),
            ));
        };
        if from
            .adjustments
            .iter()
            .any(|a| a.fact.line == Some(l) && a.fact.kind != AdjustmentKind::Void)
        {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "line_discounted",
                format!("lines[{i}]: line {l} carries a discount or comp and stays on its check"),
            ));
        }
        if !moving.iter().any(|m| m.id == l) {
            moving.push(line.clone());
        }
    }
    let b = bill(from, rules);
    let value: i64 = b
        .lines
        .iter()
        .filter(|l| moving.iter().any(|m| m.id == l.id))
        .map(|l| l.net)
        .sum();
    if value > b.balance {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "over_balance",
            format!(
                "these lines are worth {value}, more than the {} still to pay on this check",
                b.balance
            ),
        ));
    }
    Ok(moving)
}

fn move_lines(
    tx: &mut Tx<'_>,
    rules: &Rules,
    mut from: StoredCheck,
    mut to: StoredCheck,
    moving: Vec<CheckLine>,
    actor: &str,
) -> TxResult<StoredCheck> {
    let now = tx.now_ms();
    let ids: Vec<u32> = moving.iter().map(|m| m.id).collect();
    from.lines.retain(|l| !ids.contains(&l.id));
    for mut l in moving {
        l.id = to.next_line;
        to.next_line += 1;
        to.lines.push(l);
    }
    tx.emit(EventKind::CheckMoved {
        from: from.check.clone(),
        to: to.check.clone(),
        to_table: to.table_id.clone(),
        lines: ids.clone(),
        actor: actor.to_owned(),
    })?;
    from.moves.push(Move {
        what: "lines_out".into(),
        other: to.check.id,
        table_id: to.table_id.clone(),
        lines: ids.clone(),
        actor: actor.to_owned(),
        at: now,
    });
    to.moves.push(Move {
        what: "lines_in".into(),
        other: from.check.id,
        table_id: to.table_id.clone(),
        lines: ids,
        actor: actor.to_owned(),
        at: now,
    });
    write(tx, &to)?;
    let settled = from.lines.iter().all(|l| l.cancelled) && from.payments.is_empty();
    if settled {
        // Nothing left: the emptied check is voided away, not left open.
        from.void_reason = Some(format!("moved to check {}", to.check.number));
        close(tx, rules, &mut from, actor, true)?;
    }
    write(tx, &from)?;
    Ok(to)
}

/// Merges check `other` into `into`: its lines, payments and discounts move, and it closes as
/// merged.
pub fn merge(
    tx: &mut Tx<'_>,
    rules: &Rules,
    into: u64,
    other: u64,
    actor: &str,
) -> TxResult<StoredCheck> {
    if into == other {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "same_check",
            "a check cannot merge with itself",
        )
        .into());
    }
    let mut a = load_open(tx, into)?;
    let mut b = load_open(tx, other)?;
    if a.lines.len() + b.lines.len() > MAX_LINES {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "check_full",
            format!("a check holds at most {MAX_LINES} lines"),
        )
        .into());
    }
    let now = tx.now_ms();
    let mut renumber = BTreeMap::new();
    for mut l in std::mem::take(&mut b.lines) {
        renumber.insert(l.id, a.next_line);
        l.id = a.next_line;
        a.next_line += 1;
        a.lines.push(l);
    }
    for mut adj in std::mem::take(&mut b.adjustments) {
        adj.fact.line = adj.fact.line.and_then(|l| renumber.get(&l).copied());
        a.adjustments.push(adj);
    }
    for mut p in std::mem::take(&mut b.payments) {
        p.fact.id = a.payments.len() as u32 + 1;
        a.payments.push(p);
    }
    a.orders.extend(b.orders.iter().copied());
    for o in &b.orders {
        tx.order_checks.insert(*o, a.check.id)?;
    }
    a.covers += b.covers;
    tx.emit(EventKind::CheckMoved {
        from: b.check.clone(),
        to: a.check.clone(),
        to_table: a.table_id.clone(),
        lines: Vec::new(),
        actor: actor.to_owned(),
    })?;
    a.moves.push(Move {
        what: "merge_in".into(),
        other,
        table_id: a.table_id.clone(),
        lines: Vec::new(),
        actor: actor.to_owned(),
        at: now,
    });
    b.moves.push(Move {
        what: "merged_into".into(),
        other: into,
        table_id: a.table_id.clone(),
        lines: Vec::new(),
        actor: actor.to_owned(),
        at: now,
    });
    // The merged check is left empty and closed as voided: nothing of it counts twice.
    b.void_reason = Some(format!("merged into check {}", a.check.number));
    close(tx, rules, &mut b, actor, true)?;
    write(tx, &b)?;
    write(tx, &a)?;
    Ok(a)
}

/// Sends the bill to the bill printer (a second print says COPY).
pub fn print_bill(
    tx: &mut Tx<'_>,
    rules: &Rules,
    id: u64,
    lang: Option<&str>,
    actor: &str,
) -> TxResult<StoredCheck> {
    let mut c = load(tx, id)?;
    if c.state == CheckState::Voided {
        return Err(not_open(&c).into());
    }
    let b = bill(&c, rules);
    let lang = lang
        .map(str::to_owned)
        .or_else(|| c.lang.clone())
        .unwrap_or_else(|| rules.default_language.clone());
    // The bill printer of the table's zone, else the site's.
    let zone = match &c.table_id {
        Some(t) => tx
            .tables
            .get(t.as_str())?
            .map(|v| codec::decode::<super::tables::Table>(v.value()))
            .transpose()?
            .map(|t| t.zone),
        None => None,
    };
    let station = zone
        .and_then(|z| rules.billing.zone_stations.get(&z).cloned())
        .unwrap_or_else(|| rules.billing.bill_station.clone());
    let menu = super::menu::arc_of(tx);
    let names: BTreeMap<u32, String> = c
        .lines
        .iter()
        .map(|l| (l.id, name_in(&menu, l, &lang)))
        .collect();
    let print = BillPrint {
        check: c.check.clone(),
        station,
        table_label: c.table_label.clone(),
        waiter: c.opened_by.clone(),
        covers: c.covers,
        lang,
        copy: c.bill_prints > 0,
        lines: b
            .lines
            .iter()
            .map(|l| BilledLine {
                item_id: l.item_id.clone(),
                name: names.get(&l.id).cloned().unwrap_or_else(|| l.name.clone()),
                quantity: l.quantity,
                voided: l.voided,
                gross: l.gross,
                discount: l.discount + l.comp,
                rate_bp: l.rate_bp,
            })
            .collect(),
        check_discount: b.check_discount,
        subtotal: b.subtotal,
        total: b.total,
        vat: b.vat,
        payments: c.payments.iter().map(|p| p.fact.clone()).collect(),
        balance: b.balance,
        actor: actor.to_owned(),
    };
    tx.emit(EventKind::BillPrinted(Box::new(print)))?;
    c.bill_prints += 1;
    write(tx, &c)?;
    Ok(c)
}

/// A guest's "request the bill" from the table's page: the waiter is alerted.
pub fn request_bill(tx: &mut Tx<'_>, order_id: &str, lang: Option<&str>) -> TxResult<StoredCheck> {
    let key = super::parse_id(order_id).ok_or_else(|| AppError::not_found("order"))?;
    let id = tx
        .order_checks
        .get(key)?
        .map(|v| v.value())
        .ok_or_else(|| AppError::not_found("check"))?;
    let mut c = load_open(tx, id)?;
    let now = tx.now_ms();
    // A second tap within a minute alerts nobody again.
    if c.bill_requested_at.is_some_and(|t| now < t + 60_000) {
        return Ok(c);
    }
    let (Some(table_id), Some(table_label)) = (c.table_id.clone(), c.table_label.clone()) else {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "not_at_a_table",
            "only a table's check can be asked for from the page",
        )
        .into());
    };
    tx.emit(EventKind::BillRequested {
        check: c.check.clone(),
        table_id,
        table_label,
    })?;
    c.bill_requested_at = Some(now);
    if let Some(l) = lang {
        c.lang = Some(l.to_owned());
    }
    write(tx, &c)?;
    Ok(c)
}

/// Reads a check.
pub fn get(rtx: &ReadTransaction, id: u64) -> Result<Option<StoredCheck>, StoreError> {
    let table = rtx.open_table(t::CHECKS)?;
    Ok(match table.get(id)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    })
}

/// The check an order is on, if any.
pub fn of_order(rtx: &ReadTransaction, order_id: &str) -> Result<Option<StoredCheck>, StoreError> {
    let Some(key) = super::parse_id(order_id) else {
        return Ok(None);
    };
    let idx = rtx.open_table(t::ORDER_CHECKS)?;
    let Some(id) = idx.get(key)?.map(|v| v.value()) else {
        return Ok(None);
    };
    get(rtx, id)
}

/// Every open check, oldest first.
pub fn open_checks(rtx: &ReadTransaction) -> Result<Vec<StoredCheck>, StoreError> {
    let open = rtx.open_table(t::CHECKS_OPEN)?;
    let checks = rtx.open_table(t::CHECKS)?;
    let mut out = Vec::new();
    for row in open.iter()? {
        let (k, _) = row?;
        if let Some(v) = checks.get(k.value())? {
            out.push(codec::decode(v.value())?);
        }
    }
    Ok(out)
}

/// Checks of a business day (by the day they were opened), newest first, at most `limit`.
pub fn of_day(
    rtx: &ReadTransaction,
    day: u32,
    limit: usize,
) -> Result<Vec<StoredCheck>, StoreError> {
    let checks = rtx.open_table(t::CHECKS)?;
    let base = u64::from(day) * 1_000_000;
    let mut out = Vec::new();
    for row in checks.range(base..base + 1_000_000)?.rev() {
        if out.len() >= limit {
            break;
        }
        out.push(codec::decode(row?.1.value())?);
    }
    Ok(out)
}

/// Even parts of a balance: `parts` amounts that add up to it, the first ones a unit more.
pub fn even_split(balance: i64, parts: u32) -> Vec<i64> {
    let n = i64::from(parts.max(1));
    let base = balance.div_euclid(n);
    let extra = balance.rem_euclid(n);
    (0..n).map(|i| base + i64::from(i < extra)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_adds_up_and_follows_weights() {
        assert_eq!(allocate(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(allocate(0, &[5, 5]), vec![0, 0]);
        assert_eq!(allocate(10, &[0, 0]), vec![0, 0]);
        let p = allocate(999, &[300, 200, 500]);
        assert_eq!(p.iter().sum::<i64>(), 999);
        assert_eq!(p, vec![300, 200, 499]);
    }

    #[test]
    fn even_split_adds_up() {
        assert_eq!(even_split(1000, 3), vec![334, 333, 333]);
        assert_eq!(even_split(5, 1), vec![5]);
        assert_eq!(even_split(2, 4), vec![1, 1, 0, 0]);
    }

    #[test]
    fn percent_rounds_half_up() {
        assert_eq!(percent_of(1000, 1000), 100);
        assert_eq!(percent_of(5, 1000), 1); // 0.5 → 1
        assert_eq!(percent_of(4, 1000), 0);
        assert_eq!(percent_of(1234, 10_000), 1234);
    }
}
