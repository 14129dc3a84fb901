//! Reaching the database at start-up (`serve`, `migrate`) and bringing its
//! schema to this binary's migrations, or checking that it is there.
//!
//! A try that may pass (the server is down, refuses connections, does not
//! answer within [`DATABASE_CONNECT_TIMEOUT`]) is tried again after a pause
//! that doubles up to [`DATABASE_RETRY_MAX`], for as long as the caller
//! waits (a signal ends the wait: callers race this against one). A try
//! that can never pass fails at once: an unsupported scheme, a malformed
//! URL, refused credentials, an unknown database.

use std::time::Duration;

use anyhow::Context as _;

use crate::secret::redact_url;
use crate::store::{self, AnyStore, SchemaVersion};

/// First pause after a failed try; it doubles up to [`DATABASE_RETRY_MAX`].
const DATABASE_RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest pause between two tries.
const DATABASE_RETRY_MAX: Duration = Duration::from_secs(5);
/// How long one try may take (sqlx alone would wait 30 s).
const DATABASE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What start-up does with the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Schema {
    /// Apply the migrations not applied yet.
    Migrate,
    /// Never run DDL: fail unless the schema is exactly this binary's.
    Check,
}

/// The pause after a failed try that followed a pause of `delay`.
fn next_delay(delay: Duration) -> Duration {
    (delay * 2).min(DATABASE_RETRY_MAX)
}

/// Connects to `url` (schema left as it is), trying again while the
/// failure may pass.
pub(super) async fn connect(url: &str) -> anyhow::Result<AnyStore> {
    let shown = redact_url(url);
    let (mut attempt, mut delay) = (1_u32, DATABASE_RETRY_FIRST);
    loop {
        let error = match tokio::time::timeout(DATABASE_CONNECT_TIMEOUT, store::open_url_unmigrated(url)).await {
            Ok(Ok(store)) => return Ok(store),
            Ok(Err(error)) if !error.is_transient() => {
                return Err(error).with_context(|| format!("failed to open the event store at {shown} (this will not pass by retrying)"))
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no connection within {DATABASE_CONNECT_TIMEOUT:?}"),
        };
        tracing::warn!(database = %shown, attempt, retry_in = ?delay, %error, "database not reachable yet; retrying");
        tokio::time::sleep(delay).await;
        (attempt, delay) = (attempt + 1, next_delay(delay));
    }
}

/// Brings the schema of `store` to this binary's migrations, or checks it
/// is there ([`Schema`]); says where it is.
pub(super) async fn prepare(store: &AnyStore, schema: Schema) -> anyhow::Result<SchemaVersion> {
    if schema == Schema::Migrate {
        if let Err(error) = store.migrate().await {
            // sqlx refuses applied migrations it does not know: say which versions meet.
            if let Ok(version) = store.schema_version().await {
                check_not_newer(&version)?;
            }
            return Err(error).context("failed to apply the migrations");
        }
    }
    let version = store.schema_version().await.map_err(|error| {
        anyhow::anyhow!(
            "cannot read the database's applied migrations ({error}); with --no-migrate the schema must already exist: \
             run `jetsaga migrate` first (with a role that may change the schema)"
        )
    })?;
    check_not_newer(&version)?;
    let pending = version.pending();
    if !pending.is_empty() {
        anyhow::bail!(
            "the database schema is behind: it is at migration {}, this jetsaga (version {}) needs {} (missing: {}); \
             run `jetsaga migrate`",
            version.at(),
            env!("CARGO_PKG_VERSION"),
            version.latest_known(),
            list(&pending)
        );
    }
    Ok(version)
}

/// Refuses a schema with migrations this binary does not know.
fn check_not_newer(version: &SchemaVersion) -> anyhow::Result<()> {
    let unknown = version.unknown();
    if unknown.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the database schema is at migration {}, this jetsaga (version {}) knows up to {} (unknown: {}); \
         run a newer jetsaga or restore the database",
        version.at(),
        env!("CARGO_PKG_VERSION"),
        version.latest_known(),
        list(&unknown)
    )
}

fn list(versions: &[i64]) -> String {
    versions.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_its_cap() {
        let mut delay = DATABASE_RETRY_FIRST;
        let pauses: Vec<Duration> = (0..7)
            .map(|_| {
                let next = next_delay(delay);
                std::mem::replace(&mut delay, next)
            })
            .collect();
        assert_eq!(pauses.iter().map(Duration::as_millis).collect::<Vec<_>>(), [250, 500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn a_newer_schema_names_both_versions() {
        let version = SchemaVersion { applied: vec![1, 2, 3], known: vec![1, 2] };
        let error = check_not_newer(&version).expect_err("refused").to_string();
        let want = format!("the database schema is at migration 3, this jetsaga (version {}) knows up to 2", env!("CARGO_PKG_VERSION"));
        assert!(error.starts_with(&want), "{error}");
        assert!(check_not_newer(&SchemaVersion { applied: vec![1], known: vec![1, 2] }).is_ok());
    }
}
