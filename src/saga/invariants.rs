//! SPEC §6 invariants over a saga's log.
