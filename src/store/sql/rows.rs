//! Rows of the SQL store: events and sagas to and from their columns, the
//! statements built at run time (`summary`, `list`, `count_by_status`),
//! and the conversions between Rust's unsigned seqs and SQL's signed 64-bit
//! integers. Conversions happen before a write, so a write can only fail
//! in the database.

use std::fmt::Write as _;
use std::sync::Arc;

use super::append::SetRows;
use super::driver::{Driver, Param, Row};
use crate::saga::{decode_text, encode, DecodeError, Recorded, SagaId, Status, SCHEMA_VERSION};
use crate::store::{ListFilter, SagaSummary, StoreError};

/// `SELECT` of the `sagas` columns [`summary_from`] reads, `WHERE TRUE`:
/// conditions follow as ` AND …`.
const SELECT_SAGAS: &str = include_str!("select_sagas.sql");
/// `SELECT` of the events of sagas `IN (`: the ids, `)` and the order follow.
const LOAD_LOGS: &str = include_str!("load_logs.sql");
/// The `ON CONFLICT` clause of the projection's multi-row upsert.
const UPSERT_SAGAS_ON_CONFLICT: &str = include_str!("upsert_sagas_on_conflict.sql");

/// A statement built at run time: text with `$n` placeholders (which both
/// dialects read), the same text with anonymous `?` placeholders (see
/// [`Statement::text`]), and its parameters in order.
#[derive(Debug)]
pub(crate) struct Statement<'a> {
    pub(crate) sql: String,
    anonymous: String,
    pub(crate) params: Vec<Param<'a>>,
}

impl<'a> Statement<'a> {
    fn new(sql: &str) -> Self {
        let sql = sql.trim_end().to_owned();
        Self { anonymous: sql.clone(), sql, params: Vec::new() }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self.anonymous.push_str(text);
        self
    }

    /// Appends the next placeholder, bound to `param`.
    fn bind(&mut self, param: Param<'a>) -> &mut Self {
        self.params.push(param);
        let _ = write!(self.sql, "${}", self.params.len());
        self.anonymous.push('?');
        self
    }

    /// The text to run: with `$n` placeholders, or with anonymous `?` ones
    /// where the dialect wants them ([`super::Dialect::ANONYMOUS_PARAMETERS`]).
    /// Placeholders are written in parameter order, so both mean the same.
    pub(crate) fn text(&self, anonymous: bool) -> &str {
        if anonymous {
            &self.anonymous
        } else {
            &self.sql
        }
    }

    /// Appends placeholders for `params`, separated by commas.
    fn bind_all(&mut self, params: impl Iterator<Item = Param<'a>>) -> &mut Self {
        for (index, param) in params.enumerate() {
            self.push(if index == 0 { "" } else { ", " }).bind(param);
        }
        self
    }
}

/// One saga's projection row.
pub(super) fn summary_statement(saga_id: &str) -> Statement<'_> {
    let mut statement = Statement::new(SELECT_SAGAS);
    statement.push(" AND saga_id = ").bind(Param::Text(saga_id));
    statement
}

/// `list`: the sagas matching `filter` after `cursor` (a saga id) in id
/// order, at most `fetch`. One text for every dialect, so their pages agree.
pub(crate) fn list_statement<'a>(filter: &'a ListFilter, cursor: Option<&'a str>, fetch: i64) -> Statement<'a> {
    let mut statement = Statement::new(SELECT_SAGAS);
    if let Some(cursor) = cursor {
        statement.push(" AND saga_id > ").bind(Param::Text(cursor));
    }
    if !filter.statuses.is_empty() {
        statement.push(" AND status IN (").bind_all(filter.statuses.iter().map(|status| Param::Text(status.as_str()))).push(")");
    }
    if let Some(saga_type) = &filter.saga_type {
        statement.push(" AND saga_type = ").bind(Param::Text(saga_type));
    }
    if let Some(key) = &filter.key {
        statement.push(" AND key = ").bind(Param::Text(key));
    }
    if let Some(ms) = filter.updated_before_ms {
        statement.push(" AND updated_at_ms <= ").bind(Param::Int(ms));
    }
    if let Some(ms) = filter.started_from_ms {
        statement.push(" AND started_at_ms >= ").bind(Param::Int(ms));
    }
    if let Some(ms) = filter.started_until_ms {
        statement.push(" AND started_at_ms < ").bind(Param::Int(ms));
    }
    statement.push(" ORDER BY saga_id LIMIT ").bind(Param::Int(fetch));
    statement
}

/// `count_by_status`: `(status, n)` rows for those of `statuses` that
/// have any sagas (at least one status).
pub(super) fn count_statement(statuses: &[Status]) -> Statement<'static> {
    let mut statement = Statement::new("SELECT status, COUNT(*) AS n FROM sagas WHERE status IN (");
    statement.bind_all(statuses.iter().map(|status| Param::Text(status.as_str()))).push(") GROUP BY status");
    statement
}

/// A seq or count on its way in; one past `i64::MAX` is the caller's bug.
pub(super) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::invalid(format!("{what} {value} does not fit a 64-bit signed integer")))
}

/// A stored number on its way out; out of range means the data is not
/// what this version wrote.
pub(super) fn from_i64<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::corrupt(format!("stored {what} {value} is out of range")))
}

/// A stored saga id.
pub(super) fn saga_id_from(text: &str) -> Result<SagaId, StoreError> {
    SagaId::parse(text).map_err(|error| StoreError::corrupt(format!("stored {error}")))
}

