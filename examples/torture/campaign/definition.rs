//! The campaign's saga definition, read from its TOML file by a few lines
//! of its own (the checker must not rely on jetsaga's loader): the steps in
//! order, who owns each, which can be undone, and so where the pivot is.

use std::path::Path;

/// One step of the definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The step's name.
    pub name: String,
    /// The participant that owns it (its subject token).
    pub participant: String,
    /// Its action.
    pub action: String,
    /// Its compensation, if it can be undone.
    pub compensation: Option<String>,
}

/// What the campaign and the checker need to know of the definition.
#[derive(Debug, Clone)]
pub struct Definition {
    /// The saga type.
    pub name: String,
    /// The steps, in file order.
    pub steps: Vec<Step>,
    /// `max_attempts` of every step (the file's `[defaults]`).
    pub max_attempts: u32,
}

impl Definition {
    /// Reads the definition file: top-level `name`, `max_attempts` in the
    /// defaults, and each `[[steps]]` table's keys.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut name = None;
        let mut max_attempts = None;
        let mut steps: Vec<Step> = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line == "[[steps]]" {
                steps.push(Step { name: String::new(), participant: String::new(), action: String::new(), compensation: None });
                continue;
            }
            if let Some(at) = line.find("max_attempts") {
                let digits: String = line[at..].chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
                max_attempts = digits.parse().ok();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else { continue };
            let value = value.trim().trim_matches('"').to_owned();
            match (key.trim(), steps.last_mut()) {
                ("name", None) => name = Some(value),
                ("name", Some(step)) => step.name = value,
                ("participant", Some(step)) => step.participant = value,
                ("action", Some(step)) => step.action = value,
                ("compensation", Some(step)) => step.compensation = Some(value),
                _ => {}
            }
        }
        let definition =
            Definition { name: name.ok_or("no name")?, steps, max_attempts: max_attempts.ok_or("no max_attempts in [defaults]")? };
        if definition.steps.is_empty() || definition.steps.iter().any(|s| s.name.is_empty() || s.participant.is_empty()) {
            return Err(format!("{}: every step needs a name and a participant", path.display()));
        }
        Ok(definition)
    }

    /// The index of the pivot: the first step without a compensation.
    pub fn pivot(&self) -> usize {
        self.steps.iter().position(|s| s.compensation.is_none()).unwrap_or(self.steps.len())
    }

    /// The index of the step named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}
