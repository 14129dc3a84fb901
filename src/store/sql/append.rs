//! The group commit: every saga of a batch appended in one transaction,
//! set-based: a constant number of statements per batch, not per saga.
//!
//! The batch is cut into waves, each naming a saga at most once (a saga's
//! second append of one batch goes in the second wave, and so on), so a
//! wave's statements can check and write all its sagas at once. Per wave
//! the dialect's [`Dialect::write_set`] writes every saga whose last seq is
//! still the expected one: the events of all of them in one multi-row
//! insert, their projection rows in one upsert that checks each expected
//! seq, the sagas taken in id order (so two batches lock rows in the same
//! order and never deadlock each other), and it returns the sagas it
//! wrote. Those it did not write conflicted: one more read tells their
//! actual seq. Their events were never inserted, so one saga's conflict
//! undoes nothing of another's.

use std::collections::{HashMap, HashSet};

use super::dialect::{failed, Dialect};
use super::rows::{encoded, from_i64, insert_events_statement, keys_statement, seqs_statement, to_i64, upsert_sagas_statement};
use crate::store::rules::check_batch;
use crate::store::{Append, AppendOutcome, StoreError, IDS_PER_STATEMENT_MAX};

/// One wave of a group commit as columns (one entry per saga, in saga id
/// order; one per event, sagas in that order and each saga's events in seq
/// order), as the statements bind them.
#[derive(Debug, Default)]
pub struct SetRows {
    /// The sagas, each once.
    pub saga_ids: Vec<String>,
    /// The seq each saga must still have (0: the saga is new).
    pub expected_seqs: Vec<i64>,
    /// The projection columns after the append.
    pub saga_types: Vec<String>,
    pub versions: Vec<i64>,
    pub statuses: Vec<String>,
    pub current_steps: Vec<Option<String>>,
    pub started_at_ms: Vec<i64>,
    pub updated_at_ms: Vec<i64>,
    pub last_seqs: Vec<i64>,
    pub deadlines_ms: Vec<Option<i64>>,
    /// The business key of a new saga (`None` for a saga already there:
    /// a key is written once, when the row is created).
    pub keys: Vec<Option<String>>,
    /// The events: their saga, seq, type, data (JSON text) and time.
    pub event_saga_ids: Vec<String>,
    pub event_seqs: Vec<i64>,
    pub event_types: Vec<String>,
    pub event_data: Vec<String>,
    pub event_at_ms: Vec<i64>,
}

impl SetRows {
    /// The rows of `wave` (indices into `batch`, a saga at most once),
    /// converted before the write so that the write can only fail in the
    /// database.
    fn of(batch: &[Append], wave: &[usize]) -> Result<Self, StoreError> {
        let mut order = wave.to_vec();
        order.sort_by_key(|&index| batch[index].saga_id);
        let mut rows = SetRows::default();
        for index in order {
            let append = &batch[index];
            let (saga_id, summary) = (append.saga_id.to_string(), &append.summary);
            for recorded in &append.events {
                let (event_type, data) = encoded(&recorded.event);
                rows.event_saga_ids.push(saga_id.clone());
                rows.event_seqs.push(to_i64(recorded.seq, "seq")?);
                rows.event_types.push(event_type.to_owned());
                rows.event_data.push(data);
                rows.event_at_ms.push(recorded.at_ms);
            }
            rows.expected_seqs.push(to_i64(append.expected_seq, "expected_seq")?);
            rows.saga_types.push(summary.saga_type.clone());
            rows.versions.push(i64::from(summary.version));
            rows.statuses.push(summary.status.as_str().to_owned());
            rows.current_steps.push(summary.current_step.clone());
            rows.started_at_ms.push(summary.started_at_ms);
            rows.updated_at_ms.push(summary.updated_at_ms);
            rows.last_seqs.push(to_i64(summary.last_seq, "last_seq")?);
            rows.deadlines_ms.push(summary.deadline_ms);
            rows.keys.push(summary.key.clone().filter(|_| append.expected_seq == 0));
            rows.saga_ids.push(saga_id);
        }
        Ok(rows)
    }
}

/// Appends every saga's events of `batch` in one transaction of `pool`.
pub(super) async fn append<DB: Dialect>(pool: &sqlx::Pool<DB>, batch: &[Append]) -> Result<Vec<AppendOutcome>, StoreError> {
    check_batch(batch)?;
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let waves = waves(batch);
    let rows = waves.iter().map(|wave| SetRows::of(batch, wave)).collect::<Result<Vec<_>, _>>()?;
    let mut tx = pool.begin_with(DB::SQL.begin_write).await.map_err(failed::<DB>("starting an append transaction"))?;
    let mut outcomes = vec![AppendOutcome::Committed; batch.len()];
    for (wave, rows) in waves.iter().zip(&rows) {
        let written: HashSet<String> = DB::write_set(&mut tx, rows).await?.into_iter().collect();
        let lost: Vec<&str> = rows.saga_ids.iter().map(String::as_str).filter(|id| !written.contains(*id)).collect();
        if lost.is_empty() {
            continue;
        }
        let actual = last_seqs::<DB>(&mut tx, &lost).await?;
        for &index in wave {
            let saga_id = batch[index].saga_id.to_string();
            if !written.contains(&saga_id) {
                outcomes[index] = AppendOutcome::Conflict { actual_seq: actual.get(&saga_id).copied().unwrap_or(0) };
            }
        }
    }
    // Inside the transaction: a crash here must leave neither the events nor the projection.
    crate::crash_point!("store-between-events-and-projection");
    tx.commit().await.map_err(failed::<DB>("committing an append"))?;
    Ok(outcomes)
}