/// An event as its row's type and data (JSON text).
pub(super) fn encoded(event: &crate::saga::SagaEvent) -> (&'static str, String) {
    let (event_type, data) = encode(event);
    (event_type, data.to_string())
}

/// `(saga_id, last_seq)` of those of `saga_ids` that have a projection row.
pub(super) fn seqs_statement<'a>(saga_ids: &[&'a str]) -> Statement<'a> {
    let mut statement = Statement::new("SELECT saga_id, last_seq FROM sagas WHERE saga_id IN (");
    statement.bind_all(saga_ids.iter().map(|id| Param::Text(id))).push(")");
    statement
}

/// `(saga_type, key)` of the sagas holding one of the keys of the new
/// sagas at `indices` of `rows` (each of which has a key).
pub(super) fn keys_statement<'a>(rows: &'a SetRows, indices: &[usize]) -> Statement<'a> {
    let mut statement = Statement::new("SELECT saga_type, key FROM sagas WHERE FALSE");
    for &i in indices {
        statement.push(" OR (saga_type = ").bind(Param::Text(&rows.saga_types[i]));
        statement.push(" AND key = ").bind(Param::OptText(rows.keys[i].as_deref())).push(")");
    }
    statement
}

/// The whole logs of `saga_ids`, by saga, then seq.
pub(super) fn logs_statement<'a>(saga_ids: &[&'a str]) -> Statement<'a> {
    let mut statement = Statement::new(LOAD_LOGS);
    statement.bind_all(saga_ids.iter().map(|id| Param::Text(id))).push(") ORDER BY saga_id, seq");
    statement
}

/// One multi-row insert of the events at `indices` of `rows`.
pub(super) fn insert_events_statement<'a>(rows: &'a SetRows, indices: &[usize]) -> Statement<'a> {
    let mut statement = Statement::new("INSERT INTO events (saga_id, seq, event_type, schema_version, data, at_ms) VALUES ");
    for (n, &e) in indices.iter().enumerate() {
        statement.push(if n == 0 { "(" } else { ", (" });
        statement.bind_all(
            [
                Param::Text(&rows.event_saga_ids[e]),
                Param::Int(rows.event_seqs[e]),
                Param::Text(&rows.event_types[e]),
                Param::Int4(i32::from(SCHEMA_VERSION)),
                Param::Text(&rows.event_data[e]),
                Param::Int(rows.event_at_ms[e]),
            ]
            .into_iter(),
        );
        statement.push(")");
    }
    statement
}

/// One multi-row upsert of the projection rows at `indices` of `rows`; an
/// append ends any claim on the saga's deadline.
pub(super) fn upsert_sagas_statement<'a>(rows: &'a SetRows, indices: &[usize]) -> Statement<'a> {
    let mut statement = Statement::new(
        "INSERT INTO sagas (saga_id, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, deadline_ms, key, claimed_until_ms) VALUES ",
    );
    for (n, &i) in indices.iter().enumerate() {
        statement.push(if n == 0 { "(" } else { ", (" });
        statement.bind_all(
            [
                Param::Text(&rows.saga_ids[i]),
                Param::Text(&rows.saga_types[i]),
                Param::Int(rows.versions[i]),
                Param::Text(&rows.statuses[i]),
                Param::OptText(rows.current_steps[i].as_deref()),
                Param::Int(rows.started_at_ms[i]),
                Param::Int(rows.updated_at_ms[i]),
                Param::Int(rows.last_seqs[i]),
                Param::OptInt(rows.deadlines_ms[i]),
                Param::OptText(rows.keys[i].as_deref()),
            ]
            .into_iter(),
        );
        statement.push(", NULL)");
    }
    statement.push("\n").push(UPSERT_SAGAS_ON_CONFLICT);
    statement
}

/// An event from its columns `seq`, `event_type`, `schema_version`,
/// `data` (JSON text) and `at_ms`.
pub(super) fn recorded_from<DB: Driver>(saga_id: SagaId, row: &Row<DB>) -> Result<Recorded, StoreError> {
    let seq = from_i64(row.get("seq")?, "seq")?;
    let event_type: String = row.get("event_type")?;
    let schema_version = from_i64(i64::from(row.get::<i32>("schema_version")?), "schema_version")?;
    let data: String = row.get("data")?;
    let event = decode_text(schema_version, &event_type, &data).map_err(|source: DecodeError| StoreError::Decode {
        saga_id,
        seq,
        source: Arc::new(source),
    })?;
    Ok(Recorded { seq, at_ms: row.get("at_ms")?, event })
}

/// A projection row from the columns of [`SELECT_SAGAS`].
pub(super) fn summary_from<DB: Driver>(row: &Row<DB>) -> Result<SagaSummary, StoreError> {
    let saga_id: String = row.get("saga_id")?;
    let status: String = row.get("status")?;
    Ok(SagaSummary {
        saga_id: saga_id_from(&saga_id)?,
        saga_type: row.get("saga_type")?,
        version: from_i64(row.get("version")?, "version")?,
        status: Status::parse(&status).ok_or_else(|| StoreError::corrupt(format!("saga {saga_id} has unknown status {status:?}")))?,
        current_step: row.get("current_step")?,
        started_at_ms: row.get("started_at_ms")?,
        updated_at_ms: row.get("updated_at_ms")?,
        last_seq: from_i64(row.get("last_seq")?, "last_seq")?,
        deadline_ms: row.get("deadline_ms")?,
        key: row.get("key")?,
    })
}
