//! Given / when / then tests of the core.
