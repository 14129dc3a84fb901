//! `jetsaga sagas tail`: committed events as they happen, read from the
//! events stream (`<prefix>.event.<type>.<id>`) through an ephemeral
//! consumer that starts at the next event. One line per event, or each
//! event's body as a JSON line; Ctrl-C ends it with status 0.

use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use clap::Args;
use serde_json::Value;

use super::view;
use crate::cli::{timeline, NatsArgs};
use crate::saga::SagaId;
use crate::transport::jetstream::{JetStreamConfig, JetStreamTransport};
use crate::wire::EventBody;

/// Tries to reach NATS before giving up (a tail is interactive: fail fast).
const CONNECT_ATTEMPTS_MAX: u32 = 2;

/// Arguments of `jetsaga sagas tail`.
#[derive(Debug, Args)]
pub(super) struct TailArgs {
    /// Only events of sagas of this type.
    #[arg(long = "type", value_name = "TYPE")]
    saga_type: Option<String>,
    /// Only events of this saga.
    #[arg(long, value_name = "ID", value_parser = super::parse_id)]
    saga: Option<SagaId>,
    #[command(flatten)]
    nats: NatsArgs,
}

/// Follows events until Ctrl-C.
pub(super) fn run(args: TailArgs, json: bool) -> anyhow::Result<ExitCode> {
    let filter = format!(
        "{}.event.{}.{}",
        args.nats.subject_prefix,
        args.saga_type.as_deref().unwrap_or("*"),
        args.saga.map_or_else(|| "*".to_owned(), |id| id.to_string())
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("failed to start the async runtime")?;
    runtime.block_on(follow(args, filter, json))?;
    Ok(ExitCode::SUCCESS)
}

async fn follow(args: TailArgs, filter: String, json: bool) -> anyhow::Result<()> {
    let subject_prefix = &args.nats.subject_prefix;
    let config = JetStreamConfig { connect_attempts_max: CONNECT_ATTEMPTS_MAX, ..args.nats.jetstream()? };
    let nats_url = config.connection.redacted_url();
    let transport = JetStreamTransport::attach(config).await.with_context(|| format!("cannot reach NATS at {nats_url}"))?;
    let mut events = transport
        .follow_events(&filter)
        .await
        .with_context(|| format!("cannot follow events at {nats_url} (is `jetsaga serve` running with prefix {subject_prefix:?}?)"))?;
    eprintln!("following {filter} on {nats_url} (Ctrl-C to stop)");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            body = events.recv() => match body {
                Some(body) => println!("{}", crate::cli::terminal::escape(&line(&body, json))),
                None => return Err(anyhow!("the connection to NATS at {nats_url} ended")),
            },
        }
    }
}

/// One event as a line: time, saga id, event type, step/kind/attempt and
/// what happened (or the body as compact JSON). A body that is not an
/// event is shown as it came.
fn line(body: &[u8], json: bool) -> String {
    let as_it_came = || String::from_utf8_lossy(body).into_owned();
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return as_it_came();
    };
    if json {
        return value.to_string();
    }
    let Ok(EventBody { saga_id, event, .. }) = serde_json::from_value::<EventBody>(value) else {
        return as_it_came();
    };
    let (at, event_type) = (&event.at, &event.event_type);
    let what = match view::recorded(&event) {
        Ok(recorded) => {
            let row = timeline::rows(&[recorded]).remove(0);
            let step = [row.step, row.kind, row.attempt].into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join("/");
            match step.is_empty() {
                true => row.outcome,
                false => format!("{step}  {}", row.outcome),
            }
        }
        Err(error) => format!("({error})"),
    };
    format!("{at}  {saga_id}  {event_type:<20}  {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_time_saga_type_and_step() {
        let body = br#"{"saga_id": "0190a5c4-0000-7000-8000-000000000001", "saga_type": "trip", "seq": 2, "type": "command_sent",
            "at": "2024-01-01T00:00:00.000Z", "data": {"step": "flight", "kind": "action", "attempt": 1, "deadline_ms": 5}}"#;
        assert_eq!(
            line(body, false),
            "2024-01-01T00:00:00.000Z  0190a5c4-0000-7000-8000-000000000001  command_sent          flight/action/1  sent"
        );
        assert!(line(body, true).starts_with(r#"{"at":"2024-01-01T00:00:00.000Z""#), "{}", line(body, true));
    }
}
