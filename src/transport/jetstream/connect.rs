//! How to reach and authenticate to the NATS server: [`NatsConnection`] is
//! the one set of connection options that `serve`, `sagas tail`,
//! `participants`, `demo` and the participant SDK share, and
//! [`connect_with_retry`] the one function that turns it into a client.
//!
//! Secrets (nkey seed, password, token) are [`Secret`]s and the URL is
//! shown only through [`redact_url`], so neither `Debug` nor a log line
//! carries them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::{ConnectOptions, Event};

use crate::secret::{redact_url, Secret};
use crate::transport::TransportError;

/// The NATS server used when none is named.
pub const NATS_URL_DEFAULT: &str = "nats://127.0.0.1:4222";
/// First pause after a failed connect attempt; it doubles up to [`CONNECT_DELAY_MAX`].
const CONNECT_DELAY_FIRST: Duration = Duration::from_millis(250);
/// Longest pause between two connect attempts.
const CONNECT_DELAY_MAX: Duration = Duration::from_secs(5);
/// Client name announced to the server (shown by its monitoring).
const CLIENT_NAME: &str = "jetsaga";

/// Where the NATS server is and how to prove who we are to it.
///
/// At most one way to authenticate: a credentials file, an nkey seed, a
/// user and password, or a token (user info in the URL works too, and is
/// hidden from logs). TLS: `tls_ca` to trust the server's certificate,
/// `tls_cert` + `tls_key` for a client certificate, `require_tls` to
/// refuse a server that offers none.
#[derive(Clone)]
pub struct NatsConnection {
    /// `nats://host:port` or `tls://host:port`, several separated by commas.
    pub url: String,
    /// A `.creds` file (JWT + nkey seed).
    pub credentials_file: Option<PathBuf>,
    /// An nkey seed (`SU…`).
    pub nkey_seed: Option<Secret>,
    /// A user name, with `password`.
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<Secret>,
    /// An authentication token.
    pub token: Option<Secret>,
    /// CA certificate(s) to trust (PEM).
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM), with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Refuse a connection without TLS.
    pub require_tls: bool,
    /// Prefix of this connection's reply inboxes (default `_INBOX`). Give
    /// each role its own (`_INBOX_hotels`) and allow it to subscribe only
    /// there, so no one reads another's JetStream answers (docs/security.md, NATS accounts and permissions).
    pub inbox_prefix: Option<String>,
}

impl Default for NatsConnection {
    fn default() -> Self {
        Self::new(NATS_URL_DEFAULT)
    }
}

impl fmt::Debug for NatsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConnection")
            .field("url", &redact_url(&self.url))
            .field("credentials_file", &self.credentials_file)
            .field("nkey_seed", &self.nkey_seed)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("token", &self.token)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("require_tls", &self.require_tls)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

impl NatsConnection {
    /// No authentication, no TLS, at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            credentials_file: None,
            nkey_seed: None,
            user: None,
            password: None,
            token: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            inbox_prefix: None,
        }
    }

    /// The URL with any user info hidden, for logs and messages.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url).into_owned()
    }

    /// Refuses combinations that cannot be meant: two ways to
    /// authenticate, a password without a user (or the reverse), a client
    /// certificate without its key (or the reverse).
    pub fn check(&self) -> Result<(), TransportError> {
        let ways = [self.credentials_file.is_some(), self.nkey_seed.is_some(), self.user.is_some(), self.token.is_some()];
        if ways.iter().filter(|&&way| way).count() > 1 {
            return Err(refused("choose one way to authenticate: a credentials file, an nkey seed, a user and password, or a token"));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(refused("a NATS user and its password go together"));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(refused("a TLS client certificate and its key go together"));
        }
        Ok(())
    }

    async fn options(&self) -> Result<ConnectOptions, TransportError> {
        self.check()?;
        let mut options = ConnectOptions::new().name(CLIENT_NAME).require_tls(self.require_tls).event_callback(log_event);
        if let Some(path) = &self.credentials_file {
            options = options.credentials_file(path).await.map_err(|e| refused(format!("credentials file {}: {e}", path.display())))?;
        }
        if let Some(seed) = &self.nkey_seed {
            options = options.nkey(seed.expose().to_owned());
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            options = options.user_and_password(user.clone(), password.expose().to_owned());
        }
        if let Some(token) = &self.token {
            options = options.token(token.expose().to_owned());
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if let Some(prefix) = &self.inbox_prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        Ok(options)
    }
}

