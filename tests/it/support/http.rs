//! The one HTTP client of the tests (the ops API, `jetsaga serve`
//! processes, chromedriver): plain HTTP/1.1 with `ureq`, blocking or off
//! the async runtime, and a reader of Prometheus samples.

use super::HTTP_MAX;

/// One HTTP/1.1 exchange, blocking: `method url` with `body` (as JSON) and
/// the bearer `token`; the status and the body text, or why nothing came back.
pub fn exchange(method: &str, url: &str, body: Option<&str>, token: Option<&str>) -> Result<(u16, String), String> {
    let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(HTTP_MAX)).proxy(None).build();
    let agent: ureq::Agent = config.into();
    let mut request = ureq::http::Request::builder().method(method).uri(url).header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let sent = match body {
        Some(body) => agent.run(request.body(body.to_owned()).map_err(|e| e.to_string())?),
        None => agent.run(request.body(()).map_err(|e| e.to_string())?),
    };
    let mut response = sent.map_err(|e| format!("{method} {url}: {e}"))?;
    let text = response.body_mut().read_to_string().map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
    Ok((response.status().as_u16(), text))
}

/// [`exchange`] off the async runtime: every HTTP call of the tests.
pub async fn http(method: &str, url: &str, body: Option<&str>, token: Option<&str>) -> Result<(u16, String), String> {
    let (method, url) = (method.to_owned(), url.to_owned());
    let (body, token) = (body.map(str::to_owned), token.map(str::to_owned));
    tokio::task::spawn_blocking(move || exchange(&method, &url, body.as_deref(), token.as_deref())).await.expect("the HTTP task")
}

/// The value of the Prometheus sample `series` (name and labels exactly as exposed).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