/// The batch cut into waves of indices: wave `k` holds each saga's
/// `k`-th append, so no wave names a saga twice and each saga's appends
/// keep their order.
fn waves(batch: &[Append]) -> Vec<Vec<usize>> {
    let mut seen = HashMap::with_capacity(batch.len());
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (index, append) in batch.iter().enumerate() {
        let k: &mut usize = seen.entry(append.saga_id).or_default();
        if waves.len() <= *k {
            waves.push(Vec::new());
        }
        waves[*k].push(index);
        *k += 1;
    }
    waves
}

/// The last seq of each of `saga_ids` that has a projection row (by id text).
pub(super) async fn last_seqs<DB: Dialect>(conn: &mut DB::Connection, saga_ids: &[&str]) -> Result<HashMap<String, u64>, StoreError> {
    let mut seqs = HashMap::with_capacity(saga_ids.len());
    for chunk in saga_ids.chunks(IDS_PER_STATEMENT_MAX) {
        let statement = seqs_statement(chunk);
        let rows = DB::fetch(conn, statement.text(DB::ANONYMOUS_PARAMETERS), &statement.params)
            .await
            .map_err(failed::<DB>("reading sagas' last seqs"))?;
        for row in &rows {
            seqs.insert(row.get::<String>("saga_id")?, from_i64(row.get("last_seq")?, "seq")?);
        }
    }
    Ok(seqs)
}

/// The (saga type, key) pairs among the new sagas of `rows` that a saga
/// already holds. Under the single writer's lock nobody can take one
/// between this read and the write.
async fn taken_keys<DB: Dialect>(conn: &mut DB::Connection, rows: &SetRows) -> Result<HashSet<(String, String)>, StoreError> {
    let mut taken = HashSet::new();
    let keyed: Vec<usize> = (0..rows.keys.len()).filter(|&i| rows.keys[i].is_some()).collect();
    for chunk in keyed.chunks(IDS_PER_STATEMENT_MAX) {
        let statement = keys_statement(rows, chunk);
        let found = DB::fetch(conn, statement.text(DB::ANONYMOUS_PARAMETERS), &statement.params)
            .await
            .map_err(failed::<DB>("reading sagas' keys"))?;
        for row in &found {
            taken.insert((row.get::<String>("saga_type")?, row.get::<String>("key")?));
        }
    }
    Ok(taken)
}

/// Rows per multi-row `INSERT`: 9 parameters a row stays far below
/// SQLite's limit of 32,766 bound parameters a statement.
const ROWS_PER_INSERT: usize = 500;

/// [`Dialect::write_set`] for a database with one writer (SQLite): under
/// the write lock taken at `BEGIN`, read the sagas' last seqs, then write
/// those that match with one multi-row insert of their events and one
/// multi-row upsert of their projection rows (per [`ROWS_PER_INSERT`]).
pub(crate) async fn write_values<DB: Dialect>(conn: &mut DB::Connection, rows: &SetRows) -> Result<Vec<String>, StoreError> {
    let ids: Vec<&str> = rows.saga_ids.iter().map(String::as_str).collect();
    let actual = last_seqs::<DB>(conn, &ids).await?;
    let matches = |i: &usize| actual.get(ids[*i]).map_or(0, |&seq| seq) == rows.expected_seqs[*i] as u64;
    let mut taken = taken_keys::<DB>(conn, rows).await?;
    // A new saga whose (type, key) is taken, before or earlier in this wave, is not written: a conflict.
    let free = |i: &usize| match &rows.keys[*i] {
        Some(key) => taken.insert((rows.saga_types[*i].clone(), key.clone())),
        None => true,
    };
    let sagas: Vec<usize> = (0..ids.len()).filter(matches).filter(free).collect();
    let written: HashSet<&str> = sagas.iter().map(|&i| ids[i]).collect();
    let events: Vec<usize> = (0..rows.event_saga_ids.len()).filter(|&e| written.contains(rows.event_saga_ids[e].as_str())).collect();
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let statement = insert_events_statement(rows, chunk);
        DB::fetch(conn, statement.text(DB::ANONYMOUS_PARAMETERS), &statement.params).await.map_err(failed::<DB>("appending events"))?;
    }
    for chunk in sagas.chunks(ROWS_PER_INSERT) {
        let statement = upsert_sagas_statement(rows, chunk);
        DB::fetch(conn, statement.text(DB::ANONYMOUS_PARAMETERS), &statement.params)
            .await
            .map_err(failed::<DB>("updating the sagas projection"))?;
    }
    Ok(sagas.iter().map(|&i| rows.saga_ids[i].clone()).collect())
}
