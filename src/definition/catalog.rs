//! The catalog: the set of saga definitions the orchestrator runs, keyed by
//! saga name.
//!
//! All or nothing: a set with one bad file, or two files declaring the same
//! saga name, is refused as a whole with every error found, so a deploy
//! never runs with half of its sagas.

use std::collections::HashMap;
use std::fmt;

use super::error::{DefinitionError, Rule};
use super::parse::{name_line, parse};
use super::SagaDefinition;

/// A checked set of saga definitions, sorted by name, names unique.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    defs: Vec<SagaDefinition>,
}

/// A refused set: every error of every file, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CatalogError {
    /// The errors, file by file in the order given, then by line.
    pub errors: Vec<DefinitionError>,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl Catalog {
    /// Parses every `(file name, text)` pair; refuses the whole set if any
    /// file is invalid or a saga name is declared twice.
    pub fn from_sources(sources: impl IntoIterator<Item = (String, String)>) -> Result<Catalog, CatalogError> {
        let mut defs = Vec::new();
        let mut errors = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (file, text) in sources {
            match parse(&file, &text) {
                Ok(def) => match seen.get(def.name.as_str()) {
                    Some(first) => errors.push(duplicate(&file, &def, first)),
                    None => {
                        seen.insert(def.name.as_str().to_owned(), file);
                        defs.push(def);
                    }
                },
                Err(file_errors) => errors.extend(file_errors),
            }
        }
        Self::sorted(defs, errors)
    }

    /// A catalog of already-parsed definitions (for tests); a name declared
    /// twice is refused like in [`Catalog::from_sources`], the files being
    /// labelled `<definition N>` by position.
    pub fn from_definitions(defs: Vec<SagaDefinition>) -> Result<Catalog, CatalogError> {
        let mut kept: Vec<SagaDefinition> = Vec::new();
        let mut errors = Vec::new();
        for (i, def) in defs.into_iter().enumerate() {
            match kept.iter().position(|k| k.name == def.name) {
                Some(first) => errors.push(duplicate(&format!("<definition {i}>"), &def, &format!("<definition {first}>"))),
                None => kept.push(def),
            }
        }
        Self::sorted(kept, errors)
    }

    /// The definition of saga type `name`.
    pub fn get(&self, name: &str) -> Option<&SagaDefinition> {
        self.defs.binary_search_by(|d| d.name.as_str().cmp(name)).ok().map(|i| &self.defs[i])
    }

    /// All definitions, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &SagaDefinition> {
        self.defs.iter()
    }

    /// All saga names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defs.iter().map(|d| d.name.as_str())
    }

    /// How many definitions.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    fn sorted(mut defs: Vec<SagaDefinition>, errors: Vec<DefinitionError>) -> Result<Catalog, CatalogError> {
        if !errors.is_empty() {
            return Err(CatalogError { errors });
        }
        defs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Catalog { defs })
    }
}

/// `def`, from `file`, declares a saga name that `first_file` already did.
fn duplicate(file: &str, def: &SagaDefinition, first_file: &str) -> DefinitionError {
    DefinitionError {
        file: file.to_owned(),
        line: name_line(&def.source),
        rule: Rule::DuplicateName,
        message: format!("saga name {:?} is already declared in {first_file}; saga names must be unique across files", def.name.as_str()),
    }
}
