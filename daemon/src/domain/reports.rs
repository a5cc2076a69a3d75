//! The day's money: X reports (figures now), the cash drawer's movements and count, and Z
//! reports, which close a business day, are numbered per site and never change. Both sum the
//! ledger (`checks::LedgerEntry`): closed checks, refunds and cash, each written once in the
//! transaction that made it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use orderd_protocol::{
    AdjustmentKind, CashFact, CashKind, CashUp, DayFigures, EventKind, MethodFigures, OpenCheck,
    VatLine, ZReport,
};
use redb::{ReadTransaction, ReadableTable};
use serde::Deserialize;
use serde_json::json;

use super::Rules;
use super::checks::{self, LedgerEntry, StoredCheck};
use crate::error::TxResult;
use crate::error::{AppError, ErrorKind};
use crate::store::writer::Tx;
use crate::store::{StoreError, Stored, codec, tables as t};

use super::checks::Z_LAST_DAY;
/// Counter: the last Z number.
pub const Z_LAST_NUMBER: &str = "z_last_number";

impl Stored for ZReport {
    const WHAT: &'static str = "Z report";
}

use super::next_day;

/// Sums a day's ledger entries and the open checks into its figures.
pub fn figures(
    day: u32,
    entries: impl IntoIterator<Item = LedgerEntry>,
    open: &[StoredCheck],
    rules: &Rules,
) -> DayFigures {
    let mut f = DayFigures {
        business_day: day,
        ..DayFigures::default()
    };
    let mut methods: BTreeMap<String, MethodFigures> = rules
        .billing
        .methods
        .iter()
        .map(|m| {
            (
                m.clone(),
                MethodFigures {
                    method: m.clone(),
                    ..MethodFigures::default()
                },
            )
        })
        .collect();
    let mut vat: BTreeMap<u32, VatLine> = BTreeMap::new();
    let mut counted = None;
    for e in entries {
        match e {
            LedgerEntry::Closed(c) => {
                f.adjustments.extend(c.adjustments.iter().cloned());
                f.voids += c.voids;
                if c.voided {
                    f.voided_checks += 1;
                    continue;
                }
                f.checks += 1;
                f.covers += c.covers;
                f.sales += c.sales;
                f.discounts += c.discounts;
                f.comps += c.comps;
                f.net += c.total;
                for v in &c.vat {
                    let e = vat.entry(v.rate_bp).or_insert(VatLine {
                        rate_bp: v.rate_bp,
                        gross: 0,
                        vat: 0,
                    });
                    e.gross += v.gross;
                    e.vat += v.vat;
                }
                for p in &c.payments {
                    let m = methods.entry(p.method.clone()).or_insert(MethodFigures {
                        method: p.method.clone(),
                        ..MethodFigures::default()
                    });
                    m.count += 1;
                    m.amount += p.amount;
                    m.tips += p.tip;
                    m.rounding += p.rounding;
                    f.tips += p.tip;
                    f.rounding += p.rounding;
                    if p.method == "cash" {
                        f.cash.received += p.amount + p.rounding + p.tip;
                    }
                }
            }
            LedgerEntry::Refund(r) => {
                f.refunds += r.amount;
                let m = methods.entry(r.method.clone()).or_insert(MethodFigures {
                    method: r.method.clone(),
                    ..MethodFigures::default()
                });
                m.refunds += r.amount;
                if r.method == "cash" {
                    f.cash.refunded += r.amount;
                }
                f.refund_list.push(r);
            }
            LedgerEntry::Cash(c) => match c.kind {
                CashKind::Float => f.cash.float += c.amount,
                CashKind::PaidIn => f.cash.paid_in += c.amount,
                CashKind::PaidOut => f.cash.paid_out += c.amount,
                CashKind::Count => counted = Some(c.amount),
            },
        }
    }
    f.methods = methods.into_values().collect();
    f.vat = vat.into_values().collect();
    f.average_check = if f.checks == 0 {
        0
    } else {
        f.net / i64::from(f.checks)
    };
    let cash: &mut CashUp = &mut f.cash;
    cash.expected = cash.float + cash.received - cash.refunded + cash.paid_in - cash.paid_out;
    cash.counted = counted;
    cash.variance = counted.map(|c| c - cash.expected);
    for c in open {
        let b = checks::bill(c, rules);
        f.open_checks.push(OpenCheck {
            check: c.check.clone(),
            table_id: c.table_id.clone(),
            total: b.total,
            paid: b.paid,
        });
        // What was given on checks still open is listed too (a manager sees every approval of
        // the day); its amounts count in the totals of the day the check closes.
        f.adjustments
            .extend(c.adjustments.iter().map(|a| a.fact.clone()));
    }
    f
}

