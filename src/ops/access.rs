//! Who may do what on the ops API: the auth mode, the operator and
//! read-only tokens, and the Host-header allow-list, enforced by one
//! middleware in front of every route (SPEC §5 holds in the default mode).
//!
//! | request | `open` (default, SPEC §5) | `strict` |
//! |---|---|---|
//! | `/healthz`, `/readyz`, the dashboard's files | anyone | anyone |
//! | `/metrics` | anyone | anyone, or a token with `metrics_need_token` |
//! | reads (`GET /sagas…`, `GET /poison…`) | anyone | read or operator token |
//! | start (`POST /sagas`) | anyone | operator token |
//! | verbs (`POST /sagas/{id}/{verb}`) | operator token | operator token |
//!
//! A missing or wrong token is `401`; the read token where the operator
//! token is needed is `403`; a Host not on the allow-list is `421`. Tokens
//! are compared as SHA-256 digests, in constant time, so neither the time
//! taken nor an early exit says anything about a token's text or length.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::secret::Secret;

/// Shortest token accepted: an empty or short token is a secret that did
/// not render, or one that can be guessed.
pub const TOKEN_BYTES_MIN: usize = 16;

/// Host names every loopback listener accepts (with any port).
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// What needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthMode {
    /// SPEC §5: reads and starts are open, operator verbs need the operator token.
    #[default]
    Open,
    /// Everything but health, readiness (and metrics, unless configured)
    /// needs a token; starts and verbs need the operator token.
    Strict,
}

/// The access settings of the ops API, as configured.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// What needs a token.
    pub mode: AuthMode,
    /// Allows everything (`None`: operator verbs are off).
    pub operator_token: Option<Secret>,
    /// Allows reads only (list, detail, state).
    pub read_token: Option<Secret>,
    /// In strict mode, `/metrics` needs a token too.
    pub metrics_need_token: bool,
    /// Host names (without port) requests may name; `None`: the default
    /// for the listen address ([`default_allowed_hosts`]).
    pub allowed_hosts: Option<Vec<String>>,
}

/// Why access settings are refused at start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    /// A token is empty or shorter than [`TOKEN_BYTES_MIN`].
    #[error("the {which} is {len} bytes long: it must be at least {TOKEN_BYTES_MIN} (an empty value is a secret that did not render)")]
    ShortToken {
        /// The flag and variable that set it.
        which: &'static str,
        /// Its length.
        len: usize,
    },
    /// Strict mode without any token: nobody could read anything.
    #[error("--auth strict (JETSAGA_AUTH) needs --ops-token or --ops-read-token (or their -file forms)")]
    StrictWithoutToken,
    /// The same text for both tokens: the read token would allow everything.
    #[error("the read token (--ops-read-token) must differ from the operator token (--ops-token)")]
    SameTokens,
}

impl Access {
    /// Open mode with `token` as the operator token.
    pub fn operator(token: Secret) -> Self {
        Self { operator_token: Some(token), ..Self::default() }
    }

    /// Refuses short tokens, strict mode without a token and one text for both tokens.
    pub fn validate(&self) -> Result<(), AccessError> {
        let named = [
            ("operator token (--ops-token, JETSAGA_OPS_TOKEN)", &self.operator_token),
            ("read token (--ops-read-token, JETSAGA_OPS_READ_TOKEN)", &self.read_token),
        ];
        for (which, token) in named {
            if let Some(token) = token.as_ref().filter(|t| t.len() < TOKEN_BYTES_MIN) {
                return Err(AccessError::ShortToken { which, len: token.len() });
            }
        }
        if self.mode == AuthMode::Strict && self.operator_token.is_none() && self.read_token.is_none() {
            return Err(AccessError::StrictWithoutToken);
        }
        if let (Some(a), Some(b)) = (&self.operator_token, &self.read_token) {
            if digest(a.expose().as_bytes()) == digest(b.expose().as_bytes()) {
                return Err(AccessError::SameTokens);
            }
        }
        Ok(())
    }

    /// The gate the middleware applies for a listener at `addr`.
    pub fn gate(&self, addr: SocketAddr) -> Gate {
        let allowed_hosts = match &self.allowed_hosts {
            Some(hosts) => Some(hosts.iter().map(|h| normalize_host(h)).collect()),
            None => default_allowed_hosts(addr),
        };
        Gate {
            mode: self.mode,
            operator: self.operator_token.as_ref().map(|t| digest(t.expose().as_bytes())),
            read: self.read_token.as_ref().map(|t| digest(t.expose().as_bytes())),
            metrics_need_token: self.metrics_need_token,
            allowed_hosts,
        }
    }

