//! `jetsaga migrate`: bring the database schema to this binary's
//! migrations and exit, so that `serve --no-migrate` can run as a role
//! without DDL rights. Refuses a schema newer than the binary, naming both
//! versions. Waits for the database like `serve` (a signal ends the wait).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::database::{self, Schema};
use super::serve::Signals;
use crate::secret::redact_url;

/// The flags of `jetsaga migrate`.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct MigrateArgs {
    /// postgres://… or sqlite://… (the backend follows the scheme).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://jetsaga.db")]
    pub(super) database_url: String,
    /// The TOML file of `serve`'s settings (only `database-url` and the log keys matter here).
    #[arg(long, env = "JETSAGA_CONFIG")]
    pub(super) config: Option<PathBuf>,
}

/// Applies the migrations; exit 0 once the schema is this binary's.
pub(super) fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("failed to start the async runtime")?;
    runtime.block_on(async {
        let mut signals = Signals::listen()?;
        let shown = redact_url(&args.database_url);
        let migrated = async {
            let store = database::connect(&args.database_url).await?;
            let before = store.schema_version().await.map(|version| version.at()).unwrap_or(0);
            let after = database::prepare(&store, Schema::Migrate).await?;
            anyhow::Ok((before, after))
        };
        let (before, after) = tokio::select! {
            migrated = migrated => migrated?,
            () = signals.recv() => anyhow::bail!("stopped before the database at {shown} was reached"),
        };
        tracing::info!(database = %shown, migration = after.at(), "migrations applied");
        match before == after.at() {
            true => println!("{shown}: the schema is at migration {} already; nothing to apply", after.at()),
            false => println!("{shown}: migrations {before} → {} applied", after.at()),
        }
        Ok(ExitCode::SUCCESS)
    })
}
