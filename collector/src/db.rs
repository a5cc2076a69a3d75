//! The PostgreSQL side: the connection pool and the schema migrations (numbered SQL files in
//! `collector/migrations/`, applied once each, in order, under an advisory lock).

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// The migrations, in order. A released file never changes; a change is a new file.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_projections.sql")),
    (3, include_str!("../migrations/0003_money.sql")),
];

/// A pool of `size` connections to `url`.
pub fn pool(url: &str, size: usize) -> anyhow::Result<Pool> {
    let cfg: tokio_postgres::Config = url.parse()?;
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(mgr).max_size(size).build()?)
}

/// Applies the migrations not yet applied; returns how many ran.
pub async fn migrate(pool: &Pool) -> anyhow::Result<usize> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // One migrator at a time, whatever the number of collectors starting.
    tx.execute("SELECT pg_advisory_xact_lock(4242001)", &[])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version int PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let mut ran = 0;
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if done {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        ran += 1;
    }
    tx.commit().await?;
    Ok(ran)
}
