//! A small blocking client of the ops API (SPEC §5) for `jetsaga sagas`:
//! one method per endpoint, each returning the answer as its type of
//! [`crate::ops::api`] (the server's own) or a [`ClientError`] with the
//! status and the API's [`ErrorBody`].

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::ops::api::{query_pairs, ErrorBody, ListQuery, SagaDetail, SagaPage, SagaStateBody, SagaStatusBody, StateQuery, VerbBody};
use crate::saga::SagaId;

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
}

/// The ops API at one base URL, with an optional bearer token.
#[derive(Debug)]
pub(crate) struct OpsClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl OpsClient {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8080`).
    pub(crate) fn new(base: &str, token: Option<String>) -> Self {
        let config = ureq::Agent::config_builder().timeout_global(Some(REQUEST_TIMEOUT)).http_status_as_error(false).build();
        Self { base: base.trim_end_matches('/').to_owned(), token, agent: config.into() }
    }

    /// `GET /sagas` with filters: one page.
    pub(crate) fn list(&self, query: &ListQuery) -> Result<SagaPage, ClientError> {
        self.get("/sagas".to_owned(), query_pairs(query))
    }

    /// `GET /sagas/{id}`: state, steps and events.
    pub(crate) fn detail(&self, id: SagaId) -> Result<SagaDetail, ClientError> {
        self.get(format!("/sagas/{id}"), Vec::new())
    }

    /// `GET /sagas/{id}/state?at_seq=N`: the state as it was after event `seq`.
    pub(crate) fn state_at_seq(&self, id: SagaId, seq: u64) -> Result<SagaStateBody, ClientError> {
        self.get(format!("/sagas/{id}/state"), query_pairs(&StateQuery { at_seq: Some(seq), at: None }))
    }

    /// `POST /sagas/{id}/{verb}` with `{"reason"}` and the bearer token.
    pub(crate) fn operate(&self, id: SagaId, verb: &str, reason: &str) -> Result<SagaStatusBody, ClientError> {
        let url = self.url(&format!("/sagas/{id}/{verb}"));
        let mut request = self.agent.post(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        finish("POST", url, request.send_json(VerbBody { reason: reason.to_owned() }))
    }

    fn get<T: DeserializeOwned>(&self, path: String, query: Vec<(String, String)>) -> Result<T, ClientError> {
        let url = self.url(&path);
        let mut request = self.agent.get(&url);
        for (key, value) in query {
            request = request.query(key, value);
        }
        finish("GET", url, request.call())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The typed body of a 2xx answer, or the error: the one place statuses
/// and transport failures become [`ClientError`]s.
fn finish<T: DeserializeOwned>(
    method: &'static str,
    url: String,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, ClientError> {
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
            .map_err(|e| ClientError::Transport { url, reason: format!("{status} with a body that is not the JSON expected: {e}") });
    }
    // Not every error comes from jetsaga (a proxy's, say): then the status
    // names the error and the start of the body explains it.
    let (error, detail) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(ErrorBody { error, detail }) => (error, detail),
        Err(_) => (status.canonical_reason().unwrap_or("error").to_lowercase(), text.chars().take(200).collect()),
    };
    Err(ClientError::Status { method, url, status: status.as_u16(), error, detail })
}
