//! CSV export of orders, or of Z reports, over a range of business days, for the owner's
//! accountant.

use std::io::Write;

use redb::ReadTransaction;

use super::orders::{StoredOrder, day_keys};
use super::{date_of_day, day_number, rfc3339};
use crate::store::{StoreError, codec, tables as t};

/// The header row.
pub const HEADER: [&str; 14] = [
    "number",
    "business_day",
    "created_at",
    "type",
    "source",
    "status",
    "table",
    "customer_name",
    "items",
    "subtotal",
    "tax",
    "total",
    "currency",
    "cancel_reason",
];

/// Writes every order of business days `from..=to` (`YYYYMMDD`) as CSV; returns how many.
pub fn write_csv(
    rtx: &ReadTransaction,
    from: u32,
    to: u32,
    out: impl Write,
) -> Result<u64, StoreError> {
    let io = |e: csv::Error| StoreError::Codec {
        what: "CSV export",
        detail: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER).map_err(io)?;
    let orders = rtx.open_table(t::ORDERS)?;
    let mut count = 0;
    let mut day = date_of_day(from);
    while let Some(d) = day.filter(|d| day_number(*d) <= to) {
        for key in day_keys(rtx, day_number(d))? {
            let Some(v) = orders.get(key)? else { continue };
            let o = codec::decode::<StoredOrder>(v.value())?.order;
            let items: Vec<String> = o
                .items
                .iter()
                .map(|l| format!("{}x {}", l.quantity, l.name))
                .collect();
            w.write_record([
                o.number.as_str(),
                &d.to_string(),
                &rfc3339(o.created_at),
                o.order_type.as_str(),
                match o.source {
                    orderd_protocol::OrderSource::Staff => "staff",
                    orderd_protocol::OrderSource::Customer => "customer",
                },
                o.status.as_str(),
                o.table_label.as_deref().unwrap_or(""),
                o.customer_name.as_deref().unwrap_or(""),
                &items.join("; "),
                &o.subtotal.to_string(),
                &o.tax.to_string(),
                &o.total.to_string(),
                &o.currency,
                o.cancel_reason.as_deref().unwrap_or(""),
            ])
            .map_err(io)?;
            count += 1;
        }
        day = d.tomorrow().ok();
    }
    w.flush().map_err(|e| StoreError::Codec {
        what: "CSV export",
        detail: e.to_string(),
    })?;
    Ok(count)
}

/// The header row of the Z-report export.
pub const Z_HEADER: [&str; 20] = [
    "number",
    "business_day",
    "closed_at",
    "closed_by",
    "forced",
    "checks",
    "covers",
    "sales",
    "discounts",
    "comps",
    "voids",
    "net",
    "tips",
    "rounding",
    "refunds",
    "vat",
    "payments",
    "cash_expected",
    "cash_counted",
    "cash_variance",
];

/// Writes the Z reports of business days `from..=to` as CSV, one row each (VAT as
/// `rate_bp:gross:vat` and payments as `method:amount:tips:refunds`, `;`-separated); returns
/// how many.
pub fn write_z_csv(
    rtx: &ReadTransaction,
    from: u32,
    to: u32,
    out: impl Write,
) -> Result<u64, StoreError> {
    let io = |e: csv::Error| StoreError::Codec {
        what: "CSV export",
        detail: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(out);
    w.write_record(Z_HEADER).map_err(io)?;
    let mut n = 0;
    for z in super::reports::z_reports_between(rtx, from, to)? {
        let f = &z.figures;
        let vat: Vec<String> = f
            .vat
            .iter()
            .map(|v| format!("{}:{}:{}", v.rate_bp, v.gross, v.vat))
            .collect();
        let pays: Vec<String> = f
            .methods
            .iter()
            .map(|m| format!("{}:{}:{}:{}", m.method, m.amount, m.tips, m.refunds))
            .collect();
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        w.write_record([
            z.number.to_string(),
            f.business_day.to_string(),
            rfc3339(z.closed_at),
            z.actor.clone(),
            z.forced.clone().unwrap_or_default(),
            f.checks.to_string(),
            f.covers.to_string(),
            f.sales.to_string(),
            f.discounts.to_string(),
            f.comps.to_string(),
            f.voids.to_string(),
            f.net.to_string(),
            f.tips.to_string(),
            f.rounding.to_string(),
            f.refunds.to_string(),
            vat.join(";"),
            pays.join(";"),
            f.cash.expected.to_string(),
            opt(f.cash.counted),
            opt(f.cash.variance),
        ])
        .map_err(io)?;
        n += 1;
    }
    w.flush().map_err(|e| StoreError::Codec {
        what: "CSV export",
        detail: e.to_string(),
    })?;
    Ok(n)
}
