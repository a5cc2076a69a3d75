//! Storing a batch: one PostgreSQL transaction per batch, idempotent by `(site_id, seq)`.
//!
//! The site's cursor row is locked first, so batches of one site are stored one after the
//! other. A batch wholly at or below the cursor is a replay: acknowledged, nothing written. An
//! overlapping batch writes only its new tail. A batch that starts past `cursor + 1` would
//! leave a gap: refused with the seq the box must resend from. Orders and their lines are
//! folded from the events in memory and written with one statement per table (`unnest`), into
//! monthly partitions created on first use.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;

use deadpool_postgres::Pool;
use orderd_protocol::{Event, EventKind, Order, OrderStatus};

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Everything up to this seq is stored.
    Acked(u64),
    /// The batch starts past the stored end: resend from `expected`.
    Gap {
        /// The next seq the collector needs.
        expected: u64,
    },
    /// Another box already uploads for this site.
    OtherBox,
}

/// Months whose partitions exist (created once per process, under an advisory lock).
#[derive(Default)]
pub struct Partitions(Mutex<HashSet<(i32, u32)>>);

/// A timestamp change: unchanged, cleared, or set (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Stamp {
    #[default]
    Keep,
    Clear,
    Set(i64),
}

/// What a batch does to an order placed before it.
#[derive(Debug, Default)]
struct Update {
    status: Option<OrderStatus>,
    accepted: Stamp,
    ready: Stamp,
    finished: Stamp,
    totals: Option<(i64, i64, i64)>,
}

fn stamps(u: &mut Update, to: OrderStatus, from: OrderStatus, recall: bool, at: i64) {
    let set = |u: &mut Update, s: OrderStatus, v: Stamp| match s {
        OrderStatus::Accepted => u.accepted = v,
        OrderStatus::Ready => u.ready = v,
        s if s.is_final() => u.finished = v,
        _ => {}
    };
    if recall {
        // Undone: the status left loses its time.
        set(u, from, Stamp::Clear);
    } else {
        set(u, to, Stamp::Set(at));
    }
    u.status = Some(to);
}

/// An order placed in this batch, with what later events of the batch did to it.
struct Placed {
    order: Order,
    accepted: Option<i64>,
    ready: Option<i64>,
    finished: Option<i64>,
}

fn apply_stamp(slot: &mut Option<i64>, s: Stamp) {
    match s {
        Stamp::Keep => {}
        Stamp::Clear => *slot = None,
        Stamp::Set(t) => *slot = Some(t),
    }
}

/// (year, month) of a time in ms (UTC).
fn month_of(ms: i64) -> (i32, u32) {
    // Howard Hinnant's civil-from-days.
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month)
}

impl Partitions {
    async fn ensure(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        months: &BTreeSet<(i32, u32)>,
    ) -> Result<Vec<(i32, u32)>, tokio_postgres::Error> {
        let missing: Vec<(i32, u32)> = {
            let known = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            months
                .iter()
                .filter(|m| !known.contains(m))
                .copied()
                .collect()
        };
        for &(y, m) in &missing {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            tx.execute("SELECT pg_advisory_xact_lock(4242002)", &[])
                .await?;
            for table in ["orders", "order_lines"] {
                tx.batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {table}_p{y:04}{m:02} PARTITION OF {table}
                     FOR VALUES FROM ('{y:04}-{m:02}-01 00:00:00+00') TO ('{ny:04}-{nm:02}-01 00:00:00+00')"
                ))
                .await?;
            }
        }
        Ok(missing)
    }

    fn created(&self, months: Vec<(i32, u32)>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(months);
    }
}

