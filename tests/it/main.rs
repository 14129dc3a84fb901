//! Integration tests.
mod simulation;
