//! The PostgreSQL queries that hand out work rather than keep the log: due
//! deadlines claimed by one engine at a time (`FOR UPDATE SKIP LOCKED`),
//! the event relay's feed in commit order with its checkpoints, and poison
//! messages kept for operators.

use sqlx::PgPool;

use super::db;
use super::rows::{column, recorded_from_row, saga_id_from, EVENT_COLUMNS};
use crate::saga::SagaId;
use crate::store::rules::{page_limit, poison_payload};
use crate::store::{CommittedEvent, PoisonRecord, RelayCursor, StoreError};

pub(super) async fn record_poison(pool: &PgPool, poison: &PoisonRecord) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO poison (subject, reason, payload, received_at_ms) VALUES ($1, $2, $3, $4)")
        .bind(&poison.subject)
        .bind(&poison.reason)
        .bind(poison_payload(&poison.payload))
        .bind(poison.received_at_ms)
        .execute(pool)
        .await
        .map_err(db("recording a poison message"))?;
    Ok(())
}

pub(super) async fn poison(pool: &PgPool, limit: u32) -> Result<Vec<PoisonRecord>, StoreError> {
    let rows: Vec<(String, String, Vec<u8>, i64)> =
        sqlx::query_as("SELECT subject, reason, payload, received_at_ms FROM poison ORDER BY id LIMIT $1")
            .bind(i64::from(page_limit(limit)))
            .fetch_all(pool)
            .await
            .map_err(db("reading poison messages"))?;
    Ok(rows
        .into_iter()
        .map(|(subject, reason, payload, received_at_ms)| PoisonRecord { subject, reason, payload, received_at_ms })
        .collect())
}

/// Why not `ORDER BY position` alone: a BIGSERIAL value is taken when the
/// row is inserted, not when its transaction commits. Transaction A may
/// take position 10, transaction B position 11, and B commit first; a relay
/// reading then would hand on 11 and checkpoint it, and 10, committed a
/// moment later, would sit behind the cursor forever. So only events of
/// transactions older than every transaction still running (the snapshot's
/// `xmin`) are read — nothing can commit among them any more — and they are
/// ordered by (transaction id, position): any transaction still to commit
/// has a larger id than every event handed on, so it lands after the cursor.
/// A transaction left open for long holds the relay back until it ends.
pub(super) async fn committed_after(pool: &PgPool, after: RelayCursor, limit: u32) -> Result<Vec<CommittedEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT e.tx_id::text::bigint AS tx, e.position, e.saga_id, s.saga_type, {EVENT_COLUMNS} \
         FROM events e JOIN sagas s ON s.saga_id = e.saga_id \
         WHERE e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) AND (e.tx_id, e.position) > ($1::bigint::text::xid8, $2) \
         ORDER BY e.tx_id, e.position LIMIT $3"
    ))
    .bind(after.tx)
    .bind(after.position)
    .bind(i64::from(page_limit(limit)))
    .fetch_all(pool)
    .await
    .map_err(db("reading committed events"))?;
    rows.iter()
        .map(|row| {
            let saga_id = saga_id_from(&column::<String>(row, "saga_id")?)?;
            Ok(CommittedEvent {
                cursor: RelayCursor { tx: column(row, "tx")?, position: column(row, "position")? },
                saga_id,
                saga_type: column(row, "saga_type")?,
                recorded: recorded_from_row(saga_id, row)?,
            })
        })
        .collect()
}

pub(super) async fn relay_checkpoint(pool: &PgPool, relay: &str) -> Result<RelayCursor, StoreError> {
    let row: Option<(i64, i64)> = sqlx::query_as("SELECT tx, position FROM relay_checkpoints WHERE relay = $1")
        .bind(relay)
        .fetch_optional(pool)
        .await
        .map_err(db("reading a relay checkpoint"))?;
    Ok(row.map(|(tx, position)| RelayCursor { tx, position }).unwrap_or_default())
}

pub(super) async fn save_relay_checkpoint(pool: &PgPool, relay: &str, cursor: RelayCursor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO relay_checkpoints (relay, tx, position) VALUES ($1, $2, $3) \
         ON CONFLICT (relay) DO UPDATE SET tx = EXCLUDED.tx, position = EXCLUDED.position",
    )
    .bind(relay)
    .bind(cursor.tx)
    .bind(cursor.position)
    .execute(pool)
    .await
    .map_err(db("saving a relay checkpoint"))?;
    Ok(())
}

/// One statement: the inner select locks the rows it picks and skips rows
/// another claimer has locked, so two concurrent claimers get disjoint
/// sets; a row claimed and committed meanwhile is re-checked against the
/// new `claimed_until_ms` and dropped. `RETURNING` has no order, so the
/// oldest-deadline-first order is restored here.
pub(super) async fn claim_due(pool: &PgPool, now_ms: i64, lease_ms: i64, limit: u32) -> Result<Vec<SagaId>, StoreError> {
    let mut rows: Vec<(i64, String)> = sqlx::query_as(
        "UPDATE sagas SET claimed_until_ms = $2 WHERE saga_id IN ( \
             SELECT saga_id FROM sagas WHERE deadline_ms <= $1 AND (claimed_until_ms IS NULL OR claimed_until_ms < $1) \
             ORDER BY deadline_ms, saga_id LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING deadline_ms, saga_id",
    )
    .bind(now_ms)
    .bind(now_ms.saturating_add(lease_ms))
    .bind(i64::from(page_limit(limit)))
    .fetch_all(pool)
    .await
    .map_err(db("claiming due sagas"))?;
    rows.sort_unstable();
    rows.iter().map(|(_, saga_id)| saga_id_from(saga_id)).collect()
}
