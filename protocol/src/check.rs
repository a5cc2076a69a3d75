//! Guest checks and the day's money: what a check's payments, discounts, voids, refunds and
//! closing record in the event log, the cash drawer's movements, and the day's X and Z figures
//! that the box prints and the collector sums.
//!
//! Every amount is integer minor units of the site's currency. A payment's `amount` is what it
//! takes off the check's balance; `rounding` is the cash rounding on top of it (received =
//! amount + rounding + tip); `tip` is never revenue.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Which check: its id, its number within its business day, and that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRef {
    /// Stable id (`YYYYMMDD` × 1,000,000 + number).
    pub id: u64,
    /// Number within the business day it was opened on, from 1.
    pub number: u32,
    /// The business day it was opened on (`YYYYMMDD`).
    pub day: u32,
}

/// One payment on a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFact {
    /// Number of the payment within its check, from 1.
    pub id: u32,
    /// Payment method (`cash`, `card`, or one the owner configured).
    pub method: String,
    /// What it takes off the balance, minor units (> 0).
    pub amount: i64,
    /// Tip on top, minor units (≥ 0), never revenue.
    pub tip: i64,
    /// Cash rounding on top of `amount` (may be negative).
    pub rounding: i64,
    /// Cash handed over, when recorded.
    pub tendered: Option<i64>,
    /// Change given back.
    pub change: Option<i64>,
    /// A card terminal's reference (never card data).
    pub reference: Option<String>,
    /// Who recorded it.
    pub actor: String,
}

/// What kind of adjustment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    /// A percent or an amount off a line or the check.
    Discount,
    /// A line given away (at zero).
    Comp,
    /// Quantity of a line taken off the check (with a REMOVED slip while the kitchen has it).
    Void,
}

/// A discount, comp or void, with both people and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustmentFact {
    /// Discount, comp or void.
    pub kind: AdjustmentKind,
    /// The check line it applies to, or `None` for the whole check.
    pub line: Option<u32>,
    /// The line's name, for reports.
    pub name: Option<String>,
    /// Percent in basis points (discounts given as a percent).
    pub percent_bp: Option<u32>,
    /// Its value when it was given, minor units.
    pub amount: i64,
    /// Units voided (voids).
    pub quantity: u32,
    /// Why.
    pub reason: String,
    /// Who did it.
    pub actor: String,
    /// The manager who approved it (the actor when an admin did it).
    pub approved_by: String,
}

/// VAT contained in (or added to) the sales at one rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VatLine {
    /// Rate in basis points (2000 = 20 %).
    pub rate_bp: u32,
    /// Sales at this rate after discounts, tax included.
    pub gross: i64,
    /// The tax in it.
    pub vat: i64,
}

/// One line of a closed check, as billed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BilledLine {
    /// Item id.
    pub item_id: String,
    /// Name with modifiers.
    pub name: String,
    /// Units billed (after voids).
    pub quantity: u32,
    /// Units voided.
    pub voided: u32,
    /// Value before discounts.
    pub gross: i64,
    /// Line discounts and comps.
    pub discount: i64,
    /// VAT rate.
    pub rate_bp: u32,
}

/// A check as it closed (or was voided): a fact on its own, enough for any report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckClosed {
    /// Which check.
    pub check: CheckRef,
    /// The business day whose Z it counts in.
    pub ledger_day: u32,
    /// `true` when the whole check was voided (nothing sold, nothing paid).
    pub voided: bool,
    /// Table id, for dine-in.
    pub table_id: Option<String>,
    /// Guests.
    pub covers: u32,
    /// Who opened it.
    pub opened_by: String,
    /// Who closed it.
    pub actor: String,
    /// The lines.
    pub lines: Vec<BilledLine>,
    /// Value of the lines before discounts (after voids).
    pub sales: i64,
    /// Discounts (line and check).
    pub discounts: i64,
    /// Comps.
    pub comps: i64,
    /// Value of voided units.
    pub voids: i64,
    /// What the guest owed: sales − discounts − comps (+ VAT when prices exclude it).
    pub total: i64,
    /// VAT per rate.
    pub vat: Vec<VatLine>,
    /// The payments.
    pub payments: Vec<PaymentFact>,
    /// Every discount, comp and void, with both people and the reason.
    pub adjustments: Vec<AdjustmentFact>,
}

/// A refund of a closed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundFact {
    /// Which check.
    pub check: CheckRef,
    /// The business day whose Z it counts in.
    pub ledger_day: u32,
    /// Method the money went back by.
    pub method: String,
    /// Amount, minor units (> 0).
    pub amount: i64,
    /// Why.
    pub reason: String,
    /// Who did it.
    pub actor: String,
    /// The manager who approved it.
    pub approved_by: String,
}

