//! Sites and their upload tokens: `os_` + 256 random bits, shown once, stored as SHA-256 (a
//! token is random, so a fast hash is enough; lookups compare digests in the database).

use deadpool_postgres::Pool;
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Tokens start with this.
pub const TOKEN_PREFIX: &str = "os_";

/// A site as listed.
#[derive(Debug, Serialize)]
pub struct Site {
    /// Id (the box's `[site] id`).
    pub site_id: String,
    /// Name.
    pub name: String,
    /// Revoked sites cannot upload.
    pub revoked: bool,
    /// Stored up to this seq.
    pub acked_seq: i64,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether `id` is a valid site id (`[a-z0-9_-]`, 1 to 32 characters, as on the box).
pub fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Adds a site (or gives a revoked one a new token); returns its token.
pub async fn add(pool: &Pool, id: &str, name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(valid_id(id), "site id: [a-z0-9_-], 1 to 32 characters");
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        raw.iter().fold(String::with_capacity(64), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        })
    );
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let n = tx
        .execute(
            "INSERT INTO sites (site_id, name, token_sha256) VALUES ($1, $2, $3)
             ON CONFLICT (site_id) DO UPDATE SET token_sha256 = EXCLUDED.token_sha256,
                 name = EXCLUDED.name, revoked_at = NULL
             WHERE sites.revoked_at IS NOT NULL",
            &[&id, &name, &digest(&token)],
        )
        .await?;
    anyhow::ensure!(
        n == 1,
        "site {id} exists; revoke it first to issue a new token"
    );
    for table in ["site_cursors", "projections"] {
        tx.execute(
            &format!("INSERT INTO {table} (site_id) VALUES ($1) ON CONFLICT DO NOTHING"),
            &[&id],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(token)
}

/// Every site.
pub async fn list(pool: &Pool) -> anyhow::Result<Vec<Site>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT s.site_id, s.name, s.revoked_at IS NOT NULL, coalesce(c.acked_seq, 0)
             FROM sites s LEFT JOIN site_cursors c USING (site_id) ORDER BY s.site_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Site {
            site_id: r.get(0),
            name: r.get(1),
            revoked: r.get(2),
            acked_seq: r.get(3),
        })
        .collect())
}

/// Revokes a site's token (its data stays).
pub async fn revoke(pool: &Pool, id: &str) -> anyhow::Result<()> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE sites SET revoked_at = now() WHERE site_id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await?;
    anyhow::ensure!(n == 1, "no active site {id}");
    Ok(())
}

/// The site a token belongs to, if it is live.
pub async fn authenticate(pool: &Pool, token: &str) -> anyhow::Result<Option<String>> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    let client = pool.get().await?;
    let find = client
        .prepare_cached("SELECT site_id FROM sites WHERE token_sha256 = $1 AND revoked_at IS NULL")
        .await?;
    let row = client.query_opt(&find, &[&digest(token)]).await?;
    Ok(row.map(|r| r.get(0)))
}
