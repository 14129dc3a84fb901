//! What truly differs between the SQL backends, and nothing else.
//!
//! A [`Dialect`] is a sqlx driver (`Sqlite`, `Postgres`) plus: how a
//! writer excludes other writers (SQLite's one write lock taken up front,
//! PostgreSQL's row locks), how a group commit writes a set of sagas at
//! once ([`Dialect::write_set`]: multi-row statements, or arrays), the
//! statements whose text differs (the relay's global order, the deadline
//! claim, recording a definition), the migrations, and which of the database's
//! error codes name a condition that passes. Connection options (SQLite's
//! pragmas, PostgreSQL's schema, pool sizes) differ too, but only in the
//! constructors, so they stay in `sqlite.rs` and `postgres.rs`.
//!
//! Every other statement is one text in `sql/*.sql` with `$n` parameters,
//! which both dialects read.

use std::future::Future;

use sqlx::migrate::{MigrateError, Migrator};

use super::append::SetRows;
use super::driver::Driver;
use crate::store::{DatabaseError, StoreError};

/// A SQL backend as [`SqlStore`](super::SqlStore) sees it. Implemented in
/// `sqlite.rs` and `postgres.rs`.
pub trait Dialect: Driver {
    /// The statements whose text differs: `statements!("<dialect>")`.
    const SQL: Statements;

    /// The migrations: `sqlx::migrate!("./migrations/<dialect>")`.
    const MIGRATOR: Migrator;

    /// Whether statements built at run time (multi-row inserts, `IN` lists)
    /// run with anonymous `?` placeholders rather than `$n`: sqlx's SQLite
    /// driver looks every named parameter up by a scan of the statement's
    /// parameter names, so a statement with thousands of `$n` took time
    /// quadratic in them (half the CPU of the embedded stack's profile,
    /// docs/benchmarks.md).
    const ANONYMOUS_PARAMETERS: bool;

    /// Whether the database's error `code` (PostgreSQL's SQLSTATE,
    /// SQLite's extended result code) names a condition that passes with
    /// time: a lost connection, contention, exhausted resources, a
    /// shutdown.
    fn is_transient_code(code: &str) -> bool;

    /// One wave of a group commit (`append.rs`), inside its transaction:
    /// writes every saga of `rows` whose last seq is still its expected
    /// one (its events and its projection row, which ends any deadline
    /// claim), nothing of the others, and returns the sagas written. Rows
    /// are taken in saga id order. A constant number of statements,
    /// whatever the number of sagas.
    fn write_set<'c>(
        conn: &'c mut Self::Connection,
        rows: &'c SetRows,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send + 'c;
}

/// The statements whose text differs between dialects, one `.sql` file
/// each in `src/store/sql/<dialect>/`, read by [`statements!`].
#[derive(Debug)]
pub struct Statements {
    /// `begin_write.sql`: opens an append's transaction. SQLite takes its
    /// one write lock up front (`BEGIN IMMEDIATE`); PostgreSQL begins
    /// plainly and locks rows as it goes.
    pub begin_write: &'static str,
    /// `committed_after.sql`: `$1` tx, `$2` position (the cursor), `$3`
    /// limit → the events after the cursor in global commit order (`tx`,
    /// `position`, `saga_id`, `saga_type` and the event columns), only
    /// where no event can still commit before them.
    pub committed_after: &'static str,
    /// `claim_due.sql`: `$1` now_ms, `$2` claimed until, `$3` limit →
    /// `(deadline_ms, saga_id)` of the due, unclaimed sagas it claimed; two
    /// concurrent claimers never get the same saga.
    pub claim_due: &'static str,
    /// `record_definition.sql`: `$1` name, `$2` version, `$3` content hash,
    /// `$4` source → a row when inserted, none when the (name, version) was
    /// on record; stamped with the database's own clock.
    pub record_definition: &'static str,
}

/// `statements!("sqlite")`: the [`Statements`] in `src/store/sql/sqlite/`
/// (a missing file is a compile error).
macro_rules! statements {
    ($dialect:literal) => {
        $crate::store::sql::Statements {
            begin_write: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/sql/", $dialect, "/begin_write.sql")),
            committed_after: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/sql/", $dialect, "/committed_after.sql")),
            claim_due: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/sql/", $dialect, "/claim_due.sql")),
            record_definition: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/sql/", $dialect, "/record_definition.sql")),
        }
    };
}
pub(crate) use statements;

/// Every sqlx failure becomes this, saying what the store was doing and
/// whether trying again may help. (A taken seq is caught before, as a
/// conflict.)
pub(crate) fn failed<DB: Dialect>(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| StoreError::Database(DatabaseError::new(DB::NAME, context, is_transient::<DB>(&error), error))
}

/// A migration failure: transient only where running a migration met a
/// transient database error; a changed or missing migration needs a person.
pub(crate) fn migration_failed<DB: Dialect>(error: MigrateError) -> StoreError {
    let transient = match &error {
        MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _) => is_transient::<DB>(error),
        _ => false,
    };
    StoreError::Database(DatabaseError::new(DB::NAME, "applying the migrations", transient, error))
}

/// The one judgement of what passes: lost IO, a pool with no free
/// connection in time, or a database error code the dialect calls
/// transient. A decode error, a bad statement, a closed pool do not pass.
fn is_transient<DB: Dialect>(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(error) => error.code().is_some_and(|code| DB::is_transient_code(&code)),
        _ => false,
    }
}
