//! Unit tests of the SQL store's own pieces: the `$n` numbering of the
//! statements built at run time, and how failures are sorted (transient
//! or not, with their source kept). What every backend must do is the
//! contract suite's (`tests/it/store_contract.rs`).

use std::error::Error as _;

use sqlx::{Postgres, Sqlite};

use super::dialect::{failed, Dialect};
use super::driver::Param::{Int, Text};
use super::rows::{count_statement, list_statement};
use crate::saga::{SagaId, Status};
use crate::store::{EventStore, ListFilter, SqliteStore, StoreError};

#[test]
fn built_statements_number_their_parameters_in_order() {
    let filter = ListFilter {
        statuses: vec![Status::Running, Status::Stuck],
        saga_type: Some("trip".into()),
        updated_before_ms: Some(5),
        ..ListFilter::default()
    };
    let list = list_statement(&filter, Some("0190"), 51);
    let conditions = " AND saga_id > $1 AND status IN ($2, $3) AND saga_type = $4 AND updated_at_ms <= $5 ORDER BY saga_id LIMIT $6";
    assert!(list.sql.ends_with(&format!("WHERE TRUE{conditions}")), "{}", list.sql);
    assert_eq!(list.params, [Text("0190"), Text("running"), Text("stuck"), Text("trip"), Int(5), Int(51)]);
    let count = count_statement(&[Status::Running, Status::Compensating]);
    assert!(count.sql.ends_with("WHERE status IN ($1, $2) GROUP BY status"), "{}", count.sql);
}

#[test]
fn dialects_sort_their_error_codes() {
    for code in ["08006", "40001", "40P01", "53300", "57P01"] {
        assert!(Postgres::is_transient_code(code), "{code}");
    }
    for code in ["23505", "42601", "42P01", "22P02"] {
        assert!(!Postgres::is_transient_code(code), "{code}");
    }
    // BUSY, BUSY_SNAPSHOT (extended), LOCKED, IOERR_WRITE (extended), FULL.
    for code in ["5", "517", "6", "778", "13"] {
        assert!(Sqlite::is_transient_code(code), "{code}");
    }
    // CONSTRAINT_UNIQUE, NOTADB, a code that is not a number.
    for code in ["2067", "26", "busy"] {
        assert!(!Sqlite::is_transient_code(code), "{code}");
    }
}

#[test]
fn a_failure_keeps_its_source_and_says_whether_it_may_pass() {
    let timed_out = failed::<Postgres>("loading a saga's events")(sqlx::Error::PoolTimedOut);
    assert!(timed_out.is_transient());
    assert!(timed_out.to_string().starts_with("event store: PostgreSQL: loading a saga's events: "), "{timed_out}");
    let source = timed_out.source().expect("the driver's error");
    assert!(matches!(source.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::PoolTimedOut)));
    assert!(timed_out.clone().is_transient(), "a clone shares the source");

    assert!(!failed::<Sqlite>("listing sagas")(sqlx::Error::PoolClosed).is_transient());
    assert!(!StoreError::invalid("a malformed batch").is_transient());
    assert!(!StoreError::corrupt("an unknown status").is_transient());
}

#[tokio::test]
async fn a_closed_store_fails_for_good() {
    let store = SqliteStore::open("sqlite::memory:").await.expect("an in-memory store");
    store.close().await;
    let error = store.load(SagaId::from_u128(1), None).await.expect_err("the pool is closed");
    match &error {
        StoreError::Database(failure) => assert_eq!((failure.context(), failure.is_transient()), ("loading a saga's events", false)),
        other => panic!("expected a database error, got {other:?}"),
    }
}
