//! Storing a batch: one PostgreSQL transaction per batch, idempotent by `(site_id, seq)`.
//!
//! The site's cursor row is locked first, so batches of one site are stored one after the
//! other. A batch wholly at or below the cursor is a replay: acknowledged, nothing written. An
//! overlapping batch writes only its new tail. A batch that starts past `cursor + 1` would
//! leave a gap: refused with the seq the box must resend from. The new events go in with one
//! binary `COPY`, and the cursor moves in the same transaction; the acknowledgement means the
//! events are durable. Folding them into orders is the [`crate::project`]or's work, after.

use std::pin::pin;
use std::time::{Duration, SystemTime};

use deadpool_postgres::Pool;
use orderd_protocol::Event;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, Type};

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

/// Stores `events` (consecutive, `first..=last`) for `site` in one transaction.
pub async fn store(
    pool: &Pool,
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
    // Statements are prepared once per connection: each batch is then one round trip per step.
    let lock = tx
        .prepare_cached("SELECT acked_seq, box_id FROM site_cursors WHERE site_id = $1 FOR UPDATE")
        .await?;
    let row = tx.query_one(&lock, &[&site]).await?;
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
    // Under the cursor's lock nothing above `acked` is stored, so a plain COPY cannot collide.
    let copy = tx
        .prepare_cached("COPY events (site_id, seq, at, kind, body) FROM STDIN BINARY")
        .await?;
    let sink = tx.copy_in(&copy).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::INT8,
            Type::TIMESTAMPTZ,
            Type::TEXT,
            Type::JSON
        ],
    ));
    for e in events.iter().filter(|e| e.seq > acked) {
        let seq = i64::try_from(e.seq)?;
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(e.at);
        writer
            .as_mut()
            .write(&[&site, &seq, &at, &e.kind.name(), &Json(&e.kind)])
            .await?;
    }
    writer.as_mut().finish().await?;
    let advance = tx
        .prepare_cached(
            "UPDATE site_cursors SET acked_seq = $2, box_id = $3, updated_at = now() WHERE site_id = $1",
        )
        .await?;
    tx.execute(&advance, &[&site, &i64::try_from(last)?, &box_id])
        .await?;
    tx.commit().await?;
    Ok(Stored::Acked(last))
}