    /// What to warn about when listening at `addr` (empty: nothing).
    pub fn warnings(&self, addr: SocketAddr) -> Vec<String> {
        let mut warnings = Vec::new();
        if !addr.ip().is_loopback() && self.mode == AuthMode::Open {
            warnings.push(format!(
                "the ops API listens on {addr}, beyond loopback, without --auth strict: anyone who reaches it can read every saga's input and output and start sagas (see docs/security.md)"
            ));
        }
        if !addr.ip().is_loopback() && self.allowed_hosts.is_none() {
            warnings.push(format!("the ops API listens on {addr} without --allowed-host: any Host header is accepted"));
        }
        warnings
    }
}

/// The Host names a listener accepts by default: on loopback, the loopback
/// names and its own address; beyond loopback, any (`None`), since the
/// names it is reached by are not known here.
pub fn default_allowed_hosts(addr: SocketAddr) -> Option<Vec<String>> {
    if !addr.ip().is_loopback() {
        return None;
    }
    let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect();
    let own = match addr.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    if !hosts.contains(&own) {
        hosts.push(own);
    }
    Some(hosts)
}

/// The access settings resolved for one listener: token digests, the
/// allow-list. `Debug` shows no token (only digests are kept).
#[derive(Debug, Clone, Default)]
pub struct Gate {
    mode: AuthMode,
    operator: Option<[u8; 32]>,
    read: Option<[u8; 32]>,
    metrics_need_token: bool,
    allowed_hosts: Option<Vec<String>>,
}

/// What a request asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Health, readiness, the dashboard's static files.
    Public,
    /// `/metrics`.
    Metrics,
    /// Reads of sagas.
    Read,
    /// `POST /sagas`.
    Start,
    /// `POST /sagas/{id}/{verb}`.
    Operate,
}

/// Who the bearer token says the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Reader,
    Operator,
    /// A token was given and matches neither.
    Wrong,
}

fn action(method: &Method, path: &str) -> Action {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (_, ["healthz"] | ["readyz"] | ["ui"] | ["ui", _]) => Action::Public,
        (_, ["metrics"]) => Action::Metrics,
        (&Method::POST, ["sagas"]) => Action::Start,
        (&Method::POST, ["sagas", _, _]) => Action::Operate,
        _ => Action::Read,
    }
}

impl Gate {
    fn caller(&self, headers: &HeaderMap) -> Caller {
        let Some(given) = headers.get(header::AUTHORIZATION) else { return Caller::Anonymous };
        let given = given.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
        let given = digest(given.as_bytes());
        // Both comparisons run whatever the first one says.
        let operator = self.operator.is_some_and(|expected| constant_time_eq(&given, &expected));
        let reader = self.read.is_some_and(|expected| constant_time_eq(&given, &expected));
        match (operator, reader) {
            (true, _) => Caller::Operator,
            (false, true) => Caller::Reader,
            (false, false) => Caller::Wrong,
        }
    }

    /// `Ok` if `caller` may do `action`, else the refusal.
    fn allow(&self, action: Action, caller: Caller) -> Result<(), ApiError> {
        let strict = self.mode == AuthMode::Strict;
        let needs = match action {
            Action::Public => return Ok(()),
            Action::Metrics if !(strict && self.metrics_need_token) => return Ok(()),
            Action::Read | Action::Start if !strict => return Ok(()),
            Action::Metrics | Action::Read => Caller::Reader,
            Action::Start | Action::Operate => Caller::Operator,
        };
        if action == Action::Operate && self.operator.is_none() {
            return Err(unauthorized("operator verbs are off: start serve with --ops-token or --ops-token-file"));
        }
        match (caller, needs) {
            (Caller::Operator, _) | (Caller::Reader, Caller::Reader) => Ok(()),
            (Caller::Reader, _) => {
                Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "the read-only token cannot start sagas or act on them"))
            }
            (Caller::Anonymous, _) => Err(unauthorized("this needs `Authorization: Bearer <token>`")),
            (Caller::Wrong, _) => Err(unauthorized("missing or wrong bearer token")),
        }
    }

    fn host_allowed(&self, headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
        let Some(allowed) = &self.allowed_hosts else { return true };
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| uri.authority().map(|a| a.as_str()));
        host.is_some_and(|host| allowed.contains(&normalize_host(host)))
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

/// A Host header's name, lower-case, without port or trailing dot
/// (`[::1]` keeps its brackets).
fn normalize_host(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(host.clone(), |(ip, _)| format!("[{ip}]")),
        None => {
            host.rsplit_once(':').filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit())).map_or(host.clone(), |(n, _)| n.to_owned())
        }
    };
    name.trim_end_matches('.').to_owned()
}

