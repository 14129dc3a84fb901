//! `jetsaga poison list|show`: the messages `serve` could not use, read
//! through the ops API (`GET /poison`, `GET /poison/{id}`) instead of
//! `psql`. Read-only; in strict mode it needs a read or operator token.
//! Exit codes as `jetsaga sagas`: 0, 1 on an API error, 2 on a usage error.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;

use super::sagas::{explain, print_json, ApiArgs, EXIT_CODES};
use super::terminal;
use crate::ops::api::{PoisonQuery, PoisonRow};
use crate::store::PAGE_SIZE_MAX;

/// Arguments of `jetsaga poison`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(super) struct PoisonArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    subcommand: PoisonSubcommand,
}

#[derive(Debug, clap::Subcommand)]
enum PoisonSubcommand {
    /// Poison records, oldest first, as a table (ID, RECEIVED, SUBJECT, BYTES, REASON).
    #[command(after_help = EXIT_CODES)]
    List {
        /// Only records after this id (the last id of the previous page).
        #[arg(long, value_name = "ID")]
        after: Option<i64>,
        /// Records per page (the API's default when omitted).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(PAGE_SIZE_MAX)))]
        limit: Option<u32>,
    },
    /// One poison record: subject, reason, and the payload kept.
    #[command(after_help = EXIT_CODES)]
    Show {
        /// The record's id (from `list`).
        id: i64,
    },
}

/// Runs one `jetsaga poison` subcommand.
pub(super) fn run(args: PoisonArgs) -> anyhow::Result<ExitCode> {
    let client = args.api.client()?;
    match args.subcommand {
        PoisonSubcommand::List { after, limit } => {
            let page = client.poison(&PoisonQuery { after, limit }).map_err(explain)?;
            match args.api.json {
                true => print_json(&page)?,
                false => {
                    print!("{}", terminal::escape_lines(&table(&page.poison)));
                    if let Some(after) = page.next_after {
                        eprintln!("(maybe more: pass --after {after})");
                    }
                }
            }
        }
        PoisonSubcommand::Show { id } => {
            let detail = client.poison_detail(id).map_err(explain)?;
            if args.api.json {
                print_json(&detail)?;
                return Ok(ExitCode::SUCCESS);
            }
            let row = &detail.poison;
            let mut text =
                format!("poison {}\nreceived: {}\nsubject:  {}\nreason:   {}\n", row.id, row.received_at, row.subject, row.reason);
            let _ = writeln!(text, "payload ({} bytes kept):\n{}", row.payload_bytes, detail.payload);
            print!("{}", terminal::escape_lines(&text));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The list as a table, one record a line.
fn table(rows: &[PoisonRow]) -> String {
    if rows.is_empty() {
        return "no poison messages\n".to_owned();
    }
    let width = rows.iter().map(|row| row.subject.len()).max().unwrap_or(0).max("SUBJECT".len());
    let mut text = format!("{:<6} {:<24} {:<width$} {:>6} REASON\n", "ID", "RECEIVED", "SUBJECT", "BYTES");
    for row in rows {
        let _ = writeln!(text, "{:<6} {:<24} {:<width$} {:>6} {}", row.id, row.received_at, row.subject, row.payload_bytes, row.reason);
    }
    text
}
