//! The one integration-test binary: each module covers one user-facing capability.

mod cli;
mod definitions;
mod jetstream;
mod runtime;
mod simulation;
mod store_contract;
mod tidy;
