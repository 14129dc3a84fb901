//! The checker: judges a run from what the participants received (their
//! ledger), what the clients were told (the starts), what `SAGA_EVENTS`
//! holds and what the database holds, using none of jetsaga's code: events
//! are plain `serde_json::Value`s and SPEC §2 is restated here in a few
//! rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde_json::Value;

use super::definition::Definition;
use super::load::{Expect, Start};
use super::participants::{behaviour, Behaviour, Received};

/// How many examples of each violation the report shows.
const EXAMPLES_MAX: usize = 5;

/// Everything the checker judges.
#[derive(Debug, Default)]
pub struct Evidence {
    /// The saga definition.
    pub definition: Option<Definition>,
    /// The run's seed (participant behaviours follow from it).
    pub seed: u64,
    /// Every start, as its client saw it.
    pub starts: Vec<Start>,
    /// Every command the participants received.
    pub ledger: Vec<Received>,
    /// Every message of `SAGA_EVENTS`, as JSON.
    pub stream: Vec<Value>,
    /// Per saga id in the database: (events, highest seq).
    pub db_events: BTreeMap<String, (u64, u64)>,
    /// Per saga id in the database: its status in the `sagas` table.
    pub db_status: BTreeMap<String, String>,
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Sagas in `SAGA_EVENTS`.
    pub sagas: u64,
    /// Acknowledged starts.
    pub acknowledged: u64,
    /// Sagas by final status.
    pub statuses: BTreeMap<String, u64>,
    /// Counts by violation kind (zero counts included).
    pub violations: BTreeMap<&'static str, u64>,
    /// A few examples per violation kind.
    pub examples: BTreeMap<&'static str, Vec<String>>,
    /// Facts worth knowing that are not violations.
    pub notes: BTreeMap<&'static str, u64>,
}

/// The violation kinds, in report order.
pub const KINDS: &[&str] = &[
    "lost starts",
    "duplicate sagas",
    "hostile inputs accepted",
    "unexplained sagas",
    "double effects",
    "order violations",
    "outcome violations",
    "missing events",
    "duplicate events",
    "unfinished",
];

impl Verdict {
    fn flag(&mut self, kind: &'static str, count: u64, example: impl FnOnce() -> String) {
        if count == 0 {
            return;
        }
        *self.violations.entry(kind).or_insert(0) += count;
        let examples = self.examples.entry(kind).or_default();
        if examples.len() < EXAMPLES_MAX {
            examples.push(example());
        }
    }

    /// The number of violations of every kind together.
    pub fn total(&self) -> u64 {
        self.violations.values().sum()
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "  {:<40} {:>8}", "sagas", self.sagas);
        let _ = writeln!(out, "  {:<40} {:>8}", "acknowledged starts", self.acknowledged);
        for (status, n) in &self.statuses {
            let _ = writeln!(out, "  {:<40} {:>8}", format!("  ended {status}"), n);
        }
        for kind in KINDS {
            let _ = writeln!(out, "  {:<40} {:>8}", kind, self.violations.get(kind).copied().unwrap_or(0));
        }
        for (note, n) in &self.notes {
            let _ = writeln!(out, "  {:<40} {:>8}", format!("(note) {note}"), n);
        }
        for (kind, examples) in &self.examples {
            for example in examples {
                let _ = writeln!(out, "  ! {kind}: {example}");
            }
        }
        out
    }
}

/// One saga's events from the stream, by seq.
#[derive(Debug, Default)]
struct Log {
    events: BTreeMap<u64, Value>,
    copies: u64,
}

