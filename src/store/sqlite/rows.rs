//! Rows of the SQLite store: events and sagas to and from their columns,
//! the `list` query, and the integer conversions between Rust's unsigned
//! seqs and SQLite's signed 64-bit integers. Conversions happen before a
//! write, so a write can only fail in the database.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::db;
use crate::saga::{decode, encode, DecodeError, Recorded, SagaId, Status};
use crate::store::{Append, ListFilter, SagaSummary, StoreError};

/// The `sagas` columns in the order [`summary_from_row`] reads them.
pub(super) const SUMMARY_COLUMNS: &str =
    "saga_id, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, deadline_ms";

pub(super) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Database(format!("sqlite: {what} {value} does not fit a 64-bit signed integer")))
}

pub(super) fn from_i64<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Database(format!("sqlite: stored {what} {value} is out of range")))
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
pub(super) fn column<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(name).map_err(db("reading a row"))
}

pub(super) fn recorded_from_row(saga_id: SagaId, row: &SqliteRow) -> Result<Recorded, StoreError> {
    let seq = from_i64(column(row, "seq")?, "seq")?;
    let event_type: String = column(row, "event_type")?;
    let schema_version = from_i64(column(row, "schema_version")?, "schema_version")?;
    let data: String = column(row, "data")?;
    let decode_error = |source| StoreError::Decode { saga_id, seq, source };
    let data =
        serde_json::from_str(&data).map_err(|source| decode_error(DecodeError::Malformed { event_type: event_type.clone(), source }))?;
    let event = decode(schema_version, &event_type, data).map_err(decode_error)?;
    Ok(Recorded { seq, at_ms: column(row, "at_ms")?, event })
}

pub(super) fn summary_from_row(row: &SqliteRow) -> Result<SagaSummary, StoreError> {
    let saga_id: String = column(row, "saga_id")?;
    let status: String = column(row, "status")?;
    Ok(SagaSummary {
        saga_id: SagaId::parse(&saga_id).map_err(|error| StoreError::Database(format!("sqlite: stored {error}")))?,
        saga_type: column(row, "saga_type")?,
        version: from_i64(column(row, "version")?, "version")?,
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Database(format!("sqlite: saga {saga_id} has unknown status {status:?}")))?,
        current_step: column(row, "current_step")?,
        started_at_ms: column(row, "started_at_ms")?,
        updated_at_ms: column(row, "updated_at_ms")?,
        last_seq: from_i64(column(row, "last_seq")?, "last_seq")?,
        deadline_ms: column(row, "deadline_ms")?,
    })
}

/// `SELECT … WHERE <filter> AND saga_id > <cursor> ORDER BY saga_id LIMIT <fetch>`.
pub(super) fn list_query<'a>(filter: &'a ListFilter, cursor: Option<SagaId>, fetch: i64) -> QueryBuilder<'a, Sqlite> {
    let mut query = QueryBuilder::new(format!("SELECT {SUMMARY_COLUMNS} FROM sagas WHERE 1 = 1"));
    crate::store::rules::push_list_filter(&mut query, filter, cursor, fetch);
    query
}
