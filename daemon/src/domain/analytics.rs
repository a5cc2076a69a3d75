//! Reports for the owner: per business day and over a range — orders, revenue, average order
//! value, orders by status and by hour, the peak hour, top items and average prep time.
//!
//! A day is computed from its orders while they are on the box; when retention prunes a day,
//! its summary is stored first (`daily_summaries`), so reports over old days keep working.

use std::collections::BTreeMap;

use orderd_protocol::{Order, OrderStatus};
use redb::ReadTransaction;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Rules;
use super::orders::{StoredOrder, day_keys};
use crate::store::{StoreError, Stored, codec, tables as t};

/// Totals of one item in a summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemTotals {
    /// Name snapshot.
    pub name: String,
    /// Units sold.
    pub quantity: u64,
    /// Revenue in minor units.
    pub revenue: i64,
}

/// Additive totals of one or more business days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailySummary {
    /// Orders placed (every status).
    pub orders: u64,
    /// Of which cancelled.
    pub cancelled: u64,
    /// Sum of totals of orders not cancelled.
    pub revenue: i64,
    /// Orders by current status.
    pub by_status: BTreeMap<String, u64>,
    /// Orders by local hour of placement.
    pub by_hour: Vec<u64>,
    /// Per item, not cancelled.
    pub items: BTreeMap<String, ItemTotals>,
    /// Sum of accepted→ready durations.
    pub prep_ms_sum: u64,
    /// How many orders contributed to `prep_ms_sum`.
    pub prep_count: u64,
    /// Revenue (excluding cancelled orders) per local hour 0-23, minor units. Added in
    /// version 2.
    pub revenue_by_hour: Vec<i64>,
}

/// A summary as version 1 stored it (no revenue by hour).
#[derive(Serialize, Deserialize)]
struct DailySummaryV1 {
    orders: u64,
    cancelled: u64,
    revenue: i64,
    by_status: BTreeMap<String, u64>,
    by_hour: Vec<u64>,
    items: BTreeMap<String, ItemTotals>,
    prep_ms_sum: u64,
    prep_count: u64,
}

impl Stored for DailySummary {
    const WHAT: &'static str = "daily summary";
    const VERSION: u8 = 2;

    fn migrate(version: u8, body: &[u8]) -> Result<Self, crate::store::StoreError> {
        if version != 1 {
            return Err(crate::store::StoreError::UnknownVersion {
                what: Self::WHAT,
                version,
            });
        }
        let v1: DailySummaryV1 =
            postcard::from_bytes(body).map_err(|e| crate::store::StoreError::Codec {
                what: Self::WHAT,
                detail: e.to_string(),
            })?;
        // Revenue by hour was not kept; a pruned day reports it as unknown (zeros).
        Ok(Self {
            orders: v1.orders,
            cancelled: v1.cancelled,
            revenue: v1.revenue,
            by_status: v1.by_status,
            by_hour: v1.by_hour,
            items: v1.items,
            prep_ms_sum: v1.prep_ms_sum,
            prep_count: v1.prep_count,
            revenue_by_hour: vec![0; 24],
        })
    }
}

impl Default for DailySummary {
    fn default() -> Self {
        Self {
            orders: 0,
            cancelled: 0,
            revenue: 0,
            by_status: BTreeMap::new(),
            by_hour: vec![0; 24],
            items: BTreeMap::new(),
            prep_ms_sum: 0,
            prep_count: 0,
            revenue_by_hour: vec![0; 24],
        }
    }
}

impl DailySummary {
    /// Adds one order.
    pub fn add(&mut self, o: &Order, rules: &Rules) {
        self.orders += 1;
        *self
            .by_status
            .entry(o.status.as_str().to_owned())
            .or_default() += 1;
        self.by_hour[rules.local_hour(o.created_at) % 24] += 1;
        if o.status == OrderStatus::Cancelled {
            self.cancelled += 1;
            return;
        }
        self.revenue += o.total;
        self.revenue_by_hour[rules.local_hour(o.created_at) % 24] += o.total;
        for line in &o.items {
            let e = self.items.entry(line.item_id.clone()).or_default();
            e.name.clone_from(&line.name);
            e.quantity += u64::from(line.quantity);
            e.revenue += line.line_total;
        }
        if let (Some(a), Some(r)) = (o.accepted_at, o.ready_at) {
            self.prep_ms_sum += r.saturating_sub(a);
            self.prep_count += 1;
        }
    }

    /// Adds another summary.
    pub fn merge(&mut self, other: &Self) {
        self.orders += other.orders;
        self.cancelled += other.cancelled;
        self.revenue += other.revenue;
        for (k, v) in &other.by_status {
            *self.by_status.entry(k.clone()).or_default() += v;
        }
        for (h, v) in other.by_hour.iter().enumerate().take(24) {
            self.by_hour[h] += v;
        }
        for (k, v) in &other.items {
            let e = self.items.entry(k.clone()).or_default();
            e.name.clone_from(&v.name);
            e.quantity += v.quantity;
            e.revenue += v.revenue;
        }
        for (h, v) in other.revenue_by_hour.iter().enumerate().take(24) {
            self.revenue_by_hour[h] += v;
        }
        self.prep_ms_sum += other.prep_ms_sum;
        self.prep_count += other.prep_count;
    }

