//! The ops API's answers as text for people: the saga list and one saga's
//! header, step table and timeline (rendered by [`crate::cli::timeline`]
//! from the API's events, turned back into [`Recorded`]s).

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use crate::cli::{terminal, timeline};
use crate::ops::api::{EventEntry, SagaRow, SagaStateBody};
use crate::saga::{self, Recorded, SagaId};

/// Schema version of the events the API shows (its `data` is written by
/// `saga::encode` of this jetsaga).
const API_EVENT_SCHEMA: u16 = 1;

/// The list as an aligned table.
pub(super) fn list(sagas: &[SagaRow]) -> String {
    if sagas.is_empty() {
        return "no sagas\n".to_owned();
    }
    let rows: Vec<Vec<String>> = sagas
        .iter()
        .map(|s| {
            let (id, version, status) = (s.saga_id.to_string(), s.version.to_string(), s.status.to_string());
            vec![id, s.saga_type.clone(), version, status, or_dash(s.current_step.as_deref()), s.started_at.clone(), s.updated_at.clone()]
        })
        .collect();
    table(&["ID", "TYPE", "V", "STATUS", "STEP", "STARTED", "UPDATED"], &rows)
}

/// One saga: a header, its steps, then its timeline.
pub(super) fn show(id: SagaId, state: &SagaStateBody, log: &[Recorded]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "saga     {id}");
    let _ = writeln!(out, "type     {} v{}", state.saga_type, state.version);
    let _ = writeln!(out, "status   {}", state.status);
    let _ = writeln!(out, "reason   {}", terminal::escape(&or_dash(state.reason.as_deref())));
    let _ = writeln!(out, "at seq   {}", state.seq);
    let _ = writeln!(out);
    let rows: Vec<Vec<String>> = state
        .steps
        .iter()
        .map(|s| {
            let (attempts, compensations) = (s.attempts.to_string(), s.compensation_attempts.to_string());
            vec![s.name.clone(), s.status.to_string(), attempts, compensations, or_dash(s.error.as_deref())]
        })
        .collect();
    out.push_str(&table(&["STEP", "STATUS", "ATTEMPTS", "COMPENSATIONS", "ERROR"], &rows));
    let _ = writeln!(out);
    out.push_str(&timeline::render_with_status(id, state.status.as_str(), log));
    out
}

/// An event of the API (as in `GET /sagas/{id}` and on the events
/// stream) back as a [`Recorded`].
pub(super) fn recorded(event: &EventEntry) -> Result<Recorded, String> {
    let seq = event.seq;
    let at = humantime::parse_rfc3339(&event.at).map_err(|e| format!("event {seq}: time {:?}: {e}", event.at))?;
    let at_ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let event = saga::decode(API_EVENT_SCHEMA, &event.event_type, event.data.clone()).map_err(|e| format!("event {seq}: {e}"))?;
    Ok(Recorded { seq, at_ms, event })
}

/// A table cell of something that may be missing: "-" then.
fn or_dash(text: Option<&str>) -> String {
    text.unwrap_or("-").to_owned()
}

/// Left-aligned columns two spaces apart, no trailing blanks; control
/// characters in cells escaped (they may be a participant's text).
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| terminal::escape(c).into_owned()).collect()).collect();
    let rows = rows.as_slice();
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
        let entry = |json| serde_json::from_value::<EventEntry>(json).expect("an event entry");
        let event = entry(serde_json::json!({"seq": 2, "type": "saga_compensated", "at": "2024-01-01T00:00:01.250Z", "data": {}}));
        let r = recorded(&event).expect("decodes");
        assert_eq!((r.seq, r.at_ms, r.event), (2, 1_704_067_201_250, saga::SagaEvent::SagaCompensated {}));
        assert!(recorded(&entry(serde_json::json!({"seq": 1, "type": "dance", "at": "2024-01-01T00:00:00Z", "data": {}}))).is_err());
    }
}
