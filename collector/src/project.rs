//! The projector: folds each site's stored events into `orders`, `order_lines` and
//! `order_index` (monthly partitions, created on first use), and the money — closed checks,
//! their payments, refunds and Z reports — into `check_closings`, `payments`, `refunds` and
//! `z_reports`, after the batches are acknowledged.
//!
//! Storing a batch ([`crate::ingest`]) writes only its events, so a box's backlog drains at the
//! speed PostgreSQL takes rows, not at the speed of the reports' tables. The projector keeps a
//! per-site `projected_seq` and works in steps: one transaction takes the sites with events past
//! it (`FOR UPDATE SKIP LOCKED`, so any number of collectors can run it), reads their next
//! events in order, folds them in memory and writes each table with one statement (`unnest`).
//! It is woken by every stored batch, and polls once a second for work another collector left.
//! The reports first [`Projector::catch_up`], so they always count every acknowledged event.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use orderd_protocol::{CheckClosed, EventKind, Order, OrderLine, OrderStatus, RefundFact, ZReport};
use tokio::sync::Notify;

/// About the most events one step reads, over all its sites (at least 20 per site).
const STEP_EVENTS: i64 = 5_000;
/// Most sites one step takes.
const STEP_SITES: i64 = 256;
/// How long the projector gathers new events after a step that left no backlog.
const GATHER: Duration = Duration::from_millis(100);

/// Folds stored events into the orders tables.
pub struct Projector {
    pool: Pool,
    partitions: Partitions,
    wake: Notify,
    /// Batches stored so far (to tell whether boxes are waiting on the database).
    stored: AtomicU64,
}

/// An order (site, order id).
type Key = (String, String);

/// Months whose partitions exist (created once per process, under an advisory lock).
#[derive(Default)]
struct Partitions(Mutex<HashSet<(i32, u32)>>);

/// A timestamp change: unchanged, cleared, or set (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Stamp {
    #[default]
    Keep,
    Clear,
    Set(i64),
}

