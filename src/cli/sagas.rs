//! `jetsaga sagas start|list|show|retry|compensate|abort|tail`: the operator's
//! view, through the ops API (SPEC §4, §5) and, for `tail`, the events
//! stream on NATS.
//!
//! Exit codes: 0 on success, 1 on an API or connection error (the message
//! names the URL), 2 on a usage error (clap's own, and values it refuses:
//! a malformed saga id, an unknown status, a blank reason).

pub(super) mod client;
mod tail;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use clap::Args;
use serde::Serialize;

use self::client::{ClientError, OpsClient};
use crate::cli::terminal;
use crate::ops::api::{ListQuery, SagaDetail, SagaRow, StartSagaBody};
use crate::saga::{SagaId, Status};
use crate::secret::Secret;
use crate::store::PAGE_SIZE_MAX;

/// Most pages `list --all` follows before it stops (and says so).
pub(crate) const LIST_PAGES_MAX: u32 = 10_000;

pub(super) const EXIT_CODES: &str = "Exit status: 0 on success, 1 on an API or connection error, 2 on a usage error.";

/// How to reach the ops API: the flags of `jetsaga sagas` and `jetsaga poison`.
#[derive(Debug, Args)]
pub(super) struct ApiArgs {
    /// The ops API of `jetsaga serve`.
    #[arg(long, env = "JETSAGA_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// Bearer token: the operator token (`serve --ops-token`) for retry,
    /// compensate and abort; in strict mode, a read token for list and show.
    #[arg(long, env = "JETSAGA_OPS_TOKEN", hide_env_values = true, global = true, conflicts_with = "token_file")]
    token: Option<Secret>,
    /// File holding the bearer token (so it is not a flag `ps` shows).
    #[arg(long, env = "JETSAGA_OPS_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// PEM file of the CA to trust for an https:// URL (a private CA);
    /// without it, the public web PKI roots.
    #[arg(long, env = "JETSAGA_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// Print the API's JSON (for `tail`: each event's body, one per line).
    #[arg(long, global = true)]
    pub(super) json: bool,
}

impl ApiArgs {
    /// The client of the API these flags name.
    pub(super) fn client(&self) -> anyhow::Result<OpsClient> {
        let token = match &self.token_file {
            Some(path) => Some(Secret::from_file(path).map_err(|e| anyhow!("cannot read the token file {e}"))?),
            None => self.token.clone(),
        };
        OpsClient::new(&self.url, token, self.ca_file.as_deref())
    }
}

/// Arguments of `jetsaga sagas`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub(super) struct SagasArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    subcommand: SagasSubcommand,
}

#[derive(Debug, clap::Subcommand)]
enum SagasSubcommand {
    /// Start a saga (`POST /sagas`); prints its id and status. Starting
    /// again with the same --id is harmless: it names the existing saga.
    #[command(after_help = EXIT_CODES)]
    Start(StartArgs),
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
    Tail(Box<tail::TailArgs>),
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only these statuses (comma-separated): running, compensating, completed, compensated, stuck, aborted.
    #[arg(long, value_delimiter = ',', value_parser = parse_status)]
    status: Vec<Status>,
    /// Only sagas of this type.
    #[arg(long = "type", value_name = "TYPE")]
    saga_type: Option<String>,
    /// Only the saga with this business key (with --type: at most one).
    #[arg(long)]
    key: Option<String>,
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
struct StartArgs {
    /// The saga type (a definition's name).
    #[arg(value_name = "TYPE")]
    saga_type: String,
    /// The saga's input, JSON (`'{"card": "4242"}'`), passed to every command.
    #[arg(long, value_parser = parse_json, default_value = "null")]
    input: serde_json::Value,
    /// The saga's id (a UUID), for an idempotent start; the server picks one when omitted.
    #[arg(long, value_parser = parse_id)]
    id: Option<SagaId>,
    /// A business key: at most one saga per (type, key); a start whose key
    /// is taken returns that saga.
    #[arg(long)]
    key: Option<String>,
    /// The definition version to run; the server's highest loaded when omitted.
    #[arg(long)]
    version: Option<u32>,
    /// Wait this long ("30s") for the saga to end: exit 0 once completed,
    /// 3 on any other end (compensated, aborted, stuck), 4 when the wait
    /// passes with it still going.
    #[arg(long, value_parser = humantime::parse_duration)]
    wait: Option<Duration>,
}

/// `sagas start --wait`: the saga ended other than `completed`.
pub(crate) const EXIT_NOT_COMPLETED: u8 = 3;
/// `sagas start --wait`: the wait passed with the saga still going.
pub(crate) const EXIT_STILL_GOING: u8 = 4;

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

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
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
    let (api, json) = (&args.api, args.api.json);
    match args.subcommand {
        SagasSubcommand::Start(start_args) => start(&api.client()?, start_args, json),
        SagasSubcommand::List(list_args) => list(&api.client()?, list_args, json),
        SagasSubcommand::Show { id, at_seq } => show(&api.client()?, id, at_seq, json),
        SagasSubcommand::Retry(verb) => operate(&api.client()?, "retry", verb, json),
        SagasSubcommand::Compensate(verb) => operate(&api.client()?, "compensate", verb, json),
        SagasSubcommand::Abort(verb) => operate(&api.client()?, "abort", verb, json),
        SagasSubcommand::Tail(tail_args) => tail::run(*tail_args, json),
    }
}

