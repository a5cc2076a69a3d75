//! Chain-wide reports from the SQL views: orders and revenue per site per day, average prep
//! time, top items, and the money — checks, sales, discounts, comps, voids, net, tips and
//! refunds per site and day, payments per method, and each box's Z reports. A report first lets the projector fold every event acknowledged before it
//! began, so it counts all of them; `pending_events` says how many it could not wait for.

use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::{Value, json};

use crate::project::Projector;

/// The longest a report waits for the projector.
const CATCH_UP: Duration = Duration::from_secs(10);

/// The summary of `from..=to` (`YYYY-MM-DD`), for one site or all.
pub async fn summary(
    pool: &Pool,
    projector: &Projector,
    site: Option<&str>,
    from: &str,
    to: &str,
) -> anyhow::Result<Value> {
    let pending = projector.catch_up(site, CATCH_UP).await?;
    let client = pool.get().await?;
    let days = client
        .query(
            "SELECT site_id, business_day::text, orders, revenue, cancelled,
                    round(avg_prep_secs::numeric, 1)::float8
             FROM site_daily
             WHERE business_day BETWEEN $1::text::date AND $2::text::date
               AND ($3::text IS NULL OR site_id = $3)
             ORDER BY business_day, site_id",
            &[&from, &to, &site],
        )
        .await?;
    let items = client
        .query(
            "SELECT item_id, max(name), sum(quantity)::bigint, sum(revenue)::bigint
             FROM item_daily
             WHERE business_day BETWEEN $1::text::date AND $2::text::date
               AND ($3::text IS NULL OR site_id = $3)
             GROUP BY item_id ORDER BY 3 DESC, 1 LIMIT 10",
            &[&from, &to, &site],
        )
        .await?;
    let totals = client
        .query_one(
            "SELECT coalesce(sum(orders), 0)::bigint, coalesce(sum(revenue), 0)::bigint,
                    round((sum(avg_prep_secs * orders) / nullif(sum(orders) FILTER
                        (WHERE avg_prep_secs IS NOT NULL), 0))::numeric, 1)::float8
             FROM site_daily
             WHERE business_day BETWEEN $1::text::date AND $2::text::date
               AND ($3::text IS NULL OR site_id = $3)",
            &[&from, &to, &site],
        )
        .await?;
    let money = client
        .query(
            "SELECT site_id, business_day::text, checks::bigint, covers::bigint, sales::bigint,
                    discounts::bigint, comps::bigint, voids::bigint, net::bigint, tips::bigint,
                    refunds::bigint
             FROM money_daily
             WHERE business_day BETWEEN $1::text::date AND $2::text::date
               AND ($3::text IS NULL OR site_id = $3)
             ORDER BY business_day, site_id",
            &[&from, &to, &site],
        )
        .await?;
    let methods = client
        .query(
            "SELECT site_id, business_day::text, method, payments::bigint, amount::bigint, tips::bigint,
                    rounding::bigint, coalesce((SELECT sum(r.amount) FROM refunds r
                        WHERE r.site_id = p.site_id AND r.ledger_day = p.business_day
                          AND r.method = p.method), 0)::bigint
             FROM payments_daily p
             WHERE business_day BETWEEN $1::text::date AND $2::text::date
               AND ($3::text IS NULL OR site_id = $3)
             ORDER BY business_day, site_id, method",
            &[&from, &to, &site],
        )
        .await?;
    let zs = client
        .query(
            "SELECT site_id, number, business_day::text, net, tips, refunds
             FROM z_reports
             WHERE business_day BETWEEN $1::text::date AND $2::text::date
               AND ($3::text IS NULL OR site_id = $3)
             ORDER BY site_id, number",
            &[&from, &to, &site],
        )
        .await?;
    Ok(json!({
        "money_per_site_day": money.iter().map(|r| json!({
            "site_id": r.get::<_, String>(0),
            "day": r.get::<_, String>(1),
            "checks": r.get::<_, i64>(2),
            "covers": r.get::<_, i64>(3),
            "sales": r.get::<_, i64>(4),
            "discounts": r.get::<_, i64>(5),
            "comps": r.get::<_, i64>(6),
            "voids": r.get::<_, i64>(7),
            "net": r.get::<_, i64>(8),
            "tips": r.get::<_, i64>(9),
            "refunds": r.get::<_, i64>(10),
        })).collect::<Vec<_>>(),
        "payments_per_site_day": methods.iter().map(|r| json!({
            "site_id": r.get::<_, String>(0),
            "day": r.get::<_, String>(1),
            "method": r.get::<_, String>(2),
            "payments": r.get::<_, i64>(3),
            "amount": r.get::<_, i64>(4),
            "tips": r.get::<_, i64>(5),
            "rounding": r.get::<_, i64>(6),
            "refunds": r.get::<_, i64>(7),
        })).collect::<Vec<_>>(),
        "z_reports": zs.iter().map(|r| json!({
            "site_id": r.get::<_, String>(0),
            "number": r.get::<_, i32>(1),
            "day": r.get::<_, String>(2),
            "net": r.get::<_, i64>(3),
            "tips": r.get::<_, i64>(4),
            "refunds": r.get::<_, i64>(5),
        })).collect::<Vec<_>>(),
        "from": from,
        "to": to,
        "site": site,
        "pending_events": pending,
        "orders": totals.get::<_, i64>(0),
        "revenue": totals.get::<_, i64>(1),
        "avg_prep_secs": totals.get::<_, Option<f64>>(2),
        "per_site_day": days.iter().map(|r| json!({
            "site_id": r.get::<_, String>(0),
            "day": r.get::<_, String>(1),
            "orders": r.get::<_, i64>(2),
            "revenue": r.get::<_, i64>(3),
            "cancelled": r.get::<_, i64>(4),
            "avg_prep_secs": r.get::<_, Option<f64>>(5),
        })).collect::<Vec<_>>(),
        "top_items": items.iter().map(|r| json!({
            "item_id": r.get::<_, String>(0),
            "name": r.get::<_, String>(1),
            "quantity": r.get::<_, i64>(2),
            "revenue": r.get::<_, i64>(3),
        })).collect::<Vec<_>>(),
    }))
}
