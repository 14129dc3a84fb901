//! PLACEHOLDER: replaced by the definition work.
use super::SagaDefinition;

/// A rule of SPEC §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// placeholder
    Syntax,
}

/// A refused definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct DefinitionError {
    /// File.
    pub file: String,
    /// Line (1-based).
    pub line: usize,
    /// Rule.
    pub rule: Rule,
    /// Message.
    pub message: String,
}

/// Parses one file.
pub fn parse(_file: &str, _text: &str) -> Result<SagaDefinition, Vec<DefinitionError>> {
    todo!()
}
