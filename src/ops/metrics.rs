//! `GET /metrics`: the Prometheus text exposition (format 0.0.4), written
//! by hand (a dozen families do not need a metrics crate).
//!
//! Engine counters and histograms come from [`Metrics`]; the in-flight
//! gauges are counted in the store at scrape time (`count_by_status` over
//! the status index, so they are right across several `serve` processes);
//! the relay's series come from [`crate::runtime::relay::RelayStatus`].

use std::fmt::{Display, Write as _};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::Ops;
use crate::runtime::metrics::{Histogram, StepKey};
use crate::saga::Status;
use crate::store::EventStore;

/// The statuses `jetsaga_sagas_in_flight` reports.
const IN_FLIGHT: [Status; 3] = [Status::Running, Status::Compensating, Status::Stuck];

/// The handler.
pub(super) async fn metrics<S: EventStore>(State(ops): State<Arc<Ops<S>>>) -> Response {
    let mut text = Text::default();
    counters(&mut text, &ops);
    families(&mut text, &ops);
    match ops.store.count_by_status(&IN_FLIGHT).await {
        Ok(counts) => in_flight(&mut text, &counts),
        Err(error) => tracing::warn!(%error, "in-flight gauges left out of this scrape"),
    }
    relay(&mut text, &ops);
    text.histogram(
        "jetsaga_store_append_duration_seconds",
        "Time the engine waits for one group commit (store.append).",
        &[(&[], &ops.metrics.append_seconds())],
    );
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text.0).into_response()
}

fn relay<S>(text: &mut Text, ops: &Ops<S>) {
    let relay = &ops.relay;
    text.header(
        "jetsaga_event_relay_lag_seconds",
        "Age of the oldest committed event not yet published to SAGA_EVENTS (0 when caught up).",
        "gauge",
    );
    text.sample("jetsaga_event_relay_lag_seconds", &[], relay.lag_ms(ops.clock.now_ms()) as f64 / 1000.0);
    text.header("jetsaga_event_relay_failing", "1 while the event relay's last try failed (store or broker trouble).", "gauge");
    text.sample("jetsaga_event_relay_failing", &[], f64::from(u8::from(relay.failing())));
    text.header("jetsaga_event_relay_published_total", "Events the relay published to SAGA_EVENTS (this process).", "counter");
    text.sample("jetsaga_event_relay_published_total", &[], relay.published() as f64);
    text.header(
        "jetsaga_event_relay_omitted_total",
        "Events too large for the broker, published as stubs (read them from the ops API).",
        "counter",
    );
    text.sample("jetsaga_event_relay_omitted_total", &[], relay.omitted() as f64);
}

fn counters<S>(text: &mut Text, ops: &Ops<S>) {
    let m = &ops.metrics;
    let counters = [
        ("jetsaga_poison_messages_total", "Inbound messages kept as poison.", &m.poison),
        ("jetsaga_inputs_ignored_total", "Inputs recorded as ignored (duplicate, late, forged replies).", &m.ignored),
        (
            "jetsaga_inputs_ignored_unrecorded_total",
            "Inputs ignored and not recorded: their saga's log already holds its cap of ignored inputs.",
            &m.ignored_unrecorded,
        ),
        ("jetsaga_commands_sent_total", "Commands published to participants.", &m.commands),
        ("jetsaga_group_commits_total", "Group commits of the engine.", &m.appends),
        ("jetsaga_deadlines_claimed_total", "Deadlines claimed in the store and fired by this process.", &m.deadlines_claimed),
        ("jetsaga_deadlines_stale_total", "Claimed deadlines that were no longer due.", &m.deadlines_stale),
        ("jetsaga_saga_cache_hits_total", "Saga loads the engine's saga cache answered.", &m.saga_cache_hits),
        (
            "jetsaga_saga_cache_misses_total",
            "Saga loads folded from the store (not cached, evicted, or a deadline or operator verb, which read the store).",
            &m.saga_cache_misses,
        ),
    ];
    for (name, help, value) in counters {
        text.header(name, help, "counter");
        text.sample(name, &[], value.load(Ordering::Relaxed));
    }
}