fn list(client: &OpsClient, args: ListArgs, json: bool) -> anyhow::Result<ExitCode> {
    let statuses: Vec<&str> = args.status.iter().map(|s| s.as_str()).collect();
    let mut query = ListQuery {
        status: (!statuses.is_empty()).then(|| statuses.join(",")),
        saga_type: args.saga_type,
        key: args.key,
        stuck_for: args.stuck_for.map(|d| format!("{}ms", d.as_millis())),
        limit: args.limit,
        ..ListQuery::default()
    };
    let mut page = client.list(&query).map_err(explain)?;
    if !args.all {
        if json {
            print_json(&page)?;
        } else {
            print!("{}", terminal::escape_lines(&view::list(&page.sagas)));
            if page.next_cursor.is_some() {
                eprintln!("(more sagas: pass --all to follow every page)");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut all: Vec<SagaRow> = std::mem::take(&mut page.sagas);
    let mut pages = 1;
    while let Some(cursor) = page.next_cursor {
        if pages >= LIST_PAGES_MAX {
            eprintln!("(stopped after {LIST_PAGES_MAX} pages)");
            break;
        }
        query.cursor = Some(cursor.to_string());
        page = client.list(&query).map_err(explain)?;
        all.append(&mut page.sagas);
        pages += 1;
    }
    match json {
        true => print_json(&Combined { sagas: &all })?,
        false => print!("{}", terminal::escape_lines(&view::list(&all))),
    }
    Ok(ExitCode::SUCCESS)
}

/// What `list --all --json` prints: every page's sagas in one object.
#[derive(Serialize)]
struct Combined<'a> {
    sagas: &'a [SagaRow],
}

fn show(client: &OpsClient, id: SagaId, at_seq: Option<u64>, json: bool) -> anyhow::Result<ExitCode> {
    let then = at_seq.map(|seq| client.state_at_seq(id, seq)).transpose().map_err(explain)?;
    if let (true, Some(then)) = (json, &then) {
        print_json(then)?;
        return Ok(ExitCode::SUCCESS);
    }
    let detail = client.detail(id).map_err(explain)?;
    if json {
        print_json(&detail)?;
        return Ok(ExitCode::SUCCESS);
    }
    let SagaDetail { state: now, events, .. } = detail;
    let state = then.unwrap_or(now);
    let mut log = events.iter().map(view::recorded).collect::<Result<Vec<_>, _>>().map_err(|e| anyhow!("saga {id}: {e}"))?;
    log.retain(|r| r.seq <= state.seq);
    print!("{}", terminal::escape_lines(&view::show(id, &state, &log)));
    Ok(ExitCode::SUCCESS)
}

fn start(client: &OpsClient, args: StartArgs, json: bool) -> anyhow::Result<ExitCode> {
    let body = StartSagaBody {
        saga_type: args.saga_type.clone(),
        saga_id: args.id.map(|id| id.to_string()),
        input: args.input,
        key: args.key,
        version: args.version,
    };
    let wait = args.wait.map(|wait| format!("{}ms", wait.as_millis()));
    let (new, answer) = client.start(&body, wait.as_deref()).map_err(explain)?;
    match (json, new) {
        (true, _) => print_json(&answer)?,
        (false, true) => println!("started: saga {} ({}) is {}", answer.saga_id, terminal::escape(&args.saga_type), answer.status),
        (false, false) => println!("exists: saga {} ({}) is {}", answer.saga_id, terminal::escape(&args.saga_type), answer.status),
    }
    Ok(match (args.wait, answer.status) {
        (None, _) | (Some(_), Status::Completed) => ExitCode::SUCCESS,
        (Some(_), status) if status.is_terminal() || status == Status::Stuck => ExitCode::from(EXIT_NOT_COMPLETED),
        (Some(_), _) => ExitCode::from(EXIT_STILL_GOING),
    })
}

fn operate(client: &OpsClient, verb: &str, args: VerbArgs, json: bool) -> anyhow::Result<ExitCode> {
    let answer = client.operate(args.id, verb, &args.reason).map_err(explain)?;
    match json {
        true => print_json(&answer)?,
        false => println!("accepted: saga {} is now {}", args.id, answer.status),
    }
    Ok(ExitCode::SUCCESS)
}

/// An answer of the API as one line of JSON (`--json`).
pub(super) fn print_json(answer: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(answer).context("failed to write the answer as JSON")?);
    Ok(())
}

/// The error as the operator should read it: a 401 says how to pass the
/// token, a 403 which token is needed, a refused certificate how to trust it.
pub(super) fn explain(error: ClientError) -> anyhow::Error {
    match error.status() {
        Some(401) => anyhow!(
            "{error}\nhint: pass --token or --token-file (or set JETSAGA_OPS_TOKEN) to the ops token `jetsaga serve` was started with"
        ),
        Some(403) => anyhow!("{error}\nhint: this needs the operator token (--ops-token of serve), not the read-only token"),
        None if error.is_certificate() => {
            anyhow!("{error}\nhint: pass --ca-file (or set JETSAGA_CA_FILE) to the PEM of the CA that signed the server's certificate")
        }
        _ => error.into(),
    }
}
