//! The ops API's JSON as text for people: the saga list and one saga's
//! header, step table and timeline (rendered by [`crate::cli::timeline`]
//! from the API's events, turned back into [`Recorded`]s).

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use serde_json::Value;

use crate::cli::timeline;
use crate::saga::{self, Recorded, SagaId};

/// Schema version of the events the API shows (its `data` is written by
/// `saga::encode` of this jetsaga).
const API_EVENT_SCHEMA: u16 = 1;

/// The list as an aligned table.
pub(super) fn list(sagas: &[Value]) -> String {
    if sagas.is_empty() {
        return "no sagas\n".to_owned();
    }
    let rows: Vec<Vec<String>> = sagas
        .iter()
        .map(|s| ["saga_id", "saga_type", "version", "status", "current_step", "started_at", "updated_at"].map(|k| text(&s[k])).to_vec())
        .collect();
    table(&["ID", "TYPE", "V", "STATUS", "STEP", "STARTED", "UPDATED"], &rows)
}

/// One saga: a header, its steps, then its timeline.
pub(super) fn show(id: SagaId, state: &Value, log: &[Recorded]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "saga     {id}");
    let _ = writeln!(out, "type     {} v{}", text(&state["saga_type"]), text(&state["version"]));
    let _ = writeln!(out, "status   {}", text(&state["status"]));
    let _ = writeln!(out, "reason   {}", text(&state["reason"]));
    let _ = writeln!(out, "at seq   {}", text(&state["seq"]));
    let _ = writeln!(out);
    let steps = state["steps"].as_array().map_or(&[][..], Vec::as_slice);
    let rows: Vec<Vec<String>> =
        steps.iter().map(|s| ["name", "status", "attempts", "compensation_attempts", "error"].map(|k| text(&s[k])).to_vec()).collect();
    out.push_str(&table(&["STEP", "STATUS", "ATTEMPTS", "COMPENSATIONS", "ERROR"], &rows));
    let _ = writeln!(out);
    out.push_str(&timeline::render_with_status(id, &text(&state["status"]), log));
    out
}

/// An event of the API (`{"seq", "type", "at", "data"}`, as in `GET
/// /sagas/{id}` and on the events stream) back as a [`Recorded`].
pub(super) fn recorded(event: &Value) -> Result<Recorded, String> {
    let seq = event["seq"].as_u64().ok_or_else(|| format!("event without a seq: {event}"))?;
    let event_type = event["type"].as_str().ok_or_else(|| format!("event {seq} without a type"))?;
    let at = event["at"].as_str().ok_or_else(|| format!("event {seq} without a time"))?;
    let at = humantime::parse_rfc3339(at).map_err(|e| format!("event {seq}: time {at:?}: {e}"))?;
    let at_ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let data = event.get("data").cloned().unwrap_or(Value::Null);
    let event = saga::decode(API_EVENT_SCHEMA, event_type, data).map_err(|e| format!("event {seq}: {e}"))?;
    Ok(Recorded { seq, at_ms, event })
}

/// A JSON value as a table cell: strings bare, null as "-".
pub(super) fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Left-aligned columns two spaces apart, no trailing blanks.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> =
        headers.iter().enumerate().map(|(i, h)| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(h.len())).collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_trim() {
        let rows =
            vec![vec!["a".to_owned(), "long value".to_owned(), String::new()], vec!["bbb".to_owned(), "x".to_owned(), "z".to_owned()]];
        assert_eq!(table(&["H1", "H2", "H3"], &rows), "H1   H2          H3\na    long value\nbbb  x           z\n");
    }

    #[test]
    fn api_events_become_recorded_events() {
        let event = serde_json::json!({"seq": 2, "type": "saga_compensated", "at": "2024-01-01T00:00:01.250Z", "data": {}});
        let r = recorded(&event).expect("decodes");
        assert_eq!((r.seq, r.at_ms, r.event), (2, 1_704_067_201_250, saga::SagaEvent::SagaCompensated {}));
        assert!(recorded(&serde_json::json!({"seq": 1, "type": "dance", "at": "2024-01-01T00:00:00Z", "data": {}})).is_err());
    }
}