/// The middleware: the Host allow-list, then the token the route needs.
pub(super) async fn check(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    if !gate.host_allowed(request.headers(), request.uri()) {
        let detail = "the Host header is not on the ops API's allow-list (--allowed-host)";
        return ApiError::new(StatusCode::MISDIRECTED_REQUEST, "host not allowed", detail).into_response();
    }
    let action = action(request.method(), request.uri().path());
    match gate.allow(action, gate.caller(request.headers())) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            let mut response = refusal.into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares without an early exit, so the time taken says nothing about
/// how much of the token was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..len {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPERATOR: &str = "operator-token-0123456789";
    const READER: &str = "read-only-token-0123456789";

    fn strict() -> Access {
        Access {
            mode: AuthMode::Strict,
            operator_token: Some(Secret::new(OPERATOR)),
            read_token: Some(Secret::new(READER)),
            ..Access::default()
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn short_and_empty_tokens_are_refused_without_showing_them() {
        let empty = Access::operator(Secret::new("")).validate().unwrap_err();
        assert_eq!(empty, AccessError::ShortToken { which: "operator token (--ops-token, JETSAGA_OPS_TOKEN)", len: 0 });
        let short = Access { read_token: Some(Secret::new("abc-short")), ..Access::default() }.validate().unwrap_err();
        assert!(short.to_string().contains("--ops-read-token") && !short.to_string().contains("abc-short"), "{short}");
        assert_eq!(Access { mode: AuthMode::Strict, ..Access::default() }.validate(), Err(AccessError::StrictWithoutToken));
        let same = Access { read_token: Some(Secret::new(OPERATOR)), ..strict() };
        assert_eq!(same.validate(), Err(AccessError::SameTokens));
        assert_eq!(strict().validate(), Ok(()));
    }

    #[test]
    fn each_token_allows_its_actions() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let gate = strict().gate(addr);
        let with = |token: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(token) = token {
                headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
            }
            gate.caller(&headers)
        };
        assert_eq!(
            (with(Some(OPERATOR)), with(Some(READER)), with(None), with(Some("nope"))),
            (Caller::Operator, Caller::Reader, Caller::Anonymous, Caller::Wrong)
        );
        let status = |action, caller| gate.allow(action, caller).err().map(|e| e.into_response().status().as_u16());
        assert_eq!(status(Action::Read, Caller::Reader), None);
        assert_eq!(status(Action::Read, Caller::Anonymous), Some(401));
        assert_eq!(status(Action::Start, Caller::Reader), Some(403));
        assert_eq!(status(Action::Operate, Caller::Reader), Some(403));
        assert_eq!(status(Action::Operate, Caller::Operator), None);
        assert_eq!(status(Action::Metrics, Caller::Anonymous), None, "metrics stay open unless configured");
        assert_eq!(status(Action::Public, Caller::Wrong), None);
        let open = Access::operator(Secret::new(OPERATOR)).gate(addr);
        assert!(open.allow(Action::Start, Caller::Anonymous).is_ok(), "SPEC §5: starts are open by default");
        assert!(open.allow(Action::Operate, Caller::Anonymous).is_err());
    }

    #[test]
    fn routes_map_to_actions() {
        assert_eq!(action(&Method::GET, "/healthz"), Action::Public);
        assert_eq!(action(&Method::GET, "/ui/app.js"), Action::Public);
        assert_eq!(action(&Method::GET, "/sagas/x/state"), Action::Read);
        assert_eq!(action(&Method::POST, "/sagas"), Action::Start);
        assert_eq!(action(&Method::POST, "/sagas/x/abort"), Action::Operate);
        assert_eq!(action(&Method::GET, "/anything"), Action::Read);
        assert_eq!(action(&Method::GET, "/poison"), Action::Read, "poison is a read: strict mode needs a token");
        assert_eq!(action(&Method::GET, "/poison/7"), Action::Read);
    }

    #[test]
    fn hosts_lose_ports_and_loopback_listeners_accept_loopback_names() {
        assert_eq!(normalize_host("LocalHost:8080"), "localhost");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("ops.example.com."), "ops.example.com");
        let hosts = default_allowed_hosts("127.0.0.2:1".parse().unwrap()).unwrap();
        assert_eq!(hosts, ["localhost", "127.0.0.1", "[::1]", "127.0.0.2"]);
        assert_eq!(default_allowed_hosts("0.0.0.0:80".parse().unwrap()), None);
    }
}
