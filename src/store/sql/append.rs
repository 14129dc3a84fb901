//! The group commit: every saga of a batch appended in one transaction.
//!
//! The transaction opens with the dialect's `begin_write.sql` and reads
//! each saga's last seq with its `last_seq_locked.sql`, so no other writer
//! can move it before the commit: SQLite holds its one write lock from the
//! start, PostgreSQL locks the saga's projection row. A new saga has no
//! row to lock; two writers of one are told apart by the primary key
//! (saga_id, seq), whose unique violation is a conflict, not an error.
//!
//! Each saga gets a savepoint, so one saga's conflict never undoes
//! another's events. Sagas are taken in id order, so two batches lock rows
//! in the same order and never deadlock each other.

use sqlx::{Connection as _, Transaction};

use super::dialect::{failed, Dialect};
use super::driver::Param;
use super::driver::Param::{Int, Int4, OptInt, OptText, Text};
use super::rows::{event_rows, from_i64, to_i64, EventRow};
use crate::saga::SCHEMA_VERSION;
use crate::store::rules::check_batch;
use crate::store::{Append, AppendOutcome, StoreError};

const LAST_SEQ: &str = include_str!("last_seq.sql");
const UPSERT_SAGA: &str = include_str!("upsert_saga.sql");

/// Appends every saga's events of `batch` in one transaction of `pool`.
pub(super) async fn append<DB: Dialect>(pool: &sqlx::Pool<DB>, batch: &[Append]) -> Result<Vec<AppendOutcome>, StoreError> {
    check_batch(batch)?;
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    // Lock order = saga id order (stable, so one saga's appends keep theirs).
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&index| batch[index].saga_id);
    let mut tx = pool.begin_with(DB::SQL.begin_write).await.map_err(failed::<DB>("starting an append transaction"))?;
    let mut outcomes = vec![AppendOutcome::Committed; batch.len()];
    for index in order {
        outcomes[index] = append_one(&mut tx, &batch[index]).await?;
    }
    tx.commit().await.map_err(failed::<DB>("committing an append"))?;
    Ok(outcomes)
}

/// One saga's share of the batch, inside its own savepoint.
async fn append_one<DB: Dialect>(tx: &mut Transaction<'static, DB>, append: &Append) -> Result<AppendOutcome, StoreError> {
    let saga_id = append.saga_id.to_string();
    let actual_seq = last_seq::<DB>(tx, DB::SQL.last_seq_locked, &saga_id).await?;
    if actual_seq != append.expected_seq {
        return Ok(AppendOutcome::Conflict { actual_seq });
    }
    let rows = event_rows(append)?;
    let last = to_i64(append.summary.last_seq, "last_seq")?;
    let mut savepoint = tx.begin().await.map_err(failed::<DB>("opening a savepoint"))?;
    match write::<DB>(&mut savepoint, &saga_id, &rows, append, last).await {
        Ok(()) => {
            savepoint.commit().await.map_err(failed::<DB>("releasing a savepoint"))?;
            Ok(AppendOutcome::Committed)
        }
        Err(error) if is_seq_taken(&error) => {
            savepoint.rollback().await.map_err(failed::<DB>("rolling back a savepoint"))?;
            Ok(AppendOutcome::Conflict { actual_seq: last_seq::<DB>(tx, LAST_SEQ, &saga_id).await? })
        }
        Err(error) => Err(failed::<DB>("appending events")(error)),
    }
}

/// A unique violation on (saga_id, seq): someone else appended that seq first.
fn is_seq_taken(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|error| error.is_unique_violation())
}

/// The saga's last seq as `sql` reads it (one row or none, `last_seq`).
async fn last_seq<DB: Dialect>(conn: &mut DB::Connection, sql: &str, saga_id: &str) -> Result<u64, StoreError> {
    let rows = DB::fetch(conn, sql, &[Text(saga_id)]).await.map_err(failed::<DB>("reading a saga's last seq"))?;
    let seq = rows.first().map(|row| row.get("last_seq")).transpose()?;
    from_i64(seq.unwrap_or(0), "seq")
}

/// The events' rows, then the projection row. Only the database can fail here.
async fn write<DB: Dialect>(
    conn: &mut DB::Connection,
    saga_id: &str,
    rows: &[EventRow],
    append: &Append,
    last_seq: i64,
) -> Result<(), sqlx::Error> {
    for row in rows {
        let event = [Text(saga_id), Int(row.seq), Text(row.event_type), Int4(i32::from(SCHEMA_VERSION)), Text(&row.data), Int(row.at_ms)];
        DB::fetch(conn, DB::SQL.insert_event, &event).await?;
    }
    // Inside the transaction: a crash here must leave neither the events nor the projection.
    crate::crash_point!("store-between-events-and-projection");
    let summary = &append.summary;
    let projection: [Param<'_>; 9] = [
        Text(saga_id),
        Text(&summary.saga_type),
        Int(i64::from(summary.version)),
        Text(summary.status.as_str()),
        OptText(summary.current_step.as_deref()),
        Int(summary.started_at_ms),
        Int(summary.updated_at_ms),
        Int(last_seq),
        OptInt(summary.deadline_ms),
    ];
    DB::fetch(conn, UPSERT_SAGA, &projection).await?;
    Ok(())
}
