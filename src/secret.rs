//! Secrets (ops tokens, nkey seeds, passwords) that must never reach a log,
//! a `Debug` print or an error message, and URLs whose user info is hidden
//! before they are shown.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

/// A secret value: `Debug` and `Display` print `[redacted]`; only
/// [`Secret::expose`] gives the text, at the one place that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret's text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Reads a secret from a file (a token file, an nkey seed file), without
    /// its trailing line break; the error names the file, never its content.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|error| std::io::Error::new(error.kind(), format!("{}: {error}", path.display())))?;
        Ok(Self(text.trim_end_matches(['\r', '\n']).to_owned()))
    }

    /// The secret's text, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes (a length says little; the text says all).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty secret (a variable that did not render).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(text))
    }
}

/// A URL (or a comma-separated list of them, as NATS takes) with any user
/// info (`user:password@`, `token@`) replaced by `***@`, fit for a log line.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    if !url.contains('@') {
        return Cow::Borrowed(url);
    }
    let parts: Vec<String> = url.split(',').map(redact_one).collect();
    Cow::Owned(parts.join(","))
}

fn redact_one(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
        assert_eq!(secret.expose(), "hunter2-hunter2-hunter2");
    }

    #[test]
    fn secret_files_lose_their_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(Secret::from_file(&path).unwrap().expose(), "abc");
        let missing = Secret::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
    }

    #[test]
    fn urls_lose_their_user_info() {
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact_url("nats://alice:s3cret@host:4222"), "nats://***@host:4222");
        assert_eq!(redact_url("postgres://u:p@db/x?a=b@c"), "postgres://***@db/x?a=b@c");
        assert_eq!(redact_url("tok@host:4222,nats://a:b@h2"), "***@host:4222,nats://***@h2");
    }
}