fn families<S>(text: &mut Text, ops: &Ops<S>) {
    let f = ops.metrics.families();
    let name = "jetsaga_sagas_started_total";
    text.header(name, "Sagas started (saga_started committed by this process).", "counter");
    for (saga_type, n) in &f.started {
        text.sample(name, &[("saga_type", saga_type)], n);
    }
    let name = "jetsaga_sagas_finished_total";
    text.header(name, "Sagas that reached a terminal status (completed, compensated, aborted) in this process.", "counter");
    for ((saga_type, status), n) in &f.finished {
        text.sample(name, &[("saga_type", saga_type), ("status", status)], n);
    }
    step_counter(text, "jetsaga_retries_total", "Retries scheduled (retry_scheduled).", &f.retries);
    step_counter(text, "jetsaga_timeouts_total", "Attempts that timed out without a reply (attempt_timed_out).", &f.timeouts);
    let series: Vec<(Vec<(&str, &str)>, &Histogram)> = f.step_seconds.iter().map(|(key, h)| (step_labels(key), h)).collect();
    let series: Vec<(&[(&str, &str)], &Histogram)> = series.iter().map(|(labels, h)| (labels.as_slice(), *h)).collect();
    text.histogram(
        "jetsaga_step_duration_seconds",
        "From a step's first command_sent (attempt 1, so retries included) to its conclusive reply (step_succeeded or step_failed), by event time.",
        &series,
    );
}

fn step_counter(text: &mut Text, name: &str, help: &str, series: &std::collections::BTreeMap<StepKey, u64>) {
    text.header(name, help, "counter");
    for (key, n) in series {
        text.sample(name, &step_labels(key), n);
    }
}

fn step_labels(key: &StepKey) -> Vec<(&str, &str)> {
    vec![("saga_type", key.0.as_str()), ("step", key.1.as_str()), ("kind", key.2)]
}

fn in_flight(text: &mut Text, counts: &[(Status, u64)]) {
    let name = "jetsaga_sagas_in_flight";
    text.header(name, "Sagas not finished, by status (counted in the store: all processes).", "gauge");
    for (status, n) in counts {
        text.sample(name, &[("status", status.as_str())], n);
    }
    let stuck = counts.iter().find(|(s, _)| *s == Status::Stuck).map_or(0, |(_, n)| *n);
    text.header("jetsaga_sagas_stuck", "Sagas waiting for an operator.", "gauge");
    text.sample("jetsaga_sagas_stuck", &[], stuck);
}

/// A text exposition being written.
#[derive(Debug, Default)]
pub(crate) struct Text(pub(crate) String);

impl Text {
    /// `# HELP` and `# TYPE` of one family.
    pub(crate) fn header(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// One sample line.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        write_labels(&mut self.0, labels, None);
        let _ = writeln!(self.0, " {value}");
    }

    /// A histogram family: per series, cumulative `_bucket`s up to `+Inf`,
    /// then `_sum` and `_count`.
    pub(crate) fn histogram(&mut self, name: &str, help: &str, series: &[(&[(&str, &str)], &Histogram)]) {
        self.header(name, help, "histogram");
        for (labels, h) in series {
            for (le, n) in h.cumulative() {
                let le = if le.is_infinite() { "+Inf".to_owned() } else { le.to_string() };
                let _ = write!(self.0, "{name}_bucket");
                write_labels(&mut self.0, labels, Some(&le));
                let _ = writeln!(self.0, " {n}");
            }
            self.sample(&format!("{name}_sum"), labels, h.sum());
            self.sample(&format!("{name}_count"), labels, h.count());
        }
    }
}

/// `{a="x",le="0.5"}`, or nothing when there are no labels.
fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
    for (i, (key, value)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{key}=\"{}\"", escape(value));
    }
    out.push('}');
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut text = Text::default();
        text.sample("m", &[("a", "x\"y\\z\nw"), ("b", "ok")], 3);
        assert_eq!(text.0, "m{a=\"x\\\"y\\\\z\\nw\",b=\"ok\"} 3\n");
    }

    #[test]
    fn a_sample_without_labels_has_no_braces_and_help_is_escaped() {
        let mut text = Text::default();
        text.header("m", "line\\one\ntwo", "gauge");
        text.sample("m", &[], 1.5);
        assert_eq!(text.0, "# HELP m line\\\\one\\ntwo\n# TYPE m gauge\nm 1.5\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_inf_sum_and_count() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        for v in [0.05, 0.5, 0.5, 7.0] {
            h.observe(v);
        }
        let mut text = Text::default();
        text.histogram("d", "Help.", &[(&[("step", "pay")], &h)]);
        assert_eq!(
            text.0,
            "# HELP d Help.\n# TYPE d histogram\n\
             d_bucket{step=\"pay\",le=\"0.1\"} 1\n\
             d_bucket{step=\"pay\",le=\"1\"} 3\n\
             d_bucket{step=\"pay\",le=\"+Inf\"} 4\n\
             d_sum{step=\"pay\"} 8.05\n\
             d_count{step=\"pay\"} 4\n"
        );
    }
}
