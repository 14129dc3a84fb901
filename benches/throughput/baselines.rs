//! The same-run baselines of the throughput bench, written against the
//! servers directly (no jetsaga code between the bench and them):
//! JetStream command→reply round trips, PostgreSQL one-row commits and
//! SQLite batch inserts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, stream};
use bytes::Bytes;
use futures_util::StreamExt as _;
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::sync::Semaphore;

/// Round trips of one run: how many completed per second and each one's latency.
pub struct RoundTrips {
    /// Completed round trips per second over the window.
    pub per_s: f64,
    /// Each one's latency, sorted.
    pub latencies: Vec<Duration>,
}

/// Command→reply round trips over JetStream, as jetsaga's messages travel:
/// a command published to a file-backed stream and acked by the broker, a
/// pull consumer (the participant) takes it, publishes a reply to a second
/// stream and acks the command once the reply is acked, a pull consumer
/// (the orchestrator) takes the reply and acks it. `in_flight` round
/// trips at once, for `window`.
pub async fn round_trips(nats_url: &str, tag: &str, in_flight: usize, window: Duration) -> RoundTrips {
    let client = async_nats::connect(nats_url).await.expect("NATS (run scripts/services)");
    let js = jetstream::new(client);
    let names = [format!("{tag}_RT_CMD"), format!("{tag}_RT_REPLY")];
    let subjects = [format!("{tag}.rt.cmd"), format!("{tag}.rt.reply")];
    for (name, subject) in names.iter().zip(&subjects) {
        let _ = js.delete_stream(name).await;
        js.create_stream(stream::Config { name: name.clone(), subjects: vec![subject.clone()], ..Default::default() })
            .await
            .expect("a baseline stream");
    }
    let consumer = |name: String| {
        let js = js.clone();
        async move {
            let stream = js.get_stream(&name).await.expect("the stream");
            let config = pull::Config {
                durable_name: Some("rt".into()),
                ack_policy: AckPolicy::Explicit,
                max_ack_pending: 10_000,
                ..Default::default()
            };
            let consumer: jetstream::consumer::PullConsumer = stream.create_consumer(config).await.expect("a consumer");
            consumer.messages().await.expect("messages")
        }
    };
    let (mut commands, mut replies) = (consumer(names[0].clone()).await, consumer(names[1].clone()).await);

    // The participant: reply to each command, ack the command once the reply is stored.
    let echo = {
        let (js, reply_subject) = (js.clone(), subjects[1].clone());
        tokio::spawn(async move {
            while let Some(Ok(message)) = commands.next().await {
                let stored = js.publish(reply_subject.clone(), message.payload.clone()).await.expect("publish a reply");
                tokio::spawn(async move {
                    let _ = stored.await;
                    let _ = message.ack().await;
                });
            }
        })
    };

    // The orchestrator: `in_flight` commands out, one more per reply.
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let room = Arc::new(Semaphore::new(in_flight));
    let sender = {
        let (js, subject, sent, room) = (js.clone(), subjects[0].clone(), sent.clone(), room.clone());
        tokio::spawn(async move {
            for n in 0u64.. {
                room.acquire().await.expect("room").forget();
                sent.lock().unwrap().insert(n, Instant::now());
                let stored = js.publish(subject.clone(), Bytes::from(n.to_be_bytes().to_vec())).await.expect("publish a command");
                tokio::spawn(async move { stored.await });
            }
        })
    };
    let warm_up = Duration::from_millis(500);
    let started = Instant::now();
    let (mut latencies, mut counted_from) = (Vec::new(), None);
    while started.elapsed() < warm_up + window {
        let Ok(Some(Ok(reply))) = tokio::time::timeout(Duration::from_secs(5), replies.next()).await else {
            panic!("no reply within 5 s: is the broker overloaded?");
        };
        let n = u64::from_be_bytes(reply.payload[..8].try_into().expect("8 bytes"));
        let sent_at = sent.lock().unwrap().remove(&n).expect("a command sent");
        let _ = reply.ack().await;
        room.add_permits(1);
        if started.elapsed() >= warm_up {
            counted_from.get_or_insert_with(Instant::now);
            latencies.push(sent_at.elapsed());
        }
    }
    let measured = counted_from.map_or(window, |from| from.elapsed());
    sender.abort();
    echo.abort();
    for name in &names {
        let _ = js.delete_stream(name).await;
    }
    latencies.sort_unstable();
    RoundTrips { per_s: latencies.len() as f64 / measured.as_secs_f64(), latencies }
}

/// `n` one-row commits to PostgreSQL, one after the other (each its own
/// transaction, so each waits for its WAL flush); their latencies, sorted.
pub async fn one_row_commits(database_url: &str, schema: &str, n: usize) -> Vec<Duration> {
    let options: sqlx::postgres::PgConnectOptions = database_url.parse().expect("DATABASE_URL");
    let mut db = options.connect().await.expect("PostgreSQL (run scripts/services)");
    let table = format!("\"{schema}\".raw_commits");
    sqlx::query(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, data JSONB NOT NULL)")).execute(&mut db).await.expect("a table");
    let mut latencies = Vec::with_capacity(n);
    for id in 0..n as i64 {
        let started = Instant::now();
        sqlx::query(&format!("INSERT INTO {table} (id, data) VALUES ($1, '{{\"step\": \"reserve_flight\"}}')"))
            .bind(id)
            .execute(&mut db)
            .await
            .expect("insert");
        latencies.push(started.elapsed());
    }
    db.close().await.expect("close");
    latencies.sort_unstable();
    latencies
}

/// Rows per second inserted into a SQLite file with the event store's
/// durability (WAL, `synchronous = FULL`), `batch` rows per transaction,
/// `rows` in all.
pub async fn sqlite_batch_inserts(dir: &std::path::Path, rows: usize, batch: usize) -> f64 {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(dir.join("raw.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut db = options.connect().await.expect("SQLite");
    sqlx::query("CREATE TABLE raw_rows (saga_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (saga_id, seq))")
        .execute(&mut db)
        .await
        .expect("a table");
    let started = Instant::now();
    for first in (0..rows).step_by(batch) {
        let values: Vec<String> = (first..(first + batch).min(rows))
            .map(|n| format!("('{:032x}', 1, '{{\"step\": \"reserve_flight\", \"attempt\": 1}}')", n))
            .collect();
        let mut tx = db.begin().await.expect("begin");
        sqlx::query(&format!("INSERT INTO raw_rows (saga_id, seq, data) VALUES {}", values.join(", ")))
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
    }
    let per_s = rows as f64 / started.elapsed().as_secs_f64();
    db.close().await.expect("close");
    per_s
}

/// Rows in `table` of the SQLite file at `path`.
pub async fn sqlite_rows(path: &std::path::Path, table: &str) -> i64 {
    let mut db = sqlx::sqlite::SqliteConnectOptions::new().filename(path).connect().await.expect("SQLite");
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut db).await.expect("count");
    db.close().await.expect("close");
    rows
}