fn ledger_of(
    table: &impl ReadableTable<(u32, u64), &'static [u8]>,
    day: u32,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((day, 0)..=(day, u64::MAX))? {
        out.push(codec::decode(row?.1.value())?);
    }
    Ok(out)
}

/// The day an X report shows by default: the one new money counts in now.
pub fn current_day(rtx: &ReadTransaction, rules: &Rules, now: u64) -> Result<u32, StoreError> {
    let counters = rtx.open_table(t::COUNTERS)?;
    let closed = counters.get(Z_LAST_DAY)?.map_or(0, |v| v.value()) as u32;
    let today = rules.business_day(now);
    Ok(if today > closed {
        today
    } else {
        next_day(closed)
    })
}

/// An X report: a day's figures now, with the checks still open.
pub fn x_report(rtx: &ReadTransaction, rules: &Rules, day: u32) -> Result<DayFigures, StoreError> {
    let ledger = rtx.open_table(t::LEDGER)?;
    let entries = ledger_of(&ledger, day)?;
    let open = checks::open_checks(rtx)?;
    Ok(figures(day, entries, &open, rules))
}

/// A stored Z report.
pub fn z_report(rtx: &ReadTransaction, number: u32) -> Result<Option<ZReport>, StoreError> {
    let table = rtx.open_table(t::Z_REPORTS)?;
    Ok(match table.get(number)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    })
}

/// Z reports, newest first.
pub fn z_reports(rtx: &ReadTransaction, limit: usize) -> Result<Vec<ZReport>, StoreError> {
    let table = rtx.open_table(t::Z_REPORTS)?;
    let mut out = Vec::new();
    for row in table.iter()?.rev() {
        if out.len() >= limit {
            break;
        }
        out.push(codec::decode(row?.1.value())?);
    }
    Ok(out)
}

/// Z reports of the business days `from..=to`.
pub fn z_reports_between(
    rtx: &ReadTransaction,
    from: u32,
    to: u32,
) -> Result<Vec<ZReport>, StoreError> {
    let table = rtx.open_table(t::Z_REPORTS)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let z: ZReport = codec::decode(row?.1.value())?;
        if (from..=to).contains(&z.figures.business_day) {
            out.push(z);
        }
    }
    Ok(out)
}

/// Closes the oldest business day not yet closed: refused while checks are open, unless an
/// admin forces it with a reason (the open checks are then listed on it and count on the day
/// they close).
pub fn close_day(
    tx: &mut Tx<'_>,
    rules: &Rules,
    actor: &str,
    force: Option<&str>,
) -> TxResult<ZReport> {
    let now = tx.now_ms();
    let last_day = tx.counters.get(Z_LAST_DAY)?.map_or(0, |v| v.value()) as u32;
    let after = if last_day == 0 { 0 } else { next_day(last_day) };
    let first_unclosed = tx
        .ledger
        .range((after, 0)..)?
        .next()
        .transpose()?
        .map(|(k, _)| k.value().0);
    let day = first_unclosed.unwrap_or_else(|| checks::ledger_day_at(rules, now, last_day));
    let mut open = Vec::new();
    for row in tx.checks_open.iter()? {
        let (k, _) = row?;
        if let Some(v) = tx.checks.get(k.value())? {
            open.push(codec::decode::<StoredCheck>(v.value())?);
        }
    }
    let forced = match force.map(str::trim) {
        Some("") => {
            return Err(AppError::invalid("force_reason", "a reason is required").into());
        }
        Some(r) if r.chars().count() > checks::MAX_REASON => {
            return Err(AppError::invalid("force_reason", "at most 200 characters").into());
        }
        Some(r) => Some(r.to_owned()),
        None => None,
    };
    if !open.is_empty() && forced.is_none() {
        let list: Vec<_> = open
            .iter()
            .map(|c| json!({ "id": c.check.id, "number": c.check.number, "table_id": c.table_id }))
            .collect();
        return Err(AppError::new(
            ErrorKind::Conflict,
            "checks_open",
            format!(
                "{} checks are still open; settle them, or close the day with a force_reason",
                open.len()
            ),
        )
        .with_details(json!({ "open_checks": list }))
        .into());
    }
    let mut entries = Vec::new();
    for row in tx.ledger.range((day, 0)..=(day, u64::MAX))? {
        entries.push(codec::decode::<LedgerEntry>(row?.1.value())?);
    }
    let number = tx.counters.get(Z_LAST_NUMBER)?.map_or(0, |v| v.value()) as u32 + 1;
    let z = ZReport {
        site_id: rules.site_id.clone(),
        number,
        closed_at: now,
        actor: actor.to_owned(),
        forced,
        figures: figures(day, entries, &open, rules),
    };
    // --- write ---
    tx.emit(EventKind::DayClosed(Box::new(z.clone())))?;
    tx.z_reports.insert(number, codec::encode(&z)?.as_slice())?;
    tx.counters.insert(Z_LAST_NUMBER, u64::from(number))?;
    tx.counters.insert(Z_LAST_DAY, u64::from(day))?;
    Ok(z)
}