/// Stores `events` (consecutive, `first..=last`) for `site` in one transaction.
pub async fn store(
    pool: &Pool,
    partitions: &Partitions,
    site: &str,
    box_id: &str,
    events: &[Event],
) -> anyhow::Result<Stored> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        anyhow::bail!("empty batch");
    };
    let (first, last) = (first.seq, last.seq);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            "SELECT acked_seq, box_id FROM site_cursors WHERE site_id = $1 FOR UPDATE",
            &[&site],
        )
        .await?;
    let acked = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    let known_box: String = row.get(1);
    if !known_box.is_empty() && known_box != box_id {
        return Ok(Stored::OtherBox);
    }
    if first > acked + 1 {
        return Ok(Stored::Gap {
            expected: acked + 1,
        });
    }
    if last <= acked {
        return Ok(Stored::Acked(acked));
    }
    let new: Vec<&Event> = events.iter().filter(|e| e.seq > acked).collect();

    // Events, as JSON for people and reports.
    let seqs: Vec<i64> = new.iter().map(|e| e.seq as i64).collect();
    let ats: Vec<i64> = new.iter().map(|e| e.at as i64).collect();
    let kinds: Vec<&str> = new.iter().map(|e| e.kind.name()).collect();
    let bodies: Vec<serde_json::Value> = new
        .iter()
        .map(|e| serde_json::to_value(&e.kind).unwrap_or(serde_json::Value::Null))
        .collect();
    tx.execute(
        "INSERT INTO events (site_id, seq, at, kind, body)
         SELECT $1, s, to_timestamp(a / 1000.0), k, b
         FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::json[]) AS u(s, a, k, b)
         ON CONFLICT DO NOTHING",
        &[&site, &seqs, &ats, &kinds, &bodies],
    )
    .await?;

    // Orders: placed in this batch, or changed by it.
    let mut placed: BTreeMap<String, Placed> = BTreeMap::new();
    let mut updates: BTreeMap<String, Update> = BTreeMap::new();
    for e in &new {
        let at = e.at as i64;
        match &e.kind {
            EventKind::OrderPlaced(o) => {
                placed.insert(
                    o.id.clone(),
                    Placed {
                        order: (**o).clone(),
                        accepted: None,
                        ready: None,
                        finished: None,
                    },
                );
            }
            EventKind::StatusChanged {
                order_id,
                from,
                to,
                recall,
                ..
            } => {
                let mut u = Update::default();
                stamps(&mut u, *to, *from, *recall, at);
                if let Some(p) = placed.get_mut(order_id) {
                    p.order.status = *to;
                    apply_stamp(&mut p.accepted, u.accepted);
                    apply_stamp(&mut p.ready, u.ready);
                    apply_stamp(&mut p.finished, u.finished);
                } else {
                    let acc = updates.entry(order_id.clone()).or_default();
                    acc.status = Some(*to);
                    for (slot, s) in [
                        (&mut acc.accepted, u.accepted),
                        (&mut acc.ready, u.ready),
                        (&mut acc.finished, u.finished),
                    ] {
                        if s != Stamp::Keep {
                            *slot = s;
                        }
                    }
                }
            }
            EventKind::LinesChanged {
                order_id,
                subtotal,
                tax,
                total,
                ..
            } => {
                if let Some(p) = placed.get_mut(order_id) {
                    p.order.subtotal = *subtotal;
                    p.order.tax = *tax;
                    p.order.total = *total;
                } else {
                    updates.entry(order_id.clone()).or_default().totals =
                        Some((*subtotal, *tax, *total));
                }
            }
            _ => {}
        }
    }
    let mut created = Vec::new();
    if !placed.is_empty() {
        let months: BTreeSet<(i32, u32)> = placed
            .values()
            .map(|p| month_of(p.order.created_at as i64))
            .collect();
        created = partitions.ensure(&tx, &months).await?;
        insert_orders(&tx, site, &placed).await?;
    }
    if !updates.is_empty() {
        update_orders(&tx, site, &updates).await?;
    }
    tx.execute(
        "UPDATE site_cursors SET acked_seq = $2, box_id = $3, updated_at = now() WHERE site_id = $1",
        &[&site, &(last as i64), &box_id],
    )
    .await?;
    tx.commit().await?;
    partitions.created(created);
    Ok(Stored::Acked(last))
}

async fn insert_orders(
    tx: &tokio_postgres::Transaction<'_>,
    site: &str,
    placed: &BTreeMap<String, Placed>,
) -> Result<(), tokio_postgres::Error> {
    let o = |f: fn(&Placed) -> String| placed.values().map(f).collect::<Vec<String>>();
    let ids = o(|p| p.order.id.clone());
    let numbers = o(|p| p.order.number.clone());
    let types = o(|p| p.order.order_type.as_str().to_owned());
    let sources = o(|p| p.order.source.as_str().to_owned());
    let statuses = o(|p| p.order.status.as_str().to_owned());
    let currencies = o(|p| p.order.currency.clone());
    let days = o(|p| p.order.business_day.to_string());
    let n = |f: fn(&Placed) -> i64| placed.values().map(f).collect::<Vec<i64>>();
    let created = n(|p| p.order.created_at as i64);
    let subtotals = n(|p| p.order.subtotal);
    let taxes = n(|p| p.order.tax);
    let totals = n(|p| p.order.total);
    let t = |f: fn(&Placed) -> Option<i64>| placed.values().map(f).collect::<Vec<Option<i64>>>();
    let accepted = t(|p| p.accepted);
    let ready = t(|p| p.ready);
    let finished = t(|p| p.finished);
    tx.execute(
        "INSERT INTO orders (site_id, order_id, created_at, business_day, number, order_type,
             source, status, subtotal, tax, total, currency, accepted_at, ready_at, finished_at)
         SELECT $1, id, to_timestamp(c / 1000.0), to_date(d, 'YYYYMMDD'), num, ty, src, st,
             sub, tx, tot, cur, to_timestamp(acc / 1000.0), to_timestamp(rdy / 1000.0),
             to_timestamp(fin / 1000.0)
         FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
             $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::bigint[],
             $14::bigint[], $15::bigint[])
             AS u(id, c, d, num, ty, src, st, sub, tx, tot, cur, acc, rdy, fin)
         ON CONFLICT DO NOTHING",
        &[
            &site,
            &ids,
            &created,
            &days,
            &numbers,
            &types,
            &sources,
            &statuses,
            &subtotals,
            &taxes,
            &totals,
            &currencies,
            &accepted,
            &ready,
            &finished,
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO order_index (site_id, order_id, created_at)
         SELECT $1, id, to_timestamp(c / 1000.0) FROM unnest($2::text[], $3::bigint[]) AS u(id, c)
         ON CONFLICT DO NOTHING",
        &[&site, &ids, &created],
    )
    .await?;
    let mut l_ids = Vec::new();
    let mut l_created = Vec::new();
    let mut l_no = Vec::new();
    let mut l_item = Vec::new();
    let mut l_name = Vec::new();
    let mut l_qty = Vec::new();
    let mut l_total = Vec::new();
    for p in placed.values() {
        for (i, line) in p.order.items.iter().enumerate() {
            l_ids.push(p.order.id.as_str());
            l_created.push(p.order.created_at as i64);
            l_no.push(i as i32);
            l_item.push(line.item_id.as_str());
            l_name.push(line.name.as_str());
            l_qty.push(line.quantity as i32);
            l_total.push(line.line_total);
        }
    }
    tx.execute(
        "INSERT INTO order_lines (site_id, order_id, created_at, line_no, item_id, name, quantity,
             line_total)
         SELECT $1, id, to_timestamp(c / 1000.0), n, it, nm, q, lt
         FROM unnest($2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::int[],
             $8::bigint[]) AS u(id, c, n, it, nm, q, lt)
         ON CONFLICT DO NOTHING",
        &[
            &site, &l_ids, &l_created, &l_no, &l_item, &l_name, &l_qty, &l_total,
        ],
    )
    .await?;
    Ok(())
}

