//! The SQLite queries that hand out work rather than keep the log: due
//! deadlines claimed by one engine at a time, the event relay's feed in
//! commit order with its checkpoints, and poison messages kept for
//! operators.
//!
//! SQLite has one writer, so the global commit order is simply the events
//! table's `AUTOINCREMENT` position: a later commit always gets a larger one.
//! Cursors therefore carry `tx = 0`.

use sqlx::SqlitePool;

use super::db;
use super::rows::{column, recorded_from_row};
use crate::saga::SagaId;
use crate::store::rules::{page_limit, poison_payload};
use crate::store::{CommittedEvent, PoisonRecord, RelayCursor, StoreError};

pub(super) async fn record_poison(pool: &SqlitePool, poison: &PoisonRecord) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO poison (subject, reason, payload, received_at_ms) VALUES (?, ?, ?, ?)")
        .bind(&poison.subject)
        .bind(&poison.reason)
        .bind(poison_payload(&poison.payload))
        .bind(poison.received_at_ms)
        .execute(pool)
        .await
        .map_err(db("recording a poison message"))?;
    Ok(())
}

pub(super) async fn poison(pool: &SqlitePool, limit: u32) -> Result<Vec<PoisonRecord>, StoreError> {
    let rows: Vec<(String, String, Vec<u8>, i64)> =
        sqlx::query_as("SELECT subject, reason, payload, received_at_ms FROM poison ORDER BY id LIMIT ?")
            .bind(i64::from(page_limit(limit)))
            .fetch_all(pool)
            .await
            .map_err(db("reading poison messages"))?;
    Ok(rows
        .into_iter()
        .map(|(subject, reason, payload, received_at_ms)| PoisonRecord { subject, reason, payload, received_at_ms })
        .collect())
}

pub(super) async fn committed_after(pool: &SqlitePool, after: RelayCursor, limit: u32) -> Result<Vec<CommittedEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT e.position, e.saga_id, s.saga_type, e.seq, e.event_type, e.schema_version, e.data, e.at_ms \
         FROM events e JOIN sagas s ON s.saga_id = e.saga_id WHERE e.position > ? ORDER BY e.position LIMIT ?",
    )
    .bind(after.position)
    .bind(i64::from(page_limit(limit)))
    .fetch_all(pool)
    .await
    .map_err(db("reading committed events"))?;
    rows.iter()
        .map(|row| {
            let saga_id: String = column(row, "saga_id")?;
            let saga_id = SagaId::parse(&saga_id).map_err(|error| StoreError::Database(format!("sqlite: stored {error}")))?;
            Ok(CommittedEvent {
                cursor: RelayCursor { tx: 0, position: column(row, "position")? },
                saga_id,
                saga_type: column(row, "saga_type")?,
                recorded: recorded_from_row(saga_id, row)?,
            })
        })
        .collect()
}

pub(super) async fn relay_checkpoint(pool: &SqlitePool, relay: &str) -> Result<RelayCursor, StoreError> {
    let row: Option<(i64, i64)> = sqlx::query_as("SELECT tx, position FROM relay_checkpoints WHERE relay = ?")
        .bind(relay)
        .fetch_optional(pool)
        .await
        .map_err(db("reading a relay checkpoint"))?;
    Ok(row.map(|(tx, position)| RelayCursor { tx, position }).unwrap_or_default())
}

pub(super) async fn save_relay_checkpoint(pool: &SqlitePool, relay: &str, cursor: RelayCursor) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO relay_checkpoints (relay, tx, position) VALUES (?, ?, ?) \
         ON CONFLICT (relay) DO UPDATE SET tx = excluded.tx, position = excluded.position",
    )
    .bind(relay)
    .bind(cursor.tx)
    .bind(cursor.position)
    .execute(pool)
    .await
    .map_err(db("saving a relay checkpoint"))?;
    Ok(())
}

/// Select and mark in one `BEGIN IMMEDIATE` transaction: the write lock is
/// taken before the select, so no other engine can pick the same rows.
pub(super) async fn claim_due(pool: &SqlitePool, now_ms: i64, lease_ms: i64, limit: u32) -> Result<Vec<SagaId>, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db("starting a claim transaction"))?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT saga_id FROM sagas WHERE deadline_ms <= ? AND (claimed_until_ms IS NULL OR claimed_until_ms < ?) \
         ORDER BY deadline_ms, saga_id LIMIT ?",
    )
    .bind(now_ms)
    .bind(now_ms)
    .bind(i64::from(page_limit(limit)))
    .fetch_all(&mut *tx)
    .await
    .map_err(db("finding due sagas"))?;
    let until = now_ms.saturating_add(lease_ms);
    for saga_id in &ids {
        sqlx::query("UPDATE sagas SET claimed_until_ms = ? WHERE saga_id = ?")
            .bind(until)
            .bind(saga_id)
            .execute(&mut *tx)
            .await
            .map_err(db("claiming a due saga"))?;
    }
    tx.commit().await.map_err(db("committing a claim"))?;
    ids.iter().map(|saga_id| SagaId::parse(saga_id).map_err(|error| StoreError::Database(format!("sqlite: stored {error}")))).collect()
}
