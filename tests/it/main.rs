//! Integration tests.

mod definitions;
