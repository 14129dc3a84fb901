//! `cargo bench --bench list`: how `list` (the ops API's `GET /sagas`)
//! holds up at 1,000,000 sagas in PostgreSQL, against a 10,000-saga
//! baseline in the same run.
//!
//! Each size gets a fresh schema, filled in one `INSERT … SELECT …
//! generate_series` ([`fill`]: 90% completed, 5% compensated, 3% running,
//! 1% stuck, 1% aborted, four saga types). Every query runs through the
//! `EventStore` API [`REPEATS`] times; p50 and p99 are printed with the
//! ratio to the baseline. `EXPLAIN` of the statement `list` runs
//! (`store::bench::explain_list`) shows the plan of each; a `Seq Scan` on
//! `sagas` in a filtered query fails the run (it would mean a missing
//! index). The schemas are dropped at the end. `DATABASE_URL` defaults to
//! `postgres://postgres@127.0.0.1:5432/test`; `SIZE` (default 1,000,000; 20,000 under `cargo test --bench list`)
//! sets the large size, for a quick run.

use std::time::{Duration, Instant};

use jetsaga::saga::{SagaId, Status};
use jetsaga::store::{bench, EventStore, ListFilter, PostgresStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

/// Runs of each query per size.
const REPEATS: usize = 50;
/// The page size asked for (the API's default).
const PAGE: u32 = 50;
/// The baseline size.
const BASELINE: u64 = 10_000;
/// The large size, unless `SIZE` says otherwise.
const SIZE: u64 = 1_000_000;

/// One query of the benchmark.
struct Query {
    name: &'static str,
    filter: ListFilter,
    /// Whether a `Seq Scan` on `sagas` is a failure.
    filtered: bool,
    /// The cursor: the id of this row number (scaled to the size), if any.
    cursor_at: Option<f64>,
}

fn queries(now_ms: i64) -> Vec<Query> {
    let status = |statuses: Vec<Status>| ListFilter { statuses, ..ListFilter::default() };
    vec![
        Query { name: "first page, unfiltered", filter: ListFilter::default(), filtered: false, cursor_at: None },
        Query { name: "status=stuck", filter: status(vec![Status::Stuck]), filtered: true, cursor_at: None },
        Query {
            name: "saga_type=order&status=running",
            filter: ListFilter { saga_type: Some("order".into()), ..status(vec![Status::Running]) },
            filtered: true,
            cursor_at: None,
        },
        Query {
            name: "stuck_for (stuck, updated before)",
            filter: ListFilter { updated_before_ms: Some(now_ms), ..status(vec![Status::Stuck]) },
            filtered: true,
            cursor_at: None,
        },
        Query { name: "deep cursor (90% in)", filter: ListFilter::default(), filtered: false, cursor_at: Some(0.9) },
    ]
}

/// The id [`fill`] gives row `i`.
fn row_id(i: u64) -> SagaId {
    SagaId::parse(&format!("0190a5c4-0000-7000-8000-{i:012x}")).expect("a valid id")
}

struct Timings {
    p50: Duration,
    p99: Duration,
    rows: usize,
    plan: Vec<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn time_query(store: &PostgresStore, query: &Query, size: u64) -> Timings {
    let cursor = query.cursor_at.map(|at| row_id((size as f64 * at) as u64));
    let mut took = Vec::with_capacity(REPEATS);
    let mut rows = 0;
    for _ in 0..REPEATS {
        let started = Instant::now();
        let page = store.list(&query.filter, cursor, PAGE).await.expect("list");
        took.push(started.elapsed());
        rows = page.sagas.len();
    }
    took.sort();
    let plan = bench::explain_list(store, &query.filter, cursor, PAGE).await.expect("explain");
    Timings { p50: percentile(&took, 0.5), p99: percentile(&took, 0.99), rows, plan }
}

async fn time_counts(store: &PostgresStore) -> (Duration, Duration) {
    let mut took = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let started = Instant::now();
        store.count_by_status(&[Status::Running, Status::Compensating, Status::Stuck]).await.expect("count");
        took.push(started.elapsed());
    }
    took.sort();
    (percentile(&took, 0.5), percentile(&took, 0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The plan's access path on `sagas`: the first scan node, trimmed.
fn access(plan: &[String]) -> String {
    let scan = plan.iter().find(|line| line.contains("Scan")).map_or("?", String::as_str);
    let scan = scan.trim_start_matches([' ', '-', '>']);
    scan.split("  (").next().unwrap_or(scan).to_owned()
}

/// A connection of the benchmark's own, for what the store does not do:
/// fill a schema, drop it. In `schema` if given.
async fn connect(url: &str, schema: Option<&str>) -> PgConnection {
    let options: PgConnectOptions = url.parse().expect("DATABASE_URL is a postgres:// URL");
    let options = match schema {
        Some(schema) => options.options([("search_path", schema)]),
        None => options,
    };
    PgConnection::connect_with(&options).await.unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed (run scripts/services): {e}"))
}

/// Inserts `n` projection rows (no events) in one `INSERT … SELECT …
/// FROM generate_series`, then `ANALYZE`s. Row `i` has the id
/// `0190a5c4-0000-7000-8000-<i as 12 hex digits>` (ids ascend with `i`),
/// the type `["trip", "order", "refund", "signup"][i % 4]`, and by
/// `i % 100` the status mix 90% completed, 5% compensated, 3% running, 1%
/// stuck, 1% aborted; it started at `i * 10` ms and was last updated a
/// second later (a stuck saga an hour later).
async fn fill(conn: &mut PgConnection, n: u64) {
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
    .bind(i64::try_from(n).expect("a size that fits BIGINT"))
    .execute(&mut *conn)
    .await
    .expect("fill sagas");
    sqlx::query("ANALYZE sagas").execute(conn).await.expect("analyze sagas");
}

/// Drops `schema` and everything in it.
async fn drop_schema(url: &str, schema: &str) {
    let mut conn = connect(url, None).await;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&mut conn).await.expect("drop schema");
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    // The short version in the test profile (`cargo test --bench list`, CI).
    let default_size = if cfg!(debug_assertions) { BASELINE * 2 } else { SIZE };
    let size = std::env::var("SIZE").map_or(default_size, |size| size.parse().expect("SIZE is a number"));
    let now_ms = i64::MAX / 2;
    let queries = queries(now_ms);
    let mut results: Vec<Vec<Timings>> = Vec::new();
    let mut counts = Vec::new();
    let mut schemas = Vec::new();
    for (run, size) in [BASELINE, size].into_iter().enumerate() {
        let schema = format!("bench_list_{}_{run}", std::process::id());
        let store = PostgresStore::connect_schema(&url, &schema)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed (run scripts/services): {e}"));
        let started = Instant::now();
        fill(&mut connect(&url, Some(&schema)).await, size).await;
        println!("filled {size} sagas in {:.1} s", started.elapsed().as_secs_f64());
        let mut timings = Vec::new();
        for query in &queries {
            timings.push(time_query(&store, query, size).await);
        }
        counts.push(time_counts(&store).await);
        results.push(timings);
        schemas.push((store, schema));
    }
    println!();
    println!("{REPEATS} runs each, page of {PAGE}; times in ms");
    let (p50, p99, plan) = (format!("{size} p50"), format!("{size} p99"), format!("plan at {size}"));
    println!("{:<36} {:>9} {:>9} {:>10} {:>10} {:>9}  {plan}", "query", "10k p50", "10k p99", p50, p99, "p50 ratio");
    let mut seq_scans = Vec::new();
    for (i, query) in queries.iter().enumerate() {
        let (small, large) = (&results[0][i], &results[1][i]);
        let ratio = ms(large.p50) / ms(small.p50).max(1e-6);
        println!(
            "{:<36} {:>9.3} {:>9.3} {:>10.3} {:>10.3} {:>8.2}x  {} ({} rows)",
            query.name,
            ms(small.p50),
            ms(small.p99),
            ms(large.p50),
            ms(large.p99),
            ratio,
            access(&large.plan),
            large.rows
        );
        if query.filtered && large.plan.iter().any(|line| line.contains("Seq Scan on sagas")) {
            seq_scans.push((query.name, large.plan.join("\n")));
        }
    }
    let ((s50, s99), (l50, l99)) = (counts[0], counts[1]);
    println!(
        "{:<36} {:>9.3} {:>9.3} {:>10.3} {:>10.3} {:>8.2}x",
        "count_by_status (in-flight gauges)",
        ms(s50),
        ms(s99),
        ms(l50),
        ms(l99),
        ms(l50) / ms(s50).max(1e-6)
    );
    for (store, schema) in &schemas {
        store.close().await;
        drop_schema(&url, schema).await;
    }
    for (name, plan) in &seq_scans {
        eprintln!("\n{name} scans the whole table:\n{plan}");
    }
    assert!(seq_scans.is_empty(), "a filtered list query does a Seq Scan on sagas: an index is missing");
}