    /// The report as JSON.
    pub fn view(&self, currency: &str) -> Value {
        let sold = self.orders - self.cancelled;
        let aov = if sold == 0 {
            0
        } else {
            self.revenue / sold as i64
        };
        let peak = self
            .by_hour
            .iter()
            .enumerate()
            .max_by_key(|&(h, n)| (*n, std::cmp::Reverse(h)))
            .filter(|(_, n)| **n > 0)
            .map(|(h, _)| h);
        let mut top: Vec<_> = self.items.iter().collect();
        top.sort_by(|a, b| b.1.quantity.cmp(&a.1.quantity).then(a.0.cmp(b.0)));
        let top: Vec<Value> = top
            .into_iter()
            .take(10)
            .map(|(id, t)| json!({"item_id": id, "name": t.name, "quantity": t.quantity, "revenue": t.revenue}))
            .collect();
        let avg_prep = (self.prep_count > 0).then(|| self.prep_ms_sum / self.prep_count / 1000);
        // "orders" means what it means at the collector: orders not cancelled.
        json!({
            "orders": sold,
            "orders_placed": self.orders,
            "cancelled": self.cancelled,
            "revenue": self.revenue,
            "currency": currency,
            "average_order_value": aov,
            "orders_by_status": self.by_status,
            "orders_by_hour": self.by_hour,
            "revenue_by_hour": self.revenue_by_hour,
            "peak_hour": peak,
            "top_items": top,
            "average_prep_secs": avg_prep,
        })
    }
}

/// The summary of one business day: stored if the day was pruned, else computed.
pub fn day_summary(
    rtx: &ReadTransaction,
    rules: &Rules,
    day: u32,
) -> Result<DailySummary, StoreError> {
    let stored = rtx.open_table(t::DAILY_SUMMARIES)?;
    if let Some(v) = stored.get(day)? {
        return codec::decode(v.value());
    }
    compute_day(rtx, rules, day)
}

/// The summary of the business days `from..=to`: only days that have orders or a stored
/// summary are read, so the cost follows the data, not the length of the range.
pub fn range_summary(
    rtx: &ReadTransaction,
    rules: &Rules,
    from: u32,
    to: u32,
) -> Result<DailySummary, StoreError> {
    let mut total = DailySummary::default();
    if to < from {
        return Ok(total);
    }
    let mut days = std::collections::BTreeSet::new();
    for row in rtx.open_table(t::DAILY_SUMMARIES)?.range(from..=to)? {
        days.insert(row?.0.value());
    }
    let idx = rtx.open_table(t::IDX_DAY)?;
    let mut next = from;
    // One seek per day that has orders: jump past each day once it is found.
    while next <= to {
        let Some(row) = idx.range((next, 0)..=(to, u32::MAX))?.next() else {
            break;
        };
        let day = row?.0.value().0;
        days.insert(day);
        match day.checked_add(1) {
            Some(n) => next = n,
            None => break,
        }
    }
    for day in days {
        total.merge(&day_summary(rtx, rules, day)?);
    }
    Ok(total)
}

/// Computes a day's summary from its orders.
pub fn compute_day(
    rtx: &ReadTransaction,
    rules: &Rules,
    day: u32,
) -> Result<DailySummary, StoreError> {
    let orders = rtx.open_table(t::ORDERS)?;
    let mut s = DailySummary::default();
    for key in day_keys(rtx, day)? {
        if let Some(v) = orders.get(key)? {
            let o: StoredOrder = codec::decode(v.value())?;
            s.add(&o.order, rules);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_summary_still_reads() {
        let v1 = DailySummaryV1 {
            orders: 3,
            cancelled: 1,
            revenue: 2500,
            by_status: BTreeMap::from([("served".to_owned(), 2)]),
            by_hour: vec![1; 24],
            items: BTreeMap::new(),
            prep_ms_sum: 60_000,
            prep_count: 2,
        };
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_allocvec(&v1).unwrap());
        let s: DailySummary = codec::decode(&bytes).unwrap();
        assert_eq!((s.orders, s.revenue, s.prep_count), (3, 2500, 2));
        assert_eq!(s.revenue_by_hour, vec![0; 24]);
        // And a version 2 value round-trips with its revenue by hour.
        let mut v2 = s.clone();
        v2.revenue_by_hour[13] = 900;
        let back: DailySummary = codec::decode(&codec::encode(&v2).unwrap()).unwrap();
        assert_eq!(back, v2);
    }
}
