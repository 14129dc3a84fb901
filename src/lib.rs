//! jetsaga: a saga orchestrator for distributed transactions.
//!
//! Crate map (see ARCHITECTURE.md for the long form):
//!
//! - [`definition`]: `sagas/*.toml` parsed and validated (pure).
//! - [`saga`]: the pure core: events, the fold, `decide`, effects, invariants.
//! - [`sim`]: the deterministic simulator behind `jetsaga check` (pure).
//! - [`wire`]: the JSON messages and subjects of the NATS protocol.
//! - [`store`]: the event store port and its adapters (memory, SQLite, PostgreSQL).
//! - [`transport`]: the transport port and its adapters (in-process, NATS JetStream).
//! - [`runtime`]: the engine loop, deadline claims, recovery, the event relay.
//! - [`ops`]: the ops HTTP API.
//! - [`participant`]: the participant SDK (a participant is a `tower::Service`).
//! - [`loader`]: reads a definitions directory from disk.
//! - [`orchestrator`]: the one assembly of engine, consumers, relay and ops API.
//! - [`secret`]: secrets that never print, URLs with their user info hidden.
//! - [`failpoints`]: named crash points for the fault campaign (feature `failpoints`).
//! - [`cli`]: the `jetsaga` subcommands.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod cli;
pub mod definition;
pub mod failpoints;
pub mod loader;
pub mod ops;
pub mod orchestrator;
pub mod participant;
pub mod runtime;
pub mod saga;
pub mod secret;
pub mod sim;
pub mod store;
pub mod transport;
pub mod wire;

#[cfg(test)]
mod fuzz;
