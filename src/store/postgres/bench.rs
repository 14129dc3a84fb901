//! Helpers for `benches/list.rs` only (hidden from the docs): fill the
//! `sagas` projection with a million rows in one statement, show the plan
//! of a `list` query, drop a schema. Not part of the store's contract.

use sqlx::Row as _;

use super::rows::list_query;
use super::{check_schema_name, db, PostgresStore};
use crate::saga::SagaId;
use crate::store::{ListFilter, StoreError};

impl PostgresStore {
    /// Inserts `n` projection rows (no events) in one `INSERT … SELECT …
    /// FROM generate_series`, then `ANALYZE`s. Row `i` has the id
    /// `0190a5c4-0000-7000-8000-<i as 12 hex digits>` (ids ascend with
    /// `i`), the type `["trip", "order", "refund", "signup"][i % 4]`, and by `i % 100` the
    /// status mix 90% completed, 5% compensated, 3% running, 1% stuck,
    /// 1% aborted; it started at `i * 10` ms and was last updated a
    /// second later (a stuck saga an hour later).
    #[doc(hidden)]
    pub async fn bench_fill(&self, n: u64) -> Result<(), StoreError> {
        let n = i64::try_from(n).map_err(|_| StoreError::Database("bench_fill: too many rows".into()))?;
        sqlx::query(
            "INSERT INTO sagas (saga_id, saga_type, version, status, current_step, started_at_ms, updated_at_ms, last_seq, deadline_ms) \
             SELECT '0190a5c4-0000-7000-8000-' || lpad(to_hex(i), 12, '0'), \
                    (ARRAY['trip', 'order', 'refund', 'signup'])[1 + i % 4], 1, \
                    CASE WHEN i % 100 < 90 THEN 'completed' WHEN i % 100 < 95 THEN 'compensated' \
                         WHEN i % 100 < 98 THEN 'running' WHEN i % 100 < 99 THEN 'stuck' ELSE 'aborted' END, \
                    CASE WHEN i % 100 BETWEEN 95 AND 98 THEN 'pay' END, \
                    i * 10, i * 10 + CASE WHEN i % 100 = 98 THEN 3600000 ELSE 1000 END, 6, \
                    CASE WHEN i % 100 BETWEEN 95 AND 97 THEN i * 10 + 30000 END \
             FROM generate_series(1::bigint, $1) AS i",
        )
        .bind(n)
        .execute(&self.pool)
        .await
        .map_err(db("filling sagas for a benchmark"))?;
        sqlx::query("ANALYZE sagas").execute(&self.pool).await.map_err(db("analyzing sagas"))?;
        Ok(())
    }

    /// The plan PostgreSQL picks for `list(filter, cursor, limit)`, one line per node.
    #[doc(hidden)]
    pub async fn explain_list(&self, filter: &ListFilter, cursor: Option<SagaId>, limit: u32) -> Result<Vec<String>, StoreError> {
        let rows = list_query("EXPLAIN ", filter, cursor, i64::from(limit) + 1)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(db("explaining a list query"))?;
        rows.iter().map(|row| row.try_get::<String, _>(0).map_err(db("reading a plan"))).collect()
    }

    /// Drops `schema` and everything in it.
    #[doc(hidden)]
    pub async fn drop_schema(&self, schema: &str) -> Result<(), StoreError> {
        check_schema_name(schema)?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&self.pool).await.map_err(db("dropping a schema"))?;
        Ok(())
    }
}
