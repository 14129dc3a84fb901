//! The definitions the engine runs: every version of the catalog (a new
//! saga runs on the highest loaded unless its start names one, SPEC §7),
//! plus older versions read back from the store for sagas that started on
//! them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::EngineError;
use crate::definition::{self, Catalog, SagaDefinition};
use crate::store::{DefinitionRecord, EventStore};

/// Definitions by (name, version).
#[derive(Debug, Default)]
pub struct Definitions {
    /// The highest version loaded of each name.
    current: HashMap<String, Arc<SagaDefinition>>,
    /// Every version loaded.
    loaded: HashMap<(String, u32), Arc<SagaDefinition>>,
    older: Mutex<HashMap<(String, u32), Arc<SagaDefinition>>>,
}

impl Definitions {
    /// Serves every definition of `catalog`; the highest version of each
    /// name is the current one.
    pub fn new(catalog: &Catalog) -> Self {
        let loaded: HashMap<(String, u32), Arc<SagaDefinition>> =
            catalog.iter().map(|def| ((def.name.to_string(), def.version), Arc::new(def.clone()))).collect();
        let mut current: HashMap<String, Arc<SagaDefinition>> = HashMap::new();
        for def in loaded.values() {
            let entry = current.entry(def.name.to_string()).or_insert_with(|| def.clone());
            if def.version > entry.version {
                *entry = def.clone();
            }
        }
        Self { current, loaded, older: Mutex::default() }
    }

    /// Records every current definition in `store`, refusing changed
    /// content under a recorded version ([`crate::store::StoreError::DefinitionChanged`]).
    pub async fn record_in<S: EventStore>(&self, store: &S) -> Result<(), EngineError> {
        for def in self.loaded.values() {
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

    /// Version `version` of `saga_type` if it is loaded: what a start
    /// naming a version runs on (one not loaded is refused, SPEC §7).
    pub fn loaded(&self, saga_type: &str, version: u32) -> Option<Arc<SagaDefinition>> {
        self.loaded.get(&(saga_type.to_owned(), version)).cloned()
    }

    /// The version a saga started on.
    pub async fn version<S: EventStore>(&self, store: &S, saga_type: &str, version: u32) -> Result<Arc<SagaDefinition>, EngineError> {
        if let Some(def) = self.loaded(saga_type, version) {
            return Ok(def);
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
