//! A small blocking client of the ops API (SPEC §5) for `jetsaga sagas`:
//! one method per endpoint, each returning the response's JSON or an
//! [`ApiError`] with the status and the API's `{"error", "detail"}`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::saga::SagaId;

/// Longest wait for one request, connect to last byte.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read (a saga's detail carries its whole log).
const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// A request that did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
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
    /// No usable answer: connection refused, timeout, a body that is not JSON.
    #[error("cannot use the ops API at {url}: {reason}")]
    Transport {
        /// The full URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl ApiError {
    /// The HTTP status, when the API answered.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Transport { .. } => None,
        }
    }
}

/// Filters and paging of `GET /sagas`, as query pairs.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListQuery {
    /// `status=a,b`.
    pub(crate) statuses: Vec<String>,
    /// `saga_type=`.
    pub(crate) saga_type: Option<String>,
    /// `stuck_for=` in milliseconds.
    pub(crate) stuck_for_ms: Option<u128>,
    /// `limit=`.
    pub(crate) limit: Option<u32>,
    /// `cursor=`.
    pub(crate) cursor: Option<String>,
}

impl ListQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if !self.statuses.is_empty() {
            pairs.push(("status", self.statuses.join(",")));
        }
        let optional = [
            ("saga_type", self.saga_type.clone()),
            ("stuck_for", self.stuck_for_ms.map(|ms| format!("{ms}ms"))),
            ("limit", self.limit.map(|l| l.to_string())),
            ("cursor", self.cursor.clone()),
        ];
        pairs.extend(optional.into_iter().filter_map(|(key, value)| Some((key, value?))));
        pairs
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

    /// `GET /sagas` with filters: `{"sagas": [...], "next_cursor"}`.
    pub(crate) fn list(&self, query: &ListQuery) -> Result<Value, ApiError> {
        let url = self.url("/sagas");
        let mut request = self.agent.get(&url);
        for (key, value) in query.pairs() {
            request = request.query(key, value);
        }
        finish("GET", url, request.call())
    }

    /// `GET /sagas/{id}`: state, steps and events.
    pub(crate) fn detail(&self, id: SagaId) -> Result<Value, ApiError> {
        let url = self.url(&format!("/sagas/{id}"));
        finish("GET", url.clone(), self.agent.get(&url).call())
    }

    /// `GET /sagas/{id}/state?at_seq=N`: the state as it was after event `seq`.
    pub(crate) fn state_at_seq(&self, id: SagaId, seq: u64) -> Result<Value, ApiError> {
        let url = self.url(&format!("/sagas/{id}/state"));
        finish("GET", url.clone(), self.agent.get(&url).query("at_seq", seq.to_string()).call())
    }

    /// `POST /sagas/{id}/{verb}` with `{"reason"}` and the bearer token.
    pub(crate) fn operate(&self, id: SagaId, verb: &str, reason: &str) -> Result<Value, ApiError> {
        let url = self.url(&format!("/sagas/{id}/{verb}"));
        let mut request = self.agent.post(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        finish("POST", url, request.send_json(json!({ "reason": reason })))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The JSON body of a 2xx answer, or the error: the one place statuses
/// and transport failures become [`ApiError`]s.
fn finish(method: &'static str, url: String, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, ApiError> {
    let mut response = result.map_err(|e| ApiError::Transport { url: url.clone(), reason: e.to_string() })?;
    let status = response.status();
    let text = response
        .body_mut()
        .with_config()
        .limit(RESPONSE_BYTES_MAX)
        .read_to_string()
        .map_err(|e| ApiError::Transport { url: url.clone(), reason: format!("reading the answer: {e}") })?;
    let body: Option<Value> = serde_json::from_str(&text).ok();
    match (status.is_success(), body) {
        (true, Some(body)) => Ok(body),
        (true, None) => Err(ApiError::Transport { url, reason: format!("{status} with a body that is not JSON") }),
        (false, body) => {
            let field = |key: &str| body.as_ref().and_then(|b| b[key].as_str()).map(str::to_owned);
            Err(ApiError::Status {
                method,
                url,
                status: status.as_u16(),
                error: field("error").unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase()),
                detail: field("detail").unwrap_or_else(|| text.chars().take(200).collect()),
            })
        }
    }
}
