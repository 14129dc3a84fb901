//! The one integration-test binary: each module covers one user-facing capability.

mod definitions;
mod simulation;
mod store_contract;
mod tidy;
