//! The one integration-test binary: each module covers one user-facing capability.

mod access;
mod cli;
mod crash;
mod dashboard;
mod dayone;
mod definitions;
mod faults;
mod infra;
mod jetstream;
mod nats_access;
mod ops;
mod participant;
mod production;
mod runtime;
mod sagas_cli;
mod second_edition;
mod simulation;
mod store_contract;
mod support;
mod tidy;
mod torture;