async fn update_orders(
    tx: &tokio_postgres::Transaction<'_>,
    site: &str,
    updates: &BTreeMap<String, Update>,
) -> Result<(), tokio_postgres::Error> {
    let ids: Vec<&str> = updates.keys().map(String::as_str).collect();
    let statuses: Vec<Option<&str>> = updates
        .values()
        .map(|u| u.status.map(OrderStatus::as_str))
        .collect();
    // Per stamp: 0 keep, 1 set (to the value, which may be null to clear).
    let flag = |f: fn(&Update) -> Stamp| -> (Vec<i32>, Vec<Option<i64>>) {
        updates
            .values()
            .map(|u| match f(u) {
                Stamp::Keep => (0, None),
                Stamp::Clear => (1, None),
                Stamp::Set(t) => (1, Some(t)),
            })
            .unzip()
    };
    let (acc_f, acc) = flag(|u| u.accepted);
    let (rdy_f, rdy) = flag(|u| u.ready);
    let (fin_f, fin) = flag(|u| u.finished);
    let tot_f: Vec<i32> = updates
        .values()
        .map(|u| i32::from(u.totals.is_some()))
        .collect();
    let sub: Vec<i64> = updates
        .values()
        .map(|u| u.totals.map_or(0, |t| t.0))
        .collect();
    let tax: Vec<i64> = updates
        .values()
        .map(|u| u.totals.map_or(0, |t| t.1))
        .collect();
    let tot: Vec<i64> = updates
        .values()
        .map(|u| u.totals.map_or(0, |t| t.2))
        .collect();
    tx.execute(
        "UPDATE orders o SET
             status = coalesce(u.st, o.status),
             accepted_at = CASE WHEN u.af = 1 THEN to_timestamp(u.acc / 1000.0) ELSE o.accepted_at END,
             ready_at = CASE WHEN u.rf = 1 THEN to_timestamp(u.rdy / 1000.0) ELSE o.ready_at END,
             finished_at = CASE WHEN u.ff = 1 THEN to_timestamp(u.fin / 1000.0) ELSE o.finished_at END,
             subtotal = CASE WHEN u.tf = 1 THEN u.sub ELSE o.subtotal END,
             tax = CASE WHEN u.tf = 1 THEN u.tx ELSE o.tax END,
             total = CASE WHEN u.tf = 1 THEN u.tot ELSE o.total END
         FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[], $6::int[], $7::bigint[],
                 $8::int[], $9::bigint[], $10::int[], $11::bigint[], $12::bigint[], $13::bigint[])
                 AS u(id, st, af, acc, rf, rdy, ff, fin, tf, sub, tx, tot),
              order_index i
         WHERE i.site_id = $1 AND i.order_id = u.id
           AND o.site_id = $1 AND o.order_id = u.id AND o.created_at = i.created_at",
        &[
            &site, &ids, &statuses, &acc_f, &acc, &rdy_f, &rdy, &fin_f, &fin, &tot_f, &sub,
            &tax, &tot,
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::month_of;

    #[test]
    fn months_of_times() {
        assert_eq!(month_of(0), (1970, 1));
        assert_eq!(month_of(1_795_348_800_000), (2026, 11)); // 2026-11-22
        assert_eq!(month_of(1_798_761_599_999), (2026, 12)); // 2026-12-31T23:59:59.999Z
        assert_eq!(month_of(1_798_761_600_000), (2027, 1));
        assert_eq!(month_of(1_709_164_800_000), (2024, 2)); // 2024-02-29
    }
}