/// What a step's events do to an order placed before the step.
#[derive(Debug, Default)]
struct Update {
    status: Option<OrderStatus>,
    accepted: Stamp,
    ready: Stamp,
    finished: Stamp,
    totals: Option<(i64, i64, i64)>,
    /// Every line after the last edit (`lines_edited`), replacing the stored lines.
    lines: Option<Vec<OrderLine>>,
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

/// An order placed in this step, with what later events of the step did to it.
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

impl Projector {
    /// A projector on `pool`.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            partitions: Partitions::default(),
            wake: Notify::new(),
            stored: AtomicU64::new(0),
        }
    }

    /// Says there are new events (a batch was stored).
    pub fn wake(&self) {
        self.stored.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Runs for ever. After a step that left a backlog, if batches came in meanwhile, it rests as
    /// long as the step took, so the projector never takes more than half the time the batches'
    /// transactions could use: boxes waiting for an acknowledgement come first. With no batch
    /// coming in, and for reports ([`Self::catch_up`]), it does not rest.
    /// After a step that took everything it gathers for [`GATHER`], so a fleet's small batches are
    /// folded many at a time rather than one transaction each. With nothing to do it waits for
    /// a batch (or a second).
    pub async fn run(&self) {
        let mut failing = false;
        loop {
            let started = tokio::time::Instant::now();
            let stored = self.stored.load(Ordering::Relaxed);
            match self.step().await {
                Ok(Step { events: 0, .. }) => {
                    failing = false;
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
                }
                Ok(step) => {
                    failing = false;
                    let took = started.elapsed();
                    let busy = self.stored.load(Ordering::Relaxed) != stored;
                    if !step.more {
                        tokio::time::sleep(GATHER.max(took)).await;
                    } else if busy {
                        tokio::time::sleep(took).await;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, "projecting events into orders failed; retrying");
                    }
                    failing = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Projects until every event acknowledged so far (for `site`, or for all sites) is folded,
    /// or `within` runs out (when another collector holds the work). Events stored meanwhile
    /// do not hold it up. Returns the events it could not wait for.
    pub async fn catch_up(&self, site: Option<&str>, within: Duration) -> anyhow::Result<i64> {
        let deadline = tokio::time::Instant::now() + within;
        let client = self.pool.get().await?;
        let (sites, acked): (Vec<String>, Vec<i64>) = client
            .query(
                "SELECT site_id, acked_seq FROM site_cursors
                 WHERE $1::text IS NULL OR site_id = $1",
                &[&site],
            )
            .await?
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .unzip();
        loop {
            let pending: i64 = client
                .query_one(
                    "SELECT coalesce(sum(greatest(t.acked - p.projected_seq, 0)), 0)::bigint
                     FROM unnest($1::text[], $2::bigint[]) AS t(site, acked)
                     JOIN projections p ON p.site_id = t.site",
                    &[&sites, &acked],
                )
                .await?
                .get(0);
            if pending == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(pending);
            }
            if self.step().await?.events == 0 {
                // Another step holds those sites: wait for it.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// One step.
    pub async fn step(&self) -> anyhow::Result<Step> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // What a step writes is derived from stored events, and its projected_seq commits with
        // it: a crash may lose the last steps, never half of one, and they are folded again. So
        // its commit does not wait for the WAL flush that the batches' commits are queued on.
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await?;
        let sites = tx
            .query(
                "SELECT p.site_id, p.projected_seq FROM projections p
                 JOIN site_cursors c USING (site_id)
                 WHERE c.acked_seq > p.projected_seq
                 ORDER BY p.site_id
                 LIMIT $1
                 FOR UPDATE OF p SKIP LOCKED",
                &[&STEP_SITES],
            )
            .await?;
        if sites.is_empty() {
            return Ok(Step::default());
        }
        let ids: Vec<String> = sites.iter().map(|r| r.get(0)).collect();
        let after: Vec<i64> = sites.iter().map(|r| r.get(1)).collect();
        let per_site = (STEP_EVENTS / ids.len() as i64).max(20);
        let rows = tx
            .query(
                "SELECT e.site_id, e.seq, (extract(epoch FROM e.at) * 1000)::bigint, e.body::text
                 FROM unnest($1::text[], $2::bigint[]) AS p(site, after)
                 CROSS JOIN LATERAL (
                     SELECT site_id, seq, at, body FROM events
                     WHERE site_id = p.site AND seq > p.after
                     ORDER BY seq LIMIT $3) e
                 ORDER BY e.site_id, e.seq",
                &[&ids, &after, &per_site],
            )
            .await?;
        let mut fold = Fold::default();
        // Per site: the last seq read, and how many events.
        let mut read: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for r in &rows {
            let site: String = r.get(0);
            let seq: i64 = r.get(1);
            let at: i64 = r.get(2);
            let body: &str = r.get(3);
            match serde_json::from_str::<EventKind>(body) {
                Ok(kind) => fold.apply(&site, seq, at, kind),
                // A kind this collector does not know (a newer box): it stays in `events`.
                Err(e) => tracing::warn!(site, seq, error = %e, "event not folded into orders"),
            }
            let entry = read.entry(site).or_default();
            *entry = (seq, entry.1 + 1);
        }
        let created = fold.write(&tx, &self.partitions).await?;
        let more = read.values().any(|&(_, n)| n >= per_site);
        let (sites, seqs): (Vec<String>, Vec<i64>) = read
            .into_iter()
            .map(|(site, (seq, _))| (site, seq))
            .collect();
        tx.execute(
            "UPDATE projections p SET projected_seq = u.seq
             FROM unnest($1::text[], $2::bigint[]) AS u(site, seq) WHERE p.site_id = u.site",
            &[&sites, &seqs],
        )
        .await?;
        tx.commit().await?;
        self.partitions.created(created);
        Ok(Step {
            events: rows.len(),
            more,
        })
    }
}

/// What a step did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Step {
    /// Events folded.
    pub events: usize,
    /// Whether some site had more events than the step could take (a backlog).
    pub more: bool,
}

/// Orders placed in a step, and what the step's events did to orders placed before it.
#[derive(Default)]
struct Fold {
    placed: BTreeMap<Key, Placed>,
    updates: BTreeMap<Key, Update>,
    closed: Vec<(String, CheckClosed)>,
    refunds: Vec<(String, i64, RefundFact)>,
    zs: Vec<(String, ZReport)>,
}

/// `YYYYMMDD` as the text PostgreSQL reads as a date.
fn day_text(day: u32) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day / 10_000,
        day / 100 % 100,
        day % 100
    )
}

impl Fold {
    fn apply(&mut self, site: &str, seq: i64, at: i64, kind: EventKind) {
        match kind {
            EventKind::CheckClosed(c) => self.closed.push((site.to_owned(), *c)),
            EventKind::CheckRefunded(r) => self.refunds.push((site.to_owned(), seq, r)),
            EventKind::DayClosed(z) => self.zs.push((site.to_owned(), *z)),
            EventKind::OrderPlaced(o) => {
                self.placed.insert(
                    (site.to_owned(), o.id.clone()),
                    Placed {
                        order: *o,
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
                let key = (site.to_owned(), order_id);
                let mut u = Update::default();
                stamps(&mut u, to, from, recall, at);
                if let Some(p) = self.placed.get_mut(&key) {
                    p.order.status = to;
                    apply_stamp(&mut p.accepted, u.accepted);
                    apply_stamp(&mut p.ready, u.ready);
                    apply_stamp(&mut p.finished, u.finished);
                } else {
                    let acc = self.updates.entry(key).or_default();
                    acc.status = Some(to);
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
                let key = (site.to_owned(), order_id);
                if let Some(p) = self.placed.get_mut(&key) {
                    p.order.subtotal = subtotal;
                    p.order.tax = tax;
                    p.order.total = total;
                } else {
                    self.updates.entry(key).or_default().totals = Some((subtotal, tax, total));
                }
            }
            EventKind::LinesEdited {
                order_id,
                lines,
                subtotal,
                tax,
                total,
                ..
            } => {
                let key = (site.to_owned(), order_id);
                if let Some(p) = self.placed.get_mut(&key) {
                    p.order.items = lines;
                    p.order.subtotal = subtotal;
                    p.order.tax = tax;
                    p.order.total = total;
                } else {
                    let u = self.updates.entry(key).or_default();
                    u.totals = Some((subtotal, tax, total));
                    u.lines = Some(lines);
                }
            }
            _ => {}
        }
    }

    /// Writes the fold; returns the months whose partitions it created.
    async fn write(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        partitions: &Partitions,
    ) -> Result<Vec<(i32, u32)>, tokio_postgres::Error> {
        let mut created = Vec::new();
        if !self.placed.is_empty() {
            let months: BTreeSet<(i32, u32)> = self
                .placed
                .values()
                .map(|p| month_of(p.order.created_at as i64))
                .collect();
            created = partitions.ensure(tx, &months).await?;
            insert_orders(tx, &self.placed).await?;
        }
        if !self.updates.is_empty() {
            update_orders(tx, &self.updates).await?;
        }
        self.write_money(tx).await?;
        Ok(created)
    }

    /// Closed checks with their payments, refunds and Z reports: one row each, written again
    /// as the same row if a step is folded twice.
    async fn write_money(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        if !self.closed.is_empty() {
            let check = tx
                .prepare(
                    "INSERT INTO check_closings (site_id, check_id, ledger_day, voided, covers,
                         sales, discounts, comps, voids, total)
                     VALUES ($1, $2, $3::text::date, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT DO NOTHING",
                )
                .await?;
            let pay = tx
                .prepare(
                    "INSERT INTO payments (site_id, check_id, payment_id, ledger_day, method,
                         amount, tip, rounding)
                     VALUES ($1, $2, $3, $4::text::date, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .await?;
            for (site, c) in &self.closed {
                let id = i64::try_from(c.check.id).unwrap_or(i64::MAX);
                let day = day_text(c.ledger_day);
                tx.execute(
                    &check,
                    &[
                        site,
                        &id,
                        &day,
                        &c.voided,
                        &i32::try_from(c.covers).unwrap_or(i32::MAX),
                        &c.sales,
                        &c.discounts,
                        &c.comps,
                        &c.voids,
                        &c.total,
                    ],
                )
                .await?;
                for p in &c.payments {
                    tx.execute(
                        &pay,
                        &[
                            site,
                            &id,
                            &i32::try_from(p.id).unwrap_or(i32::MAX),
                            &day,
                            &p.method,
                            &p.amount,
                            &p.tip,
                            &p.rounding,
                        ],
                    )
                    .await?;
                }
            }
        }
        for (site, seq, r) in &self.refunds {
            tx.execute(
                "INSERT INTO refunds (site_id, seq, check_id, ledger_day, method, amount, reason,
                     actor, approved_by)
                 VALUES ($1, $2, $3, $4::text::date, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                &[
                    site,
                    seq,
                    &i64::try_from(r.check.id).unwrap_or(i64::MAX),
                    &day_text(r.ledger_day),
                    &r.method,
                    &r.amount,
                    &r.reason,
                    &r.actor,
                    &r.approved_by,
                ],
            )
            .await?;
        }
        for (site, z) in &self.zs {
            let figures = serde_json::to_string(&z.figures).unwrap_or_default();
            tx.execute(
                "INSERT INTO z_reports (site_id, number, business_day, closed_at, net, tips,
                     refunds, figures)
                 VALUES ($1, $2, $3::text::date, to_timestamp($4::bigint / 1000.0), $5, $6, $7,
                     $8::text::jsonb)
                 ON CONFLICT DO NOTHING",
                &[
                    site,
                    &i32::try_from(z.number).unwrap_or(i32::MAX),
                    &day_text(z.figures.business_day),
                    &i64::try_from(z.closed_at).unwrap_or(i64::MAX),
                    &z.figures.net,
                    &z.figures.tips,
                    &z.figures.refunds,
                    &figures,
                ],
            )
            .await?;
        }
        Ok(())
    }
}

async fn insert_orders(
    tx: &tokio_postgres::Transaction<'_>,
    placed: &BTreeMap<Key, Placed>,
) -> Result<(), tokio_postgres::Error> {
    let sites: Vec<&str> = placed.keys().map(|(s, _)| s.as_str()).collect();
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
         SELECT s, id, to_timestamp(c / 1000.0), to_date(d, 'YYYYMMDD'), num, ty, src, st,
             sub, tx, tot, cur, to_timestamp(acc / 1000.0), to_timestamp(rdy / 1000.0),
             to_timestamp(fin / 1000.0)
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
             $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::bigint[],
             $14::bigint[], $15::bigint[])
             AS u(s, id, c, d, num, ty, src, st, sub, tx, tot, cur, acc, rdy, fin)
         ON CONFLICT DO NOTHING",
        &[
            &sites,
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
         SELECT s, id, to_timestamp(c / 1000.0) FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(s, id, c)
         ON CONFLICT DO NOTHING",
        &[&sites, &ids, &created],
    )
    .await?;
    let mut l_sites = Vec::new();
    let mut l_ids = Vec::new();
    let mut l_created = Vec::new();
    let mut l_no = Vec::new();
    let mut l_item = Vec::new();
    let mut l_name = Vec::new();
    let mut l_qty = Vec::new();
    let mut l_total = Vec::new();
    for ((site, _), p) in placed {
        for (i, line) in p.order.items.iter().enumerate() {
            l_sites.push(site.as_str());
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
         SELECT s, id, to_timestamp(c / 1000.0), n, it, nm, q, lt
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::int[],
             $8::bigint[]) AS u(s, id, c, n, it, nm, q, lt)
         ON CONFLICT DO NOTHING",
        &[
            &l_sites, &l_ids, &l_created, &l_no, &l_item, &l_name, &l_qty, &l_total,
        ],
    )
    .await?;
    Ok(())
}

async fn update_orders(
    tx: &tokio_postgres::Transaction<'_>,
    updates: &BTreeMap<Key, Update>,
) -> Result<(), tokio_postgres::Error> {
    let sites: Vec<&str> = updates.keys().map(|(s, _)| s.as_str()).collect();
    let ids: Vec<&str> = updates.keys().map(|(_, id)| id.as_str()).collect();
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
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::int[], $7::bigint[],
                 $8::int[], $9::bigint[], $10::int[], $11::bigint[], $12::bigint[], $13::bigint[])
                 AS u(s, id, st, af, acc, rf, rdy, ff, fin, tf, sub, tx, tot),
              order_index i
         WHERE i.site_id = u.s AND i.order_id = u.id
           AND o.site_id = u.s AND o.order_id = u.id AND o.created_at = i.created_at",
        &[
            &sites, &ids, &statuses, &acc_f, &acc, &rdy_f, &rdy, &fin_f, &fin, &tot_f, &sub,
            &tax, &tot,
        ],
    )
    .await?;
    replace_lines(tx, updates).await
}

/// The lines of orders edited after the step that placed them: deleted and written again
/// from the edit, which carries every line.
async fn replace_lines(
    tx: &tokio_postgres::Transaction<'_>,
    updates: &BTreeMap<Key, Update>,
) -> Result<(), tokio_postgres::Error> {
    let edited: Vec<(&Key, &Vec<OrderLine>)> = updates
        .iter()
        .filter_map(|(k, u)| u.lines.as_ref().map(|l| (k, l)))
        .collect();
    if edited.is_empty() {
        return Ok(());
    }
    let sites: Vec<&str> = edited.iter().map(|((s, _), _)| s.as_str()).collect();
    let ids: Vec<&str> = edited.iter().map(|((_, id), _)| id.as_str()).collect();
    tx.execute(
        "DELETE FROM order_lines l
         USING unnest($1::text[], $2::text[]) AS u(s, id), order_index i
         WHERE i.site_id = u.s AND i.order_id = u.id
           AND l.site_id = u.s AND l.order_id = u.id AND l.created_at = i.created_at",
        &[&sites, &ids],
    )
    .await?;
    let mut l_sites = Vec::new();
    let mut l_ids = Vec::new();
    let mut l_no = Vec::new();
    let mut l_item = Vec::new();
    let mut l_name = Vec::new();
    let mut l_qty = Vec::new();
    let mut l_total = Vec::new();
    for ((site, id), lines) in &edited {
        for (i, line) in lines.iter().enumerate() {
            l_sites.push(site.as_str());
            l_ids.push(id.as_str());
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
         SELECT u.s, u.id, i.created_at, n, it, nm, q, lt
         FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[],
             $7::bigint[]) AS u(s, id, n, it, nm, q, lt)
         JOIN order_index i ON i.site_id = u.s AND i.order_id = u.id
         ON CONFLICT DO NOTHING",
        &[&l_sites, &l_ids, &l_no, &l_item, &l_name, &l_qty, &l_total],
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
