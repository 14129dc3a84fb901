//! PLACEHOLDER: replaced by the store work.
/// SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore;
