//! `--config jetsaga.toml`: `serve`'s settings in a file, one key per flag
//! (`database-url = "postgres://…"`, `stream-replicas = 3`, `allowed-host =
//! ["a", "b"]`, and the global `log`, `log-format`).
//!
//! Precedence is flags, then environment, then the file: each key of the
//! file becomes the value of its flag's environment variable when that
//! variable is not set (clap then takes a flag over the variable). `log`
//! also yields to `RUST_LOG`. A key that names no flag is refused with the
//! file and line, as is a value that is a table.

use std::path::Path;

use clap::Command;

/// Keys that name flags but not settings.
const NOT_SETTINGS: [&str; 3] = ["help", "version", "config"];

/// One setting of the file: the variable it fills and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    /// The flag's environment variable (`DATABASE_URL`).
    pub(crate) env: String,
    /// The value as the variable holds it (lists comma-separated).
    pub(crate) value: String,
}

/// Reads `path` and applies it to the environment (see the module's doc).
pub(crate) fn apply(path: &Path, command: &Command) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read the config file {}: {error}", path.display()))?;
    for setting in settings(&path.display().to_string(), &text, command)? {
        let yields_to_rust_log = setting.env == "JETSAGA_LOG" && std::env::var_os("RUST_LOG").is_some();
        if std::env::var_os(&setting.env).is_none() && !yields_to_rust_log {
            std::env::set_var(&setting.env, &setting.value);
        }
    }
    Ok(())
}

/// The settings of the config text `text` (read from `file`), checked
/// against `serve`'s flags and the global ones of `command`.
pub(crate) fn settings(file: &str, text: &str, command: &Command) -> Result<Vec<Setting>, String> {
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        let line = error.span().map_or(0, |span| line_of(text, span.start));
        format!("{file}:{line}: not valid TOML: {}", error.message())
    })?;
    let serve = command.find_subcommand("serve").ok_or("no serve subcommand")?;
    let flags: Vec<&clap::Arg> = command.get_arguments().chain(serve.get_arguments()).collect();
    let mut settings = Vec::new();
    for (key, value) in &table {
        let line = key_line(text, key);
        let arg = flags.iter().find(|arg| arg.get_long() == Some(key.as_str()) && !NOT_SETTINGS.contains(&key.as_str()));
        let Some(arg) = arg else {
            let known: Vec<&str> = flags.iter().filter_map(|arg| arg.get_long()).filter(|long| !NOT_SETTINGS.contains(long)).collect();
            return Err(format!("{file}:{line}: unknown key `{key}`: the keys are serve's flag names: {}", known.join(", ")));
        };
        let env = arg.get_env().and_then(|env| env.to_str()).ok_or_else(|| format!("{file}:{line}: `{key}` has no variable"))?;
        let value = match value {
            toml::Value::String(text) => text.clone(),
            toml::Value::Array(items) => items
                .iter()
                .map(scalar)
                .collect::<Option<Vec<_>>>()
                .map(|items| items.join(","))
                .ok_or_else(|| format!("{file}:{line}: `{key}`: a list holds strings, numbers or booleans"))?,
            other => scalar(other).ok_or_else(|| format!("{file}:{line}: `{key}`: a table is not a setting"))?,
        };
        settings.push(Setting { env: env.to_owned(), value });
    }
    Ok(settings)
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(yes) => Some(yes.to_string()),
        toml::Value::Datetime(at) => Some(at.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where `key` is set (`key =`, `"key" =`, `[key]`), 0 if not found.
fn key_line(text: &str, key: &str) -> usize {
    let sets = |line: &str| {
        let line = line.trim_start();
        let rest = line.strip_prefix(key).or_else(|| line.strip_prefix(&format!("\"{key}\"")));
        let table = line.trim_start_matches('[').strip_prefix(key).is_some_and(|rest| rest.starts_with(']'));
        table || rest.is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    text.lines().position(sets).map_or(0, |index| index + 1)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn of(text: &str) -> Result<Vec<(String, String)>, String> {
        let settings = settings("jetsaga.toml", text, &crate::cli::Cli::command())?;
        Ok(settings.into_iter().map(|s| (s.env, s.value)).collect())
    }

    #[test]
    fn keys_are_flag_names_and_fill_their_variables() {
        let text = "# the orchestrator\ndatabase-url = \"postgres://db/x\"\nstream-replicas = 3\nno-migrate = true\n\
                    allowed-host = [\"a.example\", \"b.example\"]\nlog-format = \"json\"\n";
        let mut got = of(text).expect("valid");
        got.sort();
        let want = [
            ("DATABASE_URL", "postgres://db/x"),
            ("JETSAGA_ALLOWED_HOSTS", "a.example,b.example"),
            ("JETSAGA_LOG_FORMAT", "json"),
            ("JETSAGA_NO_MIGRATE", "true"),
            ("JETSAGA_STREAM_REPLICAS", "3"),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }

    #[test]
    fn an_unknown_key_is_refused_with_file_and_line() {
        let error = of("listen = \"127.0.0.1:9000\"\n\ndatabase_url = \"x\"\n").expect_err("refused");
        assert!(error.starts_with("jetsaga.toml:3: unknown key `database_url`"), "{error}");
        assert!(error.contains("database-url"), "names the keys there are: {error}");
        let error = of("[serve]\nlisten = \"x\"\n").expect_err("refused");
        assert!(error.starts_with("jetsaga.toml:1: unknown key `serve`"), "{error}");
        let error = of("listen = \n").expect_err("refused");
        assert!(error.starts_with("jetsaga.toml:1: not valid TOML"), "{error}");
    }

    #[test]
    fn every_serve_flag_can_be_set_by_a_variable_and_so_by_the_file() {
        let command = crate::cli::Cli::command();
        let serve = command.find_subcommand("serve").expect("serve");
        for arg in serve.get_arguments().chain(command.get_arguments()) {
            let Some(long) = arg.get_long() else { continue };
            if NOT_SETTINGS.contains(&long) {
                continue;
            }
            assert!(arg.get_env().is_some(), "--{long} has no environment variable");
        }
    }
}
