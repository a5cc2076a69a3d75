//! Retention: prunes finished orders older than `retention_days` from the box — but only once
//! every registered consumer cursor has passed their last event, so nothing is pruned before
//! the kitchen, messaging or the uploader has it. A day is pruned whole, after its summary is
//! stored; a day that still holds an unfinished or unconsumed order waits. The same sweep
//! forgets expired idempotency keys and sessions, and event-log rows every consumer has passed.

use redb::ReadableTable;

use super::Rules;
use super::analytics::DailySummary;
use super::orders::StoredOrder;
use crate::error::TxResult;
use crate::store::codec;
use crate::store::event_row::EventRow;
use crate::store::writer::Tx;

/// Key in `counters`: ms up to which expired idempotency keys were forgotten.
const IDEM_CURSOR: &str = "idempotency_pruned_until_ms";

/// Most rows one sweep removes, so one batch never grows large; the worker repeats.
const MAX_ROWS_PER_SWEEP: usize = 2000;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Orders pruned.
    pub orders: u64,
    /// Business days whose orders were all pruned.
    pub days: u64,
    /// Event-log rows pruned.
    pub events: u64,
    /// Expired idempotency keys and sessions forgotten.
    pub expired: u64,
    /// Whether the sweep stopped at its row limit with more to do.
    pub more: bool,
}

/// The lowest cursor of every registered consumer (`u64::MAX` when none is registered).
pub fn min_cursor(tx: &Tx<'_>) -> TxResult<u64> {
    let mut min = u64::MAX;
    for row in tx.cursors.iter()? {
        min = min.min(row?.1.value());
    }
    Ok(min)
}

/// One bounded sweep.
pub fn sweep(tx: &mut Tx<'_>, rules: &Rules) -> TxResult<Swept> {
    let now = tx.now_ms();
    let mut out = Swept::default();
    let horizon_ms = now.saturating_sub(u64::from(rules.retention_days) * 86_400_000);
    let cutoff_day = rules.business_day(horizon_ms);
    let min = min_cursor(tx)?;

    // Days before the cutoff, oldest first.
    let mut budget = MAX_ROWS_PER_SWEEP;
    loop {
        let first = tx.idx_day.first()?.map(|(k, _)| k.value().0);
        let Some(day) = first.filter(|d| *d < cutoff_day) else {
            break;
        };
        let mut keys = Vec::new();
        for row in tx.idx_day.range((day, 0u32)..=(day, u32::MAX))? {
            let (k, v) = row?;
            keys.push((k.value().1, v.value()));
        }
        if keys.len() > budget && out.days > 0 {
            out.more = true;
            break;
        }
        let mut summary = DailySummary::default();
        let mut orders = Vec::with_capacity(keys.len());
        let mut prunable = true;
        for &(_, key) in &keys {
            if let Some(v) = tx.orders.get(key)? {
                let o: StoredOrder = codec::decode(v.value())?;
                if !o.order.status.is_final() || o.last_event_seq > min {
                    prunable = false;
                    break;
                }
                summary.add(&o.order, rules);
                orders.push((key, o));
            }
        }
        if !prunable {
            break;
        }
        let mut merged = match tx.daily_summaries.get(day)? {
            Some(v) => codec::decode::<DailySummary>(v.value())?,
            None => DailySummary::default(),
        };
        merged.merge(&summary);
        tx.daily_summaries
            .insert(day, codec::encode(&merged)?.as_slice())?;
        for (seq, _) in &keys {
            tx.idx_day.remove((day, *seq))?;
        }
        for (key, o) in &orders {
            tx.orders.remove(*key)?;
            // Its check keeps a copy of its lines; only the way from the order to it goes.
            tx.order_checks.remove(*key)?;
            if let Some(phone) = &o.order.customer_phone {
                tx.idx_phone.remove((phone.as_str(), *key))?;
            }
            if let Some(at) = o.order.finished_at {
                tx.idx_finished.remove((at, *key))?;
            }
            if let Some(k) = &o.idem_key {
                tx.idempotency.remove(k.as_str())?;
            }
        }
        out.orders += orders.len() as u64;
        out.days += 1;
        budget = budget.saturating_sub(keys.len());
        if budget == 0 {
            out.more = true;
            break;
        }
    }

    // Event-log rows every consumer has, older than the horizon.
    let mut seqs = Vec::new();
    for row in tx.events.iter()? {
        let (k, v) = row?;
        let seq = k.value();
        if seq > min || seqs.len() >= MAX_ROWS_PER_SWEEP {
            break;
        }
        let ev: EventRow = codec::decode(v.value())?;
        if ev.at() >= horizon_ms {
            break;
        }
        seqs.push(seq);
    }
    if seqs.len() >= MAX_ROWS_PER_SWEEP {
        out.more = true;
    }
    // Keep the newest row so the log's last seq survives a restart.
    let last = tx.events.last()?.map(|(k, _)| k.value());
    for seq in seqs {
        if Some(seq) != last {
            tx.events.remove(seq)?;
            out.events += 1;
        }
    }

    // Expired idempotency keys: walk the orders placed since the last walk (ids are
    // time-ordered) up to the expiry horizon, instead of scanning every key.
    let idem_horizon = now.saturating_sub(rules.idempotency_ttl_ms);
    let from_ms = tx.counters.get(IDEM_CURSOR)?.map_or(0, |v| v.value());
    let mut expired_keys = Vec::new();
    let mut reached = idem_horizon;
    if from_ms < idem_horizon {
        let range = (u128::from(from_ms) << 80)..(u128::from(idem_horizon) << 80);
        for row in tx.orders.range(range)? {
            let (k, v) = row?;
            if expired_keys.len() >= MAX_ROWS_PER_SWEEP {
                reached = (k.value() >> 80) as u64;
                out.more = true;
                break;
            }
            let o: StoredOrder = codec::decode(v.value())?;
            if let Some(key) = o.idem_key {
                expired_keys.push((key, k.value()));
            }
        }
    }
    let mut forgotten = 0u64;
    for (key, order) in &expired_keys {
        let points_here = match tx.idempotency.get(key.as_str())? {
            Some(v) => codec::decode::<super::orders::IdemRecord>(v.value())?.order_id == *order,
            None => false,
        };
        if points_here {
            tx.idempotency.remove(key.as_str())?;
            forgotten += 1;
        }
    }
    if from_ms < reached {
        tx.counters.insert(IDEM_CURSOR, reached)?;
    }
    // Expired sessions are `auth`'s to remove (`workers::sweep` does both in one job).
    out.expired = forgotten;
    Ok(out)
}
