//! A small blocking client of the ops API (SPEC §5) for `jetsaga sagas`:
//! one method per endpoint, each returning the answer as its type of
//! [`crate::ops::api`] (the server's own) or a [`ClientError`] with the
//! status and the API's [`ErrorBody`].

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::cli::terminal;
use crate::ops::api::{
    query_pairs, ErrorBody, ListQuery, PoisonDetail, PoisonPage, PoisonQuery, SagaDetail, SagaPage, SagaStateBody, SagaStatusBody,
    StartSagaBody, StateQuery, VerbBody,
};
use crate::saga::SagaId;
use crate::secret::Secret;

/// Longest wait for one request, connect to last byte.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read (a saga's detail carries its whole log).
const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// A request that did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The API answered with an error status.
    #[error("{method} {url}: {status} {error}: {detail}")]
    Status {
        /// `GET` or `POST`.
        method: &'static str,
        /// The full URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The API's `error` (what).
        error: String,
        /// The API's `detail` (why).
        detail: String,
    },
    /// No usable answer: connection refused, timeout, a body that is not
    /// the JSON expected.
    #[error("cannot use the ops API at {url}: {reason}")]
    Transport {
        /// The full URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status, when the API answered.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            ClientError::Transport { .. } => None,
        }
    }

    /// True when the server's certificate was refused (an unknown CA, a
    /// name that does not match).
    pub(crate) fn is_certificate(&self) -> bool {
        matches!(self, ClientError::Transport { reason, .. } if reason.contains("certificate"))
    }
}

/// The ops API at one base URL, with an optional bearer token.
#[derive(Debug)]
pub(crate) struct OpsClient {
    base: String,
    token: Option<Secret>,
    agent: ureq::Agent,
}

impl OpsClient {
    /// A client of the API at `base` (`http://…` or `https://…`); over
    /// HTTPS it trusts the CA in `ca_file` (PEM) if given, else the web PKI.
    pub(crate) fn new(base: &str, token: Option<Secret>, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut config = ureq::Agent::config_builder().timeout_global(Some(REQUEST_TIMEOUT)).http_status_as_error(false);
        if let Some(ca_file) = ca_file {
            config = config.tls_config(TlsConfig::builder().root_certs(RootCerts::new_with_certs(&ca_certificates(ca_file)?)).build());
        }
        Ok(Self { base: base.trim_end_matches('/').to_owned(), token, agent: config.build().into() })
    }

    /// `GET /sagas` with filters: one page.
    pub(crate) fn list(&self, query: &ListQuery) -> Result<SagaPage, ClientError> {
        self.get("/sagas".to_owned(), query_pairs(query))
    }

    /// `GET /poison`: one page of poison records.
    pub(crate) fn poison(&self, query: &PoisonQuery) -> Result<PoisonPage, ClientError> {
        self.get("/poison".to_owned(), query_pairs(query))
    }

    /// `GET /poison/{id}`: one poison record and its payload.
    pub(crate) fn poison_detail(&self, id: i64) -> Result<PoisonDetail, ClientError> {
        self.get(format!("/poison/{id}"), Vec::new())
    }

    /// `GET /sagas/{id}`: state, steps and events.
    pub(crate) fn detail(&self, id: SagaId) -> Result<SagaDetail, ClientError> {
        self.get(format!("/sagas/{id}"), Vec::new())
    }

    /// `GET /sagas/{id}/state?at_seq=N`: the state as it was after event `seq`.
    pub(crate) fn state_at_seq(&self, id: SagaId, seq: u64) -> Result<SagaStateBody, ClientError> {
        self.get(format!("/sagas/{id}/state"), query_pairs(&StateQuery { at_seq: Some(seq), at: None }))
    }

    /// `POST /sagas`: starts a saga; `true` when it is new (`201`), `false`
    /// when the id was taken (`200`, the existing saga's status).
    /// With `wait` (`?wait=`), the server answers once the saga ended or
    /// the wait passed.
    pub(crate) fn start(&self, body: &StartSagaBody, wait: Option<&str>) -> Result<(bool, SagaStatusBody), ClientError> {
        let url = self.url("/sagas");
        let mut request = self.authorized(self.agent.post(&url));
        if let Some(wait) = wait {
            request = request.query("wait", wait);
        }
        let (status, answer) = finish_with_status("POST", url, request.send_json(body))?;
        Ok((status == 201, answer))
    }

    /// `POST /sagas/{id}/{verb}` with `{"reason"}` and the bearer token.
    pub(crate) fn operate(&self, id: SagaId, verb: &str, reason: &str) -> Result<SagaStatusBody, ClientError> {
        let url = self.url(&format!("/sagas/{id}/{verb}"));
        let request = self.authorized(self.agent.post(&url));
        finish("POST", url, request.send_json(VerbBody { reason: reason.to_owned() }))
    }

    fn get<T: DeserializeOwned>(&self, path: String, query: Vec<(String, String)>) -> Result<T, ClientError> {
        let url = self.url(&path);
        let mut request = self.authorized(self.agent.get(&url));
        for (key, value) in query {
            request = request.query(key, value);
        }
        finish("GET", url, request.call())
    }

    /// The request with the bearer token, if there is one.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {}", token.expose())),
            None => request,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The certificates of a PEM file (other items, such as keys, are skipped).
fn ca_certificates(path: &Path) -> anyhow::Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read the CA file {}", path.display()))?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(certificate) = item.with_context(|| format!("the CA file {} is not valid PEM", path.display()))? {
            certificates.push(certificate);
        }
    }
    anyhow::ensure!(!certificates.is_empty(), "the CA file {} holds no PEM certificate", path.display());
    Ok(certificates)
}

/// The typed body of a 2xx answer, or the error: the one place statuses
/// and transport failures become [`ClientError`]s.
fn finish<T: DeserializeOwned>(
    method: &'static str,
    url: String,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, ClientError> {
    finish_with_status(method, url, result).map(|(_, answer)| answer)
}

/// Like [`finish`], with the success status (`200` or `201`, say).
fn finish_with_status<T: DeserializeOwned>(
    method: &'static str,
    url: String,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, T), ClientError> {
    let mut response = result.map_err(|e| ClientError::Transport { url: url.clone(), reason: e.to_string() })?;
    let status = response.status();
    let text = response
        .body_mut()
        .with_config()
        .limit(RESPONSE_BYTES_MAX)
        .read_to_string()
        .map_err(|e| ClientError::Transport { url: url.clone(), reason: format!("reading the answer: {e}") })?;
    if status.is_success() {
        return serde_json::from_str(&text)
            .map(|answer| (status.as_u16(), answer))
            .map_err(|e| ClientError::Transport { url, reason: format!("{status} with a body that is not the JSON expected: {e}") });
    }
    // Not every error comes from jetsaga (a proxy's, say): then the status
    // names the error and the start of the body explains it.
    let (error, detail) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(ErrorBody { error, detail, .. }) => (terminal::escape(&error).into_owned(), terminal::escape(&detail).into_owned()),
        Err(_) => {
            let start: String = text.chars().take(200).collect();
            (status.canonical_reason().unwrap_or("error").to_lowercase(), terminal::escape(&start).into_owned())
        }
    };
    Err(ClientError::Status { method, url, status: status.as_u16(), error, detail })
}