/// What a cash movement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CashKind {
    /// The drawer's opening float.
    Float,
    /// Cash put in during the day (not a sale).
    PaidIn,
    /// Cash taken out during the day (not a refund).
    PaidOut,
    /// The cash counted at the end of the day.
    Count,
}

/// A cash movement or count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashFact {
    /// The business day it belongs to.
    pub ledger_day: u32,
    /// What it is.
    pub kind: CashKind,
    /// Amount, minor units (≥ 0).
    pub amount: i64,
    /// Why.
    pub reason: String,
    /// Who.
    pub actor: String,
}

/// One payment method's figures for a day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodFigures {
    /// The method.
    pub method: String,
    /// Payments.
    pub count: u32,
    /// Taken off balances.
    pub amount: i64,
    /// Tips.
    pub tips: i64,
    /// Cash rounding.
    pub rounding: i64,
    /// Refunded by this method.
    pub refunds: i64,
}

/// The cash drawer over a day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashUp {
    /// Opening float.
    pub float: i64,
    /// Cash received for checks (amount + rounding + tips).
    pub received: i64,
    /// Cash refunded.
    pub refunded: i64,
    /// Paid in.
    pub paid_in: i64,
    /// Paid out.
    pub paid_out: i64,
    /// What the drawer should hold.
    pub expected: i64,
    /// What was counted, if counted.
    pub counted: Option<i64>,
    /// counted − expected.
    pub variance: Option<i64>,
}

/// A check still open when the figures were taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCheck {
    /// Which check.
    pub check: CheckRef,
    /// Its table.
    pub table_id: Option<String>,
    /// Its total so far.
    pub total: i64,
    /// Paid on it so far.
    pub paid: i64,
}

/// A day's figures (an X report now, or the Z report's body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    /// The business day.
    pub business_day: u32,
    /// Checks closed.
    pub checks: u32,
    /// Checks voided whole.
    pub voided_checks: u32,
    /// Guests on the closed checks.
    pub covers: u32,
    /// Sales before discounts (after voids).
    pub sales: i64,
    /// Discounts.
    pub discounts: i64,
    /// Comps.
    pub comps: i64,
    /// Value voided.
    pub voids: i64,
    /// Net: sales − discounts − comps (+ VAT when prices exclude it).
    pub net: i64,
    /// VAT per rate.
    pub vat: Vec<VatLine>,
    /// Per payment method.
    pub methods: Vec<MethodFigures>,
    /// Tips.
    pub tips: i64,
    /// Cash rounding.
    pub rounding: i64,
    /// Refunds.
    pub refunds: i64,
    /// net ÷ checks.
    pub average_check: i64,
    /// The drawer.
    pub cash: CashUp,
    /// Discounts, comps and voids, with who and why.
    pub adjustments: Vec<AdjustmentFact>,
    /// Refunds, with who and why.
    pub refund_list: Vec<RefundFact>,
    /// Checks still open.
    pub open_checks: Vec<OpenCheck>,
}

/// The Z report: closes a business day; numbered per site, never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZReport {
    /// Site id.
    pub site_id: String,
    /// Number, from 1 per site.
    pub number: u32,
    /// When it was taken, ms.
    pub closed_at: u64,
    /// Who took it.
    pub actor: String,
    /// The reason, when an admin closed the day with checks open.
    pub forced: Option<String>,
    /// The figures.
    pub figures: DayFigures,
}

/// A guest check sent to the bill printer: everything the slip shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillPrint {
    /// Which check.
    pub check: CheckRef,
    /// The station whose printers print it.
    pub station: String,
    /// Table label, for dine-in.
    pub table_label: Option<String>,
    /// The waiter (who opened the check).
    pub waiter: String,
    /// Guests.
    pub covers: u32,
    /// Language of the slip (`en`, `sq`).
    pub lang: String,
    /// A reprint: the slip says COPY.
    pub copy: bool,
    /// The lines.
    pub lines: Vec<BilledLine>,
    /// Discounts and comps of the whole check (line discounts are on their lines).
    pub check_discount: i64,
    /// Sales before discounts.
    pub subtotal: i64,
    /// Total due.
    pub total: i64,
    /// VAT per rate.
    pub vat: Vec<VatLine>,
    /// Payments so far.
    pub payments: Vec<PaymentFact>,
    /// Still to pay.
    pub balance: i64,
    /// Who asked for it.
    pub actor: String,
}