/// Judges the evidence.
pub fn check(evidence: &Evidence) -> Verdict {
    let mut verdict = Verdict::default();
    for kind in KINDS {
        verdict.violations.insert(kind, 0);
    }
    let Some(definition) = evidence.definition.as_ref() else {
        verdict.flag("outcome violations", 1, || "no definition".into());
        return verdict;
    };
    let logs = logs(&evidence.stream, &mut verdict);
    verdict.sagas = logs.len() as u64;
    let ledger = by_saga(&evidence.ledger);
    let mut by_marker: HashMap<String, Vec<String>> = HashMap::new();
    for (id, log) in &logs {
        if let Some(marker) = log.events.get(&1).and_then(|e| e.pointer("/data/input/marker")).and_then(Value::as_str) {
            by_marker.entry(marker.to_owned()).or_default().push(id.clone());
        } else if log.events.get(&1).and_then(|e| e.pointer("/data/omitted")).is_some() {
            *verdict.notes.entry("sagas whose start event was too large to publish").or_insert(0) += 1;
        } else {
            verdict.flag("unexplained sagas", 1, || format!("{id}: no marker in its first event"));
        }
    }
    check_starts(&evidence.starts, &by_marker, &mut verdict);
    check_events_against_db(&logs, evidence, &mut verdict);
    for (id, log) in &logs {
        let received = ledger.get(id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        check_saga(definition, evidence.seed, id, log, received, evidence.db_status.get(id), &mut verdict);
    }
    check_effects(&evidence.ledger, &mut verdict);
    verdict
}

fn logs(stream: &[Value], verdict: &mut Verdict) -> BTreeMap<String, Log> {
    let mut logs: BTreeMap<String, Log> = BTreeMap::new();
    for body in stream {
        let (Some(id), Some(seq)) = (body["saga_id"].as_str(), body["seq"].as_u64()) else {
            verdict.flag("unexplained sagas", 1, || format!("an event without saga_id or seq: {body}"));
            continue;
        };
        let log = logs.entry(id.to_owned()).or_default();
        if log.events.insert(seq, body.clone()).is_some() {
            log.copies += 1;
            verdict.flag("duplicate events", 1, || format!("{id}: seq {seq} twice in SAGA_EVENTS"));
        }
    }
    logs
}

fn by_saga(ledger: &[Received]) -> HashMap<&str, Vec<Received>> {
    let mut map: HashMap<&str, Vec<Received>> = HashMap::new();
    for r in ledger {
        map.entry(r.saga_id.as_str()).or_default().push(r.clone());
    }
    map
}

fn check_starts(starts: &[Start], by_marker: &HashMap<String, Vec<String>>, verdict: &mut Verdict) {
    let mut known = BTreeSet::new();
    for start in starts {
        known.insert(start.marker.as_str());
        let sagas = by_marker.get(&start.marker).map(Vec::as_slice).unwrap_or(&[]);
        let n = sagas.len() as u64;
        match start.expect {
            Expect::One => {
                verdict.acknowledged += 1;
                verdict.flag("lost starts", u64::from(n == 0), || format!("{} ({:?}) acknowledged, no saga", start.marker, start.via));
                verdict.flag("duplicate sagas", n.saturating_sub(1), || format!("{} ({:?}) made {sagas:?}", start.marker, start.via));
                if let (Some(id), [made]) = (&start.saga_id, sagas) {
                    verdict.flag("outcome violations", u64::from(id != made), || format!("{}: asked for {id}, made {made}", start.marker));
                }
            }
            Expect::AtMostOne => {
                *verdict.notes.entry("starts not acknowledged to their client").or_insert(0) += 1;
                verdict.flag("duplicate sagas", n.saturating_sub(1), || {
                    format!("{} ({:?}, not acknowledged) made {sagas:?}", start.marker, start.via)
                });
            }
            Expect::None => {
                let what = start.hostile.unwrap_or("hostile");
                verdict.flag("hostile inputs accepted", n, || format!("{what} ({}) made {sagas:?}", start.marker));
            }
        }
    }
    for (marker, sagas) in by_marker {
        verdict.flag("unexplained sagas", u64::from(!known.contains(marker.as_str())), || format!("{marker}: {sagas:?} from no start"));
    }
}

fn check_events_against_db(logs: &BTreeMap<String, Log>, evidence: &Evidence, verdict: &mut Verdict) {
    for (id, log) in logs {
        let highest = log.events.keys().next_back().copied().unwrap_or(0);
        let gaps = highest - log.events.len() as u64;
        verdict.flag("missing events", gaps, || format!("{id}: {gaps} gaps in seqs 1..{highest} in SAGA_EVENTS"));
    }
    for (id, (count, max_seq)) in &evidence.db_events {
        let in_stream = logs.get(id).map_or(0, |l| l.events.len() as u64);
        let missing = count.saturating_sub(in_stream);
        verdict.flag("missing events", missing, || {
            format!("{id}: the database has {count} events (up to seq {max_seq}), SAGA_EVENTS {in_stream}")
        });
        verdict.flag("missing events", u64::from(max_seq != count), || format!("{id}: the database's seqs have gaps"));
    }
}

/// What one (step, kind) went through, from the saga's events.
#[derive(Debug, Default, Clone)]
struct Track {
    sent: u64,
    succeeded: bool,
    failed: bool,
    attempts_sent: BTreeSet<u64>,
}

fn text<'a>(event: &'a Value, pointer: &str) -> &'a str {
    event.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn check_saga(
    definition: &Definition,
    seed: u64,
    id: &str,
    log: &Log,
    received: &[Received],
    db_status: Option<&String>,
    verdict: &mut Verdict,
) {
    let n = definition.steps.len();
    let pivot = definition.pivot();
    let mut actions = vec![Track::default(); n];
    let mut compensations = vec![Track::default(); n];
    let mut compensating = false;
    let mut last_compensated: Option<usize> = None;
    let mut end: Option<(String, Value)> = None;
    let mut sent_before_compensation: BTreeSet<(usize, u64)> = BTreeSet::new();
    let marker = log.events.get(&1).map(|e| text(e, "/data/input/marker").to_owned()).unwrap_or_default();
    if log.events.get(&1).map(|e| text(e, "/type")) != Some("saga_started") {
        verdict.flag("missing events", 1, || format!("{id}: the first event is not saga_started"));
    }
    for event in log.events.values() {
        let kind = text(event, "/data/kind");
        let step = definition.index(text(event, "/data/step"));
        match text(event, "/type") {
            "command_sent" => {
                let Some(i) = step else { continue };
                let attempt = event.pointer("/data/attempt").and_then(Value::as_u64).unwrap_or(0);
                if kind == "action" {
                    let ready = actions[..i].iter().all(|t| t.succeeded);
                    verdict.flag("order violations", u64::from(!ready), || {
                        format!("{id}: action {} sent before the steps before it succeeded", definition.steps[i].name)
                    });
                    verdict.flag("order violations", u64::from(compensating), || {
                        format!("{id}: action {} sent after compensation began", definition.steps[i].name)
                    });
                    actions[i].sent += 1;
                    actions[i].attempts_sent.insert(attempt);
                    if !compensating {
                        sent_before_compensation.insert((i, attempt));
                    }
                } else {
                    let needed = actions[i].sent > 0 && !actions[i].failed && definition.steps[i].compensation.is_some();
                    verdict.flag("order violations", u64::from(!compensating), || {
                        format!("{id}: compensation of {} before compensation began", definition.steps[i].name)
                    });
                    verdict.flag("order violations", u64::from(!needed), || {
                        format!("{id}: compensation of {}, whose action failed or never ran", definition.steps[i].name)
                    });
                    // Reverse order: every later step that needed undoing is undone.
                    let later_open = (i + 1..n).any(|k| {
                        actions[k].sent > 0
                            && !actions[k].failed
                            && definition.steps[k].compensation.is_some()
                            && !compensations[k].succeeded
                    });
                    verdict.flag("order violations", u64::from(later_open), || {
                        format!("{id}: compensation of {} before a later step was undone", definition.steps[i].name)
                    });
                    if let Some(last) = last_compensated {
                        verdict.flag("order violations", u64::from(i >= last), || {
                            format!("{id}: compensation of {} after that of step {last}", definition.steps[i].name)
                        });
                    }
                    compensations[i].sent += 1;
                    compensations[i].attempts_sent.insert(attempt);
                }
            }
            "step_succeeded" => {
                let Some(i) = step else { continue };
                if kind == "action" {
                    actions[i].succeeded = true;
                } else {
                    compensations[i].succeeded = true;
                    last_compensated = Some(i);
                }
            }
            "step_failed" => {
                if let Some(i) = step {
                    actions[i].failed = true;
                    verdict.flag("outcome violations", u64::from(i > pivot), || format!("{id}: step_failed after the pivot"));
                }
            }
            "compensation_started" => compensating = true,
            t @ ("saga_completed" | "saga_compensated" | "saga_stuck" | "saga_aborted") => {
                if let Some((previous, _)) = &end {
                    verdict.flag("order violations", 1, || format!("{id}: {t} after {previous}"));
                }
                end = Some((t.to_owned(), event.clone()));
            }
            _ => {}
        }
    }

    // The end SPEC §2 predicts from the replies the saga got.
    let first_open = actions.iter().position(|t| !t.succeeded);
    let budget = u64::from(definition.max_attempts);
    let predicted: String = match first_open {
        None => "saga_completed".into(),
        Some(i) if actions[i].failed => "saga_compensated".into(),
        Some(i) if i < pivot => {
            verdict.flag("outcome violations", u64::from(actions[i].sent > 0 && actions[i].sent < budget), || {
                format!("{id}: {} given up after {} of {budget} attempts", definition.steps[i].name, actions[i].sent)
            });
            "saga_compensated".into()
        }
        Some(i) => format!("saga_stuck:{}:action", definition.steps[i].name),
    };
    let Some((ended, event)) = end else {
        verdict.flag("unfinished", 1, || format!("{id}: no final event; database says {db_status:?}"));
        *verdict.statuses.entry("unfinished".into()).or_insert(0) += 1;
        return;
    };
    *verdict.statuses.entry(ended.trim_start_matches("saga_").into()).or_insert(0) += 1;
    let stuck_on = format!("saga_stuck:{}:{}", text(&event, "/data/step"), text(&event, "/data/kind"));
    let fits = match (ended.as_str(), predicted.as_str()) {
        ("saga_stuck", p) if p == stuck_on => true,
        // A compensation that ran out of attempts: stuck while compensating.
        ("saga_stuck", "saga_compensated") => text(&event, "/data/kind") == "compensation",
        (e, p) => e == p,
    };
    verdict.flag("outcome violations", u64::from(!fits), || {
        format!("{id}: ended {}, SPEC §2 predicts {predicted}", stuck_on_or(&ended, &stuck_on))
    });
    if ended == "saga_stuck" {
        let (step, kind) = (text(&event, "/data/step"), text(&event, "/data/kind"));
        let sent = definition.index(step).map_or(0, |i| if kind == "compensation" { compensations[i].sent } else { actions[i].sent });
        verdict.flag("outcome violations", u64::from(sent < budget), || {
            format!("{id}: stuck on {step} {kind} after {sent} of {budget} attempts")
        });
    }
    if ended == "saga_compensated" {
        for (i, step) in definition.steps.iter().enumerate() {
            let needed = actions[i].sent > 0 && !actions[i].failed && step.compensation.is_some();
            verdict.flag("outcome violations", u64::from(needed && !compensations[i].succeeded), || {
                format!("{id}: compensated without undoing {}", step.name)
            });
        }
    }
    match db_status.map(String::as_str) {
        Some("completed" | "compensated" | "stuck" | "aborted") => {}
        other => verdict.flag("unfinished", 1, || format!("{id}: the database says {other:?} after the quiet period")),
    }

    // What the participants saw must fit the events.
    for r in received {
        let Some(i) = definition.index(&r.step) else { continue };
        let expected_key = format!("{id}:{}:{}", r.step, r.kind);
        verdict.flag("double effects", u64::from(r.key != expected_key), || format!("{id}: key {} is not {expected_key}", r.key));
        let attempts = if r.kind == "action" { &actions[i].attempts_sent } else { &compensations[i].attempts_sent };
        verdict.flag("order violations", u64::from(!attempts.contains(&r.attempt)), || {
            format!("{id}: participant got {} {} attempt {} that no command_sent event decided", r.step, r.kind, r.attempt)
        });
        if r.kind == "action" && compensating && !sent_before_compensation.contains(&(i, r.attempt)) {
            verdict.flag("order violations", 1, || {
                format!("{id}: participant got action {} attempt {} decided after compensation began", r.step, r.attempt)
            });
        }
    }
    let applied = |step: &str, kind: &str| received.iter().any(|r| r.step == step && r.kind == kind && r.applied);
    let replied =
        |step: &str, kind: &str, status: &str| received.iter().any(|r| r.step == step && r.kind == kind && r.reply == Some(status));
    for (i, step) in definition.steps.iter().enumerate() {
        verdict.flag("outcome violations", u64::from(actions[i].succeeded && !replied(&step.name, "action", "ok")), || {
            format!("{id}: {} succeeded without an ok reply", step.name)
        });
        verdict.flag("outcome violations", u64::from(actions[i].failed && !replied(&step.name, "action", "failed")), || {
            format!("{id}: {} failed without a failed reply", step.name)
        });
        verdict.flag("outcome violations", u64::from(compensations[i].succeeded && !replied(&step.name, "compensation", "ok")), || {
            format!("{id}: {} undone without an ok reply", step.name)
        });
        let refused = i <= pivot && actions[i].sent > 0 && behaviour(seed, definition, &marker, i, "action") == Behaviour::Failed;
        verdict.flag("outcome violations", u64::from(refused && ended == "saga_completed"), || {
            format!("{id}: completed though {} refused every attempt", step.name)
        });
        match ended.as_str() {
            "saga_completed" => {
                verdict.flag("outcome violations", u64::from(!applied(&step.name, "action")), || {
                    format!("{id}: completed, but {} never took effect", step.name)
                });
                verdict.flag("outcome violations", u64::from(applied(&step.name, "compensation")), || {
                    format!("{id}: completed, but {} was undone", step.name)
                });
            }
            "saga_compensated" => {
                let left = applied(&step.name, "action") && step.compensation.is_some() && !applied(&step.name, "compensation");
                verdict.flag("outcome violations", u64::from(left), || {
                    format!("{id}: compensated, but the effect of {} was never undone", step.name)
                });
            }
            _ => {}
        }
    }
}

fn stuck_on_or(ended: &str, stuck_on: &str) -> String {
    if ended == "saga_stuck" {
        stuck_on.to_owned()
    } else {
        ended.to_owned()
    }
}

/// No effect twice per (marker, step, kind): a participant applies each
/// idempotency key once, so two effects mean two keys (two sagas for one
/// start, or a key that changed).
fn check_effects(ledger: &[Received], verdict: &mut Verdict) {
    let mut effects: BTreeMap<(&str, &str, &str), BTreeSet<&str>> = BTreeMap::new();
    for r in ledger.iter().filter(|r| r.applied && !r.marker.is_empty()) {
        effects.entry((r.marker.as_str(), r.step.as_str(), r.kind.as_str())).or_default().insert(r.key.as_str());
    }
    for ((marker, step, kind), keys) in effects {
        verdict.flag("double effects", keys.len() as u64 - 1, || format!("{marker}: {step} {kind} took effect under {keys:?}"));
    }
}
