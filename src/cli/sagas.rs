//! `jetsaga sagas list|show|retry|compensate|abort|tail`: the operator's
//! view, through the ops API (SPEC §4, §5) and, for `tail`, the events
//! stream on NATS.
//!
//! Exit codes: 0 on success, 1 on an API or connection error (the message
//! names the URL), 2 on a usage error (clap's own, and values it refuses:
//! a malformed saga id, an unknown status, a blank reason).

mod client;
mod tail;
mod view;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use self::client::{ApiError, ListQuery, OpsClient};
use crate::saga::{SagaId, Status};
use crate::store::PAGE_SIZE_MAX;

/// Most pages `list --all` follows before it stops (and says so).
pub(crate) const LIST_PAGES_MAX: u32 = 10_000;

const EXIT_CODES: &str = "Exit status: 0 on success, 1 on an API or connection error, 2 on a usage error.";

/// Arguments of `jetsaga sagas`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(super) struct SagasArgs {
    /// The ops API of `jetsaga serve`.
    #[arg(long, env = "JETSAGA_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// Bearer token for retry, compensate and abort (`serve --ops-token`).
    #[arg(long, env = "JETSAGA_OPS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the API's JSON (for `tail`: each event's body, one per line).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: SagasCommand,
}

#[derive(Debug, Subcommand)]
enum SagasCommand {
    /// List sagas, oldest first, as a table (ID, TYPE, V, STATUS, STEP, STARTED, UPDATED).
    #[command(after_help = EXIT_CODES)]
    List(ListArgs),
    /// One saga: its status, its steps, and its timeline.
    #[command(after_help = EXIT_CODES)]
    Show {
        /// The saga id (a UUID).
        #[arg(value_parser = parse_id)]
        id: SagaId,
        /// Show the saga as it was right after event number N.
        #[arg(long, value_name = "N")]
        at_seq: Option<u64>,
    },
    /// Grant a stuck saga a fresh attempt budget and go on.
    #[command(after_help = EXIT_CODES)]
    Retry(VerbArgs),
    /// Undo a saga: run the compensations of the steps done, in reverse order.
    #[command(after_help = EXIT_CODES)]
    Compensate(VerbArgs),
    /// Stop a saga where it is, compensating nothing.
    #[command(after_help = EXIT_CODES)]
    Abort(VerbArgs),
    /// Follow committed events live over NATS (new ones only) until Ctrl-C.
    #[command(after_help = EXIT_CODES)]
    Tail(tail::TailArgs),
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only these statuses (comma-separated): running, compensating, completed, compensated, stuck, aborted.
    #[arg(long, value_delimiter = ',', value_parser = parse_status)]
    status: Vec<Status>,
    /// Only sagas of this type.
    #[arg(long = "type", value_name = "TYPE")]
    saga_type: Option<String>,
    /// Only sagas stuck for at least this long ("30s", "5m").
    #[arg(long, value_parser = humantime::parse_duration)]
    stuck_for: Option<Duration>,
    /// Sagas per page (the API's default when omitted).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(PAGE_SIZE_MAX)))]
    limit: Option<u32>,
    /// Follow `next_cursor` through every page.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
struct VerbArgs {
    /// The saga id (a UUID).
    #[arg(value_parser = parse_id)]
    id: SagaId,
    /// Why: recorded in the saga's own log.
    #[arg(long, value_parser = parse_reason)]
    reason: String,
}

fn parse_id(text: &str) -> Result<SagaId, String> {
    SagaId::parse(text).map_err(|e| e.to_string())
}

fn parse_status(text: &str) -> Result<Status, String> {
    Status::parse(text).ok_or_else(|| "not one of running, compensating, completed, compensated, stuck, aborted".to_owned())
}

fn parse_reason(text: &str) -> Result<String, String> {
    match text.trim().is_empty() {
        true => Err("a reason must not be blank".to_owned()),
        false => Ok(text.to_owned()),
    }
}

/// Runs one `jetsaga sagas` subcommand.
pub(super) fn run(args: SagasArgs) -> anyhow::Result<ExitCode> {
    let client = || OpsClient::new(&args.url, args.token.clone());
    match args.command {
        SagasCommand::List(list_args) => list(&client(), list_args, args.json),
        SagasCommand::Show { id, at_seq } => show(&client(), id, at_seq, args.json),
        SagasCommand::Retry(verb) => operate(&client(), "retry", verb, args.json),
        SagasCommand::Compensate(verb) => operate(&client(), "compensate", verb, args.json),
        SagasCommand::Abort(verb) => operate(&client(), "abort", verb, args.json),
        SagasCommand::Tail(tail_args) => tail::run(tail_args, args.json),
    }
}

fn list(client: &OpsClient, args: ListArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut query = ListQuery {
        statuses: args.status.iter().map(Status::to_string).collect(),
        saga_type: args.saga_type,
        stuck_for_ms: args.stuck_for.map(|d| d.as_millis()),
        limit: args.limit,
        cursor: None,
    };
    let mut page = client.list(&query).map_err(explain)?;
    if !args.all {
        if json {
            println!("{page}");
        } else {
            print!("{}", view::list(sagas(&page)));
            if page["next_cursor"].is_string() {
                eprintln!("(more sagas: pass --all to follow every page)");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut all: Vec<Value> = sagas(&page).to_vec();
    let mut pages = 1;
    while let Some(cursor) = page["next_cursor"].as_str() {
        if pages >= LIST_PAGES_MAX {
            eprintln!("(stopped after {LIST_PAGES_MAX} pages)");
            break;
        }
        query.cursor = Some(cursor.to_owned());
        page = client.list(&query).map_err(explain)?;
        all.extend_from_slice(sagas(&page));
        pages += 1;
    }
    match json {
        true => println!("{}", json!({ "sagas": all })),
        false => print!("{}", view::list(&all)),
    }
    Ok(ExitCode::SUCCESS)
}

fn sagas(page: &Value) -> &[Value] {
    page["sagas"].as_array().map_or(&[], Vec::as_slice)
}

fn show(client: &OpsClient, id: SagaId, at_seq: Option<u64>, json: bool) -> anyhow::Result<ExitCode> {
    let state = at_seq.map(|seq| client.state_at_seq(id, seq)).transpose().map_err(explain)?;
    if let (true, Some(state)) = (json, &state) {
        println!("{state}");
        return Ok(ExitCode::SUCCESS);
    }
    let detail = client.detail(id).map_err(explain)?;
    if json {
        println!("{detail}");
        return Ok(ExitCode::SUCCESS);
    }
    let state = state.unwrap_or_else(|| detail.clone());
    let last_seq = state["seq"].as_u64().unwrap_or(u64::MAX);
    let events = detail["events"].as_array().map_or(&[][..], Vec::as_slice);
    let mut log = events.iter().map(view::recorded).collect::<Result<Vec<_>, _>>().map_err(|e| anyhow!("saga {id}: {e}"))?;
    log.retain(|r| r.seq <= last_seq);
    print!("{}", view::show(id, &state, &log));
    Ok(ExitCode::SUCCESS)
}

fn operate(client: &OpsClient, verb: &str, args: VerbArgs, json: bool) -> anyhow::Result<ExitCode> {
    let answer = client.operate(args.id, verb, &args.reason).map_err(explain)?;
    match json {
        true => println!("{answer}"),
        false => println!("accepted: saga {} is now {}", args.id, answer["status"].as_str().unwrap_or("unknown")),
    }
    Ok(ExitCode::SUCCESS)
}

/// The error as the operator should read it: a 401 says how to pass the token.
fn explain(error: ApiError) -> anyhow::Error {
    match error.status() {
        Some(401) => anyhow!("{error}\nhint: pass --token or set JETSAGA_OPS_TOKEN to the ops token `jetsaga serve` was started with"),
        _ => error.into(),
    }
}
