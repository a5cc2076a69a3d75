//! CSV export of orders over a range of business days, for the owner's accountant.

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
