//! The definitions the engine runs: the current catalog, plus older
//! versions read back from the store for sagas that started on them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::EngineError;
use crate::definition::{self, Catalog, SagaDefinition};
use crate::store::{DefinitionRecord, EventStore};

/// Definitions by (name, version).
#[derive(Debug, Default)]
pub struct Definitions {
    current: HashMap<String, Arc<SagaDefinition>>,
    older: Mutex<HashMap<(String, u32), Arc<SagaDefinition>>>,
}

impl Definitions {
    /// Serves the definitions of `catalog` as the current versions.
    pub fn new(catalog: &Catalog) -> Self {
        let current = catalog.iter().map(|def| (def.name.to_string(), Arc::new(def.clone()))).collect();
        Self { current, older: Mutex::default() }
    }

    /// Records every current definition in `store`, refusing changed
    /// content under a recorded version ([`crate::store::StoreError::DefinitionChanged`]).
    pub async fn record_in<S: EventStore>(&self, store: &S) -> Result<(), EngineError> {
        for def in self.current.values() {
            let record = DefinitionRecord {
                name: def.name.to_string(),
                version: def.version,
                content_hash: def.content_hash.clone(),
                source: def.source.clone(),
            };
            store.record_definition(&record).await?;
        }
        Ok(())
    }

    /// The current version of `saga_type`, for new sagas.
    pub fn current(&self, saga_type: &str) -> Option<Arc<SagaDefinition>> {
        self.current.get(saga_type).cloned()
    }

    /// The version a saga started on.
    pub async fn version<S: EventStore>(&self, store: &S, saga_type: &str, version: u32) -> Result<Arc<SagaDefinition>, EngineError> {
        if let Some(def) = self.current.get(saga_type).filter(|d| d.version == version) {
            return Ok(def.clone());
        }
        let key = (saga_type.to_owned(), version);
        if let Some(def) = self.older.lock().ok().and_then(|older| older.get(&key).cloned()) {
            return Ok(def);
        }
        let missing = || EngineError::Definition(format!("definition {saga_type} version {version} is not recorded"));
        let record = store.load_definition(saga_type, version).await?.ok_or_else(missing)?;
        let file = format!("<recorded {saga_type} v{version}>");
        let def = definition::parse(&file, &record.source).map_err(|errors| {
            let first = errors.first().map(ToString::to_string).unwrap_or_default();
            EngineError::Definition(format!("recorded definition {saga_type} version {version} no longer parses: {first}"))
        })?;
        let def = Arc::new(def);
        if let Ok(mut older) = self.older.lock() {
            older.insert(key, def.clone());
        }
        Ok(def)
    }
}
