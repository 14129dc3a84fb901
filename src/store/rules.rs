//! The rules every store adapter applies the same way, so memory, SQLite
//! and any later backend cannot drift apart: what a well-formed [`Append`]
//! is, how a page size is clamped, how a page and its cursor are cut, and
//! how much of a poison message is kept, what `count_by_status` answers,
//! and what recording a definition twice means.

use super::{Append, DefinitionRecord, Page, SagaSummary, StoreError, PAGE_SIZE_MAX, POISON_PAYLOAD_BYTES_MAX};
use crate::saga::Status;

/// Checks a whole batch before anything is written. A malformed append is
/// a programming error in the caller, so the batch fails as a whole
/// ([`StoreError::Invalid`]) instead of committing half of it or panicking.
pub(crate) fn check_batch(batch: &[Append]) -> Result<(), StoreError> {
    batch.iter().try_for_each(check_append)
}

/// Events must run on from `expected_seq + 1` without gaps, and the
/// summary must describe this saga as it is after them.
fn check_append(append: &Append) -> Result<(), StoreError> {
    let id = append.saga_id;
    for (offset, recorded) in append.events.iter().enumerate() {
        let wanted = append.expected_seq.checked_add(offset as u64 + 1);
        if wanted != Some(recorded.seq) {
            return Err(StoreError::invalid(format!(
                "append to saga {id}: event #{offset} has seq {} but seqs must run on from expected_seq {} + 1 without gaps",
                recorded.seq, append.expected_seq
            )));
        }
    }
    if append.summary.saga_id != id {
        return Err(StoreError::invalid(format!("append to saga {id}: its summary is for saga {}", append.summary.saga_id)));
    }
    let last_seq = append.events.last().map_or(append.expected_seq, |recorded| recorded.seq);
    if append.summary.last_seq != last_seq {
        return Err(StoreError::invalid(format!(
            "append to saga {id}: summary.last_seq is {} but the last event appended has seq {last_seq}",
            append.summary.last_seq
        )));
    }
    Ok(())
}

/// The page size actually used: at least 1, at most [`PAGE_SIZE_MAX`].
pub(crate) fn page_limit(limit: u32) -> u32 {
    limit.clamp(1, PAGE_SIZE_MAX)
}

/// Cuts a page from up to `limit + 1` rows in saga id order: the extra row
/// only proves there is a next page, whose cursor is the last id kept.
pub(crate) fn cut_page(mut rows: Vec<SagaSummary>, limit: u32) -> Page {
    let limit = limit as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more { rows.last().map(|summary| summary.saga_id) } else { None };
    Page { sagas: rows, next_cursor }
}

/// The part of a poison message's payload that is kept: at most
/// [`POISON_PAYLOAD_BYTES_MAX`] bytes, so one huge message cannot fill the store.
pub(crate) fn poison_payload(payload: &[u8]) -> &[u8] {
    &payload[..payload.len().min(POISON_PAYLOAD_BYTES_MAX)]
}

/// `count_by_status`'s answer from `(status, count)` rows of a `GROUP BY`:
/// one entry per status asked for, in that order, zero where no row came.
pub(crate) fn status_counts(statuses: &[Status], rows: &[(String, i64)]) -> Vec<(Status, u64)> {
    let count = |status: Status| rows.iter().find(|(s, _)| s == status.as_str()).map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0));
    statuses.iter().map(|&status| (status, count(status))).collect()
}

/// The answer to recording `record` where `existing` is on record already
/// under its (name, version): the same content is a no-op, other content is
/// [`StoreError::DefinitionChanged`]. Definitions are never updated nor
/// deleted, so a store that was told the row exists and then finds none
/// has lost data.
pub(crate) fn definition_recorded(record: &DefinitionRecord, existing: Option<&DefinitionRecord>) -> Result<(), StoreError> {
    match existing {
        Some(existing) if existing.content_hash == record.content_hash => Ok(()),
        Some(existing) => Err(StoreError::DefinitionChanged {
            name: record.name.clone(),
            version: record.version,
            recorded: existing.content_hash.clone(),
        }),
        None => Err(StoreError::corrupt(format!("definition {} version {} vanished", record.name, record.version))),
    }
}
