//! What the SQL store needs of a sqlx driver, said once.
//!
//! Code generic over `sqlx::Database` must prove, for every value it binds
//! or reads, that the driver can encode or decode it, and that a connection
//! runs queries; Rust does not carry such bounds along with a trait, so
//! each generic function would restate a dozen lines of them. Instead
//! [`Driver`] states them once, in its blanket impl, and offers the two
//! things the store does with them: run a statement with [`Param`]s, and
//! read a column of a [`Row`] ([`Reads`]). Every sqlx backend with the usual
//! types is a `Driver`; nothing here knows SQLite or PostgreSQL.
//!
//! The traits are `pub` in a private module: they appear in the bounds of
//! the public [`SqlStore`](super::SqlStore) but cannot be named or
//! implemented outside the crate.

use std::future::Future;

use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row as _, Type};

use crate::store::{DatabaseError, StoreError};

/// One bound parameter, `$n` in the statement text (both dialects read
/// `$n`). Borrowed: nothing is copied to bind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param<'a> {
    /// `BIGINT` / `INTEGER`.
    Int(i64),
    /// `INT` (the events' `schema_version`).
    Int4(i32),
    /// A nullable `BIGINT`.
    OptInt(Option<i64>),
    /// `TEXT`.
    Text(&'a str),
    /// A nullable `TEXT`.
    OptText(Option<&'a str>),
    /// `BYTEA` / `BLOB`.
    Bytes(&'a [u8]),
}

/// A driver that can read a `T` out of a row by column name.
pub trait Reads<T>: Database {
    /// The column `name` of `row`.
    fn read(row: &Self::Row, name: &str) -> Result<T, sqlx::Error>;
}

impl<DB, T> Reads<T> for DB
where
    DB: Database,
    T: for<'r> Decode<'r, DB> + Type<DB>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
{
    fn read(row: &DB::Row, name: &str) -> Result<T, sqlx::Error> {
        row.try_get(name)
    }
}

/// A row of a [`Driver`], read column by column.
pub struct Row<DB: Database>(DB::Row);

impl<DB: Database> Row<DB> {
    /// The column `name`; a missing column or a type mismatch is a
    /// database error (never transient: the code and the schema disagree).
    pub(crate) fn get<T>(&self, name: &'static str) -> Result<T, StoreError>
    where
        DB: Reads<T>,
    {
        DB::read(&self.0, name).map_err(|error| StoreError::Database(DatabaseError::new(DB::NAME, "reading a row", false, error)))
    }
}

/// The sqlx driver as the SQL store uses it: every type it reads, every
/// type it binds, and connections that run queries and migrations.
pub trait Driver: Database + Reads<i64> + Reads<i32> + Reads<Option<i64>> + Reads<String> + Reads<Option<String>> + Reads<Vec<u8>> {
    /// Runs `sql` with `params` bound to `$1`, `$2`, … on `conn`; the rows
    /// it returns (none for a statement without `RETURNING`).
    fn fetch<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        params: &'c [Param<'c>],
    ) -> impl Future<Output = Result<Vec<Row<Self>>, sqlx::Error>> + Send + 'c;

    /// Applies the migrations of `migrator` not applied yet.
    fn migrate<'p>(pool: &'p Pool<Self>, migrator: &'p Migrator) -> impl Future<Output = Result<(), MigrateError>> + Send + 'p;
}

impl<DB> Driver for DB
where
    DB: Database + Reads<i64> + Reads<i32> + Reads<Option<i64>> + Reads<String> + Reads<Option<String>> + Reads<Vec<u8>>,
    DB::Connection: Migrate,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    async fn fetch<'c>(conn: &'c mut DB::Connection, sql: &'c str, params: &'c [Param<'c>]) -> Result<Vec<Row<DB>>, sqlx::Error> {
        let mut query = sqlx::query::<DB>(sql);
        for param in params {
            query = match *param {
                Param::Int(value) => query.bind(value),
                Param::Int4(value) => query.bind(value),
                Param::OptInt(value) => query.bind(value),
                Param::Text(value) => query.bind(value),
                Param::OptText(value) => query.bind(value),
                Param::Bytes(value) => query.bind(value),
            };
        }
        Ok(query.fetch_all(conn).await?.into_iter().map(Row).collect())
    }

    async fn migrate(pool: &Pool<DB>, migrator: &Migrator) -> Result<(), MigrateError> {
        migrator.run(pool).await
    }
}
