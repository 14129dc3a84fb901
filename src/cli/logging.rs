//! Where logs go and which: stderr, as text or JSON lines; the filter from
//! `--log` (or `JETSAGA_LOG`), else `RUST_LOG`, else the subcommand's
//! default (`info` for `serve` and `migrate`, so their start and stop lines
//! show, `warn` for the rest). A filter that does not parse is refused, not
//! silently replaced. Colour only when stderr is a terminal (and `NO_COLOR`
//! is unset), so redirected log files hold no escape codes.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One line of text per event (for people).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, `spans`.
    Json,
}

/// The filter that applies: `flag` (`--log` or `JETSAGA_LOG`) first, then
/// `RUST_LOG`, then `default`; or why it does not parse.
pub(crate) fn filter(flag: Option<&str>, rust_log: Option<&str>, default: &str) -> Result<EnvFilter, String> {
    let (text, from) = match (flag, rust_log) {
        (Some(text), _) => (text, "--log (JETSAGA_LOG)"),
        (None, Some(text)) => (text, "RUST_LOG"),
        (None, None) => (default, "the default"),
    };
    EnvFilter::builder()
        .parse(text)
        .map_err(|error| format!("invalid log filter {text:?} in {from}: {error} (e.g. \"info\" or \"warn,jetsaga=debug\")"))
}

/// Whether to colour log lines: stderr is a terminal and `NO_COLOR` is unset.
pub(crate) fn ansi() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Installs the subscriber: `filter`, `format`, on stderr.
#[cfg(not(feature = "otlp"))]
pub(crate) fn init(filter: EnvFilter, format: LogFormat) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(ansi()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_beats_rust_log_which_beats_the_default() {
        assert_eq!(filter(Some("debug"), Some("error"), "info").expect("valid").to_string(), "debug");
        assert_eq!(filter(None, Some("error"), "info").expect("valid").to_string(), "error");
        assert_eq!(filter(None, None, "info").expect("valid").to_string(), "info");
    }

    #[test]
    fn a_malformed_filter_is_refused_naming_where_it_came_from() {
        let error = filter(None, Some("jetsaga=loud"), "info").expect_err("refused");
        assert!(error.contains("\"jetsaga=loud\"") && error.contains("RUST_LOG"), "{error}");
        let error = filter(Some("[[["), None, "info").expect_err("refused");
        assert!(error.contains("--log"), "{error}");
    }
}
