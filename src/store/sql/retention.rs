//! Retention: finished sagas and poison older than a horizon are deleted
//! in bounded chunks. Each saga goes in one transaction (its events and its
//! projection row together, the row only if it is still finished), so a
//! crash never leaves half a saga.

use sqlx::Connection as _;

use super::dialect::{failed, Dialect};
use super::driver::Param::{Int, Text};
use crate::store::StoreError;

const FINISHED_BEFORE: &str = include_str!("finished_before.sql");
const DELETE_SAGA_EVENTS: &str = include_str!("delete_saga_events.sql");
const DELETE_SAGA: &str = include_str!("delete_saga.sql");
const FORGET_POISON: &str = include_str!("forget_poison.sql");

/// Deletes up to `limit` sagas finished before `before_ms`; how many went.
pub(super) async fn forget_finished<DB: Dialect>(pool: &sqlx::Pool<DB>, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
    let mut conn = pool.acquire().await.map_err(failed::<DB>("reading finished sagas"))?;
    let rows = DB::fetch(&mut conn, FINISHED_BEFORE, &[Int(before_ms), Int(i64::from(limit))])
        .await
        .map_err(failed::<DB>("reading finished sagas"))?;
    let ids: Vec<String> = rows.iter().map(|row| row.get("saga_id")).collect::<Result<_, _>>()?;
    let mut forgotten = 0;
    for saga_id in &ids {
        let mut tx = conn.begin_with(DB::SQL.begin_write).await.map_err(failed::<DB>("starting a retention transaction"))?;
        DB::fetch(&mut tx, DELETE_SAGA_EVENTS, &[Text(saga_id)]).await.map_err(failed::<DB>("deleting a finished saga's events"))?;
        DB::fetch(&mut tx, DELETE_SAGA, &[Text(saga_id)]).await.map_err(failed::<DB>("deleting a finished saga"))?;
        tx.commit().await.map_err(failed::<DB>("committing a retention transaction"))?;
        forgotten += 1;
    }
    Ok(forgotten)
}

/// Deletes up to `limit` poison records received before `before_ms`; how many went.
pub(super) async fn forget_poison<DB: Dialect>(pool: &sqlx::Pool<DB>, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
    let mut conn = pool.acquire().await.map_err(failed::<DB>("deleting old poison"))?;
    let params = [Int(before_ms), Int(i64::from(limit))];
    let gone = DB::fetch(&mut conn, FORGET_POISON, &params).await.map_err(failed::<DB>("deleting old poison"))?;
    Ok(gone.len() as u64)
}