/// The body of a cash movement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCash {
    /// `float`, `paid_in`, `paid_out` or `count`.
    pub kind: CashKind,
    /// Minor units (≥ 0).
    pub amount: i64,
    /// Why (required for paid in and out).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Records a cash movement or count in the day's ledger.
pub fn cash(tx: &mut Tx<'_>, rules: &Rules, req: &NewCash, actor: &str) -> TxResult<CashFact> {
    if req.amount < 0 || req.amount > checks::MAX_AMOUNT {
        return Err(AppError::invalid(
            "amount",
            format!("0 to {} minor units", checks::MAX_AMOUNT),
        )
        .into());
    }
    let reason = req.reason.as_deref().map(str::trim).unwrap_or_default();
    if matches!(req.kind, CashKind::PaidIn | CashKind::PaidOut) && reason.is_empty() {
        return Err(AppError::invalid("reason", "paying in or out needs a reason").into());
    }
    if reason.chars().count() > checks::MAX_REASON {
        return Err(AppError::invalid("reason", "at most 200 characters").into());
    }
    let day = checks::ledger_day(tx, rules)?;
    let fact = CashFact {
        ledger_day: day,
        kind: req.kind,
        amount: req.amount,
        reason: reason.to_owned(),
        actor: actor.to_owned(),
    };
    let seq = tx.emit(EventKind::CashMoved(fact.clone()))?;
    tx.ledger.insert(
        (day, seq),
        codec::encode(&LedgerEntry::Cash(fact.clone()))?.as_slice(),
    )?;
    Ok(fact)
}

/// A Z report as CSV: one `section,key,value` row per figure, amounts in minor units.
pub fn z_csv(z: &ZReport) -> String {
    let f = &z.figures;
    let mut out = String::from("section,key,value\n");
    let mut row = |s: &str, k: &str, v: String| {
        let k = k.replace('"', "\"\"");
        let v = v.replace('"', "\"\"");
        let _ = writeln!(out, "{s},\"{k}\",\"{v}\"");
    };
    row("z", "site", z.site_id.clone());
    row("z", "number", z.number.to_string());
    row("z", "business_day", f.business_day.to_string());
    row("z", "closed_at", super::rfc3339(z.closed_at));
    row("z", "closed_by", z.actor.clone());
    row("z", "forced", z.forced.clone().unwrap_or_default());
    for (k, v) in [
        ("checks", i64::from(f.checks)),
        ("voided_checks", i64::from(f.voided_checks)),
        ("covers", i64::from(f.covers)),
        ("sales", f.sales),
        ("discounts", f.discounts),
        ("comps", f.comps),
        ("voids", f.voids),
        ("net", f.net),
        ("tips", f.tips),
        ("rounding", f.rounding),
        ("refunds", f.refunds),
        ("average_check", f.average_check),
    ] {
        row("sales", k, v.to_string());
    }
    for v in &f.vat {
        row(
            "vat",
            &format!("{}", v.rate_bp),
            format!("{};{}", v.gross, v.vat),
        );
    }
    for m in &f.methods {
        row(
            "payments",
            &m.method,
            format!(
                "count={};amount={};tips={};rounding={};refunds={}",
                m.count, m.amount, m.tips, m.rounding, m.refunds
            ),
        );
    }
    let c = &f.cash;
    for (k, v) in [
        ("float", Some(c.float)),
        ("received", Some(c.received)),
        ("refunded", Some(c.refunded)),
        ("paid_in", Some(c.paid_in)),
        ("paid_out", Some(c.paid_out)),
        ("expected", Some(c.expected)),
        ("counted", c.counted),
        ("variance", c.variance),
    ] {
        row("cash", k, v.map(|v| v.to_string()).unwrap_or_default());
    }
    for a in &f.adjustments {
        row(
            "adjustment",
            match a.kind {
                AdjustmentKind::Discount => "discount",
                AdjustmentKind::Comp => "comp",
                AdjustmentKind::Void => "void",
            },
            format!(
                "{};{};{};by {};approved by {}",
                a.amount,
                a.name.clone().unwrap_or_default(),
                a.reason,
                a.actor,
                a.approved_by
            ),
        );
    }
    for r in &f.refund_list {
        row(
            "refund",
            &r.method,
            format!(
                "{};check {};{};by {};approved by {}",
                r.amount, r.check.number, r.reason, r.actor, r.approved_by
            ),
        );
    }
    for o in &f.open_checks {
        row(
            "open_check",
            &o.check.number.to_string(),
            format!(
                "{};total={};paid={}",
                o.table_id.clone().unwrap_or_default(),
                o.total,
                o.paid
            ),
        );
    }
    out
}
