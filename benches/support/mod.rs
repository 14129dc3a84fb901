//! What the benchmarks share: the local servers, a schema and a stream
//! prefix of the run's own, and their removal afterwards.

use jetsaga::store::PostgresStore;

/// The allocator the `jetsaga` binary runs with (`src/main.rs`), so a
/// bench measures what `serve` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use jetsaga::transport::jetstream::{JetStreamConfig, NatsConnection};
use jetsaga::wire::Subjects;

/// An environment variable, or `default`.
pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The local servers, with the run's own schema and subject prefix `tag`.
pub struct Servers {
    /// `DATABASE_URL`, or the local test database.
    pub database_url: String,
    /// The event store in schema `tag`.
    pub store: PostgresStore,
    /// `NATS_URL` under the prefix `<tag>.saga` (unused by the PostgreSQL-only benches).
    #[allow(dead_code)]
    pub nats: JetStreamConfig,
    tag: String,
}

impl Servers {
    /// Connects to PostgreSQL (schema `tag`) and describes NATS (prefix `<tag>.saga`).
    pub async fn connect(tag: &str) -> Self {
        let database_url = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test");
        let store = PostgresStore::connect_schema(&database_url, tag).await.expect("PostgreSQL (run scripts/services)");
        let nats = JetStreamConfig {
            connection: NatsConnection::new(env("NATS_URL", "nats://127.0.0.1:4222")),
            prefix: Subjects::new(&format!("{tag}.saga")),
            ..JetStreamConfig::default()
        };
        Self { database_url, store, nats, tag: tag.to_owned() }
    }

    /// Closes the store and drops the run's schema.
    pub async fn drop_schema(self) {
        self.store.close().await;
        let drop = format!("SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.tag);
        let _ = std::process::Command::new("psql").args([self.database_url.as_str(), "-qc", &drop]).status();
    }
}
