//! PLACEHOLDER: replaced by the store work.
/// In-memory store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore;