fn refused(reason: impl Into<String>) -> TransportError {
    TransportError::Connect(reason.into())
}

/// The server's complaints (a permission violation above all) reach the
/// log: the client library would otherwise keep them to itself.
async fn log_event(event: Event) {
    match event {
        Event::ServerError(error) => tracing::warn!(%error, "NATS server error"),
        Event::ClientError(error) => tracing::warn!(%error, "NATS client error"),
        Event::Disconnected | Event::LameDuckMode | Event::SlowConsumer(_) => tracing::warn!(%event, "NATS connection"),
        Event::Connected | Event::Draining | Event::Closed => tracing::debug!(%event, "NATS connection"),
    }
}

/// Connects, trying up to `attempts_max` times with a doubling pause (at
/// most [`CONNECT_DELAY_MAX`]). A refusal of the options themselves (see
/// [`NatsConnection::check`]), a URL that does not parse, refused
/// credentials and a TLS failure are not retried.
pub(super) async fn connect_with_retry(connection: &NatsConnection, attempts_max: u32) -> Result<async_nats::Client, TransportError> {
    let attempts_max = attempts_max.max(1);
    let url = connection.redacted_url();
    let mut delay = CONNECT_DELAY_FIRST;
    let mut last_error = String::new();
    for attempt in 1..=attempts_max {
        match connection.options().await?.connect(connection.url.as_str()).await {
            Ok(client) => return Ok(client),
            Err(error) if never_passes(error.kind()) => {
                return Err(TransportError::Connect(format!("{url}: {error} (this will not pass by retrying)")));
            }
            Err(error) => {
                tracing::warn!(%url, attempt, attempts_max, %error, "cannot reach NATS");
                last_error = error.to_string();
            }
        }
        if attempt < attempts_max {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(CONNECT_DELAY_MAX);
        }
    }
    Err(TransportError::Connect(format!("{url}: {last_error} (after {attempts_max} attempts)")))
}

/// Failures that the same try meets again: a URL that does not parse,
/// credentials the server refuses, a TLS set-up that fails.
fn never_passes(kind: async_nats::ConnectErrorKind) -> bool {
    use async_nats::ConnectErrorKind as K;
    matches!(kind, K::ServerParse | K::Authentication | K::AuthorizationViolation | K::Tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_every_secret_and_the_url_user_info() {
        let connection = NatsConnection {
            nkey_seed: Some(Secret::new("SUAseedseedseed")),
            password: Some(Secret::new("pa55word")),
            user: Some("hotels".into()),
            ..NatsConnection::new("nats://alice:s3cret@host:4222")
        };
        let shown = format!("{connection:?}");
        for secret in ["SUAseedseedseed", "pa55word", "s3cret", "alice"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("nats://***@host:4222") && shown.contains("hotels"), "{shown}");
    }

    #[test]
    fn contradictory_options_are_refused() {
        let base = NatsConnection::default();
        assert!(base.check().is_ok());
        let two_ways = NatsConnection { token: Some(Secret::new("t")), nkey_seed: Some(Secret::new("s")), ..base.clone() };
        let half_user = NatsConnection { user: Some("u".into()), ..base.clone() };
        let half_tls = NatsConnection { tls_cert: Some("c.pem".into()), ..base.clone() };
        for (connection, says) in [(two_ways, "one way"), (half_user, "password"), (half_tls, "key")] {
            let error = connection.check().expect_err("refused").to_string();
            assert!(error.contains(says), "{error}");
        }
        let user = NatsConnection { user: Some("u".into()), password: Some(Secret::new("p")), ..base };
        assert!(user.check().is_ok());
    }
}
