//! The catalog: the set of saga definitions the orchestrator runs, keyed by
//! saga name and version. Several versions of one name may be loaded at
//! once, one file each (SPEC §7); a new saga runs on the highest one unless
//! its start names another.
//!
//! All or nothing: a set with one bad file, or two files declaring the same
//! saga name and version, is refused as a whole with every error found, so
//! a deploy never runs with half of its sagas.

use std::collections::HashMap;
use std::fmt;

use super::error::{DefinitionError, Rule};
use super::parse::{name_line, parse};
use super::SagaDefinition;

/// A checked set of saga definitions, sorted by name then version, each
/// (name, version) once.
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
    /// file is invalid or a saga name and version are declared twice.
    pub fn from_sources(sources: impl IntoIterator<Item = (String, String)>) -> Result<Catalog, CatalogError> {
        let mut defs = Vec::new();
        let mut errors = Vec::new();
        let mut seen: HashMap<(String, u32), String> = HashMap::new();
        for (file, text) in sources {
            match parse(&file, &text) {
                Ok(def) => match seen.get(&(def.name.as_str().to_owned(), def.version)) {
                    Some(first) => errors.push(duplicate(&file, &def, first)),
                    None => {
                        seen.insert((def.name.as_str().to_owned(), def.version), file);
                        defs.push(def);
                    }
                },
                Err(file_errors) => errors.extend(file_errors),
            }
        }
        Self::sorted(defs, errors)
    }

    /// A catalog of already-parsed definitions (for tests); a name and
    /// version declared twice are refused like in [`Catalog::from_sources`], the files being
    /// labelled `<definition N>` by position.
    pub fn from_definitions(defs: Vec<SagaDefinition>) -> Result<Catalog, CatalogError> {
        let mut kept: Vec<SagaDefinition> = Vec::new();
        let mut errors = Vec::new();
        for (i, def) in defs.into_iter().enumerate() {
            match kept.iter().position(|k| k.name == def.name && k.version == def.version) {
                Some(first) => errors.push(duplicate(&format!("<definition {i}>"), &def, &format!("<definition {first}>"))),
                None => kept.push(def),
            }
        }
        Self::sorted(kept, errors)
    }

    /// The highest version loaded of saga type `name`: what a new saga
    /// runs on when its start names no version.
    pub fn get(&self, name: &str) -> Option<&SagaDefinition> {
        self.defs.iter().rev().find(|d| d.name.as_str() == name)
    }

    /// Version `version` of saga type `name`, if loaded.
    pub fn version(&self, name: &str, version: u32) -> Option<&SagaDefinition> {
        self.defs.iter().find(|d| d.name.as_str() == name && d.version == version)
    }

    /// All definitions, sorted by name, then version.
    pub fn iter(&self) -> impl Iterator<Item = &SagaDefinition> {
        self.defs.iter()
    }

    /// All saga names, sorted, each once.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut last: Option<&str> = None;
        self.defs.iter().map(|d| d.name.as_str()).filter(move |name| {
            let new = last != Some(*name);
            last = Some(name);
            new
        })
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
        defs.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        Ok(Catalog { defs })
    }
}

/// `def`, from `file`, declares a saga name and version that `first_file` already did.
fn duplicate(file: &str, def: &SagaDefinition, first_file: &str) -> DefinitionError {
    DefinitionError {
        file: file.to_owned(),
        line: name_line(&def.source),
        rule: Rule::DuplicateName,
        message: format!(
            "saga name {:?} is already declared in {first_file} with version {}; a name and version must be unique across files",
            def.name.as_str(),
            def.version
        ),
    }
}
