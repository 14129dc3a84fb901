//! The flags of `jetsaga serve` that say how the ops API is reached: the
//! auth mode, the operator and read-only tokens (or files holding them),
//! the Host allow-list, the HTTP limits and TLS (docs/security.md).
//!
//! Every secret can come from a file, so none needs to be a flag (flags
//! show in `ps`); a short or empty token stops `serve` before it starts.

use std::path::{Path, PathBuf};

use crate::ops::server::{CONNECTIONS_MAX_DEFAULT, HEADER_READ_TIMEOUT_DEFAULT, REQUEST_TIMEOUT_DEFAULT};
use crate::ops::{tls_config, Access, AuthMode, HttpLimits, OpsConfig, REQUEST_BYTES_MAX};
use crate::secret::Secret;

/// The ops API's flags of `jetsaga serve`.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct OpsAccessArgs {
    /// `open` (SPEC §5: reads and starts open, verbs need the operator
    /// token) or `strict` (everything but health, readiness and metrics
    /// needs a token).
    #[arg(long, env = "JETSAGA_AUTH", value_enum, default_value_t = AuthMode::Open)]
    auth: AuthMode,
    /// Operator token: reads, starts and verbs (at least 16 bytes; never logged).
    #[arg(long, env = "JETSAGA_OPS_TOKEN", hide_env_values = true, conflicts_with = "ops_token_file")]
    ops_token: Option<Secret>,
    /// File holding the operator token (its first line).
    #[arg(long, env = "JETSAGA_OPS_TOKEN_FILE")]
    ops_token_file: Option<PathBuf>,
    /// Read-only token: list, show, state, the dashboard's reads; not starts, not verbs.
    #[arg(long, env = "JETSAGA_OPS_READ_TOKEN", hide_env_values = true, conflicts_with = "ops_read_token_file")]
    ops_read_token: Option<Secret>,
    /// File holding the read-only token.
    #[arg(long, env = "JETSAGA_OPS_READ_TOKEN_FILE")]
    ops_read_token_file: Option<PathBuf>,
    /// In strict mode, `/metrics` needs a token too (read or operator).
    #[arg(long, env = "JETSAGA_METRICS_NEED_TOKEN")]
    metrics_need_token: bool,
    /// A Host name requests may name (repeatable, or comma-separated in the
    /// variable); default on loopback: localhost, 127.0.0.1, [::1].
    #[arg(long = "allowed-host", env = "JETSAGA_ALLOWED_HOSTS", value_delimiter = ',', value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// How long a client has to send a request's headers (or its TLS handshake).
    #[arg(long, env = "JETSAGA_HTTP_HEADER_READ_TIMEOUT", default_value_t = HEADER_READ_TIMEOUT_DEFAULT.into())]
    http_header_read_timeout: humantime::Duration,
    /// How long one request may take, body and handler (408 past it).
    #[arg(long, env = "JETSAGA_HTTP_REQUEST_TIMEOUT", default_value_t = REQUEST_TIMEOUT_DEFAULT.into())]
    http_request_timeout: humantime::Duration,
    /// Most connections open at once (more wait to be accepted).
    #[arg(long, env = "JETSAGA_HTTP_CONNECTIONS_MAX", default_value_t = CONNECTIONS_MAX_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..))]
    http_connections_max: u32,
    /// Largest request body in bytes (413 past it).
    #[arg(long, env = "JETSAGA_HTTP_REQUEST_BYTES_MAX", default_value_t = REQUEST_BYTES_MAX)]
    http_request_bytes_max: usize,
    /// PEM certificate chain: serve the ops API over HTTPS.
    #[arg(long, env = "JETSAGA_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    #[arg(long, env = "JETSAGA_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
}

impl OpsAccessArgs {
    /// The ops API's settings, or why they are refused (a message naming
    /// the flag and variable, never a secret).
    pub(super) fn config(&self) -> anyhow::Result<OpsConfig> {
        let access = Access {
            mode: self.auth,
            operator_token: secret(self.ops_token.as_ref(), self.ops_token_file.as_deref())?,
            read_token: secret(self.ops_read_token.as_ref(), self.ops_read_token_file.as_deref())?,
            metrics_need_token: self.metrics_need_token,
            allowed_hosts: (!self.allowed_hosts.is_empty()).then(|| self.allowed_hosts.clone()),
        };
        access.validate()?;
        let http = HttpLimits {
            header_read_timeout: self.http_header_read_timeout.into(),
            request_timeout: self.http_request_timeout.into(),
            connections_max: self.http_connections_max,
            request_bytes_max: self.http_request_bytes_max,
        };
        let tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
            _ => None,
        };
        Ok(OpsConfig { access, http, tls })
    }
}

/// A secret given as a value or as a file.
fn secret(value: Option<&Secret>, file: Option<&Path>) -> anyhow::Result<Option<Secret>> {
    match file {
        Some(path) => Ok(Some(Secret::from_file(path).map_err(|e| anyhow::anyhow!("cannot read the token file {e}"))?)),
        None => Ok(value.cloned()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        ops: OpsAccessArgs,
    }

    #[test]
    fn tokens_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "operator-token-from-a-file\n").expect("written");
        let file = path.to_str().expect("utf-8");
        let cli = Cli::try_parse_from(["x", "--ops-token-file", file, "--ops-read-token", "read-token-on-the-line", "--auth", "strict"])
            .expect("parses");
        let config = cli.ops.config().expect("valid");
        assert_eq!(config.access.operator_token.as_ref().map(Secret::expose), Some("operator-token-from-a-file"));
        assert_eq!(config.access.mode, AuthMode::Strict);
        let printed = format!("{cli:?} {config:?}");
        assert!(!printed.contains("-token-from-a-file") && !printed.contains("read-token-on-the-line"), "{printed}");
        assert!(Cli::try_parse_from(["x", "--ops-token-file", file, "--ops-token", "operator-token-on-the-line"]).is_err());
        let missing = Cli::try_parse_from(["x", "--ops-token-file", "/nonexistent/token"]).expect("parses").ops.config().unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/token"), "{missing}");
    }
}
