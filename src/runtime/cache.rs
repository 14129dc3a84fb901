//! The engine's saga cache: the folded state of the sagas it drives, so a
//! reply does not fold the log again. Bounded by [`SAGA_CACHE_MAX`]; an
//! evicted saga is simply folded from the store next time.
//!
//! The cache is a hint like the local deadlines: a conflict on append (the
//! store moved on) drops the entry and the input is decided again on what
//! the store holds.

use std::collections::HashMap;
use std::sync::Arc;

use crate::definition::SagaDefinition;
use crate::saga::{SagaId, SagaState};

/// Most sagas whose state one engine keeps in memory.
pub const SAGA_CACHE_MAX: usize = 50_000;

/// A saga's definition and state, as cached.
pub type Cached = (Arc<SagaDefinition>, SagaState);

/// Folded sagas by id, at most `max` of them.
#[derive(Debug)]
pub struct SagaCache {
    sagas: HashMap<SagaId, Cached>,
    max: usize,
    hits: u64,
    misses: u64,
}

impl Default for SagaCache {
    fn default() -> Self {
        Self::with_max(SAGA_CACHE_MAX)
    }
}

impl SagaCache {
    /// A cache of at most `max` sagas.
    pub fn with_max(max: usize) -> Self {
        Self { sagas: HashMap::new(), max, hits: 0, misses: 0 }
    }

    /// A copy of the cached saga, counting the hit or miss.
    pub fn get(&mut self, saga_id: SagaId) -> Option<Cached> {
        let found = self.sagas.get(&saga_id).cloned();
        match found {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        found
    }

    /// Keeps `saga_id`'s state; when full, another saga makes room (any
    /// one: they all cost the same fold to bring back).
    pub fn insert(&mut self, saga_id: SagaId, cached: Cached) {
        if self.sagas.len() >= self.max && !self.sagas.contains_key(&saga_id) {
            let Some(victim) = self.sagas.keys().next().copied() else { return };
            self.sagas.remove(&victim);
        }
        self.sagas.insert(saga_id, cached);
    }

    /// Whether `saga_id` is cached (not counted as a hit or miss).
    pub fn contains(&self, saga_id: SagaId) -> bool {
        self.sagas.contains_key(&saga_id)
    }

    /// Forgets `saga_id` (it finished, or the store may hold more than we do).
    pub fn remove(&mut self, saga_id: SagaId) {
        self.sagas.remove(&saga_id);
    }

    /// Sagas cached.
    pub fn len(&self) -> usize {
        self.sagas.len()
    }

    /// Whether none is cached.
    pub fn is_empty(&self) -> bool {
        self.sagas.is_empty()
    }

    /// (hits, misses) so far.
    pub fn hit_counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Catalog;
    use crate::saga::{begin, Recorded, SagaEvent};

    #[test]
    fn a_full_cache_makes_room_and_counts_hits() {
        let text = "name = \"t\"\nversion = 1\n[[steps]]\nname = \"a\"\nparticipant = \"p\"\naction = \"do\"\n";
        let catalog = Catalog::from_sources([("t.toml".to_string(), text.to_string())]).expect("valid");
        let def = Arc::new(catalog.get("t").expect("t").clone());
        let started = SagaEvent::SagaStarted {
            saga_type: "t".into(),
            version: 1,
            definition_hash: String::new(),
            input: Default::default(),
            key: None,
        };
        let state = |n| begin(&def, SagaId::from_u128(n), &Recorded { seq: 1, at_ms: 0, event: started.clone() }).expect("state");
        let mut cache = SagaCache::with_max(2);
        for n in 1..=3 {
            cache.insert(SagaId::from_u128(n), (def.clone(), state(n)));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(SagaId::from_u128(3)).is_some());
        assert_eq!(cache.hit_counts(), (1, 0));
        cache.remove(SagaId::from_u128(3));
        assert!(cache.get(SagaId::from_u128(3)).is_none());
        assert_eq!(cache.hit_counts(), (1, 1));
    }
}
