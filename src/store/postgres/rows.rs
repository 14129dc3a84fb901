//! Rows of the PostgreSQL store: events and sagas to and from their
//! columns, the `list` query, and the integer conversions between Rust's
//! unsigned seqs and PostgreSQL's signed `BIGINT`. Event data is JSONB on
//! disk but crosses the wire as text (`$n::jsonb` in, `data::text` out):
//! sqlx is built without its `json` feature.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::db;
use crate::saga::{decode, encode, DecodeError, Recorded, SagaId, Status};
use crate::store::{Append, ListFilter, SagaSummary, StoreError};

/// The `sagas` columns in the order [`summary_from_row`] reads them.
pub(super) const SUMMARY_COLUMNS: &str =
    "saga_id, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, deadline_ms";

/// The `events` columns [`recorded_from_row`] reads (for a query on `events e`).
pub(super) const EVENT_COLUMNS: &str = "e.seq, e.event_type, e.schema_version, e.data::text AS data, e.at_ms";

pub(super) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Database(format!("postgres: {what} {value} does not fit a 64-bit signed integer")))
}

pub(super) fn from_i64<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Database(format!("postgres: stored {what} {value} is out of range")))
}

pub(super) fn saga_id_from(text: &str) -> Result<SagaId, StoreError> {
    SagaId::parse(text).map_err(|error| StoreError::Database(format!("postgres: stored {error}")))
}

/// One event as its row, converted before the write so that the write
/// itself can only fail in the database.
pub(super) struct EventRow {
    pub(super) seq: i64,
    pub(super) event_type: &'static str,
    pub(super) data: String,
    pub(super) at_ms: i64,
}

pub(super) fn event_rows(append: &Append) -> Result<Vec<EventRow>, StoreError> {
    append
        .events
        .iter()
        .map(|recorded| {
            let (event_type, data) = encode(&recorded.event);
            Ok(EventRow { seq: to_i64(recorded.seq, "seq")?, event_type, data: data.to_string(), at_ms: recorded.at_ms })
        })
        .collect()
}

/// One column of a row; a missing column or a type mismatch is a database error.
pub(super) fn column<'r, T>(row: &'r PgRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(name).map_err(db("reading a row"))
}

pub(super) fn recorded_from_row(saga_id: SagaId, row: &PgRow) -> Result<Recorded, StoreError> {
    let seq = from_i64(column(row, "seq")?, "seq")?;
    let event_type: String = column(row, "event_type")?;
    let schema_version: i32 = column(row, "schema_version")?;
    let schema_version = from_i64(i64::from(schema_version), "schema_version")?;
    let data: String = column(row, "data")?;
    let decode_error = |source| StoreError::Decode { saga_id, seq, source };
    let data =
        serde_json::from_str(&data).map_err(|source| decode_error(DecodeError::Malformed { event_type: event_type.clone(), source }))?;
    let event = decode(schema_version, &event_type, data).map_err(decode_error)?;
    Ok(Recorded { seq, at_ms: column(row, "at_ms")?, event })
}

pub(super) fn summary_from_row(row: &PgRow) -> Result<SagaSummary, StoreError> {
    let saga_id: String = column(row, "saga_id")?;
    let status: String = column(row, "status")?;
    Ok(SagaSummary {
        saga_id: saga_id_from(&saga_id)?,
        saga_type: column(row, "saga_type")?,
        version: from_i64(column(row, "version")?, "version")?,
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Database(format!("postgres: saga {saga_id} has unknown status {status:?}")))?,
        current_step: column(row, "current_step")?,
        started_at_ms: column(row, "started_at_ms")?,
        updated_at_ms: column(row, "updated_at_ms")?,
        last_seq: from_i64(column(row, "last_seq")?, "last_seq")?,
        deadline_ms: column(row, "deadline_ms")?,
    })
}

/// `SELECT … WHERE <filter> AND saga_id > <cursor> ORDER BY saga_id LIMIT <fetch>`,
/// after `prefix` (`""`, or `"EXPLAIN "` to see the plan).
pub(super) fn list_query<'a>(prefix: &str, filter: &'a ListFilter, cursor: Option<SagaId>, fetch: i64) -> QueryBuilder<'a, Postgres> {
    let mut query = QueryBuilder::new(format!("{prefix}SELECT {SUMMARY_COLUMNS} FROM sagas WHERE TRUE"));
    crate::store::rules::push_list_filter(&mut query, filter, cursor, fetch);
    query
}
