//! PLACEHOLDER: replaced by the definition work.
use super::{DefinitionError, SagaDefinition};

/// A set of definitions.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    defs: Vec<SagaDefinition>,
}

/// Refused set.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid definitions")]
pub struct CatalogError {
    /// Errors.
    pub errors: Vec<DefinitionError>,
}

impl Catalog {
    /// All or nothing.
    pub fn from_sources(_sources: impl IntoIterator<Item = (String, String)>) -> Result<Catalog, CatalogError> {
        todo!()
    }
    /// By name.
    pub fn get(&self, name: &str) -> Option<&SagaDefinition> {
        self.defs.iter().find(|d| d.name.as_str() == name)
    }
    /// All.
    pub fn iter(&self) -> impl Iterator<Item = &SagaDefinition> {
        self.defs.iter()
    }
}
